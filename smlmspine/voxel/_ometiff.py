"""OME-TIFF (and plain TIFF) images through tifffile."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from .._validate import check_memory
from ..errors import FormatError, ParameterError
from ._image import VoxelImage
from ._io_common import (PROVENANCE_KEY, TIFF_LARGE, _as_stored, _stored_dtype,
                         downsample_yx, is_label_image, level_grid, provenance,
                         pyramid_levels)

__all__ = ["write_ome_tiff", "read_tiff", "read_plain_tiff"]

_TIFF_AXES = {"c": "C", "z": "Z", "y": "Y", "x": "X", "rgb": "S"}
_FROM_TIFF = {"C": "c", "Z": "z", "Y": "y", "X": "x", "S": "rgb"}
#: nm per unit of the OME length units the reader understands.
_NM_PER = {"nm": Decimal(1), "µm": Decimal(1000), "um": Decimal(1000),
           "\u03bcm": Decimal(1000), "micron": Decimal(1000), "mm": Decimal(10) ** 6,
           "cm": Decimal(10) ** 7, "m": Decimal(10) ** 9, "pm": Decimal("0.001"),
           "Å": Decimal("0.1"), "\u212b": Decimal("0.1")}


def _um(nm: float) -> float:
    """nm as µm through the shortest decimal of ``nm`` (10 nm: 0.01, not
    0.010000000000000002)."""
    return float(Decimal(repr(float(nm))) / 1000)


def _nm(text: str, unit: str, what: str, path) -> float:
    try:
        factor = _NM_PER[unit]
    except KeyError:
        raise FormatError(f"OME-XML {what} has unit {unit!r}; expected a length unit "
                          f"({', '.join(sorted(_NM_PER))})", path=path) from None
    try:
        return float(Decimal(text) * factor)
    except InvalidOperation:
        raise FormatError(f"OME-XML {what}={text!r} is not a number", path=path) from None


def write_ome_tiff(image: VoxelImage, path: Path) -> None:
    """Write ``image`` to ``path`` as OME-TIFF, atomically (see
    :func:`smlmspine.voxel.write_image`)."""
    import tifffile

    from .._outputs import atomic_write

    dtype = _stored_dtype(image)
    shape = np.shape(image.data)
    check_memory(float(np.prod(shape, dtype=float)) * dtype.itemsize * 2,
                 what=f"writing a {'x'.join(map(str, shape))} image to OME-TIFF")
    data = _as_stored(image.data, image)
    axes = tuple(image.axes)
    spatial = image.spatial_axes
    rgb = "rgb" in axes
    y_axis = axes.index("y")
    ny, nx = data.shape[y_axis], data.shape[y_axis + 1]
    large = max(ny, nx) > TIFF_LARGE
    levels = pyramid_levels(ny, nx) if large else 1
    vox = dict(zip(spatial, image.voxel_nm))
    org = dict(zip(spatial, image.origin_nm))
    nz = data.shape[axes.index("z")] if "z" in axes else 1
    nc = data.shape[0] if "c" in axes else 1
    planes = [(c, z) for c in range(nc) for z in range(nz)]   # storage order: c, then z
    md = {"axes": "".join(_TIFF_AXES[a] for a in axes),
          "PhysicalSizeX": _um(vox["x"]), "PhysicalSizeXUnit": "µm",
          "PhysicalSizeY": _um(vox["y"]), "PhysicalSizeYUnit": "µm",
          "Plane": {"PositionX": [_um(org["x"])] * len(planes),
                    "PositionXUnit": ["µm"] * len(planes),
                    "PositionY": [_um(org["y"])] * len(planes),
                    "PositionYUnit": ["µm"] * len(planes)},
          "Description": f"values: {image.value_unit or 'unspecified'}; position: centre "
                         f"of the first voxel",
          "MapAnnotation": {"Namespace": PROVENANCE_KEY,
                            PROVENANCE_KEY: json.dumps(provenance(image))}}
    if "z" in axes:
        md["PhysicalSizeZ"] = _um(vox["z"])
        md["PhysicalSizeZUnit"] = "µm"
        md["Plane"]["PositionZ"] = [_um(org["z"] + z * vox["z"]) for _, z in planes]
        md["Plane"]["PositionZUnit"] = ["µm"] * len(planes)
    if "c" in axes:
        names = list(image.channel_names) or [f"channel {i}" for i in range(nc)]
        md["Channel"] = {"Name": names}
    est = data.nbytes * (4 / 3 if levels > 1 else 1)
    options = dict(photometric="rgb" if rgb else "minisblack",
                   tile=(256, 256) if large else None, resolutionunit="CENTIMETER")
    with atomic_write(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=est > 2 ** 31 - 2 ** 26, ome=True) as tif:
            tif.write(data, subifds=levels - 1, metadata=md,
                      resolution=(1e7 / vox["x"], 1e7 / vox["y"]), **options)
            level = data
            for k in range(1, levels):
                level = downsample_yx(level, y_axis, labels=is_label_image(image))
                tif.write(level.astype(dtype, copy=False), subfiletype=1,
                          resolution=(1e7 / (vox["x"] * 2 ** k), 1e7 / (vox["y"] * 2 ** k)),
                          **options)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_grid(xml: str, path):
    """(provenance dict or None, Pixels attributes, first Plane attributes) of OME-XML."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise FormatError(f"unreadable OME-XML: {exc}", path=path) from None
    pixels, plane, prov = None, None, None
    for el in root.iter():
        name = _local(el.tag)
        if name == "Pixels" and pixels is None:
            pixels = dict(el.attrib)
        elif name == "Plane" and plane is None:
            plane = dict(el.attrib)
        elif name == "MapAnnotation" and el.attrib.get("Namespace") == PROVENANCE_KEY:
            for m in el.iter():
                if _local(m.tag) == "M" and m.attrib.get("K") == PROVENANCE_KEY:
                    try:
                        prov = json.loads(m.text or "")
                    except ValueError:
                        raise FormatError(f"the {PROVENANCE_KEY} annotation is not JSON",
                                          path=path) from None
    return prov, pixels or {}, plane or {}


