"""ThunderSTORM CSV: reader, and the CSV writer (ThunderSTORM-compatible headers).

ThunderSTORM (Ovesný et al., Bioinformatics 30, 2389, 2014) exports one comma-separated
table whose header names carry the unit in brackets, quoted or not::

    "id","frame","x [nm]","y [nm]","z [nm]","sigma1 [nm]","sigma2 [nm]","intensity [photon]",
    "offset [photon]","bkgstd [photon]","uncertainty_xy [nm]","uncertainty_z [nm]"
    1.0,1.0,5321.2,1204.9,-120.5,150.2,170.8,2200.1,12.3,3.1,9.2,25.4

Canonical columns: ``x [nm|um|px]`` -> x, ``y`` -> y, ``z`` -> z, ``frame`` -> frame,
``intensity [photon]`` -> photons, ``offset [photon]`` -> background,
``uncertainty_xy [nm]`` (or 2D ``uncertainty [nm]``) -> precision_xy,
``uncertainty_z [nm]`` -> precision_z (plus ``time [s]``, ``channel``, ``track_id``,
``cluster_id``, ``spine_id`` written by smlmspine). Every other column is kept with its
unit. Pixel headers (``x [px]``) need ``pixel_size_nm``: ThunderSTORM does not store it.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "locs.csv"
>>> _ = p.write_text('"frame","x [px]","y [px]","intensity [photon]"\\n1.0,10.5,20.0,900\\n')
>>> t = read_thunderstorm(p, pixel_size_nm=100.0)
>>> t.column("x").to_pylist(), t.column("frame").to_pylist()
([1050.0], [1])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError
from ..schema import COLUMNS
from ._registry import register_reader, register_writer
from ._text import (LENGTH_UNITS_NM, PIXEL_UNITS, choose_delimiter, dedupe_names, header_roles,
                    read_header, read_text_table, sniff_lines, split_unit)

__all__ = ["read_thunderstorm", "write_csv", "csv_header_names", "THUNDERSTORM_CANDIDATES", "CSV_HEADERS"]

#: Canonical column -> ThunderSTORM header base names, in priority order.
THUNDERSTORM_CANDIDATES: dict[str, tuple[str, ...]] = {
    "x": ("x",), "y": ("y",), "z": ("z",), "frame": ("frame",), "time_s": ("time",),
    "photons": ("intensity",), "background": ("offset",),
    "precision_xy": ("uncertainty_xy", "uncertainty"), "precision_z": ("uncertainty_z",),
    "channel": ("channel",), "track_id": ("track_id",), "cluster_id": ("cluster_id",),
    "spine_id": ("spine_id",),
}

#: Header the CSV writer gives each canonical column (the first candidate above, with unit).
CSV_HEADERS: dict[str, str] = {
    "x": "x [nm]", "y": "y [nm]", "z": "z [nm]", "frame": "frame", "time_s": "time [s]",
    "photons": "intensity [photon]", "background": "offset [photon]",
    "precision_xy": "uncertainty_xy [nm]", "precision_z": "uncertainty_z [nm]",
    "channel": "channel", "track_id": "track_id", "cluster_id": "cluster_id",
    "spine_id": "spine_id",
}


def _is_coordinate_header(names: list[str]) -> bool:
    found = set()
    for n in names:
        if "[" not in n:  # ThunderSTORM puts units in brackets (ONI uses parentheses)
            continue
        base, unit = split_unit(n)
        if base.lower() in ("x", "y") and unit is not None and (
                unit.lower() in LENGTH_UNITS_NM or unit.lower() in PIXEL_UNITS):
            found.add(base.lower())
    return found == {"x", "y"}


def _sniff(path: Path, head: bytes) -> bool:
    lines = sniff_lines(head)
    if not lines:
        return False
    _, names = choose_delimiter(lines, ",")
    return len(names) >= 2 and _is_coordinate_header(names)


@register_reader("thunderstorm", extensions=(".csv",), sniff=_sniff,
                 description="ThunderSTORM CSV (2D/3D, nm/um/px headers)", priority=45,
                 options=("mapping",))
def read_thunderstorm(path: str | Path, *, pixel_size_nm: float | None = None,
                      mapping: dict[str, str] | None = None) -> pa.Table:
    """Read a ThunderSTORM CSV file into the canonical table.

    Parameters
    ----------
    path : str or Path
        Comma-separated file with a ThunderSTORM header (``"x [nm]"``, ...).
    pixel_size_nm : float, optional
        Pixel size in nm; required when the coordinates are in pixels (``x [px]``).
    mapping : dict, optional
        ``{canonical: header}`` overriding the automatic column assignment.

    Returns
    -------
    pyarrow.Table
        Canonical table, coordinates in nm; other columns kept with their units.

    Raises
    ------
    FormatError
        Empty/binary file, wrong delimiter, missing ``x``/``y`` column, truncated rows,
        non-numeric or non-finite coordinates, pixel units without ``pixel_size_nm``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "locs.csv"
    ...     _ = p.write_text('"id","frame","x [px]","y [px]","intensity [photon]"\\n'
    ...                      '1,1,10.5,20.0,1500\\n2,1,11.0,21.5,900\\n')
    ...     t = read_thunderstorm(p, pixel_size_nm=100.0)
    >>> t.column("x").to_pylist(), t.column("photons").to_pylist()
    ([1050.0, 1100.0], [1500.0, 900.0])
    """
    path = Path(path)
    lines = read_header(path, n_lines=6, what="a ThunderSTORM CSV file")
    delimiter, names = choose_delimiter(lines, ",")
    names = dedupe_names(names)
    if len(names) < 2:
        hint = " (separated by spaces?)" if " " in lines[0] else ""
        raise FormatError(f"the header does not split into fields on ',', ';' or tab{hint}; "
                          "ThunderSTORM CSV has a comma-separated header with 'x [nm]', "
                          "'y [nm]', ...", path=path, line=1)
    roles, extra_units = header_roles(names, THUNDERSTORM_CANDIDATES, mapping=mapping, path=path)
    targets = {r.target for r in roles}
    for need in ("x", "y"):
        if need not in targets:
            raise FormatError(f"missing coordinate column '{need} [nm]' (or [px], [um]); "
                              f"found {names}", path=path, line=1)
    return read_text_table(path, fmt="thunderstorm", names=names, delimiter=delimiter,
                           skip_lines=1, roles=roles, pixel_size_nm=pixel_size_nm,
                           extra_units=extra_units)


def csv_header_names(table: pa.Table) -> list[str]:
    """Header names :func:`write_csv` uses for ``table``'s columns.

    Parameters
    ----------
    table : pyarrow.Table
        The table to be written.

    Returns
    -------
    list of str
        One header per column, in column order: ThunderSTORM's name for canonical
        columns (:data:`CSV_HEADERS`), ``name [unit]`` (or ``name``) for the others.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [1.0], "y": [2.0], "frame": [1], "snr": [3.0]})
    >>> csv_header_names(t)
    ['x [nm]', 'y [nm]', 'frame', 'snr']
    """
    out = []
    for f in table.schema:
        if f.name in COLUMNS:
            out.append(CSV_HEADERS[f.name])
            continue
        unit = ((f.metadata or {}).get(b"unit") or b"").decode() or None
        out.append(f"{f.name} [{unit}]" if unit else f.name)
    return out


@register_writer("csv", extensions=(".csv",),
                 description="CSV with ThunderSTORM headers (x [nm], frame, intensity [photon], ...)")
def write_csv(table: pa.Table, path: Path, *, final_path: Path | None = None) -> None:
    """Write a table as CSV with ThunderSTORM-compatible, quoted headers.

    Canonical columns get ThunderSTORM's names (:data:`CSV_HEADERS`); other columns
    are written as ``name [unit]``. Floats are written in their shortest round-trip
    form, so :func:`read_thunderstorm` reads the file back exactly.

    Parameters
    ----------
    table : pyarrow.Table
        The table to write.
    path : pathlib.Path
        Where to write (the registry's temporary file; use :func:`smlmspine.io.write`).
    final_path : pathlib.Path, optional
        The name the file will have, for messages.

    Raises
    ------
    FormatError
        A column holds nested data (lists, structs) that CSV cannot represent. (A
        negative frame is refused by :func:`smlmspine.io.write` for every format.)
    """
    import pyarrow.csv as pcsv

    where = final_path or path
    headers = csv_header_names(table)
    if len(set(headers)) != len(headers):
        dup = sorted({h for h in headers if headers.count(h) > 1})
        raise FormatError(f"two columns would get the same CSV header {dup}", path=where)
    arrays, needs_quotes = [], False
    for f, col in zip(table.schema, table.columns):
        t = f.type
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = t.value_type
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            raise FormatError(f"column {f.name!r} of type {t} cannot be written to CSV; "
                              "write Parquet instead", path=where, column=f.name)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            needs_quotes = needs_quotes or _has_special(col)
        elif pa.types.is_floating(t) and f.name not in COLUMNS:
            col = _keep_float_look(col)
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
    # Quoted header as ThunderSTORM writes it; values unquoted unless a text column holds
    # a delimiter, quote or line break (then pyarrow quotes every text value).
    header = ",".join('"' + h.replace('"', '""') + '"' for h in headers) + "\n"
    with open(path, "wb") as fh:
        fh.write(header.encode("utf-8"))
        pcsv.write_csv(out, fh, write_options=pcsv.WriteOptions(
            include_header=False, batch_size=1 << 16,
            quoting_style="needed" if needs_quotes else "none"))


def _has_special(col) -> bool:
    import pyarrow.compute as pc

    if len(col) == 0:
        return False
    hit = pc.any(pc.match_substring_regex(col, r'[,"\r\n]'))
    return bool(hit.as_py())


def _keep_float_look(col):
    """Write integral floats as ``1.0`` (not ``1``) so they read back as floats
    (as text, written unquoted unless the file needs quoting).

    Only a column whose finite values are all integers below 2**53 is rewritten (e.g.
    ThunderSTORM's ``id``); any other float column goes to the CSV writer unchanged.
    """
    import pyarrow.compute as pc

    if len(col) == 0:
        return col
    finite = pc.is_finite(col)
    if col.null_count or not pc.all(finite).as_py():
        return col
    if not pc.all(pc.equal(pc.floor(col), col)).as_py():
        return col
    if pc.max(pc.abs(col)).as_py() >= 2.0 ** 53:
        return col
    text = pc.cast(pc.cast(col, pa.int64()), pa.string())
    values = col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array) else col.to_numpy()
    negative_zero = np.signbit(values) & (values == 0)
    if negative_zero.any():  # the int64 detour dropped the sign of -0.0
        text = pc.if_else(pa.array(negative_zero), pa.array(["-0"] * len(values)), text)
    return pc.binary_join_element_wise(text, pa.scalar(".0"), "")
