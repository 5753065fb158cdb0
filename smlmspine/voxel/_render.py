"""Localizations rendered to images: histogram, or each localization's Gaussian
integrated over the voxels.

Grid convention (shared by every function of :mod:`smlmspine.voxel`): axes in
``z, y, x`` order; voxel ``i`` along an axis covers ``[e0 + i v, e0 + (i + 1) v)`` where
``e0`` is the first voxel edge and ``v`` the voxel size; the image's ``origin_nm`` is the
centre of voxel 0, ``e0 + v / 2``. A point at ``c`` nm lies in voxel
``floor((c - origin) / v + 0.5)`` (:meth:`VoxelImage.index_of`).

The Gaussian of a localization with standard deviation ``s`` per axis is integrated over
each voxel (differences of ``erf`` at the voxel edges, separable per axis), not sampled
at voxel centres. It reaches :data:`TRUNCATE_SIGMA` standard deviations (out to the
enclosing voxel edges); the tails beyond are added to the window's end voxels, so every
localization adds exactly its weight to the image, at any ``s`` (also far below one
voxel); its standard deviation is 0.25 % below the Gaussian's (the folded tails). The
kernels are numba, compiled on first use and cached on disk.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._validate import check_memory, finite, non_negative, positive
from ..errors import ParameterError
from ._image import VoxelImage
from ._render_kernels import _kernels

__all__ = ["render", "write_overview", "TRUNCATE_SIGMA", "VALUE_UNIT", "OVERVIEW_PIXEL_NM"]

#: Kernel reach in standard deviations (each side), out to the enclosing voxel edges; the
#: Gaussian's tails beyond are added to the window's end voxels, so the kernel sums to one.
TRUNCATE_SIGMA = 3.0
#: What a rendered value means.
VALUE_UNIT = "localizations per voxel"
#: Pixel size of :func:`write_overview`, nm.
OVERVIEW_PIXEL_NM = 20.0
#: Target size of one slab of a chunked (OME-Zarr) render, bytes.
SLAB_BYTES = 256 * 2 ** 20

_METHODS = ("histogram", "gaussian")


# --------------------------------------------------------------------------- inputs
def _column(table, name, what):
    if name not in table.column_names:
        raise ParameterError(f"{what}: the table has no column {name!r}; columns: "
                             f"{', '.join(table.column_names)}")
    col = table.column(name)
    try:
        arr = col.to_numpy()
    except Exception:  # noqa: BLE001 - nulls or non-numeric (one line for the user)
        arr = np.asarray(col.to_pylist(), dtype=object)
    return arr


def _float_column(table, name, what):
    arr = _column(table, name, what)
    try:
        out = np.ascontiguousarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{what}: column {name!r} is not numeric "
                             f"(type {table.schema.field(name).type})") from None
    return out


def _voxel_sizes(voxel_nm, dims) -> tuple[float, ...]:
    if np.ndim(voxel_nm) == 0:
        v = positive(voxel_nm, "voxel_nm", unit="nm")
        return (v,) * dims
    vals = list(voxel_nm)
    if len(vals) != dims:
        raise ParameterError(f"voxel_nm must be one number or {dims} numbers (z, y, x order "
                             f"for 3D; y, x for 2D), got {len(vals)}: {vals!r}")
    return tuple(positive(v, "voxel_nm", unit="nm") for v in vals)


def _parse_roi(roi_nm, dims):
    """``(x0, y0, x1, y1[, z0, z1])`` as {axis: (lo, hi)} (edges in nm)."""
    if roi_nm is None:
        return {}
    vals = list(roi_nm)
    if len(vals) not in (4, 6):
        raise ParameterError(f"roi_nm must be (x0, y0, x1, y1) or (x0, y0, x1, y1, z0, z1) "
                             f"in nm, got {len(vals)} values: {vals!r}")
    vals = [finite(v, "roi_nm", unit="nm") for v in vals]
    out = {"x": (vals[0], vals[2]), "y": (vals[1], vals[3])}
    if len(vals) == 6:
        out["z"] = (vals[4], vals[5])
    for axis, (lo, hi) in out.items():
        if not hi > lo:
            raise ParameterError(f"roi_nm: {axis}1 must be greater than {axis}0, got "
                                 f"{axis}0={lo:g}, {axis}1={hi:g}")
    return out


def _sigmas(table, method, sigma_nm, dims, rows):
    """(sigma_xy, sigma_z) arrays in nm (length N or 1); 0 = histogram."""
    zero = np.zeros(1)
    if method == "histogram":
        return zero, zero, "none"
    if isinstance(sigma_nm, str):
        if sigma_nm != "precision":
            raise ParameterError(f"sigma_nm must be 'precision' or a number in nm, got "
                                 f"{sigma_nm!r}")
        cols = ["precision_xy"] + (["precision_z"] if dims == 3 else [])
        out = []
        for name in cols:
            if name not in table.column_names:
                raise ParameterError(
                    f"sigma_nm='precision' needs column {name!r}, which the table lacks; "
                    f"pass a fixed sigma_nm (e.g. sigma_nm=10.0)")
            s = _float_column(table, name, "sigma_nm='precision'")
            if rows is not None:
                s = s[rows]
            bad = ~(np.isfinite(s) & (s >= 0))
            if bad.any():
                raise ParameterError(
                    f"sigma_nm='precision': {int(bad.sum())} of {s.size} localizations have "
                    f"no finite non-negative {name} (e.g. {s[bad][0]!r}); filter them or "
                    f"pass a fixed sigma_nm")
            out.append(s)
        return out[0], (out[1] if dims == 3 else zero), "precision"
    if np.ndim(sigma_nm) == 0:
        s = non_negative(sigma_nm, "sigma_nm", unit="nm")
        return np.array([s]), np.array([s if dims == 3 else 0.0]), s
    vals = list(sigma_nm)
    if len(vals) != 2:
        raise ParameterError(f"sigma_nm must be 'precision', one number or (sigma_xy, "
                             f"sigma_z) in nm, got {vals!r}")
    sxy = non_negative(vals[0], "sigma_nm", unit="nm")
    sz = non_negative(vals[1], "sigma_nm", unit="nm")
    return np.array([sxy]), np.array([sz if dims == 3 else 0.0]), [sxy, sz]


class _Job:
    """Everything a render needs, validated, before any image is allocated."""

    __slots__ = ("coords", "sxy", "sz", "floor", "plane", "w", "shape", "edges", "voxel",
                 "origin", "n_planes", "channel_names", "rgb", "dims", "meta", "trunc")


def _prepare(table, *, voxel_nm, dims, method, sigma_nm, roi_nm, weights, by, color_by,
             min_sigma_nm) -> _Job:
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        raise ParameterError(f"table must be a pyarrow.Table of localizations, got "
                             f"{type(table).__name__}")
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ParameterError(f"dims must be 2 or 3, got {dims!r}")
    if method not in _METHODS:
        raise ParameterError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    voxel = _voxel_sizes(voxel_nm, dims)
    floor_nm = non_negative(min_sigma_nm, "min_sigma_nm", unit="nm")
    roi = _parse_roi(roi_nm, dims)
    for name in ("x", "y") + (("z",) if dims == 3 or "z" in roi else ()):
        if name not in table.column_names:
            what = "dims=3" if dims == 3 else "roi_nm with z0, z1"
            raise ParameterError(f"{what} needs column {name!r}, which the table lacks; "
                                 f"columns: {', '.join(table.column_names)}")
    coords = {a: _float_column(table, a, "render") for a in
              ("x", "y", "z") if a in table.column_names and (a != "z" or dims == 3
                                                               or "z" in roi)}
    rows = None
    if dims == 2 and "z" in roi:  # a 2D projection of a z slab
        z = coords.pop("z")
        lo, hi = roi.pop("z")
        rows = np.flatnonzero((z >= lo) & (z < hi))
        coords = {a: c[rows] for a, c in coords.items()}
    bounds = {}
    for a, c in coords.items():
        lo, hi = (float(c.min()), float(c.max())) if c.size else (0.0, 0.0)
        if not (math.isfinite(lo) and math.isfinite(hi)):   # NaN and inf propagate
            bad = ~np.isfinite(c)
            raise ParameterError(f"render: column {a!r} has {int(bad.sum())} non-finite "
                                 f"values (e.g. {c[bad][0]!r}); filter them first")
        bounds[a] = (lo, hi)
    n = coords["x"].size
    sxy, sz, sigma_meta = _sigmas(table, method, sigma_nm, dims, rows)
    trunc = TRUNCATE_SIGMA

    # weights
    if weights is None:
        w = np.ones((1, 1))
        w_meta = None
    else:
        if isinstance(weights, str):
            w_arr = _float_column(table, weights, "weights")
            w_meta = weights
        else:
            w_arr = np.asarray(weights, dtype=np.float64).reshape(-1)
            w_meta = "array"
            if w_arr.size != table.num_rows:
                raise ParameterError(f"weights must have one value per localization "
                                     f"({table.num_rows}), got {w_arr.size}")
        if rows is not None:
            w_arr = w_arr[rows]
        if not np.all(np.isfinite(w_arr)):
            raise ParameterError("weights must be finite numbers")
        w = w_arr[:, None]

    # channels (by) and colours (color_by)
    plane = np.zeros(1, dtype=np.int64)
    channel_names = ()
    if by is not None:
        if not isinstance(by, str):
            raise ParameterError(f"by must be a column name or None, got {by!r}")
        vals = _column(table, by, "by")
        if rows is not None:
            vals = vals[rows]
        if vals.dtype == object and any(v is None for v in vals):
            raise ParameterError(f"by={by!r}: the column has missing values")
        uniq, inv = np.unique(vals, return_inverse=True)
        plane = inv.astype(np.int64).reshape(-1)
        channel_names = tuple(f"{by}={u}" for u in uniq.tolist())
        if not channel_names:
            channel_names = (f"{by}",)
    rgb = color_by is not None
    color_meta = None
    if rgb:
        if not isinstance(color_by, str):
            raise ParameterError(f"color_by must be 'z', a column name or None, got "
                                 f"{color_by!r}")
        cv = _float_column(table, color_by, "color_by")
        if rows is not None:
            cv = cv[rows]
        ok = np.isfinite(cv)
        if not ok.all():
            raise ParameterError(f"color_by={color_by!r}: {int((~ok).sum())} values are not "
                                 f"finite; filter them first")
        lo, hi = (float(cv.min()), float(cv.max())) if cv.size else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        lut = _colour_table()
        idx = np.clip(((cv - lo) / span * (len(lut) - 1)).round(), 0, len(lut) - 1)
        colours = lut[idx.astype(np.int64)]
        w = colours * (w if w.shape[0] > 1 else w[0, 0])
        plane = plane * 3
        color_meta = {"column": color_by, "range": [lo, hi], "colormap": "turbo"}
    n_channels = max(1, len(channel_names))
    n_planes = n_channels * (3 if rgb else 1)

    # grid (zyx)
    axes = ("z", "y", "x")[3 - dims:]
    sig_max = {"xy": float(np.max(sxy)) if sxy.size else 0.0,
               "z": float(np.max(sz)) if sz.size else 0.0}
    edges, shape = [], []
    for a, v in zip(axes, voxel):
        if a in roi:
            lo, hi = roi[a]
            count = max(1, int(math.ceil((hi - lo) / v - 1e-9)))
            edges.append(lo)
            shape.append(count)
            continue
        if n == 0:
            raise ParameterError("render: no localizations to render and no roi_nm to "
                                 "define the image")
        s = max(sig_max["z" if a == "z" else "xy"], floor_nm) if method == "gaussian" else 0.0
        pad = trunc * s
        e0 = math.floor((bounds[a][0] - pad) / v) * v
        last = bounds[a][1] + pad
        count = int(math.floor((last - e0) / v)) + 1
        edges.append(e0)
        shape.append(count)
    voxel_z = voxel if dims == 3 else (1.0,) + voxel
    origin = [e + v / 2 for e, v in zip(edges, voxel)]
    job = _Job()
    job.coords = (coords["z"] if dims == 3 else np.zeros(1), coords["y"], coords["x"])
    job.sxy, job.sz, job.floor = sxy, sz, floor_nm
    if method == "histogram":
        job.floor = 0.0
    job.plane, job.w = plane, np.ascontiguousarray(w, dtype=np.float64)
    job.shape = tuple(shape)
    job.edges = tuple(edges)
    job.voxel = tuple(voxel)
    job.origin = tuple(origin)
    job.n_planes = n_planes
    job.channel_names = channel_names
    job.rgb = rgb
    job.dims = dims
    job.trunc = trunc
    job.meta = {"method": method, "sigma_nm": sigma_meta,
                "min_sigma_nm": floor_nm if method == "gaussian" else None,
                "truncate_sigma": trunc if method == "gaussian" else None,
                "weights": w_meta, "by": by, "color_by": color_meta,
                "roi_nm": None if roi_nm is None else [float(r) for r in roi_nm],
                "n_input": int(table.num_rows), "value_unit": VALUE_UNIT,
                "pixel_convention": "origin_nm is the centre of voxel 0 (first edge + "
                                    "voxel/2)"}
    job.meta["_voxel_zyx"] = voxel_z
    return job


def _colour_table():
    import matplotlib

    return np.asarray(matplotlib.colormaps["turbo"](np.linspace(0, 1, 256))[:, :3], float)


def _run(job, img, off, rows=None) -> int:
    """Render ``job`` (rows ``rows``, default all) into ``img`` (P, nz, ny, nx) at
    global voxel offset ``off`` (z, y, x); returns the localizations whose centre voxel
    lies in ``img``."""
    kernels = _kernels()
    z, y, x = job.coords
    sxy, sz, plane, w = job.sxy, job.sz, job.plane, job.w
    if rows is not None:
        y, x = y[rows], x[rows]
        z = z[rows] if z.size > 1 else z
        sxy = sxy[rows] if sxy.size > 1 else sxy
        sz = sz[rows] if sz.size > 1 else sz
        plane = plane[rows] if plane.size > 1 else plane
        w = w[rows] if w.shape[0] > 1 else w
    voxel = np.array(job.meta["_voxel_zyx"], float)
    origin = np.array(job.origin if job.dims == 3 else (0.5,) + job.origin, float)
    if job.dims == 2:
        z = np.zeros(1)
    c = [np.ascontiguousarray(a, float) for a in (z, y, x)]
    plane = np.ascontiguousarray(plane, np.int64)
    w = np.ascontiguousarray(w, float)
    off = np.asarray(off, np.int64)
    if job.meta["method"] == "histogram":
        return int(kernels["hist"](img, off, origin, voxel, *c, plane, w))
    smax = max(float(sxy.max()) if sxy.size else 0.0, float(sz.max()) if sz.size else 0.0,
               job.floor)
    bufs = []
    for a in range(3):
        win = int(math.ceil(2 * job.trunc * smax / voxel[a])) + 3
        bufs.append(np.empty(max(1, min(win, img.shape[1 + a])), np.float32))
    # localizations gathered in bands of 8 image rows: neighbours in this order touch the
    # same rows, which keeps the scatter in cache (2-3x faster than file order)
    order = kernels["band_order"](c[1], origin[1], voxel[1], off[1], img.shape[2], 8)[0]

    def take(a):
        return a if a.shape[0] == 1 else np.ascontiguousarray(a[order])

    c = [take(a) for a in c]
    return int(kernels["gauss"](img, off, origin, voxel, *c,
                                take(np.ascontiguousarray(sz, float)),
                                take(np.ascontiguousarray(sxy, float)), float(job.floor),
                                float(job.floor) if job.dims == 3 else 0.0,
                                take(plane), take(w), float(job.trunc), *bufs,
                                kernels["erf_table"], np.arange(c[2].shape[0])))


def _axes_of(job) -> tuple:
    spatial = ("z", "y", "x")[3 - job.dims:]
    return (("c",) if job.channel_names else ()) + spatial + (("rgb",) if job.rgb else ())


def _arrange(job, planes):
    """(P, nz, ny, nx) planes as the image array of :func:`_axes_of`."""
    nc = max(1, len(job.channel_names))
    k = 3 if job.rgb else 1
    a = planes.reshape((nc, k) + planes.shape[1:])      # c, k, z, y, x
    if job.dims == 2:
        a = a[:, :, 0]                                   # c, k, y, x
    a = np.moveaxis(a, 1, -1)                            # c, ..., k
    if not job.rgb:
        a = a[..., 0]
    if not job.channel_names:
        a = a[0]
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------- public
def render(table, *, voxel_nm, dims: int = 2, method: str = "histogram",
           sigma_nm="precision", roi_nm=None, weights=None, by: str | None = None,
           color_by: str | None = None, min_sigma_nm: float = 0.0, out=None,
           version: str = "0.5", progress: bool = False) -> VoxelImage:
    """Render localizations as a 2D or 3D image (localizations per voxel, float32).

    ``histogram`` counts the localizations in each voxel. ``gaussian`` spreads each
    localization as a Gaussian with its own precision (``precision_xy`` in x and y,
    ``precision_z`` in z) or a fixed ``sigma_nm``, integrated over each voxel (``erf``
    differences, separable per axis) out to 3 sigma (to the enclosing voxel edges), the
    tails beyond added to the end voxels: every localization adds exactly its weight, at
    any sigma. The image therefore sums to the number of localizations it holds (with the
    default ROI, all of them; with ``roi_nm``, the Gaussian mass falling inside it).
    Voxel ``i`` covers ``[e0 + i v, e0 + (i + 1) v)``; ``origin_nm`` is the centre of
    voxel 0.

    Parameters
    ----------
    table : pyarrow.Table
        Localization table (``x``, ``y``, and ``z`` for ``dims=3``; nm). MINFLUX tables
        work like any other.
    voxel_nm : float or sequence of float
        Voxel (pixel) size in nm; one number, or one per spatial axis in ``z, y, x``
        (``y, x``) order.
    dims : {2, 3}, optional
        2: an x-y image (z ignored unless ``roi_nm`` gives a z range); 3: a z-y-x volume.
    method : {"histogram", "gaussian"}, optional
        Counting, or each localization's Gaussian integrated over the voxels.
    sigma_nm : "precision", float or (float, float), optional
        ``gaussian`` only: ``"precision"`` (each localization's ``precision_xy``,
        ``precision_z``), one sigma for every axis, or ``(sigma_xy, sigma_z)``, nm.
    roi_nm : sequence of 4 or 6 float, optional
        ``(x0, y0, x1, y1[, z0, z1])``: the image's first and last voxel edges in nm
        (the last voxel is complete: the extent is rounded up to whole voxels). In 2D a
        z range selects the localizations of that slab. Default: the data's bounds,
        on a grid whose edges are multiples of the voxel size, padded by the kernel's
        reach for ``gaussian``.
    weights : str or array_like, optional
        Column name or one weight per localization (default 1 each).
    by : str, optional
        Column (e.g. ``"channel"``) whose values become image channels (axis ``"c"``,
        named ``"channel=0"``, ...).
    color_by : str, optional
        ``"z"`` or any numeric column: an RGB image (last axis ``"rgb"``) where each
        localization adds its weight times its colour (matplotlib ``turbo`` over the
        column's range, recorded in the metadata).
    min_sigma_nm : float, optional
        ``gaussian``: lower bound of every sigma, nm (default 0: none).
    out : str or Path, optional
        An ``.ome.zarr`` path: render block by block (blocks of bounded size with a
        kernel halo) straight into an OME-Zarr store (the layout of
        :func:`smlmspine.voxel.write_image`, pyramid included), for images larger than
        memory; the returned image's ``data``
        is the store's zarr array. Without ``out`` the image is a numpy array, refused
        beyond the memory budget.
    version : {"0.5", "0.4"}, optional
        With ``out``: the OME-Zarr version (0.5 on Zarr v3, 0.4 on Zarr v2).
    progress : bool, optional
        With ``out``: a progress bar over the slabs on stderr.

    Returns
    -------
    smlmspine.voxel.VoxelImage
        ``data`` float32 with axes ``([c,] [z,] y, x[, rgb])``; ``voxel_nm`` and
        ``origin_nm`` in ``z, y, x`` order; ``value_unit`` ``"localizations per
        voxel"``; ``metadata`` holding the method, sigma, ROI and counts
        (``n_rendered``: localizations whose centre lies in the image).

    Raises
    ------
    ParameterError
        A bad parameter, a missing column, non-finite coordinates or precisions, or an
        image over the memory budget (``SMLMSPINE_MEMORY_BUDGET_GB``; pass ``out=`` for
        a chunked OME-Zarr render).

    Examples
    --------
    >>> import numpy as np
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [5.0, 15.0, 16.0], "y": [5.0, 5.0, 5.0]})
    >>> img = render(t, voxel_nm=10.0)
    >>> img.data.tolist(), img.origin_nm
    ([[1.0, 2.0]], (5.0, 5.0))
    >>> g = render(t, voxel_nm=10.0, method="gaussian", sigma_nm=2.0)
    >>> round(float(g.data.sum()), 5)
    3.0
    """
    if version not in ("0.5", "0.4"):
        raise ParameterError(f"version must be '0.5' or '0.4', got {version!r}")
    job = _prepare(table, voxel_nm=voxel_nm, dims=dims, method=method, sigma_nm=sigma_nm,
                   roi_nm=roi_nm, weights=weights, by=by, color_by=color_by,
                   min_sigma_nm=min_sigma_nm)
    if out is not None:
        from ._omezarr import render_to_zarr

        return render_to_zarr(job, out, version=version, progress=progress, finish=_finish,
                              run=_run, slab_bytes=SLAB_BYTES)
    full = (job.n_planes,) + ((1,) if dims == 2 else ()) + job.shape
    n_vox = float(np.prod(np.array(full, dtype=float)))
    # the image (twice: planes and the arranged copy) and the gathered rows (~7 arrays)
    shape = "x".join(map(str, ((len(job.channel_names),) if job.channel_names else ())
                         + job.shape + ((3,) if job.rgb else ())))
    check_memory(n_vox * 8 + 56.0 * job.coords[2].size,
                 what=f"render at voxel_nm={voxel_nm}: a {shape} float32 image (an "
                      f".ome.zarr output renders in blocks; or use a larger voxel size or "
                      f"a smaller ROI)")
    planes = np.zeros(full, dtype=np.float32)
    inside = _run(job, planes, (0, 0, 0))
    return _finish(job, _arrange(job, planes), inside)


def _finish(job, data, inside) -> VoxelImage:
    meta = {k: v for k, v in job.meta.items() if not k.startswith("_")}
    meta["n_rendered"] = int(inside)
    meta["first_edge_nm"] = list(job.edges)
    return VoxelImage(data=data, axes=_axes_of(job), voxel_nm=tuple(job.voxel),
                      origin_nm=tuple(job.origin), channel_names=tuple(job.channel_names),
                      value_unit=VALUE_UNIT + (" (weighted by colour)" if job.rgb else ""),
                      metadata=meta)


def write_overview(table, outdir, *, pixel_nm: float = OVERVIEW_PIXEL_NM,
                   name: str = "overview.ome.tif") -> Path:
    """Write a 2D overview image of a localization table (``overview.ome.tif``).

    The image is a :func:`smlmspine.voxel.render` at ``pixel_nm`` (20 nm): ``gaussian`` with each
    localization's ``precision_xy`` when the table has finite, non-negative precisions
    for every row, else a ``histogram``; the method used is in the file's metadata.

    Parameters
    ----------
    table : pyarrow.Table
        Localization table (nm).
    outdir : str or Path
        Existing folder to write into.
    pixel_nm : float, optional
        Pixel size in nm (default 20).
    name : str, optional
        File name (default ``overview.ome.tif``; ``.ome.tif``/``.ome.zarr``).

    Returns
    -------
    Path
        The written file (written atomically).

    Raises
    ------
    ParameterError
        An empty table, or an image over the memory budget.

    Examples
    --------
    >>> import tempfile
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 500.0], "y": [0.0, 300.0], "precision_xy": [8.0, 9.0]})
    >>> write_overview(t, tempfile.mkdtemp()).name
    'overview.ome.tif'
    """
    from ._io import write_image

    pixel = positive(pixel_nm, "pixel_nm", unit="nm")
    method = "histogram"
    if "precision_xy" in table.column_names and table.num_rows:
        p = _float_column(table, "precision_xy", "write_overview")
        if np.all(np.isfinite(p) & (p >= 0)):
            method = "gaussian"
    image = render(table, voxel_nm=pixel, dims=2, method=method, sigma_nm="precision")
    return write_image(image, Path(outdir) / name)
