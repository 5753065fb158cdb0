"""Zeiss Elyra / ZEN localization table export (tab-separated text).

ZEN exports the PALM/STORM localization table as tab-separated text with one header
line; after the last data row ZEN may append a NUL byte followed by acquisition
metadata, which is ignored (data are read up to the first NUL)::

    Index	First Frame	Number Frames	Frames Missing	Position X [nm]	Position Y [nm]	Position Z [nm]	Precision [nm]	Number Photons	Background variance	Chi square	PSF half width [nm]	Channel	Z Slice
    1	1	1	0	5321.2	1204.9	-120.5	9.2	2200	12.3	1.1	250.0	1	0

Canonical columns: ``Position X/Y/Z [nm]`` -> x/y/z, ``First Frame`` -> frame,
``Precision [nm]`` -> precision_xy, ``Number Photons`` -> photons, ``Channel`` -> channel.
Everything else (``Index``, ``Number Frames``, ``Frames Missing``, ``Background
variance`` (a variance, so not the canonical background), ``Chi square``, ``PSF half
width [nm]``, ``Z Slice``) is kept. Units come from the brackets (nm, um, px -> needs
``pixel_size_nm``).

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "elyra.txt"
>>> _ = p.write_bytes(b"Index\\tFirst Frame\\tPosition X [nm]\\tPosition Y [nm]\\n"
...                   b"1\\t5\\t100.5\\t200\\n\\x00VoxelSizeX=0.1\\n")
>>> t = read_zeiss(p)
>>> t.column("x").to_pylist(), t.column("frame").to_pylist()
([100.5], [5])
"""

from __future__ import annotations

import mmap
from pathlib import Path

import pyarrow as pa

from ..errors import FormatError
from ._registry import register_reader
from ._text import (choose_delimiter, dedupe_names, header_roles, read_header, read_text_table,
                    sniff_lines)

__all__ = ["read_zeiss", "ZEISS_CANDIDATES"]

#: Canonical column -> Zeiss header base names.
ZEISS_CANDIDATES: dict[str, tuple[str, ...]] = {
    "x": ("Position X",), "y": ("Position Y",), "z": ("Position Z",),
    "frame": ("First Frame",), "precision_xy": ("Precision",), "photons": ("Number Photons",),
    "channel": ("Channel",),
}


def _sniff(path: Path, head: bytes) -> bool:
    lines = sniff_lines(head, stop_at_nul=True)
    if not lines:
        return False
    _, names = choose_delimiter(lines, "\t")
    names = [n.lower() for n in names]
    return (len(names) >= 2 and any(n.startswith("position x") for n in names)
            and any(n.startswith("position y") for n in names)
            and ("first frame" in names or "number photons" in names))


def _data_end(path: Path) -> int | None:
    """Byte offset of the first NUL (start of ZEN's metadata block), or None."""
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        k = mm.find(b"\x00")
    return None if k < 0 else k


@register_reader("zeiss", extensions=(".txt", ".csv"), sniff=_sniff,
                 description="Zeiss Elyra / ZEN localization export (tab-separated)",
                 priority=50, options=("mapping",))
def read_zeiss(path: str | Path, *, pixel_size_nm: float | None = None,
               mapping: dict[str, str] | None = None) -> pa.Table:
    """Read a Zeiss Elyra / ZEN text export into the canonical table.

    Parameters
    ----------
    path : str or Path
        Tab-separated file with ``Position X [nm]``, ``First Frame``, ... headers.
    pixel_size_nm : float, optional
        Needed only for pixel-unit position headers.
    mapping : dict, optional
        ``{canonical: header}`` overriding the automatic column assignment.

    Returns
    -------
    pyarrow.Table
        Canonical table, coordinates in nm.
    """
    path = Path(path)
    lines = read_header(path, n_lines=6, stop_at_nul=True, what="a Zeiss ZEN text export")
    header = lines[0]
    delimiter, names = choose_delimiter(lines, "\t")
    if len(names) < 2:
        raise FormatError("the header does not split into fields on tab, ',' or ';'; Zeiss "
                          "ZEN exports are tab-separated", path=path, line=1)
    names = dedupe_names(names)
    roles, extra_units = header_roles(names, ZEISS_CANDIDATES, mapping=mapping, path=path)
    targets = {r.target for r in roles}
    for need, col in (("x", "Position X [nm]"), ("y", "Position Y [nm]")):
        if need not in targets:
            raise FormatError(f"missing coordinate column {col!r}; found {names}", path=path,
                              line=1)
    end = _data_end(path)
    if end is not None and end <= len(header) + 1:
        raise FormatError("no localizations: the file has a header but no data rows",
                          path=path, line=2)
    return read_text_table(path, fmt="zeiss", names=names, delimiter=delimiter, skip_lines=1,
                           roles=roles, pixel_size_nm=pixel_size_nm, end_offset=end,
                           extra_units=extra_units)
