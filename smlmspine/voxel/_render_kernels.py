"""numba kernels of :func:`smlmspine.voxel.render`: the integrated-Gaussian splat, the
histogram scatter and the row-band order (compiled on first use, cached on disk;
importing this module does not import numba)."""

from __future__ import annotations

import numpy as np

__all__ = ["ERF_STEP", "ERF_END"]

#: Step and end of the erf table (linear interpolation; absolute error < 2e-9, monotone,
#: so the per-voxel weights of a localization telescope to exactly its weight).
ERF_STEP = 1.0 / 8192
ERF_END = 6.5


def _erf_table() -> np.ndarray:
    from scipy.special import erf

    return erf(np.arange(0.0, ERF_END + 2 * ERF_STEP, ERF_STEP))


def _erf_lookup(z, tab, inv_h):  # pragma: no cover - numba
    """erf(z) from the table (odd, monotone)."""
    a = abs(z) * inv_h
    if a >= tab.shape[0] - 1:
        r = 1.0
    else:
        i = np.int64(a)
        r = tab[i] + (a - i) * (tab[i + 1] - tab[i])
    return r if z >= 0 else -r


def _axis_weights(u, su, off, n, trunc, buf, tab, inv_h):  # pragma: no cover - numba
    """Weights of one localization along one axis, in ``buf``; returns (first local
    index, count). ``u`` position in voxels (voxel ``i`` covers ``[i, i + 1)``), ``su``
    sigma in voxels (<= 0: all in one voxel); ``off`` global index of local voxel 0;
    ``n`` voxels."""
    if not (su > 0.0):
        j = np.int64(np.floor(u)) - off
        if j < 0 or j >= n:
            return np.int64(0), np.int64(0)
        buf[0] = 1.0
        return j, np.int64(1)
    lo = np.int64(np.floor(u - trunc * su))
    hi = np.int64(np.floor(u + trunc * su))
    clo = lo if lo > off else off
    chi = hi if hi < off + n - 1 else off + n - 1
    if clo > chi:
        return np.int64(0), np.int64(0)
    k = 1.0 / (su * 1.4142135623730951)
    # erf at the edges clo..chi+1; the window's outer edges lo and hi+1 count as -1 and
    # +1 (the tails beyond them folded into the end voxels), so the weights sum to 1
    prev = -1.0 if clo == lo else _erf_l((clo - u) * k, tab, inv_h)
    for e in range(clo, chi + 1):
        nxt = 1.0 if e == hi else _erf_l((e + 1 - u) * k, tab, inv_h)
        buf[e - clo] = 0.5 * (nxt - prev)
        prev = nxt
    return clo - off, chi - clo + 1


