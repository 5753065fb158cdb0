"""`smlmspine run`: the composed pipeline on a small simulated dendrite, against its truth."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import main
from smlmspine.io import write
from smlmspine.pipeline import run
from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, dendrite


@pytest.fixture(scope="module")
def small_dendrite():
    # Two mushroom spines on an 8 um shaft (spines a minority of the points, as in real data).
    spines = [{"spine_class": "mushroom", "neck_diameter_nm": 200.0, "neck_length_nm": 500.0,
               "head_diameter_nm": 800.0, "head_length_nm": 800.0, "position_nm": 2000.0},
              {"spine_class": "mushroom", "neck_diameter_nm": 180.0, "neck_length_nm": 600.0,
               "head_diameter_nm": 700.0, "head_length_nm": 700.0, "position_nm": 5500.0}]
    return dendrite(geometry=Geometry(spines=spines, shaft_length_nm=8000.0),
                    acquisition=Acquisition(n_frames=6000), drift=SimulatedDrift(drift_nm=120.0), rng=5)


def test_run_recovers_spines_and_writes_everything(small_dendrite, tmp_path):
    sim = small_dendrite
    res = run(sim.localizations, tmp_path / "out", quiet=True)
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert {"run.json", "spines.parquet", "localizations.parquet", "dendrite.ply", "drift.csv",
            "drift.png"} <= names
    assert res.spines.num_rows == 2
    assert {f"spine_{k}.ply" for k in res.spines.column("spine_id").to_pylist()} <= names
    assert all(res.spines.column("is_watertight").to_pylist())
    summary = json.loads((out / "run.json").read_text())
    assert summary["parameters"]["drift"] == "aim" and summary["n_spines"] == 2
    assert summary["stages"]["merge"]["n_after"] < summary["stages"]["merge"]["n_before"]
    # every stage says how long it took and the peak memory so far (a running maximum)
    peaks = [summary["stages"][k]["peak_rss_mb"] for k in ("read", "drift", "merge", "mesh",
                                                           "morphology")]
    assert peaks[0] > 50 and peaks == sorted(peaks)
    assert all(summary["stages"][k]["seconds"] >= 0 for k in ("drift", "merge", "mesh",
                                                             "morphology", "write", "overview"))
    assert summary["stages"]["read"]["seconds"] is None     # a table, not read here
    assert summary["stages"]["mesh"]["parameters"]["profile"]["steps"]["spine"]["calls"] == 2
    # Against the truth: heads within 10 %, point-based neck fits within 15 %.
    truth = sim.spines.to_pydict()
    tb = np.c_[truth["base_x_nm"], truth["base_y_nm"], truth["base_z_nm"]]
    found = res.spines.to_pydict()
    for i in range(2):
        fb = np.array([found["base_x_nm"][i], found["base_y_nm"][i], found["base_z_nm"][i]])
        j = int(np.argmin(np.linalg.norm(tb - fb, axis=1)))
        assert np.linalg.norm(tb[j] - fb) < 300
        assert found["head_diameter_nm"][i] == pytest.approx(truth["head_diameter_nm"][j], rel=0.10)
        assert found["neck_fit_diameter_nm"][i] == pytest.approx(truth["neck_min_diameter_nm"][j], rel=0.15)
        assert found["spine_class"][i] == "mushroom"
    # The written table is the documented one, and localizations carry spine_id.
    written = pq.read_table(out / "spines.parquet")
    assert written.column_names == res.spines.column_names
    loc = pq.read_table(out / "localizations.parquet")
    assert set(loc.column("spine_id").to_pylist()) >= set(found["spine_id"])


def test_run_cli_in_process(small_dendrite, tmp_path, capsys):
    src = write(small_dendrite.localizations, tmp_path / "sim.parquet")
    assert main(["run", str(src), "-o", str(tmp_path / "o"), "--quiet", "--drift", "none"]) == 0
    out = capsys.readouterr().out
    assert "2 spines" in out
    stages = json.loads((tmp_path / "o" / "run.json").read_text())["stages"]
    assert stages["drift"]["skipped"]
    # the command line reads the file itself: its reading is timed all the same
    assert stages["read"]["seconds"] > 0 and stages["write"]["seconds"] > 0


def test_run_refuses_2d_input_and_bad_options(small_dendrite, tmp_path, capsys):
    two_d = small_dendrite.localizations.drop_columns(["z"])
    src = write(two_d, tmp_path / "flat.parquet")
    assert main(["run", str(src), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "3D" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(Exception, match="drift"):
        run(small_dendrite.localizations, tmp_path / "x", drift="magic")


def test_mesh_cli_adds_morphology_features(small_dendrite, tmp_path):
    from smlmspine.envelope import SPINE_MESH_COLUMNS
    from smlmspine.morphology import SPINE_MESH_FEATURE_COLUMNS

    src = write(small_dendrite.localizations, tmp_path / "sim.parquet")
    assert main(["mesh", str(src), "-o", str(tmp_path / "m"), "--no-progress", "--no-dendrite"]) == 0
    t = pq.read_table(tmp_path / "m" / "spines.parquet")
    assert t.column_names == list(SPINE_MESH_FEATURE_COLUMNS)
    assert t.num_rows >= 2 and set(t.column("spine_class").to_pylist()) >= {"mushroom"}
    assert main(["mesh", str(src), "-o", str(tmp_path / "n"), "--no-progress", "--no-dendrite",
                 "--no-features"]) == 0
    assert pq.read_table(tmp_path / "n" / "spines.parquet").column_names == list(SPINE_MESH_COLUMNS)


def test_run_cli_creates_missing_parent_folders_and_removes_them_on_failure(
        small_dendrite, tmp_path, capsys):
    """The README's main job writes `-o out/sample` in a fresh clone, where `out/` does
    not exist: the folders are created; a run that fails removes what it created."""
    src = write(small_dendrite.localizations, tmp_path / "sim.parquet")
    out = tmp_path / "out" / "sample"
    assert main(["run", str(src), "-o", str(out), "--quiet", "--drift", "none"]) == 0
    assert (out / "run.json").exists()
    flat = write(small_dendrite.localizations.drop_columns(["z"]), tmp_path / "flat.parquet")
    capsys.readouterr()
    assert main(["run", str(flat), "-o", str(tmp_path / "new" / "deeper" / "o")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_drift_plot_is_drawn_by_a_helper_inside_helpers(small_dendrite, tmp_path, monkeypatch):
    """Inside smlmspine._background.helpers (the CLI's run) drift.png is drawn by an idle
    helper while the spines are meshed; it is the image the run draws itself."""
    from smlmspine import _background
    from smlmspine.drift import DriftModel, correct
    from smlmspine.drift._plot import render_model

    def not_here(self, *args, **kwargs):
        raise AssertionError("drift.png drawn in the calling process")

    monkeypatch.setattr(DriftModel, "plot", not_here)
    monkeypatch.setattr(_background, "WAIT_S", 600.0)   # idle-class: wait, even if busy
    with _background.helpers(2) as on:
        assert on
        run(small_dendrite.localizations, tmp_path / "o", quiet=True, workers=2)
    model = correct(small_dendrite.localizations, method="aim").model
    assert (tmp_path / "o" / "drift.png").read_bytes() == render_model(model)
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]
