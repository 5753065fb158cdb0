"""``smlmspine mesh``: spine isolation and one closed mesh per spine, plus the dendrite."""

from __future__ import annotations

from pathlib import Path

from .._labels import LABELS
from .._validate import cli_type, integer
from ._common import (POSITIVE, Outputs, add_envelope_options,
                      add_input_options, parse_alpha, read_input)


def register(sub) -> None:
    p = sub.add_parser(
        "mesh", help="isolate spines and write one closed mesh per spine + the dendrite",
        description="Isolate the spines of a dendrite fragment in IN (or use --spine-labels), "
                    "reconstruct a closed surface per spine and for the whole fragment, and "
                    "write OUTDIR/spine_<id>.<ext>, OUTDIR/dendrite.<ext> and "
                    "OUTDIR/spines.parquet (data_schemas/spine_meshes.json). Coordinates in "
                    "nm; PLY/OBJ carry the spine_id in a header comment. Meshes that are "
                    "not watertight are written and flagged (is_watertight, reason).")
    add_input_options(p, name="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--label", choices=LABELS, default="membrane",
                   help="what was labelled (default: membrane)")
    p.add_argument("--method", choices=("auto", "alpha", "shell", "poisson", "voxel"),
                   default="auto", help="reconstruction method (default: auto = shell: alpha "
                                        "surface fitted onto the data surface)")
    p.add_argument("--alpha-nm", default="auto", metavar="A|auto",
                   help="alpha radius in nm, or auto (default)")
    p.add_argument("--mesh-format", dest="mesh_format", choices=("ply", "obj", "stl", "glb"),
                   default="ply", help="mesh file format (default: ply)")
    p.add_argument("--spine-labels", default=None, metavar="COLUMN",
                   help="integer column that already labels the spines (-1 = shaft)")
    p.add_argument("--smooth", type=cli_type(integer, minimum=0, maximum=1000), default=10,
                   help="Taubin smoothing iterations (default: 10; 0 = none; at most 1000)")
    p.add_argument("--no-dendrite", action="store_true", help="skip the whole-dendrite mesh")
    add_envelope_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-features", action="store_true",
                   help="skip the morphology features and classes (spines.parquet then follows "
                        "data_schemas/spine_meshes.json instead of spine_mesh_features.json)")
    p.add_argument("--step-nm", type=POSITIVE, default=10.0,
                   help="cross-section spacing of the morphology features (nm)")
    p.add_argument("--profile", action="store_true",
                   help="print where the time went at the end: seconds per stage and per "
                        "step of the envelopes (summed over spines and workers), peak memory")
    p.set_defaults(func=_mesh)


def _mesh(args) -> int:
    alpha = parse_alpha(args.alpha_nm)
    with Outputs() as outputs:
        outdir = outputs.folder(args.output, option="-o", parents=True)
        return _mesh_in(args, alpha, outdir)


def _mesh_in(args, alpha, outdir: Path) -> int:
    import time
    from dataclasses import replace

    from .._profile import peak_rss_mb
    from ..envelope import mesh_spines, write_meshes

    stages = {}
    t = time.perf_counter()
    table = read_input(args, attr="in")
    stages["read"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
    t = time.perf_counter()
    import warnings

    from ..errors import QualityWarning
    from ._pipeline import _print_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        res = mesh_spines(table, label=args.label, method=args.method, alpha_nm=alpha,
                          spine_labels=args.spine_labels, smooth=args.smooth,
                          dendrite=not args.no_dendrite, neck_surface=not args.no_neck_surface,
                          workers=args.workers,
                          progress=not args.no_progress)
    stages["mesh"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
    _print_warnings("mesh", caught)
    if not args.no_features:
        from ..morphology import spine_features

        t = time.perf_counter()
        res = replace(res, spines=spine_features(res, label=args.label,
                                                 precision_nm=res.parameters.get("precision_nm"),
                                                 step_nm=args.step_nm,
                                                 progress=not args.no_progress,
                                                 workers=args.workers))
        stages["morphology"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
    t = time.perf_counter()
    out = write_meshes(res, outdir, file_format=args.mesh_format)
    stages["write"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
    ok = sum(out.column("is_watertight").to_pylist())
    dnote = ""
    if res.dendrite is not None:
        dnote = "; dendrite " + ("watertight" if res.dendrite.is_watertight
                                 else f"NOT watertight ({res.dendrite.reason})")
    print(f"mesh: {out.num_rows} spines, {ok} watertight{dnote}; wrote {args.output}")
    if args.profile:
        from .._profile import format_run_profile

        print(format_run_profile(stages, res.parameters.get("profile")))
    return 0
