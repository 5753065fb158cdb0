"""Numba kernels of :class:`~smlmspine.envelope.AlphaComplex` (imported lazily).

Each kernel reproduces a former numpy/scipy step exactly (same tetrahedra, same faces in
the same order): component labels follow the lowest tetrahedron index as in
``scipy.sparse.csgraph.connected_components``, boundary faces come in (tetrahedron,
face) order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._grid import (cell_of, cell_run, cell_slots, find, lower_bound, sort_cells, strides_for,
                     union)

__all__ = ["circumradii", "main_component", "fill_cavities", "boundary_faces",
           "repair_candidates", "held_fraction", "kth_neighbor_distances"]


@njit(cache=True, nogil=True)
def main_component(keep, neighbors):
    """The face-connected component of ``keep`` with most tetrahedra (ties: the one with
    the lowest tetrahedron index)."""
    nt = keep.shape[0]
    lab = np.empty(nt, np.int64)
    lab[:] = -1
    stack = np.empty(nt, np.int64)
    best = -1
    best_size = 0
    n_lab = 0
    for t0 in range(nt):
        if not keep[t0] or lab[t0] >= 0:
            continue
        lab[t0] = n_lab
        stack[0] = t0
        ns = 1
        size = 0
        while ns > 0:
            ns -= 1
            u = stack[ns]
            size += 1
            for k in range(4):
                w = neighbors[u, k]
                if w >= 0 and keep[w] and lab[w] < 0:
                    lab[w] = n_lab
                    stack[ns] = w
                    ns += 1
        if size > best_size:
            best_size = size
            best = n_lab
        n_lab += 1
    out = np.zeros(nt, np.bool_)
    if best >= 0:
        for t in range(nt):
            out[t] = lab[t] == best
    return out


@njit(cache=True, nogil=True)
def fill_cavities(keep, neighbors, face_radii, gap):
    """``keep`` plus every free tetrahedron that cannot reach the convex hull through
    free tetrahedra; with ``gap > 0`` only through faces of circumradius >= ``gap``
    (as seen from either side)."""
    nt = keep.shape[0]
    reach = np.zeros(nt, np.bool_)
    stack = np.empty(nt, np.int64)
    ns = 0
    for t in range(nt):
        if not keep[t]:
            for k in range(4):
                if neighbors[t, k] < 0:
                    reach[t] = True
                    stack[ns] = t
                    ns += 1
                    break
    while ns > 0:
        ns -= 1
        u = stack[ns]
        for k in range(4):
            w = neighbors[u, k]
            if w < 0 or keep[w] or reach[w]:
                continue
            if gap > 0:
                ok = face_radii[u, k] >= gap
                if not ok:
                    for j in range(4):
                        if neighbors[w, j] == u:
                            ok = face_radii[w, j] >= gap
                            break
                if not ok:
                    continue
            reach[w] = True
            stack[ns] = w
            ns += 1
    out = keep.copy()
    for t in range(nt):
        if not keep[t] and not reach[t]:
            out[t] = True
    return out


@njit(cache=True, nogil=True)
def boundary_faces(keep, simplices, neighbors, points):
    """Faces of kept tetrahedra next to removed ones or on the hull, oriented away from
    the opposite vertex; in (tetrahedron, face) order."""
    nt = keep.shape[0]
    n = 0
    for t in range(nt):
        if keep[t]:
            for k in range(4):
                w = neighbors[t, k]
                if w < 0 or not keep[w]:
                    n += 1
    faces = np.empty((n, 3), np.int64)
    i = 0
    for t in range(nt):
        if not keep[t]:
            continue
        for k in range(4):
            w = neighbors[t, k]
            if w >= 0 and keep[w]:
                continue
            a = simplices[t, (k + 1) % 4]
            b = simplices[t, (k + 2) % 4]
            c = simplices[t, (k + 3) % 4]
            o = simplices[t, k]
            ux = points[b, 0] - points[a, 0]
            uy = points[b, 1] - points[a, 1]
            uz = points[b, 2] - points[a, 2]
            vx = points[c, 0] - points[a, 0]
            vy = points[c, 1] - points[a, 1]
            vz = points[c, 2] - points[a, 2]
            nx = uy * vz - uz * vy
            ny = uz * vx - ux * vz
            nz = ux * vy - uy * vx
            d = (nx * (points[o, 0] - points[a, 0]) + ny * (points[o, 1] - points[a, 1])
                 + nz * (points[o, 2] - points[a, 2]))
            if d > 0:
                faces[i, 0] = c
                faces[i, 1] = b
                faces[i, 2] = a
            else:
                faces[i, 0] = a
                faces[i, 1] = b
                faces[i, 2] = c
            i += 1
    return faces


@njit(cache=True, nogil=True)
def _edge_order(faces, nv):
    """Edge keys ``min * nv + max`` of the face edges (f0 f1, f1 f2, f2 f0 of every face)
    and an order that sorts them (counting sort on ``min``, insertion sort inside)."""
    nf = faces.shape[0]
    ne = 3 * nf
    key = np.empty(ne, np.int64)
    start = np.zeros(nv + 1, np.int64)
    for f in range(nf):
        for j in range(3):
            a = np.int64(faces[f, j])
            b = np.int64(faces[f, (j + 1) % 3])
            if a > b:
                a, b = b, a
            key[3 * f + j] = a * nv + b
            start[a + 1] += 1
    for v in range(nv):
        start[v + 1] += start[v]
    fill = start[:-1].copy()
    order = np.empty(ne, np.int64)
    for e in range(ne):
        a = key[e] // nv
        order[fill[a]] = e
        fill[a] += 1
    for v in range(nv):
        for i in range(start[v] + 1, start[v + 1]):
            x = order[i]
            kx = key[x]
            j = i - 1
            while j >= start[v] and key[order[j]] > kx:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = x
    return key, order


@njit(cache=True, nogil=True)
def repair_candidates(faces, n_vertices, simplices, keep, radii, limit):
    """Non-manifold edges (in > 2 faces) and vertices (> 1 edge-connected fan of faces)
    of ``faces``; returns (found, add) where ``add`` marks the removed tetrahedra with
    circumradius < ``limit`` that touch one of them."""
    nf = faces.shape[0]
    nv = np.int64(n_vertices)
    ne = 3 * nf
    key, order = _edge_order(faces, nv)
    flat = faces.ravel()  # corner c = vertex flat[c] of face c // 3
    # corners (face, position) joined across every edge shared by two or more faces
    parent = np.arange(ne)
    n_bad_edges = 0
    bad_edges = np.empty(ne, np.int64)
    s = 0
    while s < ne:
        e = s + 1
        kv = key[order[s]]
        while e < ne and key[order[e]] == kv:
            e += 1
        if e - s > 2:
            bad_edges[n_bad_edges] = kv
            n_bad_edges += 1
        for i in range(s, e - 1):
            # edge entry 3 f + j joins corner 3 f + j to corner 3 f + (j + 1) % 3
            ea = order[i]
            eb = order[i + 1]
            a0 = ea
            a1 = ea - ea % 3 + (ea % 3 + 1) % 3
            b0 = eb
            b1 = eb - eb % 3 + (eb % 3 + 1) % 3
            if flat[a0] != flat[b0]:
                b0, b1 = b1, b0
            for ca, cb in ((a0, b0), (a1, b1)):
                union(parent, ca, cb)
        s = e
    root = np.empty(nv, np.int64)
    root[:] = -1
    bad_vertex = np.zeros(nv, np.bool_)
    n_bad_vertices = 0
    for c in range(ne):
        v = flat[c]
        r = find(parent, c)
        if root[v] < 0:
            root[v] = r
        elif root[v] != r and not bad_vertex[v]:
            bad_vertex[v] = True
            n_bad_vertices += 1
    nt = simplices.shape[0]
    add = np.zeros(nt, np.bool_)
    if n_bad_edges == 0 and n_bad_vertices == 0:
        return False, add
    # bad_edges was filled in increasing key order: binary search on it
    for t in range(nt):
        if keep[t] or not radii[t] < limit:
            continue
        hit = False
        for i in range(4):
            if bad_vertex[simplices[t, i]]:
                hit = True
        if not hit and n_bad_edges:
            for i in range(3):
                for j in range(i + 1, 4):
                    a = simplices[t, i]
                    b = simplices[t, j]
                    if a > b:
                        a, b = b, a
                    kv = a * nv + b
                    p = lower_bound(bad_edges, 0, n_bad_edges, kv)
                    if p < n_bad_edges and bad_edges[p] == kv:
                        hit = True
        add[t] = hit
    return True, add


@njit(cache=True, nogil=True)
def circumradii(points, simplices):
    """Circumradius of every tetrahedron (inf when flat: |det| <= 1e-12 |u||v||w|)."""
    nt = simplices.shape[0]
    out = np.empty(nt)
    for t in range(nt):
        a = simplices[t, 0]
        b = simplices[t, 1]
        c = simplices[t, 2]
        d = simplices[t, 3]
        ux = points[b, 0] - points[a, 0]
        uy = points[b, 1] - points[a, 1]
        uz = points[b, 2] - points[a, 2]
        vx = points[c, 0] - points[a, 0]
        vy = points[c, 1] - points[a, 1]
        vz = points[c, 2] - points[a, 2]
        wx = points[d, 0] - points[a, 0]
        wy = points[d, 1] - points[a, 1]
        wz = points[d, 2] - points[a, 2]
        # v x w, w x u, u x v
        vwx = vy * wz - vz * wy
        vwy = vz * wx - vx * wz
        vwz = vx * wy - vy * wx
        wux = wy * uz - wz * uy
        wuy = wz * ux - wx * uz
        wuz = wx * uy - wy * ux
        uvx = uy * vz - uz * vy
        uvy = uz * vx - ux * vz
        uvz = ux * vy - uy * vx
        det = ux * vwx + uy * vwy + uz * vwz
        uu = ux * ux + uy * uy + uz * uz
        vv = vx * vx + vy * vy + vz * vz
        ww = wx * wx + wy * wy + wz * wz
        nx = uu * vwx + vv * wux + ww * uvx
        ny = uu * vwy + vv * wuy + ww * uvy
        nz = uu * vwz + vv * wuz + ww * uvz
        ad = abs(det)
        if ad > 1e-12 * (uu * vv * ww) ** 0.5:
            out[t] = (nx * nx + ny * ny + nz * nz) ** 0.5 / (2.0 * ad)
        else:
            out[t] = np.inf
    return out


@njit(cache=True, nogil=True)
def held_fraction(keep, simplices, vertex_of):
    """Fraction of the points whose vertex belongs to a kept tetrahedron."""
    held = np.zeros(vertex_of.shape[0], np.bool_)
    for t in range(keep.shape[0]):
        if keep[t]:
            for k in range(4):
                held[simplices[t, k]] = True
    n = 0
    for i in range(vertex_of.shape[0]):
        if held[vertex_of[i]]:
            n += 1
    return n / vertex_of.shape[0]


@njit(cache=True, nogil=True)
def _push(best, d2, k):
    """Insert d2 into the sorted k smallest values ``best``."""
    if d2 >= best[k - 1]:
        return
    i = k - 1
    while i > 0 and best[i - 1] > d2:
        best[i] = best[i - 1]
        i -= 1
    best[i] = d2


@njit(cache=True, nogil=True)
def _kth_on_grid(P, k, lo, h, dims, strides, total):
    """k-th neighbour distances on the shared cell grid of side ``h`` (x fastest); an
    empty array when the cells are too crowded (clustered data: use a k-d tree)."""
    n = P.shape[0]
    out = np.empty(n)
    best = np.empty(k)
    cell = np.empty(n, np.int64)
    for i in range(n):
        c = np.int64(0)
        for a in range(3):
            c += cell_of(P[i, a], lo[a], h, 0, dims[a], True) * strides[a]
        cell[i] = c
    members, ukeys, start = sort_cells(cell, total)
    slots = cell_slots(ukeys, total)  # at most 4 N + 64 cells: a dense table
    crowd = 0.0  # mean number of points in a point's cell
    for c in range(ukeys.shape[0]):
        crowd += (start[c + 1] - start[c]) ** 2 / n
    if crowd > 64.0:  # clustered far apart: the uniform grid is no good
        return np.empty(0)
    # the points in cell order: cells are read contiguously, queries go cell by cell
    S = np.empty((n, 3))
    for m in range(n):
        for a in range(3):
            S[m, a] = P[members[m], a]
    nx = dims[0]
    ny = dims[1]
    nz = dims[2]
    r_max = max(nx, ny, nz)
    for mi in range(n):
        i = members[mi]
        ci = cell[i]
        cx = ci % nx
        cy = (ci // nx) % ny
        cz = ci // (nx * ny)
        # distance from the point to the faces of its own cell (less a rounding margin):
        # points in rings > r are at least r h + off away
        off = h
        for a in range(3):
            ca = cx if a == 0 else (cy if a == 1 else cz)
            f = P[i, a] - (lo[a] + ca * h)
            off = min(off, f, h - f)
        off = max(off - 1e-6 * h, 0.0)
        best[:] = np.inf
        r = 0
        while True:
            for dz in range(-r, r + 1):
                z = cz + dz
                if z < 0 or z >= nz:
                    continue
                for dy in range(-r, r + 1):
                    y = cy + dy
                    if y < 0 or y >= ny:
                        continue
                    row = (z * ny + y) * nx
                    x0 = max(cx - r, 0)
                    x1 = min(cx + r, nx - 1)
                    if abs(dz) == r or abs(dy) == r:
                        # a row on the ring: its cells in x are one run of keys
                        j0, j1 = cell_run(ukeys, slots, row + x0, row + x1)
                        _push_cells(S, mi, start, j0, j1, best, k)
                    else:
                        # inner rows: only the two end cells are on the ring
                        if cx - r >= 0:
                            j0, j1 = cell_run(ukeys, slots, row + cx - r, row + cx - r)
                            _push_cells(S, mi, start, j0, j1, best, k)
                        if cx + r < nx:
                            j0, j1 = cell_run(ukeys, slots, row + cx + r, row + cx + r)
                            _push_cells(S, mi, start, j0, j1, best, k)
            lim = r * h + off
            if best[k - 1] <= lim * lim or r > r_max:
                break
            r += 1
        out[i] = np.sqrt(best[k - 1])
    return out


@njit(cache=True, nogil=True, inline="always")
def _push_cells(S, mi, start, j0, j1, best, k):
    """Push the squared distances from point ``mi`` to the points of cells ``j0:j1``."""
    for m in range(start[j0], start[j1]):
        ex = S[mi, 0] - S[m, 0]
        ey = S[mi, 1] - S[m, 1]
        ez = S[mi, 2] - S[m, 2]
        _push(best, ex * ex + ey * ey + ez * ez, k)


@njit(cache=True, nogil=True)
def _kth_cell_size(P, k):
    """Cell side for :func:`_kth_on_grid`: ~0.7 x the median k-th neighbour distance of
    a sample (speed only, not the result), grown until the grid has <= 4 N + 64 cells."""
    n = P.shape[0]
    best = np.empty(k)
    lo = np.empty(3)
    ext = np.empty(3)
    for a in range(3):
        lo[a] = P[:, a].min()
        ext[a] = P[:, a].max() - lo[a]
    ns = min(n, 32)
    step = max(n // ns, 1)
    samp = np.empty(ns)
    for s in range(ns):
        i = s * step
        best[:] = np.inf
        for j in range(n):
            dx = P[i, 0] - P[j, 0]
            dy = P[i, 1] - P[j, 1]
            dz = P[i, 2] - P[j, 2]
            _push(best, dx * dx + dy * dy + dz * dz, k)
        samp[s] = best[k - 1]
    h = 0.7 * np.sqrt(np.median(samp))
    big = max(ext[0], ext[1], ext[2])
    if not h > 1e-9 * big:
        h = max(big / max(n, 1) ** (1.0 / 3.0), 1e-300)
    dims = np.empty(3, np.int64)
    while True:
        total = 1
        for a in range(3):
            dims[a] = np.int64(ext[a] / h) + 1
            total *= dims[a]
        if total <= 4 * n + 64:
            break
        h *= 1.25
    return lo, h, dims


def kth_neighbor_distances(P, k):
    """Distance from every point to its k-th nearest point, itself and copies included
    (as ``cKDTree(P).query(P, k)[0][:, -1]``), exact, on the shared cell grid
    (:mod:`smlmspine._grid`); an empty array when the points are too clustered for one
    grid (use a k-d tree). ``P`` is ``(N, 3)`` float64 with N >= k >= 1, finite."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    lo, h, dims = _kth_cell_size(P, int(k))
    strides, total = strides_for(dims, "F")
    return _kth_on_grid(P, int(k), lo, h, dims, strides, total)
