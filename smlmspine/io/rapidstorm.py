"""rapidSTORM text output: localization files and track (linked emission) files.

rapidSTORM (Wolter et al., Nat. Methods 9, 1040, 2012) writes one XML header line
that declares the columns, then one localization per line, values separated by single
spaces::

    # <localizations insequence="true" repetitions="variable"><field identifier="Position-0-0"
      syntax="floating point with . for decimals and optional scientific e-notation"
      semantic="position in sample space in X" unit="nanometer" min="0 m" max="3.3e-05 m" />
      <field identifier="Position-1-0" ... unit="nanometer" .../><field identifier="ImageNumber-0-0"
      syntax="integer" semantic="frame number" unit="frame" min="0 fr" /><field
      identifier="Amplitude-0-0" ... unit="A/D count" /></localizations>
    5321.2 1204.9 0 2200.1
    ...

(the header is one line in the file). Track files nest a second ``<localizations>``
element (the member localizations) inside the first; each line then holds the track's
own fields, the number ``n`` of member localizations and ``n`` groups of member fields.

Identifiers: ``Position-0-0`` x, ``Position-1-0`` y, ``Position-2-0`` z,
``Position-0-0-uncertainty`` precision_xy, ``Position-2-0-uncertainty`` precision_z,
``ImageNumber-0-0`` frame; ``Amplitude-0-0`` and ``LocalBackground-0-0`` become
``photons``/``background`` only when their unit is photons (rapidSTORM's usual unit is
"A/D count": they are then kept as ``amplitude``/``local_background`` with that unit,
never relabelled as photons). Units come from each field's ``unit`` attribute
(nanometer, micrometer, pixel -> needs ``pixel_size_nm``).

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "locs.txt"
>>> hdr = ('# <localizations insequence="true" repetitions="variable">'
...        '<field identifier="Position-0-0" unit="nanometer" />'
...        '<field identifier="Position-1-0" unit="nanometer" />'
...        '<field identifier="ImageNumber-0-0" unit="frame" /></localizations>')
>>> _ = p.write_text(hdr + "\\n12.5 40 3\\n7 8 4\\n")
>>> t = read_rapidstorm(p)
>>> t.column("x").to_pylist(), t.column("frame").to_pylist()
([12.5, 7.0], [3, 4])
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ..schema import make_table
from ._text import (PHOTON_UNITS, PIXEL_UNITS, Role, _check_complete, dedupe_names, head_text,
                    length_factor_nm, read_header, read_text_table, split_fields)
from ._registry import register_reader

__all__ = ["read_rapidstorm", "parse_rapidstorm_header", "RAPIDSTORM_ROLES"]

#: rapidSTORM identifier -> (canonical or kept name, kind); kind "length" converts to nm,
#: "photon" maps to the canonical name only when the unit is photons.
RAPIDSTORM_ROLES: dict[str, tuple[str, str]] = {
    "Position-0-0": ("x", "length"), "Position-1-0": ("y", "length"),
    "Position-2-0": ("z", "length"),
    "Position-0-0-uncertainty": ("precision_xy", "length"),
    "Position-2-0-uncertainty": ("precision_z", "length"),
    "ImageNumber-0-0": ("frame", "frame"),
    "Amplitude-0-0": ("photons", "photon"), "LocalBackground-0-0": ("background", "photon"),
}
_KEPT_NAMES = {
    "Amplitude-0-0": "amplitude", "LocalBackground-0-0": "local_background",
    "FitResidues-0-0": "fit_residues", "TwoKernelImprovement-0-0": "two_kernel_improvement",
    "Position-1-0-uncertainty": "uncertainty_y", "PSFWidth-0-0": "psf_width_x",
    "PSFWidth-1-0": "psf_width_y", "Fluorophore-0-0": "fluorophore",
}
_UNIT_ALIASES = {"dimensionless": "1", "frame": "frame", "nanometer": "nm", "micrometer": "um",
                 "pixel": "px"}


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return bool(text) and re.match(r"\s*#\s*<localizations[\s>]", text) is not None


def parse_rapidstorm_header(line: str, *, path=None) -> tuple[list[dict], list[dict]]:
    """Fields of a rapidSTORM header line: ``(fields, member_fields)``.

    Each field is a dict of its XML attributes (``identifier``, ``unit``, ...);
    ``member_fields`` is empty for a localization file and lists the fields of the
    member localizations for a track file.

    Parameters
    ----------
    line : str
        The first line of the file (``# <localizations>...</localizations>``).
    path : str or pathlib.Path, optional
        The file, for messages.

    Returns
    -------
    fields : list of dict
        Attributes of each top-level ``<field>``, in column order.
    member_fields : list of dict
        Attributes of each ``<field>`` of the nested ``<localizations>`` element (track
        files); empty otherwise.

    Raises
    ------
    FormatError
        The XML does not parse, holds a DOCTYPE/ENTITY declaration, is not a
        ``<localizations>`` element, or declares no (or an unnamed) field.

    Examples
    --------
    >>> f, m = parse_rapidstorm_header('# <localizations><field identifier="Position-0-0" '
    ...                                'unit="nanometer"/></localizations>')
    >>> f[0]["identifier"], f[0]["unit"], m
    ('Position-0-0', 'nanometer', [])
    """
    text = line.strip().lstrip("#").strip()
    if "<!" in text:
        raise FormatError("the XML header holds a DOCTYPE/ENTITY declaration; not a "
                          "rapidSTORM header", path=path, line=1)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise FormatError(f"the rapidSTORM XML header cannot be parsed: {exc}", path=path,
                          line=1) from None
    if root.tag != "localizations":
        raise FormatError(f"expected a <localizations> header element, found <{root.tag}>",
                          path=path, line=1)
    fields = [dict(f.attrib) for f in root.findall("field")]
    nested = root.findall("localizations")
    members = [dict(f.attrib) for f in nested[0].findall("field")] if nested else []
    for f in fields + members:
        if not f.get("identifier"):
            raise FormatError("a <field> of the header has no identifier", path=path, line=1)
    if not fields and not members:
        raise FormatError("the header declares no <field>", path=path, line=1)
    return fields, members


def _unit(field: dict) -> str | None:
    u = field.get("unit")
    if u is None:
        return None
    return _UNIT_ALIASES.get(u.strip().lower(), u.strip())


def _roles(fields: list[dict], names: list[str]) -> tuple[list[Role], dict[str, str]]:
    roles, extra_units, used = [], {}, set()
    for f, name in zip(fields, names):
        ident, unit = f["identifier"], _unit(f)
        target, kind = RAPIDSTORM_ROLES.get(ident, (None, None))
        if target is not None and target not in used:
            if kind == "photon" and (unit or "").lower() not in PHOTON_UNITS:
                target = None
            if kind == "frame" and unit not in (None, "frame"):
                target = None
        if target is not None and target not in used:
            roles.append(Role(name, target, unit))
            used.add(target)
            continue
        kept = _KEPT_NAMES.get(ident)
        if kept is not None:
            roles.append(Role(name, kept, unit))
        elif unit:
            extra_units[name] = unit
    return roles, extra_units


@register_reader("rapidstorm", extensions=(".txt",), sniff=_sniff,
                 description="rapidSTORM text (XML header line), localization and track files",
                 priority=40, options=("tracks",))
def read_rapidstorm(path: str | Path, *, pixel_size_nm: float | None = None,
                    tracks: str = "localizations") -> pa.Table:
    """Read a rapidSTORM localization or track file into the canonical table.

    Parameters
    ----------
    path : str or Path
        rapidSTORM text file (first line ``# <localizations ...>``).
    pixel_size_nm : float, optional
        Needed only when the header declares positions in pixels.
    tracks : {"localizations", "centers"}
        For track files: one row per member localization with ``track_id`` (default),
        or one row per track (the track's own fields, ``n_localizations`` and
        ``track_id``). Ignored for plain localization files.

    Returns
    -------
    pyarrow.Table
        Canonical table, coordinates in nm.
    """
    path = Path(path)
    if tracks not in ("localizations", "centers"):
        raise ParameterError(f"tracks must be 'localizations' or 'centers', got {tracks!r}")
    lines = read_header(path, n_lines=2, what="a rapidSTORM file")
    header = lines[0]
    if not re.match(r"\s*#\s*<localizations[\s>]", header):
        raise FormatError("the first line is not a rapidSTORM header '# <localizations ...>'; "
                          f"found {header[:60]!r}", path=path, line=1)
    fields, members = parse_rapidstorm_header(header, path=path)
    if members:
        return _read_tracks(path, fields, members, pixel_size_nm=pixel_size_nm,
                            centers=(tracks == "centers"))
    names = dedupe_names([f["identifier"] for f in fields])
    roles, extra_units = _roles(fields, names)
    targets = {r.target for r in roles}
    for need, ident in (("x", "Position-0-0"), ("y", "Position-1-0")):
        if need not in targets:
            raise FormatError(f"the header declares no {ident} field (the {need} coordinate); "
                              f"found {names}", path=path, line=1)
    delimiter = _data_delimiter(lines[1] if len(lines) > 1 else "", len(names))
    ignore = []
    if len(lines) > 1 and lines[1].endswith(delimiter):  # values written with a trailing space
        ignore = ["__trailing_space__"]
    return read_text_table(path, fmt="rapidstorm", names=names + ignore, delimiter=delimiter,
                           skip_lines=1, roles=roles, pixel_size_nm=pixel_size_nm,
                           extra_units=extra_units, float_columns=names,
                           ignore_columns=ignore)


def _data_delimiter(line: str, n_fields: int) -> str:
    """rapidSTORM separates values by single spaces; a file re-saved by a spreadsheet
    may use tabs, ``,`` or ``;``. The separator that splits the first data row into the
    declared number of fields wins (a trailing separator allowed); else a space.

    Examples
    --------
    >>> _data_delimiter("1.5\\t2.5\\t3", 3), _data_delimiter("1.5 2.5 3 ", 3)
    ('\\t', ' ')
    """
    for d in (" ", "\t", ",", ";"):
        parts = split_fields(line, d)
        if parts and parts[-1] == "" and line.endswith(d):
            parts = parts[:-1]
        if len(parts) == n_fields:
            return d
    return " "


def _read_tracks(path: Path, fields: list[dict], members: list[dict], *, pixel_size_nm,
                 centers: bool) -> pa.Table:
    """Track files have a variable number of values per line: parsed line by line."""
    n_outer, n_member = len(fields), len(members)
    outer_rows, member_rows, member_track, track_lines = [], [], [], []
    with open(path, "rb") as fh:
        header_bytes = len(fh.readline())
        for number, raw in enumerate(fh, start=2):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            parts = text.split()
            try:
                values = np.array(parts, dtype=np.float64)
            except ValueError:
                bad = next(p for p in parts if not _is_float(p))
                raise FormatError(f"cannot read value {bad[:40]!r} as a number", path=path,
                                  line=number) from None
            if values.size < n_outer + 1:
                raise FormatError(f"truncated track row: expected at least {n_outer + 1} "
                                  f"values, found {values.size}", path=path, line=number)
            count = values[n_outer]
            if (not np.isfinite(count) or count < 0 or count != int(count)
                    or values.size != n_outer + 1 + int(count) * n_member):
                raise FormatError(f"track row holds {values.size} values, expected "
                                  f"{n_outer} track fields + 1 count + {count:g} x {n_member} "
                                  "member fields", path=path, line=number)
            track = len(outer_rows)
            track_lines.append(number)
            outer_rows.append(values[:n_outer + 1])
            m = values[n_outer + 1:].reshape(int(count), n_member)
            member_rows.append(m)
            member_track.append(np.full(int(count), track, dtype=np.int64))
    if not outer_rows:
        raise FormatError("no tracks: the file has a header but no data rows", path=path, line=2)
    if centers:
        data = np.vstack(outer_rows)
        use_fields, track_ids, counts = fields, np.arange(len(outer_rows)), data[:, n_outer]
        data = data[:, :n_outer]
    else:
        data = np.vstack(member_rows) if member_rows else np.empty((0, n_member))
        use_fields, track_ids, counts = members, np.concatenate(member_track), None
        if data.shape[0] == 0:
            raise FormatError("the tracks hold no member localizations", path=path)
    names = dedupe_names([f["identifier"] for f in use_fields])
    roles, extra_units = _roles(use_fields, names)
    targets = {r.target for r in roles}
    if "x" not in targets or "y" not in targets:
        raise FormatError("the track header declares no Position-0-0/Position-1-0 fields "
                          f"for the {'tracks' if centers else 'member localizations'}",
                          path=path, line=1)
    columns, units, original, used, pixel_used = {}, {}, {}, set(), None
    for r in roles:
        values = data[:, names.index(r.source)]
        if r.target in ("x", "y", "z", "precision_xy", "precision_z"):
            factor = length_factor_nm(r.unit, pixel_size_nm=pixel_size_nm, path=path,
                                      column=r.source)
            if (r.unit or "").lower() in PIXEL_UNITS:
                pixel_used = float(pixel_size_nm)
            values = values * factor
            if r.target in ("x", "y", "z") and not np.all(np.isfinite(values)):
                raise FormatError(f"coordinate {r.target} is not finite in "
                                  f"{int(np.sum(~np.isfinite(values)))} row(s)", path=path,
                                  column=r.source)
        elif r.target == "frame" and np.any(values < 0):
            row = int(np.flatnonzero(values < 0)[0])
            line = track_lines[row] if centers else track_lines[int(track_ids[row])]
            raise FormatError(f"frame must be >= 0 (frames count from 0 or 1), found "
                              f"{values[row]:g} in {int(np.sum(values < 0))} row(s)", path=path,
                              line=line, column=r.source)
        elif r.unit and r.target not in ("frame",):
            units[r.target] = r.unit
        columns[r.target] = values
        original[r.target] = r.source
        used.add(r.source)
    columns["track_id"] = track_ids
    for i, name in enumerate(names):
        if name not in used:
            columns[name] = data[:, i]
            original[name] = name
            if extra_units.get(name):
                units[name] = extra_units[name]
    if counts is not None:
        columns["n_localizations"] = counts.astype(np.int64)
    _check_complete(path, header_bytes, path.stat().st_size, " ")
    try:
        return make_table(columns, units=units, original_names=original, source=str(path),
                          format="rapidstorm", pixel_size_nm=pixel_used,
                          extra_metadata={"rapidstorm_layout": "centers" if centers else "tracks"})
    except Exception as exc:
        raise FormatError(str(exc), path=path) from exc


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False

