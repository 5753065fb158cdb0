"""Exact self-intersection test of a triangle mesh, and untangling a vertex move.

:func:`self_intersections` says which triangles of a mesh intersect another triangle of
it anywhere but at the vertices and edges they share. Every decision is an exact sign
of an orientation determinant of the input doubles: Shewchuk's orient3d with his static
error bound first, and, when the bound cannot decide, the exact value as a floating-point
expansion (Dekker products summed with Shewchuk's grow-expansion: the 3x3 determinant
of the differences when those are exact, as for nearby points, else the 4x4 one of the
coordinates); 2D orientations (coplanar cases) likewise, with Shewchuk's orient2d bound
first. So the answer is that of exact arithmetic on the stored coordinates: no epsilon,
no false alarm for touching-at-a-shared-edge, no missed fold. The last results are kept
by the exact bytes of the mesh (the envelope steps test the same mesh several times).

Pairs of triangles:

- sharing no vertex: closed triangle-triangle intersection (touching counts: a surface
  that touches itself is not embedded). Non-coplanar triangles intersect iff an edge of
  one meets the other (closed); coplanar ones are tested in the plane.
- sharing one vertex ``v`` (``vab`` and ``vcd``): they meet elsewhere iff the edge
  ``ab`` meets ``vcd`` or ``cd`` meets ``vab`` (the fold-over at a shared vertex that
  tests skipping neighbours, such as Open3D's, do not see).
- sharing an edge: they meet elsewhere iff they are coplanar and lie on the same side
  of the shared edge (folded flat onto each other).
- sharing three vertices (a duplicated face): intersecting.

Triangles with three collinear vertices (zero area) are reported separately.

The broad phase is a uniform grid on the triangles' bounding boxes (each pair tested in
one cell). :func:`untangle` takes a clean mesh and a move of its vertices (smoothing,
a surface fit) and pulls the vertices of intersecting triangles back along their move
until the exact test passes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .._grid import find as _find
from .._grid import union as _union

__all__ = ["self_intersections", "open3d_self_intersections", "untangle", "UntangleResult"]

_SPLITTER = 134217729.0  # 2^27 + 1 (Dekker split of a double)
_EPS = 2.0 ** -53
_O3D_BOUND = (7.0 + 56.0 * _EPS) * _EPS
_CCW_BOUND = (3.0 + 16.0 * _EPS) * _EPS


@njit(cache=True, nogil=True, inline="always")
def _two_sum(a, b):
    x = a + b
    bv = x - a
    av = x - bv
    return x, (a - av) + (b - bv)

@njit(cache=True, nogil=True, inline="always")
def _split(a):
    c = _SPLITTER * a
    big = c - a
    hi = c - big
    return hi, a - hi

@njit(cache=True, nogil=True, inline="always")
def _two_prod(a, b):
    x = a * b
    ahi, alo = _split(a)
    bhi, blo = _split(b)
    err = x - ahi * bhi - alo * bhi - ahi * blo
    return x, alo * blo - err

@njit(cache=True, nogil=True)
def _grow(e, n, b):
    """Add the double ``b`` to the nonoverlapping expansion e[:n] (zeros dropped)."""
    q = b
    m = 0
    for i in range(n):
        q, h = _two_sum(q, e[i])
        if h != 0.0:
            e[m] = h
            m += 1
    if q != 0.0:
        e[m] = q
        m += 1
    return m

@njit(cache=True, nogil=True)
def _add_triple(e, n, x, y, z, sign):
    """Add sign * x * y * z (exactly, as 4 doubles) to the expansion."""
    p, pe = _two_prod(x, y)
    h1, l1 = _two_prod(p, z)
    h2, l2 = _two_prod(pe, z)
    n = _grow(e, n, sign * l2)
    n = _grow(e, n, sign * h2)
    n = _grow(e, n, sign * l1)
    n = _grow(e, n, sign * h1)
    return n

@njit(cache=True, nogil=True)
def _add_triple_nz(e, n, x, y, z, sign):
    """:func:`_add_triple`, nothing to add when a factor is 0."""
    if x == 0.0 or y == 0.0 or z == 0.0:
        return n
    return _add_triple(e, n, x, y, z, sign)

@njit(cache=True, nogil=True)
def _add_det3(e, n, P, i, j, k, sign):
    """Add sign * det[P_i; P_j; P_k] (6 triple products)."""
    n = _add_triple(e, n, P[i, 0], P[j, 1], P[k, 2], sign)
    n = _add_triple(e, n, P[i, 0], P[j, 2], P[k, 1], -sign)
    n = _add_triple(e, n, P[i, 1], P[j, 0], P[k, 2], -sign)
    n = _add_triple(e, n, P[i, 1], P[j, 2], P[k, 0], sign)
    n = _add_triple(e, n, P[i, 2], P[j, 0], P[k, 1], sign)
    n = _add_triple(e, n, P[i, 2], P[j, 1], P[k, 0], -sign)
    return n

@njit(cache=True, nogil=True, inline="always")
def _two_diff_tail(a, b):
    x = a - b
    bv = a - x
    av = x + bv
    return x, (a - av) + (bv - b)

@njit(cache=True, nogil=True)
def _orient3d_exact(P, a, b, c, d):
    """Exact sign of det[a-d; b-d; c-d] (= the 4x4 determinant with a column of 1).

    When the nine differences ``a-d``, ``b-d``, ``c-d`` are exact in double precision
    (nearby points: Sterbenz), the 3x3 determinant of the differences is summed exactly
    from its six triple products (24 doubles); otherwise the 4x4 determinant of the
    coordinates (96 doubles).
    """
    adx, t0 = _two_diff_tail(P[a, 0], P[d, 0])
    ady, t1 = _two_diff_tail(P[a, 1], P[d, 1])
    adz, t2 = _two_diff_tail(P[a, 2], P[d, 2])
    bdx, t3 = _two_diff_tail(P[b, 0], P[d, 0])
    bdy, t4 = _two_diff_tail(P[b, 1], P[d, 1])
    bdz, t5 = _two_diff_tail(P[b, 2], P[d, 2])
    cdx, t6 = _two_diff_tail(P[c, 0], P[d, 0])
    cdy, t7 = _two_diff_tail(P[c, 1], P[d, 1])
    cdz, t8 = _two_diff_tail(P[c, 2], P[d, 2])
    if (t0 == 0.0 and t1 == 0.0 and t2 == 0.0 and t3 == 0.0 and t4 == 0.0 and t5 == 0.0
            and t6 == 0.0 and t7 == 0.0 and t8 == 0.0):
        e = np.empty(28)
        n = 0
        n = _add_triple_nz(e, n, adz, bdx, cdy, 1.0)
        n = _add_triple_nz(e, n, adz, cdx, bdy, -1.0)
        n = _add_triple_nz(e, n, bdz, cdx, ady, 1.0)
        n = _add_triple_nz(e, n, bdz, adx, cdy, -1.0)
        n = _add_triple_nz(e, n, cdz, adx, bdy, 1.0)
        n = _add_triple_nz(e, n, cdz, bdx, ady, -1.0)
        if n == 0:
            return 0
        return 1 if e[n - 1] > 0 else -1
    e = np.empty(100)
    n = 0
    n = _add_det3(e, n, P, b, c, d, -1.0)
    n = _add_det3(e, n, P, a, c, d, 1.0)
    n = _add_det3(e, n, P, a, b, d, -1.0)
    n = _add_det3(e, n, P, a, b, c, 1.0)
    if n == 0:
        return 0
    return 1 if e[n - 1] > 0 else -1

@njit(cache=True, nogil=True, inline="always")
def _orient3d(P, a, b, c, d):
    adx = P[a, 0] - P[d, 0]
    ady = P[a, 1] - P[d, 1]
    adz = P[a, 2] - P[d, 2]
    bdx = P[b, 0] - P[d, 0]
    bdy = P[b, 1] - P[d, 1]
    bdz = P[b, 2] - P[d, 2]
    cdx = P[c, 0] - P[d, 0]
    cdy = P[c, 1] - P[d, 1]
    cdz = P[c, 2] - P[d, 2]
    bdxcdy = bdx * cdy
    cdxbdy = cdx * bdy
    cdxady = cdx * ady
    adxcdy = adx * cdy
    adxbdy = adx * bdy
    bdxady = bdx * ady
    det = adz * (bdxcdy - cdxbdy) + bdz * (cdxady - adxcdy) + cdz * (adxbdy - bdxady)
    perm = ((abs(bdxcdy) + abs(cdxbdy)) * abs(adz) + (abs(cdxady) + abs(adxcdy)) * abs(bdz)
            + (abs(adxbdy) + abs(bdxady)) * abs(cdz))
    bound = _O3D_BOUND * perm
    if det > bound:
        return 1
    if -det > bound:
        return -1
    return _orient3d_exact(P, a, b, c, d)

@njit(cache=True, nogil=True, inline="always")
def _orient2d(P, a, b, c, ax):
    """Exact sign of orient2d of a, b, c projected along axis ``ax``.

    Shewchuk's ``orient2dfast`` with his static error bound ``ccwerrboundA`` decides
    when it can (the rounded determinant is farther from 0 than the bound on its
    rounding error); otherwise the exact expansion does.
    """
    u = 1 if ax == 0 else 0
    w = 1 if ax == 2 else 2
    detleft = (P[a, u] - P[c, u]) * (P[b, w] - P[c, w])
    detright = (P[a, w] - P[c, w]) * (P[b, u] - P[c, u])
    det = detleft - detright
    bound = _CCW_BOUND * (abs(detleft) + abs(detright))
    if det > bound:
        return 1
    if -det > bound:
        return -1
    return _orient2d_exact(P, a, b, c, ax)

@njit(cache=True, nogil=True)
def _orient2d_exact(P, a, b, c, ax):
    """Exact sign of orient2d of a, b, c projected along axis ``ax`` (expansion)."""
    u = 1 if ax == 0 else 0
    w = 1 if ax == 2 else 2
    e = np.empty(16)
    n = 0
    for (i, j, s) in ((a, b, 1.0), (b, c, 1.0), (c, a, 1.0)):
        p, pe = _two_prod(P[i, u], P[j, w])
        n = _grow(e, n, s * pe)
        n = _grow(e, n, s * p)
        p, pe = _two_prod(P[i, w], P[j, u])
        n = _grow(e, n, -s * pe)
        n = _grow(e, n, -s * p)
    if n == 0:
        return 0
    return 1 if e[n - 1] > 0 else -1

@njit(cache=True, nogil=True)
def _drop_axis(P, p, q, r):
    n0 = (P[q, 1] - P[p, 1]) * (P[r, 2] - P[p, 2]) - (P[q, 2] - P[p, 2]) * (P[r, 1] - P[p, 1])
    n1 = (P[q, 2] - P[p, 2]) * (P[r, 0] - P[p, 0]) - (P[q, 0] - P[p, 0]) * (P[r, 2] - P[p, 2])
    n2 = (P[q, 0] - P[p, 0]) * (P[r, 1] - P[p, 1]) - (P[q, 1] - P[p, 1]) * (P[r, 0] - P[p, 0])
    a0, a1, a2 = abs(n0), abs(n1), abs(n2)
    if a0 >= a1 and a0 >= a2:
        return 0
    return 1 if a1 >= a2 else 2

@njit(cache=True, nogil=True)
def _on_segment(P, a, b, c, ax):
    """c (collinear with ab in the projection) lies on the closed segment ab."""
    u = 1 if ax == 0 else 0
    w = 1 if ax == 2 else 2
    return (min(P[a, u], P[b, u]) <= P[c, u] <= max(P[a, u], P[b, u])
            and min(P[a, w], P[b, w]) <= P[c, w] <= max(P[a, w], P[b, w]))

@njit(cache=True, nogil=True)
def _seg_seg_2d(P, a, b, c, d, ax):
    d1 = _orient2d(P, a, b, c, ax)
    d2 = _orient2d(P, a, b, d, ax)
    d3 = _orient2d(P, c, d, a, ax)
    d4 = _orient2d(P, c, d, b, ax)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    if d1 == 0 and _on_segment(P, a, b, c, ax):
        return True
    if d2 == 0 and _on_segment(P, a, b, d, ax):
        return True
    if d3 == 0 and _on_segment(P, c, d, a, ax):
        return True
    if d4 == 0 and _on_segment(P, c, d, b, ax):
        return True
    return False

@njit(cache=True, nogil=True)
def _point_in_tri_2d(P, x, p, q, r, ax):
    o1 = _orient2d(P, p, q, x, ax)
    o2 = _orient2d(P, q, r, x, ax)
    o3 = _orient2d(P, r, p, x, ax)
    return (o1 >= 0 and o2 >= 0 and o3 >= 0) or (o1 <= 0 and o2 <= 0 and o3 <= 0)

@njit(cache=True, nogil=True)
def _seg_tri_2d(P, a, b, p, q, r, ax):
    if _point_in_tri_2d(P, a, p, q, r, ax):
        return True
    return (_seg_seg_2d(P, a, b, p, q, ax) or _seg_seg_2d(P, a, b, q, r, ax)
            or _seg_seg_2d(P, a, b, r, p, ax))

@njit(cache=True, nogil=True)
def _seg_tri(P, a, b, p, q, r):
    """The closed segment ab meets the closed (non-degenerate) triangle pqr."""
    sa = _orient3d(P, p, q, r, a)
    sb = _orient3d(P, p, q, r, b)
    if sa * sb > 0:
        return False
    if sa == 0 and sb == 0:
        return _seg_tri_2d(P, a, b, p, q, r, _drop_axis(P, p, q, r))
    o1 = _orient3d(P, a, b, p, q)
    o2 = _orient3d(P, a, b, q, r)
    o3 = _orient3d(P, a, b, r, p)
    return (o1 >= 0 and o2 >= 0 and o3 >= 0) or (o1 <= 0 and o2 <= 0 and o3 <= 0)

@njit(cache=True, nogil=True)
def _tri_tri(P, p1, q1, r1, p2, q2, r2):
    """Closed non-degenerate triangles intersect (no shared vertex assumed)."""
    s0 = _orient3d(P, p2, q2, r2, p1)
    s1 = _orient3d(P, p2, q2, r2, q1)
    s2 = _orient3d(P, p2, q2, r2, r1)
    if (s0 > 0 and s1 > 0 and s2 > 0) or (s0 < 0 and s1 < 0 and s2 < 0):
        return False
    t0 = _orient3d(P, p1, q1, r1, p2)
    t1 = _orient3d(P, p1, q1, r1, q2)
    t2 = _orient3d(P, p1, q1, r1, r2)
    if (t0 > 0 and t1 > 0 and t2 > 0) or (t0 < 0 and t1 < 0 and t2 < 0):
        return False
    if s0 == 0 and s1 == 0 and s2 == 0:
        ax = _drop_axis(P, p1, q1, r1)
        if _point_in_tri_2d(P, p1, p2, q2, r2, ax) or _point_in_tri_2d(P, p2, p1, q1, r1, ax):
            return True
        e1 = (p1, q1, q1, r1, r1, p1)
        e2 = (p2, q2, q2, r2, r2, p2)
        for i in range(3):
            for j in range(3):
                if _seg_seg_2d(P, e1[2 * i], e1[2 * i + 1], e2[2 * j], e2[2 * j + 1], ax):
                    return True
        return False
    return (_seg_tri(P, p1, q1, p2, q2, r2) or _seg_tri(P, q1, r1, p2, q2, r2)
            or _seg_tri(P, r1, p1, p2, q2, r2) or _seg_tri(P, p2, q2, p1, q1, r1)
            or _seg_tri(P, q2, r2, p1, q1, r1) or _seg_tri(P, r2, p2, p1, q1, r1))

@njit(cache=True, nogil=True)
def _pair_intersects(P, F, i, j):
    """Triangles i and j meet anywhere but at their shared vertices/edge."""
    a0, a1, a2 = F[i, 0], F[i, 1], F[i, 2]
    b0, b1, b2 = F[j, 0], F[j, 1], F[j, 2]
    shared = 0
    sa = -1
    sb = -1
    ta = (a0, a1, a2)
    tb = (b0, b1, b2)
    for x in range(3):
        for y in range(3):
            if ta[x] == tb[y]:
                shared += 1
                if shared == 1:
                    sa = x
                    sb = y
    if shared == 0:
        return _tri_tri(P, a0, a1, a2, b0, b1, b2)
    if shared == 3:
        return True
    if shared == 1:
        # rotate so that the shared vertex comes first
        v = ta[sa]
        a = ta[(sa + 1) % 3]
        b = ta[(sa + 2) % 3]
        c = tb[(sb + 1) % 3]
        d = tb[(sb + 2) % 3]
        return _seg_tri(P, a, b, v, c, d) or _seg_tri(P, c, d, v, a, b)
    # shared edge: the third vertices
    c = -1
    for x in range(3):
        if ta[x] != b0 and ta[x] != b1 and ta[x] != b2:
            c = ta[x]
    d = -1
    for y in range(3):
        if tb[y] != a0 and tb[y] != a1 and tb[y] != a2:
            d = tb[y]
    # the shared edge (u, w)
    u = -1
    w = -1
    for x in range(3):
        if ta[x] != c:
            if u < 0:
                u = ta[x]
            else:
                w = ta[x]
    if _orient3d(P, u, w, c, d) != 0:
        return False
    ax = _drop_axis(P, u, w, c)
    return _orient2d(P, u, w, c, ax) * _orient2d(P, u, w, d, ax) > 0

@njit(cache=True, nogil=True)
def _degenerate(P, F, i):
    a, b, c = F[i, 0], F[i, 1], F[i, 2]
    if a == b or b == c or a == c:
        return True
    return (_orient2d(P, a, b, c, 0) == 0 and _orient2d(P, a, b, c, 1) == 0
            and _orient2d(P, a, b, c, 2) == 0)

@njit(cache=True, nogil=True)
def _face_boxes(P, F):
    """Lower and upper corners of every triangle's axis-aligned box, (F, 3) each."""
    nf = F.shape[0]
    lo = np.empty((nf, 3))
    hi = np.empty((nf, 3))
    for i in range(nf):
        for k in range(3):
            x0 = P[F[i, 0], k]
            x1 = P[F[i, 1], k]
            x2 = P[F[i, 2], k]
            lo[i, k] = min(x0, min(x1, x2))
            hi[i, k] = max(x0, max(x1, x2))
    return lo, hi


