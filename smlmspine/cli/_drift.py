"""``smlmspine drift`` and ``smlmspine merge``."""

from __future__ import annotations

from pathlib import Path

from .._validate import finite
from ..errors import ParameterError
from ._common import (NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Outputs, add_input_options,
                      print_json, read_input, results_output, table_output)

#: Extensions of ``--plot`` (matplotlib picks the format from them).
PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps")


def register(sub) -> None:
    p = sub.add_parser(
        "drift", help="estimate and correct stage drift (AIM, RCC or fiducials)",
        description="Estimate the drift of IN (AIM, RCC or fiducials; 2D or 3D; segments by "
                    "frames or time_s windows), write the corrected table to OUT and, "
                    "optionally, the drift table (frame or time_s, dx_nm, dy_nm, dz_nm and "
                    "their 1-sigma uncertainties) and a plot of the drift curves.")
    add_input_options(p, name="IN")
    p.add_argument("-o", "--output", dest="out", required=True, metavar="OUT",
                   help="corrected localization file (format from the extension)")
    p.add_argument("--method", choices=("aim", "rcc", "fiducial"), default="aim",
                   help="estimator (default: aim)")
    seg = p.add_mutually_exclusive_group()
    seg.add_argument("--segment-frames", type=POSITIVE_INT, default=None, metavar="N",
                     help="segment length in frames (default: acquisition cut into equal spans)")
    seg.add_argument("--segment-seconds", type=POSITIVE, default=None, metavar="S",
                     help="segment length in s of time_s (MINFLUX)")
    p.add_argument("--dims", type=int, choices=(2, 3), default=None,
                   help="2: estimate x/y only; default: 3 when the table has z")
    p.add_argument("--fiducial", action="append", default=None, metavar="X,Y[,Z]",
                   help="approximate fiducial position in nm (repeatable; method fiducial)")
    p.add_argument("--drift-table", default=None, metavar="DRIFT.csv",
                   help="write the drift table here (.csv, or .parquet)")
    p.add_argument("--plot", default=None, metavar="DRIFT.png",
                   help="plot the drift curves with uncertainty bands")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_drift)

    p = sub.add_parser(
        "merge", help="merge blinks (STORM bursts) or average MINFLUX traces",
        description="Link localizations of the same emitter in consecutive frames into one "
                    "(photon-weighted position, summed photons, combined precision, "
                    "first/last frame, count). Tables without frame but with track_id "
                    "(MINFLUX) are averaged per trace.")
    add_input_options(p, name="IN")
    p.add_argument("-o", "--output", dest="out", required=True, metavar="OUT",
                   help="merged localization file")
    p.add_argument("--radius-nm", type=POSITIVE, default=None, metavar="R",
                   help="linking radius in nm (default: 3 x median precision_xy)")
    p.add_argument("--radius-z-nm", type=POSITIVE, default=None, metavar="RZ",
                   help="axial linking radius in nm (default: 3 x median precision_z)")
    p.add_argument("--max-gap-frames", type=NON_NEGATIVE_INT, default=None, metavar="G",
                   help="dark frames allowed inside a burst (default 1)")
    p.set_defaults(func=_merge)


def _parse_fiducials(items):
    if not items:
        return None
    out = []
    for it in items:
        try:
            vals = [finite(v, "") for v in it.split(",")]
        except ParameterError:
            raise ParameterError(f"--fiducial {it!r} is not X,Y[,Z] (finite numbers in nm)") from None
        if len(vals) not in (2, 3):
            raise ParameterError(f"--fiducial {it!r} needs 2 or 3 numbers")
        out.append(vals[:2])
    return out


def _drift(args) -> int:
    with Outputs() as outputs:
        args.out = table_output(outputs, args.out, option="-o")
        args.drift_table = results_output(outputs, args.drift_table, option="--drift-table", what="drift table",
                                          extensions=(".csv", ".parquet", ".pq"))
        args.plot = results_output(outputs, args.plot, option="--plot", what="plot",
                                   extensions=PLOT_EXTENSIONS)
        return _drift_in(args)


def _drift_in(args) -> int:
    from ..drift import correct
    from ..io import write

    table = read_input(args, attr="in")
    options = {}
    fid = _parse_fiducials(args.fiducial)
    if fid is not None:
        if args.method != "fiducial":
            raise ParameterError("--fiducial needs --method fiducial")
        options["fiducials"] = fid
    res = correct(table, method=args.method, segment_frames=args.segment_frames,
                  segment_seconds=args.segment_seconds, dims=args.dims, **options)
    out = write(res.table, Path(args.out))
    if args.drift_table:
        path = Path(args.drift_table)
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            from ..io._registry import atomic_output

            with atomic_output(path) as tmp:
                pq.write_table(res.model.to_table(), tmp)
        else:
            res.model.write_csv(path)
    if args.plot:
        res.model.plot(args.plot)
    if args.json:
        print_json({"output": str(out), **res.to_dict()})
    else:
        d = res.model.to_dict()
        print(f"drift ({d['method']}, {d['ndim']}D, {d['n_segments']} segments): "
              f"max |dx| {d['max_abs_dx_nm']:.1f} nm, max |dy| {d['max_abs_dy_nm']:.1f} nm"
              + (f", max |dz| {d['max_abs_dz_nm']:.1f} nm" if d["max_abs_dz_nm"] is not None else ""))
        print(f"wrote {res.table.num_rows} corrected localizations to {out}")
    return 0


def _merge(args) -> int:
    with Outputs() as outputs:
        args.out = table_output(outputs, args.out, option="-o")
        return _merge_in(args)


def _merge_in(args) -> int:
    from ..io import write
    from ..merge import merge_blinks

    import warnings

    from ..errors import QualityWarning
    from ._pipeline import _print_warnings

    table = read_input(args, attr="in")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        merged = merge_blinks(table, radius_nm=args.radius_nm,
                              max_gap_frames=args.max_gap_frames, radius_z_nm=args.radius_z_nm)
    # one line per QualityWarning, with the CLI's option names
    for w in caught:
        if issubclass(w.category, QualityWarning):
            w.message = QualityWarning(str(w.message).replace("radius_nm=", "--radius-nm ")
                                       .replace("max_gap_frames=", "--max-gap-frames ")
                                       .replace("radius_z_nm=", "--radius-z-nm "))
    _print_warnings("merge", caught)
    out = write(merged, Path(args.out))
    print(f"merged {table.num_rows} localizations into {merged.num_rows}; wrote {out}")
    return 0
