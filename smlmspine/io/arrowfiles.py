"""Parquet and Arrow IPC (Feather v2): lossless storage of the canonical table.

Files written by smlmspine carry the full schema (types, units, history) and are read
back unchanged. Foreign Parquet/Arrow files are accepted when their coordinate columns
``x``/``y`` (and ``z``) state a length unit in the field metadata (``unit``), or when the
unit is given with ``coordinate_unit=``; units are never guessed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import FormatError
from ..schema import META_PREFIX, make_table
from ._registry import register_reader, register_writer

__all__ = ["read_parquet", "read_arrow", "write_parquet", "write_arrow", "LENGTH_UNITS_NM"]

#: Length units accepted in metadata, as nm per unit.
LENGTH_UNITS_NM = {"nm": 1.0, "um": 1e3, "µm": 1e3, "micron": 1e3, "mm": 1e6, "m": 1e9}

_PARQUET_MAGIC = b"PAR1"
_ARROW_MAGIC = b"ARROW1"


def _is_parquet(path: Path, head: bytes) -> bool:
    return head[:4] == _PARQUET_MAGIC


def _is_arrow(path: Path, head: bytes) -> bool:
    # Arrow IPC file format starts with ARROW1; the stream format starts with a
    # continuation marker 0xFFFFFFFF.
    return head[:6] == _ARROW_MAGIC or (head[:4] == b"\xff\xff\xff\xff" and
                                        path.suffix.lower() in (".arrows", ".arrow"))


def _from_foreign(table: pa.Table, path: Path, fmt: str, coordinate_unit: str | None) -> pa.Table:
    meta = table.schema.metadata or {}
    if (META_PREFIX + "schema_version").encode() in meta:
        return table
    names = table.column_names
    missing = [c for c in ("x", "y") if c not in names]
    if missing:
        raise FormatError(f"missing coordinate column(s) {missing}; found {names}. "
                          "Rename the columns to x/y[/z] or convert through CSV with a mapping",
                          path=path)
    columns, units, factor = {}, {}, None
    for name in names:
        f = table.schema.field(name)
        unit = ((f.metadata or {}).get(b"unit") or b"").decode() or None
        values = table.column(name)
        if name in ("x", "y", "z", "precision_xy", "precision_z"):
            unit = coordinate_unit or unit
            if unit is None:
                raise FormatError(f"column {name!r} has no unit in its metadata; pass "
                                  "coordinate_unit='nm' (CLI: convert through --format) "
                                  "when you know it — units are never guessed",
                                  path=path, column=name)
            if unit not in LENGTH_UNITS_NM:
                raise FormatError(f"unit {unit!r} of column {name!r} is not a length unit "
                                  f"({', '.join(LENGTH_UNITS_NM)})", path=path, column=name)
            factor = LENGTH_UNITS_NM[unit]
            values = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64) * factor
        elif unit:
            units[name] = unit
        columns[name] = values
    return make_table(columns, units=units, source=str(path), format=fmt)


def _foreign_checked(table: pa.Table, path: Path, fmt: str, coordinate_unit: str | None) -> pa.Table:
    """:func:`_from_foreign`, with damaged metadata (not UTF-8) or columns as a FormatError."""
    try:
        return _from_foreign(table, path, fmt, coordinate_unit)
    except (UnicodeDecodeError, pa.ArrowException) as exc:
        raise FormatError(f"damaged {fmt} metadata or column: {type(exc).__name__}: {exc}",
                          path=path) from exc


@register_reader("parquet", extensions=(".parquet", ".pq"), sniff=_is_parquet,
                 description="Apache Parquet (lossless; smlmspine's own output)",
                 priority=10, options=("coordinate_unit",))
def read_parquet(path: str | Path, *, pixel_size_nm: float | None = None,
                 coordinate_unit: str | None = None) -> pa.Table:
    """Read a Parquet file into the canonical table.

    Parameters
    ----------
    path : str or pathlib.Path
        The file. A table written by smlmspine is returned as it was written (types,
        units, history); a foreign table must use the canonical column names.
    pixel_size_nm : float, optional
        Accepted for the common reader signature and ignored: the columns are in nm.
    coordinate_unit : str, optional
        Unit of ``x``/``y``/``z`` (``"nm"``, ``"um"``, ...) of a foreign file whose
        field metadata states none; never guessed.

    Returns
    -------
    pyarrow.Table
        The canonical localization table (coordinates in nm).

    Raises
    ------
    FormatError
        The file is not readable as this format, or a foreign table has no stated
        coordinate unit and none is given, or it does not follow the canonical schema.

    Examples
    --------
    A table written by :func:`smlmspine.io.write` comes back with its columns, types,
    units and history (plus the ``io.write`` step).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from smlmspine.io import write
    >>> from smlmspine.schema import history, make_table, with_history
    >>> t = with_history(make_table({"x": [1.0], "y": [2.0]}), "example")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write(t, Path(d) / "t.parquet")
    ...     back = read_parquet(Path(d) / "t.parquet")
    >>> back.equals(t), back.schema.field("x").metadata[b"unit"]
    (True, b'nm')
    >>> [step["step"] for step in history(back)]
    ['example', 'io.write']
    """
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:   # ArrowInvalid, ArrowNotImplementedError, ...
        raise FormatError(f"not a readable Parquet file: {exc}", path=path) from exc
    return _foreign_checked(table, path, "parquet", coordinate_unit)


@register_reader("arrow", extensions=(".arrow", ".feather", ".arrows", ".ipc"), sniff=_is_arrow,
                 description="Arrow IPC / Feather v2 (lossless)",
                 priority=10, options=("coordinate_unit",))
def read_arrow(path: str | Path, *, pixel_size_nm: float | None = None,
               coordinate_unit: str | None = None) -> pa.Table:
    """Read an Arrow IPC (file or stream) / Feather v2 file into the canonical table.

    Parameters
    ----------
    path : str or pathlib.Path
        The file. A table written by smlmspine is returned as it was written (types,
        units, history); a foreign table must use the canonical column names.
    pixel_size_nm : float, optional
        Accepted for the common reader signature and ignored: the columns are in nm.
    coordinate_unit : str, optional
        Unit of ``x``/``y``/``z`` (``"nm"``, ``"um"``, ...) of a foreign file whose
        field metadata states none; never guessed.

    Returns
    -------
    pyarrow.Table
        The canonical localization table (coordinates in nm).

    Raises
    ------
    FormatError
        The file is not readable as this format, or a foreign table has no stated
        coordinate unit and none is given, or it does not follow the canonical schema.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic == _ARROW_MAGIC:
            table = feather.read_table(path, memory_map=False)
        else:
            with open(path, "rb") as fh:
                table = ipc.open_stream(fh).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"not a readable Arrow IPC/Feather file: {exc}", path=path) from exc
    return _foreign_checked(table, path, "arrow", coordinate_unit)


