"""DECODE HDF5 emitter files (``EmitterSet.save(... .h5)``): reader.

Layout written by DECODE (Speiser et al. 2021, ``decode.utils.emitter_io.save_h5``):

* group ``meta``, attributes ``xy_unit`` (``"px"`` or ``"nm"``) and ``px_size`` (two
  values, nm per pixel in x and y);
* group ``decode``, attribute ``version``;
* group ``data`` with one dataset per quantity: ``xyz`` (N, 3), ``xyz_sig`` (N, 3),
  ``xyz_cr`` (N, 3), ``phot``, ``phot_sig``, ``phot_cr``, ``frame_ix`` (0-based), ``id``,
  ``prob``, ``bg``, ``bg_sig``, ``bg_cr`` (N,). A quantity that is all NaN is stored as an
  empty dataset (``h5py.Empty``) and skipped here.

DECODE converts only x and y between px and nm; **z is always in nm**. So with
``xy_unit == "px"``: x, y and ``x_sig``/``y_sig`` are multiplied by the pixel size,
``x_cr``/``y_cr`` (CRLB variances) by its square; z, ``z_sig``, ``z_cr`` stay as stored.
The pixel size comes from ``meta/px_size``, else the ``pixel_size_nm`` argument, else the
reader refuses.

Columns: ``x``, ``y``, ``z`` (nm), ``frame`` (from ``frame_ix``), ``photons`` (``phot``),
``background`` (``bg``), ``precision_xy`` = mean of ``x_sig`` and ``y_sig`` (nm, both also
kept), ``precision_z`` (``z_sig``), and every other dataset of length N under its own name
((N, k) datasets as ``<name>_x``/``_y``/``_z`` for k = 3, ``<name>_<i>`` otherwise).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError
from ..schema import make_table
from ._hdf5 import check_dataset_size, hdf5_keys, is_hdf5, open_hdf5
from ._registry import register_reader

__all__ = ["read_decode"]

_UNITS = {"phot": "photon", "phot_sig": "photon", "phot_cr": "photon^2", "bg": "photon",
          "bg_sig": "photon", "bg_cr": "photon^2", "prob": "1", "id": "1"}


def _sniff(path: Path, head: bytes) -> bool:
    if not is_hdf5(head):
        return False
    keys = hdf5_keys(path)
    if "data" not in keys or "locs" in keys:
        return False
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return isinstance(fh["data"], h5py.Group) and "xyz" in fh["data"]
    except Exception:
        return False


def _pixel_size(meta_attrs, pixel_size_nm, path: Path) -> list[float] | None:
    raw = meta_attrs.get("px_size")
    if raw is not None:
        vals = np.atleast_1d(np.asarray(raw, dtype=np.float64)).ravel()
        if vals.size == 1:
            vals = np.repeat(vals, 2)
        if vals.size != 2 or not np.all(np.isfinite(vals) & (vals > 0)):
            raise FormatError(f"meta/px_size is {raw!r}, expected two positive numbers (nm)",
                              path=path)
        return [float(v) for v in vals]
    if pixel_size_nm is None:
        return None
    px = float(pixel_size_nm)
    if not (math.isfinite(px) and px > 0):
        raise FormatError(f"pixel_size_nm must be a positive number, got {pixel_size_nm!r}",
                          path=path)
    return [px, px]


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.ravel()[0])
    return str(value)


@register_reader("decode", extensions=(".h5", ".hdf5"), sniff=_sniff,
                 description="DECODE HDF5 emitter set (data/xyz, meta xy_unit/px_size)",
                 priority=20)
def read_decode(path: str | Path, *, pixel_size_nm: float | None = None) -> pa.Table:
    """Read a DECODE HDF5 emitter file into the canonical table (nm).

    Parameters
    ----------
    path : str or Path
        The ``.h5`` file.
    pixel_size_nm : float, optional
        Pixel size used when ``xy_unit`` is ``"px"`` and the file stores no ``px_size``.

    Returns
    -------
    pyarrow.Table

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, h5py
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "emitters.h5"
    >>> with h5py.File(p, "w") as f:
    ...     f.create_group("meta").attrs.update({"xy_unit": "px", "px_size": [100.0, 100.0]})
    ...     g = f.create_group("data")
    ...     _ = g.create_dataset("xyz", data=np.array([[1.5, 2.0, -50.0]], "f4"))
    ...     _ = g.create_dataset("frame_ix", data=np.array([0]))
    >>> t = read_decode(p)
    >>> t.column("x")[0].as_py(), t.column("z")[0].as_py()
    (150.0, -50.0)
    """
    import h5py

    path = Path(path)
    with open_hdf5(path, "a DECODE emitter file (data/xyz)") as fh:
        if "data" not in fh or not isinstance(fh["data"], h5py.Group):
            raise FormatError(f"no 'data' group (DECODE layout); found {sorted(fh.keys())}",
                              path=path)
        group = fh["data"]
        if "xyz" not in group:
            raise FormatError(f"no coordinate dataset 'data/xyz'; found {sorted(group.keys())}",
                              path=path, column="xyz")
        meta_attrs = dict(fh["meta"].attrs) if "meta" in fh else {}
        datasets = {}
        try:
            for name, ds in group.items():
                if not isinstance(ds, h5py.Dataset) or ds.shape is None:
                    continue  # h5py.Empty: an all-NaN quantity
                check_dataset_size(ds, path, f"data/{name}")   # before allocating
                datasets[name] = np.asarray(ds[()])
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"'data' cannot be read (truncated or damaged file?): {exc}",
                              path=path) from exc
    if "xyz" not in datasets:
        raise FormatError("'data/xyz' is empty", path=path, column="xyz")
    xyz = datasets.pop("xyz")
    if xyz.ndim != 2 or xyz.shape[1] not in (2, 3):
        raise FormatError(f"'data/xyz' has shape {xyz.shape}, expected (N, 3)", path=path,
                          column="xyz")
    n = xyz.shape[0]
    unit = _text(meta_attrs.get("xy_unit"))
    if unit is None:
        raise FormatError("meta/xy_unit is missing, so the unit of x/y is unknown "
                          "(expected 'px' or 'nm'); units are never guessed", path=path)
    unit = unit.strip().lower()
    if unit not in ("px", "nm"):
        raise FormatError(f"meta/xy_unit is {unit!r}, expected 'px' or 'nm'", path=path)
    px = _pixel_size(meta_attrs, pixel_size_nm if unit == "px" else None, path)
    if unit == "px" and px is None:
        raise FormatError("x/y are in pixels (xy_unit 'px') but meta/px_size is missing; pass "
                          "pixel_size_nm= (CLI: --pixel-size-nm)", path=path)
    scale = np.array([px[0], px[1], 1.0][:xyz.shape[1]]) if unit == "px" else \
        np.ones(xyz.shape[1])

    columns: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    originals: dict[str, str] = {}
    xyz_nm = xyz.astype(np.float64) * scale
    for i, axis in enumerate("xyz"[:xyz.shape[1]]):
        columns[axis] = xyz_nm[:, i]
        originals[axis] = f"xyz[:, {i}]"
    for name, values in datasets.items():
        if values.ndim == 0 or values.shape[0] != n:
            raise FormatError(f"dataset 'data/{name}' has shape {values.shape}, expected "
                              f"{n} rows like 'data/xyz'", path=path, column=name)
        if name.startswith("xyz") and values.ndim == 2 and values.shape[1] == xyz.shape[1]:
            suffix = name[3:]  # "_sig", "_cr", ...
            power = 2.0 if suffix == "_cr" else 1.0
            vals = values.astype(np.float64) * (scale ** power)
            for i, axis in enumerate("xyz"[:xyz.shape[1]]):
                key = f"{axis}{suffix}"
                columns[key] = vals[:, i]
                units[key] = "nm^2" if power == 2.0 else "nm"
                originals[key] = f"{name}[:, {i}]"
            continue
        if values.ndim == 1:
            target = {"frame_ix": "frame", "phot": "photons", "bg": "background"}.get(name, name)
            columns[target] = values
            originals[target] = name
            if name in _UNITS and target == name:
                units[name] = _UNITS[name]
            continue
        flat = values.reshape(n, -1)
        labels = "xyz" if flat.shape[1] == 3 else [str(i) for i in range(flat.shape[1])]
        for i, lab in enumerate(labels):
            columns[f"{name}_{lab}"] = flat[:, i]
            originals[f"{name}_{lab}"] = f"{name}[:, {i}]"
    if "x_sig" in columns and "y_sig" in columns:
        columns["precision_xy"] = (columns["x_sig"] + columns["y_sig"]) / 2.0
    if "z_sig" in columns:
        columns["precision_z"] = columns.pop("z_sig")
        originals["precision_z"] = originals.pop("z_sig")
        units.pop("z_sig", None)
    extra = {"decode_xy_unit": unit}
    if unit == "nm" and px is not None:
        extra["camera_pixel_size_nm"] = px
    return make_table(columns, units=units, original_names=originals, source=str(path),
                      format="decode", pixel_size_nm=px if unit == "px" else None,
                      extra_metadata=extra)
