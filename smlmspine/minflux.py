"""MINFLUX processing: quality filters, trace-length filter, trace averaging, two-colour split.

All functions take a localization table (as returned by :func:`smlmspine.read` for a
MINFLUX export, or any table with the needed columns) and return a new table with the
step recorded in its history; the input is never modified.

* :func:`filter_quality` keeps localizations whose quality fields (``efo``, ``cfr``,
  ``dcr``, ``eco``, ``fbg``, ...) lie in closed ranges.
* :func:`filter_trace_length` keeps traces (``track_id``) with enough localizations.
* :func:`average_traces` collapses each trace into one localization: mean position, its
  standard error as ``precision_xy``/``precision_z``, count and time span. It is generic
  on ``track_id`` and vectorised (one sort, then ``np.add.reduceat``, through the
  package's row aggregator :class:`smlmspine._aggregate.Groups`), so it handles 10^7 rows.
* :func:`split_channels_by_dcr` assigns ``channel`` from detector-channel-ratio
  thresholds (ratiometric two-colour MINFLUX).

Examples
--------
>>> from smlmspine.schema import make_table
>>> t = make_table({"x": [0.0, 2.0, 10.0], "y": [0.0, 0.0, 5.0], "track_id": [7, 7, 8],
...                 "time_s": [0.0, 1.0, 3.0]})
>>> a = average_traces(t)
>>> a.column("x").to_pylist(), a.column("n_localizations").to_pylist()
([1.0, 10.0], [2, 1])
>>> round(a.column("precision_xy")[0].as_py(), 6)  # sqrt(((2 + 0) / 2) / 2)
0.707107
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .errors import ParameterError
from .schema import COLUMNS, column_specs, field, with_columns, with_history

__all__ = ["filter_quality", "filter_trace_length", "average_traces", "split_channels_by_dcr",
           "trace_lengths", "TRACE_COLUMNS", "SUM_COLUMNS"]

#: Columns summed (not averaged) over a trace: photon counts add up.
SUM_COLUMNS = ("photons", "eco", "ecc")

#: Columns of the table written by :func:`average_traces` that are specific to it or
#: recomputed by it (every other input column is carried over; see ``data_schemas``).
TRACE_COLUMNS = column_specs(
    ("x", pa.float64(), "nm", "mean x of the trace"),
    ("y", pa.float64(), "nm", "mean y of the trace"),
    ("z", pa.float64(), "nm", "mean z of the trace (3D only)"),
    ("time_s", pa.float64(), "s", "mean time of the trace's localizations (if the input has time_s)"),
    ("frame", pa.int64(), "frame", "first frame of the trace (if the input has frame)"),
    ("precision_xy", pa.float64(), "nm",
     "lateral standard error of the mean position: sqrt((s_x^2 + s_y^2) / 2 / n) with sample "
     "variances (ddof=1); precision='propagated': 1/sqrt(sum 1/sigma_i^2); n = 1: the input "
     "precision if any, else NaN"),
    ("precision_z", pa.float64(), "nm", "axial standard error of the mean z (3D only), as precision_xy"),
    ("track_id", pa.int64(), "1", "trace identifier"),
    ("n_localizations", pa.int64(), "1", "number of localizations averaged"),
    ("time_start_s", pa.float64(), "s", "time of the first localization (if the input has time_s)"),
    ("time_span_s", pa.float64(), "s", "last minus first localization time (if the input has time_s)"),
    ("frame_span", pa.int64(), "frame", "last minus first frame (if the input has frame)"),
)

_FIRST_COLUMNS = {"channel", "cluster_id", "spine_id"}


# --------------------------------------------------------------------------- helpers

def _track_ids(table: pa.Table, what: str) -> np.ndarray:
    if "track_id" not in table.column_names:
        raise ParameterError(f"{what} needs a 'track_id' column (MINFLUX tid or linked blinks); "
                             f"the table has {table.column_names}")
    col = table.column("track_id")
    if col.null_count:
        raise ParameterError(f"{what}: 'track_id' has {col.null_count} missing value(s)")
    return np.asarray(col.to_numpy(), dtype=np.int64)


def _groups(tid: np.ndarray):
    """Rows grouped by trace (the package's aggregator); ``tid < 0`` are singletons."""
    from ._aggregate import Groups

    return Groups(tid, singletons=tid < 0)


def trace_lengths(table: pa.Table) -> np.ndarray:
    """Number of localizations of each row's trace, per row (rows with ``track_id < 0``: 1).

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with an integer ``track_id`` (no missing value).

    Returns
    -------
    (N,) ndarray of int64
        For each row, in table order, the number of rows sharing its ``track_id``.

    Raises
    ------
    ParameterError
        No ``track_id`` column, or missing values in it.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0] * 4, "y": [0.0] * 4, "track_id": [3, 1, 3, -1]})
    >>> trace_lengths(t).tolist()
    [2, 1, 2, 1]
    """
    g = _groups(_track_ids(table, "trace_lengths"))
    return g.per_row(g.counts)


def _range(name: str, rng) -> tuple[float, float]:
    try:
        lo, hi = rng
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a (min, max) pair (None for an open side), got {rng!r}")
    lo = -np.inf if lo is None else float(lo)
    hi = np.inf if hi is None else float(hi)
    if np.isnan(lo) or np.isnan(hi) or lo > hi:
        raise ParameterError(f"{name} must satisfy min <= max, got {rng!r}")
    return lo, hi


# --------------------------------------------------------------------------- filters

def filter_quality(table: pa.Table, *, efo_range: Sequence[float | None] | None = None,
                   cfr_range: Sequence[float | None] | None = None,
                   dcr_range: Sequence[float | None] | None = None,
                   eco_range: Sequence[float | None] | None = None,
                   fbg_range: Sequence[float | None] | None = None,
                   ranges: Mapping[str, Sequence[float | None]] | None = None) -> pa.Table:
    """Keep localizations whose quality fields lie in closed ranges ``[min, max]``.

    Parameters
    ----------
    table : pyarrow.Table
        MINFLUX localizations (any table with the named columns).
    efo_range : (float or None, float or None), optional
        Effective emission frequency at the periphery, Hz (e.g. ``(1e4, None)``).
    cfr_range : pair, optional
        Centre-frequency ratio, dimensionless (e.g. ``(None, 0.8)``).
    dcr_range : pair, optional
        Detector-channel ratio, dimensionless, 0..1.
    eco_range : pair, optional
        Effective photon counts (photon).
    fbg_range : pair, optional
        Background frequency, Hz.
    ranges : mapping of column -> pair, optional
        Ranges on any other numeric column (``{"sta": (0, 0)}``).

    Returns
    -------
    pyarrow.Table
        Kept rows; rows with NaN in a filtered column are dropped. History step
        ``minflux.filter_quality`` with the ranges and counts.

    Raises
    ------
    ParameterError
        A range on a column the table lacks, or a malformed range.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0], "cfr": [0.2, 0.9, 0.5],
    ...                 "efo": [2e4, 3e4, 5e3]})
    >>> filter_quality(t, cfr_range=(None, 0.8), efo_range=(1e4, None)).column("x").to_pylist()
    [0.0]
    """
    from .filtering import _column_values

    wanted = {"efo": efo_range, "cfr": cfr_range, "dcr": dcr_range, "eco": eco_range,
              "fbg": fbg_range}
    wanted.update(dict(ranges or {}))
    mask = np.ones(table.num_rows, dtype=bool)
    applied = {}
    for name, rng in wanted.items():
        if rng is None:
            continue
        lo, hi = _range(f"{name} range", rng)
        v = _column_values(table, name)
        with np.errstate(invalid="ignore"):
            mask &= (v >= lo) & (v <= hi)
        applied[name] = [None if np.isinf(lo) else lo, None if np.isinf(hi) else hi]
    out = table.filter(pa.array(mask))
    return with_history(out, "minflux.filter_quality", {"ranges": applied, "n_in": table.num_rows,
                                                        "n_out": out.num_rows})


def filter_trace_length(table: pa.Table, *, min_localizations: int = 4,
                        max_localizations: int | None = None) -> pa.Table:
    """Keep the traces (``track_id``) with at least ``min_localizations`` localizations.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with an integer ``track_id``.
    min_localizations : int, default 4
        Minimum number of localizations per trace (rows with ``track_id < 0`` count as
        traces of one).
    max_localizations : int, optional
        Maximum per trace (e.g. to drop immobile, over-sampled molecules).

    Returns
    -------
    pyarrow.Table
        The rows of the kept traces, in input order; history step
        ``minflux.filter_trace_length`` with the limits and counts.

    Raises
    ------
    ParameterError
        ``min_localizations`` not an integer >= 1, ``max_localizations`` not an integer
        >= ``min_localizations``, or no (or an incomplete) ``track_id`` column.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0] * 5, "y": [0.0] * 5, "track_id": [1, 1, 1, 2, 2]})
    >>> filter_trace_length(t, min_localizations=3).column("track_id").to_pylist()
    [1, 1, 1]
    """
    if int(min_localizations) != min_localizations or min_localizations < 1:
        raise ParameterError(f"min_localizations must be an integer >= 1, got {min_localizations!r}")
    if max_localizations is not None and (int(max_localizations) != max_localizations or
                                          max_localizations < min_localizations):
        raise ParameterError("max_localizations must be an integer >= min_localizations, got "
                             f"{max_localizations!r}")
    lengths = trace_lengths(table)
    mask = lengths >= min_localizations
    if max_localizations is not None:
        mask &= lengths <= max_localizations
    out = table.filter(pa.array(mask))
    return with_history(out, "minflux.filter_trace_length",
                        {"min_localizations": int(min_localizations),
                         "max_localizations": None if max_localizations is None else
                         int(max_localizations), "n_in": table.num_rows, "n_out": out.num_rows})


# --------------------------------------------------------------------------- averaging

def average_traces(table: pa.Table, *, precision: str = "sem",
                   sum_columns: Iterable[str] = SUM_COLUMNS,
                   min_localizations: int = 1) -> pa.Table:
    """One localization per trace: mean position, its standard error, count, time span.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with ``track_id`` (MINFLUX ``tid``, or blink/track ids from linking).
        Rows with ``track_id < 0`` are not part of a trace and pass through as traces of one.
    precision : {"sem", "propagated"}, default "sem"
        ``"sem"``: unweighted mean; ``precision_xy = sqrt((s_x^2 + s_y^2) / 2 / n)`` and
        ``precision_z = s_z / sqrt(n)`` from the sample variances (ddof = 1); a trace of one
        keeps its input precision if the table has one, else NaN. ``"propagated"``: mean
        weighted by ``1 / precision^2`` of the input rows (needs ``precision_xy``, and
        ``precision_z`` for z) and ``precision = 1 / sqrt(sum 1 / precision_i^2)``.
    sum_columns : iterable of str, default ("photons", "eco", "ecc")
        Columns summed over the trace (photon counts). Other float columns are averaged
        (ignoring NaN); ``frame`` becomes the first frame; integer, boolean and text
        columns take the trace's first row (booleans: all rows true).
    min_localizations : int, default 1
        Drop traces with fewer localizations first.

    Returns
    -------
    pyarrow.Table
        One row per trace, ordered by ``track_id``; columns as the input plus
        ``n_localizations``, ``time_start_s``/``time_span_s`` (with ``time_s``) and
        ``frame_span`` (with ``frame``); ``time_s`` is the mean time. See
        :data:`TRACE_COLUMNS`. History step ``minflux.average_traces``.

    Raises
    ------
    ParameterError
        No ``track_id`` column, an unknown ``precision`` mode, or ``"propagated"``
        without precision columns.
    """
    if precision not in ("sem", "propagated"):
        raise ParameterError(f"precision must be 'sem' or 'propagated', got {precision!r}")
    from ._validate import integer

    min_localizations = integer(min_localizations, "min_localizations", minimum=1)
    if min_localizations > 1:
        table = filter_trace_length(table, min_localizations=min_localizations)
    names = table.column_names
    tid = _track_ids(table, "average_traces")
    dims = [c for c in ("x", "y", "z") if c in names]
    if "x" not in dims or "y" not in dims:
        raise ParameterError(f"average_traces needs 'x' and 'y' columns; found {names}")
    if precision == "propagated":
        need = ["precision_xy"] + (["precision_z"] if "z" in dims else [])
        missing = [c for c in need if c not in names]
        if missing:
            raise ParameterError(f"precision='propagated' needs column(s) {missing}; use "
                                 "precision='sem' for tables without per-localization precision")
    g = _groups(tid)
    starts, counts = g.starts, g.counts

    def sorted_values(name: str) -> np.ndarray:
        col = table.column(name)
        v = col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
            col.cast(pa.float64()).fill_null(np.nan).to_numpy()
        return g.sort(v)

    cnt = counts.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    # positions and precision
    if precision == "sem":
        var = {}
        for c in dims:
            v = np.asarray(sorted_values(c), dtype=np.float64)
            mean = g.sum(v, presorted=True) / cnt
            dev = np.repeat(mean, counts)
            np.subtract(v, dev, out=dev)  # two-pass variance, in place
            np.multiply(dev, dev, out=dev)
            with np.errstate(invalid="ignore", divide="ignore"):
                var[c] = g.sum(dev, presorted=True) / (cnt - 1.0)
            out[c] = mean
        with np.errstate(invalid="ignore", divide="ignore"):
            pxy = np.sqrt((var["x"] + var["y"]) / 2.0 / cnt)
            pz = np.sqrt(var["z"] / cnt) if "z" in dims else None
        single = counts == 1
        if np.any(single):
            pxy[single] = (np.asarray(sorted_values("precision_xy"), float)[starts[single]]
                           if "precision_xy" in names else np.nan)
            if pz is not None:
                pz[single] = (np.asarray(sorted_values("precision_z"), float)[starts[single]]
                              if "precision_z" in names else np.nan)
    else:
        wxy = 1.0 / np.asarray(sorted_values("precision_xy"), dtype=np.float64) ** 2
        if not np.all(np.isfinite(wxy)):
            raise ParameterError("precision='propagated' needs finite, positive precision_xy "
                                 "on every row")
        sw = g.sum(wxy, presorted=True)
        for c in ("x", "y"):
            out[c] = g.sum(wxy * np.asarray(sorted_values(c), float), presorted=True) / sw
        pxy = 1.0 / np.sqrt(sw)
        pz = None
        if "z" in dims:
            wz = 1.0 / np.asarray(sorted_values("precision_z"), dtype=np.float64) ** 2
            if not np.all(np.isfinite(wz)):
                raise ParameterError("precision='propagated' needs finite, positive precision_z "
                                     "on every row")
            swz = g.sum(wz, presorted=True)
            out["z"] = g.sum(wz * np.asarray(sorted_values("z"), float), presorted=True) / swz
            pz = 1.0 / np.sqrt(swz)
    out["precision_xy"] = pxy
    if pz is not None:
        out["precision_z"] = pz
    sums = set(sum_columns)
    extra: dict[str, tuple[np.ndarray, str | None]] = {}
    for name in names:
        if name in out or name in dims:
            continue
        col_type = table.schema.field(name).type
        if name == "track_id":
            out[name] = g.keys
        elif name == "time_s":
            v = np.asarray(sorted_values(name), dtype=np.float64)
            out[name] = g.sum(v, presorted=True) / cnt
            tmin = g.min(v, presorted=True)
            tmax = g.max(v, presorted=True)
            extra["time_start_s"] = (tmin, "s")
            extra["time_span_s"] = (tmax - tmin, "s")
        elif name == "frame":
            v = np.asarray(sorted_values(name), dtype=np.int64)
            fmin = g.min(v, presorted=True)
            fmax = g.max(v, presorted=True)
            out[name] = fmin
            extra["frame_span"] = (fmax - fmin, "frame")
        elif pa.types.is_floating(col_type) and name not in _FIRST_COLUMNS:
            v = np.asarray(sorted_values(name), dtype=np.float64)
            if name in sums:
                out[name] = g.sum(np.where(np.isnan(v), 0.0, v), presorted=True)
            else:
                out[name] = g.nanmean(v, presorted=True)
        elif pa.types.is_integer(col_type) and name in sums:
            out[name] = g.sum(np.asarray(sorted_values(name), dtype=np.int64), presorted=True)
        elif pa.types.is_boolean(col_type):
            v = np.asarray(sorted_values(name), dtype=bool)
            out[name] = g.all(v, presorted=True)
        else:
            col = table.column(name)
            taken = pa.array(g.first_rows, type=pa.int64())
            out[name] = col.take(taken)
    out["n_localizations"] = counts.astype(np.int64)
    # assemble: input column order, then the new columns
    fields, arrays = [], []
    order_names = [c for c in names if c in out]
    for c in ("precision_xy", "precision_z"):
        if c in out and c not in order_names:
            order_names.append(c)
    for name in order_names:
        values = out[name]
        src = table.schema.field(name) if name in names else None
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arr = values
        elif name in COLUMNS:
            arr = pa.array(values, type=COLUMNS[name].type)
        else:
            arr = pa.array(values)
        if src is not None:
            f = pa.field(name, arr.type, metadata=src.metadata)
        else:
            f = field(name)
        fields.append(f)
        arrays.append(arr)
    fields.append(pa.field("n_localizations", pa.int64(), metadata={"unit": "1"}))
    arrays.append(pa.array(out["n_localizations"]))
    for name, (values, unit) in extra.items():
        typ = pa.int64() if name == "frame_span" else pa.float64()
        fields.append(pa.field(name, typ, metadata={"unit": unit}))
        arrays.append(pa.array(values, type=typ))
    result = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))
    return with_history(result, "minflux.average_traces",
                        {"precision": precision, "sum_columns": sorted(sums),
                         "min_localizations": int(min_localizations), "n_in": table.num_rows,
                         "n_traces": result.num_rows})


