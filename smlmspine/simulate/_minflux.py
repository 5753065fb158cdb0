"""MINFLUX traces: repeated localizations of single emitters with quality fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ..schema import make_table, spec_table, with_history
from ._drift import smooth_drift
from ._output import close_truth_folder, open_truth_folder, simulation_writer, write_truth_tables
from ._settings import SimulatedDrift, check_group
from ._truth import TRUTH_EMITTERS, TRUTH_MINFLUX, TRUTH_MINFLUX_DRIFT

__all__ = ["MinfluxSimulation", "MinfluxSample", "MinfluxTiming", "MinfluxQuality", "minflux_traces"]


@dataclass(frozen=True)
class MinfluxSimulation:
    """A simulated MINFLUX acquisition with its ground truth.

    Attributes
    ----------
    localizations : pyarrow.Table
        ``x, y(, z)`` (nm), ``time_s``, ``track_id`` and the quality columns
        ``iteration, vld, efo, cfr, dcr, eco, fbg`` (names as the MINFLUX reader
        returns them); sorted by time.
    truth : pyarrow.Table
        Row-aligned (``data_schemas/truth_minflux.json``).
    emitters : pyarrow.Table
        Per emitter (``data_schemas/truth_emitters.json``).
    drift : pyarrow.Table
        ``time_s, dx_nm, dy_nm, dz_nm`` on a regular grid.
    ndim : int
    n_iterations : int
        Iterations of the MINFLUX sequence (the final one, ``n_iterations - 1``, is
        the ``iteration`` of every row).
    parameters : dict
    """

    localizations: pa.Table
    truth: pa.Table
    emitters: pa.Table
    drift: pa.Table
    ndim: int
    n_iterations: int
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Summary: counts, dimensionality and parameters (JSON-able).

        Returns
        -------
        dict
        """
        vld = self.localizations.column("vld").to_numpy(zero_copy_only=False)
        return {"n_localizations": self.localizations.num_rows,
                "n_valid": int(vld.sum()),
                "n_traces": len(np.unique(self.localizations.column("track_id").to_numpy())),
                "n_emitters": self.emitters.num_rows, "ndim": self.ndim,
                "parameters": dict(self.parameters)}

    @simulation_writer
    def write(self, path, *, format: str | None = None) -> dict:
        """Write the localizations (Abberior layout for .npy/.mat/.json) and the truth.

        The truth folder ``<stem>.truth/`` holds ``localizations``, ``emitters`` and
        ``drift`` as Parquet and ``parameters.json``.

        Parameters
        ----------
        path : str or pathlib.Path
            Localization file; ``.npy``, ``.mat`` or ``.json`` without ``format`` give
            the Abberior export layout, anything else :func:`smlmspine.io.write`.
        format : str, optional
            Writer name of :func:`smlmspine.io.write`.

        Returns
        -------
        dict
            ``{"localizations": Path, "truth": Path, "files": [Path, ...]}``.
        """
        from ..io import write

        path, folder = open_truth_folder(path)
        if format is None and path.suffix.lower() in (".npy", ".mat", ".json"):
            from ..io.minflux import write_abberior_npy

            write_abberior_npy(self.localizations, path, ndim=self.ndim,
                               n_iterations=self.n_iterations)
        else:
            write(self.localizations, path, format=format)
        files = write_truth_tables({"localizations": self.truth, "emitters": self.emitters,
                                    "drift": self.drift}, folder)
        return close_truth_folder(self.to_dict(), path, folder, files)


@dataclass(frozen=True, eq=False)
class MinfluxSample:
    """Where the emitters of :func:`minflux_traces` are.

    Parameters
    ----------
    n_emitters : int
        Emitters placed uniformly in the region (unless ``positions_nm`` is given).
    region_nm : sequence of float
        Size of the box, 2 or 3 values, nm (its corner is at 1 um, 1 um, 0; a missing
        z size is 0).
    positions_nm : (N, 2 or 3) array, optional
        Explicit emitter positions, nm (overrides ``n_emitters``/``region_nm``); kept as
        a read-only float copy.

    Raises
    ------
    ParameterError
        A negative ``n_emitters``, a ``region_nm`` without 2 or 3 values or
        ``positions_nm`` of the wrong shape.

    Examples
    --------
    >>> MinfluxSample(n_emitters=20, region_nm=(1000, 1000)).region_nm
    (1000.0, 1000.0)
    """

    n_emitters: int = 100
    region_nm: Sequence[float] = (2000.0, 2000.0, 600.0)
    positions_nm: Any = None

    def __post_init__(self):
        if self.positions_nm is not None:
            pos = np.array(self.positions_nm, dtype=float)
            if pos.ndim != 2 or pos.shape[1] not in (2, 3):
                raise ParameterError(f"positions_nm must have shape (N, 2 or 3), got {pos.shape}")
            pos.setflags(write=False)
            object.__setattr__(self, "positions_nm", pos)
            return
        if self.n_emitters < 0:
            raise ParameterError(f"n_emitters must be >= 0, got {self.n_emitters}")
        size = np.asarray(self.region_nm, float)
        if size.shape not in ((2,), (3,)):
            raise ParameterError(f"region_nm must have 2 or 3 values, got {size.shape}")
        object.__setattr__(self, "region_nm", tuple(float(v) for v in size))


