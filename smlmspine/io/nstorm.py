"""Nikon N-STORM (NIS-Elements) molecule list text export.

NIS-Elements exports the molecule list as tab-separated text with one header line;
positions are in nm, with and without drift correction::

    Channel Name	X	Y	Xc	Yc	Height	Area	Width	Phi	Ax	BG	I	Frame	Length	Link	Valid	Z	Zc	Photons	Lateral Localization Accuracy	Xw	Yw	Xwc	Ywc
    647	5321.2	1204.9	5318.0	1203.1	900	12000	300	0.1	1.05	120	12000	12	1	-1	1	-120.5	-118.0	2200	9.2	5321.2	1204.9	5318.0	1203.1

Canonical columns: the drift-corrected ``Xc``/``Yc``/``Zc`` -> x/y/z (the raw ``X``,
``Y``, ``Z`` are kept as ``x_raw``, ``y_raw``, ``z_raw``), ``Frame`` -> frame,
``Photons`` -> photons, ``Lateral Localization Accuracy`` -> precision_xy,
``Channel Name`` (text such as ``647`` or ``Z Rejected``) -> ``channel`` as an integer
code (the sorted distinct names numbered 0, 1, ...) with the names kept in
``channel_name``. Everything else is kept. Position columns (X, Y, Xc, Yc, Xw, Yw, Xwc,
Ywc, Z, Zc, Zw, Zwc, Width, Lateral Localization Accuracy) are in nm.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "nstorm.txt"
>>> _ = p.write_text("Channel Name\\tX\\tY\\tXc\\tYc\\tFrame\\n647\\t10\\t20\\t11\\t21\\t1\\n")
>>> t = read_nstorm(p)
>>> t.column("x").to_pylist(), t.column("x_raw").to_pylist(), t.column("channel_name").to_pylist()
([11.0], [10.0], ['647'])
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..errors import FormatError
from ._registry import register_reader
from ._text import (choose_delimiter, dedupe_names, header_roles, read_header, read_text_table,
                    sniff_lines)

__all__ = ["read_nstorm", "NSTORM_CANDIDATES", "NSTORM_NM_COLUMNS"]

#: Canonical column -> N-STORM header names (drift-corrected positions first).
NSTORM_CANDIDATES: dict[str, tuple[str, ...]] = {
    "x": ("Xc", "X"), "y": ("Yc", "Y"), "z": ("Zc", "Z"), "frame": ("Frame",),
    "photons": ("Photons",), "precision_xy": ("Lateral Localization Accuracy",),
}
#: Header names whose values are in nm (the export states no units).
NSTORM_NM_COLUMNS = ("X", "Y", "Xc", "Yc", "Xw", "Yw", "Xwc", "Ywc", "Z", "Zc", "Zw", "Zwc",
                     "Width", "Lateral Localization Accuracy")
_RAW = {"X": "x_raw", "Y": "y_raw", "Z": "z_raw"}


def _sniff(path: Path, head: bytes) -> bool:
    lines = sniff_lines(head)
    if not lines:
        return False
    _, names = choose_delimiter(lines, "\t")
    return len(names) >= 2 and "Channel Name" in names and ("Xc" in names or "X" in names) \
        and ("Yc" in names or "Y" in names)


@register_reader("nstorm", extensions=(".txt", ".csv"), sniff=_sniff,
                 description="Nikon N-STORM molecule list text export (tab-separated)",
                 priority=50, options=("mapping",))
def read_nstorm(path: str | Path, *, pixel_size_nm: float | None = None,
                mapping: dict[str, str] | None = None) -> pa.Table:
    """Read a Nikon N-STORM text export into the canonical table.

    Parameters
    ----------
    path : str or Path
        Tab-separated molecule list (``Channel Name``, ``X``, ``Y``, ``Xc``, ...).
    pixel_size_nm : float, optional
        Unused (N-STORM positions are in nm); accepted for a uniform interface.
    mapping : dict, optional
        ``{canonical: header}`` overriding the automatic column assignment.

    Returns
    -------
    pyarrow.Table
        Canonical table, coordinates in nm.
    """
    path = Path(path)
    lines = read_header(path, n_lines=6, what="an N-STORM text export")
    delimiter, names = choose_delimiter(lines, "\t")
    if len(names) < 2:
        raise FormatError("the header does not split into fields on tab, ',' or ';'; N-STORM "
                          "exports are tab-separated", path=path, line=1)
    names = dedupe_names(names)
    fixed = {n: "nm" for n in names if n in NSTORM_NM_COLUMNS}
    roles, extra_units = header_roles(names, NSTORM_CANDIDATES, mapping=mapping, path=path,
                                      fixed_units=fixed, targets=_RAW)
    used = {r.source for r in roles if r.target in ("x", "y", "z")}
    roles = [r for r in roles if not (r.target in _RAW.values() and r.source in used)]
    targets = {r.target for r in roles}
    for need, col in (("x", "Xc"), ("y", "Yc")):
        if need not in targets:
            raise FormatError(f"missing coordinate column {col!r}; found {names}", path=path,
                              line=1)
    channel = "Channel Name" if "Channel Name" in names and "channel" not in targets else None
    return read_text_table(path, fmt="nstorm", names=names, delimiter=delimiter, skip_lines=1,
                           roles=roles, pixel_size_nm=pixel_size_nm, extra_units=extra_units,
                           channel_names=channel, float_columns=list(fixed))