# --------------------------------------------------------------------------- colour

def split_channels_by_dcr(table: pa.Table, *, thresholds: Sequence[float] = (0.5,),
                          per_trace: bool = True) -> pa.Table:
    """Assign ``channel`` from detector-channel-ratio (``dcr``) thresholds.

    Channel ``k`` holds the localizations with ``thresholds[k-1] <= dcr < thresholds[k]``
    (channel 0 below the first threshold, ``len(thresholds)`` above the last); NaN ``dcr``
    gives channel -1.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with a numeric ``dcr`` column (and ``track_id`` for
        ``per_trace=True``).
    thresholds : sequence of float, default (0.5,)
        Strictly increasing finite dcr values (dcr lies in 0..1); one threshold gives two
        colours.
    per_trace : bool, default True
        Classify each trace (``track_id``) by its mean dcr, so that all localizations of
        one molecule get one colour (the usual practice; needs ``track_id``). False:
        classify every localization by its own dcr.

    Returns
    -------
    pyarrow.Table
        The input with ``channel`` added (or replaced); history step
        ``minflux.split_channels_by_dcr``. With ``per_trace=True`` NaN values are
        left out of a trace's mean; a trace whose ``dcr`` is all NaN gets channel -1.

    Raises
    ------
    ParameterError
        Thresholds that are empty, not finite or not strictly increasing; no ``dcr``
        column; ``per_trace=True`` without ``track_id``.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0] * 4, "y": [0.0] * 4, "dcr": [0.2, 0.4, 0.7, 0.9],
    ...                 "track_id": [1, 1, 2, 2]})
    >>> split_channels_by_dcr(t, thresholds=[0.5]).column("channel").to_pylist()
    [0, 0, 1, 1]
    >>> split_channels_by_dcr(t, thresholds=[0.3, 0.8], per_trace=False).column("channel").to_pylist()
    [0, 1, 1, 2]
    """
    th = np.asarray(list(thresholds), dtype=np.float64)
    if th.ndim != 1 or th.size == 0 or not np.all(np.isfinite(th)) or np.any(np.diff(th) <= 0):
        raise ParameterError(f"thresholds must be a non-empty, strictly increasing list of finite "
                             f"numbers, got {list(thresholds)!r}")
    from .filtering import _column_values

    dcr = np.asarray(_column_values(table, "dcr"), dtype=np.float64)
    if per_trace:
        if "track_id" not in table.column_names:
            raise ParameterError("per_trace=True needs a 'track_id' column; pass per_trace=False "
                                 "to classify single localizations")
        tid = _track_ids(table, "split_channels_by_dcr")
        g = _groups(tid)
        value = g.per_row(g.nanmean(dcr))
    else:
        value = dcr
    channel = np.searchsorted(th, value, side="right").astype(np.int64)
    channel[np.isnan(value)] = -1
    out = with_columns(table, {"channel": channel})
    return with_history(out, "minflux.split_channels_by_dcr",
                        {"thresholds": th.tolist(), "per_trace": bool(per_trace),
                         "counts": {int(c): int(n) for c, n in
                                    zip(*np.unique(channel, return_counts=True))}})