@dataclass(frozen=True)
class MinfluxTiming:
    """Traces of :func:`minflux_traces`: how often and how long an emitter is seen.

    Each emitter is switched on a geometric number of times (mean
    ``traces_per_emitter``, >= 1); each on-state is a trace of a geometric number of
    localizations (mean ``localizations_per_trace``, >= 1) spaced by exponential
    intervals of mean ``localization_interval_s``.

    Parameters
    ----------
    localizations_per_trace, traces_per_emitter : float
        Means of the geometric distributions, >= 1.
    time_s : float
        Acquisition length, s.
    localization_interval_s : float
        Mean time between localizations of a trace, s.

    Raises
    ------
    ParameterError
        A mean below 1 or a non-positive time.

    Examples
    --------
    >>> MinfluxTiming(time_s=60.0).localizations_per_trace
    20.0
    """

    localizations_per_trace: float = 20.0
    traces_per_emitter: float = 1.5
    time_s: float = 600.0
    localization_interval_s: float = 0.005

    def __post_init__(self):
        if self.localizations_per_trace < 1 or self.traces_per_emitter < 1:
            raise ParameterError("localizations_per_trace and traces_per_emitter must be >= 1")
        if self.time_s <= 0 or self.localization_interval_s <= 0:
            raise ParameterError("time_s and localization_interval_s must be > 0")


@dataclass(frozen=True)
class MinfluxQuality:
    """Precision and quality fields of every localization of :func:`minflux_traces`.

    Photon counts ``eco ~ Poisson(efo * dwell_s)`` set the precision:
    ``sigma = precision_nm * sqrt(median eco / eco)`` (axially ``precision_z_nm``).

    Parameters
    ----------
    precision_nm, precision_z_nm : float
        Median lateral and axial precision (default axial = 1.5 x lateral), nm.
    efo_median_hz : float
        Median effective emission frequency at the beam periphery (valid rows), Hz.
    dwell_s : float
        Photon collection time per localization, s (``eco = Poisson(efo * dwell_s)``).
    dcr_mean : float
        Mean detector-channel ratio (the dye's colour), in [0, 1].
    background_hz : float
        Mean background frequency ``fbg``, Hz.
    invalid_fraction : float
        Fraction of rows flagged ``vld = False``, in [0, 1): they have a high
        centre-frequency ratio (cfr 0.8-1.5) or too high efo (two emitters on), and 3x
        worse positions.
    n_iterations : int, optional
        Iterations per localization in the sequence (default 5 in 2D, 10 in 3D).

    Raises
    ------
    ParameterError
        Non-positive precisions, ``efo_median_hz`` or ``dwell_s``, ``invalid_fraction``
        outside [0, 1) or ``n_iterations`` below 1.

    Examples
    --------
    >>> MinfluxQuality(precision_nm=2.0).precision_z_nm is None
    True
    """

    precision_nm: float = 3.0
    precision_z_nm: float | None = None
    efo_median_hz: float = 80e3
    dwell_s: float = 2e-3
    dcr_mean: float = 0.5
    background_hz: float = 5e3
    invalid_fraction: float = 0.1
    n_iterations: int | None = None

    def __post_init__(self):
        if self.precision_nm <= 0 or (self.precision_z_nm is not None and self.precision_z_nm <= 0):
            raise ParameterError("precision_nm and precision_z_nm must be > 0")
        if not 0.0 <= self.invalid_fraction < 1.0:
            raise ParameterError(f"invalid_fraction must be in [0, 1), got {self.invalid_fraction}")
        if self.dwell_s <= 0 or self.efo_median_hz <= 0:
            raise ParameterError("dwell_s and efo_median_hz must be > 0")
        if self.n_iterations is not None and int(self.n_iterations) < 1:
            raise ParameterError(f"n_iterations must be >= 1, got {self.n_iterations}")