def _band_order(y, o, v, off, n, band):  # pragma: no cover - numba
    """Row order of the localizations by bands of ``band`` voxels along y (a counting
    sort; rows outside the image go to the end bands): neighbours in this order touch
    the same image rows, which keeps the scatter in cache (about 3x faster). Returns the
    order and the first position of each band in it (``nb + 1`` entries)."""
    nb = (n + band - 1) // band
    m = y.shape[0]
    key = np.empty(m, np.int32)
    counts = np.zeros(nb + 1, np.int64)
    for i in range(m):
        g = np.floor((y[i] - o) / v + 0.5) - off
        b = 0 if g < 0 else (nb - 1 if g >= n else np.int64(g) // band)
        key[i] = b
        counts[b + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    starts = counts.copy()
    order = np.empty(m, np.int64)
    for i in range(m):
        b = key[i]
        order[counts[b]] = i
        counts[b] += 1
    return order, starts


def _gauss(img, off, origin, voxel, z, y, x, sz, sxy, floor_nm, floor_z, plane, w, trunc,
           bz, by, bx, tab, order):  # pragma: no cover - numba
    """Add every localization's integrated Gaussian to ``img`` (P, nz, ny, nx) whose
    voxel 0 has global index ``off``, in the row order ``order``; returns how many
    localizations have their centre voxel inside ``img``. Arrays of length 1 (z of a 2D
    render, sigmas, planes, weights) apply to every row. ``floor_nm``/``floor_z``: lower
    bounds of the lateral and axial sigmas (the axial one 0 in 2D)."""
    nz, ny, nx = img.shape[1], img.shape[2], img.shape[3]
    flat = img.reshape(-1)
    inv_h = 1.0 / ERF_STEP
    lz, ls, lsz, lp, lw = z.shape[0] - 1, sxy.shape[0] - 1, sz.shape[0] - 1, \
        plane.shape[0] - 1, w.shape[0] - 1
    K = w.shape[1]
    inside = 0
    for ii in range(order.shape[0]):
        i = order[ii]
        s = sxy[min(i, ls)]
        if s < floor_nm:
            s = floor_nm
        t = sz[min(i, lsz)]
        if t < floor_z:
            t = floor_z
        uz = (z[min(i, lz)] - origin[0]) / voxel[0] + 0.5
        uy = (y[i] - origin[1]) / voxel[1] + 0.5
        ux = (x[i] - origin[2]) / voxel[2] + 0.5
        jz, cz = _axis_w(uz, t / voxel[0], off[0], nz, trunc, bz, tab, inv_h)
        if cz == 0:
            continue
        jy, cy = _axis_w(uy, s / voxel[1], off[1], ny, trunc, by, tab, inv_h)
        if cy == 0:
            continue
        jx, cx = _axis_w(ux, s / voxel[2], off[2], nx, trunc, bx, tab, inv_h)
        if cx == 0:
            continue
        gz = np.floor(uz) - off[0]
        gy = np.floor(uy) - off[1]
        gx = np.floor(ux) - off[2]
        if 0 <= gz < nz and 0 <= gy < ny and 0 <= gx < nx:
            inside += 1
        p0 = plane[min(i, lp)]
        ri = min(i, lw)
        for k in range(K):
            wk = w[ri, k]
            if wk == 0.0:
                continue
            for a in range(cz):
                wa = wk * bz[a]
                base_z = ((p0 + k) * nz + jz + a) * ny
                for b in range(cy):
                    wb = np.float32(wa * by[b])
                    base = (base_z + jy + b) * nx + jx
                    for c in range(cx):
                        flat[base + c] += wb * bx[c]
    return inside


def _voxel_index(c, o, v, inv):  # pragma: no cover - numba
    """``floor((c - o) / v + 0.5)`` through a multiplication by ``inv = 1 / v``, with the
    division redone where the two could round to different voxels (within 1e-6 of an
    edge), so the result is always the division's (:meth:`VoxelImage.index_of`)."""
    u = (c - o) * inv + 0.5
    j = np.floor(u)
    f = u - j
    if f < 1e-6 or f > 1.0 - 1e-6:
        j = np.floor((c - o) / v + 0.5)
    return j


def _hist(img, off, origin, voxel, z, y, x, plane, w):  # pragma: no cover - numba
    """Count every localization in its voxel of ``img`` (P, nz, ny, nx) whose voxel 0
    has global index ``off``; returns how many are inside. Two passes (flat indices,
    then the scatter) keep many memory accesses in flight."""
    nz, ny, nx = img.shape[1], img.shape[2], img.shape[3]
    flat = img.reshape(-1)
    psize = nz * ny * nx
    lz, lp, lw = z.shape[0] - 1, plane.shape[0] - 1, w.shape[0] - 1
    K = w.shape[1]
    n = x.shape[0]
    idx = np.empty(n, np.int64)
    rows = np.empty(n if (lp > 0 or lw > 0) else 1, np.int64)
    m = 0
    iz, iy, ix = 1.0 / voxel[0], 1.0 / voxel[1], 1.0 / voxel[2]
    jz0 = np.floor((z[0] - origin[0]) / voxel[0] + 0.5) - off[0]   # 2D: one plane
    for i in range(n):
        jz = jz0 if lz == 0 else _vidx(z[i], origin[0], voxel[0], iz) - off[0]
        jy = _vidx(y[i], origin[1], voxel[1], iy) - off[1]
        jx = _vidx(x[i], origin[2], voxel[2], ix) - off[2]
        if jz >= 0 and jz < nz and jy >= 0 and jy < ny and jx >= 0 and jx < nx:
            f = (np.int64(jz) * ny + np.int64(jy)) * nx + np.int64(jx)
            if lp > 0 or lw > 0:
                f += plane[min(i, lp)] * psize
                rows[m] = i
            else:
                f += plane[0] * psize
            idx[m] = f
            m += 1
    if lw == 0 and K == 1:
        w0 = np.float32(w[0, 0])
        for j in range(m):
            flat[idx[j]] += w0
    else:
        for j in range(m):
            ri = min(rows[j] if (lp > 0 or lw > 0) else 0, lw)
            for k in range(K):
                flat[idx[j] + k * psize] += w[ri, k]
    return m


_KERNELS: dict = {}
# compiled helpers, bound by _kernels (numba resolves them when it compiles)
_axis_w = _erf_l = _vidx = None


def _kernels() -> dict:
    """The numba kernels, compiled (or loaded from numba's disk cache) once, and the
    erf table."""
    if not _KERNELS:
        from numba import njit

        # module globals only here, so that importing this module does not import numba
        opts = dict(cache=True, nogil=True)
        inline = dict(opts, inline="always")
        globals().update(_erf_l=njit(**inline)(_erf_lookup),
                         _vidx=njit(**inline)(_voxel_index))
        globals()["_axis_w"] = njit(**inline)(_axis_weights)
        _KERNELS.update(gauss=njit(**opts)(_gauss), hist=njit(**opts)(_hist),
                        band_order=njit(**opts)(_band_order),
                        erf_table=_erf_table())
    return _KERNELS
