"""Stage drift: a smooth default model (polynomial + slow oscillation) or a user table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .._validate import check_count, integer
from ..errors import ParameterError

__all__ = ["smooth_drift", "drift_from_table"]


def smooth_drift(n_samples: int, *, drift_nm: float, drift_z_nm: float | None = None,
                 rng=None) -> np.ndarray:
    """Smooth 3D drift at ``n_samples`` equally spaced times, zero at the first sample.

    Each axis is a random cubic polynomial of time plus a slow sinusoid (0.5-2 cycles
    over the acquisition, a quarter of the polynomial's amplitude). The lateral part is
    scaled so that the largest lateral excursion ``max |(dx, dy)|`` equals ``drift_nm``
    and the axial part so that ``max |dz|`` equals ``drift_z_nm`` (default
    ``drift_nm / 2``).

    Parameters
    ----------
    n_samples : int
        Number of time samples (>= 1), e.g. one per frame.
    drift_nm : float
        Largest lateral excursion ``max |(dx, dy)|`` in nm (>= 0; 0 gives no lateral drift).
    drift_z_nm : float, optional
        Largest axial excursion ``max |dz|`` in nm (>= 0); default ``drift_nm / 2``.
    rng : int or numpy.random.Generator, optional
        Seed or generator.

    Returns
    -------
    (n_samples, 3) ndarray
        dx, dy, dz in nm (what is *added* to the true positions).

    Raises
    ------
    ParameterError
        A negative ``drift_nm``/``drift_z_nm``, ``n_samples`` not an integer >= 1, or
        more samples than the memory budget holds.

    Examples
    --------
    >>> d = smooth_drift(1000, drift_nm=150.0, rng=0)
    >>> d.shape, float(np.abs(d[0]).max()), round(float(np.hypot(d[:, 0], d[:, 1]).max()), 6)
    ((1000, 3), 0.0, 150.0)
    """
    if drift_nm < 0 or (drift_z_nm is not None and drift_z_nm < 0):
        raise ParameterError(f"drift_nm and drift_z_nm must be >= 0, got {drift_nm}, {drift_z_nm}")
    n = _samples(n_samples)
    rng = np.random.default_rng(rng)
    if drift_z_nm is None:
        drift_z_nm = 0.5 * drift_nm
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    out = np.zeros((n, 3))
    for ax in range(3):
        coef = rng.normal(0.0, 1.0, 3)
        poly = coef[0] * t + coef[1] * t ** 2 + coef[2] * t ** 3
        amp = 0.25 * max(np.abs(poly).max(), 1e-9) * rng.uniform(0.5, 1.5)
        freq = rng.uniform(0.5, 2.0)
        phase = rng.uniform(0.0, 2 * np.pi)
        out[:, ax] = poly + amp * (np.sin(2 * np.pi * freq * t + phase) - np.sin(phase))
    lat = np.hypot(out[:, 0], out[:, 1]).max()
    out[:, :2] *= (drift_nm / lat) if lat > 0 else 0.0
    zmax = np.abs(out[:, 2]).max()
    out[:, 2] *= (drift_z_nm / zmax) if zmax > 0 else 0.0
    return out


#: Bytes per drift sample (the (n, 3) result, the time axis and the temporaries).
_BYTES_PER_SAMPLE = 80


def _samples(n_samples) -> int:
    """``n_samples`` as an int >= 1, refused before allocating beyond the memory budget."""
    n = integer(n_samples, "n_samples", minimum=1)
    check_count(n, _BYTES_PER_SAMPLE, what=f"n_samples={n}: drift at {n:.3g} frames")
    return n


def drift_from_table(drift, n_samples: int, *, key: str = "frame") -> np.ndarray:
    """Drift per sample ``0 .. n_samples - 1`` from a user table (linear interpolation).

    ``drift`` is a :class:`pyarrow.Table`, a pandas DataFrame or a mapping with columns
    ``key`` (``frame``), ``dx_nm``, ``dy_nm`` and optionally ``dz_nm``; values outside the
    table's range are held constant.

    Parameters
    ----------
    drift : pyarrow.Table, pandas.DataFrame or dict
        The drift table, nm per ``key`` value (rows in any order).
    n_samples : int
        Number of samples (frames ``0 .. n_samples - 1``), >= 1.
    key : str
        Name of the time column (sample index).

    Returns
    -------
    (n_samples, 3) ndarray
        dx, dy, dz in nm; dz is 0 without a ``dz_nm`` column.

    Raises
    ------
    ParameterError
        Not a table or dict, missing columns, an empty or non-finite ``key`` column, or
        an invalid ``n_samples``.

    Examples
    --------
    >>> drift_from_table({"frame": [0, 10], "dx_nm": [0.0, 20.0], "dy_nm": [5.0, 5.0]},
    ...                  12)[[0, 5, 11]].tolist()
    [[0.0, 5.0, 0.0], [10.0, 5.0, 0.0], [20.0, 5.0, 0.0]]
    """
    if isinstance(drift, pa.Table):
        cols = {c: drift.column(c).to_numpy(zero_copy_only=False) for c in drift.column_names}
    elif hasattr(drift, "to_dict") and hasattr(drift, "columns"):
        cols = {c: np.asarray(drift[c]) for c in drift.columns}
    elif isinstance(drift, dict):
        cols = {c: np.asarray(v) for c, v in drift.items()}
    else:
        raise ParameterError("drift must be a table (pyarrow/pandas) or a dict with columns "
                             f"{key}, dx_nm, dy_nm[, dz_nm]; got {type(drift).__name__}")
    missing = [c for c in (key, "dx_nm", "dy_nm") if c not in cols]
    if missing:
        raise ParameterError(f"drift table is missing column(s) {missing}; found {sorted(cols)}")
    k = np.asarray(cols[key], float)
    if k.size == 0 or not np.all(np.isfinite(k)):
        raise ParameterError(f"drift table column {key!r} must be non-empty and finite")
    n = _samples(n_samples)
    order = np.argsort(k, kind="stable")
    grid = np.arange(n, dtype=float)
    out = np.zeros((n, 3))
    for ax, name in enumerate(("dx_nm", "dy_nm", "dz_nm")):
        if name in cols:
            out[:, ax] = np.interp(grid, k[order], np.asarray(cols[name], float)[order])
    return out
