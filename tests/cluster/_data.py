"""Synthetic point sets with ground truth for the clustering tests."""

from __future__ import annotations

import numpy as np

from smlmspine.schema import make_table


def gaussian_clusters(n_clusters: int, per_cluster: int, *, dims: int = 3, sigma_nm: float = 15.0,
                      spacing_nm: float = 500.0, n_background: int = 0, rng=None):
    """Gaussian clusters on a jittered lattice (well separated) plus uniform background.

    Returns ``(xyz, truth)``: ``(N, dims)`` coordinates in nm and ``(N,)`` true labels
    (-1 for background).
    """
    rng = np.random.default_rng(rng)
    side = int(np.ceil(n_clusters ** (1 / dims)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * dims, indexing="ij"), -1).reshape(-1, dims)
    centres = grid[:n_clusters] * spacing_nm + rng.uniform(-0.1, 0.1, (n_clusters, dims)) * spacing_nm
    pts = np.repeat(centres, per_cluster, axis=0) + rng.normal(0, sigma_nm, (n_clusters * per_cluster, dims))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    if n_background:
        lo, hi = centres.min(0) - spacing_nm / 2, centres.max(0) + spacing_nm / 2
        pts = np.concatenate([pts, rng.uniform(lo, hi, (n_background, dims))])
        truth = np.concatenate([truth, np.full(n_background, -1)])
    return pts, truth


def to_table(xyz: np.ndarray, **extra) -> "pa.Table":  # noqa: F821
    cols = {"x": xyz[:, 0], "y": xyz[:, 1]}
    if xyz.shape[1] == 3:
        cols["z"] = xyz[:, 2]
    cols.update(extra)
    return make_table(cols)
