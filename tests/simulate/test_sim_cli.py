"""`smlmspine simulate ...` in-process: files, truth folder, byte-identical with a seed."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import trimesh

from smlmspine.cli import main
from smlmspine.io import read

DENDRITE = ["--n-spines", "2", "--shaft-length-nm", "3000", "--n-frames", "1000",
            "--mesh-step-nm", "40", "--classes", "mushroom,thin"]


def test_dendrite_cli_writes_truth_and_is_reproducible(tmp_path, capsys):
    # the same command twice to the same path (the path is recorded in the metadata)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    for copy_to in (b, None):
        assert main(["simulate", "dendrite", str(a / "sim.parquet"), "--seed", "3", "--json",
                     "--n-fiducials", "1", *DENDRITE]) == 0
        if copy_to is not None:
            shutil.copytree(a, copy_to)
    summary = json.loads(capsys.readouterr().out.strip().split("\n}\n")[0] + "\n}")
    assert summary["n_spines"] == 2 and summary["mesh_is_watertight"]
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"sim.parquet", "localizations.parquet", "emitters.parquet", "spines.parquet",
            "drift.parquet", "mesh.ply", "spine_0.ply", "spine_1.ply", "parameters.json"} <= names
    for rel in files:  # same seed -> byte-identical files
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    locs = read(a / "sim.parquet")
    truth = pq.read_table(a / "sim.truth" / "localizations.parquet")
    assert locs.num_rows == truth.num_rows == summary["n_localizations"]
    head = (a / "sim.truth" / "spine_1.ply").read_bytes()[:300]
    assert b"comment spine_id 1" in head
    mesh = trimesh.load(a / "sim.truth" / "spine_1.ply")
    assert mesh.is_watertight
    assert trimesh.load(a / "sim.truth" / "mesh.ply").is_watertight
    # the truth meshes declare their units: measured without --units, in nm
    from smlmspine.morphology._tables import load_mesh

    for name in ("spine_1.ply", "mesh.ply"):
        m = load_mesh(a / "sim.truth" / name, units=None)
        assert np.allclose(m.vertices, trimesh.load(a / "sim.truth" / name).vertices)


def test_dendrite_cli_mesh_and_drift_table(tmp_path):
    trimesh.creation.icosphere(subdivisions=3, radius=800.0).export(tmp_path / "cell.stl")
    pq.write_table(__import__("pyarrow").table({"frame": [0, 499], "dx_nm": [0.0, 50.0],
                                                "dy_nm": [0.0, 0.0]}), tmp_path / "drift.parquet")
    out = tmp_path / "cell.parquet"
    assert main(["simulate", "dendrite", str(out), "--mesh", str(tmp_path / "cell.stl"), "--seed", "1",
                 "--n-frames", "500", "--drift-table", str(tmp_path / "drift.parquet"),
                 "--precision-nm", "20"]) == 0
    drift = pq.read_table(tmp_path / "cell.truth" / "drift.parquet")
    assert drift.column("dx_nm").to_numpy()[-1] == pytest.approx(50.0)
    assert np.median(read(out).column("precision_xy").to_numpy()) == pytest.approx(20.0, rel=0.05)


def test_dendrite_cli_user_mesh_with_spine_meshes(tmp_path):
    body = trimesh.creation.icosphere(subdivisions=4, radius=1000.0)
    bump = trimesh.creation.icosphere(subdivisions=3, radius=300.0)
    bump.apply_translation([0.0, 0.0, 1000.0])
    trimesh.util.concatenate([body, bump]).export(tmp_path / "cell.ply")
    bump.export(tmp_path / "spine_7.ply")
    out = tmp_path / "cell.parquet"
    assert main(["simulate", "dendrite", str(out), "--mesh", str(tmp_path / "cell.ply"),
                 "--spine-mesh", str(tmp_path / "spine_7.ply"), "--seed", "1", "--n-frames", "100"]) == 0
    spines = pq.read_table(tmp_path / "cell.truth" / "spines.parquet").to_pandas()
    assert spines.spine_id.tolist() == [7]
    assert spines.volume_um3[0] == pytest.approx(bump.volume * 1e-9)
    truth = pq.read_table(tmp_path / "cell.truth" / "emitters.parquet").to_pandas()
    pts = truth[truth.spine_id == 7][["x_nm", "y_nm", "z_nm"]].to_numpy()
    assert len(pts) == spines.n_emitters[0] > 0
    assert np.all(np.linalg.norm(pts - [0.0, 0.0, 1000.0], axis=1) < 306.0)
    assert (tmp_path / "cell.truth" / "spine_7.ply").exists()


@pytest.mark.parametrize("ext", [".npy", ".json", ".mat"])
def test_minflux_cli_abberior_export_reads_back(tmp_path, ext):
    out = tmp_path / f"mf{ext}"
    assert main(["simulate", "minflux", str(out), "--seed", "2", "--n-emitters", "30"]) == 0
    truth = pq.read_table(tmp_path / "mf.truth" / "localizations.parquet")
    back = read(out, format="minflux")
    from smlmspine.simulate import MinfluxSample, minflux_traces

    sim = minflux_traces(sample=MinfluxSample(n_emitters=30), rng=2)
    vld = sim.localizations.column("vld").to_numpy(zero_copy_only=False)
    assert truth.num_rows == sim.localizations.num_rows
    assert back.num_rows == int(vld.sum())  # the reader keeps valid localizations
    np.testing.assert_allclose(np.sort(back.column("x").to_numpy()),
                               np.sort(sim.localizations.column("x").to_numpy()[vld]), atol=1e-6)


def test_synapses_cli(tmp_path):
    out = tmp_path / "syn.parquet"
    assert main(["simulate", "synapses", str(out), "--seed", "1", "--n-pre", "50", "--n-post", "50",
                 "--coupled-fraction", "0.4"]) == 0
    pairs = pq.read_table(tmp_path / "syn.truth" / "pairs.parquet")
    assert pairs.num_rows == 20
    assert read(out).num_rows > 0


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert main(["simulate", "dendrite", str(tmp_path / "x.parquet"), "--mesh",
                 str(tmp_path / "missing.ply")]) == 2
    assert "missing.ply" in capsys.readouterr().err
    assert main(["simulate", "dendrite", str(tmp_path / "nodir" / "x.parquet"), "--n-spines", "0",
                 "--shaft-length-nm", "1000", "--n-frames", "10"]) == 2
    assert main(["simulate", "dendrite", str(tmp_path / "x.parquet"), "--label", "volume",
                 "--n-spines", "99", "--shaft-length-nm", "1000"]) == 2
