"""Drift estimation against the simulator's ground truth, quality checks, the model value."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pytest

import smlmspine.drift as drift
from smlmspine.drift import DriftModel, correct, estimate_drift
from smlmspine.errors import ParameterError, QualityWarning, SchemaError
from smlmspine.schema import history, make_table

from ._synth import dendrite_like, residual_rms


@pytest.fixture(scope="module")
def sim3d():
    """~10^5 localizations of a simulated 3D dendrite with 200 nm of smooth 3D drift."""
    from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, PhotophysicsModel, dendrite

    return dendrite(geometry=Geometry(shaft_length_nm=5000), acquisition=Acquisition(n_frames=10000),
                    photophysics=PhotophysicsModel(blinks_per_fluorophore=8),
                    drift=SimulatedDrift(drift_nm=200), rng=3)


def _residual(model, sim, dims=3):
    f = sim.drift.column("frame").to_numpy()
    truth = np.column_stack([sim.drift.column(c).to_numpy() for c in ("dx_nm", "dy_nm", "dz_nm")])
    r = model.at(f)[:, :dims] - truth[:, :dims]
    r -= r.mean(axis=0)  # an absolute offset is not observable
    return np.sqrt((r ** 2).mean(axis=0))


def _drift_span(sim):
    d = np.column_stack([sim.drift.column(c).to_numpy() for c in ("dx_nm", "dy_nm", "dz_nm")])
    return d.max(axis=0) - d.min(axis=0)


@pytest.mark.parametrize("method", ["aim", "rcc"])
def test_3d_residual_on_simulated_dendrite(sim3d, method):
    assert sim3d.localizations.num_rows > 80_000
    assert np.max(_drift_span(sim3d)[:2]) >= 100.0  # the drift is substantial
    model = estimate_drift(sim3d.localizations, method=method)
    rms = _residual(model, sim3d)
    assert rms[0] <= 2.0 and rms[1] <= 2.0, rms
    assert rms[2] <= 5.0, rms
    assert model.ndim == 3 and model.method == method
    # the reported uncertainty is a real number of the right order, not zero or inf
    assert np.all(np.isfinite(model.sigma_x_nm)) and 0 < np.median(model.sigma_x_nm) < 5


def test_2d_aim_on_3d_data_estimates_xy_only(sim3d):
    model = estimate_drift(sim3d.localizations, method="aim", dims=2, segment_frames=200)
    assert model.ndim == 2 and np.all(np.isnan(model.dz_nm))
    rms = _residual(model, sim3d, dims=2)
    assert np.all(rms <= 2.0), rms
    assert model.params["segment_frames"] == 200


def test_2d_rcc_synthetic():
    t, *_ = dendrite_like(n_emitters=3000, blinks_per_emitter=20, dims=2, rng=5)
    model = estimate_drift(t, method="rcc", segment_frames=1000)
    rms = residual_rms(model, 10000, dims=2)
    assert np.all(rms <= 2.0), rms
    assert model.params["n_segments"] == 10


def test_fiducials_three_beads_sub_nm():
    from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, PhotophysicsModel, dendrite

    sim = dendrite(geometry=Geometry(shaft_length_nm=5000),
                   acquisition=Acquisition(n_frames=10000, n_fiducials=3),
                   photophysics=PhotophysicsModel(blinks_per_fluorophore=3),
                   drift=SimulatedDrift(drift_nm=200), rng=5)
    model = estimate_drift(sim.localizations, method="fiducial")
    assert model.params["n_fiducials"] == 3
    rms = _residual(model, sim)
    assert rms[0] <= 1.0 and rms[1] <= 1.0, rms
    assert rms[2] <= 5.0, rms


def test_fiducials_synthetic_beads():
    t, *_ = dendrite_like(n_emitters=1500, blinks_per_emitter=8, rng=2, beads=3)
    model = estimate_drift(t, method="fiducial")
    assert model.params["n_fiducials"] == 3
    rms = residual_rms(model, 10000, dims=3)
    assert np.all(rms[:2] <= 1.0) and rms[2] <= 2.0, rms


def test_fiducials_given_positions_and_none_found():
    t, *_ = dendrite_like(n_emitters=1500, blinks_per_emitter=8, rng=2, beads=2)
    detected = estimate_drift(t, method="fiducial")
    pos = np.array(detected.params["fiducials_nm"])[:, :2]
    given = estimate_drift(t, method="fiducial", fiducials=pos)
    assert np.allclose(given.dx_nm, detected.dx_nm, atol=0.2)
    plain, *_ = dendrite_like(n_emitters=1500, blinks_per_emitter=8, rng=2, beads=0)
    with pytest.raises(ParameterError, match="no fiducials found"):
        estimate_drift(plain, method="fiducial")


def _uniform(n, n_frames=2000, rng=0, dims=2):
    rng = np.random.default_rng(rng)
    cols = {"x": rng.uniform(0, 5000, n), "y": rng.uniform(0, 5000, n),
            "frame": np.sort(rng.integers(0, n_frames, n)), "precision_xy": np.full(n, 10.0)}
    if dims == 3:
        cols["z"] = rng.uniform(-300, 300, n)
    return make_table(cols)


@pytest.mark.parametrize("method", ["aim", "rcc"])
def test_structureless_input_is_refused(method):
    with pytest.raises(ParameterError, match="no .*structure"):
        estimate_drift(_uniform(40_000), method=method)


@pytest.mark.parametrize("method", ["aim", "rcc"])
def test_too_sparse_is_refused(method):
    with pytest.raises(ParameterError, match="too few|only .* segments"):
        estimate_drift(_uniform(150), method=method, segment_frames=100)


def test_partly_structureless_segments_warn():
    # structure in the first half of the acquisition, uniform noise in the second
    t, *_ = dendrite_like(n_emitters=3000, blinks_per_emitter=10, dims=2, rng=7)
    keep = t.column("frame").to_numpy() < 7000
    noise = _uniform(8000, rng=1)
    f = noise.column("frame").to_numpy() * 1 + 7000
    noise = noise.set_column(noise.schema.get_field_index("frame"), "frame",
                             pa.array(np.minimum(f, 9999), pa.int64()))
    mixed = make_table({c: np.concatenate([t.column(c).to_numpy()[keep],
                                           noise.column(c).to_numpy()])
                        for c in ("x", "y", "frame", "precision_xy")})
    with pytest.warns(QualityWarning, match="no matching structure"):
        estimate_drift(mixed, method="aim")


def test_bad_arguments():
    t = _uniform(1000)
    with pytest.raises(ParameterError, match="unknown drift method"):
        estimate_drift(t, method="magic")
    with pytest.raises(ParameterError, match="unknown option"):
        estimate_drift(t, method="aim", pixel_nm=5)
    with pytest.raises(ParameterError, match="not both"):
        estimate_drift(t, segment_frames=10, segment_seconds=1.0)
    with pytest.raises(SchemaError, match="time_s"):
        estimate_drift(t, segment_seconds=1.0)
    no_time = make_table({"x": [0.0] * 10, "y": [0.0] * 10})
    with pytest.raises(SchemaError, match="'frame' or 'time_s'"):
        estimate_drift(no_time)


def test_time_segments_minflux_like():
    """Segments by time_s windows (no frame column) give a model on the time axis."""
    t, *_ = dendrite_like(n_emitters=3000, blinks_per_emitter=15, dims=3, rng=4)
    f = t.column("frame").to_numpy()
    timed = make_table({"x": t.column("x"), "y": t.column("y"), "z": t.column("z"),
                        "time_s": f * 0.01, "precision_xy": t.column("precision_xy"),
                        "precision_z": t.column("precision_z")})
    model = estimate_drift(timed, method="aim", segment_seconds=2.0)
    assert model.axis == "time_s" and model.params["segment_seconds"] == 2.0
    est = model.at(np.arange(10000) * 0.01)
    from ._synth import drift_curve

    tru = drift_curve(np.arange(10000), 10000)
    r = est - tru
    r -= r.mean(axis=0)
    rms = np.sqrt((r ** 2).mean(axis=0))
    assert rms[0] <= 2 and rms[1] <= 2 and rms[2] <= 5, rms
    out = model.apply(timed)
    assert out.num_rows == timed.num_rows


def test_model_apply_is_pure_and_recorded():
    m = DriftModel.from_arrays("frame", [0, 1, 2, 3], dx_nm=[0, 1, 2, 3], dy_nm=[0, -1, -2, -3],
                               dz_nm=[0, 0.5, 1, 1.5], method="aim", params={"k": 1})
    t = make_table({"x": [10.0, 10.0, 10.0], "y": [0.0, 0.0, 0.0], "z": [5.0, 5.0, 5.0],
                    "frame": [0, 2, 7]})
    before = t.column("x").to_pylist()
    out = m.apply(t)
    assert t.column("x").to_pylist() == before
    assert out.column("x").to_pylist() == [10.0, 8.0, 7.0]  # frame 7: held at the last value
    assert out.column("y").to_pylist() == [0.0, 2.0, 3.0]
    assert out.column("z").to_pylist() == [5.0, 4.0, 3.5]
    step = history(out)[-1]
    assert step["step"] == "drift.apply" and step["params"]["method"] == "aim"
    assert step["params"]["params"] == {"k": 1}
    with pytest.raises(SchemaError, match="no 'frame' column"):
        m.apply(make_table({"x": [0.0], "y": [0.0]}))


def test_model_table_roundtrip_and_csv(tmp_path):
    import pyarrow.csv as pcsv

    m = DriftModel.from_arrays("frame", np.arange(5), dx_nm=np.arange(5) * 1.5,
                               dy_nm=np.zeros(5), sigma_x_nm=np.full(5, 0.3),
                               sigma_y_nm=np.full(5, 0.2), method="rcc", params={"a": 2})
    tab = m.to_table()
    assert tab.column_names == list(drift.DRIFT_COLUMNS)
    back = DriftModel.from_table(tab)
    assert back.axis == "frame" and back.method == "rcc" and back.params == {"a": 2}
    assert np.array_equal(back.dx_nm, m.dx_nm) and back.ndim == 2
    path = m.write_csv(tmp_path / "drift.csv")
    back2 = DriftModel.from_table(pcsv.read_csv(path))
    assert np.allclose(back2.dx_nm, m.dx_nm) and np.allclose(back2.sigma_x_nm, 0.3)
    mt = DriftModel.from_arrays("time_s", [0.0, 0.5, 1.0], dx_nm=[0, 1, 2], dy_nm=[0, 0, 0])
    assert DriftModel.from_table(mt.to_table()).axis == "time_s"
    with pytest.raises(SchemaError, match="dx_nm"):
        DriftModel.from_table(pa.table({"frame": [0]}))
    with pytest.raises(ParameterError, match="increasing"):
        DriftModel.from_arrays("frame", [0, 0], dx_nm=[0, 0], dy_nm=[0, 0])
    json.dumps(m.to_dict())


def test_plot_writes_png(tmp_path):
    t, *_ = dendrite_like(n_emitters=800, blinks_per_emitter=10, n_frames=2000, rng=9)
    model = estimate_drift(t, method="aim", segment_frames=200)
    path = model.plot(tmp_path / "drift.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_correct_returns_result_value():
    t, *_ = dendrite_like(n_emitters=800, blinks_per_emitter=10, n_frames=2000, dims=2, rng=9)
    res = correct(t, method="aim", segment_frames=200)
    assert isinstance(res, drift.DriftCorrection)
    assert res.table.num_rows == t.num_rows and res.to_dict()["method"] == "aim"
    again = correct(t, model=res.model)
    assert again.table.column("x").equals(res.table.column("x"))
    with pytest.raises(ParameterError, match="model= given"):
        correct(t, model=res.model, segment_frames=5)


def test_public_names_resolve():
    for name in drift.__all__:
        assert getattr(drift, name) is not None


def test_no_warning_on_clean_data(sim3d):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate_drift(sim3d.localizations, method="aim", dims=2, segment_frames=500)


@pytest.fixture(scope="module")
def sim_1e6():
    from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, PhotophysicsModel, dendrite

    return dendrite(geometry=Geometry(shaft_length_nm=10000), acquisition=Acquisition(n_frames=20000),
                    photophysics=PhotophysicsModel(blinks_per_fluorophore=40),
                    drift=SimulatedDrift(drift_nm=200), rng=2024)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["aim", "rcc"])
@pytest.mark.parametrize("dims", [3, 2])
def test_residual_at_1e6_localizations(sim_1e6, method, dims):
    assert sim_1e6.localizations.num_rows > 700_000
    model = estimate_drift(sim_1e6.localizations, method=method, dims=dims)
    rms = _residual(model, sim_1e6, dims=dims)
    assert np.all(rms[:2] <= 2.0), rms
    if dims == 3:
        assert rms[2] <= 5.0, rms


def test_spline_never_blows_up_on_underestimated_sigmas():
    """Regression: tiny reported sigmas made FITPACK fail and return a wild curve."""
    from smlmspine.drift._model import smooth_segments

    rng = np.random.default_rng(0)
    t = np.linspace(100, 9900, 50)
    truth = 120 * np.sin(t / 1500.0) + 0.01 * t
    y = truth + rng.normal(0, 0.5, t.size)           # real scatter 0.5 nm
    d = np.column_stack([y, y, np.full_like(y, np.nan)])
    s = np.full((t.size, 3), 0.05)                    # reported 10x too small
    for floor in (False, True):
        m = smooth_segments("frame", t, d, s, np.arange(10000), ndim=2, smoothing=1.0,
                            method="aim", params={}, noise_floor=floor)
        est = m.at(t)[:, 0] + (y[0] - m.at(t[:1])[0, 0])
        assert np.max(np.abs(est - y)) < 5.0
