"""Shared preparation: coordinates, precision, segmentation by frames or time windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, SchemaError
from ..schema import coordinates, validate

__all__ = ["Prepared", "prepare"]

#: Lateral precision assumed when the table has no ``precision_xy`` column (nm).
DEFAULT_PRECISION_XY_NM = 10.0
#: Axial / lateral precision ratio assumed without precision columns (astigmatic 3D).
DEFAULT_Z_RATIO = 2.5


@dataclass(frozen=True, eq=False)
class Prepared:
    """Coordinates and segmentation of a table, ready for an estimator.

    Attributes
    ----------
    xyz : (N, D) ndarray of float
        Coordinates in nm (``D`` = ``ndim``).
    ndim : {2, 3}
        Dimensions estimated.
    axis : {"frame", "time_s"}
        The time axis used.
    tval : (N,) ndarray
        Frame or time (s) of each localization.
    seg : (N,) ndarray of int
        Segment index of each localization, -1 for dropped ones.
    n_segments : int
        Number of segments ``S``.
    seg_t : (S,) ndarray of float
        Mean frame / time of each segment.
    seg_counts : (S,) ndarray of int
        Localizations per segment.
    t_eval : (T,) ndarray
        Sample points of the model: every frame, or a regular time grid in s.
    precision_xy_nm, precision_z_nm : float
        Median lateral / axial precision in nm (defaults
        :data:`DEFAULT_PRECISION_XY_NM` and :data:`DEFAULT_Z_RATIO` times it without
        the columns).
    segment_size : float
        Frames or seconds per segment.
    """

    xyz: np.ndarray            # (N, D) nm
    ndim: int
    axis: str                  # "frame" | "time_s"
    tval: np.ndarray           # (N,) frame or time of each localization
    seg: np.ndarray            # (N,) segment index, -1 for dropped
    n_segments: int
    seg_t: np.ndarray          # (S,) mean frame/time of each segment
    seg_counts: np.ndarray     # (S,)
    t_eval: np.ndarray         # sample points of the model
    precision_xy_nm: float
    precision_z_nm: float
    segment_size: float        # frames or seconds per segment


def _median_col(table: pa.Table, name: str) -> float | None:
    if name not in table.column_names:
        return None
    v = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.median(v)) if v.size else None


def prepare(table: pa.Table, *, segment_frames: int | None, segment_seconds: float | None,
            default_segments: int, min_per_segment: int, dims: int | None = None,
            what: str = "drift estimation") -> Prepared:
    """Validate, pick the time axis and cut the acquisition into segments.

    ``segment_frames`` / ``segment_seconds`` fix the segment length; otherwise the
    acquisition is cut into ``default_segments`` equal spans (fewer when that would
    leave fewer than ``min_per_segment`` localizations per segment on average).

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with ``x``, ``y`` (``z``) in nm and ``frame`` or ``time_s``.
    segment_frames : int or None
        Segment length in frames (needs ``frame``).
    segment_seconds : float or None
        Segment length in s (needs ``time_s``); exclusive with ``segment_frames``.
    default_segments : int
        Number of equal spans when no length is given.
    min_per_segment : int
        Localizations a segment should have on average (fewer segments otherwise).
    dims : {2, 3}, optional
        Dimensions to estimate; default 3 when the table has ``z``.
    what : str
        Name of the calling estimation, for messages.

    Returns
    -------
    Prepared

    Raises
    ------
    SchemaError
        The table fails :func:`~smlmspine.schema.validate`, lacks the time column the
        options need, has missing time values, or 3D is asked without ``z``.
    ParameterError
        Both segment lengths given, too few localizations, a single time value, or an
        acquisition that fits in one segment.
    """
    validate(table)
    if segment_frames is not None and segment_seconds is not None:
        raise ParameterError("give segment_frames or segment_seconds, not both")
    names = table.column_names
    if segment_seconds is not None:
        if "time_s" not in names:
            raise SchemaError(f"segment_seconds needs a 'time_s' column; found {names}")
        axis = "time_s"
    elif segment_frames is not None:
        if "frame" not in names:
            raise SchemaError(f"segment_frames needs a 'frame' column; found {names}")
        axis = "frame"
    elif "frame" in names:
        axis = "frame"
    elif "time_s" in names:
        axis = "time_s"
    else:
        raise SchemaError(f"{what} needs a 'frame' or 'time_s' column; found {names}")
    n = table.num_rows
    col = table.column(axis)
    if col.null_count:
        raise SchemaError(f"column {axis!r} has {col.null_count} missing value(s)")
    tval = np.asarray(col.to_numpy(), dtype=np.int64 if axis == "frame" else float)
    if n < 2 * min_per_segment:
        raise ParameterError(f"{what}: {n} localizations are too few (need at least "
                             f"{2 * min_per_segment}, i.e. two segments of {min_per_segment})")
    ndim = 3 if ("z" in names and dims != 2) else 2
    if dims == 3 and "z" not in names:
        raise SchemaError("3D drift requested but the table has no 'z' column")
    xyz = coordinates(table, dims=ndim)
    t0, t1 = tval.min(), tval.max()
    span = float(t1 - t0) + (1.0 if axis == "frame" else 0.0)
    if span <= 0:
        raise ParameterError(f"{what}: all localizations share one {axis} value; drift needs "
                             "an acquisition that spans time")
    from .._validate import check_count, integer, positive

    if segment_frames is not None:
        size = float(integer(segment_frames, "segment_frames", minimum=1))
    elif segment_seconds is not None:
        size = positive(segment_seconds, "segment_seconds", unit="s")
    else:
        n_seg = int(max(2, min(default_segments, n // max(min_per_segment, 1))))
        size = span / n_seg
        if axis == "frame":
            size = float(max(1, int(np.ceil(size))))
    # per-segment arrays (counts, times, estimates): refuse a count beyond the budget
    check_count(span / size, 1024, what=f"{span:g} {axis} in segments of {size:g}: "
                f"{span / size:.3g} drift segments")
    seg = np.floor((tval - t0) / size).astype(np.int64)
    n_segments = int(seg.max()) + 1
    counts = np.bincount(seg, minlength=n_segments)
    if n_segments < 2:
        raise ParameterError(f"{what}: the acquisition ({span:g} {axis}) fits in one segment of "
                             f"{size:g}; use shorter segments")
    seg_t = np.bincount(seg, weights=tval.astype(float), minlength=n_segments) / np.maximum(counts, 1)
    if axis == "frame":
        t_eval = np.arange(int(t0), int(t1) + 1)
    else:
        t_eval = np.linspace(float(t0), float(t1), int(min(max(20 * n_segments, 200), 20000)))
    pxy = _median_col(table, "precision_xy") or DEFAULT_PRECISION_XY_NM
    pz = _median_col(table, "precision_z") or pxy * DEFAULT_Z_RATIO
    return Prepared(xyz, ndim, axis, tval, seg, n_segments, seg_t, counts, t_eval,
                    pxy, pz, size)
