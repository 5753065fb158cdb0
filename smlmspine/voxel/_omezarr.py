"""OME-Zarr (NGFF 0.5 on Zarr v3, or 0.4 on Zarr v2) images, and chunked rendering into
an OME-Zarr store in bounded memory."""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from .._validate import check_memory
from ..errors import FormatError, ParameterError
from ._image import VoxelImage
from ._io_common import (LABEL_UNIT, PROVENANCE_KEY, _as_stored, _stored_dtype,
                         check_image_output, downsample_yx, image_format, is_label_image,
                         level_grid, provenance, pyramid_levels)

__all__ = ["write_ome_zarr", "read_ome_zarr", "render_to_zarr", "CHUNK_YX"]

#: Chunk extent along y and x (z: up to 64; one channel per chunk).
CHUNK_YX = 256
#: UDUNITS-2 length units the reader converts to nm.
_NM_PER_UNIT = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "centimeter": 1e7,
                "meter": 1e9, "angstrom": 0.1, "picometer": 1e-3}


def _zarr_axes(image_axes) -> tuple:
    """Axes as stored: an ``rgb`` axis becomes (part of) the channel axis ``c``."""
    spatial = tuple(a for a in image_axes if a in ("z", "y", "x"))
    has_c = "c" in image_axes or "rgb" in image_axes
    return (("c",) if has_c else ()) + spatial


def _to_zarr_layout(data, image_axes):
    """Image data in the stored axis order (rgb folded into c: channel-major)."""
    a = np.asarray(data)
    if "rgb" in image_axes:
        a = np.moveaxis(a, -1, 1 if "c" in image_axes else 0)
        if "c" in image_axes:
            a = a.reshape((a.shape[0] * 3,) + a.shape[2:])
    return a


def _channel_labels(image) -> list[str]:
    names = list(image.channel_names)
    nc = np.shape(image.data)[0] if "c" in image.axes else 1
    if not names and "c" in image.axes:
        names = [f"channel {i}" for i in range(nc)]
    if "rgb" in image.axes:
        base = names or [""]
        names = [f"{n} {k}".strip() for n in base for k in ("R", "G", "B")]
    return names


def _multiscale(name, zaxes, voxel, origin, levels, version) -> dict:
    spatial = tuple(a for a in zaxes if a != "c")
    axes = [{"name": "c", "type": "channel"} if a == "c" else
            {"name": a, "type": "space", "unit": "nanometer"} for a in zaxes]
    datasets = []
    for k in range(levels):
        v, o = level_grid(voxel, origin, k, spatial)
        lead = [1.0] if "c" in zaxes else []
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": lead + list(v)},
            {"type": "translation", "translation": [0.0] * len(lead) + list(o)}]})
    ms = {"name": name, "axes": axes, "datasets": datasets}
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


def _chunks(shape, zaxes) -> tuple:
    return tuple(1 if a == "c" else (min(n, 64) if a == "z" else min(n, CHUNK_YX))
                 for a, n in zip(zaxes, shape))


