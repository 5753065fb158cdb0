import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import main
from smlmspine.testing import analytic_spine


def _write_meshes(folder, scale=1.0):
    folder.mkdir()
    shapes = {"spine_1": (100.0, 700.0, 350.0), "spine_2": (50.0, 600.0, 140.0),
              "spine_3": (250.0, 300.0, 250.0)}
    for name, (r, L, R) in shapes.items():
        m = analytic_spine(r, L, R, sections=64)
        m.apply_scale(scale)
        m.export(folder / f"{name}.ply")
    return shapes


def test_measure_cli_writes_features_profiles_and_plots(tmp_path, capsys):
    _write_meshes(tmp_path / "meshes")
    out = tmp_path / "features.parquet"
    rc = main(["measure", str(tmp_path / "meshes"), "-o", str(out), "--units", "nm", "--base", "0,0,0",
               "--profiles", str(tmp_path / "prof"), "--plots", str(tmp_path / "plots")])
    assert rc == 0
    t = pq.read_table(out)
    assert t.num_rows == 3
    assert t.column("spine_id").to_pylist() == [1, 2, 3]
    assert t.column("spine_class").to_pylist() == ["mushroom", "thin", "stubby"]
    assert t.column("neck_min_diameter_nm").to_pylist()[0] == pytest.approx(200.0, rel=0.02)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "spine_1_profile.png", "spine_2_profile.png", "spine_3_profile.png"]
    prof = pq.read_table(tmp_path / "prof" / "spine_1_profile.parquet")
    assert prof.num_rows > 20


def test_measure_cli_units_um_are_converted(tmp_path):
    _write_meshes(tmp_path / "meshes", scale=1e-3)
    out = tmp_path / "f.csv"
    assert main(["measure", str(tmp_path / "meshes" / "spine_1.ply"), "-o", str(out), "--units", "um",
                 "--base", "0,0,0"]) == 0
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(out)
    assert t.column("head_diameter_nm")[0].as_py() == pytest.approx(700.0, rel=0.02)


def test_measure_cli_refuses_unknown_units(tmp_path, capsys):
    _write_meshes(tmp_path / "meshes")
    rc = main(["measure", str(tmp_path / "meshes"), "-o", str(tmp_path / "f.parquet")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "units" in err and "Traceback" not in err
    assert not (tmp_path / "f.parquet").exists()


def test_measure_cli_bad_mesh_file(tmp_path, capsys):
    bad = tmp_path / "spine_9.ply"
    bad.write_bytes(b"ply\nformat garbage\n\x00\x01")
    rc = main(["measure", str(bad), "-o", str(tmp_path / "f.parquet"), "--units", "nm"])
    assert rc == 2
    assert "spine_9.ply" in capsys.readouterr().err


def test_train_and_classify_cli(tmp_path, capsys):
    rng = np.random.default_rng(3)
    rows = []
    for cls, (neck, head, length) in {"thin": (80, 250, 1200), "mushroom": (200, 700, 1200),
                                      "stubby": (450, 480, 500)}.items():
        for _ in range(12):
            n, h, L = (v * rng.uniform(0.85, 1.15) for v in (neck, head, length))
            rows.append({"spine_id": len(rows), "length_nm": L, "neck_min_diameter_nm": n,
                         "neck_mean_diameter_nm": n * 1.05, "neck_length_nm": L * 0.5,
                         "head_diameter_nm": h, "head_volume_um3": (h / 1000) ** 3 * 0.5,
                         "volume_um3": (h / 1000) ** 3 * 0.6, "surface_area_um2": (h / 1000) ** 2 * 3,
                         "convex_hull_ratio": 0.8, "head_neck_ratio": h / n, "open_angle_deg": 3.0,
                         "cvd": 0.2, "n_tips": 1, "label": cls})
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.drop_columns(["label"]), tmp_path / "features.parquet")
    pq.write_table(table.select(["spine_id", "label"]), tmp_path / "labels.parquet")
    import pyarrow.csv as pacsv

    pacsv.write_csv(table.select(["spine_id", "label"]), tmp_path / "labels.csv")
    assert main(["train", str(tmp_path / "features.parquet"), "--labels", str(tmp_path / "labels.csv"),
                 "-o", str(tmp_path / "model.pkl")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy_mean"] >= 0.9
    assert sum(map(sum, report["confusion_matrix"])) == 36
    assert main(["classify", str(tmp_path / "features.parquet"), "--model", str(tmp_path / "model.pkl"),
                 "-o", str(tmp_path / "classes.parquet")]) == 0
    pred = pq.read_table(tmp_path / "classes.parquet").column("spine_class").to_pylist()
    assert np.mean(np.array(pred) == np.array(table.column("label").to_pylist())) >= 0.95
    # Rules without a model.
    assert main(["classify", str(tmp_path / "features.parquet"), "-o", str(tmp_path / "rules.parquet")]) == 0
    rules = pq.read_table(tmp_path / "rules.parquet").column("spine_class").to_pylist()
    truth = table.column("label").to_pylist()
    assert np.mean(np.array(rules) == np.array(truth)) >= 0.85


def test_train_cli_needs_labels_for_every_spine(tmp_path, capsys):
    pq.write_table(pa.table({"spine_id": [1, 2], "length_nm": [1.0, 2.0]}), tmp_path / "f.parquet")
    (tmp_path / "l.csv").write_text("spine_id,label\n1,thin\n")
    rc = main(["train", str(tmp_path / "f.parquet"), "--labels", str(tmp_path / "l.csv"), "-o",
               str(tmp_path / "m.pkl")])
    assert rc == 2
    assert "no label" in capsys.readouterr().err
