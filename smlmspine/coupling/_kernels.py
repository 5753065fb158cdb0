"""Numba kernels of :mod:`smlmspine.coupling` (the only module that imports numba).

Geometry of Ripley's isotropic edge correction for convex regions given as half-spaces
``A p <= b`` (``A`` rows are unit outward normals):

- 2D: the fraction of the circle of radius ``r`` around ``c`` inside the region is one
  minus the length of the union of the arcs cut off by each half-plane (an arc of
  half-width ``acos(e / r)`` around the outward normal, ``e`` the signed distance from
  ``c`` to the edge line), computed exactly.
- 3D: by Archimedes' hat-box theorem the area of a sphere between two heights is
  ``2 pi r dz``, so the surface fraction inside is ``1/(2r) * int_{-r}^{r} f2(t) dt`` with
  ``f2(t)`` the (exact) circle fraction of the slice at height ``t`` (radius
  ``sqrt(r^2 - t^2)``, half-spaces with a z component become shifted half-planes). The
  integral is computed with composite Gauss-Legendre quadrature (8 nodes, with a
  polynomial change of variable that is flat at the panel ends) on panels split at the
  heights where a face starts to cut the slice circle (``t = e n_z +- |n_xy|
  sqrt(r^2 - e^2)``), so boxes and single-face cuts of any polytope are integrated to
  ~1e-6, points near an edge between two tilted faces to ~1e-4.

Also the cell-list cross-pair counter used by cross Ripley K on 10^6 points.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["circle_fraction_halfspaces", "cross_k_counts"]

# 8-point Gauss-Legendre nodes/weights on [-1, 1]
_GL_X = np.array([-0.9602898564975363, -0.7966664774136267, -0.5255324099163290,
                  -0.1834346424956498, 0.1834346424956498, 0.5255324099163290,
                  0.7966664774136267, 0.9602898564975363])
_GL_W = np.array([0.1012285362903763, 0.2223810344533745, 0.3137066458778873,
                  0.3626837833783620, 0.3626837833783620, 0.3137066458778873,
                  0.2223810344533745, 0.1012285362903763])


@njit(cache=True)
def _arc_fraction_buf(cx, cy, s, nx, ny, off, m, lo, hi):
    """Fraction of the circle (cx, cy, radius s) inside the half-planes nx*x+ny*y <= off.

    ``lo``/``hi`` are scratch buffers of length >= 2 m (no allocation here).
    """
    if s <= 0.0:
        for k in range(m):
            if nx[k] * cx + ny[k] * cy > off[k]:
                return 0.0
        return 1.0
    two_pi = 2.0 * math.pi
    q = 0
    for k in range(m):
        norm = math.hypot(nx[k], ny[k])
        if norm < 1e-12:
            if off[k] < 0.0:
                return 0.0
            continue
        e = (off[k] - nx[k] * cx - ny[k] * cy) / norm
        if e >= s:
            continue
        if e <= -s:
            return 0.0
        h = math.acos(e / s)
        c = math.atan2(ny[k], nx[k])
        a = c - h
        a = a - two_pi * math.floor(a / two_pi)
        bnd = a + 2.0 * h
        if bnd > two_pi:
            lo[q] = a
            hi[q] = two_pi
            q += 1
            lo[q] = 0.0
            hi[q] = bnd - two_pi
            q += 1
        else:
            lo[q] = a
            hi[q] = bnd
            q += 1
    if q == 0:
        return 1.0
    # insertion sort by lo (q <= 2 m, small)
    for t in range(1, q):
        kl = lo[t]
        kh = hi[t]
        u = t - 1
        while u >= 0 and lo[u] > kl:
            lo[u + 1] = lo[u]
            hi[u + 1] = hi[u]
            u -= 1
        lo[u + 1] = kl
        hi[u + 1] = kh
    total = 0.0
    cur_lo = lo[0]
    cur_hi = hi[0]
    for t in range(1, q):
        if lo[t] <= cur_hi:
            if hi[t] > cur_hi:
                cur_hi = hi[t]
        else:
            total += cur_hi - cur_lo
            cur_lo = lo[t]
            cur_hi = hi[t]
    total += cur_hi - cur_lo
    f = 1.0 - total / two_pi
    return f if f > 0.0 else 0.0


@njit(cache=True)
def _arc_fraction(cx, cy, s, nx, ny, off, m):
    lo = np.empty(2 * m + 2)
    hi = np.empty(2 * m + 2)
    return _arc_fraction_buf(cx, cy, s, nx, ny, off, m, lo, hi)


@njit(cache=True)
def _slice_fraction(c, r, t, A, b, nx, ny, off, lo, hi):
    """Circle fraction of the slice at height t of the sphere (c, r) in a 3D polytope."""
    m = A.shape[0]
    s2 = r * r - t * t
    s = math.sqrt(s2) if s2 > 0.0 else 0.0
    z = c[2] + t
    for k in range(m):
        nx[k] = A[k, 0]
        ny[k] = A[k, 1]
        off[k] = b[k] - A[k, 2] * z
    return _arc_fraction_buf(c[0], c[1], s, nx, ny, off, m, lo, hi)


@njit(cache=True)
def _sphere_fraction(c, r, A, b, n_panels):
    m = A.shape[0]
    nx = np.empty(m)
    ny = np.empty(m)
    off = np.empty(m)
    lo = np.empty(2 * m + 2)
    hi = np.empty(2 * m + 2)
    # panel breakpoints in t: -r, r, plus where an axis-aligned face starts cutting the
    # slice circle (t = +-sqrt(r^2 - e^2)) and where a z-face cuts (t = e)
    brk = np.empty(2 * m + n_panels + 1)
    q = 0
    for k in range(m):
        # heights where face k starts to cut the slice circle (or to remove all of it):
        # (e - nz t)^2 = |n_xy|^2 (r^2 - t^2)  =>  t = e nz +- |n_xy| sqrt(r^2 - e^2)
        e = b[k] - (A[k, 0] * c[0] + A[k, 1] * c[1] + A[k, 2] * c[2])
        if abs(e) < r:
            nxy = math.hypot(A[k, 0], A[k, 1])
            root = nxy * math.sqrt(r * r - e * e)
            brk[q] = e * A[k, 2] + root
            q += 1
            brk[q] = e * A[k, 2] - root
            q += 1
    for p in range(n_panels + 1):
        brk[q] = -r + 2.0 * r * p / n_panels
        q += 1
    pts = np.sort(brk[:q])
    total = 0.0
    for p in range(q - 1):
        a = pts[p]
        bb = pts[p + 1]
        if bb - a <= 1e-15 * r:
            continue
        half = 0.5 * (bb - a)
        mid = 0.5 * (bb + a)
        for g in range(8):
            # t = mid + half * (3u - u^3)/2 removes the square-root behaviour of the
            # integrand at panel ends (where a face starts cutting the slice circle)
            u = _GL_X[g]
            t = mid + half * 0.5 * (3.0 * u - u * u * u)
            jac = half * 1.5 * (1.0 - u * u)
            total += jac * _GL_W[g] * _slice_fraction(c, r, t, A, b, nx, ny, off, lo, hi)
    return total / (2.0 * r)


@njit(cache=True, parallel=True)
def circle_fraction_halfspaces(centers, radii, A, b, n_panels):
    """Fraction of each circle/sphere ``(centers[i], radii[i])`` inside ``A p <= b``."""
    n, d = centers.shape
    out = np.empty(n)
    m = A.shape[0]
    nx = np.empty(m)
    ny = np.empty(m)
    for k in range(m):
        nx[k] = A[k, 0]
        ny[k] = A[k, 1]
    for i in prange(n):
        r = radii[i]
        if d == 2:
            out[i] = _arc_fraction(centers[i, 0], centers[i, 1], r, nx, ny, b, m)
        else:
            if r <= 0.0:
                out[i] = 1.0
            else:
                out[i] = _sphere_fraction(centers[i], r, A, b, n_panels)
    return out


@njit(cache=True)
def _edge_distance(p, A, b):
    m = A.shape[0]
    best = np.inf
    for k in range(m):
        e = b[k]
        for a in range(p.shape[0]):
            e -= A[k, a] * p[a]
        if e < best:
            best = e
    return best


@njit(cache=True)
def cross_k_counts(pre, post, edges, A, b, mode, box_size, n_panels):
    """Weighted cross-pair counts per radius bin on a cell grid (memory O(N)).

    ``edges`` are increasing radii starting at 0; pair (i, j) with ``edges[k-1] < d <=
    edges[k]`` adds its weight to bin ``k-1``. ``mode``: 0 no correction, 1 isotropic
    (weight 1/fraction of the circle/sphere of radius d around pre[i] inside the region),
    2 translation (box only: prod(L) / prod(L - |dx|)), 3 border (only pre points at
    least edges[k] from the edge count for radius edges[k]; returns the raw counts per
    pre-point edge class in the same array shape: counts[k] for pairs with d <= r_k are
    accumulated only when the pre point is eligible for r_k, cumulative).
    Returns (counts (K,), eligible (K,)).
    """
    n1, d = pre.shape
    n2 = post.shape[0]
    nb = edges.shape[0] - 1
    rmax = edges[nb]
    counts = np.zeros(nb)
    eligible = np.zeros(nb)
    if n1 == 0 or n2 == 0:
        return counts, eligible
    mins = np.empty(d)
    for a in range(d):
        mins[a] = min(pre[:, a].min(), post[:, a].min())
    cell = rmax * 1.0000001
    dims = np.empty(d, dtype=np.int64)
    for a in range(d):
        mx = max(pre[:, a].max(), post[:, a].max())
        dims[a] = np.int64((mx - mins[a]) / cell) + 1
    strides = np.empty(d, dtype=np.int64)
    s = 1
    for a in range(d - 1, -1, -1):
        strides[a] = s
        s *= dims[a]
    keys = np.empty(n2, dtype=np.int64)
    for j in range(n2):
        key = 0
        for a in range(d):
            key += np.int64((post[j, a] - mins[a]) / cell) * strides[a]
        keys[j] = key
    order = np.argsort(keys)
    skeys = keys[order]
    spost = post[order]
    nbh = 3 ** d
    offs = np.zeros((nbh, d), dtype=np.int64)
    for q in range(nbh):
        rem = q
        for a in range(d):
            offs[q, a] = rem % 3 - 1
            rem //= 3
    e2 = edges * edges
    cc = np.empty(d, dtype=np.int64)
    dx = np.empty(d)
    one = np.empty((1, d))
    rr = np.empty(1)
    nxv = np.empty(A.shape[0])
    nyv = np.empty(A.shape[0])
    for k in range(A.shape[0]):
        nxv[k] = A[k, 0]
        nyv[k] = A[k, 1]
    for i in range(n1):
        edge = _edge_distance(pre[i], A, b) if mode != 0 else np.inf
        if mode == 3:
            for k in range(nb):
                if edge >= edges[k + 1]:
                    eligible[k] += 1.0
        for a in range(d):
            cc[a] = np.int64((pre[i, a] - mins[a]) / cell)
        for q in range(nbh):
            key = 0
            ok = True
            for a in range(d):
                c2 = cc[a] + offs[q, a]
                if c2 < 0 or c2 >= dims[a]:
                    ok = False
                    break
                key += c2 * strides[a]
            if not ok:
                continue
            lo = np.searchsorted(skeys, key)
            hi = np.searchsorted(skeys, key + 1)
            for jj in range(lo, hi):
                d2 = 0.0
                for a in range(d):
                    dx[a] = spost[jj, a] - pre[i, a]
                    d2 += dx[a] * dx[a]
                if d2 > e2[nb]:
                    continue
                # bin: first k with d2 <= e2[k+1]
                lo_k = 0
                hi_k = nb - 1
                while lo_k < hi_k:
                    mid = (lo_k + hi_k) // 2
                    if d2 <= e2[mid + 1]:
                        hi_k = mid
                    else:
                        lo_k = mid + 1
                dist = math.sqrt(d2)
                w = 1.0
                if mode == 1:
                    if dist > edge:
                        if d == 2:
                            f = _arc_fraction(pre[i, 0], pre[i, 1], dist, nxv, nyv, b,
                                              A.shape[0])
                        else:
                            f = _sphere_fraction(pre[i], dist, A, b, n_panels)
                        w = 1.0 / f if f > 0.0 else 0.0
                elif mode == 2:
                    w = 1.0
                    for a in range(d):
                        w *= box_size[a] / (box_size[a] - abs(dx[a]))
                elif mode == 3:
                    # cumulative: pair counts for every radius >= its bin, if eligible
                    for k in range(lo_k, nb):
                        if edge >= edges[k + 1]:
                            counts[k] += 1.0
                    continue
                counts[lo_k] += w
    if mode == 3:
        return counts, eligible
    return counts, eligible
