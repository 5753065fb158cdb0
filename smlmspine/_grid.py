"""Cell-grid kernels shared by the package: cell keys, occupied cells, neighbour cells,
union-find and ``lower_bound`` (numba, ``cache=True``).

This is the one copy of the fixed-radius neighbour machinery. Its users import it
lazily (it imports numba): :mod:`smlmspine.cluster._dbscan` (DBSCAN),
:mod:`smlmspine.drift._kernels` (``GridIndex``, pairs within a radius),
:mod:`smlmspine.merge` (blink linking) and :mod:`smlmspine.envelope._alpha_kernels`
(k-th neighbour distances, union-find of mesh corners).

The grid
--------
A grid has an ``origin`` ``(D,)``, one cubic ``cell`` size, ``dims`` ``(D,)`` cells per
axis and integer ``strides`` ``(D,)``: the cell of coordinate ``v`` along axis ``k`` is
``floor((v - origin[k]) / cell) + pad`` clamped to ``[0, dims[k] - 1]``
(:func:`cell_of`), and a cell's linear key is ``sum_k c_k * strides[k]``. One axis (the
*run axis*) has stride 1, so the cells of a row along it have consecutive keys.
:func:`strides_for` gives first-axis-fastest (``"F"``) or last-axis-fastest (``"C"``)
strides.

Points are sorted stably by key; the occupied cells are the runs of equal keys:
sorted unique keys ``ukeys`` ``(M,)`` and ``starts`` ``(M + 1,)`` (the points of
occupied cell ``c`` are ``starts[c]:starts[c + 1]`` of the sorted points). Memory is
O(N) whatever the extent: empty cells cost nothing. The occupied cells near a cell are
found by one binary search per row along the run axis (:func:`neighbour_cells`), or by
direct lookup in a dense cell table (``slots``) when the grid has at most 4 cells per
point (:func:`grid_slots`); either way in key order within a row and rows in a fixed
order (the lowest non-run axis varying fastest), so a search returns its neighbours in
a reproducible order.

Union-find: path halving; a union keeps the lower root index as the root.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["lower_bound", "find", "union", "cell_of", "key_of", "point_keys", "row_keys",
           "key_coords", "strides_for", "occupied_cells", "sort_cells", "dense_ok",
           "cell_slots", "grid_slots", "cell_run", "neighbour_cells", "neighbour_table",
           "check_finite"]


# --------------------------------------------------------------------------- searching

@njit(cache=True, nogil=True)
def lower_bound(a, lo, hi, v):
    """First index ``i`` in ``[lo, hi)`` with ``a[i] >= v`` (``hi`` if none); ``a`` sorted."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------- union-find

