"""Images in and out: OME-TIFF and OME-Zarr (chosen by extension), plain TIFF and NumPy in.

:func:`write_image` writes a :class:`VoxelImage` with its physical grid so that other
tools (Fiji/Bio-Formats, napari, QuPath, ome-zarr-py, neuroglancer) show it at the right
scale and position; :func:`read_image` reads it back exactly (voxel size and origin in nm
are also kept in the package's own metadata, as JSON, so no unit conversion rounds them).
Writes are atomic: a temporary sibling is written and renamed into place; on failure
nothing is left behind and an existing output is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._validate import check_memory, positive
from ..errors import FormatError, ParameterError
from ._image import VoxelImage

__all__ = ["write_image", "read_image", "image_format", "check_image_output",
           "PROVENANCE_KEY", "LABEL_UNIT"]

#: Attribute key (OME-Zarr) and map-annotation namespace (OME-TIFF) of the package's own
#: metadata: axes, voxel size and origin in nm, channel names, value unit, provenance.
PROVENANCE_KEY = "smlmspine"
#: ``value_unit`` of label images (written as uint32).
LABEL_UNIT = "label"
#: Spatial extent (y or x, voxels) beyond which OME-TIFF is tiled and gets a pyramid.
TIFF_LARGE = 2048
#: Pyramid levels are added until the largest y/x extent is at most this.
PYRAMID_MIN = 512

_EXTENSIONS = {".ome.tif": "ome-tiff", ".ome.tiff": "ome-tiff", ".ome.zarr": "ome-zarr",
               ".tif": "tiff", ".tiff": "tiff", ".npy": "npy"}


def image_format(path) -> str:
    """The image format named by a path's extension.

    Parameters
    ----------
    path : str or Path
        ``.ome.tif``/``.ome.tiff``, ``.ome.zarr``, ``.tif``/``.tiff`` or ``.npy``.

    Returns
    -------
    str
        ``"ome-tiff"``, ``"ome-zarr"``, ``"tiff"`` or ``"npy"``.

    Raises
    ------
    FormatError
        Any other extension.

    Examples
    --------
    >>> image_format("a/b.ome.tif"), image_format("c.OME.ZARR")
    ('ome-tiff', 'ome-zarr')
    """
    name = Path(path).name.lower().rstrip("/")
    for ext in sorted(_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return _EXTENSIONS[ext]
    raise FormatError(f"cannot tell the image format from the extension; use .ome.tif, "
                      f".ome.tiff or .ome.zarr (read_image also: .tif, .tiff, .npy)",
                      path=path)


def check_image_output(path, *, option: str | None = None) -> Path:
    """Check, before any work, that an image can be written at ``path``.

    Parameters
    ----------
    path : str or Path
        ``.ome.tif``/``.ome.tiff`` or ``.ome.zarr`` output.
    option : str, optional
        CLI option named in messages (e.g. ``"-o"``).

    Returns
    -------
    Path
        The path.

    Raises
    ------
    FormatError
        Unknown extension, missing or unwritable folder, a folder where a TIFF file is
        asked for, or an existing file or non-Zarr folder where an OME-Zarr is asked for.
    """
    from .._outputs import check_output_file

    path = Path(path)
    label = f"{option}: " if option else ""
    fmt = image_format(path)
    if fmt not in ("ome-tiff", "ome-zarr"):
        raise FormatError(f"{label}images are written as .ome.tif/.ome.tiff or .ome.zarr, "
                          f"got {path.name!r}", path=path)
    if fmt == "ome-tiff":
        return check_output_file(path, option=option)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise FormatError(f"{label}exists and is not a folder; an OME-Zarr store is a "
                              f"folder", path=path)
        if not any((path / n).exists() for n in ("zarr.json", ".zgroup", ".zattrs")):
            raise FormatError(f"{label}is an existing folder that is not a Zarr store; "
                              f"refusing to replace it", path=path)
    # the folder must be writable (a dummy file name inside the same parent)
    check_output_file(path.with_name(path.name + ".check"), option=option)
    return path


def is_label_image(image: VoxelImage) -> bool:
    """Whether ``image`` holds labels (``value_unit == "label"``)."""
    return image.value_unit == LABEL_UNIT


def _validate_image(image) -> None:
    if not isinstance(image, VoxelImage):
        raise ParameterError(f"image must be a VoxelImage, got {type(image).__name__}")
    allowed = {"c", "z", "y", "x", "rgb"}
    axes = tuple(image.axes)
    if not set(axes) <= allowed or len(set(axes)) != len(axes) or "x" not in axes \
            or "y" not in axes:
        raise ParameterError(f"image axes must be ([c,] [z,] y, x[, rgb]), got {axes}")
    order = [a for a in ("c", "z", "y", "x", "rgb") if a in axes]
    if list(axes) != order:
        raise ParameterError(f"image axes must be in the order c, z, y, x, rgb; got {axes}")
    if np.ndim(image.data) != len(axes):
        raise ParameterError(f"image data has {np.ndim(image.data)} dimensions for axes "
                             f"{axes}")
    n_sp = len(image.spatial_axes)
    if len(image.voxel_nm) != n_sp or len(image.origin_nm) != n_sp:
        raise ParameterError(f"voxel_nm and origin_nm need {n_sp} values (one per spatial "
                             f"axis), got {image.voxel_nm} and {image.origin_nm}")
    for v in image.voxel_nm:
        positive(v, "voxel_nm", unit="nm")
    if not all(np.isfinite(float(o)) for o in image.origin_nm):
        raise ParameterError(f"origin_nm must be finite, got {image.origin_nm}")
    if "rgb" in axes and np.shape(image.data)[-1] != 3:
        raise ParameterError(f"an rgb axis must have length 3, got {np.shape(image.data)[-1]}")
    if "c" in axes and image.channel_names and \
            len(image.channel_names) != np.shape(image.data)[0]:
        raise ParameterError(f"{len(image.channel_names)} channel names for "
                             f"{np.shape(image.data)[0]} channels")


def _stored_dtype(image):
    """uint32 for labels (refusing values that do not fit), float32 otherwise."""
    dtype = np.dtype(getattr(image.data, "dtype", np.float64))
    if is_label_image(image):
        if dtype.kind not in "iub":
            raise ParameterError(f"a label image must hold integers, got {dtype}")
        return np.dtype(np.uint32)
    if dtype.kind not in "iufb":
        raise ParameterError(f"image values must be numeric, got {dtype}")
    return np.dtype(np.float32)


def _as_stored(block, image):
    """``block`` converted to the stored dtype; labels checked to fit uint32."""
    dtype = _stored_dtype(image)
    a = np.asarray(block)
    if dtype == np.uint32 and a.size and a.dtype != np.uint32:
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > np.iinfo(np.uint32).max:
            raise ParameterError(f"label values must lie in [0, 2^32 - 1] (uint32), got "
                                 f"[{lo}, {hi}]")
    return a.astype(dtype, copy=False)


def provenance(image: VoxelImage) -> dict:
    """The package's own metadata of ``image`` (JSON-serialisable)."""
    from .. import __version__

    meta = json.loads(json.dumps(image.metadata or {}, default=str))
    return {"version": __version__, "axes": list(image.axes),
            "voxel_nm": [float(v) for v in image.voxel_nm],
            "origin_nm": [float(o) for o in image.origin_nm],
            "channel_names": [str(c) for c in image.channel_names],
            "value_unit": image.value_unit,
            "origin_convention": "origin_nm is the centre of voxel 0 (first edge + voxel/2)",
            "metadata": meta}


