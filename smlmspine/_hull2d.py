"""Monotone-chain convex hull of a 2D point run sorted by x, then y (numba), shared by
the cluster statistics (hull areas) and the morphology's cross-sections (Feret widths).
Importing this module imports numba: import it where the kernels are compiled."""

from __future__ import annotations

from numba import njit

__all__ = ["monotone_chain"]


@njit(cache=True, nogil=True)
def monotone_chain(x, y, i0, n, hull):
    """Convex hull of the points ``i0 .. i0 + n - 1`` of ``x``/``y`` (sorted by x, then y).

    Writes the hull's point indices to ``hull`` (capacity >= 2 n + 2), counter-clockwise,
    closed (the last entry repeats the first; collinear points dropped) and returns how
    many entries it wrote.

    Parameters
    ----------
    x, y : (M,) ndarray of float
        Coordinates (any length unit); the run ``i0 .. i0 + n - 1`` sorted by x, then y.
    i0 : int
        First index of the run.
    n : int
        Points in the run.
    hull : (>= 2 n + 2,) ndarray of int64
        Output buffer of point indices (into ``x``/``y``).

    Returns
    -------
    int
        Entries written to ``hull`` (hull vertices + 1).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 0.0, 1.0, 2.0, 2.0])
    >>> y = np.array([0.0, 2.0, 1.0, 0.0, 2.0])
    >>> hull = np.empty(12, np.int64)
    >>> k = monotone_chain(x, y, 0, 5, hull)
    >>> hull[:k].tolist()
    [0, 3, 4, 1, 0]
    """
    k = 0
    for i in range(i0, i0 + n):  # lower hull
        while k >= 2:
            a = hull[k - 2]
            b = hull[k - 1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) > 0:
                break
            k -= 1
        hull[k] = i
        k += 1
    lower = k + 1
    for i in range(i0 + n - 2, i0 - 1, -1):  # upper hull
        while k >= lower:
            a = hull[k - 2]
            b = hull[k - 1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) > 0:
                break
            k -= 1
        hull[k] = i
        k += 1
    return k
