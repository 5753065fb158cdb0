"""Images in and out: OME-TIFF and OME-Zarr (chosen by extension), plain TIFF and NumPy in.

:func:`write_image` writes a :class:`VoxelImage` with its physical grid so that other
tools (Fiji/Bio-Formats, napari, QuPath, ome-zarr-py, neuroglancer) show it at the right
scale and position; :func:`read_image` reads it back exactly (voxel size and origin in nm
are also kept in the package's own metadata, as JSON, so no unit conversion rounds them).
Writes are atomic: a temporary sibling is written and renamed into place; on failure
nothing is left behind and an existing output is untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validate import check_memory
from ..errors import FormatError, ParameterError
from ._image import VoxelImage
from ._io_common import (LABEL_UNIT, PROVENANCE_KEY, _validate_image, check_image_output,
                         image_format, is_label_image, plain_image)

__all__ = ["write_image", "read_image", "image_format", "check_image_output",
           "PROVENANCE_KEY", "LABEL_UNIT"]


def write_image(image: VoxelImage, path, *, labels: dict | None = None,
                version: str = "0.5") -> Path:
    """Write an image as OME-TIFF (``.ome.tif``, ``.ome.tiff``) or OME-Zarr (``.ome.zarr``).

    OME-TIFF (tifffile): OME-XML with ``PhysicalSizeX/Y/Z`` in µm, the plane positions
    (centre of voxel 0) in µm, channel names, and the TIFF resolution tags (pixels per
    cm, which Fiji shows in µm); BigTIFF when over 2 GB, tiled (256 x 256) with a pyramid
    in sub-IFDs beyond 2048 pixels. OME-Zarr: NGFF 0.5 on Zarr v3 (``version="0.4"``:
    Zarr v2 and NGFF 0.4), a multiscale pyramid, axes with unit ``nanometer``,
    ``coordinateTransformations`` scale (voxel size) then translation (origin). Both
    carry the package's metadata (key ``smlmspine``) with the exact nm values.
    Intensity values are float32, labels (``value_unit="label"``) uint32. Pyramid
    levels halve y and x (block mean; labels: nearest).

    Parameters
    ----------
    image : smlmspine.voxel.VoxelImage
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
    smlmspine.voxel.VoxelImage
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
