"""``smlmspine filter``, ``average-traces`` and ``split-channels``."""

from __future__ import annotations

from pathlib import Path

from ..errors import ParameterError
from .._validate import cli_type, finite
from ._common import POSITIVE_INT, Outputs, add_input_options, read_input, table_output


def _add_output(p) -> None:
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output file; the format comes from the extension (.parquet, .arrow, .csv, ...)")
    p.add_argument("--to", dest="out_format", default=None, help="output format name")


def register(sub) -> None:
    p = sub.add_parser(
        "filter", help="keep rows matching expressions / trace length",
        description="Keep the localizations that satisfy every --where expression (COLUMN OP "
                    "NUMBER, OP one of < <= > >= == !=, joined with 'and' or '&'; works on any "
                    "numeric column, e.g. 'cfr<0.8', 'efo>1e4', 'photons>500') and whose trace "
                    "(track_id) has at least --min-trace-length localizations. Rows with a "
                    "missing value in a tested column are dropped.")
    add_input_options(p, name="IN")
    _add_output(p)
    p.add_argument("--where", action="append", default=[], metavar="EXPR",
                   help="filter expression (repeatable; all must hold)")
    p.add_argument("--min-trace-length", type=POSITIVE_INT, default=None, metavar="N",
                   help="minimum localizations per trace (needs track_id); applied after --where")
    p.add_argument("--max-trace-length", type=POSITIVE_INT, default=None, metavar="N",
                   help="maximum localizations per trace")
    p.set_defaults(func=_transaction(_filter))

    p = sub.add_parser(
        "average-traces", help="one localization per trace (mean position, standard error)",
        description="Collapse each trace (track_id) into one localization: mean position, its "
                    "standard error as precision_xy/precision_z, n_localizations, mean time, "
                    "time_start_s and time_span_s.")
    add_input_options(p, name="IN")
    _add_output(p)
    p.add_argument("--precision", choices=("sem", "propagated"), default="sem",
                   help="sem: standard error of the mean (default); propagated: inverse-variance "
                        "weighted mean from the input precision columns")
    p.add_argument("--min-trace-length", type=POSITIVE_INT, default=1, metavar="N",
                   help="drop traces with fewer localizations first (default 1)")
    p.set_defaults(func=_transaction(_average))

    p = sub.add_parser(
        "split-channels", help="two-colour MINFLUX: channel from dcr thresholds",
        description="Assign the channel column from detector-channel-ratio (dcr) thresholds: "
                    "channel k for threshold[k-1] <= dcr < threshold[k]; each trace is "
                    "classified by its mean dcr unless --per-localization.")
    add_input_options(p, name="IN")
    _add_output(p)
    p.add_argument("--dcr-threshold", type=cli_type(finite), action="append", required=True, metavar="T",
                   help="dcr threshold (repeatable for more than two colours)")
    p.add_argument("--per-localization", action="store_true",
                   help="classify each localization by its own dcr instead of its trace's mean")
    p.set_defaults(func=_transaction(_split))


def _transaction(command):
    """Run ``command(args)`` with its output checked first and removed on failure."""

    def run(args) -> int:
        with Outputs() as outputs:
            args.out = table_output(outputs, args.out, option="-o", format=args.out_format)
            return command(args)

    run.__name__ = command.__name__
    return run


def _write(args, table) -> Path:
    from ..io import write

    return write(table, Path(args.out), format=args.out_format)


def _filter(args) -> int:
    from ..filtering import filter_where
    from ..minflux import filter_trace_length

    if not args.where and args.min_trace_length is None and args.max_trace_length is None:
        raise ParameterError("nothing to filter: give --where and/or --min-trace-length")
    table = read_input(args)
    n_in = table.num_rows
    out = filter_where(table, args.where) if args.where else table
    if args.min_trace_length is not None or args.max_trace_length is not None:
        out = filter_trace_length(out, min_localizations=args.min_trace_length or 1,
                                  max_localizations=args.max_trace_length)
    path = _write(args, out)
    print(f"kept {out.num_rows} of {n_in} localizations; wrote {path}")
    return 0


def _average(args) -> int:
    from ..minflux import average_traces

    table = read_input(args)
    out = average_traces(table, precision=args.precision, min_localizations=args.min_trace_length)
    path = _write(args, out)
    print(f"averaged {table.num_rows} localizations into {out.num_rows} traces; wrote {path}")
    return 0


def _split(args) -> int:
    import numpy as np

    from ..minflux import split_channels_by_dcr

    table = read_input(args)
    out = split_channels_by_dcr(table, thresholds=args.dcr_threshold,
                                per_trace=not args.per_localization)
    path = _write(args, out)
    ch, n = np.unique(out.column("channel").to_numpy(), return_counts=True)
    counts = ", ".join(f"channel {c}: {k}" for c, k in zip(ch.tolist(), n.tolist()))
    print(f"{counts}; wrote {path}")
    return 0