@register_writer("parquet", extensions=(".parquet", ".pq"),
                 description="Apache Parquet, zstd-compressed, all metadata kept")
def write_parquet(table: pa.Table, path: Path, *, final_path: Path | None = None) -> None:
    """Write a table to Parquet (lossless: types, units and history are kept).

    zstd-compressed.

    Parameters
    ----------
    table : pyarrow.Table
        The table to write (any columns; nothing is converted).
    path : pathlib.Path
        Where to write (the registry's temporary file; use :func:`smlmspine.io.write`,
        which renames it to the final name on success).
    final_path : pathlib.Path, optional
        The name the file will have, for messages.
    """
    pq.write_table(table, path, compression="zstd")


@register_writer("arrow", extensions=(".arrow", ".feather", ".ipc"),
                 description="Arrow IPC file / Feather v2, all metadata kept")
def write_arrow(table: pa.Table, path: Path, *, final_path: Path | None = None) -> None:
    """Write a table as an Arrow IPC file (Feather v2), uncompressed for memory mapping.

    Parameters
    ----------
    table : pyarrow.Table
        The table to write (any columns; nothing is converted).
    path : pathlib.Path
        Where to write (the registry's temporary file; use :func:`smlmspine.io.write`,
        which renames it to the final name on success).
    final_path : pathlib.Path, optional
        The name the file will have, for messages.
    """
    feather.write_feather(table, path, compression="uncompressed")


