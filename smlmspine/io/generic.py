"""Generic delimited text (CSV/TSV/semicolon) with a user column mapping.

For any table of localizations with one header line: the delimiter is detected among
``,``, ``;`` and tab (or given with ``delimiter=``), and the columns are assigned with
``mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"}`` (canonical name -> header name;
CLI ``--map x=X_pos,y=Y_pos,frame=t``). For the columns the mapping does not name (all
of them without a mapping), headers named like the canonical columns (``x``, ``y``,
``z``, ``frame``, ``photons``, ...; case-insensitive, with an optional
``[unit]``/``(unit)``) are used; a coordinate or precision header may also carry its
unit as a suffix (``x_nm``, ``xnm``, ``z_um``, ``precision_xy_nm``:
:data:`SUFFIX_UNIT_COLUMNS`), as tables re-saved by pandas, R or SMAP often do.

Units: a length column takes the unit its header states (``X_pos [um]``, ``x_nm``);
otherwise ``coordinate_unit=`` (``"nm"``, ``"um"``, or ``"px"`` with ``pixel_size_nm``)
is required: units are never guessed. Every unmapped column is kept.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "locs.tsv"
>>> _ = p.write_text("X_pos\\tY_pos\\tt\\n1.5\\t2.5\\t7\\n")
>>> t = read_generic(p, mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"}, coordinate_unit="um")
>>> t.column("x").to_pylist(), t.column("frame").to_pylist()
([1500.0], [7])
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from ..errors import FormatError, ParameterError
from ..schema import COLUMNS
from ._registry import register_reader
from ._text import (LENGTH_UNITS_NM, PIXEL_UNITS, dedupe_names, head_text, header_fields,
                    header_roles, normalize_unit, read_header, read_text_table, split_fields)

__all__ = ["read_generic", "sniff_delimiter", "GENERIC_CANDIDATES", "SUFFIX_UNIT_COLUMNS"]

#: Canonical column -> header names recognised without a mapping (case-insensitive).
GENERIC_CANDIDATES: dict[str, tuple[str, ...]] = {
    "x": ("x", "position_x"), "y": ("y", "position_y"), "z": ("z", "position_z"),
    "frame": ("frame",), "time_s": ("time_s",), "photons": ("photons",),
    "background": ("background",), "precision_xy": ("precision_xy",),
    "precision_z": ("precision_z",), "channel": ("channel",), "track_id": ("track_id",),
    "cluster_id": ("cluster_id",), "spine_id": ("spine_id",),
}
#: Canonical length columns whose header may state its unit as a suffix rather than in
#: brackets: ``x_nm``, ``X_nm``, ``xnm`` (SMAP), ``z_um``, ``x px``, ``precision_xy_nm``.
#: Only these names and only length or pixel units: ``sigma_nm`` or ``time_ms`` stay
#: columns of their own name.
SUFFIX_UNIT_COLUMNS = ("x", "y", "z", "position_x", "position_y", "position_z",
                       "precision_xy", "precision_z")
_SUFFIX_UNIT_RE = re.compile(
    r"^(" + "|".join(SUFFIX_UNIT_COLUMNS) + r")[_ ]?("
    + "|".join(sorted((re.escape(u) for u in (set(LENGTH_UNITS_NM) | PIXEL_UNITS) - {"m"}),
                      key=len, reverse=True)) + r")$", re.IGNORECASE)


def suffix_units(names) -> tuple[dict[str, str], dict[str, str]]:
    """Header names that state a unit as a suffix: ``({name: unit}, {name: base})``.

    Parameters
    ----------
    names : sequence of str
        Header names.

    Returns
    -------
    units : dict
        Header name -> the unit of its suffix.
    bases : dict
        Header name -> the canonical column it names.

    Examples
    --------
    >>> suffix_units(["x_nm", "Y_NM", "znm", "z [nm]", "sigma_nm", "x_m", "frame"])
    ({'x_nm': 'nm', 'Y_NM': 'NM', 'znm': 'nm'}, {'x_nm': 'x', 'Y_NM': 'y', 'znm': 'z'})
    """
    units, bases = {}, {}
    for n in names:
        m = _SUFFIX_UNIT_RE.match(n.strip())
        if m:
            units[n], bases[n] = m.group(2), m.group(1).lower()
    return units, bases


#: Delimiters the generic sniffer tries, in this order.
_SNIFF_DELIMITERS = ("\t", ";", ",")
_DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "\\t": "\t", "comma": ",",
               "semicolon": ";"}


def sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter among ``,``, ``;``, tab that splits ``lines`` into the same number
    (>= 2) of fields, preferring the one giving most fields; ``None`` if none does.

    ``lines[0]`` is the header; one re-saved as a single quoted field is split again
    (see :func:`smlmspine.io._text.header_fields`).

    Parameters
    ----------
    lines : list of str
        The header line and a few data lines (blank lines are ignored).

    Returns
    -------
    str or None
        ``","``, ``";"`` or ``"\t"``, or ``None`` when no delimiter splits every line
        into the same number of at least two fields.

    Examples
    --------
    >>> sniff_delimiter(["a;b;c", "1;2,5;3"])
    ';'
    """
    best, best_n = None, 1
    for d in _SNIFF_DELIMITERS:
        counts = {len(header_fields(line, d) if i == 0 else split_fields(line, d))
                  for i, line in enumerate(lines) if line.strip()}
        if len(counts) == 1:
            n = counts.pop()
            if n > best_n:
                best, best_n = d, n
    return best


