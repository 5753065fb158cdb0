"""minflux_traces(): traces, quality fields, precision and drift against the truth."""

import numpy as np
import pytest

from smlmspine.errors import ParameterError
from smlmspine.simulate import MinfluxQuality, MinfluxSample, SimulatedDrift, minflux_traces


@pytest.fixture(scope="module")
def sim3d():
    return minflux_traces(sample=MinfluxSample(n_emitters=300),
                          quality=MinfluxQuality(precision_nm=3.0),
                          drift=SimulatedDrift(drift_nm=40.0), ndim=3, rng=4)


def _col(t, name):
    return t.column(name).to_numpy(zero_copy_only=False)


def test_columns_traces_and_quality(sim3d):
    locs = sim3d.localizations
    for c in ("x", "y", "z", "time_s", "track_id", "iteration", "vld", "efo", "cfr", "dcr", "eco", "fbg"):
        assert c in locs.column_names
    assert np.all(np.diff(_col(locs, "time_s")) >= 0)
    assert np.all(_col(locs, "iteration") == 9)
    vld = _col(locs, "vld")
    assert vld.mean() == pytest.approx(0.9, abs=0.02)
    cfr, efo, dcr = _col(locs, "cfr"), _col(locs, "efo"), _col(locs, "dcr")
    assert np.all(cfr[vld] < 0.8) and np.all((dcr >= 0) & (dcr <= 1))
    assert np.median(efo[vld]) == pytest.approx(80e3, rel=0.05)
    # one emitter per trace; ~20 localizations per trace
    em = _col(sim3d.truth, "emitter_id")
    tid = _col(locs, "track_id")
    pairs = np.unique(np.column_stack([tid, em]), axis=0)
    assert len(pairs) == len(np.unique(tid))
    assert np.bincount(tid).mean() == pytest.approx(20.0, rel=0.1)


def test_precision_and_drift_match_truth(sim3d):
    locs, truth = sim3d.localizations, sim3d.truth
    vld = _col(locs, "vld")
    sigma = np.sqrt(80e3 * 2e-3 / _col(locs, "eco"))  # relative precision from the photon counts
    for ax, p in (("x", 3.0), ("y", 3.0), ("z", 4.5)):
        res = _col(locs, ax) - _col(truth, f"{ax}_true") - _col(truth, f"d{ax}_nm")
        z = res[vld] / (p * sigma[vld])
        assert abs(z.mean()) < 0.05 and z.std() == pytest.approx(1.0, abs=0.05)
    dr = sim3d.drift
    lat = np.hypot(_col(dr, "dx_nm"), _col(dr, "dy_nm"))
    assert lat.max() == pytest.approx(40.0) and lat[0] == 0.0
    t = _col(locs, "time_s")
    np.testing.assert_allclose(_col(truth, "dx_nm"), np.interp(t, _col(dr, "time_s"), _col(dr, "dx_nm")))


def test_2d_has_no_z_and_rejects_bad_input():
    sim = minflux_traces(sample=MinfluxSample(n_emitters=10), ndim=2, rng=1)
    assert "z" not in sim.localizations.column_names and sim.n_iterations == 5
    assert np.all(sim.truth.column("z_true").to_numpy() == 0)
    pos = np.array([[0.0, 0.0], [100.0, 0.0]])
    sim = minflux_traces(sample=MinfluxSample(positions_nm=pos), ndim=2, rng=1)
    assert set(np.unique(sim.truth.column("x_true").to_numpy())) <= {0.0, 100.0}
    with pytest.raises(ParameterError, match="ndim"):
        minflux_traces(ndim=4)
    with pytest.raises(ParameterError, match="positions_nm"):
        minflux_traces(sample=MinfluxSample(positions_nm=np.zeros((3, 4))))