def minflux_traces(*, sample: MinfluxSample | None = None, ndim: int = 3,
                   timing: MinfluxTiming | None = None, quality: MinfluxQuality | None = None,
                   drift: SimulatedDrift | None = None, rng=None) -> MinfluxSimulation:
    """Simulate MINFLUX traces of single emitters with quality fields and ground truth.

    Each emitter is switched on ``traces_per_emitter`` times on average (geometric,
    >= 1); each on-state is a trace (``track_id``) of ``localizations_per_trace``
    localizations on average (geometric, >= 1) spaced by exponential intervals of mean
    ``localization_interval_s``. Photon counts ``eco`` ~ Poisson(efo * dwell) set the
    precision: ``sigma = precision_nm * sqrt(median eco / eco)``.

    The settings come in groups; ``None`` for a group means its defaults.

    Parameters
    ----------
    sample : MinfluxSample, optional
        Number of emitters and their region, or explicit positions.
    ndim : {2, 3}
        2D (no ``z`` column) or 3D.
    timing : MinfluxTiming, optional
        Traces per emitter, localizations per trace, acquisition length and interval.
    quality : MinfluxQuality, optional
        Precision, efo/dwell/eco, dcr, background, invalid fraction, iterations.
    drift : SimulatedDrift, optional
        Smooth drift (see :func:`smlmspine.simulate.smooth_drift`) of ``drift_nm``
        laterally and ``drift_z_nm`` axially over ``time_s``; default none (``None``
        here is ``SimulatedDrift(drift_nm=0)``, not that group's 150 nm default). A
        drift ``table`` is not supported.
    rng : int or numpy.random.Generator, optional
        Seed; the same seed gives identical output.

    Returns
    -------
    MinfluxSimulation
        ``parameters`` holds the flat settings (``n_emitters``, ``precision_nm``, ...,
        ``drift_nm``, ``drift_z_nm``).

    Raises
    ------
    ParameterError
        ``ndim`` not 2 or 3, a group of the wrong type or a drift table (the groups
        check their own values when they are made).

    Examples
    --------
    >>> sim = minflux_traces(sample=MinfluxSample(n_emitters=20), ndim=2, rng=0)
    >>> "z" in sim.localizations.column_names, sim.localizations.num_rows == sim.truth.num_rows
    (False, True)
    """
    rng = np.random.default_rng(rng)
    if ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim!r}")
    sample = check_group(sample, MinfluxSample, "sample")
    timing = check_group(timing, MinfluxTiming, "timing")
    quality = check_group(quality, MinfluxQuality, "quality")
    drift = SimulatedDrift(drift_nm=0.0) if drift is None else check_group(drift, SimulatedDrift,
                                                                           "drift")
    if drift.table is not None:
        raise ParameterError("minflux_traces takes a smooth drift (drift_nm, drift_z_nm), not a "
                             "drift table")
    localizations_per_trace = timing.localizations_per_trace
    traces_per_emitter = timing.traces_per_emitter
    time_s, localization_interval_s = timing.time_s, timing.localization_interval_s
    precision_nm, precision_z_nm = quality.precision_nm, quality.precision_z_nm
    efo_median_hz, dwell_s, dcr_mean = quality.efo_median_hz, quality.dwell_s, quality.dcr_mean
    background_hz, invalid_fraction = quality.background_hz, quality.invalid_fraction
    n_iterations = quality.n_iterations
    drift_nm, drift_z_nm = drift.drift_nm, drift.drift_z_nm
    if n_iterations is None:
        n_iterations = 5 if ndim == 2 else 10
    if precision_z_nm is None:
        precision_z_nm = 1.5 * precision_nm
    # emitters
    if sample.positions_nm is not None:
        pos = np.array(sample.positions_nm, float)
        if pos.shape[1] == 2:
            pos = np.column_stack([pos, np.zeros(len(pos))])
    else:
        size = np.asarray(sample.region_nm, float)
        size = np.append(size, 0.0) if size.size == 2 else size
        pos = np.array([1000.0, 1000.0, 0.0]) + rng.random((int(sample.n_emitters), 3)) * size
    if ndim == 2:
        pos[:, 2] = 0.0
    n_em = len(pos)
    # traces
    n_tr = rng.geometric(1.0 / traces_per_emitter, n_em)
    tr_em = np.repeat(np.arange(n_em), n_tr)
    n_loc = rng.geometric(1.0 / localizations_per_trace, len(tr_em))
    dur = n_loc * localization_interval_s
    t0 = rng.random(len(tr_em)) * np.maximum(time_s - dur, 0.0)
    em = np.repeat(tr_em, n_loc)
    track = np.repeat(np.arange(len(tr_em)), n_loc)
    steps = rng.exponential(localization_interval_s, len(em))
    first = np.repeat(np.cumsum(n_loc) - n_loc, n_loc)
    csum = np.cumsum(steps)
    t = np.repeat(t0, n_loc) + csum - np.repeat(csum[np.cumsum(n_loc) - n_loc], n_loc) + steps[first]
    n = len(em)
    # quality fields
    valid = rng.random(n) >= invalid_fraction
    efo = efo_median_hz * np.exp(rng.normal(0.0, 0.35, n))
    cfr = rng.beta(2.0, 6.0, n) * 0.8
    bad = ~valid
    two_on = bad & (rng.random(n) < 0.5)
    efo[two_on] *= rng.uniform(2.0, 3.0, int(two_on.sum()))
    cfr[bad & ~two_on] = rng.uniform(0.8, 1.5, int((bad & ~two_on).sum()))
    eco = rng.poisson(efo * dwell_s).astype(float)
    eco = np.maximum(eco, 1.0)
    ref = efo_median_hz * dwell_s
    sig = np.sqrt(ref / eco)
    sig = np.where(valid, sig, 3.0 * sig)
    dcr = np.clip(rng.normal(dcr_mean, 0.05, n), 0.0, 1.0)
    fbg = background_hz * np.exp(rng.normal(0.0, 0.3, n))
    # positions, drift
    if drift_nm > 0 or (drift_z_nm or 0) > 0:
        grid = np.linspace(0.0, time_s, 1001)
        dr_grid = smooth_drift(len(grid), drift_nm=drift_nm, drift_z_nm=drift_z_nm, rng=rng)
    else:
        grid = np.linspace(0.0, time_s, 2)
        dr_grid = np.zeros((2, 3))
    if ndim == 2:
        dr_grid[:, 2] = 0.0
    dr = np.column_stack([np.interp(t, grid, dr_grid[:, k]) for k in range(3)])
    true = pos[em]
    noise = rng.standard_normal((n, 3))
    noise[:, :2] *= (precision_nm * sig)[:, None]
    noise[:, 2] *= precision_z_nm * sig
    if ndim == 2:
        noise[:, 2] = 0.0
    obs = true + noise + dr
    order = np.argsort(t, kind="stable")
    cols = {"x": obs[order, 0], "y": obs[order, 1]}
    if ndim == 3:
        cols["z"] = obs[order, 2]
    cols.update({"time_s": t[order], "track_id": track[order],
                 "iteration": np.full(n, n_iterations - 1, dtype=np.int64),
                 "vld": valid[order], "efo": efo[order], "cfr": cfr[order], "dcr": dcr[order],
                 "eco": eco[order], "fbg": fbg[order]})
    units = {"iteration": "1", "vld": "1", "efo": "Hz", "cfr": "1", "dcr": "1",
             "eco": "photon", "fbg": "Hz"}
    params = dict(kind="minflux", n_emitters=n_em, ndim=ndim, precision_nm=precision_nm,
                  precision_z_nm=precision_z_nm, localizations_per_trace=localizations_per_trace,
                  traces_per_emitter=traces_per_emitter, time_s=time_s,
                  localization_interval_s=localization_interval_s, efo_median_hz=efo_median_hz,
                  dwell_s=dwell_s, dcr_mean=dcr_mean, background_hz=background_hz,
                  invalid_fraction=invalid_fraction, n_iterations=n_iterations,
                  drift_nm=drift_nm, drift_z_nm=drift_z_nm)
    locs = with_history(make_table(cols, units=units, format="simulation"),
                        "simulate.minflux_traces", params)
    truth = spec_table(TRUTH_MINFLUX, {
        "emitter_id": em[order].astype(np.int64), "x_true": true[order, 0],
        "y_true": true[order, 1], "z_true": true[order, 2], "dx_nm": dr[order, 0],
        "dy_nm": dr[order, 1], "dz_nm": dr[order, 2]})
    emitters = spec_table(TRUTH_EMITTERS, {
        "emitter_id": np.arange(n_em, dtype=np.int64), "x_nm": pos[:, 0], "y_nm": pos[:, 1],
        "z_nm": pos[:, 2], "spine_id": np.full(n_em, -1, dtype=np.int64),
        "is_fiducial": np.zeros(n_em, bool),
        "n_localizations": np.bincount(em, minlength=n_em).astype(np.int64)})
    drift = spec_table(TRUTH_MINFLUX_DRIFT, {"time_s": grid, "dx_nm": dr_grid[:, 0],
                                             "dy_nm": dr_grid[:, 1], "dz_nm": dr_grid[:, 2]})
    return MinfluxSimulation(locs, truth, emitters, drift, int(ndim), int(n_iterations), params)
