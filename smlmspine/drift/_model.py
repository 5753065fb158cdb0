"""The :class:`DriftModel` value: per-frame (or per-time) drift with uncertainties."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, SchemaError
from ..schema import column_specs, metadata, spec_table, with_columns, with_history

__all__ = ["DriftModel", "DRIFT_COLUMNS", "smooth_segments"]

_F, _I = pa.float64(), pa.int64()

#: Columns of the drift table (mirrored in ``data_schemas/drift.json``).
DRIFT_COLUMNS = column_specs(
    ("frame", _I, "frame", "camera frame the drift applies to; null for a model on the "
                           "time_s axis (MINFLUX)"),
    ("time_s", _F, "s", "acquisition time the drift applies to; NaN for a model on the "
                        "frame axis"),
    ("dx_nm", _F, "nm", "x drift: observed x = true x + dx_nm (subtracted by apply)"),
    ("dy_nm", _F, "nm", "y drift: observed y = true y + dy_nm"),
    ("dz_nm", _F, "nm", "z drift: observed z = true z + dz_nm; NaN for a 2D model"),
    ("sigma_x_nm", _F, "nm", "1-sigma uncertainty of dx_nm"),
    ("sigma_y_nm", _F, "nm", "1-sigma uncertainty of dy_nm"),
    ("sigma_z_nm", _F, "nm", "1-sigma uncertainty of dz_nm; NaN for a 2D model"),
)

_AXES = ("frame", "time_s")


@dataclass(frozen=True, eq=False)
class DriftModel:
    """Stage drift as a function of frame (STORM) or time (MINFLUX).

    The convention is ``observed = true + drift``; :meth:`apply` subtracts the drift,
    interpolated linearly between the sampled points and held constant beyond them.
    The drift is referenced to the first sample (``dx_nm[0] == 0``): an absolute
    offset cannot be measured from the data.

    Attributes
    ----------
    axis : {"frame", "time_s"}
        What ``t`` holds.
    t : (T,) ndarray
        Sample points: every frame from the first to the last (axis ``frame``) or a
        regular time grid in s (axis ``time_s``), increasing.
    dx_nm, dy_nm, dz_nm : (T,) ndarray of float
        Drift in nm; ``dz_nm`` is all-NaN for a 2D model.
    sigma_x_nm, sigma_y_nm, sigma_z_nm : (T,) ndarray of float
        1-sigma uncertainty per axis in nm (NaN for z in 2D).
    method : str
        ``"aim"``, ``"rcc"``, ``"fiducial"`` or ``"table"`` (read back).
    params : dict
        The estimation parameters (recorded in the history by :meth:`apply`).
    segment_t, segment_d_nm, segment_sigma_nm : ndarray
        The raw per-segment estimates before smoothing: centres ``(S,)``, drift
        ``(S, 3)`` and uncertainty ``(S, 3)`` in nm (empty for a model read back).

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> m = DriftModel.from_arrays("frame", [0, 1, 2], dx_nm=[0.0, 1.0, 2.0],
    ...                            dy_nm=[0.0, 0.0, 0.0])
    >>> t = make_table({"x": [10.0, 10.0], "y": [5.0, 5.0], "frame": [0, 2]})
    >>> m.apply(t).column("x").to_pylist()
    [10.0, 8.0]
    """

    axis: str
    t: np.ndarray
    dx_nm: np.ndarray
    dy_nm: np.ndarray
    dz_nm: np.ndarray
    sigma_x_nm: np.ndarray
    sigma_y_nm: np.ndarray
    sigma_z_nm: np.ndarray
    method: str = "table"
    params: dict = field(default_factory=dict)
    segment_t: np.ndarray = field(default_factory=lambda: np.empty(0))
    segment_d_nm: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    segment_sigma_nm: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))

    def __post_init__(self):
        if self.axis not in _AXES:
            raise ParameterError(f"axis must be 'frame' or 'time_s', got {self.axis!r}")
        n = len(self.t)
        for name in ("dx_nm", "dy_nm", "dz_nm", "sigma_x_nm", "sigma_y_nm", "sigma_z_nm"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != (n,):
                raise ParameterError(f"{name!r} must have shape ({n},), got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        t = np.asarray(self.t, dtype=np.int64 if self.axis == "frame" else float)
        if n == 0:
            raise ParameterError("a drift model needs at least one sample")
        if n > 1 and np.any(np.diff(t) <= 0):
            raise ParameterError(f"drift sample points ({self.axis}) must be strictly increasing")
        t.setflags(write=False)
        object.__setattr__(self, "t", t)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, axis: str, t, *, dx_nm, dy_nm, dz_nm=None, sigma_x_nm=None,
                    sigma_y_nm=None, sigma_z_nm=None, method: str = "table",
                    params: dict | None = None) -> "DriftModel":
        """Build a model from plain arrays (missing uncertainties are NaN, missing z NaN).

        Parameters
        ----------
        axis : {"frame", "time_s"}
            What ``t`` holds.
        t : (T,) array-like
            Sample points, strictly increasing: frames (integers) or times in s.
        dx_nm, dy_nm : (T,) array-like of float
            Drift in nm at each sample (``observed = true + drift``).
        dz_nm : (T,) array-like of float, optional
            Axial drift in nm; omitted: a 2D model (NaN).
        sigma_x_nm, sigma_y_nm, sigma_z_nm : (T,) array-like of float, optional
            1-sigma uncertainties in nm; omitted: NaN.
        method : str
            Name of the estimator (``"table"`` for a model given by hand or read back).
        params : dict, optional
            Estimation parameters, recorded in the history by :meth:`apply`.

        Returns
        -------
        DriftModel

        Raises
        ------
        ParameterError
            Unknown axis, arrays whose length differs from ``t``, no sample, or sample
            points that do not increase.

        Examples
        --------
        >>> m = DriftModel.from_arrays("time_s", [0.0, 10.0], dx_nm=[0.0, 5.0], dy_nm=[0.0, 1.0])
        >>> m.ndim, m.at([5.0])[0, :2].tolist()
        (2, [2.5, 0.5])
        """
        n = len(t)
        nan = np.full(n, np.nan)
        return cls(axis, np.asarray(t), np.asarray(dx_nm, float), np.asarray(dy_nm, float),
                   nan if dz_nm is None else np.asarray(dz_nm, float),
                   nan if sigma_x_nm is None else np.asarray(sigma_x_nm, float),
                   nan if sigma_y_nm is None else np.asarray(sigma_y_nm, float),
                   nan if sigma_z_nm is None else np.asarray(sigma_z_nm, float),
                   method, dict(params or {}))

    @property
    def ndim(self) -> int:
        """3 when z drift was estimated, else 2."""
        return 2 if np.all(np.isnan(self.dz_nm)) else 3

    # ------------------------------------------------------------------ evaluation
    def at(self, values) -> np.ndarray:
        """Drift ``(N, 3)`` in nm at frames / times ``values`` (z NaN for 2D).

        Linear interpolation between samples, constant beyond the first/last sample.

        Parameters
        ----------
        values : (N,) array-like
            Frames (axis ``frame``) or times in s (axis ``time_s``).

        Returns
        -------
        (N, 3) ndarray of float
            ``dx, dy, dz`` in nm; the z column is NaN for a 2D model.

        Examples
        --------
        >>> m = DriftModel.from_arrays("frame", [0, 10], dx_nm=[0.0, 10.0], dy_nm=[0.0, -5.0])
        >>> m.at([5, 20])[:, :2].tolist()
        [[5.0, -2.5], [10.0, -5.0]]
        """
        v = np.asarray(values, dtype=float)
        t = self.t.astype(float)
        out = np.empty((v.size, 3))
        for k, d in enumerate((self.dx_nm, self.dy_nm, self.dz_nm)):
            out[:, k] = np.interp(v, t, d) if len(t) > 1 else d[0]
        return out

    def apply(self, table: pa.Table) -> pa.Table:
        """Return a copy of ``table`` with the drift subtracted (the input is untouched).

        Uses the table's ``frame`` (axis ``frame``) or ``time_s`` (axis ``time_s``)
        column; z is corrected when the model is 3D and the table has ``z``. The history
        gets a ``drift.apply`` step with the method and its parameters.

        Parameters
        ----------
        table : pyarrow.Table
            Localizations with ``x``, ``y`` (``z``) in nm and the model's axis column.

        Returns
        -------
        pyarrow.Table
            The same rows and columns, ``x``, ``y`` (``z``) minus the drift at each row's
            frame or time.

        Raises
        ------
        SchemaError
            When the table lacks the model's axis column.
        """
        if self.axis not in table.column_names:
            raise SchemaError(f"the drift model is on the {self.axis!r} axis but the table has no "
                              f"{self.axis!r} column; found {table.column_names}")
        col = table.column(self.axis)
        if col.null_count:
            raise SchemaError(f"column {self.axis!r} has {col.null_count} missing value(s)")
        d = self.at(col.to_numpy())
        new = {"x": table.column("x").to_numpy() - d[:, 0],
               "y": table.column("y").to_numpy() - d[:, 1]}
        corrected_z = self.ndim == 3 and "z" in table.column_names
        if corrected_z:
            new["z"] = table.column("z").to_numpy() - d[:, 2]
        out = with_columns(table, new)
        lo, hi = float(self.t[0]), float(self.t[-1])
        return with_history(out, "drift.apply", {
            "method": self.method, "axis": self.axis, "range": [lo, hi],
            "corrected_z": corrected_z, "params": self.params,
            "max_abs_drift_nm": float(np.nanmax(np.abs(np.column_stack(
                [self.dx_nm, self.dy_nm, np.nan_to_num(self.dz_nm)])))),
        })

    # ------------------------------------------------------------------ export
    def to_table(self) -> pa.Table:
        """The drift table (``data_schemas/drift.json``), one row per sample.

        Returns
        -------
        pyarrow.Table
            Columns of :data:`DRIFT_COLUMNS` (``frame`` null on the ``time_s`` axis,
            ``time_s`` NaN on the ``frame`` axis); the method, axis and parameters in the
            table metadata, so that :meth:`from_table` restores them.

        Examples
        --------
        >>> m = DriftModel.from_arrays("frame", [0, 1], dx_nm=[0.0, 1.0], dy_nm=[0.0, 2.0])
        >>> m.to_table().column("dy_nm").to_pylist()
        [0.0, 2.0]
        """
        n = len(self.t)
        if self.axis == "frame":
            frame = pa.array(self.t, pa.int64())
            time = np.full(n, np.nan)
        else:
            frame = pa.nulls(n, pa.int64())
            time = self.t.astype(float)
        cols = {"frame": frame, "time_s": time, "dx_nm": self.dx_nm, "dy_nm": self.dy_nm,
                "dz_nm": self.dz_nm, "sigma_x_nm": self.sigma_x_nm,
                "sigma_y_nm": self.sigma_y_nm, "sigma_z_nm": self.sigma_z_nm}
        return spec_table(DRIFT_COLUMNS, cols, metadata={
            "drift_axis": self.axis, "drift_method": self.method, "drift_params": self.params})

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (method, axis, range, largest drift and uncertainty).

        Returns
        -------
        dict
            ``method``, ``axis``, ``ndim``, ``n_samples``, ``range`` (first and last
            sample), ``n_segments``, ``params``, and ``max_abs_d{x,y,z}_nm`` /
            ``max_sigma_{x,y,z}_nm`` in nm (``None`` when all NaN); JSON-compatible.
        """
        def mx(a):
            return None if np.all(np.isnan(a)) else float(np.nanmax(np.abs(a)))
        return {"method": self.method, "axis": self.axis, "ndim": self.ndim,
                "n_samples": int(len(self.t)), "range": [float(self.t[0]), float(self.t[-1])],
                "n_segments": int(len(self.segment_t)), "params": self.params,
                "max_abs_dx_nm": mx(self.dx_nm), "max_abs_dy_nm": mx(self.dy_nm),
                "max_abs_dz_nm": mx(self.dz_nm), "max_sigma_x_nm": mx(self.sigma_x_nm),
                "max_sigma_y_nm": mx(self.sigma_y_nm), "max_sigma_z_nm": mx(self.sigma_z_nm)}

    @classmethod
    def from_table(cls, table: pa.Table) -> "DriftModel":
        """Read a drift table back (the inverse of :meth:`to_table`).

        Accepts the table written by :meth:`to_table` or any table with ``frame`` or
        ``time_s`` plus ``dx_nm`` and ``dy_nm`` (``dz_nm`` and the ``sigma_*`` columns
        are optional), e.g. a drift CSV read with :func:`pyarrow.csv.read_csv`.

        Parameters
        ----------
        table : pyarrow.Table
            The drift table; the axis is ``frame`` when that column is filled, else
            ``time_s``.

        Returns
        -------
        DriftModel
            Method and parameters from the table metadata when present (else
            ``"table"``); no per-segment estimates.

        Raises
        ------
        SchemaError
            When the columns needed are missing or the axis holds no values.

        Examples
        --------
        >>> m = DriftModel.from_arrays("frame", [0, 1], dx_nm=[0.0, 1.0], dy_nm=[0.0, 2.0],
        ...                            method="rcc")
        >>> back = DriftModel.from_table(m.to_table())
        >>> back.method, back.dy_nm.tolist()
        ('rcc', [0.0, 2.0])
        """
        names = table.column_names
        missing = [c for c in ("dx_nm", "dy_nm") if c not in names]
        if missing:
            raise SchemaError(f"drift table lacks column(s) {missing}; found {names}")

        def arr(name):
            if name not in names:
                return None
            return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)

        frame = table.column("frame") if "frame" in names else None
        if frame is not None and frame.null_count < len(frame):
            if frame.null_count:
                raise SchemaError("drift table column 'frame' is partly empty")
            axis, t = "frame", np.asarray(frame.to_numpy(zero_copy_only=False)).astype(np.int64)
        elif "time_s" in names and np.all(np.isfinite(arr("time_s"))):
            axis, t = "time_s", arr("time_s")
        else:
            raise SchemaError(f"drift table needs a filled 'frame' or 'time_s' column; found {names}")
        meta = metadata(table)
        params = meta.get("drift_params") if isinstance(meta.get("drift_params"), dict) else {}
        return cls.from_arrays(axis, t, dx_nm=arr("dx_nm"), dy_nm=arr("dy_nm"),
                               dz_nm=arr("dz_nm"), sigma_x_nm=arr("sigma_x_nm"),
                               sigma_y_nm=arr("sigma_y_nm"), sigma_z_nm=arr("sigma_z_nm"),
                               method=str(meta.get("drift_method", "table")), params=params)

    def write_csv(self, path: str | Path) -> Path:
        """Write :meth:`to_table` as CSV (atomically); return the path.

        Parameters
        ----------
        path : str or pathlib.Path
            Output file (replaced when it exists; nothing is left behind on failure).

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        import pyarrow.csv as pcsv

        from ..io._registry import atomic_output

        path = Path(path)
        with atomic_output(path) as tmp:
            pcsv.write_csv(self.to_table(), tmp)
        return path

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Plot the drift curves with 1-sigma bands (and the raw segment estimates).

        Parameters
        ----------
        path : str or pathlib.Path
            Image file (format from the extension, e.g. ``.png``, ``.pdf``).
        title : str, optional
            Figure title; default names the method and the number of segments.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        from ._plot import plot_model

        return plot_model(self, Path(path), title=title)

    def __repr__(self) -> str:
        d = self.to_dict()
        return (f"DriftModel(method={self.method!r}, axis={self.axis!r}, ndim={self.ndim}, "
                f"samples={d['n_samples']}, range={d['range']}, "
                f"max|dx|={d['max_abs_dx_nm']:.1f} nm, max|dy|={d['max_abs_dy_nm']:.1f} nm)")


def smooth_segments(axis: str, seg_t: np.ndarray, seg_d: np.ndarray, seg_sigma: np.ndarray,
                    t_eval: np.ndarray, *, ndim: int, smoothing: float | None = 1.0,
                    method: str, params: dict, noise_floor: bool = False) -> DriftModel:
    """Turn per-segment estimates into a :class:`DriftModel` sampled at ``t_eval``.

    Each axis is fit with a cubic smoothing spline (``scipy.interpolate.UnivariateSpline``,
    weights ``1/sigma``, smoothing factor ``s = smoothing * S`` for ``S`` segments, i.e.
    residuals of about one sigma on average); ``smoothing=0`` interpolates, fewer than
    four segments use linear interpolation; outside the span of the segment times the
    curve continues straight, with the slope between the spline's two outermost segments
    (no cubic extrapolation). With ``noise_floor`` (AIM) the segment
    sigmas are floored at the scatter seen in the third differences of the estimates. The result is
    referenced to its first sample. The uncertainty is the (floored) segment sigma
    interpolated linearly (conservative: the spline averages neighbouring segments).

    Parameters
    ----------
    axis : {"frame", "time_s"}
        The time axis.
    seg_t : (S,) ndarray of float
        Segment centres (frames or s), in any order.
    seg_d : (S, 3) ndarray of float
        Drift estimate per segment in nm.
    seg_sigma : (S, 3) ndarray of float
        1-sigma uncertainty per segment in nm (non-positive or NaN values take the
        median of the others).
    t_eval : (T,) ndarray
        Sample points of the model.
    ndim : {2, 3}
        Axes fitted; z stays NaN in 2D.
    smoothing : float or None
        Smoothing factor per segment; ``None`` or fewer than four segments: linear
        interpolation.
    method : str
        Estimator name stored in the model.
    params : dict
        Parameters stored in the model.
    noise_floor : bool
        Floor the segment sigmas at the scatter of the estimates (AIM).

    Returns
    -------
    DriftModel
        Sampled at ``t_eval``, referenced to its first sample, with the raw segment
        estimates kept.

    Examples
    --------
    >>> import numpy as np
    >>> seg_t = np.arange(5) * 10.0 + 5
    >>> seg_d = np.column_stack([seg_t * 0.5, np.zeros(5), np.full(5, np.nan)])
    >>> m = smooth_segments("frame", seg_t, seg_d, np.ones((5, 3)), np.arange(0, 50), ndim=2,
    ...                     smoothing=0, method="aim", params={})
    >>> round(float(m.at([49])[0, 0]), 6)   # 0.5 nm per frame, referenced to frame 0
    24.5
    """
    seg_t = np.asarray(seg_t, float)
    order = np.argsort(seg_t)
    seg_t, seg_d, seg_sigma = seg_t[order], seg_d[order], seg_sigma[order]
    S = len(seg_t)
    te = np.asarray(t_eval, float)
    out = np.full((te.size, 3), np.nan)
    sig = np.full((te.size, 3), np.nan)
    for k in range(ndim):
        y, s = seg_d[:, k], seg_sigma[:, k]
        s = np.where(np.isfinite(s) & (s > 0), s, np.nanmedian(s[s > 0]) if np.any(s > 0) else 1.0)
        if noise_floor:
            s = np.maximum(s, _noise_floor(y))
        if S >= 4 and smoothing is not None:
            spl = _spline(seg_t, y, 1.0 / np.maximum(s, 1e-3), float(smoothing) * S)
            # Inside the segment span the spline; beyond it (at most half a segment) a
            # straight line through the spline at the two outermost segments on each side
            # (cubic extrapolation can swing wildly).
            ends = spl(seg_t[[0, 1, -2, -1]])
            lo_slope = (ends[1] - ends[0]) / (seg_t[1] - seg_t[0])
            hi_slope = (ends[3] - ends[2]) / (seg_t[-1] - seg_t[-2])
            out[:, k] = spl(np.clip(te, seg_t[0], seg_t[-1])) \
                + np.minimum(te - seg_t[0], 0.0) * lo_slope + np.maximum(te - seg_t[-1], 0.0) * hi_slope
        elif S >= 2:
            out[:, k] = np.interp(te, seg_t, y)
        else:
            out[:, k] = y[0]
        sig[:, k] = np.interp(te, seg_t, s)
        out[:, k] -= out[0, k]
    return DriftModel(axis, te.astype(np.int64) if axis == "frame" else te,
                      out[:, 0], out[:, 1], out[:, 2], sig[:, 0], sig[:, 1], sig[:, 2],
                      method=method, params=dict(params), segment_t=seg_t,
                      segment_d_nm=seg_d, segment_sigma_nm=seg_sigma)


def _spline(t, y, w, s):
    """Cubic smoothing spline; when FITPACK cannot meet ``s`` it is relaxed (x2, three
    times) and, failing that, the segment estimates are interpolated (``s = 0``)."""
    import warnings

    from scipy.interpolate import UnivariateSpline

    for _ in range(4):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spl = UnivariateSpline(t, y, w=w, k=3, s=s)
        if not caught:
            return spl
        s = 2 * s if s > 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return UnivariateSpline(t, y, k=3, s=0)


def _noise_floor(y: np.ndarray) -> float:
    """Scatter of the segment estimates from their third differences (robust).

    For a smooth drift sampled densely, the third difference ``y[i+3] - 3 y[i+2] +
    3 y[i+1] - y[i]`` is dominated by the estimation noise (variance ``20 sigma^2``);
    used as a floor for the reported sigmas, which ignore correlations between
    matched localizations.
    """
    if y.size < 6:
        return 0.0
    d3 = np.diff(y, 3)
    return float(1.4826 * np.median(np.abs(d3 - np.median(d3))) / np.sqrt(20.0))