@njit(cache=True, nogil=True)
def _kernel(P, F, cell, max_entries, mask):
    """Flags (1 intersecting, 2 degenerate), number and list of intersecting pairs; only
    pairs with at least one triangle in ``mask`` are tested (all: a mask of ones)."""
    nf = F.shape[0]
    flag = np.zeros(nf, np.uint8)        # 1 intersecting, 2 degenerate
    lo, hi = _face_boxes(P, F)
    for i in range(nf):
        if _degenerate(P, F, i):
            flag[i] = 2
    g0 = np.empty(3)
    for k in range(3):
        g0[k] = lo[:, k].min()
    dims = np.empty(3, np.int64)
    for k in range(3):
        dims[k] = int((hi[:, k].max() - g0[k]) / cell) + 1
    clo = np.empty((nf, 3), np.int64)
    chi = np.empty((nf, 3), np.int64)
    total = 0
    for i in range(nf):
        cnt = 1
        for k in range(3):
            clo[i, k] = min(int((lo[i, k] - g0[k]) / cell), dims[k] - 1)
            chi[i, k] = min(int((hi[i, k] - g0[k]) / cell), dims[k] - 1)
            cnt *= chi[i, k] - clo[i, k] + 1
        total += cnt
    if total > max_entries:
        return flag, -1, np.empty((0, 2), np.int64)
    ncell = dims[0] * dims[1] * dims[2]
    start = np.zeros(ncell + 1, np.int64)
    for i in range(nf):
        for x in range(clo[i, 0], chi[i, 0] + 1):
            for y in range(clo[i, 1], chi[i, 1] + 1):
                for z in range(clo[i, 2], chi[i, 2] + 1):
                    start[(x * dims[1] + y) * dims[2] + z + 1] += 1
    for c in range(ncell):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    items = np.empty(total, np.int64)
    for i in range(nf):
        for x in range(clo[i, 0], chi[i, 0] + 1):
            for y in range(clo[i, 1], chi[i, 1] + 1):
                for z in range(clo[i, 2], chi[i, 2] + 1):
                    c = (x * dims[1] + y) * dims[2] + z
                    items[fill[c]] = i
                    fill[c] += 1
    n_pairs = 0
    pairs = np.empty((64, 2), np.int64)
    for c in range(ncell):
        cz = c % dims[2]
        cy = (c // dims[2]) % dims[1]
        cx = c // (dims[1] * dims[2])
        for s in range(start[c], start[c + 1]):
            i = items[s]
            if flag[i] == 2:
                continue
            for t in range(s + 1, start[c + 1]):
                j = items[t]
                if flag[j] == 2:
                    continue
                # test each pair once: in the lowest cell of their box overlap
                if (max(clo[i, 0], clo[j, 0]) != cx or max(clo[i, 1], clo[j, 1]) != cy
                        or max(clo[i, 2], clo[j, 2]) != cz):
                    continue
                if (lo[i, 0] > hi[j, 0] or lo[j, 0] > hi[i, 0] or lo[i, 1] > hi[j, 1]
                        or lo[j, 1] > hi[i, 1] or lo[i, 2] > hi[j, 2] or lo[j, 2] > hi[i, 2]):
                    continue
                if not (mask[i] or mask[j]):
                    continue
                if _pair_intersects(P, F, i, j):
                    if n_pairs == pairs.shape[0]:
                        grown = np.empty((2 * n_pairs, 2), np.int64)
                        grown[:n_pairs] = pairs
                        pairs = grown
                    pairs[n_pairs, 0] = i
                    pairs[n_pairs, 1] = j
                    n_pairs += 1
                    flag[i] = 1
                    flag[j] = 1
    return flag, n_pairs, pairs[:n_pairs]

@njit(cache=True, nogil=True)
def _pair_list(P, F, I, J):
    out = np.zeros(I.shape[0], np.bool_)
    for k in range(I.shape[0]):
        out[k] = _pair_intersects(P, F, I[k], J[k])
    return out



from ._cache import ResultCache as _ResultCache  # noqa: E402  (numpy only)

_CACHE = _ResultCache()


def self_intersections(vertices: np.ndarray, faces: np.ndarray):
    """Which triangles of a mesh intersect another of its triangles (exact).

    Parameters
    ----------
    vertices : (V, 3) ndarray of float
        Coordinates (nm).
    faces : (F, 3) ndarray of int

    Returns
    -------
    intersecting : (F,) ndarray of bool
        Triangles that meet another triangle anywhere but at the vertices and the edge
        they share (see the module notes).
    degenerate : (F,) ndarray of bool
        Triangles with three collinear vertices (not tested against others).
    n_pairs : int
        Number of intersecting pairs.

    Examples
    --------
    >>> v = np.array([[0., 0, 0], [2, 0, 0], [0, 2, 0],            # a triangle in z = 0
    ...               [0.5, 0.5, -1], [0.5, 0.5, 1], [3, 3, 0]])    # one piercing it
    >>> hit, deg, n = self_intersections(v, np.array([[0, 1, 2], [3, 4, 5]]))
    >>> hit.tolist(), n
    ([True, True], 1)
    >>> self_intersections(v, np.array([[0, 1, 2], [1, 2, 5]]))[2]  # share an edge
    0
    """
    P = np.ascontiguousarray(vertices, dtype=np.float64)
    F = np.ascontiguousarray(faces, dtype=np.int64)
    nf = len(F)
    if nf == 0:
        return np.zeros(0, bool), np.zeros(0, bool), 0
    if P.ndim != 2 or P.shape[1] != 3 or F.ndim != 2 or F.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3) and faces (F, 3), got {P.shape}, {F.shape}")
    if not np.isfinite(P).all():
        raise ValueError("vertices must be finite")
    key = _CACHE.key(P, F)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit[0].copy(), hit[1].copy(), hit[2]
    res = _self_intersections(P, F)
    _CACHE.put(key, (res[0].copy(), res[1].copy(), res[2]))
    return res


