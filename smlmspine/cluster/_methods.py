"""The public clustering functions :func:`dbscan` and :func:`hdbscan`."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ._select import check_table, cluster_groups, finish, resolve_dims, selection

__all__ = ["dbscan", "hdbscan"]

_BORDER_RULES = ("nearest", "lowest")


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _nonnegative_float(name: str, value: Any, *, strict: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (strict and v == 0):
        raise ParameterError(f"{name} must be a finite number {'>' if strict else '>='} 0, "
                             f"got {value!r}")
    return v


def _skip_list(values: Iterable[int]) -> list[int]:
    try:
        return [int(v) for v in (values or ())]
    except (TypeError, ValueError):
        raise ParameterError(f"skip_groups must be integers, got {values!r}") from None


def dbscan(table: pa.Table, *, eps_nm: float = 40.0, min_samples: int = 5,
           dims: int | None = None, by: str | None = None, mask: Any = None,
           skip_groups: Iterable[int] = (), border: str = "nearest",
           progress: bool = False) -> pa.Table:
    """Exact DBSCAN of a localization table, on a numba cell grid (memory O(N)).

    A point is a *core point* when at least ``min_samples`` localizations, itself
    included, lie within ``eps_nm`` of it (distance ``<= eps_nm``), as in scikit-learn.
    Core points within ``eps_nm`` of each other share a cluster. A non-core point with a
    core point within ``eps_nm`` is a *border point*; every other point is noise (-1).

    Parameters
    ----------
    table : pyarrow.Table
        Localization table with ``x``, ``y`` (and ``z``) in nm; ``N`` rows.
    eps_nm : float, default 40.0
        Neighbourhood radius in nm.
    min_samples : int, default 5
        Localizations within ``eps_nm`` (the point included) that make a core point.
    dims : {2, 3}, optional
        Cluster in x/y only (2) or in x/y/z (3). Default: 3 when the table has ``z``.
    by : str, optional
        Integer column to cluster separately by (e.g. ``"channel"``, ``"spine_id"``);
        cluster ids stay unique across groups (groups in increasing value order).
    mask : (N,) array of bool, optional
        Cluster only these rows; the others get ``cluster_id`` -1.
    skip_groups : iterable of int, default ()
        Values of ``by`` whose rows are not clustered (e.g. ``(-1,)`` with
        ``by="spine_id"`` to leave localizations outside spines unclustered).
    border : {"nearest", "lowest"}, default "nearest"
        Cluster given to a border point that touches several clusters: that of its
        nearest core point (equal distances: the lower id), or the lowest cluster id
        among the core points within ``eps_nm``, which is exactly scikit-learn's result.
    progress : bool, default False
        Show a progress bar on stderr when clustering many groups.

    Returns
    -------
    pyarrow.Table
        A new table: the input plus (or with a replaced) ``cluster_id`` column (int64,
        -1 = noise). Within a group, clusters are numbered by the smallest row index of
        their core points, the numbering scikit-learn uses. The history records the step
        and its parameters; the table metadata ``smlmspine.cluster_by`` holds ``by``.

    Raises
    ------
    SchemaError
        Missing coordinate columns or NaN/inf coordinates among the rows to cluster.
    ParameterError
        Invalid ``eps_nm``, ``min_samples``, ``dims``, ``mask`` or ``border``.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 10.0, 20.0, 500.0, 900.0, 910.0],
    ...                 "y": [0.0, 0.0, 0.0, 500.0, 0.0, 5.0]})
    >>> dbscan(t, eps_nm=15.0, min_samples=2).column("cluster_id").to_pylist()
    [0, 0, 0, -1, 1, 1]
    """
    check_table(table)
    eps = _nonnegative_float("eps_nm", eps_nm, strict=True)
    k = _positive_int("min_samples", min_samples)
    if border not in _BORDER_RULES:
        raise ParameterError(f"border must be one of {_BORDER_RULES}, got {border!r}")
    d = resolve_dims(table, dims)
    skip = _skip_list(skip_groups)
    keep, groups = selection(table, by=by, mask=mask, skip_groups=skip)

    def run(coords: np.ndarray) -> tuple[np.ndarray, int]:
        from ._dbscan import grid_dbscan

        try:
            return grid_dbscan(coords, eps=eps, min_samples=k, border=border,
                               overwrite_input=True)
        except OverflowError as exc:
            raise ParameterError(f"eps_nm={eps} is too small for the data extent: {exc}; "
                                 "use a larger eps_nm or cluster by groups") from None

    labels, n_clusters = cluster_groups(table, dims=d, keep=keep, groups=groups, run=run,
                                        progress=progress)
    params = {"eps_nm": eps, "min_samples": k, "dims": d, "by": by, "border": border,
              "mask_rows": None if mask is None else int(keep.sum()), "skip_groups": skip,
              "n_clusters": n_clusters}
    return finish(table, labels, step="cluster.dbscan", params=params, by=by)


def hdbscan(table: pa.Table, *, min_cluster_size: int = 10, min_samples: int | None = None,
            cluster_selection_epsilon_nm: float = 0.0, cluster_selection_method: str = "eom",
            allow_single_cluster: bool = False, dims: int | None = None, by: str | None = None,
            mask: Any = None, skip_groups: Iterable[int] = (), progress: bool = False
            ) -> pa.Table:
    """HDBSCAN of a localization table (the ``hdbscan`` package), 2D or 3D.

    Parameters
    ----------
    table : pyarrow.Table
        Localization table with ``x``, ``y`` (and ``z``) in nm; ``N`` rows.
    min_cluster_size : int, default 10
        Smallest number of localizations a cluster may have.
    min_samples : int, optional
        Neighbours (the point included) defining the core distance; default
        ``min_cluster_size``.
    cluster_selection_epsilon_nm : float, default 0.0
        Clusters closer than this (nm) in the hierarchy are merged.
    cluster_selection_method : {"eom", "leaf"}, default "eom"
        Excess of mass, or the leaves of the condensed tree (finer clusters).
    allow_single_cluster : bool, default False
        Allow the whole selection to form one cluster.
    dims, by, mask, skip_groups, progress
        As in :func:`dbscan`.

    Returns
    -------
    pyarrow.Table
        A new table with ``cluster_id`` (int64, -1 = noise), clusters numbered by their
        first row within each group; groups with too few rows to form a cluster (fewer
        than ``min_cluster_size``, or not more than ``min_samples``) are all noise.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> rng = np.random.default_rng(0)
    >>> xy = np.concatenate([rng.normal(0, 10, (30, 2)), rng.normal(1000, 10, (30, 2))])
    >>> t = hdbscan(make_table({"x": xy[:, 0], "y": xy[:, 1]}), min_cluster_size=10)
    >>> sorted(set(t.column("cluster_id").to_pylist()))
    [0, 1]
    """
    check_table(table)
    mcs = _positive_int("min_cluster_size", min_cluster_size, minimum=2)
    ms = None if min_samples is None else _positive_int("min_samples", min_samples)
    cse = _nonnegative_float("cluster_selection_epsilon_nm", cluster_selection_epsilon_nm,
                             strict=False)
    if cluster_selection_method not in ("eom", "leaf"):
        raise ParameterError("cluster_selection_method must be 'eom' or 'leaf', got "
                             f"{cluster_selection_method!r}")
    d = resolve_dims(table, dims)
    skip = _skip_list(skip_groups)
    keep, groups = selection(table, by=by, mask=mask, skip_groups=skip)

    def run(coords: np.ndarray) -> tuple[np.ndarray, int]:
        from ._hdbscan import run_hdbscan

        return run_hdbscan(coords, min_cluster_size=mcs, min_samples=ms,
                           cluster_selection_epsilon=cse,
                           cluster_selection_method=cluster_selection_method,
                           allow_single_cluster=allow_single_cluster)

    labels, n_clusters = cluster_groups(table, dims=d, keep=keep, groups=groups, run=run,
                                        progress=progress)
    params = {"min_cluster_size": mcs, "min_samples": ms,
              "cluster_selection_epsilon_nm": cse,
              "cluster_selection_method": cluster_selection_method,
              "allow_single_cluster": bool(allow_single_cluster), "dims": d, "by": by,
              "mask_rows": None if mask is None else int(keep.sum()), "skip_groups": skip,
              "n_clusters": n_clusters}
    return finish(table, labels, step="cluster.hdbscan", params=params, by=by)
