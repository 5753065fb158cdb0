"""ONI Nanoimager (NimOS) localization CSV export.

NimOS writes a comma-separated table with units in parentheses::

    Channel,Frame,X (nm),Y (nm),Z (nm),X precision (nm),Y precision (nm),X (pix),Y (pix),Z (pix),Photons,Background,PSF Sigma X (pix),PSF Sigma Y (pix)
    0,12,5321.2,1204.9,-120.5,9.1,9.3,45.6,10.3,-1.03,2200,12.3,1.2,1.3

Canonical columns: ``X/Y/Z (nm)`` -> x/y/z (the pixel versions are kept as ``x_pix``,
``y_pix``, ``z_pix``; a file with pixel positions only needs ``pixel_size_nm``),
``X precision (nm)`` -> precision_xy (``Y precision`` kept), ``Z precision (nm)`` ->
precision_z, ``Frame`` -> frame, ``Channel`` -> channel, ``Photons`` -> photons,
``Background`` -> background. Every other column is kept with its unit.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "oni.csv"
>>> _ = p.write_text("Channel,Frame,X (nm),Y (nm),X (pix),Y (pix),Photons\\n0,3,117.0,234.0,1.0,2.0,900\\n")
>>> t = read_oni(p)
>>> t.column("x").to_pylist(), t.column("x_pix").to_pylist()
([117.0], [1.0])
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..errors import FormatError
from ._registry import register_reader
from ._text import (LENGTH_UNITS_NM, choose_delimiter, dedupe_names, header_roles, read_header,
                    read_text_table, sniff_lines, split_unit)

__all__ = ["read_oni", "ONI_CANDIDATES"]

#: Canonical column -> ONI header base names.
ONI_CANDIDATES: dict[str, tuple[str, ...]] = {
    "x": ("X",), "y": ("Y",), "z": ("Z",), "frame": ("Frame",), "channel": ("Channel",),
    "photons": ("Photons",), "background": ("Background",),
    "precision_xy": ("X precision",), "precision_z": ("Z precision",),
}


def _sniff(path: Path, head: bytes) -> bool:
    lines = sniff_lines(head)
    if not lines:
        return False
    _, names = choose_delimiter(lines, ",")
    if len(names) < 2:
        return False
    # ONI puts units in parentheses, "X (nm)" (ThunderSTORM uses brackets, "x [nm]")
    parsed = [split_unit(n) if "[" not in n else (n, None) for n in names]
    bases = {b.lower() for b, _ in parsed}
    xy = {b.lower() for b, u in parsed if b.lower() in ("x", "y") and u is not None
          and u.lower() in ("nm", "pix", "px")}
    return xy == {"x", "y"} and "frame" in bases and ("channel" in bases or "photons" in bases)


def _prefer_nm(names: list[str]) -> dict[str, str]:
    """Pick the nm version of X/Y/Z and precisions when both nm and pix exist."""
    out = {}
    for target, base in (("x", "x"), ("y", "y"), ("z", "z"), ("precision_xy", "x precision"),
                         ("precision_z", "z precision")):
        for n in names:
            b, u = split_unit(n)
            if b.lower() == base and u is not None and u.lower() in LENGTH_UNITS_NM:
                out[target] = n
                break
    return out


@register_reader("oni", extensions=(".csv",), sniff=_sniff,
                 description="ONI Nanoimager (NimOS) localization CSV", priority=50,
                 options=("mapping",))
def read_oni(path: str | Path, *, pixel_size_nm: float | None = None,
             mapping: dict[str, str] | None = None) -> pa.Table:
    """Read an ONI Nanoimager CSV export into the canonical table.

    Parameters
    ----------
    path : str or Path
        Comma-separated file with ``X (nm)``, ``Frame``, ... headers.
    pixel_size_nm : float, optional
        Needed only when the file holds pixel positions only (``X (pix)``).
    mapping : dict, optional
        ``{canonical: header}`` overriding the automatic column assignment.

    Returns
    -------
    pyarrow.Table
        Canonical table, coordinates in nm.
    """
    path = Path(path)
    lines = read_header(path, n_lines=6, what="an ONI Nanoimager CSV export")
    delimiter, names = choose_delimiter(lines, ",")
    names = dedupe_names(names)
    if len(names) < 2:
        raise FormatError("the header does not split into fields on ',', ';' or tab; ONI "
                          "exports are comma-separated", path=path, line=1)
    chosen = _prefer_nm(names)
    chosen.update(mapping or {})
    roles, extra_units = header_roles(names, ONI_CANDIDATES, mapping=chosen, path=path)
    targets = {r.target for r in roles}
    for need, col in (("x", "X (nm)"), ("y", "Y (nm)")):
        if need not in targets:
            raise FormatError(f"missing coordinate column {col!r}; found {names}", path=path,
                              line=1)
    return read_text_table(path, fmt="oni", names=names, delimiter=delimiter, skip_lines=1,
                           roles=roles, pixel_size_nm=pixel_size_nm, extra_units=extra_units)