@njit(cache=True, nogil=True)
def _extents(P, F):
    """Largest box side of every triangle, and the box sides of the used vertices."""
    nf = F.shape[0]
    ext = np.empty(nf)
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for i in range(nf):
        e = 0.0
        for k in range(3):
            x0 = P[F[i, 0], k]
            x1 = P[F[i, 1], k]
            x2 = P[F[i, 2], k]
            a = min(x0, min(x1, x2))
            b = max(x0, max(x1, x2))
            e = max(e, b - a)
            lo[k] = min(lo[k], a)
            hi[k] = max(hi[k], b)
        ext[i] = e
    return ext, hi - lo


def _self_intersections(P, F):
    flag, pairs = _intersecting_pairs(P, F, np.ones(len(F), np.bool_))
    return flag == 1, flag == 2, len(pairs)


def _intersecting_pairs(P, F, mask):
    """``(flags, pairs)`` of :func:`_kernel` over the pairs that have a triangle in
    ``mask`` (the grid's cell size does not change which pairs are found: every pair of
    overlapping boxes is tested once)."""
    nf = len(F)
    ext, span = _extents(P, F)
    size = float(np.median(ext))
    # grid cells of ~2 triangle sizes, at most ~4 cells per triangle
    cell = max(2.0 * size, float(span.max()) * 1e-9, 1e-300)
    while np.prod(np.floor(span / cell) + 1.0) > 4.0 * nf + 64:
        cell *= 1.26
    while True:
        flag, n_pairs, pairs = _kernel(P, F, cell, 50 * nf + 10_000, mask)
        if n_pairs >= 0:
            break
        cell *= 2.0   # very unequal triangles: coarser cells, fewer entries
    return flag, pairs


