"""Closed-form geometry for SODA: ring/shell measures, disk/ball intersections, ring overlaps.

All functions are vectorised numpy and work in float64 (no integer arithmetic).

Examples
--------
>>> round(float(disk_intersection(1.0, 1.0, 0.0)), 6) == round(np.pi, 6)
True
>>> float(ball_intersection(1.0, 1.0, 2.0))
0.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["ring_measure", "disk_intersection", "ball_intersection", "ring_overlap_matrix",
           "background_mean_distance"]


def ring_measure(edges_nm: np.ndarray, ndim: int) -> np.ndarray:
    """Area (2D, nm^2) or volume (3D, nm^3) of each ring/shell between consecutive edges."""
    e = np.asarray(edges_nm, dtype=np.float64)
    if ndim == 2:
        return np.pi * np.diff(e ** 2)
    return 4.0 / 3.0 * np.pi * np.diff(e ** 3)


def background_mean_distance(edges_nm: np.ndarray, ndim: int) -> np.ndarray:
    """Mean distance of uniformly (CSR) placed points within each ring/shell, nm."""
    e = np.asarray(edges_nm, dtype=np.float64)
    if ndim == 2:
        return 2.0 / 3.0 * np.diff(e ** 3) / np.diff(e ** 2)
    return 3.0 / 4.0 * np.diff(e ** 4) / np.diff(e ** 3)


def disk_intersection(r1, r2, d):
    """Area of the intersection of two disks of radii ``r1``, ``r2`` at centre distance ``d``."""
    r1, r2, d = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (r1, r2, d)))
    out = np.zeros(r1.shape)
    rmin = np.minimum(r1, r2)
    inside = d <= np.abs(r1 - r2)
    out[inside] = np.pi * rmin[inside] ** 2
    part = (~inside) & (d < r1 + r2) & (rmin > 0)
    if np.any(part):
        a, b, c = r1[part], r2[part], d[part]
        c1 = np.clip((c * c + a * a - b * b) / (2 * c * a), -1.0, 1.0)
        c2 = np.clip((c * c + b * b - a * a) / (2 * c * b), -1.0, 1.0)
        k = (-c + a + b) * (c + a - b) * (c - a + b) * (c + a + b)
        out[part] = a * a * np.arccos(c1) + b * b * np.arccos(c2) - 0.5 * np.sqrt(np.maximum(k, 0))
    return out


def ball_intersection(r1, r2, d):
    """Volume of the intersection (lens) of two balls of radii ``r1``, ``r2`` at distance ``d``."""
    r1, r2, d = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (r1, r2, d)))
    out = np.zeros(r1.shape)
    rmin = np.minimum(r1, r2)
    inside = d <= np.abs(r1 - r2)
    out[inside] = 4.0 / 3.0 * np.pi * rmin[inside] ** 3
    part = (~inside) & (d < r1 + r2) & (rmin > 0)
    if np.any(part):
        a, b, c = r1[part], r2[part], d[part]
        out[part] = (np.pi * (a + b - c) ** 2
                     * (c * c + 2 * c * b - 3 * b * b + 2 * c * a + 6 * b * a - 3 * a * a) / (12 * c))
    return out


def ring_overlap_matrix(edges_nm: np.ndarray, d_nm, ndim: int, counts=None) -> np.ndarray:
    """Overlap measure of ring ``k`` around one point and ring ``l`` around another.

    Parameters
    ----------
    edges_nm : (K + 1,) array
        Ring edges, ``edges[0]`` usually 0.
    d_nm : (P,) array
        Distances between the two centres.
    ndim : {2, 3}
    counts : (P,) array, optional
        Multiplicity of each distance (summed over).

    Returns
    -------
    (K, K) array
        ``sum_p counts[p] * |R_k(0) cap R_l(d_p)|`` (area nm^2 or volume nm^3).
    """
    e = np.asarray(edges_nm, dtype=np.float64)
    d = np.asarray(d_nm, dtype=np.float64).reshape(-1)
    w = np.ones(d.size) if counts is None else np.asarray(counts, dtype=np.float64).reshape(-1)
    f = disk_intersection if ndim == 2 else ball_intersection
    K = e.size - 1
    out = np.zeros((K, K))
    chunk = max(1, 200000 // (e.size * e.size))
    for s in range(0, d.size, chunk):
        dd = d[s:s + chunk]
        L = f(e[None, :, None], e[None, None, :], dd[:, None, None])  # (p, K+1, K+1)
        O = L[:, 1:, 1:] - L[:, :-1, 1:] - L[:, 1:, :-1] + L[:, :-1, :-1]
        out += np.tensordot(w[s:s + chunk], O, axes=(0, 0))
    return out
