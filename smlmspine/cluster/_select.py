"""Shared plumbing of the clustering functions: checks, row selection, groups, labels."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, SchemaError
from ..schema import COORDINATES, with_columns, with_history

__all__ = ["check_table", "resolve_dims", "selection", "cluster_groups", "finish"]


def check_table(table: Any) -> pa.Table:
    """The table itself, after checking it is a localization table with ``x`` and ``y``.

    Parameters
    ----------
    table : object
        What the caller passed as the table.

    Returns
    -------
    pyarrow.Table
        ``table``.

    Raises
    ------
    SchemaError
        Not a ``pyarrow.Table``, or no ``x`` / ``y`` column.
    """
    if not isinstance(table, pa.Table):
        raise SchemaError(f"expected a pyarrow.Table of localizations, got {type(table).__name__}")
    missing = [c for c in ("x", "y") if c not in table.column_names]
    if missing:
        raise SchemaError(f"column(s) {missing} missing; found {table.column_names}")
    return table


def resolve_dims(table: pa.Table, dims: int | None) -> int:
    """2 or 3: the dimensions to cluster in (default: 3 when the table has ``z``).

    Parameters
    ----------
    table : pyarrow.Table
        The localizations.
    dims : {2, 3} or None
        Asked for by the caller.

    Returns
    -------
    int

    Raises
    ------
    ParameterError
        ``dims`` is not 2, 3 or None.
    SchemaError
        3 asked for a table without ``z``.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> resolve_dims(make_table({"x": [0.0], "y": [0.0], "z": [0.0]}), None)
    3
    """
    if dims is None:
        return 3 if "z" in table.column_names else 2
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ParameterError(f"dims must be 2 or 3, got {dims!r}")
    if dims == 3 and "z" not in table.column_names:
        raise SchemaError("dims=3 asked for but the table has no 'z' column (2D data); use dims=2")
    return int(dims)


def _group_column(table: pa.Table, by: str) -> np.ndarray:
    if not isinstance(by, str):
        raise ParameterError(f"by must be a column name, got {by!r}")
    if by not in table.column_names:
        raise SchemaError(f"by={by!r}: no such column; found {table.column_names}")
    col = table.column(by)
    if not pa.types.is_integer(col.type):
        raise SchemaError(f"by={by!r}: grouping needs an integer column, found {col.type}")
    if col.null_count:
        raise SchemaError(f"by={by!r}: the column holds {col.null_count} missing value(s)")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def selection(table: pa.Table, *, by: str | None, mask: Any, skip_groups: Iterable[int]
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows to cluster (boolean ``(N,)``) and the group value of every row (or ``None``).

    Parameters
    ----------
    table : pyarrow.Table
        The localizations (``N`` rows).
    by : str or None
        Integer column whose values define groups clustered separately.
    mask : (N,) array-like of bool or None
        Rows to cluster; ``None``: all.
    skip_groups : iterable of int
        Group values not clustered (needs ``by``).

    Returns
    -------
    keep : (N,) ndarray of bool
        Rows to cluster.
    groups : (N,) ndarray of int64 or None
        Value of ``by`` for every row.

    Raises
    ------
    ParameterError
        A mask that is not boolean or of the wrong shape, or ``skip_groups`` without
        ``by``.
    SchemaError
        ``by`` names no integer column, or it has missing values.
    """
    n = table.num_rows
    if mask is None:
        keep = np.ones(n, dtype=bool)
    else:
        if isinstance(mask, (pa.Array, pa.ChunkedArray)):
            if mask.null_count:
                raise ParameterError(f"mask holds {mask.null_count} missing value(s)")
            mask = mask.to_numpy(zero_copy_only=False)
        keep = np.asarray(mask)
        if keep.dtype != bool:
            raise ParameterError(f"mask must be a boolean array, got dtype {keep.dtype}")
        if keep.shape != (n,):
            raise ParameterError(f"mask must have shape ({n},) like the table, got {keep.shape}")
        keep = keep.copy()
    skip = [int(v) for v in (skip_groups or ())]
    groups = None
    if by is not None:
        groups = _group_column(table, by)
        if skip:
            keep &= ~np.isin(groups, skip)
    elif skip:
        raise ParameterError("skip_groups needs by= (the column whose values are skipped)")
    return keep, groups


