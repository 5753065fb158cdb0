"""Summaries of localization tables (what ``smlmspine info`` prints)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..schema import COORDINATES, metadata, ndim, unit_of

__all__ = ["summarize"]


def summarize(table: pa.Table, *, file_format: str | None = None) -> dict:
    """Format, size, dimensionality, columns with units, frame/time range and bounds.

    Parameters
    ----------
    table : pyarrow.Table
        A canonical localization table.
    file_format : str, optional
        The reader that read the file (``smlmspine info`` passes it). When given it is
        the ``format`` reported; a different format recorded in the table (a Parquet file
        converted from ThunderSTORM records ``thunderstorm``) goes to ``converted_from``.

    Returns
    -------
    dict
        Keys ``format``, ``source``, ``converted_from`` (``{format, source}`` or
        ``None``), ``n_localizations``, ``ndim``, ``columns`` (list of
        ``{name, type, unit, original_name}``), ``frame_range``, ``time_range_s``,
        ``bounds_nm`` (axis -> [min, max]), ``pixel_size_nm``, ``history``.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> s = summarize(make_table({"x": [0.0, 10.0], "y": [5.0, 6.0], "frame": [3, 7]}))
    >>> s["n_localizations"], s["ndim"], s["frame_range"], s["bounds_nm"]["x"]
    (2, 2, [3, 7], [0.0, 10.0])
    >>> t = make_table({"x": [0.0], "y": [0.0]}, format="thunderstorm", source="a.csv")
    >>> summarize(t, file_format="parquet")["converted_from"]
    {'format': 'thunderstorm', 'source': 'a.csv'}
    """
    meta = metadata(table)
    cols = []
    for f in table.schema:
        m = f.metadata or {}
        cols.append({"name": f.name, "type": str(f.type), "unit": unit_of(table, f.name),
                     "original_name": m.get(b"original_name", b"").decode() or None})

    def _range(name):
        if name not in table.column_names or table.num_rows == 0:
            return None
        mm = pc.min_max(table.column(name))
        return [mm["min"].as_py(), mm["max"].as_py()]

    recorded = meta.get("format")
    converted_from = None
    if file_format is not None and recorded is not None and recorded != file_format:
        converted_from = {"format": recorded, "source": meta.get("source")}
    return {
        "format": file_format if file_format is not None else recorded,
        "source": meta.get("source"),
        "converted_from": converted_from,
        "n_localizations": table.num_rows,
        "ndim": ndim(table),
        "columns": cols,
        "frame_range": _range("frame"),
        "time_range_s": _range("time_s"),
        "bounds_nm": {a: _range(a) for a in COORDINATES if a in table.column_names},
        "pixel_size_nm": meta.get("pixel_size_nm"),
        "history": meta.get("history", []),
    }