def _specific_format(path: Path, head: bytes) -> bool:
    """Whether a dedicated text reader claims the content (they win over this one,
    whatever the extension)."""
    from . import nstorm, oni, rapidstorm, thunderstorm, zeiss

    return any(m._sniff(path, head) for m in (rapidstorm, thunderstorm, zeiss, oni, nstorm))


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    if not text or _specific_format(path, head):
        return False
    if text.lstrip()[:1] in ("{", "[", "<"):  # JSON / XML, not a delimited table
        return False
    lines = text.splitlines()
    if len(text) == len(head) and not text.endswith("\n") and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the head limit
    lines = [ln for ln in lines[:20] if ln.strip()]
    return len(lines) >= 1 and (sniff_delimiter(lines) is not None
                                or _table_with_bad_rows(lines))


#: A delimited table with a bad row among its first lines (a short or long row: a
#: truncated or hand-edited file) is still claimed when its header splits into >= 2
#: fields and at least this share (and at least 2) of the data rows split into as many:
#: the reader then names the bad row and its line, where "unknown format" said nothing.
SNIFF_ROW_SHARE = 0.75


def _table_with_bad_rows(lines: list[str]) -> bool:
    rows = lines[1:]
    for d in _SNIFF_DELIMITERS:
        n = len(header_fields(lines[0], d))
        if n < 2:
            continue
        agree = sum(len(split_fields(r, d)) == n for r in rows)
        if agree >= 2 and agree >= SNIFF_ROW_SHARE * len(rows):
            return True
    return False


@register_reader("csv", extensions=(".csv", ".tsv", ".txt", ".tab"), sniff=_sniff,
                 description="generic CSV/TSV with a column mapping (mapping=, coordinate_unit=)",
                 priority=900, options=("mapping", "coordinate_unit", "delimiter"))
def read_generic(path: str | Path, *, pixel_size_nm: float | None = None,
                 mapping: dict[str, str] | None = None, coordinate_unit: str | None = None,
                 delimiter: str | None = None) -> pa.Table:
    """Read a delimited text file with a user column mapping.

    Parameters
    ----------
    path : str or Path
        Text file with one header line.
    pixel_size_nm : float, optional
        Needed when ``coordinate_unit`` (or a header unit) is pixels.
    mapping : dict, optional
        ``{canonical: header name}``; keys from :data:`smlmspine.schema.COLUMNS`.
    coordinate_unit : str, optional
        Unit of the length columns (x, y, z, precisions) whose header states none:
        ``"nm"``, ``"um"``, ``"mm"`` or ``"px"``.
    delimiter : str, optional
        ``","``, ``";"`` or ``"\\t"``/``"tab"``; detected when omitted.

    Returns
    -------
    pyarrow.Table
        Canonical table, coordinates in nm.

    Raises
    ------
    FormatError
        No consistent delimiter, unknown mapped column, missing coordinate mapping or
        unit, and the bad-input cases of the other text readers.
    ParameterError
        A mapping key that is not a canonical column, or an unknown unit/delimiter.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "custom.tsv"
    ...     _ = p.write_text("X_pos\\tY_pos\\tt\\n1.5\\t2.0\\t7\\n")
    ...     t = read_generic(p, mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"},
    ...                      coordinate_unit="um")
    >>> t.column("x").to_pylist(), t.column("frame").to_pylist()
    ([1500.0], [7])
    """
    path = Path(path)
    if coordinate_unit is not None:
        u = normalize_unit(coordinate_unit)
        if u not in LENGTH_UNITS_NM and u not in PIXEL_UNITS:
            raise ParameterError(f"coordinate_unit must be a length unit (nm, um, mm, px), "
                                 f"got {coordinate_unit!r}")
    lines = read_header(path, n_lines=6, what="a delimited text file")
    if delimiter is None:
        delim = sniff_delimiter(lines[:5]) or sniff_delimiter(lines[:1])
        if delim is None:
            raise FormatError("cannot tell the delimiter: the header and the first rows do "
                              "not split into the same number of fields on ',', ';' or tab; "
                              "pass delimiter=", path=path, line=1)
    else:
        if delimiter not in _DELIMITERS:
            raise ParameterError(f"delimiter must be ',', ';' or tab, got {delimiter!r}")
        delim = _DELIMITERS[delimiter]
    names = dedupe_names(header_fields(lines[0], delim))
    if len(names) < 2:
        raise FormatError(f"the header splits into one field on {delim!r}; wrong delimiter?",
                          path=path, line=1)
    # "x_nm", "xnm": the unit as a suffix (only canonical length columns: SUFFIX_UNIT_COLUMNS)
    s_units, s_bases = suffix_units(names)
    # (with a mapping, the columns it does not name are still recognised by their
    # canonical names: mapping x and y alone kept "frame" and "spine_id" only as
    # "frame_source" and "spine_id_source", and `--spine-labels spine_id` found no column)
    candidates = {k: v + tuple(n.lower() for n in names if s_bases.get(n) in v)
                  for k, v in GENERIC_CANDIDATES.items()}
    roles, extra_units = header_roles(names, candidates, mapping=mapping, path=path,
                                      fixed_units=s_units)
    targets = {r.target for r in roles}
    missing = [c for c in ("x", "y") if c not in targets]
    if missing:
        raise FormatError(f"no column for {missing}; the header has {names}. Pass "
                          "mapping={'x': ..., 'y': ...} (CLI: --map x=COL,y=COL)", path=path,
                          line=1)
    return read_text_table(path, fmt="csv", names=names, delimiter=delim, skip_lines=1,
                           roles=roles, pixel_size_nm=pixel_size_nm, extra_units=extra_units,
                           default_length_unit=coordinate_unit,
                           extra_metadata={"column_mapping": {r.target: r.source for r in roles
                                                              if r.target in COLUMNS}})