def read_tiff(path: Path, *, level: int = 0) -> VoxelImage | None:
    """An OME-TIFF as a :class:`VoxelImage`; ``None`` when ``path`` is not OME."""
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - any tifffile failure is a format problem
        raise FormatError(f"not a readable TIFF: {exc}", path=path) from None
    with tif:
        if not tif.is_ome:
            return None
        lv = _level(tif, level, path)
        data = lv.asarray()
        tiff_axes = lv.axes
        xml = tif.ome_metadata
    prov, pixels, plane = _ome_grid(xml, path)
    keep = []
    for i, a in enumerate(tiff_axes):
        if a in _FROM_TIFF:
            keep.append(i)
        elif data.shape[i] != 1:
            raise FormatError(f"OME-TIFF axis {a!r} of length {data.shape[i]} is not "
                              f"supported (expected C, Z, Y, X, S)", path=path)
    data = data.reshape([data.shape[i] for i in keep])
    axes = tuple(_FROM_TIFF[tiff_axes[i]] for i in keep)
    order = [a for a in ("c", "z", "y", "x", "rgb") if a in axes]
    data = np.transpose(data, [axes.index(a) for a in order])
    axes = tuple(order)
    spatial = tuple(a for a in axes if a in ("z", "y", "x"))
    if prov is not None:
        voxel, origin = tuple(prov["voxel_nm"]), tuple(prov["origin_nm"])
        names = tuple(prov.get("channel_names", ()))
        unit = prov.get("value_unit", "")
        meta = dict(prov.get("metadata", {}))
        if tuple(prov.get("axes", ())) != axes or len(voxel) != len(spatial):
            raise FormatError(f"the {PROVENANCE_KEY} metadata (axes {prov.get('axes')}) "
                              f"does not match the image (axes {axes})", path=path)
    else:
        voxel, origin = [], []
        for a in spatial:
            key = "PhysicalSize" + a.upper()
            if key not in pixels:
                raise FormatError(f"OME-XML has no {key}; the voxel size is unknown",
                                  path=path)
            v = _nm(pixels[key], pixels.get(key + "Unit", "µm"), key, path)
            voxel.append(v)
            pos = "Position" + a.upper()
            if pos in plane:
                origin.append(_nm(plane[pos], plane.get(pos + "Unit", "µm"), pos, path))
            else:  # no stage position: the first voxel edge at 0 (said in the metadata)
                origin.append(v / 2)
        names = ()
        unit = ""
        meta = {"origin": "stored plane positions" if plane else
                          "not stored; first voxel edge taken at 0"}
    if level:
        voxel, origin = level_grid(voxel, origin, level, spatial)
    meta["source"] = str(path)
    return VoxelImage(data=data, axes=axes, voxel_nm=tuple(map(float, voxel)),
                      origin_nm=tuple(map(float, origin)), channel_names=names,
                      value_unit=unit, metadata=meta)


def read_plain_tiff(path: Path, *, level: int = 0) -> np.ndarray:
    """The first series of a TIFF without OME metadata as an array."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return _level(tif, level, path).asarray()


def _level(tif, level: int, path):
    """Pyramid level ``level`` of the first series of an open TIFF, its size checked
    against the memory budget before it is read."""
    series = tif.series[0]
    if not 0 <= level < len(series.levels):
        raise ParameterError(f"level must be in [0, {len(series.levels) - 1}] for "
                             f"{Path(path).name}, got {level}")
    lv = series.levels[level]
    check_memory(float(np.prod(lv.shape, dtype=float)) * lv.dtype.itemsize,
                 what=f"reading {Path(path).name}")
    return lv
