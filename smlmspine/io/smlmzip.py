"""The ``.smlm`` file format (Ouyang et al., ImJoy / "smlm-file-format", version 0.2).

A ``.smlm`` file is a ZIP archive with a UTF-8 ``manifest.json`` at its root::

    {"format_version": "0.2",
     "formats": {"smlm-table(binary)": {"type": "table", "mode": "binary",
                                        "extension": ".bin", "columns": 4,
                                        "headers": ["frame", "x", "y", "z"],
                                        "dtype": ["uint32", "float32", "float32", "float32"],
                                        "shape": [1, 1, 1, 1],
                                        "units": ["frame", "nm", "nm", "nm"]}},
     "files": [{"name": "table-1.bin", "type": "table", "format": "smlm-table(binary)",
                "channel": "default", "rows": 1000, "offset": {"x": 0, "y": 0}}]}

Each table file holds ``rows`` packed little-endian records, the columns of one row one
after the other in header order (dtypes ``uint8``, ``uint16``, ``uint32``, ``float32``,
``float64``; signed types are read too). ``offset`` is added to the named columns.
Lengths are in nm unless ``units`` says otherwise (``um``, ``mm``, ``angstrom``, ...).

Reading maps header vocabularies of other tools (:data:`HEADER_VOCABULARY`: the
reference ``x``/``intensity``/``z_precision``..., locan ``position_x``/``local_background``/
``uncertainty_z``..., rapidSTORM-era ShareLoc ``x_position``/``Amplitude_0_0``...) to the
canonical columns, and ``time`` (in ``s``/``ms``/``us``) to ``time_s``; other headers are
kept (``x_precision``, ``uncertainty_x``, ``psf_sigma_x``... as lengths in nm). Manifests
written by other tools are accepted with numbers as strings (``"rows": "10"``), dtype
names in any case and extra keys; units come from ``units``, a unit in brackets in the
header (``"x [um]"``) or a locan ``locdata_meta`` block, and contradicting statements are
refused. Several table files are concatenated; if they name different channels a
``channel`` column is added (the names go to the table metadata ``smlm_channels``). Only
scalar columns (shape 1) of binary tables are supported; text tables and image files are
ignored (images) or refused (text tables).

Zip entries are checked before decompressing (declared size against ``rows`` x record
size, against :func:`table_budget_bytes` and against what DEFLATE can produce from the
compressed size) and inflated in chunks into a buffer of exactly the declared size.

Writing produces one binary table with the canonical names (``photons`` as
``intensity``) and the column dtypes kept (int64 columns as ``uint32`` when they fit,
else ``float64``); a ``smlmspine`` entry in the manifest records Arrow types, units,
original names and history so the file reads back unchanged.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError
from ..schema import COLUMNS, make_table, metadata
from ._registry import register_reader, register_writer

__all__ = ["read_smlm", "write_smlm", "LENGTH_UNITS_NM", "HEADER_VOCABULARY",
           "MAX_TABLE_BYTES", "MAX_MANIFEST_BYTES", "check_zip_entry", "read_entry",
           "table_budget_bytes"]

#: Length units accepted in the manifest, as nm per unit.
LENGTH_UNITS_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1e3, "µm": 1e3, "micrometer": 1e3,
                   "micron": 1e3, "mm": 1e6, "m": 1e9, "angstrom": 0.1, "pm": 1e-3}
_TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_DTYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
           "float32", "float64"}
#: Header vocabularies of other tools -> canonical column (smlmspine, the reference
#: implementation and ShareLoc, locan ``LocData`` property keys, rapidSTORM-era ShareLoc
#: tables). Matched case-sensitively after stripping a unit in brackets (``"x [nm]"``).
HEADER_VOCABULARY = {
    "x": "x", "position_x": "x", "x_position": "x",
    "y": "y", "position_y": "y", "y_position": "y",
    "z": "z", "position_z": "z", "z_position": "z",
    "frame": "frame",
    "intensity": "photons", "Amplitude_0_0": "photons",
    "background": "background", "local_background": "background",
    "LocalBackground_0_0": "background",
    "uncertainty": "precision_xy", "uncertainty_xy": "precision_xy",
    "z_precision": "precision_z", "uncertainty_z": "precision_z",
    "channel": "channel",
}
#: Non-canonical headers that are lengths (nm unless the manifest states a unit).
_LENGTH_EXTRA = {"x_precision", "y_precision", "x_original", "y_original", "z_original",
                 "uncertainty_x", "uncertainty_y", "psf_sigma", "psf_sigma_x", "psf_sigma_y",
                 "psf_sigma_z", "psf_width"}
_LENGTH_HEADERS = set(COLUMNS) & {"x", "y", "z", "precision_xy", "precision_z"}
_FORMAT_NAME = "smlm-table(binary)"
#: Largest manifest.json read (bytes).
MAX_MANIFEST_BYTES = 64 << 20
#: Largest decompressed table data accepted (bytes); ``None``: half the physical memory.
MAX_TABLE_BYTES: int | None = None
#: DEFLATE cannot expand more than ~1032x; a larger declared ratio is a forged entry.
_DEFLATE_MAX_RATIO = 1100


def _sniff(path: Path, head: bytes) -> bool:
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "manifest.json" in zf.namelist()
    except Exception as exc:  # noqa: BLE001 - sniffing: not this format...
        if path.name.lower().endswith(".smlm"):  # ...unless it says it is
            raise FormatError(f"has the ZIP signature but cannot be opened (truncated or "
                              f"damaged .smlm file?): {exc}", path=path) from exc
        return False


def table_budget_bytes() -> int | None:
    """Decompressed bytes one ``.smlm`` may hold: :data:`MAX_TABLE_BYTES`, else half the
    physical memory (``None`` when that is unknown).

    Returns
    -------
    int or None
        The budget in bytes.
    """
    if MAX_TABLE_BYTES is not None:
        return int(MAX_TABLE_BYTES)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return None


def check_zip_entry(info: zipfile.ZipInfo, path: Path, *, expected: int | None = None,
                    budget: int | None = None, spent: int = 0) -> None:
    """Check a ZIP entry's declared sizes before decompressing it (zip-bomb guard).

    The declared uncompressed size must equal ``expected`` (when given), stay within
    ``budget`` bytes (minus ``spent`` on earlier entries), and be reachable from the compressed size (DEFLATE: at most
    ~1100x; stored: equal).

    Parameters
    ----------
    info : zipfile.ZipInfo
        The entry, as listed by the archive (its sizes are what the file declares).
    path : pathlib.Path
        The ``.smlm`` file, for messages.
    expected : int, optional
        Size in bytes the manifest implies (rows x record size).
    budget : int, optional
        Most decompressed bytes of the whole file (:func:`table_budget_bytes`).
    spent : int
        Decompressed bytes of earlier entries, counted against ``budget``.

    Raises
    ------
    FormatError
        A declared size that differs from ``expected``, exceeds the budget, or cannot
        come from the compressed size.
    """
    name, size, csize = info.filename, info.file_size, info.compress_size
    if expected is not None and size != expected:
        raise FormatError(f"table file {name!r} declares {size:,} bytes, expected rows x record "
                          f"size = {expected:,} from the manifest (truncated, damaged or "
                          "inconsistent file)", path=path)
    if budget is not None and size > budget - spent:
        left = f"the {max(budget - spent, 0):,} bytes left of " if spent else ""
        raise FormatError(f"entry {name!r} would decompress to {size:,} bytes, more than "
                          f"{left}the {budget:,}-byte budget; refusing (zip bomb, or raise "
                          "smlmspine.io.smlmzip.MAX_TABLE_BYTES)", path=path)
    if info.compress_type == zipfile.ZIP_STORED and size != csize:
        raise FormatError(f"stored entry {name!r} declares {size:,} bytes but holds {csize:,}",
                          path=path)
    if info.compress_type == zipfile.ZIP_DEFLATED and size > _DEFLATE_MAX_RATIO * csize + 1024:
        raise FormatError(f"entry {name!r} declares {size:,} bytes from {csize:,} compressed "
                          "bytes, beyond what DEFLATE can produce (forged sizes: zip bomb?)",
                          path=path)


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytearray:
    """Decompress one (checked) entry streaming into a buffer of its declared size;
    more data than declared is an error, never an unbounded allocation.

    Parameters
    ----------
    zf : zipfile.ZipFile
        The open archive.
    info : zipfile.ZipInfo
        The entry, checked with :func:`check_zip_entry` first.
    path : pathlib.Path
        The ``.smlm`` file, for messages.

    Returns
    -------
    bytearray
        Exactly ``info.file_size`` bytes.

    Raises
    ------
    FormatError
        The entry decompresses to more or fewer bytes than declared, or cannot be
        decompressed.
    """
    out = bytearray(info.file_size)
    view = memoryview(out)
    pos = 0
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(min(8 << 20, max(info.file_size - pos, 0) + 1))
                if not chunk:
                    break
                if pos + len(chunk) > info.file_size:
                    raise FormatError(f"entry {info.filename!r} decompresses to more than its "
                                      f"declared {info.file_size:,} bytes", path=path)
                view[pos:pos + len(chunk)] = chunk
                pos += len(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise FormatError(f"entry {info.filename!r} cannot be decompressed (truncated or "
                          f"damaged file?): {exc}", path=path) from exc
    if pos != info.file_size:
        raise FormatError(f"entry {info.filename!r} holds {pos:,} bytes, declared "
                          f"{info.file_size:,} (truncated?)", path=path)
    return out


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict:
    if "manifest.json" not in zf.namelist():
        raise FormatError("the ZIP archive has no manifest.json (not an .smlm file)", path=path)
    info = zf.getinfo("manifest.json")
    check_zip_entry(info, path, budget=MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(bytes(read_entry(zf, info, path)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"manifest.json is not valid UTF-8 JSON: {exc}", path=path) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list) \
            or not isinstance(manifest.get("formats"), dict):
        raise FormatError("manifest.json lacks the 'formats' object or the 'files' list",
                          path=path)
    return manifest


def _count(value, what: str, path: Path) -> int:
    """A non-negative integer from the manifest; numeric strings (``"10"``, as protobuf
    JSON writes 64-bit integers) are accepted."""
    v = value
    if isinstance(v, str):
        try:
            v = float(v.strip()) if v.strip() else None
        except ValueError:
            v = None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) \
            or v < 0 or v != int(v):
        raise FormatError(f"{what} is {value!r}, expected a non-negative whole number",
                          path=path)
    return int(v)


def _number(value, what: str, path: Path) -> float:
    try:
        v = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise FormatError(f"{what} is {value!r}, expected a number", path=path) from None
    if isinstance(value, bool) or not np.isfinite(v):
        raise FormatError(f"{what} is {value!r}, expected a finite number", path=path)
    return v


def _is_scalar_shape(shp, path: Path, header: str) -> bool:
    """Shape entries ``1``, ``"1"``, ``[1]``, ``["1"]`` (or all-ones lists) mean one value."""
    items = shp if isinstance(shp, list) else [shp]
    try:
        return bool(items) and all(_count(k, f"shape of column {header!r}", path) == 1
                                   for k in items)
    except FormatError:
        return False


def _split_unit(header: str) -> tuple[str, str | None]:
    """``"x [nm]"`` -> ``("x", "nm")``; other headers unchanged."""
    h = header.strip()
    if h.endswith(("]", ")")) and ("[" in h or "(" in h):
        i = max(h.rfind("["), h.rfind("("))
        return h[:i].strip(), h[i + 1:-1].strip() or None
    return h, None


def _unit_text(unit) -> str | None:
    if unit is None:
        return None
    u = str(unit).strip()
    return None if u in ("", "1") else u


def _meta_units(manifest: dict) -> dict[str, str]:
    """Units stated in a locan ``locdata_meta`` block (``localization_properties`` /
    ``properties``: lists of ``{name, unit}``), by property name."""
    meta = manifest.get("locdata_meta")
    out: dict[str, str] = {}
    if not isinstance(meta, dict):
        return out
    for key in ("properties", "localization_properties"):
        props = meta.get(key)
        if not isinstance(props, list):
            continue
        for prop in props:
            if isinstance(prop, dict) and isinstance(prop.get("name"), str):
                unit = _unit_text(prop.get("unit"))
                if unit:
                    out[prop["name"]] = unit
    return out


def _read_table_file(zf, info: dict, fmt: dict, path: Path, own_cols: dict,
                     spent: list[int]) -> tuple[dict, dict]:
    """One table file; ``spent`` holds the bytes already decompressed for this archive
    (the budget covers all table files: a manifest may list the same entry many times)."""
    name = info.get("name")
    headers = fmt.get("headers")
    dtypes = fmt.get("dtype")
    if not isinstance(headers, list) or not isinstance(dtypes, list) or \
            len(headers) != len(dtypes) or not headers:
        raise FormatError(f"format {info.get('format')!r}: 'headers' and 'dtype' must be lists "
                          "of the same length", path=path)
    shapes = fmt.get("shape") or [1] * len(headers)
    units = fmt.get("units") or [None] * len(headers)
    if not isinstance(shapes, list) or not isinstance(units, list) or \
            len(shapes) != len(headers) or len(units) != len(headers):
        raise FormatError(f"format {info.get('format')!r}: 'shape'/'units' do not match the "
                          f"{len(headers)} headers", path=path)
    dtypes = [str(dt).strip().lower() for dt in dtypes]  # locan writes e.g. "Uint32"
    for h, dt, shp in zip(headers, dtypes, shapes):
        if dt not in _DTYPES:
            raise FormatError(f"column {h!r} has dtype {dt!r}; supported: {sorted(_DTYPES)}",
                              path=path, column=str(h))
        if not _is_scalar_shape(shp, path, str(h)):
            raise FormatError(f"column {h!r} has shape {shp!r} (several values per row); only "
                              "scalar columns (shape 1) are supported", path=path, column=str(h))
    # the reference readers drop a leading '_' (unless smlmspine wrote that header itself)
    headers = [str(h)[1:] if str(h).startswith("_") and str(h) not in own_cols else str(h)
               for h in headers]
    record = np.dtype([(f"c{i}", np.dtype(dt).newbyteorder("<")) for i, dt in enumerate(dtypes)])
    if not isinstance(name, str) or name not in zf.namelist():
        raise FormatError(f"manifest names table file {name!r}, which is not in the archive",
                          path=path)
    rows = _count(info.get("rows"), f"file {name!r}: 'rows'", path)
    entry = zf.getinfo(name)
    budget = table_budget_bytes()
    check_zip_entry(entry, path, expected=rows * record.itemsize, budget=budget, spent=spent[0])
    spent[0] += entry.file_size
    raw = read_entry(zf, entry, path)
    data = np.frombuffer(raw, dtype=record, count=rows)
    offsets = info.get("offset") or {}
    if not isinstance(offsets, dict):
        raise FormatError(f"file {name!r}: 'offset' must be an object, found {offsets!r}",
                          path=path)
    cols, col_units = {}, {}
    for i, h in enumerate(headers):
        values = data[f"c{i}"].astype(data[f"c{i}"].dtype.newbyteorder("="))
        if h in offsets:
            off = _number(offsets[h], f"file {name!r}: offset of {h!r}", path)
            if off != 0.0:
                values = values.astype(np.float64) + off
        if h in cols:
            raise FormatError(f"header {h!r} appears twice", path=path, column=h)
        cols[h] = values
        col_units[h] = _unit_text(units[i])
    return cols, col_units


@register_reader("smlm", extensions=(".smlm",), sniff=_sniff,
                 description="SMLM file format: ZIP with manifest.json + binary table",
                 priority=15)
def read_smlm(path: str | Path, *, pixel_size_nm: float | None = None) -> pa.Table:
    """Read an ``.smlm`` file (ZIP + ``manifest.json`` + binary tables) into the canonical table.

    Parameters
    ----------
    path : str or Path
    pixel_size_nm : float, optional
        Not used: ``.smlm`` tables state their length units.

    Returns
    -------
    pyarrow.Table

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from smlmspine.schema import make_table
    >>> from smlmspine.io import write
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.smlm"
    >>> _ = write(make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0, 1]}), p)
    >>> read_smlm(p).column("y").to_pylist()
    [3.0, 4.0]
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"not a readable ZIP archive (.smlm): {exc}", path=path) from exc
    with zf:
        manifest = _manifest(zf, path)
        own = manifest.get("smlmspine") if isinstance(manifest.get("smlmspine"), dict) else {}
        own_cols = own.get("columns") if isinstance(own.get("columns"), dict) else {}
        tables, spent = [], [0]
        for info in manifest["files"]:
            if not isinstance(info, dict) or info.get("type") != "table":
                continue
            fmt = manifest["formats"].get(info.get("format"))
            if not isinstance(fmt, dict):
                raise FormatError(f"file {info.get('name')!r} uses format {info.get('format')!r}, "
                                  "which manifest 'formats' does not define", path=path)
            if fmt.get("mode") != "binary":
                raise FormatError(f"table {info.get('name')!r} is in {fmt.get('mode')!r} mode; "
                                  "only binary tables are supported", path=path)
            try:
                tables.append((info, *_read_table_file(zf, info, fmt, path, own_cols, spent)))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise FormatError(f"table {info.get('name')!r} cannot be decompressed: {exc}",
                                  path=path) from exc
    if not tables:
        raise FormatError("manifest.json lists no table file", path=path)
    heads = [list(cols) for _, cols, _ in tables]
    if any(h != heads[0] for h in heads):
        raise FormatError(f"the table files have different headers: {heads}", path=path)
    merged = {h: np.concatenate([cols[h] for _, cols, _ in tables]) for h in heads[0]}
    col_units = tables[0][2]
    channel_names = [str(info.get("channel", "default")) for info, _, _ in tables]
    extra = {}
    if len(set(channel_names)) > 1 and "channel" not in merged:
        order = list(dict.fromkeys(channel_names))
        merged["channel"] = np.concatenate([np.full(len(next(iter(cols.values()))),
                                                    order.index(c), dtype=np.int64)
                                            for c, (_, cols, _) in zip(channel_names, tables)])
        col_units["channel"] = None
        extra["smlm_channels"] = order

    columns, units, originals, sources = {}, {}, {}, {}
    meta_units = _meta_units(manifest)
    for h, values in merged.items():
        saved = own_cols.get(h, {}) if isinstance(own_cols.get(h), dict) else {}
        base, bracket_unit = _split_unit(h)
        if saved.get("type"):  # a non-canonical column smlmspine wrote: keep its name
            target = h
        else:
            target = HEADER_VOCABULARY.get(base, base)
        unit = _stated_unit(h, base, col_units.get(h), bracket_unit, meta_units, path)
        if base == "time" and unit in _TIME_UNITS_S and not saved.get("type"):
            target, values = "time_s", values.astype(np.float64) * _TIME_UNITS_S[unit]
            unit = "s"
        if target in _LENGTH_HEADERS or base in _LENGTH_EXTRA:
            # the format's rule: lengths are nm unless 'units' says otherwise (writers
            # often leave the generic default '1' or an empty string)
            unit = unit or "nm"
            if unit not in LENGTH_UNITS_NM:
                raise FormatError(f"column {h!r} has unit {unit!r}, not a length unit "
                                  f"({', '.join(LENGTH_UNITS_NM)}); a pixel unit cannot be "
                                  "converted (the .smlm manifest has no pixel size)",
                                  path=path, column=h)
            if LENGTH_UNITS_NM[unit] != 1.0:
                values = values.astype(np.float64) * LENGTH_UNITS_NM[unit]
            unit = "nm"
        if target in columns:
            raise FormatError(f"headers {sources[target]!r} and {h!r} both mean column "
                              f"{target!r}; drop one of them", path=path, column=h)
        arrow_type = saved.get("type")
        if arrow_type and target not in COLUMNS:
            try:
                values = pa.array(values).cast(_parse_type(arrow_type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                pass
        columns[target] = values
        sources[target] = h
        if target not in COLUMNS and (saved.get("unit") or unit):
            units[target] = saved.get("unit") or unit
        originals[target] = saved.get("original_name", h)
    hist = own.get("history") if isinstance(own.get("history"), list) else None
    return make_table(columns, units=units, original_names=originals, source=str(path),
                      format="smlm", pixel_size_nm=own.get("pixel_size_nm"), history=hist,
                      extra_metadata=extra or None)


def _stated_unit(header: str, base: str, format_unit, bracket_unit, meta_units: dict,
                 path: Path) -> str | None:
    """The unit the manifest states for a column: its ``units`` entry, a unit in brackets
    in the header, or the locan ``locdata_meta`` block; contradicting statements are refused."""
    stated = {k: v for k, v in (("units", format_unit), ("header", bracket_unit),
                                ("locdata_meta", meta_units.get(header) or meta_units.get(base)))
              if v}
    distinct = {LENGTH_UNITS_NM.get(v, v) for v in stated.values()}
    if len(distinct) > 1:
        raise FormatError(f"the manifest states different units for column {header!r}: "
                          + ", ".join(f"{v!r} ({k})" for k, v in stated.items()),
                          path=path, column=header)
    return next(iter(stated.values()), None)


def _parse_type(name: str) -> pa.DataType:
    simple = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
              "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(),
              "uint64": pa.uint64(), "float": pa.float32(), "double": pa.float64(),
              "halffloat": pa.float16(), "bool": pa.bool_()}
    if name not in simple:
        raise ValueError(name)
    return simple[name]


def _storage(values: np.ndarray, name: str, path: Path) -> tuple[np.ndarray, str]:
    kind = values.dtype.kind
    if kind == "f":
        if values.dtype == np.float32:
            return values, "float32"
        return values.astype(np.float64, copy=False), "float64"
    if kind == "b":
        return values.astype(np.uint8), "uint8"
    if kind in "iu":
        if values.size == 0 or (values.min() >= 0 and values.max() < 2 ** 32):
            return values.astype(np.uint32), "uint32"
        if np.all(np.abs(values.astype(np.float64)) < 2 ** 53):
            return values.astype(np.float64), "float64"
        raise FormatError(f"column {name!r} holds integers beyond 2^53 that .smlm (float64) "
                          "cannot store exactly", path=path, column=name)
    raise FormatError(f"column {name!r} has type {values.dtype}; .smlm tables store numbers only",
                      path=path, column=name)


@register_writer("smlm", extensions=(".smlm",),
                 description="SMLM file format (ZIP + manifest.json + binary table)")
def write_smlm(table: pa.Table, path: Path, *, final_path: Path | None = None) -> None:
    """Write a table as an ``.smlm`` file: one binary table, canonical headers, units in nm.

    Parameters
    ----------
    table : pyarrow.Table
        Numeric (or boolean) columns only; missing values only in float columns.
    path : pathlib.Path
        Where to write (the registry's temporary file; use :func:`smlmspine.io.write`).
    final_path : pathlib.Path, optional
        The name the file will have, for messages.

    Raises
    ------
    FormatError
        A column is not numeric, or a non-float column has missing values.
    """
    final_path = Path(final_path if final_path is not None else path)
    headers, dtypes, units, arrays, own_cols = [], [], [], [], {}
    for f in table.schema:
        col = table.column(f.name)
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise FormatError(f"column {f.name!r} is {t}; .smlm tables store numbers only",
                              path=final_path, column=f.name)
        if col.null_count and not pa.types.is_floating(t):
            raise FormatError(f"column {f.name!r} has missing values; .smlm cannot store them",
                              path=final_path, column=f.name)
        values = np.asarray(col.to_numpy(zero_copy_only=False))
        stored, dt = _storage(values, f.name, final_path)
        header = {"photons": "intensity"}.get(f.name, f.name)
        if header in headers or (f.name == "intensity" and "photons" in table.column_names):
            raise FormatError(f"columns 'photons' and 'intensity' would both be the .smlm header "
                              "'intensity'; rename one first", path=final_path, column=f.name)
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        headers.append(header)
        dtypes.append(dt)
        units.append(meta.get("unit") or "1")
        arrays.append(stored)
        if f.name in COLUMNS:
            own_cols[header] = {"original_name": meta.get("original_name", f.name)}
        else:
            own_cols[header] = {"type": str(t), **{k: meta[k] for k in ("unit", "original_name")
                                                   if k in meta}}
    record = np.dtype([(f"c{i}", np.dtype(dt).newbyteorder("<")) for i, dt in enumerate(dtypes)])
    meta = metadata(table)
    from .. import __version__

    manifest = {
        "format_version": "0.2",
        "formats": {_FORMAT_NAME: {
            "name": _FORMAT_NAME, "type": "table", "mode": "binary", "extension": ".bin",
            "columns": len(headers), "headers": headers, "dtype": dtypes,
            "shape": [1] * len(headers), "units": units,
            "description": "the default smlm format for localization tables"}},
        "files": [{"name": "table-1.bin", "type": "table", "format": _FORMAT_NAME,
                   "channel": "default", "rows": int(table.num_rows), "offset": {}}],
        "name": final_path.name,
        "description": f"written by smlmspine {__version__}",
        "smlmspine": {"columns": own_cols, "history": meta.get("history") or [],
                      "pixel_size_nm": meta.get("pixel_size_nm"), "source": meta.get("source")},
    }
    # DEFLATE as the specification asks; level 1: localization floats hardly compress
    # (ratio ~0.95 at any level) and level 1 is the fastest
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        # packed records, built and compressed in chunks (bounded extra memory)
        with zf.open("table-1.bin", "w", force_zip64=True) as fh:
            step = max(1, (8 << 20) // max(record.itemsize, 1))
            for start in range(0, table.num_rows, step):
                stop = min(start + step, table.num_rows)
                rec = np.empty(stop - start, dtype=record)
                for i, a in enumerate(arrays):
                    rec[f"c{i}"] = a[start:stop]
                fh.write(rec.tobytes())