def _pairs_with(P, F, changed):
    """Intersecting pairs (rows of face indices) that have a triangle in ``changed``:
    the kernel runs on the triangles whose boxes reach the box around the changed
    ones (the others cannot meet them)."""
    lo, hi = _face_boxes(P, F)
    clo, chi = lo[changed].min(axis=0), hi[changed].max(axis=0)
    near = np.flatnonzero(((lo <= chi) & (hi >= clo)).all(axis=1))
    _, pairs = _intersecting_pairs(P, F[near], changed[near])
    return near[pairs]


class _Intersections:
    """The exact self-intersection test of a mesh whose vertices move between calls.

    The first call tests every pair of triangles (:func:`self_intersections`' kernel);
    each later call re-tests only the pairs with a triangle that has a vertex moved since
    the call before, and keeps the other pairs' verdicts (a pair's verdict depends only
    on its six vertices). The intersecting triangles are the same as
    ``self_intersections(vertices, faces)[0]`` would give, found ~2-5x faster in the
    rounds of :func:`untangle` and :func:`smooth_untangle`, which move a few vertices
    at a time.

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(2)
    >>> test = _Intersections(s.faces)
    >>> v = s.vertices.copy()
    >>> v[0] = -1.5 * s.vertices[0]
    >>> bool((test(v) == self_intersections(v, s.faces)[0]).all()), bool(test(v).any())
    (True, True)
    >>> v[0] = s.vertices[0]
    >>> bool(test(v).any())
    False
    """

    def __init__(self, faces):
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self._v = None
        self._pairs = None

    def __call__(self, vertices) -> np.ndarray:
        P = np.ascontiguousarray(vertices, dtype=np.float64)
        F = self.faces
        if not np.isfinite(P).all():
            raise ValueError("vertices must be finite")
        if self._v is None:
            _, pairs = _intersecting_pairs(P, F, np.ones(len(F), np.bool_))
        else:
            moved = (P != self._v).any(axis=1)
            changed = moved[F].any(axis=1)
            old = self._pairs
            kept = old[~(changed[old[:, 0]] | changed[old[:, 1]])]
            if changed.any():
                pairs = np.concatenate([kept, _pairs_with(P, F, changed)])
            else:
                pairs = kept
        self._v = P.copy()
        self._pairs = pairs
        bad = np.zeros(len(F), bool)
        bad[pairs.ravel()] = True
        return bad


