"""Numba kernels of the drift estimators (imported lazily by the estimators).

The fixed-radius pair search (:class:`GridIndex`) runs on the shared cell grid,
:mod:`smlmspine._grid`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._grid import (cell_of, check_finite, grid_slots, neighbour_cells, point_keys, sort_cells,
                     strides_for)

__all__ = ["mean_shift", "kernel_sums"]


@njit(cache=True, nogil=True)
def mean_shift(diff, start, sigmas, tol, max_iter):
    """Fixed-point maximisation of sum_p exp(-|diff_p - d|^2 / 2 s^2) over d.

    ``sigmas`` is a decreasing schedule of kernel widths; each is iterated to ``tol``.
    """
    P, D = diff.shape
    d = start.copy()
    new = np.zeros(D)
    for s in sigmas:
        inv = 0.5 / (s * s)
        cut = 25.0  # exp(-25) ~ 1e-11: pairs beyond ~7 sigma do not count
        for _ in range(max_iter):
            sw = 0.0
            for k in range(D):
                new[k] = 0.0
            for p in range(P):
                r2 = 0.0
                for k in range(D):
                    t = diff[p, k] - d[k]
                    r2 += t * t
                e = r2 * inv
                if e < cut:
                    w = np.exp(-e)
                    sw += w
                    for k in range(D):
                        new[k] += w * diff[p, k]
            if sw <= 0.0:
                return d
            step = 0.0
            for k in range(D):
                v = new[k] / sw
                if abs(v - d[k]) > step:
                    step = abs(v - d[k])
                d[k] = v
            if step < tol:
                break
    return d


@njit(cache=True, nogil=True)
def kernel_sums(diff, idx, d, sigma, n):
    """Per-localization kernel weight W_i and weighted difference sums (n, D)."""
    P, D = diff.shape
    W = np.zeros(n)
    S = np.zeros((n, D))
    inv = 0.5 / (sigma * sigma)
    for p in range(P):
        r2 = 0.0
        for k in range(D):
            t = diff[p, k] - d[k]
            r2 += t * t
        e = r2 * inv
        if e < 25.0:
            w = np.exp(-e)
            i = idx[p]
            W[i] += w
            for k in range(D):
                S[i, k] += w * diff[p, k]
    return W, S


@njit(cache=True, nogil=True)
def _neighbour_pairs(ref, ukeys, slots, starts, q, origin, cell, dims, strides, r2, fill, out_i,
                     out_j, out_d, labels, skip):
    """Count (fill=False) or write (fill=True) pairs (query j, sorted-ref i) within r.

    The neighbour cells of each query point come from the shared grid
    (:func:`smlmspine._grid.neighbour_cells`): the 3 cells along the last axis are one
    contiguous run of keys, so 3**(D-1) binary searches per query point.
    """
    Q, D = q.shape
    cnt = 0
    base = np.empty(D, np.int64)
    nb = np.empty(3 ** D, np.int64)
    for j in range(Q):
        for k in range(D):
            base[k] = cell_of(q[j, k], origin[k], cell, 0, dims[k], False)
        n_nb = neighbour_cells(ukeys, slots, base, dims, strides, 1, nb)
        for t in range(n_nb):
            cc = nb[t]
            for i in range(starts[cc], starts[cc + 1]):
                if labels[i] == skip:
                    continue
                d2 = 0.0
                for k in range(D):
                    u = q[j, k] - ref[i, k]
                    d2 += u * u
                if d2 <= r2:
                    if fill:
                        out_i[cnt] = i
                        out_j[cnt] = j
                        for k in range(D):
                            out_d[cnt, k] = q[j, k] - ref[i, k]
                    cnt += 1
    return cnt


class GridIndex:
    """Reference points hashed on a grid of cell size ``radius`` for fixed-radius pairs
    (the shared cell grid of :mod:`smlmspine._grid`, last axis fastest)."""

    def __init__(self, pts: np.ndarray, radius: float, *, bounds: tuple | None = None,
                 labels: np.ndarray | None = None):
        pts = np.ascontiguousarray(pts, dtype=np.float64)
        check_finite(pts, "GridIndex reference points")
        self.radius = float(radius)
        if bounds is None:
            lo, hi = pts.min(axis=0), pts.max(axis=0)
        else:
            lo, hi = bounds
        self.origin = np.asarray(lo, float) - 2 * radius
        span = np.asarray(hi, float) + 2 * radius - self.origin
        self.n = np.maximum(np.ceil(span / radius).astype(np.int64), 1)
        self.strides, total = strides_for(self.n, "C")
        keys = point_keys(pts, self.origin, self.radius, 0, self.n, self.strides)
        order, self.ukeys, self.starts = sort_cells(keys, total)
        self.slots = grid_slots(self.ukeys, total, len(pts))
        self.order = order
        self.pts = pts[order]
        self.labels = (np.zeros(len(pts), np.int64) if labels is None
                       else np.asarray(labels, np.int64)[order])

    def pairs(self, q: np.ndarray, radius: float | None = None, *, skip_label: int = -2**62):
        """Pairs within ``radius`` (<= the index radius), reference points labelled
        ``skip_label`` left out.

        Returns the reference indices, the query indices and the differences
        ``q[j] - ref[i]`` ``(P, D)``.
        """
        r = self.radius if radius is None else float(radius)
        if r > self.radius * (1 + 1e-9):
            raise ValueError("query radius exceeds the grid cell size")
        q = np.ascontiguousarray(q, dtype=np.float64)
        check_finite(q, "GridIndex query points")
        qorder = np.argsort(point_keys(q, self.origin, self.radius, 0, self.n, self.strides),
                            kind="stable")
        qs = q[qorder]
        dummy = np.empty(0, np.int64)
        dd = np.empty((0, q.shape[1]))
        args = (self.pts, self.ukeys, self.slots, self.starts, qs, self.origin, self.radius, self.n,
                self.strides, r * r)
        cnt = _neighbour_pairs(*args, False, dummy, dummy, dd, self.labels, skip_label)
        oi = np.empty(cnt, np.int64)
        oj = np.empty(cnt, np.int64)
        od = np.empty((cnt, q.shape[1]))
        _neighbour_pairs(*args, True, oi, oj, od, self.labels, skip_label)
        return self.order[oi], qorder[oj], od


@njit(cache=True, nogil=True)
def newton_peak(diff, start, sigma, tol, max_iter):
    """Maximise f(d) = sum_p exp(-|diff_p - d|^2 / 2 sigma^2) by Newton steps.

    Falls back to a mean-shift step when the Hessian is not negative definite; a step
    is limited to ``sigma``. Converges quadratically near the peak, where plain
    mean-shift slows down on a strong background of unrelated pairs.
    """
    P, D = diff.shape
    d = start.copy()
    inv = 0.5 / (sigma * sigma)
    s2 = sigma * sigma
    g = np.zeros(D)
    H = np.zeros((D, D))
    m = np.zeros(D)
    r = np.zeros(D)
    for _ in range(max_iter):
        sw = 0.0
        for a in range(D):
            g[a] = 0.0
            m[a] = 0.0
            for b in range(D):
                H[a, b] = 0.0
        for p in range(P):
            r2 = 0.0
            for a in range(D):
                r[a] = diff[p, a] - d[a]
                r2 += r[a] * r[a]
            e = r2 * inv
            if e < 25.0:
                w = np.exp(-e)
                sw += w
                for a in range(D):
                    g[a] += w * r[a]
                    m[a] += w * diff[p, a]
                    for b in range(D):
                        H[a, b] += w * r[a] * r[b]
        if sw <= 0.0:
            return d
        # Hessian of f (up to the factor 1/s2): sum w (r r^T / s2 - I)
        for a in range(D):
            for b in range(D):
                H[a, b] = H[a, b] / s2
            H[a, a] -= sw
        step = np.zeros(D)
        ok = True
        # solve H step = -g (D <= 3) by Cholesky of -H
        A = -H
        L = np.zeros((D, D))
        for i in range(D):
            for j in range(i + 1):
                acc = A[i, j]
                for k in range(j):
                    acc -= L[i, k] * L[j, k]
                if i == j:
                    if acc <= 0.0:
                        ok = False
                        break
                    L[i, i] = np.sqrt(acc)
                else:
                    L[i, j] = acc / L[j, j]
            if not ok:
                break
        if ok:
            y = np.zeros(D)
            for i in range(D):
                acc = g[i]
                for k in range(i):
                    acc -= L[i, k] * y[k]
                y[i] = acc / L[i, i]
            for i in range(D - 1, -1, -1):
                acc = y[i]
                for k in range(i + 1, D):
                    acc -= L[k, i] * step[k]
                step[i] = acc / L[i, i]
        else:
            for a in range(D):
                step[a] = m[a] / sw - d[a]
        big = 0.0
        for a in range(D):
            big = max(big, abs(step[a]))
        if big > sigma:
            for a in range(D):
                step[a] *= sigma / big
            big = sigma
        for a in range(D):
            d[a] += step[a]
        if big < tol:
            break
    return d


@njit(cache=True, nogil=True)
def coarse_mode(diff, radius, nb):
    """Centre of the most populated bin of the pair-difference histogram, smoothed by a
    box of 3 bins per axis (bins of 2 radius / nb)."""
    P, D = diff.shape
    size = 2.0 * radius / nb
    total = nb ** D
    h = np.zeros(total)
    for p in range(P):
        key = 0
        ok = True
        for k in range(D):
            c = int((diff[p, k] + radius) / size)
            if c < 0 or c >= nb:
                ok = False
                break
            key = key * nb + c
        if ok:
            h[key] += 1.0
    best, bestv = 0, -1.0
    idx = np.zeros(D, np.int64)
    for key in range(total):
        c = key
        for k in range(D - 1, -1, -1):
            idx[k] = c % nb
            c //= nb
        v = 0.0
        for comb in range(3 ** D):
            cc = comb
            nk = 0
            ok = True
            for k in range(D):
                j = idx[k] + (cc % 3) - 1
                cc //= 3
                if j < 0 or j >= nb:
                    ok = False
                    break
                nk = nk * nb + j
            if ok:
                v += h[nk]
        if v > bestv:
            bestv, best = v, key
    out = np.zeros(D)
    c = best
    for k in range(D - 1, -1, -1):
        out[k] = -radius + (c % nb + 0.5) * size
        c //= nb
    return out


@njit(cache=True, nogil=True)
def within(diff, centre, radius):
    """Rows of ``diff`` within ``radius`` of ``centre`` (a copy)."""
    P, D = diff.shape
    r2 = radius * radius
    keep = np.zeros(P, np.bool_)
    n = 0
    for p in range(P):
        d2 = 0.0
        for k in range(D):
            t = diff[p, k] - centre[k]
            d2 += t * t
        if d2 < r2:
            keep[p] = True
            n += 1
    out = np.empty((n, D))
    j = 0
    for p in range(P):
        if keep[p]:
            for k in range(D):
                out[j, k] = diff[p, k]
            j += 1
    return out


@njit(cache=True, nogil=True)
def peak_and_shell(diff, d, sigma, radius):
    """Kernel-weighted pair count at ``d`` and the number of pairs with |diff| >= radius/2."""
    P, D = diff.shape
    inv = 0.5 / (sigma * sigma)
    sw = 0.0
    shell = 0
    h2 = 0.25 * radius * radius
    for p in range(P):
        r2 = 0.0
        a2 = 0.0
        for k in range(D):
            t = diff[p, k] - d[k]
            r2 += t * t
            a2 += diff[p, k] * diff[p, k]
        e = r2 * inv
        if e < 25.0:
            sw += np.exp(-e)
        if a2 >= h2:
            shell += 1
    return sw, shell
