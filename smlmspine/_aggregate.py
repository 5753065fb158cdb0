"""Per-group reductions of table rows: the package's one row aggregator.

:class:`Groups` sorts the rows once by an integer key (stable: a group keeps the order
of its rows) and reduces any column per group with ``ufunc.reduceat`` over the sorted
rows (sums are numpy's pairwise sums). Used by :func:`smlmspine.merge.merge_blinks`
(bursts), :func:`smlmspine.minflux.average_traces`, :func:`~smlmspine.minflux.trace_lengths`
and :func:`~smlmspine.minflux.split_channels_by_dcr` (traces).

Examples
--------
>>> g = Groups(np.array([5, 2, 5, 2, 9]))
>>> g.keys.tolist(), g.counts.tolist()
([2, 5, 9], [2, 2, 1])
>>> g.sum(np.array([1.0, 2.0, 3.0, 4.0, 5.0])).tolist()
[6.0, 4.0, 5.0]
>>> g.first_rows.tolist(), g.per_row(g.counts).tolist()
([1, 0, 4], [2, 2, 2, 2, 1])
"""

from __future__ import annotations

import numpy as np

__all__ = ["Groups"]


class Groups:
    """Rows grouped by an integer key.

    Parameters
    ----------
    keys : (N,) array of int
        Group key of every row. Groups come in increasing key order; within a group the
        rows keep their order.
    singletons : (N,) array of bool, optional
        Rows that form a group of their own whatever their key (e.g. ``track_id < 0``).
        Only meaningful for keys that sort them apart (equal keys stay adjacent).

    Attributes
    ----------
    order : (N,) ndarray of int or None
        Stable sort order of the rows (None when the keys are already sorted).
    starts, counts : (G,) ndarray of int64
        First sorted row and number of rows of every group.
    """

    def __init__(self, keys: np.ndarray, *, singletons: np.ndarray | None = None):
        keys = np.asarray(keys)
        n = keys.size
        self.n_rows = n
        self.order = None
        if n > 1 and np.any(keys[1:] < keys[:-1]):
            self.order = np.argsort(keys, kind="stable")
        ks = self.sort(keys)
        start = np.empty(n, dtype=bool)
        if n:
            start[0] = True
            np.not_equal(ks[1:], ks[:-1], out=start[1:])
            if singletons is not None:
                start |= self.sort(np.asarray(singletons, dtype=bool))
        self.starts = np.flatnonzero(start).astype(np.int64)
        self.counts = np.diff(np.append(self.starts, n)).astype(np.int64)
        self.keys = ks[self.starts]

    @property
    def n_groups(self) -> int:
        return int(self.starts.size)

    @property
    def first_rows(self) -> np.ndarray:
        """Input row index of the first row of every group ``(G,)``."""
        return self.starts if self.order is None else self.order[self.starts]

    def sort(self, values):
        """``values`` ``(N, ...)`` in group order (a view-free copy only when needed)."""
        return values if self.order is None else values[self.order]

    def _sorted(self, values, presorted: bool):
        v = np.asarray(values)
        return v if presorted else self.sort(v)

    def reduce(self, ufunc, values, *, presorted: bool = False) -> np.ndarray:
        """``ufunc.reduceat`` of ``values`` ``(N,)`` over every group ``(G,)``;
        ``presorted``: the values are in group order already (:meth:`sort`)."""
        v = self._sorted(values, presorted)
        return ufunc.reduceat(v, self.starts) if self.starts.size else v[:0]

    def sum(self, values, *, presorted: bool = False) -> np.ndarray:
        """Per-group sum (numpy's pairwise summation within a group)."""
        return self.reduce(np.add, values, presorted=presorted)

    def mean(self, values, *, presorted: bool = False) -> np.ndarray:
        """Per-group mean (sum over count)."""
        return self.sum(values, presorted=presorted) / self.counts

    def weighted_mean(self, values, weights, *, presorted: bool = False) -> np.ndarray:
        """Per-group ``sum(w v) / sum(w)``."""
        v = np.asarray(values, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        return self.sum(w * v, presorted=presorted) / self.sum(w, presorted=presorted)

    def nanmean(self, values, *, presorted: bool = False) -> np.ndarray:
        """Per-group mean ignoring NaN (NaN for a group of NaN only)."""
        v = np.asarray(values, dtype=np.float64)
        nan = np.isnan(v)
        s = self.sum(np.where(nan, 0.0, v), presorted=presorted)
        k = self.sum((~nan).astype(np.float64), presorted=presorted)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(k > 0, s / np.where(k > 0, k, 1), np.nan)

    def min(self, values, *, presorted: bool = False) -> np.ndarray:
        return self.reduce(np.minimum, values, presorted=presorted)

    def max(self, values, *, presorted: bool = False) -> np.ndarray:
        return self.reduce(np.maximum, values, presorted=presorted)

    def all(self, values, *, presorted: bool = False) -> np.ndarray:
        """Per-group logical and of boolean values."""
        return self.reduce(np.logical_and, np.asarray(values, dtype=bool), presorted=presorted)

    def first(self, values, *, presorted: bool = False) -> np.ndarray:
        """The value of every group's first row ``(G, ...)``."""
        v = np.asarray(values)
        return v[self.starts] if presorted else v[self.first_rows]

    def per_row(self, per_group: np.ndarray) -> np.ndarray:
        """A per-group array ``(G,)`` broadcast back to the rows ``(N,)``, input order."""
        per_sorted = np.repeat(per_group, self.counts)
        if self.order is None:
            return per_sorted
        out = np.empty_like(per_sorted)
        out[self.order] = per_sorted
        return out
