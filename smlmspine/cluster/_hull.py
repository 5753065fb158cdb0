"""Numba kernel: areas of the 2D convex hulls of many clusters at once (monotone chain)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["hull_areas_2d"]


@njit(cache=True)
def _areas(x, y, starts, counts, out):
    scratch = np.empty(2 * counts.max() + 2, dtype=np.int64)
    for c in range(starts.shape[0]):
        s = starts[c]
        n = counts[c]
        if n < 3:
            continue
        k = 0
        for i in range(s, s + n):  # lower hull
            while k >= 2:
                a = scratch[k - 2]
                b = scratch[k - 1]
                cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
                if cross > 0:
                    break
                k -= 1
            scratch[k] = i
            k += 1
        lower = k + 1
        for i in range(s + n - 2, s - 1, -1):  # upper hull
            while k >= lower:
                a = scratch[k - 2]
                b = scratch[k - 1]
                cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
                if cross > 0:
                    break
                k -= 1
            scratch[k] = i
            k += 1
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
