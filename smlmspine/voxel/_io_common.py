"""What the image readers and writers share: formats by extension, output checks, the
package's metadata, stored dtypes and the pyramid (no imports of the format modules)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._validate import positive
from ..errors import FormatError, ParameterError
from ._image import VoxelImage

__all__ = ["image_format", "check_image_output", "is_label_image", "provenance",
           "downsample_yx", "pyramid_levels", "level_grid", "plain_image",
           "PROVENANCE_KEY", "LABEL_UNIT", "TIFF_LARGE", "PYRAMID_MIN"]

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

    def part(dy, dx):   # strided views: four adds beat a reduction over split axes
        sl = [slice(None)] * f.ndim
        sl[y_axis] = slice(dy, None, 2)
        sl[y_axis + 1] = slice(dx, None, 2)
        return f[tuple(sl)]

    s = part(0, 0) + part(1, 0)
    s += part(0, 1)
    s += part(1, 1)
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


def level_grid(voxel, origin, level: int, spatial: tuple) -> tuple[tuple, tuple]:
    """Voxel size and origin of pyramid ``level`` (y and x halved per level).

    Parameters
    ----------
    voxel, origin : sequence of float
        Base voxel size and origin (centre of voxel 0), nm, in ``spatial`` order.
    level : int
        Pyramid level.
    spatial : tuple of str
        Spatial axis names.

    Returns
    -------
    tuple
        ``(voxel_nm, origin_nm)`` of the level: voxel 0 of a level covers the same
        first edge, so its centre moves by ``(2**level - 1) * voxel / 2``.
    """
    f = 2 ** level
    v = tuple(float(a) * (f if ax in ("y", "x") else 1) for a, ax in zip(voxel, spatial))
    o = tuple(float(b) + ((f - 1) * float(a) / 2 if ax in ("y", "x") else 0.0)
              for a, b, ax in zip(voxel, origin, spatial))
    return v, o


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
