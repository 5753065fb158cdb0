"""Blink merging against the simulator's truth and analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.errors import ParameterError, SchemaError
from smlmspine.merge import default_merge_parameters, merge_blinks
from smlmspine.schema import history, make_table


@pytest.fixture(scope="module")
def sim_one_burst():
    """Simulated dendrite where each fluorophore gives one burst (mean 3 frames), no drift."""
    from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, PhotophysicsModel, dendrite

    return dendrite(geometry=Geometry(shaft_length_nm=4000), acquisition=Acquisition(n_frames=20000),
                    photophysics=PhotophysicsModel(blinks_per_fluorophore=1.0, frames_per_blink=3.0),
                    drift=SimulatedDrift(drift_nm=0.0), rng=11)


def test_recovers_emitter_count_within_5_percent(sim_one_burst):
    loc, truth = sim_one_burst.localizations, sim_one_burst.truth
    eid = truth.column("emitter_id").to_numpy()
    bg = truth.column("is_background").to_numpy(zero_copy_only=False)
    # one "emitter" per detected fluorophore burst, plus each background localization
    n_true = len(np.unique(eid[~bg])) + int(bg.sum())
    assert loc.num_rows > 1.5 * n_true  # there is something to merge
    merged = merge_blinks(loc)
    assert abs(merged.num_rows - n_true) <= 0.05 * n_true, (merged.num_rows, n_true)
    assert merged.column("n_merged").to_numpy().sum() == loc.num_rows
    assert merged.column("photons").to_numpy().sum() == pytest.approx(
        loc.column("photons").to_numpy().sum())
    # merged precision is better than the single-frame precision
    assert np.median(merged.column("precision_xy").to_numpy()) < np.median(
        loc.column("precision_xy").to_numpy())


def test_weighted_mean_sum_and_precision():
    t = make_table({"x": [0.0, 2.0, 500.0, 1.0, 0.5], "y": [0.0, 0.0, 0.0, 0.0, 900.0],
                    "z": [0.0, 10.0, 0.0, 5.0, 0.0],
                    "frame": [0, 1, 1, 3, 3], "photons": [100.0, 300.0, 50.0, 100.0, 10.0],
                    "precision_xy": [10.0, 10.0, 10.0, 10.0, 10.0],
                    "precision_z": [20.0, 20.0, 20.0, 20.0, 20.0],
                    "extra": [1.0, 2.0, 3.0, 4.0, 5.0]}, units={"extra": "au"})
    m = merge_blinks(t, radius_nm=20.0, max_gap_frames=1)
    assert m.num_rows == 3
    assert m.column("n_merged").to_pylist() == [3, 1, 1]
    assert m.column("x").to_pylist()[0] == pytest.approx(1.4)
    assert m.column("z").to_pylist()[0] == pytest.approx((0 + 3000 + 500) / 500)
    assert m.column("photons").to_pylist()[0] == 500.0
    assert m.column("precision_xy").to_pylist()[0] == pytest.approx(10 / np.sqrt(3))
    assert m.column("first_frame").to_pylist() == [0, 1, 3]
    assert m.column("last_frame").to_pylist() == [3, 1, 3]
    assert m.column("frame").to_pylist() == [0, 1, 3]
    assert m.column("extra").to_pylist()[0] == pytest.approx(7 / 3)
    assert m.schema.field("extra").metadata[b"unit"] == b"au"
    assert history(m)[-1]["step"] == "merge.blinks"
    # a gap of one dark frame (frame 2) splits when no gap is allowed
    m0 = merge_blinks(t, radius_nm=20.0, max_gap_frames=0)
    assert m0.column("n_merged").to_pylist() == [2, 1, 1, 1]


def test_axial_radius_splits_in_3d():
    t = make_table({"x": [0.0, 0.0], "y": [0.0, 0.0], "z": [0.0, 200.0], "frame": [0, 1]})
    assert merge_blinks(t, radius_nm=20.0, radius_z_nm=50.0).num_rows == 2
    assert merge_blinks(t, radius_nm=20.0, radius_z_nm=300.0).num_rows == 1


def test_adaptive_test_follows_each_precision():
    # 60 nm apart: linked when the second localization is imprecise (s = 30 nm),
    # split when both are precise (s = 5 nm)
    base = {"x": [0.0, 60.0], "y": [0.0, 0.0], "frame": [0, 1]}
    loose = make_table({**base, "precision_xy": [5.0, 30.0]})
    tight = make_table({**base, "precision_xy": [5.0, 5.0]})
    assert merge_blinks(loose).num_rows == 1
    assert merge_blinks(tight).num_rows == 2


def test_one_localization_per_frame_per_burst():
    # two emitters 5 nm apart in the same frames stay two bursts
    t = make_table({"x": [0.0, 5.0, 0.0, 5.0], "y": [0.0] * 4, "frame": [0, 0, 1, 1]})
    m = merge_blinks(t, radius_nm=20.0)
    assert m.column("n_merged").to_pylist() == [2, 2]


def test_defaults_and_errors():
    t = make_table({"x": [0.0, 1.0], "y": [0.0, 0.0], "frame": [0, 1],
                    "precision_xy": [8.0, 12.0]})
    d = default_merge_parameters(t)
    assert d["n_sigma"] == 3.5 and d["max_gap_frames"] == 1
    assert d["typical_radius_nm"] == pytest.approx(3.5 * np.sqrt(2) * 10.0)
    assert merge_blinks(t).num_rows == 1
    no_prec = make_table({"x": [0.0], "y": [0.0], "frame": [0]})
    with pytest.raises(ParameterError, match="radius_nm"):
        merge_blinks(no_prec)
    with pytest.raises(ParameterError, match="max_gap_frames"):
        merge_blinks(t, radius_nm=5.0, max_gap_frames=-1)
    with pytest.raises(ParameterError, match="radius_nm must be a positive"):
        merge_blinks(t, radius_nm=0.0)
    with pytest.raises(SchemaError, match="'frame' column"):
        merge_blinks(make_table({"x": [0.0], "y": [0.0]}), radius_nm=5.0)


def test_input_not_mutated_and_empty():
    t = make_table({"x": [0.0, 1.0], "y": [0.0, 0.0], "frame": [0, 1]})
    before = t.to_pydict()
    merge_blinks(t, radius_nm=5.0)
    assert t.to_pydict() == before
    empty = t.slice(0, 0)
    assert merge_blinks(empty, radius_nm=5.0).num_rows == 0


def test_minflux_traces_go_to_average_traces():
    t = make_table({"x": [0.0, 2.0, 100.0], "y": [0.0, 0.0, 0.0], "time_s": [0.0, 0.1, 0.2],
                    "track_id": [1, 1, 2]})
    m = merge_blinks(t)
    assert m.num_rows == 2
    assert history(m)[-1]["step"] == "minflux.average_traces"


def _minflux_table():
    return make_table({"x": [0.0, 2.0, 100.0, 104.0], "y": [0.0, 0.0, 0.0, 2.0],
                       "time_s": [0.0, 0.1, 0.2, 0.3], "track_id": [1, 1, 2, 2]})


@pytest.mark.parametrize("option", [{"radius_nm": 5.0}, {"max_gap_frames": 0},
                                    {"radius_z_nm": 30.0}, {"n_sigma": 2.0},
                                    {"radius_nm": 5.0, "max_gap_frames": 3}])
def test_minflux_linking_options_warn_and_change_nothing(option):
    import warnings

    from smlmspine.errors import QualityWarning

    t = _minflux_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # defaults: no warning at all
        plain = merge_blinks(t)
    with pytest.warns(QualityWarning, match="MINFLUX") as record:
        given = merge_blinks(t, **option)
    message = str(record[0].message)
    for name, value in option.items():
        assert f"{name}={value!r}" in message
    for name in {"radius_nm", "max_gap_frames", "radius_z_nm", "n_sigma"} - set(option):
        assert name not in message
    assert "average" in message and "track_id" in message
    assert given.to_pydict() == plain.to_pydict()
    assert plain.column("x").to_pylist() == [1.0, 102.0]
    assert [h["step"] for h in history(given)] == [h["step"] for h in history(plain)]


def test_minflux_default_n_sigma_given_explicitly_does_not_warn():
    import warnings

    from smlmspine.merge import DEFAULT_N_SIGMA

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert merge_blinks(_minflux_table(), n_sigma=DEFAULT_N_SIGMA).num_rows == 2


def test_merge_cli_says_once_which_options_minflux_ignores(tmp_path, capsys):
    """`smlmspine merge --radius-nm` on a MINFLUX table: one warning line naming the
    option as typed, and the traces are averaged all the same."""
    from smlmspine.cli import main

    inp = tmp_path / "mf.parquet"
    assert main(["simulate", "minflux", str(inp), "--seed", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "merged.parquet"
    assert main(["merge", str(inp), "-o", str(out), "--radius-nm", "5"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("smlmspine merge: warning:")
    assert "--radius-nm 5.0 ignored" in err[0] and "MINFLUX" in err[0]
    assert out.exists()
