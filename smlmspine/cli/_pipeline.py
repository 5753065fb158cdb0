"""``smlmspine run``: the whole pipeline in one command."""

from __future__ import annotations

from .._labels import LABELS
from ._common import (POSITIVE, POSITIVE_INT, Outputs, add_envelope_options,
                      add_input_options, parse_alpha)


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="read -> drift -> merge -> spines -> meshes -> features -> classes",
        description="The pipeline in one command: read IN, correct drift, merge blinks, isolate "
                    "spines, reconstruct their envelopes, measure them and classify them. Writes "
                    "OUTDIR/spine_<id>.<ext>, dendrite.<ext>, spines.parquet (features + class), "
                    "localizations.parquet (with spine_id), drift.csv/drift.png and run.json "
                    "(every parameter).")
    add_input_options(p, name="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--label", choices=LABELS, default="membrane",
                   help="membrane probe (noisy shell) or filling label (default membrane)")
    p.add_argument("--drift", choices=["aim", "rcc", "fiducial", "none"], default="aim",
                   help="drift estimation method (default aim; none skips it)")
    p.add_argument("--segment-frames", type=POSITIVE_INT, default=None, help="drift segment length in frames")
    p.add_argument("--no-merge", action="store_true", help="do not merge blinks / average traces")
    p.add_argument("--method", choices=["auto", "alpha", "shell", "poisson"], default="auto",
                   help="envelope reconstruction (default auto = shell for both labels)")
    p.add_argument("--alpha-nm", default="auto", help="alpha radius in nm, or auto")
    p.add_argument("--mesh-format", dest="mesh_format", choices=["ply", "obj", "stl", "glb"], default="ply",
                   help="mesh file format (default ply)")
    p.add_argument("--step-nm", type=POSITIVE, default=10.0, help="cross-section spacing (nm)")
    add_envelope_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_run)


def _run(args) -> int:
    alpha = parse_alpha(args.alpha_nm)
    with Outputs() as outputs:
        outdir = outputs.folder(args.output, option="-o", parents=True)
        return _run_in(args, alpha, outdir)


def _run_in(args, alpha, outdir) -> int:
    from ..pipeline import run
    from ._common import read_input

    table = read_input(args, attr="in")
    import warnings

    from ..errors import QualityWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        res = run(table, outdir, label=args.label, drift=args.drift,
                  segment_frames=args.segment_frames, merge=not args.no_merge,
                  method=args.method, alpha_nm=alpha, mesh_format=args.mesh_format,
                  step_nm=args.step_nm, neck_surface=not args.no_neck_surface,
                  workers=args.workers, quiet=args.quiet)
    _print_warnings("run", caught)
    s = res.summary
    print(f"{s['n_spines']} spines in {args.output}: "
          + (", ".join(f"{k} {v}" for k, v in sorted(s["classes"].items())) or "none classified"))
    if s.get("median_neck_min_diameter_nm") is not None:
        print(f"median neck minimum diameter {s['median_neck_min_diameter_nm']:.0f} nm; "
              f"run.json lists every parameter ({s['seconds']:.1f} s)")
    return 0


def _print_warnings(command: str, caught) -> None:
    """Each QualityWarning as one line on stderr; other warnings re-issued as they were."""
    import sys
    import warnings

    from ..errors import QualityWarning

    for w in caught:
        if issubclass(w.category, QualityWarning):
            print(f"smlmspine {command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
