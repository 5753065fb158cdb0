"""Helpers shared by the CLI command modules: input options, reading, output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._outputs import Outputs
from .._validate import cli_type, integer, non_negative, positive, workers
from ..errors import FormatError, ParameterError

__all__ = ["add_input_options", "read_input", "parse_mapping", "parse_alpha", "print_json",
           "write_results", "RESULT_EXTENSIONS", "Outputs", "table_output", "results_output",
           "POSITIVE", "POSITIVE_INT", "NON_NEGATIVE", "NON_NEGATIVE_INT", "WORKERS"]

#: ``type=`` of options that must be a positive finite number (nm, s, ratios).
POSITIVE = cli_type(positive)
#: ``type=`` of options that must be a finite number >= 0.
NON_NEGATIVE = cli_type(non_negative)
#: ``type=`` of counts that must be >= 1.
POSITIVE_INT = cli_type(integer, minimum=1)
#: ``type=`` of counts that may be 0.
NON_NEGATIVE_INT = cli_type(integer, minimum=0)
#: ``type=`` of ``--workers``: -1 (all cores) or >= 1.
WORKERS = cli_type(workers)
#: Extensions :func:`write_results` knows.
RESULT_EXTENSIONS = (".parquet", ".csv", ".tsv", ".arrow", ".feather")


def add_input_options(parser: argparse.ArgumentParser, *, name: str = "IN") -> None:
    """Add the positional input file and the options every reading command takes."""
    parser.add_argument(name.lower(), metavar=name, help="localization file (any supported format)")
    parser.add_argument("--format", dest="in_format", default=None,
                        help="input format (default: detected from the content; see `smlmspine formats`)")
    parser.add_argument("--pixel-size-nm", type=POSITIVE, default=None,
                        help="pixel size in nm for pixel-unit files that do not store one")
    parser.add_argument("--map", dest="mapping", default=None, metavar="COL=SRC,...",
                        help="column mapping for generic CSV/TSV, e.g. x=X_pos,y=Y_pos,frame=t")
    parser.add_argument("--coordinate-unit", default=None, metavar="UNIT",
                        help="unit of x/y/z in a generic CSV or foreign Parquet/Arrow file whose "
                             "header does not state one (nm, um, ...); never guessed")
    parser.add_argument("--keep-invalid", action="store_true",
                        help="MINFLUX input: keep localizations flagged invalid (vld false)")
    parser.add_argument("--z-scale", type=POSITIVE, default=None, metavar="F",
                        help="MINFLUX input: axial foreshortening factor applied to z (default 0.7)")
    parser.add_argument("--position-unit", choices=("nm", "um", "m"), default=None,
                        help="MINFLUX MATLAB struct export (minflux.pos): unit of pos/rpos when "
                             "the file's meta states none (default nm, as documented); never "
                             "guessed")


def parse_mapping(text: str | None) -> dict[str, str] | None:
    """Parse ``x=X_pos,y=Y_pos`` into ``{"x": "X_pos", "y": "Y_pos"}``.

    Examples
    --------
    >>> parse_mapping("x=X_pos, y=Y_pos")
    {'x': 'X_pos', 'y': 'Y_pos'}
    """
    if not text:
        return None
    out = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ParameterError(f"--map item {item.strip()!r} is not COLUMN=SOURCE (e.g. x=X_pos)")
        key, value = (s.strip() for s in item.split("=", 1))
        if not key or not value:
            raise ParameterError(f"--map item {item.strip()!r} has an empty side")
        out[key] = value
    return out


def read_input(args: argparse.Namespace, *, attr: str = "in"):
    """Read the input file named by ``args.<attr>`` with the common options.

    Reader-specific flags (``--map`` for generic CSV, ``--keep-invalid``/``--z-scale``/
    ``--position-unit`` for MINFLUX) are passed only to a reader that takes them; for any
    other format they are a :class:`ParameterError` rather than silently ignored.
    """
    from ..io import detect_format, read, readers

    path = Path(getattr(args, attr))
    options = {}
    mapping = parse_mapping(getattr(args, "mapping", None))
    if mapping:
        options["mapping"] = mapping
    if getattr(args, "coordinate_unit", None):
        options["coordinate_unit"] = args.coordinate_unit
    if getattr(args, "keep_invalid", False):
        options["keep_invalid"] = True
    if getattr(args, "z_scale", None) is not None:
        options["z_scale"] = args.z_scale
    if getattr(args, "position_unit", None) is not None:
        options["position_unit"] = args.position_unit
    fmt = getattr(args, "in_format", None)
    if options:
        fmt = fmt or detect_format(path)
        reader = readers().get(fmt)
        unknown = [k for k in options if reader is not None and k not in reader.options]
        if unknown:
            flags = ", ".join("--" + {"mapping": "map"}.get(k, k).replace("_", "-") for k in unknown)
            raise ParameterError(f"{flags} does not apply to {path} (format {fmt!r})")
    return read(path, format=fmt, pixel_size_nm=getattr(args, "pixel_size_nm", None), **options)


def parse_alpha(text: str) -> float | str:
    """``--alpha-nm``: a radius in nm or ``auto``.

    Examples
    --------
    >>> parse_alpha("auto"), parse_alpha("80")
    ('auto', 80.0)
    """
    if text == "auto":
        return text
    try:
        return positive(text, "--alpha-nm", unit="nm")
    except ParameterError:
        raise ParameterError(f"--alpha-nm must be a positive number in nm or 'auto', "
                             f"got {text!r}") from None


def table_output(out: Outputs, path, *, option: str, format: str | None = None) -> Path | None:
    """Declare a localization-table output: its extension (or ``format``) must name a
    writer and its folder must be writable; checked before any work."""
    from ..io import writers
    from ..io._registry import _suffix

    if path is None:
        return None
    path = Path(path)
    ws = writers()
    if format is not None:
        if format not in ws:
            raise ParameterError(f"--to {format!r}: no such writer; known: {', '.join(sorted(ws))}")
    elif not any(_suffix(path) in w.extensions for w in ws.values()):
        known = sorted({e for w in ws.values() for e in w.extensions})
        raise FormatError(f"{option}: cannot tell the output format from extension "
                          f"{_suffix(path)!r}; known: {', '.join(known)}", path=path)
    name = format or next(n for n, w in ws.items() if _suffix(path) in w.extensions)
    declared = out.file(path, option=option)
    if name == "picasso":  # its YAML side file is an output too (undone on failure)
        from ..io.picasso import sidecar_path

        out.file(sidecar_path(path), option=f"{option} (Picasso YAML side file)")
    return declared


def results_output(out: Outputs, path, *, option: str, what: str = "table",
                   extensions: tuple[str, ...] = RESULT_EXTENSIONS) -> Path | None:
    """Declare a results-table (or plot) output; its extension must be one of
    ``extensions``; checked before any work."""
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() not in extensions:
        raise FormatError(f"{option}: cannot tell the {what} format from extension "
                          f"{path.suffix.lower()!r}; use one of {', '.join(extensions)}", path=path)
    return out.file(path, option=option)


def print_json(obj) -> None:
    """Print exactly one JSON object on stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def write_results(table, path: Path, *, what: str = "table") -> Path:
    """Write a results table (statistics, features: not a localization table) by its
    extension (.parquet, .csv, .tsv, .arrow, .feather), atomically."""
    import pyarrow.csv as pacsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    from ..errors import FormatError
    from ..io import atomic_output

    ext = path.suffix.lower()
    writers = {".parquet": lambda t, p: pq.write_table(t, p),
               ".csv": lambda t, p: pacsv.write_csv(t, p),
               ".tsv": lambda t, p: pacsv.write_csv(t, p, pacsv.WriteOptions(delimiter="\t")),
               ".arrow": lambda t, p: feather.write_feather(t, p),
               ".feather": lambda t, p: feather.write_feather(t, p)}
    if ext not in writers:
        raise FormatError(f"cannot tell the {what} format from extension {ext!r}; use "
                          f"one of {', '.join(writers)}", path=path)
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise FormatError(f"output folder {str(path.parent)!r} does not exist", path=path)
    with atomic_output(path) as tmp:
        writers[ext](table, tmp)
    return path


def add_envelope_options(p) -> None:
    """Options of the spine envelopes shared by ``mesh`` and ``run``."""
    p.add_argument("--no-neck-surface", action="store_true",
                   help="keep the shell surface of membrane necks (default: refit each neck "
                        "to its localizations as a blurred membrane tube)")
    p.add_argument("--workers", type=WORKERS, default=-1, metavar="N",
                   help="processes for the spine envelopes (default -1: all cores; 1: none); "
                        "the result does not depend on it")
