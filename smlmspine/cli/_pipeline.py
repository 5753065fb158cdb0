"""``smlmspine run``: the whole pipeline in one command."""

from __future__ import annotations

from .._labels import LABELS
from ._common import (POSITIVE, POSITIVE_INT, Outputs, add_envelope_options,
                      add_input_options, parse_alpha)

#: Parameters of :func:`smlmspine.pipeline.run` set from ``[run]`` (the file is read here).
_RUN_PARAMETERS = ("label", "drift", "segment_frames", "merge", "method", "alpha_nm",
                   "mesh_format", "step_nm", "neck_surface", "workers")


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="read -> drift -> merge -> spines -> meshes -> features -> classes",
        description="The pipeline in one command: read IN, correct drift, merge blinks, isolate "
                    "spines, reconstruct their envelopes, measure them and classify them. Writes "
                    "OUTDIR/spine_<id>.<ext>, dendrite.<ext>, spines.parquet (features + class), "
                    "localizations.parquet (with spine_id), drift.csv/drift.png, "
                    "overview.ome.tif (2D, 20 nm pixels), run.json (every parameter and the "
                    "effective configuration) and report.html (one self-contained page).",
        epilog="--config FILE reads the parameters from a TOML file (sections [read], [run]; "
               "`smlmspine run --print-config` prints every key with its default); an option "
               "given on the command line overrides the file. See docs/batch.md.")
    add_input_options(p, name="IN")
    _optional_input(p)
    p.add_argument("-o", "--output", default=None, metavar="OUTDIR", help="output folder (required)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="TOML configuration file (keys: the options without dashes)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration (defaults, --config FILE and the "
                        "options given) as TOML on stdout and exit")
    p.add_argument("--label", choices=LABELS, default=None,
                   help="membrane probe (noisy shell) or filling label (default membrane)")
    p.add_argument("--drift", choices=["aim", "rcc", "fiducial", "none"], default=None,
                   help="drift estimation method (default aim; none skips it)")
    p.add_argument("--segment-frames", type=POSITIVE_INT, default=None, help="drift segment length in frames")
    p.add_argument("--no-merge", action="store_true", help="do not merge blinks / average traces")
    p.add_argument("--method", choices=["auto", "alpha", "shell", "poisson"], default=None,
                   help="envelope reconstruction (default auto = shell for both labels)")
    p.add_argument("--alpha-nm", default=None, help="alpha radius in nm, or auto (default auto)")
    p.add_argument("--mesh-format", dest="mesh_format", choices=["ply", "obj", "stl", "glb"], default=None,
                   help="mesh file format (default ply)")
    p.add_argument("--step-nm", type=POSITIVE, default=None, help="cross-section spacing (nm; default 10)")
    add_envelope_options(p)
    add_chunk_option(p)
    p.add_argument("--no-report", action="store_true",
                   help="do not write report.html (smlmspine report OUTDIR makes it later)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--profile", action="store_true", help="print where the time went at the "
                   "end: stages, envelope steps, peak memory (from run.json)")
    # unset options are None: only the options given override the configuration file
    p.set_defaults(func=_run, workers=None, no_merge=None, no_neck_surface=None, keep_invalid=None)


def add_chunk_option(parser) -> None:
    """``--chunk-rows N``: the large-file path (docs/batch.md, "Large single files")."""
    parser.add_argument("--chunk-rows", type=POSITIVE_INT, default=None, metavar="N",
                        help="read, drift-correct and merge a Parquet/Arrow file in frame windows "
                             "of about N localizations (bounded memory; same result). Default: "
                             "only when the file's estimated in-memory size exceeds the memory "
                             "budget (SMLMSPINE_MEMORY_BUDGET_GB), with N = 2000000")


def _optional_input(parser) -> None:
    """IN may be left out with --print-config (checked in :func:`_run`)."""
    for action in parser._actions:
        if action.dest == "in":
            action.nargs = "?"
            action.default = None


def effective_config(args, *, sections=("read", "run")) -> dict:
    """Defaults <- ``--config FILE`` <- the options given on the command line.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of ``run`` or ``batch`` (unset options are ``None``).
    sections : tuple of str
        The sections the command line can set.

    Returns
    -------
    dict
        The complete, validated configuration (:func:`smlmspine.config.check_config`).
    """
    from ..config import check_config, default_config, load_config
    from ._common import parse_mapping

    config = load_config(args.config) if args.config else default_config()
    given = {"read": {"format": getattr(args, "in_format", None),
                      "pixel_size_nm": getattr(args, "pixel_size_nm", None),
                      "map": parse_mapping(getattr(args, "mapping", None)),
                      "coordinate_unit": getattr(args, "coordinate_unit", None),
                      "keep_invalid": getattr(args, "keep_invalid", None) or None,
                      "z_scale": getattr(args, "z_scale", None),
                      "position_unit": getattr(args, "position_unit", None),
                      "chunk_rows": getattr(args, "chunk_rows", None)},
             "run": {"label": args.label, "drift": args.drift,
                     "segment_frames": args.segment_frames,
                     "merge": False if args.no_merge else None, "method": args.method,
                     "alpha_nm": None if args.alpha_nm is None else parse_alpha(args.alpha_nm),
                     "mesh_format": args.mesh_format, "step_nm": args.step_nm,
                     "neck_surface": False if args.no_neck_surface else None,
                     "workers": args.workers},
             "batch": {k: getattr(args, f"batch_{k}", None)
                       for k in ("workers", "retries", "scheduler")}}
    for section in sections:
        for key, value in given[section].items():
            if value is not None:
                config[section][key] = value
    return check_config(config, source="command line")


def _run(args) -> int:
    config = effective_config(args)
    if args.print_config:
        from ..config import to_toml

        print(to_toml(config), end="")
        return 0
    missing = [what for what, value in (("IN", getattr(args, "in")), ("-o OUTDIR", args.output))
               if value is None]
    if missing:
        from ..errors import ParameterError

        raise ParameterError(f"{' and '.join(missing)} required (or --print-config)")
    with Outputs() as outputs:
        outdir = outputs.folder(args.output, option="-o", parents=True)
        return _run_in(args, config, outdir)


def _run_in(args, config, outdir) -> int:
    import argparse
    import time

    from ..config import run_arguments
    from ..pipeline import run
    from ._common import read_input

    read = config["read"]
    mapping = read["map"]
    source = argparse.Namespace(**{
        "in": getattr(args, "in"), "in_format": read["format"],
        "pixel_size_nm": read["pixel_size_nm"],
        "mapping": ",".join(f"{k}={v}" for k, v in mapping.items()) if mapping else None,
        "coordinate_unit": read["coordinate_unit"], "keep_invalid": read["keep_invalid"],
        "z_scale": read["z_scale"], "position_unit": read["position_unit"]})
    from .. import _background
    from ..envelope._export import _start_pool_server
    from ..pipeline import _large_plan

    workers = config["run"]["workers"]
    # the envelope pool's fork server imports on the other core while this one reads
    _start_pool_server(workers)
    large_options = {k: v for k, v in (("format", read["format"]),
                                       ("coordinate_unit", read["coordinate_unit"]))
                     if v is not None}
    if _large_plan(getattr(args, "in"), read["chunk_rows"], large_options) is not None:
        # too large to read whole (or --chunk-rows): the pipeline reads it in chunks
        table = getattr(args, "in")
    else:
        t_read = time.perf_counter()
        table = read_input(source, attr="in")
        t_read = time.perf_counter() - t_read   # run.json stages.read.seconds
    import warnings

    from ..errors import QualityWarning

    kwargs = {k: v for k, v in run_arguments(config).items() if k in _RUN_PARAMETERS}
    if isinstance(table, str):
        kwargs.update(large_options, chunk_rows=read["chunk_rows"])
    else:
        kwargs["read_seconds"] = t_read
    # drift.png and the report's figures drawn on idle cores (smlmspine._background)
    with _background.helpers(workers):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", QualityWarning)
            res = run(table, outdir, quiet=args.quiet, config=config, **kwargs)
        _print_warnings("run", caught)
        if not args.no_report:
            from ..report import write_report

            write_report(outdir, kind="run")
    s = res.summary
    print(f"{s['n_spines']} spines in {args.output}: "
          + (", ".join(f"{k} {v}" for k, v in sorted(s["classes"].items())) or "none classified"))
    if s.get("median_neck_min_diameter_nm") is not None:
        print(f"median neck minimum diameter {s['median_neck_min_diameter_nm']:.0f} nm; "
              f"run.json lists every parameter ({s['seconds']:.1f} s)")
    if getattr(args, "profile", False):
        from .._profile import format_run_profile

        mesh = s["stages"].get("mesh") or {}
        print(format_run_profile(s["stages"], mesh.get("parameters", {}).get("profile")))
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
