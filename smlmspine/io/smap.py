"""SMAP localization files (``*_sml.mat``): reader for MATLAB v7.3 (HDF5) and older MAT.

SMAP (Ries 2020) saves one MATLAB variable ``saveloc``, a struct with

* ``loc``: a struct of column vectors, one entry per localization: ``xnm``, ``ynm``,
  ``znm`` (nm; no ``znm`` for 2D fits), ``frame`` (1-based, as MATLAB counts),
  ``phot`` (photons), ``bg`` (photons per pixel), ``locprecnm``, ``locprecznm`` (nm),
  ``channel``, ``filenumber``, ``PSFxnm``, ``PSFynm``, ``xpix``, ``ypix``, ``LLrel``, ...
* ``file``: a struct (array), one per raw data file, whose ``info`` struct holds camera
  metadata such as ``cam_pixelsize_um`` (x and y, micrometres), ``Width``, ``Height``.
* ``fitparameters``, ``history``, ``siteexplorer``: not read.

MATLAB v7.3 files are HDF5 with a 512-byte header block (read with h5py; 1x1 structs are
groups, struct arrays are datasets of object references, column vectors are (1, N)
datasets); older files (v5/v6/v7, header ``MATLAB 5.0 MAT-file``) are read with
:func:`scipy.io.loadmat`.

Columns: ``xnm``/``ynm``/``znm`` -> ``x``/``y``/``z``, ``frame`` (kept 1-based),
``phot`` -> ``photons``, ``bg`` -> ``background``, ``locprecnm`` -> ``precision_xy``,
``locprecznm`` -> ``precision_z``, ``channel``; every other per-localization field is
kept under its sanitized name (unit ``nm`` when the SMAP name ends in ``nm``, ``px`` for
``xpix``/``ypix``). ``cam_pixelsize_um`` of the first file becomes the table metadata
``camera_pixel_size_nm`` (coordinates are already in nm, so ``pixel_size_nm`` is null).

All ``loc`` fields must have one entry per localization: a mapped field (``xnm``,
``frame``, ``phot``, ...) of another length is a :class:`~smlmspine.errors.FormatError`;
any other field of another length is dropped with a
:class:`~smlmspine.errors.QualityWarning` naming it and its length (and listed in the
table metadata ``smap_skipped_fields``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError, QualityWarning
from ..schema import make_table
from ._hdf5 import (MAT5_HEADER, MAT73_HEADER, check_dataset_size, check_mat5_variables, hdf5_keys,
                    is_hdf5, open_hdf5)
from ._registry import register_reader

__all__ = ["read_smap", "SMAP_COLUMNS"]

#: SMAP ``loc`` field -> canonical column.
SMAP_COLUMNS = {"xnm": "x", "ynm": "y", "znm": "z", "frame": "frame", "phot": "photons",
                "bg": "background", "locprecnm": "precision_xy", "locprecznm": "precision_z",
                "channel": "channel"}
_PX_FIELDS = {"xpix": "px", "ypix": "px"}


def _sniff(path: Path, head: bytes) -> bool:
    if head.startswith(MAT73_HEADER) or (is_hdf5(head) and path.name.lower().endswith(".mat")):
        return "saveloc" in hdf5_keys(path, strict_suffixes=("_sml.mat",))
    if head.startswith(MAT5_HEADER):
        from scipy.io import whosmat

        try:
            return any(name == "saveloc" for name, _, _ in whosmat(str(path)))
        except Exception:
            return False
    return False


@register_reader("smap", extensions=("_sml.mat", ".mat"), sniff=_sniff,
                 description="SMAP _sml.mat (saveloc.loc; MATLAB v7.3/HDF5 or older MAT)",
                 priority=20)
def read_smap(path: str | Path, *, pixel_size_nm: float | None = None) -> pa.Table:
    """Read a SMAP ``_sml.mat`` file into the canonical table (nm).

    Parameters
    ----------
    path : str or Path
        The ``.mat`` file (any MATLAB version SMAP writes).
    pixel_size_nm : float, optional
        Not used: SMAP stores coordinates in nm.

    Returns
    -------
    pyarrow.Table

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, scipy.io
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "run_sml.mat"
    >>> loc = {"xnm": np.array([10.0, 20.0]), "ynm": np.array([5.0, 6.0]),
    ...        "frame": np.array([1.0, 2.0])}
    >>> scipy.io.savemat(p, {"saveloc": {"loc": loc}})
    >>> t = read_smap(p)
    >>> t.column("x").to_pylist(), t.column("frame").to_pylist()
    ([10.0, 20.0], [1, 2])
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head.startswith(MAT73_HEADER) or is_hdf5(head):
        fields, cam_um = _read_v73(path)
    elif head.startswith(MAT5_HEADER):
        fields, cam_um = _read_v5(path)
    else:
        raise FormatError("not a MATLAB file (expected the header 'MATLAB 5.0 MAT-file' or "
                          "'MATLAB 7.3 MAT-file')", path=path)
    return _to_table(fields, cam_um, path)