def downsample_yx(a: np.ndarray, y_axis: int, *, labels: bool) -> np.ndarray:
    """One pyramid level: y and x halved (rounded up).

    Intensities: the mean of each 2 x 2 block (over the voxels that exist at an odd
    edge), in the same unit, so display contrast holds across levels; labels: the label
    of each block's first voxel (nearest neighbour, no new label values).

    Parameters
    ----------
    a : ndarray
        Image block with y at ``y_axis`` and x at ``y_axis + 1``.
    y_axis : int
        Index of the y axis.
    labels : bool
        Nearest-neighbour (labels) instead of the block mean.

    Returns
    -------
    ndarray
        The halved image (same dtype as ``a`` for labels, float32 otherwise).

    Examples
    --------
    >>> downsample_yx(np.arange(9.0).reshape(3, 3), 0, labels=False).tolist()
    [[2.0, 3.5], [6.5, 8.0]]
    """
    sl = [slice(None)] * a.ndim
    sl[y_axis] = slice(None, None, 2)
    sl[y_axis + 1] = slice(None, None, 2)
    if labels:
        return np.ascontiguousarray(a[tuple(sl)])
    ny, nx = a.shape[y_axis], a.shape[y_axis + 1]
    f = a.astype(np.float32, copy=False)
    if ny % 2 or nx % 2:   # odd edge: pad with zeros, divide by the voxels that exist
        pad = [(0, 0)] * a.ndim
        pad[y_axis] = (0, ny % 2)
        pad[y_axis + 1] = (0, nx % 2)
        f = np.pad(f, pad)
    shape = f.shape[:y_axis] + (f.shape[y_axis] // 2, 2, f.shape[y_axis + 1] // 2, 2) \
        + f.shape[y_axis + 2:]
    s = f.reshape(shape).sum(axis=(y_axis + 1, y_axis + 3), dtype=np.float32)
    cnt = np.full((f.shape[y_axis] // 2, f.shape[y_axis + 1] // 2), 4.0, np.float32)
    if ny % 2:
        cnt[-1, :] /= 2
    if nx % 2:
        cnt[:, -1] /= 2
    cnt = cnt.reshape((1,) * y_axis + cnt.shape + (1,) * (a.ndim - y_axis - 2))
    s /= cnt
    return s


def pyramid_levels(ny: int, nx: int, *, minimum: int = PYRAMID_MIN) -> int:
    """Number of levels (base included) halving y/x until both are at most ``minimum``.

    Parameters
    ----------
    ny, nx : int
        Base extent in voxels.
    minimum : int, optional
        Largest extent of the smallest level.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> pyramid_levels(2000, 3000), pyramid_levels(100, 100)
    (4, 1)
    """
    levels = 1
    while max(ny, nx) > minimum and levels < 12:
        ny, nx = (ny + 1) // 2, (nx + 1) // 2
        levels += 1
    return levels


def write_image(image: VoxelImage, path, *, labels: dict | None = None,
                version: str = "0.5") -> Path:
    """Write an image as OME-TIFF (``.ome.tif``, ``.ome.tiff``) or OME-Zarr (``.ome.zarr``).

    OME-TIFF (tifffile): OME-XML with ``PhysicalSizeX/Y/Z`` in µm, the plane positions
    (centre of voxel 0) in µm, channel names, and the TIFF resolution tags (pixels per
    cm, which Fiji shows in µm); BigTIFF when over 2 GB, tiled (256 x 256) with a pyramid
    in sub-IFDs beyond 2048 pixels. OME-Zarr: NGFF 0.5 on Zarr v3 (``version="0.4"``:
    Zarr v2 and NGFF 0.4), a multiscale pyramid, axes with unit ``nanometer``,
    ``coordinateTransformations`` scale (voxel size) then translation (origin). Both
    carry the package's metadata (:data:`PROVENANCE_KEY`) with the exact nm values.
    Intensity values are float32, labels (``value_unit="label"``) uint32. Pyramid
    levels halve y and x (block mean; labels: nearest).

    Parameters
    ----------
    image : VoxelImage
        The image (e.g. from :func:`smlmspine.voxel.render`).
    path : str or Path
        Output path; the extension chooses the format. Written atomically; an existing
        file or OME-Zarr store is replaced only on success.
    labels : dict of str to VoxelImage, optional
        OME-Zarr only: label images on the same grid, written into the NGFF ``labels``
        group (``labels/<name>``, ``image-label`` metadata). A label image passed as
        ``image`` is written as a root ``image-label`` multiscale instead.
    version : {"0.5", "0.4"}, optional
        OME-Zarr version.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        An inconsistent image (axes, voxel size, label values beyond uint32), labels for
        an OME-TIFF, or labels on another grid.
    FormatError
        An unknown extension or an output that cannot be written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> img = VoxelImage(np.ones((4, 6), np.float32), ("y", "x"), (10.0, 10.0), (5.0, 5.0))
    >>> p = write_image(img, pathlib.Path(tempfile.mkdtemp()) / "a.ome.tif")
    >>> back = read_image(p)
    >>> back.voxel_nm, back.origin_nm, back.data.shape
    ((10.0, 10.0), (5.0, 5.0), (4, 6))
    """
    _validate_image(image)
    if version not in ("0.5", "0.4"):
        raise ParameterError(f"version must be '0.5' or '0.4', got {version!r}")
    path = check_image_output(path)
    fmt = image_format(path)
    if fmt == "ome-tiff":
        if labels:
            raise ParameterError("labels= is for OME-Zarr; write a label image to OME-TIFF "
                                 "as its own file")
        from ._ometiff import write_ome_tiff

        write_ome_tiff(image, path)
        return path
    from ._omezarr import write_ome_zarr

    for name, lab in (labels or {}).items():
        _validate_image(lab)
        if not is_label_image(lab):
            raise ParameterError(f"labels[{name!r}] must be a label image (value_unit "
                                 f"'label'), got {lab.value_unit!r}")
        if lab.spatial_shape != image.spatial_shape or \
                tuple(map(float, lab.voxel_nm)) != tuple(map(float, image.voxel_nm)) or \
                tuple(map(float, lab.origin_nm)) != tuple(map(float, image.origin_nm)):
            raise ParameterError(f"labels[{name!r}] is not on the image's grid (shape, "
                                 f"voxel_nm and origin_nm must be equal)")
    write_ome_zarr(image, path, labels=labels or {}, version=version)
    return path


def read_image(path, *, voxel_nm=None, origin_nm=None, label: str | None = None,
               level: int = 0, lazy: bool = False) -> VoxelImage:
    """Read an image: OME-TIFF, OME-Zarr (NGFF 0.4/0.5), plain TIFF or NumPy ``.npy``.

    OME files give the voxel size and origin (the package's own metadata when present,
    else the OME-XML physical sizes and plane positions, or the NGFF scale and
    translation). A plain TIFF or ``.npy`` has none: pass ``voxel_nm`` (and optionally
    ``origin_nm``; default: the first voxel edge at 0, i.e. origin = voxel/2). Its axes
    are ``y, x`` (2D) or ``z, y, x`` (3D). ``.npy`` files are read without pickle.

    Parameters
    ----------
    path : str or Path
        The image.
    voxel_nm : float or sequence of float, optional
        Plain TIFF / NumPy: voxel size in nm (one, or one per spatial axis, z, y, x).
    origin_nm : sequence of float, optional
        Plain TIFF / NumPy: centre of voxel 0 in nm (z, y, x).
    label : str, optional
        OME-Zarr: read ``labels/<label>`` instead of the image.
    level : int, optional
        Pyramid level (0: full resolution).
    lazy : bool, optional
        OME-Zarr: keep ``data`` as the zarr array instead of loading it (images larger
        than the memory budget must be read lazily).

    Returns
    -------
    VoxelImage
        Data (numpy, or zarr with ``lazy``), axes, voxel size and origin in nm (of the
        level read), channel names and value unit.

    Raises
    ------
    ParameterError
        ``voxel_nm`` missing for a plain TIFF / NumPy file, or an image over the memory
        budget without ``lazy``.
    FormatError
        An unreadable file, an unknown extension, or metadata that cannot be
        understood.
    """
    path = Path(path)
    fmt = image_format(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    if fmt == "ome-zarr":
        from ._omezarr import read_ome_zarr

        return read_ome_zarr(path, label=label, level=level, lazy=lazy)
    if label is not None:
        raise ParameterError(f"label= is for OME-Zarr; {path.name} is {fmt}")
    if fmt in ("ome-tiff", "tiff"):
        from ._ometiff import read_tiff

        image = read_tiff(path, level=level)
        if image is not None:
            return image
    else:
        try:
            data = np.load(path, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise FormatError(f"not a NumPy array file without objects: {exc}",
                              path=path) from None
        check_memory(float(data.nbytes), what=f"reading {path.name}")
        data = np.array(data)
        return plain_image(data, path, voxel_nm=voxel_nm, origin_nm=origin_nm)
    from ._ometiff import read_plain_tiff

    return plain_image(read_plain_tiff(path, level=level), path, voxel_nm=voxel_nm,
                       origin_nm=origin_nm)


def plain_image(data, path, *, voxel_nm, origin_nm) -> VoxelImage:
    """A :class:`VoxelImage` of an array without metadata (axes ``[z,] y, x``)."""
    if voxel_nm is None:
        raise ParameterError(f"{Path(path).name} has no voxel size; pass voxel_nm= "
                             f"(--voxel-nm) in nm")
    if data.ndim not in (2, 3):
        raise FormatError(f"expected a 2D (y, x) or 3D (z, y, x) array, got shape "
                          f"{data.shape}", path=path)
    n = data.ndim
    axes = ("z", "y", "x")[3 - n:]
    if np.ndim(voxel_nm) == 0:
        voxel = (positive(voxel_nm, "voxel_nm", unit="nm"),) * n
    else:
        voxel = tuple(positive(v, "voxel_nm", unit="nm") for v in voxel_nm)
        if len(voxel) != n:
            raise ParameterError(f"voxel_nm needs {n} values for a {n}D image, got "
                                 f"{len(voxel)}")
    if origin_nm is None:
        origin = tuple(v / 2 for v in voxel)
    else:
        origin = tuple(float(o) for o in origin_nm)
        if len(origin) != n or not all(np.isfinite(origin)):
            raise ParameterError(f"origin_nm needs {n} finite values, got {origin_nm!r}")
    # a plain array says nothing about what its values mean (labels or intensities)
    return VoxelImage(data=data, axes=axes, voxel_nm=voxel, origin_nm=origin,
                      value_unit="", metadata={"source": str(path)})
