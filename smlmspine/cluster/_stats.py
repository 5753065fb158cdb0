"""Per-cluster statistics (the ``clusters`` table, ``data_schemas/clusters.json``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, SchemaError
from ..schema import column_specs, history, metadata, spec_table
from ._select import _coords, _group_column, check_table, resolve_dims

__all__ = ["CLUSTER_COLUMNS", "cluster_statistics"]

_F, _I = pa.float64(), pa.int64()

#: Columns of the cluster statistics table (mirrored in ``data_schemas/clusters.json``).
CLUSTER_COLUMNS = column_specs(
    ("cluster_id", _I, "1", "cluster label, as in the localization table's cluster_id"),
    ("group", _I, "1", "value of the grouping column the cluster was found in (the column "
                       "name is in the table metadata 'smlmspine.group_by'); -1 when the "
                       "clustering was not grouped"),
    ("n_localizations", _I, "1", "number of localizations in the cluster"),
    ("n_dims", _I, "1", "dimensions the geometric statistics use: 2 (x, y) or 3 (x, y, z)"),
    ("centroid_x_nm", _F, "nm", "mean x of the cluster's localizations"),
    ("centroid_y_nm", _F, "nm", "mean y of the cluster's localizations"),
    ("centroid_z_nm", _F, "nm", "mean z of the cluster's localizations; NaN for 2D"),
    ("radius_of_gyration_nm", _F, "nm", "root mean squared distance of the localizations "
                                        "from the centroid"),
    ("principal_axis_1_nm", _F, "nm", "square root of the largest eigenvalue of the "
                                      "covariance matrix (1/N normalised): the standard "
                                      "deviation along the main axis"),
    ("principal_axis_2_nm", _F, "nm", "square root of the second covariance eigenvalue"),
    ("principal_axis_3_nm", _F, "nm", "square root of the smallest covariance eigenvalue "
                                      "(3D); NaN for 2D"),
    ("convex_hull_area_nm2", _F, "nm^2", "area of the 2D convex hull; NaN for 3D, when not "
                                         "computed, or when degenerate (fewer than 3 "
                                         "points, or all collinear)"),
    ("convex_hull_volume_nm3", _F, "nm^3", "volume of the 3D convex hull; NaN for 2D, when "
                                           "not computed, or when degenerate (fewer than 4 "
                                           "points, or all coplanar)"),
    ("density_per_nm2", _F, "nm^-2", "n_localizations / convex_hull_area_nm2 (2D); NaN "
                                     "where the area is NaN"),
    ("density_per_nm3", _F, "nm^-3", "n_localizations / convex_hull_volume_nm3 (3D); NaN "
                                     "where the volume is NaN"),
    ("first_frame", _I, "frame", "smallest frame of the cluster; null without a frame column"),
    ("last_frame", _I, "frame", "largest frame of the cluster; null without a frame column"),
    ("time_span_s", _F, "s", "largest minus smallest time_s of the cluster; NaN without a "
                             "time_s column"),
    ("photons_sum", _F, "photon", "summed photons of the cluster's localizations; NaN "
                                  "without a photons column"),
)


def _hull_measures(points: np.ndarray, starts: np.ndarray, counts: np.ndarray, d: int
                   ) -> np.ndarray:
    """Convex hull area (2D) or volume (3D) per cluster, NaN when degenerate."""
    from ._hull import hull_areas_2d, hull_volumes_3d

    if d == 2:
        return hull_areas_2d(points, starts, counts)
    return hull_volumes_3d(points, starts, counts)


def _column_numpy(table: pa.Table, name: str, rows: np.ndarray, dtype) -> np.ndarray:
    col = table.column(name)
    values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values[rows].astype(dtype, copy=False)


def cluster_statistics(table: pa.Table, *, dims: int | None = None, by: str | None = "auto",
                       hulls: bool = True) -> pa.Table:
    """Statistics of every cluster of a clustered localization table.

    Parameters
    ----------
    table : pyarrow.Table
        Localization table with ``x``, ``y`` (``z``) in nm and ``cluster_id`` (-1 = noise,
        ignored), as returned by :func:`dbscan` or :func:`hdbscan`.
    dims : {2, 3}, optional
        Geometry in x/y (2) or x/y/z (3); default: 3 when the table has ``z``.
    by : str or None, default "auto"
        Grouping column reported in ``group``; ``"auto"`` takes the one the clustering
        used (table metadata ``smlmspine.cluster_by``), ``None`` reports -1.
    hulls : bool, default True
        Compute convex hulls: 2D with a compiled monotone chain, 3D with a compiled
        incremental hull for clusters up to 1000 points and scipy/Qhull above. ``False``
        leaves hulls and densities NaN.

    Returns
    -------
    pyarrow.Table
        One row per cluster in increasing ``cluster_id``, columns as in
        :data:`CLUSTER_COLUMNS` (``data_schemas/clusters.json``), units in the field
        metadata; table metadata ``smlmspine.group_by`` names the grouping column.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 2.0, 0.0, 2.0, 50.0], "y": [0.0, 0.0, 2.0, 2.0, 50.0],
    ...                 "cluster_id": [0, 0, 0, 0, -1]})
    >>> s = cluster_statistics(t)
    >>> s.column("n_localizations").to_pylist(), s.column("convex_hull_area_nm2").to_pylist()
    ([4], [4.0])
    >>> round(s.column("radius_of_gyration_nm")[0].as_py(), 6)
    1.414214
    """
    check_table(table)
    if "cluster_id" not in table.column_names:
        raise SchemaError("the table has no 'cluster_id' column; cluster it first "
                          "(smlmspine.cluster.dbscan or hdbscan)")
    d = resolve_dims(table, dims)
    if by == "auto":
        by = metadata(table).get("cluster_by")
    ids_col = table.column("cluster_id")
    if not pa.types.is_integer(ids_col.type):
        raise SchemaError(f"column 'cluster_id' must hold integers, found {ids_col.type}")
    ids = np.asarray(ids_col.to_numpy(zero_copy_only=False), dtype=np.float64)
    ids = np.where(np.isnan(ids), -1, ids).astype(np.int64)
    rows = np.flatnonzero(ids >= 0)
    order = np.argsort(ids[rows], kind="stable")
    rows = rows[order]
    sid = ids[rows]
    n_rows = rows.size
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if n_rows else np.empty(0, int)
    counts = np.diff(np.r_[starts, n_rows]).astype(np.int64)
    k = starts.size

    def reduce_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts, axis=0) if k else np.empty((0,) + values.shape[1:])

    pts = _coords(table, rows, d)
    centroid = reduce_sum(pts) / counts[:, None] if k else np.empty((0, d))
    centred = pts - np.repeat(centroid, counts, axis=0)
    cov = np.empty((k, d, d))
    for a in range(d):
        for b in range(a, d):
            cov[:, a, b] = cov[:, b, a] = reduce_sum(centred[:, a] * centred[:, b]) / counts
    del centred
    eig = np.linalg.eigvalsh(cov)[:, ::-1] if k else np.empty((0, d))
    axes = np.sqrt(np.clip(eig, 0.0, None))
    rg = np.sqrt(np.clip(np.trace(cov, axis1=1, axis2=2), 0.0, None)) if k else np.empty(0)
    nan = np.full(k, np.nan)
    hull = _hull_measures(pts, starts, counts, d) if (hulls and k) else nan.copy()
    cols: dict[str, Any] = {
        "cluster_id": sid[starts] if k else np.empty(0, np.int64),
        "n_localizations": counts,
        "n_dims": np.full(k, d, dtype=np.int64),
        "centroid_x_nm": centroid[:, 0], "centroid_y_nm": centroid[:, 1],
        "centroid_z_nm": centroid[:, 2] if d == 3 else nan,
        "radius_of_gyration_nm": rg,
        "principal_axis_1_nm": axes[:, 0], "principal_axis_2_nm": axes[:, 1],
        "principal_axis_3_nm": axes[:, 2] if d == 3 else nan,
        "convex_hull_area_nm2": hull if d == 2 else nan,
        "convex_hull_volume_nm3": hull if d == 3 else nan,
        "density_per_nm2": counts / hull if d == 2 else nan,
        "density_per_nm3": counts / hull if d == 3 else nan,
    }
    if by is not None:
        g = _group_column(table, by)[rows]
        gmin, gmax = (np.minimum.reduceat(g, starts), np.maximum.reduceat(g, starts)) if k \
            else (np.empty(0, np.int64), np.empty(0, np.int64))
        if np.any(gmin != gmax):
            bad = int(cols["cluster_id"][np.flatnonzero(gmin != gmax)[0]])
            raise ParameterError(f"cluster {bad} spans several values of {by!r}; was the table "
                                 f"clustered with by={by!r}?")
        cols["group"] = gmin
    else:
        cols["group"] = np.full(k, -1, dtype=np.int64)
    names = table.column_names
    if "frame" in names and table.column("frame").null_count == 0:
        f = _column_numpy(table, "frame", rows, np.int64)
        cols["first_frame"] = np.minimum.reduceat(f, starts) if k else np.empty(0, np.int64)
        cols["last_frame"] = np.maximum.reduceat(f, starts) if k else np.empty(0, np.int64)
    else:
        cols["first_frame"] = cols["last_frame"] = pa.nulls(k, type=pa.int64())
    if "time_s" in names:
        t = _column_numpy(table, "time_s", rows, np.float64)
        cols["time_span_s"] = (np.maximum.reduceat(t, starts) - np.minimum.reduceat(t, starts)
                               if k else nan)
    else:
        cols["time_span_s"] = nan
    if "photons" in names:
        cols["photons_sum"] = reduce_sum(_column_numpy(table, "photons", rows, np.float64))
    else:
        cols["photons_sum"] = nan
    cols = {name: cols[name] for name in CLUSTER_COLUMNS}
    step = (history(table) or [{}])[-1].get("step")
    return spec_table(CLUSTER_COLUMNS, cols,
                      metadata={"group_by": by, "source_step": step, "n_dims": d})