def _to_table(fields: dict[str, np.ndarray], cam_um, path: Path) -> pa.Table:
    for required in ("xnm", "ynm"):
        if required not in fields:
            raise FormatError(f"saveloc.loc has no {required!r} field; found {sorted(fields)}",
                              path=path, column=required)
    n = fields["xnm"].shape[0]
    lengths = {name: int(values.shape[0]) for name, values in fields.items()}
    bad_core = {name: k for name, k in lengths.items() if k != n and name in SMAP_COLUMNS}
    if bad_core:
        raise FormatError(f"saveloc.loc fields have different lengths: 'xnm' has {n} entries but "
                          + ", ".join(f"{name!r} has {k}" for name, k in sorted(bad_core.items()))
                          + " (damaged or inconsistent file)", path=path,
                          column=sorted(bad_core)[0])
    skipped = sorted(name for name, k in lengths.items() if k != n)
    if skipped:
        warnings.warn(f"{path}: dropped saveloc.loc field(s) whose length differs from the "
                      f"{n} localizations: " + ", ".join(f"{name!r} ({lengths[name]} entries)"
                                                         for name in skipped)
                      + "; listed in the table metadata 'smap_skipped_fields'", QualityWarning,
                      stacklevel=3)
    columns, units, originals = {}, {}, {}
    for name, values in fields.items():
        if name in skipped:
            continue
        target = SMAP_COLUMNS.get(name, name)
        if values.dtype.kind == "f" and target in ("frame", "channel"):
            pass  # make_table checks that they hold integers
        columns[target] = values
        originals[target] = name
        if target == name:
            if name in _PX_FIELDS:
                units[name] = _PX_FIELDS[name]
            elif name.endswith("nm"):
                units[name] = "nm"
    extra = {"smap_skipped_fields": skipped} if skipped else {}
    if cam_um is not None:
        vals = [float(v) * 1000.0 for v in np.atleast_1d(np.asarray(cam_um, dtype=float)).ravel()]
        if vals and all(np.isfinite(vals)):
            extra["camera_pixel_size_nm"] = vals[0] if len(set(vals)) == 1 else vals
    return make_table(columns, units=units, original_names=originals, source=str(path),
                      format="smap", pixel_size_nm=None, extra_metadata=extra or None)


# --- MATLAB v7.3 (HDF5) ----------------------------------------------------------------

def _deref(fh, obj):
    """Follow a (1x1) object reference dataset to its target; leave other objects alone."""
    import h5py

    if isinstance(obj, h5py.Dataset) and obj.dtype == h5py.ref_dtype:
        refs = np.asarray(obj[()]).ravel()
        if refs.size == 0:
            return None
        return fh[refs[0]]
    return obj


def _is_matlab_empty(ds) -> bool:
    return bool(ds.attrs.get("MATLAB_empty", 0))


def _read_v73(path: Path):
    try:
        return _read_v73_unchecked(path)
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        # h5py reports damaged structures as RuntimeError ("bad symbol table node ...")
        raise FormatError(f"cannot be read (truncated or damaged MATLAB v7.3 file?): "
                          f"{type(exc).__name__}: {exc}", path=path) from exc


def _read_v73_unchecked(path: Path):
    import h5py

    with open_hdf5(path, "a MATLAB v7.3 SMAP file with 'saveloc'") as fh:
        if "saveloc" not in fh:
            raise FormatError(f"no variable 'saveloc' (SMAP layout); found {sorted(fh.keys())}",
                              path=path)
        saveloc = _deref(fh, fh["saveloc"])
        if not isinstance(saveloc, h5py.Group) or "loc" not in saveloc:
            raise FormatError("'saveloc' has no 'loc' struct", path=path)
        loc = _deref(fh, saveloc["loc"])
        if not isinstance(loc, h5py.Group):
            raise FormatError("'saveloc.loc' is not a struct", path=path)
        fields = {}
        try:
            for name, ds in loc.items():
                ds = _deref(fh, ds)
                if not isinstance(ds, h5py.Dataset) or _is_matlab_empty(ds):
                    continue
                if ds.dtype.kind not in "fiub":
                    continue  # text / nested cells cannot be columns
                check_dataset_size(ds, path, f"saveloc.loc.{name}")
                values = np.asarray(ds[()])
                if values.ndim == 2 and 1 in values.shape:
                    values = values.ravel()
                elif values.ndim != 1:
                    continue
                if isinstance(name, bytes):   # h5py gives bytes for a name that is not UTF-8
                    name = name.decode("utf-8", "replace")
                fields[name] = values
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"'saveloc.loc' cannot be read (truncated or damaged file?): {exc}",
                              path=path) from exc
        cam = None
        try:
            if "file" in saveloc:
                f0 = _deref(fh, saveloc["file"])
                info = _deref(fh, f0["info"]) if isinstance(f0, h5py.Group) and "info" in f0 \
                    else None
                if isinstance(info, h5py.Group) and "cam_pixelsize_um" in info:
                    cam = np.asarray(_deref(fh, info["cam_pixelsize_um"])[()]).ravel()
        except (OSError, ValueError, KeyError, TypeError):
            cam = None  # camera metadata is optional
    return fields, cam


# --- MATLAB v5/v6/v7 (scipy.io) ----------------------------------------------------------

def _read_v5(path: Path):
    from scipy.io import loadmat

    check_mat5_variables(path, names={"saveloc"})
    try:
        mat = loadmat(str(path), simplify_cells=True, variable_names=["saveloc"])
    except Exception as exc:  # scipy raises many types for damaged files
        raise FormatError(f"not a readable MAT file: {type(exc).__name__}: {exc}",
                          path=path) from exc
    saveloc = mat.get("saveloc")
    if not isinstance(saveloc, dict):
        raise FormatError("no struct variable 'saveloc' (SMAP layout)", path=path)
    loc = saveloc.get("loc")
    if not isinstance(loc, dict):
        raise FormatError("'saveloc' has no 'loc' struct", path=path)
    fields = {}
    for name, values in loc.items():
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiub":
            continue
        fields[name] = np.atleast_1d(arr).ravel() if arr.ndim <= 2 and \
            (arr.ndim < 2 or 1 in arr.shape) else None
        if fields[name] is None:
            del fields[name]
    cam = None
    files = saveloc.get("file")
    first = files[0] if isinstance(files, (list, np.ndarray)) and len(files) else files
    if isinstance(first, dict) and isinstance(first.get("info"), dict):
        cam = first["info"].get("cam_pixelsize_um")
    return fields, cam
