"""``smlmspine formats``, ``info`` and ``convert``."""

from __future__ import annotations

from pathlib import Path

from ._common import POSITIVE, Outputs, add_input_options, print_json, read_input, table_output


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
    p.add_argument("--out-pixel-size-nm", type=POSITIVE, default=None,
                   help="camera pixel size in nm for pixel-unit outputs (Picasso .hdf5); default: "
                        "the pixel size the input was read with, else --pixel-size-nm")
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
    from ..io import detect_format
    from ..io.summary import summarize

    table = read_input(args, attr="file")
    info = summarize(table, file_format=args.in_format or detect_format(args.file))
    if args.json:
        print_json(info)
        return 0
    print(f"file:            {args.file}")
    print(f"format:          {info['format']}")
    if info["converted_from"]:
        origin = info["converted_from"]
        print(f"converted from:  {origin['format']} ({origin['source']})")
    print(f"localizations:   {info['n_localizations']}")
    print(f"dimensions:      {info['ndim']}D")
    for key in ("frame_range", "time_range_s"):
        if info.get(key):
            print(f"{key + ':':<17}{info[key][0]} .. {info[key][1]}")
    for axis, bounds in info["bounds_nm"].items():
        if bounds is None:  # a table without rows has no bounds
            print(f"{axis} bounds (nm):   none (no localizations)")
            continue
        lo, hi = bounds
        print(f"{axis} bounds (nm):   {lo:.1f} .. {hi:.1f}  (extent {hi - lo:.1f})")
    print("columns:")
    for col in info["columns"]:
        unit = f"[{col['unit']}]" if col["unit"] else ""
        orig = f"  (from {col['original_name']!r})" if col.get("original_name") else ""
        print(f"  {col['name']:<20} {col['type']:<8} {unit:<10}{orig}")
    return 0


def _convert(args) -> int:
    with Outputs() as outputs:
        target = table_output(outputs, args.out, option="OUT", format=args.out_format)
        return _convert_to(args, target)


def _convert_to(args, target: Path) -> int:
    from ..io import write, writers
    from ..io._registry import _suffix

    table = read_input(args, attr="in")
    options = {}
    px = args.out_pixel_size_nm
    if px is None and args.pixel_size_nm is not None:
        from ..schema import metadata

        if metadata(table).get("pixel_size_nm") is None:
            px = args.pixel_size_nm
    if px is not None:
        ws = writers()
        name = args.out_format or next((n for n, w in ws.items()
                                        if _suffix(Path(args.out)) in w.extensions), None)
        if name in ws and "pixel_size_nm" in ws[name].options:
            options["pixel_size_nm"] = px
        elif args.out_pixel_size_nm is not None:
            from ..errors import ParameterError

            raise ParameterError(f"--out-pixel-size-nm: the {name or 'chosen'} writer stores nm "
                                 "and takes no pixel size")
    out = write(table, target, format=args.out_format, **options)
    print(f"wrote {table.num_rows} localizations to {out}")
    return 0