#: Largest block of :func:`open3d_self_intersections` (triangles). Open3D's cost is
#: about the square of a block's size, the cuts' cost about the number of blocks: on
#: the 24 meshes the README sample's run tests (212k triangles) 3000 took 0.85-0.92 s,
#: 1000 0.56 s, 600 0.48 s, 300 0.47 s, every time the same triangles flagged.
OPEN3D_BLOCK = 600


def open3d_self_intersections(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangles Open3D's ``get_self_intersecting_triangles`` flags, shape (F,) bool.

    Open3D tests all pairs of triangles that share no vertex (O(F^2)); here the mesh is
    cut into spatial blocks of at most :data:`OPEN3D_BLOCK` triangles (every triangle
    whose bounding box reaches a block belongs to it) and Open3D runs on each block,
    with only the block's vertices, which finds the same pairs (two intersecting
    triangles have overlapping boxes, so they share a block; sharing a vertex is kept
    by the renumbering).
    """
    import open3d as o3d

    P = np.asarray(vertices, np.float64)
    F = np.ascontiguousarray(faces, dtype=np.int64)
    out = np.zeros(len(F), bool)
    if len(F) == 0:
        return out
    items, starts = _open3d_blocks(P, F, OPEN3D_BLOCK, 40)
    remap = np.empty(len(P), np.int32)
    for b in range(len(starts) - 1):
        sel = items[starts[b]:starts[b + 1]]
        fs = F[sel]
        mark = np.zeros(len(P), bool)
        mark[fs] = True
        used = np.flatnonzero(mark)           # (np.unique's order: the same mesh)
        remap[used] = np.arange(len(used), dtype=np.int32)
        m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(P[used]),
                                      o3d.utility.Vector3iVector(remap[fs]))
        pairs = np.asarray(m.get_self_intersecting_triangles())
        if len(pairs):
            out[sel[np.unique(pairs.ravel())]] = True
    return out


@njit(cache=True, nogil=True)
def _open3d_blocks(P, F, max_block, max_depth):
    """The blocks of :func:`open3d_self_intersections`: triangle indices of each block
    (``items[starts[b]:starts[b + 1]]``). A block of more than ``max_block`` triangles is
    cut across the longest side of its triangles' box at the median of their box
    centres; a triangle whose box reaches the cut goes to both sides. Depth first, left
    before right; a cut that leaves a side whole, or ``max_depth``, ends the cutting."""
    nf = F.shape[0]
    lo, hi = _face_boxes(P, F)
    items = np.empty(2 * nf + 16, np.int64)
    starts = np.zeros(nf + 2, np.int64)
    n_items = 0
    n_blocks = 0
    stack = [(np.arange(nf), 0)]
    while len(stack):
        sel, depth = stack.pop()
        n = sel.shape[0]
        leaf = n <= max_block or depth > max_depth
        if not leaf:
            blo = np.full(3, np.inf)
            bhi = np.full(3, -np.inf)
            for s in range(n):
                for k in range(3):
                    blo[k] = min(blo[k], lo[sel[s], k])
                    bhi[k] = max(bhi[k], hi[sel[s], k])
            ax = int(np.argmax(bhi - blo))
            mid = np.empty(n)
            for s in range(n):
                mid[s] = 0.5 * (lo[sel[s], ax] + hi[sel[s], ax])
            cut = np.median(mid)
            n_left = 0
            n_right = 0
            for s in range(n):
                if lo[sel[s], ax] <= cut:
                    n_left += 1
                if hi[sel[s], ax] >= cut:
                    n_right += 1
            if n_left == n or n_right == n:
                leaf = True
            else:
                left = np.empty(n_left, np.int64)
                right = np.empty(n_right, np.int64)
                il = 0
                ir = 0
                for s in range(n):
                    if lo[sel[s], ax] <= cut:
                        left[il] = sel[s]
                        il += 1
                    if hi[sel[s], ax] >= cut:
                        right[ir] = sel[s]
                        ir += 1
                stack.append((right, depth + 1))
                stack.append((left, depth + 1))
        if leaf:
            if n_items + n > items.shape[0]:
                grown = np.empty(2 * (n_items + n), np.int64)
                grown[:n_items] = items[:n_items]
                items = grown
            items[n_items:n_items + n] = sel
            n_items += n
            n_blocks += 1
            if n_blocks + 1 > starts.shape[0]:
                more = np.zeros(2 * starts.shape[0], np.int64)
                more[:starts.shape[0]] = starts
                starts = more
            starts[n_blocks] = n_items
    return items[:n_items], starts[:n_blocks + 1]


# -- kernels of the repair chain (:mod:`._repair`): check_mesh's topology and the
# -- surface voxels of voxel_remesh (here so that the set-up warms them, smlmspine._warm)

@njit(cache=True, nogil=True)
def _long(x0, y0, z0, x1, y1, z1, max_edge):
    dx = x0 - x1
    dy = y0 - y1
    dz = z0 - z1
    return math.sqrt(dx * dx + dy * dy + dz * dz) > max_edge


@njit(cache=True, nogil=True)
def _subdivision_points(V, F, max_edge, max_iter):
    """Vertices of trimesh's ``subdivide_to_size`` (each face split on its own).

    trimesh splits, round after round, every edge longer than ``max_edge`` at its
    midpoint and re-triangulates each face by how many of its edges were split (one:
    two triangles; two: a corner and the shorter diagonal of the quad; three: four
    triangles). Whether an edge is split and where its midpoint lies depend only on its
    two end points (lengths and midpoints are symmetric in them), so splitting each face
    on its own, depth first, gives the same points (shared edges' midpoints twice).
    Returns ``(points, ok)``; ``ok`` False when a face needs more than ``max_iter``
    rounds (trimesh raises "max_iter exceeded!").
    """
    nv = V.shape[0]
    cap = max(16, 2 * nv + 4 * F.shape[0])
    out = np.empty((cap, 3))
    out[:nv] = V
    n = nv
    # stack of triangles: 9 coordinates and the round
    st = np.empty((64 * (max_iter + 2), 9))
    sd = np.empty(64 * (max_iter + 2), np.int64)
    tri = np.empty((6, 3))    # a, b, c, then the midpoints of ab, bc, ca
    kids = np.empty((4, 3), np.int64)
    for f in range(F.shape[0]):
        for k in range(3):
            for x in range(3):
                st[0, 3 * k + x] = V[F[f, k], x]
        sd[0] = 0
        top = 1
        while top > 0:
            top -= 1
            depth = sd[top]
            for k in range(3):
                for x in range(3):
                    tri[k, x] = st[top, 3 * k + x]
            split0 = _long(tri[0, 0], tri[0, 1], tri[0, 2], tri[1, 0], tri[1, 1], tri[1, 2], max_edge)
            split1 = _long(tri[1, 0], tri[1, 1], tri[1, 2], tri[2, 0], tri[2, 1], tri[2, 2], max_edge)
            split2 = _long(tri[2, 0], tri[2, 1], tri[2, 2], tri[0, 0], tri[0, 1], tri[0, 2], max_edge)
            count = int(split0) + int(split1) + int(split2)
            if count == 0:
                continue
            if depth >= max_iter:
                return out[:n], False
            split = (split0, split1, split2)
            for j in range(3):
                if split[j]:
                    k = (j + 1) % 3
                    for x in range(3):
                        tri[3 + j, x] = (tri[j, x] + tri[k, x]) / 2.0
                    if n == out.shape[0]:
                        grown = np.empty((2 * out.shape[0], 3))
                        grown[:n] = out[:n]
                        out = grown
                    for x in range(3):
                        out[n, x] = tri[3 + j, x]
                    n += 1
            # children as rows of tri (0-2 corners, 3-5 midpoints of edges 0-2)
            if count == 1:
                j = 0 if split0 else (1 if split1 else 2)
                a, b, c, p = j, (j + 1) % 3, (j + 2) % 3, 3 + j
                kids[0, 0], kids[0, 1], kids[0, 2] = a, p, c
                kids[1, 0], kids[1, 1], kids[1, 2] = p, b, c
                nk = 2
            elif count == 2:
                u = 0 if not split0 else (1 if not split1 else 2)
                j = (u + 1) % 3
                a, b, c = j, (j + 1) % 3, (j + 2) % 3
                p, q = 3 + j, 3 + (j + 1) % 3
                daq = ((tri[a, 0] - tri[q, 0]) ** 2 + (tri[a, 1] - tri[q, 1]) ** 2
                       + (tri[a, 2] - tri[q, 2]) ** 2)
                dpc = ((tri[p, 0] - tri[c, 0]) ** 2 + (tri[p, 1] - tri[c, 1]) ** 2
                       + (tri[p, 2] - tri[c, 2]) ** 2)
                kids[0, 0], kids[0, 1], kids[0, 2] = p, b, q
                if daq <= dpc:
                    kids[1, 0], kids[1, 1], kids[1, 2] = a, p, q
                    kids[2, 0], kids[2, 1], kids[2, 2] = a, q, c
                else:
                    kids[1, 0], kids[1, 1], kids[1, 2] = a, p, c
                    kids[2, 0], kids[2, 1], kids[2, 2] = p, q, c
                nk = 3
            else:
                kids[0, 0], kids[0, 1], kids[0, 2] = 0, 3, 5
                kids[1, 0], kids[1, 1], kids[1, 2] = 3, 1, 4
                kids[2, 0], kids[2, 1], kids[2, 2] = 5, 4, 2
                kids[3, 0], kids[3, 1], kids[3, 2] = 3, 4, 5
                nk = 4
            for kk in range(nk):
                for k in range(3):
                    for x in range(3):
                        st[top, 3 * k + x] = tri[kids[kk, k], x]
                sd[top] = depth + 1
                top += 1
    return out[:n], True


def mesh_topology(faces, n_vertices):
    """The topological checks of :func:`._repair.check_mesh`, in one pass.

    ``faces`` (int64, C order) must have three distinct vertices each, all below
    ``n_vertices``. Returns ``(code, count)``: code 0 valid; 1 ``count`` boundary edges
    (used once); 2 ``count`` edges used by more than two faces; 3 neighbouring faces use
    an edge in the same direction; 4 ``count`` vertices whose faces form more than one
    fan; 5 ``count`` separate bodies.
    """
    nv = np.int64(n_vertices)
    e0 = faces.ravel()
    e1 = faces[:, [1, 2, 0]].ravel()
    key = np.minimum(e0, e1) * nv + np.maximum(e0, e1)   # edge k of face f at 3 f + k
    order = np.argsort(key)                               # (any order of equal keys)
    return _mesh_topology(faces, n_vertices, key, order)


@njit(cache=True, nogil=True)
def _mesh_topology(faces, n_vertices, key, order):
    nf = faces.shape[0]
    ne = 3 * nf
    n_once = 0
    n_more = 0
    s = 0
    while s < ne:
        t = s + 1
        while t < ne and key[order[t]] == key[order[s]]:
            t += 1
        if t - s == 1:
            n_once += 1
        elif t - s > 2:
            n_more += 1
        s = t
    if n_once:
        return 1, n_once
    if n_more:
        return 2, n_more
    # every edge in exactly two faces: consecutive pairs of the sorted order
    for s in range(0, ne, 2):
        i = order[s]
        j = order[s + 1]
        if faces[i // 3, i % 3] == faces[j // 3, j % 3]:
            return 3, 1
    # vertex fans: corners (face, vertex) joined across each edge, one set per vertex
    corner = np.arange(ne)
    body = np.arange(nf)
    for s in range(0, ne, 2):
        i = order[s]
        j = order[s + 1]
        fa = i // 3
        fb = j // 3
        a = faces[fa, i % 3]
        b = faces[fa, (i % 3 + 1) % 3]
        for v in (a, b):
            ca = 3 * fa
            for k in range(3):
                if faces[fa, k] == v:
                    ca = 3 * fa + k
                    break
            cb = 3 * fb
            for k in range(3):
                if faces[fb, k] == v:
                    cb = 3 * fb + k
                    break
            _union(corner, ca, cb)
        _union(body, fa, fb)
    root_of = np.full(n_vertices, -1, np.int64)
    multi = np.zeros(n_vertices, np.bool_)
    for c in range(ne):
        v = faces[c // 3, c % 3]
        r = _find(corner, c)
        if root_of[v] < 0:
            root_of[v] = r
        elif root_of[v] != r:
            multi[v] = True
    n_multi = 0
    for v in range(n_vertices):
        if multi[v]:
            n_multi += 1
    if n_multi:
        return 4, n_multi
    n_body = 0
    for f in range(nf):
        if _find(body, f) == f:
            n_body += 1
    if n_body != 1:
        return 5, n_body
    return 0, 0


class UntangleResult:
    """What :func:`untangle` did (lengths in nm).

    Attributes
    ----------
    vertices : (V, 3) ndarray
        The untangled vertex positions.
    ok : bool
        The result passes the exact test.
    n_reverted : int
        Vertices whose move was shortened.
    max_shift_nm : float
        Largest distance of a vertex from its intended position; an upper bound of the
        Hausdorff distance between the untangled and the intended surface (same faces).
    volume_change : float
        Relative volume change against the intended surface (signed).
    n_rounds : int
        Exact tests run.
    """

    __slots__ = ("vertices", "ok", "n_reverted", "max_shift_nm", "volume_change", "n_rounds")

    def __init__(self, vertices, ok, n_reverted, max_shift_nm, volume_change, n_rounds):
        self.vertices = vertices
        self.ok = ok
        self.n_reverted = n_reverted
        self.max_shift_nm = max_shift_nm
        self.volume_change = volume_change
        self.n_rounds = n_rounds

    def to_dict(self) -> dict:
        return {"ok": bool(self.ok), "n_reverted": int(self.n_reverted),
                "max_shift_nm": float(self.max_shift_nm),
                "volume_change": float(self.volume_change), "n_rounds": int(self.n_rounds)}


def _volume(v, f) -> float:
    """Signed volume of a closed mesh (positive for outward winding), about the mean
    vertex (the one definition: :mod:`._repair` uses it too)."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    o = v.mean(0)
    return float(np.einsum("ij,ij->i", a - o, np.cross(b - o, c - o)).sum() / 6.0)


#: Rounds of halving the move of the vertices of intersecting triangles (and of their
#: neighbours) before those moves are undone completely.
HALVING_ROUNDS = 4


def untangle(v_from: np.ndarray, v_to: np.ndarray, faces: np.ndarray, *,
             extra_bad=None, max_rounds: int = 200) -> UntangleResult:
    """Shorten the moves of vertices until a moved mesh no longer intersects itself.

    ``v_from`` must be free of self-intersections (then fully undoing every move gives
    a clean mesh, so this terminates). Each round finds the intersecting triangles at the
    current positions (:func:`self_intersections`' exact test; after the first round
    only the pairs near the vertices moved since, :class:`_Intersections`); the vertices of the intersecting triangles and their one-ring
    neighbours keep half their remaining move (the first :data:`HALVING_ROUNDS` rounds),
    after that the offending vertices are put back where they came from.

    Parameters
    ----------
    v_from, v_to : (V, 3) ndarray
        Vertex positions before and after a move (nm), same faces.
    faces : (F, 3) ndarray of int
    extra_bad : callable, optional
        ``extra_bad(vertices) -> (F,) bool``: more triangles to treat as intersecting
        (e.g. :func:`open3d_self_intersections`), tested once the exact test passes.

    Returns
    -------
    UntangleResult

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(2)
    >>> moved = s.vertices.copy()
    >>> moved[0] = -1.5 * s.vertices[0]                 # one vertex pushed through
    >>> self_intersections(moved, s.faces)[2] > 0
    True
    >>> r = untangle(s.vertices, moved, s.faces)
    >>> r.ok, self_intersections(r.vertices, s.faces)[2]
    (True, 0)
    """
    from scipy.sparse import coo_matrix

    v0 = np.asarray(v_from, float)
    v1 = np.asarray(v_to, float)
    f = np.asarray(faces, np.int64)
    nv = len(v0)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    adj = coo_matrix((np.ones(2 * len(e), bool), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                     shape=(nv, nv)).tocsr()
    t = np.ones(nv)
    reverted = np.zeros(nv, bool)
    ok = False
    rounds = 0
    v = v1.copy()
    extra_done = extra_bad is None
    exact = _Intersections(f)
    while rounds < max_rounds:
        v = v0 + t[:, None] * (v1 - v0)
        rounds += 1
        bad = exact(v)
        if not bad.any() and not extra_done:
            bad = np.asarray(extra_bad(v), bool)
            if not bad.any():
                extra_done = True
        if not bad.any():
            ok = True
            break
        hit = np.zeros(nv, bool)
        hit[f[bad].ravel()] = True
        if rounds <= HALVING_ROUNDS:
            ring = hit | (adj @ hit.astype(np.int8) > 0)
            t[ring] *= 0.5
            reverted |= ring
        else:
            if not (t[hit] > 0).any():
                break          # v_from itself intersects: nothing left to undo
            t[hit] = 0.0
            reverted |= hit
    vol1 = _volume(v1, f)
    dv = (_volume(v, f) - vol1) / vol1 if vol1 != 0 else float("nan")
    shift = float(np.max(np.linalg.norm(v - v1, axis=1))) if nv else 0.0
    return UntangleResult(v, ok, int(reverted.sum()), shift, dv, rounds)


def smooth_untangle(vertices: np.ndarray, faces: np.ndarray, *, rings: int = 2,
                    iterations: int = 4, max_rounds: int = 30, extra_bad=None) -> UntangleResult:
    """Remove self-intersections by smoothing only around them.

    Each round finds the intersecting faces (:func:`self_intersections`' exact test, only
    near the vertices moved since the round before: :class:`_Intersections`); the
    vertices of the intersecting faces
    and ``rings`` rings of neighbours get ``iterations`` Taubin steps (lambda 0.5,
    mu -0.53, uniform weights; the other vertices stay where they are). Folds are
    short-wavelength, so a few local steps unfold them with a small shape change.

    Parameters
    ----------
    vertices : (V, 3) ndarray
        Vertex positions (nm).
    faces : (F, 3) ndarray of int
    extra_bad : callable, optional
        ``extra_bad(vertices) -> (F,) bool``: more faces to treat as intersecting
        (e.g. :func:`open3d_self_intersections`), tested once the exact test passes.

    Returns
    -------
    UntangleResult
        ``max_shift_nm`` and ``volume_change`` against the input.

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(3, radius=100.0)
    >>> v = s.vertices.copy()
    >>> nb = s.vertex_neighbors[0][0]
    >>> v[0] = v[nb] + 0.5 * (v[nb] - v[0])             # moved past a neighbour: folded
    >>> self_intersections(v, s.faces)[2]
    6
    >>> r = smooth_untangle(v, s.faces)
    >>> r.ok, self_intersections(r.vertices, s.faces)[2], abs(r.volume_change) < 1e-3
    (True, 0, True)
    """
    from scipy.sparse import coo_matrix, diags

    v_in = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    nv = len(v_in)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    adj = coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                     shape=(nv, nv)).tocsr()
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(1)).ravel()
    avg = diags(1.0 / np.maximum(deg, 1.0)) @ adj
    v = v_in.copy()
    moved = np.zeros(nv, bool)
    ok = False
    rounds = 0
    extra_done = extra_bad is None
    exact = _Intersections(f)
    while rounds < max_rounds:
        rounds += 1
        bad = exact(v)
        if not bad.any() and not extra_done:
            bad = np.asarray(extra_bad(v), bool)
            if not bad.any():
                extra_done = True
        if not bad.any():
            ok = True
            break
        region = np.zeros(nv, bool)
        region[f[bad].ravel()] = True
        for _ in range(rings):
            region |= adj @ region.astype(float) > 0
        moved |= region
        w = region[:, None].astype(float)
        for _ in range(iterations):
            v = v + 0.5 * w * (avg @ v - v)
            v = v - 0.53 * w * (avg @ v - v)
    vol0 = _volume(v_in, f)
    dv = (_volume(v, f) - vol0) / vol0 if vol0 != 0 else float("nan")
    shift = float(np.max(np.linalg.norm(v - v_in, axis=1))) if nv else 0.0
    return UntangleResult(v, ok, int(moved.sum()), shift, dv, rounds)
