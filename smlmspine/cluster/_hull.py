"""Numba kernels: convex hull areas (2D, monotone chain) and volumes (3D, incremental) of
many clusters at once."""

from __future__ import annotations

import numpy as np
from numba import njit

from .._hull2d import monotone_chain

__all__ = ["hull_areas_2d", "hull_volumes_3d"]


@njit(cache=True)
def _areas(x, y, starts, counts, out):
    scratch = np.empty(2 * counts.max() + 2, dtype=np.int64)
    for c in range(starts.shape[0]):
        s = starts[c]
        n = counts[c]
        if n < 3:
            continue
        k = monotone_chain(x, y, s, n, scratch)
        # scratch[:k] is closed (last == first); shoelace relative to the first vertex
        x0 = x[scratch[0]]
        y0 = y[scratch[0]]
        area = 0.0
        for j in range(k - 1):
            p = scratch[j]
            q = scratch[j + 1]
            area += (x[p] - x0) * (y[q] - y0) - (x[q] - x0) * (y[p] - y0)
        area *= 0.5
        if area > 0:
            out[c] = area


def hull_areas_2d(points: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Convex hull area of each cluster; NaN when degenerate (< 3 points or collinear).

    ``points`` is ``(N, 2)`` with the rows of cluster ``c`` at
    ``starts[c]:starts[c] + counts[c]``.

    Parameters
    ----------
    points : (N, 2) ndarray of float
        Coordinates in nm, grouped by cluster.
    starts : (C,) ndarray of int
        First row of each cluster.
    counts : (C,) ndarray of int
        Rows of each cluster.

    Returns
    -------
    (C,) ndarray of float
        Hull areas in nm^2.

    Examples
    --------
    >>> sq = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    >>> hull_areas_2d(sq, np.array([0]), np.array([5]))
    array([4.])
    """
    out = np.full(counts.size, np.nan)
    if counts.size == 0:
        return out
    ids = np.repeat(np.arange(counts.size), counts)
    order = np.lexsort((points[:, 1], points[:, 0], ids))  # by cluster, then x, then y
    x = np.ascontiguousarray(points[order, 0])
    y = np.ascontiguousarray(points[order, 1])
    _areas(x, y, np.asarray(starts, np.int64), np.asarray(counts, np.int64), out)
    return out


@njit(cache=True)
def _orient(px, py, pz, a, b, c, qx, qy, qz):
    """6 x signed volume of the tetrahedron (a, b, c, q); > 0 when q is above abc."""
    ux = px[b] - px[a]
    uy = py[b] - py[a]
    uz = pz[b] - pz[a]
    vx = px[c] - px[a]
    vy = py[c] - py[a]
    vz = pz[c] - pz[a]
    wx = qx - px[a]
    wy = qy - py[a]
    wz = qz - pz[a]
    return (uy * vz - uz * vy) * wx + (uz * vx - ux * vz) * wy + (ux * vy - uy * vx) * wz


@njit(cache=True)
def _hull_volume(px, py, pz):
    """Volume of the 3D convex hull of the points (incremental algorithm); NaN if flat."""
    n = px.shape[0]
    scale = 0.0
    for i in range(n):
        scale = max(scale, abs(px[i] - px[0]), abs(py[i] - py[0]), abs(pz[i] - pz[0]))
    if scale == 0.0:
        return np.nan
    # initial tetrahedron: farthest point, farthest from the line, farthest from the plane
    i0 = 0
    i1 = 0
    best = 0.0
    for i in range(n):
        d = (px[i] - px[i0]) ** 2 + (py[i] - py[i0]) ** 2 + (pz[i] - pz[i0]) ** 2
        if d > best:
            best = d
            i1 = i
    i2 = 0
    best = 0.0
    ux = px[i1] - px[i0]
    uy = py[i1] - py[i0]
    uz = pz[i1] - pz[i0]
    for i in range(n):
        wx = px[i] - px[i0]
        wy = py[i] - py[i0]
        wz = pz[i] - pz[i0]
        cx = uy * wz - uz * wy
        cy = uz * wx - ux * wz
        cz = ux * wy - uy * wx
        d = cx * cx + cy * cy + cz * cz
        if d > best:
            best = d
            i2 = i
    if best <= (1e-10 * scale * scale) ** 2:
        return np.nan  # collinear
    i3 = 0
    best = 0.0
    for i in range(n):
        d = abs(_orient(px, py, pz, i0, i1, i2, px[i], py[i], pz[i]))
        if d > best:
            best = d
            i3 = i
    tol = 1e-10 * scale * scale * scale
    if best <= tol:
        return np.nan  # coplanar
    cx = (px[i0] + px[i1] + px[i2] + px[i3]) / 4.0
    cy = (py[i0] + py[i1] + py[i2] + py[i3]) / 4.0
    cz = (pz[i0] + pz[i1] + pz[i2] + pz[i3]) / 4.0
    cap = 4 * n + 64
    fa = np.empty(cap, dtype=np.int64)
    fb = np.empty(cap, dtype=np.int64)
    fc = np.empty(cap, dtype=np.int64)
    alive = np.zeros(cap, dtype=np.bool_)
    init = ((i0, i1, i2), (i0, i3, i1), (i1, i3, i2), (i0, i2, i3))
    nf = 0
    for t in init:
        a, b, c = t
        if _orient(px, py, pz, a, b, c, cx, cy, cz) > 0:
            b, c = c, b
        fa[nf] = a
        fb[nf] = b
        fc[nf] = c
        alive[nf] = True
        nf += 1
    visible = np.empty(cap, dtype=np.int64)
    ea = np.empty(3 * cap, dtype=np.int64)
    eb = np.empty(3 * cap, dtype=np.int64)
    for p in range(n):
        if p == i0 or p == i1 or p == i2 or p == i3:
            continue
        nv = 0
        for f in range(nf):
            if alive[f] and _orient(px, py, pz, fa[f], fb[f], fc[f], px[p], py[p], pz[p]) > tol:
                visible[nv] = f
                nv += 1
        if nv == 0:
            continue
        ne = 0
        for v in range(nv):
            f = visible[v]
            for e in range(3):
                if e == 0:
                    a, b = fa[f], fb[f]
                elif e == 1:
                    a, b = fb[f], fc[f]
                else:
                    a, b = fc[f], fa[f]
                ea[ne] = a
                eb[ne] = b
                ne += 1
            alive[f] = False
        n_alive = 0
        for f in range(nf):
            if alive[f]:
                n_alive += 1
        if nf + ne + 8 > cap or nf > 2 * n_alive + 32:  # drop dead faces
            k = 0
            for f in range(nf):
                if alive[f]:
                    fa[k] = fa[f]
                    fb[k] = fb[f]
                    fc[k] = fc[f]
                    alive[k] = True
                    k += 1
            for f in range(k, nf):
                alive[f] = False
            nf = k
        for e in range(ne):  # horizon: edges whose reverse is not a visible-face edge
            shared = False
            for g in range(ne):
                if ea[g] == eb[e] and eb[g] == ea[e]:
                    shared = True
                    break
            if not shared:
                fa[nf] = ea[e]
                fb[nf] = eb[e]
                fc[nf] = p
                alive[nf] = True
                nf += 1
    vol = 0.0
    for f in range(nf):
        if alive[f]:
            a = fa[f]
            b = fb[f]
            c = fc[f]
            ax = px[a] - cx
            ay = py[a] - cy
            az = pz[a] - cz
            bx = px[b] - cx
            by = py[b] - cy
            bz = pz[b] - cz
            qx = px[c] - cx
            qy = py[c] - cy
            qz = pz[c] - cz
            vol += ax * (by * qz - bz * qy) + ay * (bz * qx - bx * qz) + az * (bx * qy - by * qx)
    return vol / 6.0


@njit(cache=True)
def _volumes(px, py, pz, starts, counts, max_points, out):
    for c in range(starts.shape[0]):
        n = counts[c]
        if n < 4 or n > max_points:
            continue
        s = starts[c]
        v = _hull_volume(px[s:s + n], py[s:s + n], pz[s:s + n])
        if v > 0:
            out[c] = v


def hull_volumes_3d(points: np.ndarray, starts: np.ndarray, counts: np.ndarray, *,
                    max_points: int = 1000) -> np.ndarray:
    """Convex hull volume of each cluster; NaN when degenerate (< 4 points or coplanar).

    Clusters of up to ``max_points`` points use a compiled incremental hull (cost
    O(n x hull faces)); larger ones, and any the kernel finds degenerate while Qhull does
    not, go to scipy's Qhull.

    Parameters
    ----------
    points : (N, 3) ndarray of float
        Coordinates in nm, grouped by cluster.
    starts : (C,) ndarray of int
        First row of each cluster.
    counts : (C,) ndarray of int
        Rows of each cluster.
    max_points : int
        Largest cluster handled by the compiled hull.

    Returns
    -------
    (C,) ndarray of float
        Hull volumes in nm^3.

    Examples
    --------
    >>> cube = np.array([[x, y, z] for x in (0., 2.) for y in (0., 2.) for z in (0., 2.)])
    >>> hull_volumes_3d(np.vstack([cube, [[1., 1., 1.]]]), np.array([0]), np.array([9]))
    array([8.])
    """
    out = np.full(counts.size, np.nan)
    if counts.size == 0:
        return out
    starts = np.asarray(starts, np.int64)
    counts = np.asarray(counts, np.int64)
    pts = np.ascontiguousarray(points, dtype=np.float64)
    _volumes(np.ascontiguousarray(pts[:, 0]), np.ascontiguousarray(pts[:, 1]),
             np.ascontiguousarray(pts[:, 2]), starts, counts, int(max_points), out)
    big = np.flatnonzero(counts > max_points)
    if big.size:
        from scipy.spatial import ConvexHull, QhullError

        for i in big:
            try:
                out[i] = ConvexHull(pts[starts[i]:starts[i] + counts[i]]).volume
            except (QhullError, ValueError):
                continue
        out[out <= 0] = np.nan
    return out