def _create(group, path, shape, dtype, zaxes, version):
    opts = dict(shape=shape, dtype=dtype, chunks=_chunks(shape, zaxes), fill_value=0)
    if version == "0.5":
        opts["dimension_names"] = list(zaxes)
    else:
        opts["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return group.create_array(path, **opts)


def _attrs(ms, version, *, prov, label_source=None, labels=None, channels=()) -> dict:
    ome = {"multiscales": [ms]} if ms is not None else {}
    if labels is not None:
        ome["labels"] = list(labels)
    if label_source is not None:
        ome["image-label"] = ({"source": {"image": label_source}} if label_source else {})
        if version == "0.4":
            ome["image-label"]["version"] = "0.4"
    if version == "0.5":
        attrs = {"ome": dict(version="0.5", **ome)}
    else:
        attrs = dict(ome)
    if prov is not None:
        attrs[PROVENANCE_KEY] = prov
    return attrs


def _write_multiscale(group, image, version, *, label_source=None):
    """The image's pyramid into ``group`` (arrays ``0``, ``1``, ...) with its metadata."""
    dtype = _stored_dtype(image)
    shape = np.shape(image.data)
    check_memory(float(np.prod(shape, dtype=float)) * dtype.itemsize * 2,
                 what=f"writing a {'x'.join(map(str, shape))} image to OME-Zarr")
    data = _to_zarr_layout(_as_stored(image.data, image), image.axes)
    zaxes = _zarr_axes(image.axes)
    y_axis = zaxes.index("y")
    levels = pyramid_levels(data.shape[y_axis], data.shape[y_axis + 1])
    level = data
    for k in range(levels):
        if k:
            level = downsample_yx(level, y_axis, labels=is_label_image(image)).astype(
                dtype, copy=False)
        arr = _create(group, str(k), level.shape, dtype, zaxes, version)
        arr[...] = level
    ms = _multiscale(image.metadata.get("name", "image") if image.metadata else "image",
                     zaxes, image.voxel_nm, image.origin_nm, levels, version)
    is_label = is_label_image(image)
    group.attrs.update(_attrs(ms, version, prov=provenance(image),
                              label_source=(label_source if label_source is not None
                                            else ("" if is_label else None))))
    return levels


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished store ``tmp`` to ``path``; an existing store there is moved
    aside first and removed only after the rename."""
    old = None
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _open_group(tmp: Path, version: str):
    import zarr

    return zarr.open_group(str(tmp), mode="w", zarr_format=3 if version == "0.5" else 2)


def write_ome_zarr(image: VoxelImage, path: Path, *, labels: dict, version: str) -> None:
    """Write ``image`` (and ``labels``) as OME-Zarr at ``path``, atomically (see
    :func:`smlmspine.voxel.write_image`)."""
    path = Path(path)
    tmp = _temp_sibling(path)
    try:
        root = _open_group(tmp, version)
        levels = _write_multiscale(root, image, version)
        if labels:
            lg = root.create_group("labels")
            lg.attrs.update(_attrs(None, version, prov=None, labels=list(labels)))
            for name, lab in labels.items():
                sub = lg.create_group(name)
                if _write_multiscale(sub, lab, version, label_source="../../") != levels:
                    raise ParameterError(f"labels[{name!r}] gives a different number of "
                                         f"pyramid levels than the image")
        _swap_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_ome_zarr(path: Path, *, label: str | None = None, level: int = 0,
                  lazy: bool = False) -> VoxelImage:
    """An OME-Zarr image (or ``labels/<label>``) as a :class:`VoxelImage`."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        if label is not None:
            if "labels" not in group or label not in group["labels"]:
                raise FormatError(f"has no label image {label!r} (labels/{label})",
                                  path=path)
            group = group["labels"][label]
        attrs = group.attrs.asdict()
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any zarr failure is a format problem
        raise FormatError(f"not a readable Zarr group: {exc}", path=path) from None
    ome = attrs.get("ome", attrs)
    try:
        ms = ome["multiscales"][0]
        axes = tuple(a["name"] for a in ms["axes"])
        datasets = ms["datasets"]
    except (KeyError, IndexError, TypeError):
        raise FormatError("no OME-Zarr multiscales metadata", path=path) from None
    if not 0 <= level < len(datasets):
        raise ParameterError(f"level must be in [0, {len(datasets) - 1}] for "
                             f"{Path(path).name}, got {level}")
    arr = group[datasets[level]["path"]]
    spatial = tuple(a for a in axes if a in ("z", "y", "x"))
    if set(axes) - {"c", "z", "y", "x"}:
        extra = [a for a in axes if a not in ("c", "z", "y", "x")]
        if any(arr.shape[axes.index(a)] != 1 for a in extra):
            raise FormatError(f"axes {extra} of length > 1 are not supported", path=path)
    prov = attrs.get(PROVENANCE_KEY)
    if prov is not None:
        voxel, origin = level_grid(prov["voxel_nm"], prov["origin_nm"], level, spatial)
        img_axes = tuple(prov["axes"])
        names = tuple(prov.get("channel_names", ()))
        unit = prov.get("value_unit", "")
        meta = dict(prov.get("metadata", {}))
    else:
        voxel, origin = _from_transforms(ms, datasets[level], axes, spatial, path)
        img_axes = tuple(a for a in axes if a in ("c", "z", "y", "x"))
        names, unit, meta = (), LABEL_UNIT if label is not None else "", {}
    if lazy:
        if "rgb" in img_axes:
            raise ParameterError("an RGB image is read whole (lazy=False)")
        data = arr
    else:
        check_memory(float(np.prod(arr.shape, dtype=float)) * arr.dtype.itemsize,
                     what=f"reading {Path(path).name} (pass lazy=True to keep it on disk)")
        data = np.asarray(arr[...])
        keep = [i for i, a in enumerate(axes) if a in ("c", "z", "y", "x")]
        data = data.reshape([data.shape[i] for i in keep])
        if "rgb" in img_axes:
            nc = data.shape[0] // 3
            data = np.moveaxis(data.reshape((nc, 3) + data.shape[1:]), 1, -1)
            if "c" not in img_axes:
                data = data[0]
    meta["source"] = str(path)
    return VoxelImage(data=data, axes=img_axes, voxel_nm=tuple(map(float, voxel)),
                      origin_nm=tuple(map(float, origin)), channel_names=names,
                      value_unit=unit, metadata=meta)


def _from_transforms(ms, dataset, axes, spatial, path):
    """Voxel size and origin (nm) from NGFF scale / translation and axis units."""
    scale = [1.0] * len(axes)
    trans = [0.0] * len(axes)
    for t in list(ms.get("coordinateTransformations", [])) + \
            list(dataset.get("coordinateTransformations", [])):
        if t.get("type") == "scale":
            scale = [a * b for a, b in zip(scale, t["scale"])]
        elif t.get("type") == "translation":
            trans = [a + b for a, b in zip(trans, t["translation"])]
    units = {a["name"]: a.get("unit") for a in ms["axes"]}
    voxel, origin = [], []
    for a in spatial:
        unit = units.get(a)
        if unit not in _NM_PER_UNIT:
            raise FormatError(f"axis {a!r} has unit {unit!r}; expected a length unit "
                              f"({', '.join(_NM_PER_UNIT)})", path=path)
        f = _NM_PER_UNIT[unit]
        i = axes.index(a)
        voxel.append(scale[i] * f)
        origin.append(trans[i] * f)
    return voxel, origin


def render_to_zarr(job, out, *, version, progress, finish, run, slab_bytes):
    """Render a prepared job (:func:`smlmspine.voxel.render`) block by block into an
    OME-Zarr store at ``out``; blocks are bounded (``slab_bytes``) and take the
    localizations of their y band plus a kernel halo. ``finish`` and ``run`` are
    :mod:`._render`'s result builder and block renderer."""
    from tqdm import tqdm

    from ._render_kernels import _kernels

    out = Path(out)
    if image_format(out) != "ome-zarr":
        raise ParameterError(f"out must be an .ome.zarr path (chunked rendering), got "
                             f"{out.name!r}")
    if job.rgb:
        raise ParameterError("color_by renders in memory; leave out= out, or render "
                             "without color_by")
    check_image_output(out)
    P = job.n_planes
    dims = job.dims
    nz = job.shape[0] if dims == 3 else 1
    ny, nx = job.shape[-2], job.shape[-1]
    zaxes = (("c",) if job.channel_names else ()) + ("z", "y", "x")[3 - dims:]
    full_shape = ((P,) if job.channel_names else ()) + tuple(job.shape)
    levels = pyramid_levels(ny, nx)
    row_bytes = 4.0 * P * nz
    # block extent: multiples of the chunk (so level-0 chunks are written whole)
    ws = nx if row_bytes * nx * CHUNK_YX <= slab_bytes else max(
        CHUNK_YX, int(slab_bytes // (row_bytes * CHUNK_YX * CHUNK_YX)) * CHUNK_YX)
    hs = max(CHUNK_YX, int(slab_bytes // (row_bytes * ws * CHUNK_YX)) * CHUNK_YX)
    block_bytes = row_bytes * hs * ws
    n = job.coords[2].size
    check_memory(block_bytes * 2.5 + 24.0 * n,
                 what=f"chunked render: blocks of {hs}x{ws} voxels x {nz} planes x {P} "
                      f"channels")
    # rows grouped by bands of 8 image rows (counting sort): a block takes the bands it
    # covers plus the kernel's reach (halo) on either side
    voxel = job.meta["_voxel_zyx"]
    band = 8
    nb = (ny + band - 1) // band
    order, starts = _kernels()["band_order"](np.ascontiguousarray(job.coords[1], float),
                                             job.origin[-2], voxel[1], 0, ny, band)
    if job.meta["method"] == "gaussian":
        smax = max(float(np.max(job.sxy)), float(np.max(job.sz)), job.floor)
        halo = int(math.ceil(job.trunc * smax / voxel[1])) + 2
    else:
        halo = 0
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.part")
    inside = 0
    try:
        root = _open_group(tmp, version)
        arrays = []
        shape = full_shape
        for k in range(levels):
            if k:
                shape = shape[:-2] + ((shape[-2] + 1) // 2, (shape[-1] + 1) // 2)
            arrays.append(_create(root, str(k), shape, np.float32, zaxes, version))
        blocks = [(y0, x0) for y0 in range(0, ny, hs) for x0 in range(0, nx, ws)]
        for y0, x0 in tqdm(blocks, desc="render", unit="block", disable=not progress):
            h, w = min(hs, ny - y0), min(ws, nx - x0)
            b0 = max(0, (y0 - halo) // band)
            b1 = min(nb, -(-(y0 + h + halo) // band))
            rows = order[starts[b0]:starts[b1]]
            img = np.zeros((P, nz, h, w), np.float32)
            inside += run(job, img, (0, y0, x0), rows=rows)
            block = img if job.channel_names else img[0]
            if dims == 2:
                block = block[:, 0] if job.channel_names else block[0]
            del img
            for k, arr in enumerate(arrays):
                if k:
                    block = downsample_yx(block, block.ndim - 2, labels=False)
                f = 2 ** k
                sl = (Ellipsis, slice(y0 // f, y0 // f + block.shape[-2]),
                      slice(x0 // f, x0 // f + block.shape[-1]))
                arr[sl] = block
        result = finish(job, None, inside)
        prov_img = VoxelImage(data=np.empty((0,) * len(zaxes)), axes=zaxes, voxel_nm=job.voxel,
                              origin_nm=job.origin, channel_names=job.channel_names,
                              value_unit=result.value_unit,
                              metadata=dict(result.metadata, chunked=True))
        ms = _multiscale("render", zaxes, job.voxel, job.origin, levels, version)
        root.attrs.update(_attrs(ms, version, prov=provenance(prov_img)))
        _swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return read_ome_zarr(out, lazy=True)
