"""HDBSCAN through the ``hdbscan`` package, with labels renumbered deterministically."""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["run_hdbscan", "renumber"]


def renumber(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber labels ``>= 0`` as 0, 1, ... in the order of their first occurrence.

    Parameters
    ----------
    labels : (N,) array-like of int
        Cluster labels, negative for noise.

    Returns
    -------
    labels : (N,) ndarray of int64
        Renumbered labels, -1 for every negative input.
    n_clusters : int
        Number of distinct labels ``>= 0``.

    Examples
    --------
    >>> renumber(np.array([3, -1, 3, 0, 7]))
    (array([ 0, -1,  0,  1,  2]), 3)
    """
    labels = np.asarray(labels, dtype=np.int64)
    clustered = labels >= 0
    if not clustered.any():
        return np.full(labels.shape, -1, dtype=np.int64), 0
    values, first = np.unique(labels[clustered], return_index=True)
    rank = np.empty(values.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(values.size)
    out = np.full(labels.shape, -1, dtype=np.int64)
    out[clustered] = rank[np.searchsorted(values, labels[clustered])]
    return out, int(values.size)


def run_hdbscan(coords: np.ndarray, *, min_cluster_size: int, min_samples: int | None,
                cluster_selection_epsilon: float, cluster_selection_method: str,
                allow_single_cluster: bool) -> tuple[np.ndarray, int]:
    """HDBSCAN labels of ``coords`` (``(N, D)`` float64), renumbered by first occurrence.

    Too few points to form a cluster (fewer than ``min_cluster_size``, or no more than
    ``min_samples``, where the core distance is undefined) give all noise.

    Parameters
    ----------
    coords : (N, D) ndarray of float64
        Coordinates in nm.
    min_cluster_size : int
        Smallest cluster (points).
    min_samples : int or None
        Neighbours of a core point; ``None``: ``min_cluster_size``.
    cluster_selection_epsilon : float
        Distance in nm below which clusters are not split further (0: off).
    cluster_selection_method : {"eom", "leaf"}
        Excess of mass or leaf selection.
    allow_single_cluster : bool
        Allow the whole data set to be one cluster.

    Returns
    -------
    labels : (N,) ndarray of int64
        Cluster labels (first-occurrence order), -1 for noise.
    n_clusters : int
    """
    n = coords.shape[0]
    k = min_cluster_size if min_samples is None else min_samples
    if n < max(min_cluster_size, 2) or n <= k:
        return np.full(n, -1, dtype=np.int64), 0
    import hdbscan as _hdbscan_pkg

    model = _hdbscan_pkg.HDBSCAN(
        min_cluster_size=int(min_cluster_size),
        min_samples=None if min_samples is None else int(min_samples),
        cluster_selection_epsilon=float(cluster_selection_epsilon),
        cluster_selection_method=cluster_selection_method,
        allow_single_cluster=bool(allow_single_cluster),
        core_dist_n_jobs=1,
    )
    # The hdbscan package and its scikit-learn/joblib internals emit deprecation and
    # runtime notices the user cannot act on; keep them out of the caller's way.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        labels = model.fit_predict(coords)
    return renumber(labels)