def _coords(table: pa.Table, rows: np.ndarray, dims: int) -> np.ndarray:
    """``(len(rows), dims)`` float64 coordinates of ``rows``; refuses NaN/inf/missing."""
    out = np.empty((rows.size, dims), dtype=np.float64)
    every_row = rows.size == table.num_rows and (rows.size == 0 or (
        rows[0] == 0 and rows[-1] == rows.size - 1 and bool(np.all(np.diff(rows) == 1))))
    for k, name in enumerate(COORDINATES[:dims]):
        col = table.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise SchemaError(f"column {name!r} must be numeric, found {col.type}")
        values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        out[:, k] = values if every_row else values[rows]
        bad = ~np.isfinite(out[:, k])
        if bad.any():
            first = int(rows[np.flatnonzero(bad)[0]])
            raise SchemaError(
                f"column {name!r} holds {int(bad.sum())} NaN/inf/missing coordinate(s) among the "
                f"rows to cluster (first at row {first}); drop or fix them first, or exclude "
                "them with mask=")
    return out


def cluster_groups(table: pa.Table, *, dims: int, keep: np.ndarray, groups: np.ndarray | None,
                   run: Callable[[np.ndarray], tuple[np.ndarray, int]], progress: bool = False
                   ) -> tuple[np.ndarray, int]:
    """Run ``run(coords) -> (labels, n_clusters)`` on each group of kept rows.

    ``coords`` given to ``run`` is a private array that ``run`` may overwrite.

    Returns the ``(N,)`` int64 labels (-1 noise and unselected rows) with ids unique across
    groups (groups in increasing order of their value, ids consecutive) and their number.

    Parameters
    ----------
    table : pyarrow.Table
        The localizations (``N`` rows, coordinates in nm).
    dims : {2, 3}
        Coordinates passed to ``run``.
    keep : (N,) ndarray of bool
        Rows to cluster (from :func:`selection`).
    groups : (N,) ndarray of int or None
        Group value of every row; ``None``: one group.
    run : callable
        ``run(coords) -> (labels, n_clusters)`` on ``(M, dims)`` float64 coordinates.
    progress : bool
        Show a progress bar over the groups.

    Returns
    -------
    labels : (N,) ndarray of int64
    n_clusters : int

    Raises
    ------
    SchemaError
        Non-numeric or non-finite coordinates among the rows to cluster.
    """
    n = table.num_rows
    labels = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return labels, 0
    coords = _coords(table, rows, dims)
    if groups is None:  # one group: hand over the private coordinate array, no copy
        lab, k = run(coords)
        del coords
        lab = np.asarray(lab, dtype=np.int64)
        if rows.size == n:
            return lab, int(k)
        labels[rows] = lab
        return labels, int(k)
    g = groups[rows]
    order = np.argsort(g, kind="stable")
    cuts = np.flatnonzero(np.diff(g[order])) + 1
    parts = np.split(order, cuts)
    iterator: Iterable[np.ndarray] = parts
    if progress and len(parts) > 1:
        from tqdm import tqdm

        iterator = tqdm(parts, desc="clustering groups", unit="group", leave=False)
    total = 0
    for part in iterator:
        lab, k = run(coords[part])
        lab = np.asarray(lab, dtype=np.int64)
        labels[rows[part]] = np.where(lab >= 0, lab + total, -1)
        total += int(k)
    return labels, total


def finish(table: pa.Table, labels: np.ndarray, *, step: str, params: dict, by: str | None
           ) -> pa.Table:
    """The input table plus ``cluster_id`` and one history entry (the input is untouched).

    Parameters
    ----------
    table : pyarrow.Table
        The localizations.
    labels : (N,) ndarray of int64
        Cluster label of every row, -1 for noise.
    step : str
        History step name (``"cluster.dbscan"``, ...).
    params : dict
        Parameters recorded with the step.
    by : str or None
        The grouping column, recorded as table metadata ``cluster_by``.

    Returns
    -------
    pyarrow.Table
        ``table`` with ``cluster_id`` added (or replaced).
    """
    out = with_columns(table, {"cluster_id": pa.array(labels, type=pa.int64())})
    return with_history(out, step, params, cluster_by=by)
