"""Drift estimation entry points: method dispatch, options, the corrected table.

Re-exported by :mod:`smlmspine.drift` (see its docstring for the methods).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..errors import ParameterError
from ._model import DriftModel, smooth_segments

__all__ = ["DriftCorrection", "estimate_drift", "correct", "METHODS"]

#: Estimation methods understood by :func:`estimate_drift`.
METHODS = ("aim", "rcc", "fiducial")


@dataclass(frozen=True, eq=False)
class DriftCorrection:
    """Result of :func:`correct`: the corrected table and the drift model applied.

    Attributes
    ----------
    table : pyarrow.Table
        The localizations with the drift subtracted (history step ``drift.apply``).
    model : DriftModel
        The drift that was subtracted (per frame or time, nm).
    """

    table: pa.Table
    model: DriftModel

    def to_dict(self) -> dict:
        """Summary of the model (see :meth:`DriftModel.to_dict`) and the row count.

        Returns
        -------
        dict
            ``n_localizations`` and the model's summary (JSON-able).
        """
        return {"n_localizations": self.table.num_rows, **self.model.to_dict()}


def estimate_drift(table: pa.Table, *, method: str = "aim", segment_frames: int | None = None,
                   segment_seconds: float | None = None, dims: int | None = None,
                   smoothing: float | None = 1.0, rng=0, **options) -> DriftModel:
    """Estimate stage drift from a localization table.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations (``x``, ``y``, optional ``z`` in nm) with ``frame`` or ``time_s``.
        ``precision_xy`` / ``precision_z`` set the matching scales when present.
    method : {"aim", "rcc", "fiducial"}
        Estimator (see the module docs).
    segment_frames : int, optional
        Segment length in frames. Default: the acquisition cut into equal spans (50
        for AIM, 20 for RCC, fewer when a segment would get too few localizations).
        Ignored by ``"fiducial"``, which works per frame.
    segment_seconds : float, optional
        Segment length in s on the ``time_s`` axis (MINFLUX); exclusive with
        ``segment_frames``.
    dims : {2, 3}, optional
        2 estimates x/y only even for 3D data; default: 3 when the table has ``z``.
    smoothing : float or None
        Spline smoothing factor per segment (``s = smoothing * n_segments`` with weights
        ``1/sigma``); ``0`` interpolates the segment estimates exactly.
    rng : int or numpy.random.Generator
        Seed for the subsampling of large data sets (results are deterministic for a
        fixed seed).
    **options
        Method options: AIM ``kernel_nm``, ``search_radius_nm``, ``max_reference``,
        ``min_per_segment``, ``min_contrast``; RCC ``pixel_nm``, ``blur_nm``,
        ``max_shift_nm``, ``rejection_nm``, ``min_per_segment``; fiducial
        ``fiducials`` (approximate positions ``(B, 2|3)`` in nm), ``radius_nm``,
        ``min_presence``.

    Returns
    -------
    DriftModel

    Raises
    ------
    ParameterError
        Unknown method or options, too few localizations per segment, or data without
        structure to match.
    """
    method = str(method).lower()
    if method not in METHODS:
        raise ParameterError(f"unknown drift method {method!r}; choose one of {list(METHODS)}")
    if dims not in (None, 2, 3):
        raise ParameterError(f"dims must be 2, 3 or None, got {dims!r}")
    if method == "fiducial":
        from ._fiducial import estimate_fiducial

        return estimate_fiducial(table, dims=dims, smoothing=smoothing,
                                 segment_frames=segment_frames, segment_seconds=segment_seconds,
                                 **options)
    from ._segments import prepare

    if method == "aim":
        allowed = {"kernel_nm", "search_radius_nm", "max_reference", "min_per_segment",
                   "min_contrast"}
        defaults = {"min_per_segment": 200, "max_reference": 60_000, "min_contrast": 1.1,
                    "kernel_nm": None, "search_radius_nm": None}
        n_default = 50
    else:
        allowed = {"pixel_nm", "blur_nm", "max_shift_nm", "rejection_nm", "min_per_segment",
                   "min_contrast"}
        defaults = {"min_per_segment": 1000, "pixel_nm": None, "blur_nm": None,
                    "max_shift_nm": 1000.0, "rejection_nm": None, "min_contrast": 1.5}
        n_default = 20
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ParameterError(f"unknown option(s) {unknown} for method {method!r}; "
                             f"allowed: {sorted(allowed)}")
    opts = {**defaults, **options}
    prep = prepare(table, segment_frames=segment_frames, segment_seconds=segment_seconds,
                   default_segments=n_default, min_per_segment=int(opts["min_per_segment"]),
                   dims=dims, what=f"{method.upper()} drift estimation")
    if method == "aim":
        from ._aim import aim_segments

        d, s, valid, used = aim_segments(prep, rng=rng, **opts)
    else:
        from ._rcc import rcc_segments

        d, s, valid, used = rcc_segments(prep, **opts)
    params = {"method": method, "segment_" + ("frames" if prep.axis == "frame" else "seconds"):
              prep.segment_size, "n_segments": prep.n_segments,
              "n_segments_used": int(valid.sum()), "ndim": prep.ndim, "smoothing": smoothing,
              **used}
    return smooth_segments(prep.axis, prep.seg_t[valid], d[valid], s[valid], prep.t_eval,
                           ndim=prep.ndim, smoothing=smoothing, method=method, params=params,
                           noise_floor=method == "aim")


def correct(table: pa.Table, *, method: str = "aim", segment_frames: int | None = None,
            segment_seconds: float | None = None, model: DriftModel | None = None,
            **options) -> DriftCorrection:
    """Estimate the drift (unless ``model`` is given) and subtract it.

    Takes the arguments of :func:`estimate_drift`; returns a :class:`DriftCorrection`
    with the corrected table (history step ``drift.apply``) and the model. The input
    table is not modified.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations (``x``, ``y``, optional ``z`` in nm) with ``frame`` or ``time_s``.
    method : {"aim", "rcc", "fiducial"}
        Estimator (see :func:`estimate_drift`).
    segment_frames, segment_seconds : int or float, optional
        Segment length in frames or in s of ``time_s`` (see :func:`estimate_drift`).
    model : DriftModel, optional
        A drift already estimated (e.g. on another channel); then no estimation options
        may be given.
    **options
        Further options of :func:`estimate_drift` (``dims``, ``smoothing``, ``rng`` and
        the method options).

    Returns
    -------
    DriftCorrection

    Raises
    ------
    ParameterError
        Estimation options together with ``model``, or any refusal of
        :func:`estimate_drift`.
    """
    if model is None:
        model = estimate_drift(table, method=method, segment_frames=segment_frames,
                               segment_seconds=segment_seconds, **options)
    elif options or segment_frames is not None or segment_seconds is not None:
        raise ParameterError("with model= given, no estimation options apply")
    return DriftCorrection(model.apply(table), model)
