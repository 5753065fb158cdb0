"""Numba kernels of the grid (cell-list) DBSCAN.

This is the only module of :mod:`smlmspine.cluster` that imports numba; the public
functions import it lazily, so ``import smlmspine.cluster`` stays light.

Algorithm (exact DBSCAN, memory O(N)):

1. Points are binned into cubic cells slightly larger than ``eps`` (so every pair within
   ``eps`` lies in the same or in adjacent cells, despite rounding), cells are given a
   linear key and points are sorted by key (stable: ties keep the input order).
2. Core points: a point is core when at least ``min_samples`` points (itself included,
   as in scikit-learn) lie within ``eps`` (``d^2 <= eps^2``, the comparison scikit-learn's
   KD-tree makes). Counting stops at ``min_samples``.
3. Core points within ``eps`` of each other are joined with a union-find forest, on a
   second grid of side ``eps / sqrt(D)``: the core points of one such cell are within
   ``eps`` of each other and are joined without computing distances; two cells are
   joined by the first pair found within ``eps``, and not searched at all when already
   joined. Dense clusters (fiducials) thus cost about O(n), not O(n^2). If that grid would
   overflow a 64-bit key, the pairs are tested on the eps grid instead.
4. Clusters are numbered by the smallest input index of their core points (the order
   scikit-learn numbers them in).
5. Each non-core point with a core point within ``eps`` (a border point) gets either the
   cluster of its nearest core point (``nearest``; equal distances go to the lower cluster
   id) or the lowest cluster id among the core points within ``eps`` (``lowest``: exactly
   what scikit-learn's DBSCAN returns). Other points are noise (-1).

No neighbourhood list is ever stored: the neighbour cells of a cell are found by binary
search among the sorted occupied-cell keys when the cell is visited. The grid (cell keys,
occupied cells, neighbour cells) and the union-find are the package's shared kernels,
:mod:`smlmspine._grid`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._grid import (find, grid_slots, key_coords, neighbour_cells, occupied_cells, point_keys,
                     row_keys, strides_for, union)

__all__ = ["grid_dbscan"]

BORDER_NEAREST = 0
BORDER_LOWEST = 1


@njit(cache=True)
def _permute_rows(a, order, tmp):
    """``a[:] = a[order]`` column by column, with one ``(N,)`` scratch array."""
    n, d = a.shape
    for k in range(d):
        for i in range(n):
            tmp[i] = a[order[i], k]
        for i in range(n):
            a[i, k] = tmp[i]


@njit(cache=True)
def _core_flags(pts, ukeys, slots, starts, dims, strides, eps2, min_samples):
    """Core point flags of points sorted by eps-cell."""
    n, d = pts.shape
    m = ukeys.shape[0]
    nb = np.empty(3 ** d, dtype=np.int64)
    base = np.empty(d, dtype=np.int64)
    core = np.zeros(n, dtype=np.bool_)

    # 2. core points (count stops at min_samples)
    for c in range(m):
        key_coords(ukeys[c], dims, strides, base)
        n_nb = neighbour_cells(ukeys, slots, base, dims, strides, 1, nb)
        for p in range(starts[c], starts[c + 1]):
            count = 0
            for t in range(n_nb):
                cc = nb[t]
                for q in range(starts[cc], starts[cc + 1]):
                    d2 = 0.0
                    for k in range(d):
                        diff = pts[p, k] - pts[q, k]
                        d2 += diff * diff
                    if d2 <= eps2:
                        count += 1
                        if count >= min_samples:
                            break
                if count >= min_samples:
                    break
            if count >= min_samples:
                core[p] = True

    return core


@njit(cache=True)
def _union_coarse(pts, ukeys, slots, starts, dims, strides, eps2, core, parent):
    """Union-find over core points on the eps grid (fallback when no fine grid fits)."""
    d = pts.shape[1]
    m = ukeys.shape[0]
    nb = np.empty(3 ** d, dtype=np.int64)
    base = np.empty(d, dtype=np.int64)
    # 3. union-find over core points (each pair visited once: cells c' >= c)
    for c in range(m):
        has_core = False
        for p in range(starts[c], starts[c + 1]):
            if core[p]:
                has_core = True
                break
        if not has_core:
            continue
        key_coords(ukeys[c], dims, strides, base)
        n_nb = neighbour_cells(ukeys, slots, base, dims, strides, 1, nb)
        for p in range(starts[c], starts[c + 1]):
            if not core[p]:
                continue
            for t in range(n_nb):
                cc = nb[t]
                if cc < c:
                    continue
                q0 = p + 1 if cc == c else starts[cc]
                for q in range(q0, starts[cc + 1]):
                    if not core[q]:
                        continue
                    d2 = 0.0
                    for k in range(d):
                        diff = pts[p, k] - pts[q, k]
                        d2 += diff * diff
                    if d2 <= eps2:
                        union(parent, p, q)


@njit(cache=True)
def _union_fine(pts, rows, fukeys, fslots, fstarts, fdims, fstrides, eps2, parent):
    """Union-find over core points on a grid of side eps / sqrt(D).

    ``rows`` lists the core points (positions in ``pts``) sorted by fine cell. Two points
    of one fine cell are within eps, so a cell's core points are joined without any
    distance; two cells need one pair within eps (a witness), and none is searched for
    when the cells are already joined. This keeps dense clusters (fiducials) linear.
    """
    d = pts.shape[1]
    m = fukeys.shape[0]
    nb = np.empty(5 ** d, dtype=np.int64)
    base = np.empty(d, dtype=np.int64)
    for f in range(m):
        a = rows[fstarts[f]]
        for i in range(fstarts[f] + 1, fstarts[f + 1]):
            union(parent, a, rows[i])
    for f in range(m):
        key_coords(fukeys[f], fdims, fstrides, base)
        n_nb = neighbour_cells(fukeys, fslots, base, fdims, fstrides, 2, nb)
        for t in range(n_nb):
            g = nb[t]
            if g <= f:
                continue
            if find(parent, rows[fstarts[f]]) == find(parent, rows[fstarts[g]]):
                continue
            found = False
            for i in range(fstarts[f], fstarts[f + 1]):
                p = rows[i]
                for j in range(fstarts[g], fstarts[g + 1]):
                    q = rows[j]
                    d2 = 0.0
                    for k in range(d):
                        diff = pts[p, k] - pts[q, k]
                        d2 += diff * diff
                    if d2 <= eps2:
                        found = True
                        break
                if found:
                    break
            if found:
                union(parent, rows[fstarts[f]], rows[fstarts[g]])


@njit(cache=True)
def _label(pts, order, ukeys, slots, starts, dims, strides, eps2, core, parent, first, labels,
           border_rule):
    """Cluster numbering and border points; fills ``labels`` (input order)."""
    n, d = pts.shape
    m = ukeys.shape[0]
    nb = np.empty(3 ** d, dtype=np.int64)
    base = np.empty(d, dtype=np.int64)
    # 4. number clusters by the smallest input index of their core points
    first[:] = n  # per root: smallest input index of its cores
    for p in range(n):
        if core[p]:
            r = find(parent, p)
            if order[p] < first[r]:
                first[r] = order[p]
    n_clusters = 0
    for p in range(n):
        if core[p] and parent[p] == p:
            n_clusters += 1
    roots = np.empty(n_clusters, dtype=np.int64)
    firsts = np.empty(n_clusters, dtype=np.int64)
    j = 0
    for p in range(n):
        if core[p] and parent[p] == p:
            roots[j] = p
            firsts[j] = first[p]
            j += 1
    rank = np.argsort(firsts)
    for j in range(n_clusters):
        first[roots[rank[j]]] = j  # reuse: root -> cluster id

    labels[:] = -1
    for p in range(n):
        if core[p]:
            labels[order[p]] = first[find(parent, p)]

    # 5. border points
    for c in range(m):
        all_core = True
        for p in range(starts[c], starts[c + 1]):
            if not core[p]:
                all_core = False
                break
        if all_core:
            continue
        key_coords(ukeys[c], dims, strides, base)
        n_nb = neighbour_cells(ukeys, slots, base, dims, strides, 1, nb)
        for p in range(starts[c], starts[c + 1]):
            if core[p]:
                continue
            best = -1
            best_d2 = np.inf
            for t in range(n_nb):
                cc = nb[t]
                for q in range(starts[cc], starts[cc + 1]):
                    if not core[q]:
                        continue
                    d2 = 0.0
                    for k in range(d):
                        diff = pts[p, k] - pts[q, k]
                        d2 += diff * diff
                    if d2 <= eps2:
                        lab = labels[order[q]]
                        if border_rule == BORDER_LOWEST:
                            if best < 0 or lab < best:
                                best = lab
                        elif d2 < best_d2 or (d2 == best_d2 and lab < best):
                            best = lab
                            best_d2 = d2
            labels[order[p]] = best
    return n_clusters


def grid_dbscan(coords: np.ndarray, *, eps: float, min_samples: int, border: str = "nearest",
                overwrite_input: bool = False, index_dtype=None, fine_grid: bool = True
                ) -> tuple[np.ndarray, int]:
    """Exact DBSCAN labels of ``coords`` (``(N, D)`` float64, D in 1..3).

    Returns ``(labels, n_clusters)``; ``labels`` is ``(N,)`` int64 with -1 for noise.
    The caller checks the parameters and that the coordinates are finite. With
    ``overwrite_input`` a C-contiguous float64 ``coords`` is reordered in place (saves
    a copy). Scratch memory: about 40 bytes per point plus the sort. ``index_dtype``
    forces the point index type (default int32 below 2^31 points, else int64);
    ``fine_grid=False`` joins core points on the eps grid (the fallback, for tests).
    """
    if overwrite_input and coords.dtype == np.float64 and coords.flags.c_contiguous \
            and coords.flags.writeable:
        pts = coords
    else:
        pts = np.array(coords, dtype=np.float64, order="C")
    n, d = pts.shape
    if n == 0:
        return np.empty(0, dtype=np.int64), 0
    cell_size = float(eps) * (1.0 + 1e-9)
    mins = pts.min(axis=0)
    extent = pts.max(axis=0) - mins
    # cells padded by one on every side: neighbour cells never leave the grid
    dims = np.array([int(np.floor(e / cell_size)) + 3 for e in extent], dtype=np.int64)
    try:
        strides, total = strides_for(dims, "F")
    except OverflowError:
        raise OverflowError(f"extent {extent.tolist()} nm spans too many eps cells") from None
    index = index_dtype or (np.int32 if n < 2 ** 31 - 1 else np.int64)
    keys = point_keys(pts, mins, cell_size, 1, dims, strides)
    order = np.argsort(keys, kind="stable").astype(index, copy=False)
    starts = np.empty(n + 1, dtype=index)
    ukeys, m = occupied_cells(keys, order, starts)
    starts = starts[:m + 1].copy()
    slots = grid_slots(ukeys, total, n)
    scratch = keys.view(np.float64)  # the keys are no longer needed: reuse their memory
    _permute_rows(pts, order, scratch)
    del keys, scratch
    e2 = float(eps) * float(eps)
    core = _core_flags(pts, ukeys, slots, starts, dims, strides, e2, int(min_samples))
    parent = np.arange(n, dtype=index)
    _union(pts, core, parent, ukeys, slots, starts, dims, strides, eps=float(eps), mins=mins,
           extent=extent, fine_grid=fine_grid)
    rule = BORDER_LOWEST if border == "lowest" else BORDER_NEAREST
    labels = np.empty(n, dtype=np.int64)
    n_clusters = _label(pts, order, ukeys, slots, starts, dims, strides, e2, core, parent,
                        np.empty(n, dtype=index), labels, rule)
    return labels, int(n_clusters)


def _union(pts, core, parent, ukeys, slots, starts, dims, strides, *, eps, mins, extent,
           fine_grid=True):
    """Join core points within eps: on the fine grid, or on the eps grid if it overflows."""
    d = pts.shape[1]
    e2 = eps * eps
    cell = eps / np.sqrt(d) * (1.0 - 1e-9)
    fine = None
    if cell > 0 and fine_grid:
        # fine cells padded by two on every side (neighbours within two cells)
        fdims = np.array([int(np.floor(e / cell)) + 5 for e in extent], dtype=np.int64)
        try:
            fine, ftotal = strides_for(fdims, "F")
        except OverflowError:
            fine = None
    if fine is None:
        _union_coarse(pts, ukeys, slots, starts, dims, strides, e2, core, parent)
        return
    rows = np.flatnonzero(core).astype(parent.dtype, copy=False)
    if rows.size == 0:
        return
    fkeys = row_keys(pts, rows, mins, cell, 2, fdims, fine)
    forder = np.argsort(fkeys, kind="stable").astype(parent.dtype, copy=False)
    fstarts = np.empty(rows.size + 1, dtype=parent.dtype)
    fukeys, m = occupied_cells(fkeys, forder, fstarts)
    del fkeys
    rows = rows[forder]
    del forder
    fslots = grid_slots(fukeys, ftotal, rows.size)
    _union_fine(pts, rows, fukeys, fslots, fstarts[:m + 1], fdims, fine, e2, parent)
