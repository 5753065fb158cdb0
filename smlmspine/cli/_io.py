"""``smlmspine formats``, ``info`` and ``convert``."""

from __future__ import annotations

from pathlib import Path

from ._common import add_input_options, print_json, read_input


def register(sub) -> None:
    p = sub.add_parser("formats", help="list the readers and writers with their extensions",
                       description="List the readers and writers with their extensions.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_formats)

    p = sub.add_parser("info", help="summary of a localization file",
                       description="Format, number of localizations, dimensionality, columns "
                                   "with units, frame/time range and bounds in nm.")
    add_input_options(p, name="FILE")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.set_defaults(func=_info)

    p = sub.add_parser("convert", help="convert a localization file to another format",
                       description="Read IN (any format) and write OUT; the output format "
                                   "comes from OUT's extension (.parquet, .arrow/.feather, "
                                   ".csv, .hdf5) or --to.")
    add_input_options(p, name="IN")
    p.add_argument("out", metavar="OUT", help="output file")
    p.add_argument("--to", dest="out_format", default=None, help="output format name")
    p.set_defaults(func=_convert)


def _formats(args) -> int:
    from ..io import readers, writers

    rs, ws = readers(), writers()
    if args.json:
        print_json({"readers": {n: {"extensions": list(r.extensions), "description": r.description}
                                for n, r in rs.items()},
                    "writers": {n: {"extensions": list(w.extensions), "description": w.description}
                                for n, w in ws.items()}})
        return 0
    print("Readers (format detected from the content; --format NAME overrides):")
    for n, r in rs.items():
        print(f"  {n:<14} {' '.join(r.extensions):<28} {r.description}")
    print("Writers (chosen by the output extension):")
    for n, w in ws.items():
        print(f"  {n:<14} {' '.join(w.extensions):<28} {w.description}")
    return 0


def _info(args) -> int:
    from ..io.summary import summarize

    table = read_input(args, attr="file")
    info = summarize(table)
    if args.json:
        print_json(info)
        return 0
    print(f"file:            {args.file}")
    print(f"format:          {info['format']}")
    print(f"localizations:   {info['n_localizations']}")
    print(f"dimensions:      {info['ndim']}D")
    for key in ("frame_range", "time_range_s"):
        if info.get(key):
            print(f"{key + ':':<17}{info[key][0]} .. {info[key][1]}")
    for axis, (lo, hi) in info["bounds_nm"].items():
        print(f"{axis} bounds (nm):   {lo:.1f} .. {hi:.1f}  (extent {hi - lo:.1f})")
    print("columns:")
    for col in info["columns"]:
        unit = f"[{col['unit']}]" if col["unit"] else ""
        orig = f"  (from {col['original_name']!r})" if col.get("original_name") else ""
        print(f"  {col['name']:<20} {col['type']:<8} {unit:<10}{orig}")
    return 0


def _convert(args) -> int:
    from ..io import write

    table = read_input(args, attr="in")
    out = write(table, Path(args.out), format=args.out_format)
    print(f"wrote {table.num_rows} localizations to {out}")
    return 0
