"""Clustering of localization tables: DBSCAN at SMLM scale, HDBSCAN, cluster statistics.

- :func:`dbscan`: exact DBSCAN (scikit-learn's semantics) on a numba cell grid, memory
  O(N): 10^7 3D localizations on one machine.
- :func:`hdbscan`: HDBSCAN through the ``hdbscan`` package, 2D and 3D.
- :func:`cluster_statistics`: one row per cluster (``data_schemas/clusters.json``).

All three take a localization table and return new tables; per-channel or per-spine
clustering is ``by="channel"`` / ``by="spine_id"``, a subset is ``mask=``.

Examples
--------
>>> from smlmspine.cluster import cluster_statistics, dbscan
>>> from smlmspine.schema import make_table
>>> t = make_table({"x": [0.0, 10.0, 20.0, 900.0, 910.0, 920.0],
...                 "y": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]})
>>> clustered = dbscan(t, eps_nm=15.0, min_samples=3)
>>> clustered.column("cluster_id").to_pylist()
[0, 0, 0, 1, 1, 1]
>>> cluster_statistics(clustered).column("centroid_x_nm").to_pylist()
[10.0, 910.0]
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "dbscan": "._methods:dbscan",
    "hdbscan": "._methods:hdbscan",
    "cluster_statistics": "._stats:cluster_statistics",
    "CLUSTER_COLUMNS": "._stats:CLUSTER_COLUMNS",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