@njit(cache=True, nogil=True)
def find(parent, i):
    """Root of ``i`` in the forest ``parent`` (path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def union(parent, a, b):
    """Join the trees of ``a`` and ``b`` (the lower root stays root); True if they were apart."""
    ra = find(parent, a)
    rb = find(parent, b)
    if ra == rb:
        return False
    if ra < rb:
        parent[rb] = ra
    else:
        parent[ra] = rb
    return True


# --------------------------------------------------------------------------- cells and keys

@njit(cache=True, nogil=True, inline="always")
def cell_of(v, origin, cell, pad, dim, clamp):
    """Cell index ``floor((v - origin) / cell) + pad`` along one axis.

    ``clamp``: limited to ``[0, dim - 1]`` (points of the grid). Otherwise limited to
    ``[-2, dim + 1]`` only, so a query far off the grid gets no neighbour cell instead of
    an integer overflow. ``v`` must be finite (:func:`check_finite`).
    """
    f = np.floor((v - origin) / cell)
    if clamp:
        lo = -pad
        hi = dim - 1 - pad
    else:
        lo = -2 - pad
        hi = dim + 1 - pad
    if f < lo:
        f = lo
    elif f > hi:
        f = hi
    return np.int64(f) + pad


@njit(cache=True, nogil=True, inline="always")
def key_of(pts, i, origin, cell, pad, dims, strides):
    """Linear key of the (clamped) cell of point ``pts[i]``."""
    key = np.int64(0)
    for k in range(pts.shape[1]):
        key += cell_of(pts[i, k], origin[k], cell, pad, dims[k], True) * strides[k]
    return key


@njit(cache=True, nogil=True)
def point_keys(pts, origin, cell, pad, dims, strides):
    """Cell keys ``(N,)`` int64 of all points ``pts`` ``(N, D)``."""
    n = pts.shape[0]
    keys = np.empty(n, dtype=np.int64)
    for i in range(n):
        keys[i] = key_of(pts, i, origin, cell, pad, dims, strides)
    return keys


@njit(cache=True, nogil=True)
def row_keys(pts, rows, origin, cell, pad, dims, strides):
    """Cell keys of the points ``pts[rows]`` (without copying them)."""
    keys = np.empty(rows.shape[0], dtype=np.int64)
    for j in range(rows.shape[0]):
        keys[j] = key_of(pts, rows[j], origin, cell, pad, dims, strides)
    return keys


@njit(cache=True, nogil=True, inline="always")
def key_coords(key, dims, strides, out):
    """Cell indices ``(D,)`` of a linear key, written to ``out``."""
    for k in range(dims.shape[0]):
        out[k] = (key // strides[k]) % dims[k]


def strides_for(dims, order: str = "F") -> tuple[np.ndarray, int]:
    """Key strides of a grid with ``dims`` cells per axis and the total cell count.

    ``"F"``: the first axis has stride 1 (the run axis), the last the largest stride;
    ``"C"``: the last axis has stride 1. Raises ``OverflowError`` when the grid has
    ``2**62`` cells or more (keys would not fit an int64).
    """
    dims = [int(v) for v in dims]
    d = len(dims)
    strides = np.ones(d, dtype=np.int64)
    total = 1
    axes = range(d) if order == "F" else range(d - 1, -1, -1)
    for k in axes:
        strides[k] = total
        total *= dims[k]
    if total >= 2 ** 62:
        raise OverflowError(f"a grid of {dims} cells has too many cells for 64-bit keys")
    return strides, total


def check_finite(pts: np.ndarray, what: str = "points") -> None:
    """Raise ``ValueError`` unless every coordinate is finite (NaN has no cell)."""
    if pts.size and not np.isfinite(pts).all():
        raise ValueError(f"{what}: coordinates must be finite (found NaN or inf)")


# --------------------------------------------------------------------------- occupied cells

@njit(cache=True, nogil=True)
def occupied_cells(keys, order, starts_out):
    """Unique keys of ``keys[order]`` (sorted); their run starts go to ``starts_out``.

    ``starts_out`` has room for N + 1 entries; returns the ``(M,)`` unique keys and M,
    with ``starts_out[:M + 1]`` holding the starts and the end.
    """
    n = order.shape[0]
    m = 0
    for i in range(n):
        if i == 0 or keys[order[i]] != keys[order[i - 1]]:
            m += 1
    ukeys = np.empty(m, dtype=np.int64)
    j = 0
    for i in range(n):
        if i == 0 or keys[order[i]] != keys[order[i - 1]]:
            ukeys[j] = keys[order[i]]
            starts_out[j] = i
            j += 1
    starts_out[m] = n
    return ukeys, m


def dense_ok(total: int, n: int) -> bool:
    """Whether a grid of ``total`` cells for ``n`` points is small enough for a dense
    cell table (at most 4 cells per point): direct lookups instead of binary searches."""
    return total <= 4 * n + 64


@njit(cache=True, nogil=True)
def sort_cells(keys, total):
    """Stable sort of points by cell key: ``(order, ukeys, starts)``, all int64.

    A counting sort when ``total`` (the number of cells) is at most 4 per point, a merge
    sort otherwise; both are stable, so the result is the same.
    """
    n = keys.shape[0]
    if total <= 4 * n + 64:
        count = np.zeros(total + 1, dtype=np.int64)
        for i in range(n):
            count[keys[i] + 1] += 1
        for c in range(total):
            count[c + 1] += count[c]
        order = np.empty(n, dtype=np.int64)
        for i in range(n):
            order[count[keys[i]]] = i
            count[keys[i]] += 1
    else:
        order = np.argsort(keys, kind="mergesort")
    starts = np.empty(n + 1, dtype=np.int64)
    ukeys, m = occupied_cells(keys, order, starts)
    return order, ukeys, starts[:m + 1].copy()


@njit(cache=True, nogil=True)
def cell_slots(ukeys, total):
    """Dense cell table ``(total,)``: the occupied-cell index of every key, -1 if empty."""
    slots = np.full(total, -1, dtype=np.int64)
    for c in range(ukeys.shape[0]):
        slots[ukeys[c]] = c
    return slots


def grid_slots(ukeys: np.ndarray, total: int, n: int) -> np.ndarray:
    """:func:`cell_slots` when :func:`dense_ok`, else an empty table (binary searches)."""
    if dense_ok(total, n):
        return cell_slots(ukeys, int(total))
    return np.empty(0, dtype=np.int64)


# --------------------------------------------------------------------------- neighbours

@njit(cache=True, nogil=True, inline="always")
def cell_run(ukeys, slots, key0, key1):
    """Occupied cells with ``key0 <= key <= key1``: the index range ``[j0, j1)`` of ``ukeys``.

    ``slots`` is the dense cell table (:func:`cell_slots`) or empty (binary search).
    """
    if slots.shape[0] > 0:
        k0 = key0
        while k0 <= key1 and slots[k0] < 0:
            k0 += 1
        if k0 > key1:
            return 0, 0
        k1 = key1
        while slots[k1] < 0:
            k1 -= 1
        return slots[k0], slots[k1] + 1
    m = ukeys.shape[0]
    j0 = lower_bound(ukeys, 0, m, key0)
    j1 = j0
    while j1 < m and ukeys[j1] <= key1:
        j1 += 1
    return j0, j1


@njit(cache=True, nogil=True)
def neighbour_cells(ukeys, slots, base, dims, strides, reach, out):
    """Occupied cells within ``reach`` cells of cell ``base`` ``(D,)`` along every axis.

    The ``(2 reach + 1)^D`` block around ``base`` (D <= 3) less the cells off the grid
    (``base`` itself may lie off the grid). Writes the cells' indices into ``ukeys`` to
    ``out`` (room for ``(2 reach + 1)^D``) and returns their number. Order: rows along
    the run axis (stride 1), each in key order; rows with the lowest non-run axis
    varying fastest. ``slots``: the dense cell table or empty (see :func:`cell_run`).
    """
    d = base.shape[0]
    ra = 0
    for k in range(d):
        if strides[k] == 1:
            ra = k
    a1 = -1  # the non-run axes, a1 < a2
    a2 = -1
    for k in range(d):
        if k != ra:
            if a1 < 0:
                a1 = k
            else:
                a2 = k
    lo = max(base[ra] - reach, 0)
    hi = min(base[ra] + reach, dims[ra] - 1)
    n_out = 0
    if lo > hi:
        return n_out
    r1 = reach if a1 >= 0 else 0
    r2 = reach if a2 >= 0 else 0
    for o2 in range(-r2, r2 + 1):
        key2 = np.int64(0)
        if a2 >= 0:
            c2 = base[a2] + o2
            if c2 < 0 or c2 >= dims[a2]:
                continue
            key2 = c2 * strides[a2]
        for o1 in range(-r1, r1 + 1):
            key = key2
            if a1 >= 0:
                c1 = base[a1] + o1
                if c1 < 0 or c1 >= dims[a1]:
                    continue
                key += c1 * strides[a1]
            j0, j1 = cell_run(ukeys, slots, key + lo, key + hi)
            for j in range(j0, j1):
                out[n_out] = j
                n_out += 1
    return n_out


@njit(cache=True, nogil=True)
def neighbour_table(ukeys, slots, dims, strides, reach):
    """:func:`neighbour_cells` of every occupied cell, as a CSR table ``(first, cells)``:
    the neighbours of cell ``c`` are ``cells[first[c]:first[c + 1]]`` (for kernels that
    visit the cells many times in no order)."""
    m = ukeys.shape[0]
    d = dims.shape[0]
    base = np.empty(d, np.int64)
    out = np.empty((2 * reach + 1) ** d, np.int64)
    first = np.empty(m + 1, np.int64)
    first[0] = 0
    for c in range(m):
        key_coords(ukeys[c], dims, strides, base)
        first[c + 1] = first[c] + neighbour_cells(ukeys, slots, base, dims, strides, reach, out)
    cells = np.empty(first[m], np.int64)
    for c in range(m):
        key_coords(ukeys[c], dims, strides, base)
        k = neighbour_cells(ukeys, slots, base, dims, strides, reach, out)
        for j in range(k):
            cells[first[c] + j] = out[j]
    return first, cells
