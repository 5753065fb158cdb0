"""Drift estimation and correction: AIM, RCC and fiducials, 2D and 3D, frames or time.

- :func:`estimate_drift` returns a :class:`DriftModel` (per-frame or per-time drift in
  nm with a 1-sigma uncertainty per axis); ``model.apply(table)`` subtracts it.
- :func:`correct` does both and returns a :class:`DriftCorrection` (table + model).
- Methods: ``"aim"`` (adaptive intersection maximization, Ma et al. 2024; default),
  ``"rcc"`` (redundant cross-correlation, Wang et al. 2014) and ``"fiducial"`` (bright
  long-lived emitters / beads, detected or given).
- Segments are spans of ``segment_frames`` frames (STORM) or ``segment_seconds`` of
  ``time_s`` (MINFLUX); by default the acquisition is cut into equal spans.
- When the data cannot support an estimate (too few localizations per segment, no
  structure, inconsistent pair shifts) a :class:`~smlmspine.errors.ParameterError` is
  raised or a :class:`~smlmspine.errors.QualityWarning` issued, with the reason.

See ``docs/drift.md`` for the methods, defaults and references.

Examples
--------
>>> import numpy as np
>>> from smlmspine.drift import correct
>>> from smlmspine.schema import make_table
>>> rng = np.random.default_rng(0)
>>> sites = rng.uniform(0, 3000, (400, 2))                 # fixed emitters
>>> frame = np.repeat(np.arange(400), 40)                  # 40 blinks per frame
>>> site = rng.integers(0, 400, frame.size)
>>> drift = np.column_stack([0.2 * frame, -0.1 * frame])    # 80 nm and -40 nm in x, y
>>> xy = sites[site] + drift + rng.normal(0, 8, (frame.size, 2))
>>> t = make_table({"x": xy[:, 0], "y": xy[:, 1], "frame": frame})
>>> res = correct(t, method="aim", segment_frames=20)
>>> err = res.model.at([399])[0, :2] - [0.2 * 399, -0.1 * 399]
>>> bool(np.all(np.abs(err) < 2.0))
True
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "estimate_drift": "._estimate:estimate_drift",
    "correct": "._estimate:correct",
    "DriftCorrection": "._estimate:DriftCorrection",
    "METHODS": "._estimate:METHODS",
    "DriftModel": "._model:DriftModel",
    "DRIFT_COLUMNS": "._model:DRIFT_COLUMNS",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
