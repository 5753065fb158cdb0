"""numba kernels of the repair chain (:mod:`._repair`)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__: list[str] = []


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


@njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _union(parent, i, j):
    ri = _find(parent, i)
    rj = _find(parent, j)
    if ri != rj:
        if ri < rj:
            parent[rj] = ri
        else:
            parent[ri] = rj


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
