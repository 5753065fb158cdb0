"""Spine isolation against the simulator's truth; the mesh pipeline and `smlmspine mesh`."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from smlmspine.envelope import isolate_spines, mesh_spines, write_meshes
from smlmspine.errors import ParameterError, SchemaError
from smlmspine.schema import make_table


def _scores(pred, truth, min_size=200):
    """Detection recall (truth spines >= min_size), precision, per-localization F1."""
    nt = int(truth.max()) + 1
    sizes = np.bincount(truth[truth >= 0], minlength=nt)
    matched, tp = set(), 0
    n_pred = int(pred.max()) + 1 if (pred >= 0).any() else 0
    for k in range(n_pred):
        t = truth[pred == k]
        t = t[t >= 0]
        if t.size == 0:
            continue
        best = int(np.bincount(t).argmax())
        ov = int((t == best).sum())
        if ov > 0.5 * (pred == k).sum() and best not in matched:
            matched.add(best)
            tp += ov
    big = set(np.flatnonzero(sizes >= min_size).tolist())
    recall = len(big & matched) / max(len(big), 1)
    precision = len(matched) / max(n_pred, 1)
    fp = int((pred >= 0).sum()) - tp
    fn = int((truth >= 0).sum()) - tp
    return recall, precision, 2 * tp / (2 * tp + fp + fn)


@pytest.fixture(scope="module")
def membrane_dendrite():
    from smlmspine import simulate

    return simulate.dendrite(geometry=simulate.Geometry(n_spines=8, shaft_length_nm=7000), rng=11,
                             drift=simulate.SimulatedDrift(drift_nm=0),
                             labeling=simulate.Labeling(label="membrane"),
                             acquisition=simulate.Acquisition(n_frames=5000))


def test_isolation_membrane_simulated(membrane_dendrite):
    sim = membrane_dendrite
    res = isolate_spines(sim.localizations, label="membrane")
    pred = res.table.column("spine_id").to_numpy()
    truth = sim.truth.column("spine_id").to_numpy()
    recall, precision, f1 = _scores(pred, truth)
    assert recall >= 0.9 and precision >= 0.9 and f1 >= 0.9, (recall, precision, f1)
    assert np.median(res.centreline.radius_nm) == pytest.approx(400.0, rel=0.05)
    axes = np.c_[[res.spines.column(f"axis_{c}").to_numpy() for c in "xyz"]].T
    assert np.allclose(np.linalg.norm(axes, axis=1), 1.0)


@pytest.mark.slow
def test_isolation_volume_simulated():
    from smlmspine import simulate

    sim = simulate.dendrite(geometry=simulate.Geometry(n_spines=20, shaft_length_nm=15000,
                                                       curvature_per_um=0.05),
                            rng=2, drift=simulate.SimulatedDrift(drift_nm=0),
                            labeling=simulate.Labeling(label="volume"))
    res = isolate_spines(sim.localizations, label="volume")
    recall, precision, f1 = _scores(res.table.column("spine_id").to_numpy(),
                                    sim.truth.column("spine_id").to_numpy())
    assert recall >= 0.9 and precision >= 0.9 and f1 >= 0.9, (recall, precision, f1)


def test_given_labels_and_errors(membrane_dendrite):
    sim = membrane_dendrite
    t = sim.localizations.append_column("truth_spine", sim.truth.column("spine_id"))
    res = isolate_spines(t, spine_labels="truth_spine")
    truth_ids = sorted(set(sim.truth.column("spine_id").to_numpy().tolist()) - {-1})
    assert res.spines.column("spine_id").to_pylist() == truth_ids
    base = np.c_[[res.spines.column(f"base_{c}_nm").to_numpy() for c in "xyz"]].T
    tb = np.c_[[sim.spines.column(f"base_{c}_nm").to_numpy() for c in "xyz"]].T
    assert np.median(np.linalg.norm(base - tb, axis=1)) < 60.0
    with pytest.raises(SchemaError, match="no column"):
        isolate_spines(t, spine_labels="nope")
    with pytest.raises(ParameterError, match="label"):
        isolate_spines(t, label="surface")
    with pytest.raises(SchemaError, match="'z'"):
        isolate_spines(make_table({"x": [0.0] * 200, "y": [0.0] * 200}))


def _toy_table():
    rng = np.random.default_rng(0)
    th, x = rng.uniform(0, 2 * np.pi, 20000), rng.uniform(0, 6000, 20000)
    shaft = np.c_[x, 400 * np.cos(th), 400 * np.sin(th)]
    u = rng.normal(size=(2500, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    head = u * 200 + [3000, 0, 1000]
    t = rng.uniform(0, 2 * np.pi, 800)
    z = rng.uniform(400, 820, 800)
    neck = np.c_[3000 + 60 * np.cos(t), 60 * np.sin(t), z]
    p = np.r_[shaft, head, neck] + rng.normal(0, 8, (23300, 3))
    return make_table({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2],
                       "precision_xy": np.full(len(p), 8.0), "precision_z": np.full(len(p), 8.0)})


def test_cli_mesh_writes_files(tmp_path):
    from smlmspine.cli import main
    from smlmspine.io import write

    src = write(_toy_table(), tmp_path / "toy.parquet")
    out = tmp_path / "meshes"
    rc = main(["mesh", str(src), "-o", str(out), "--no-progress", "--mesh-format", "ply"])
    assert rc == 0
    tbl = pq.read_table(out / "spines.parquet")
    assert tbl.num_rows == 1
    assert tbl.column("is_watertight").to_pylist() == [True]
    head = (out / "spine_0.ply").read_bytes().split(b"end_header")[0]
    assert b"comment smlmspine spine_id=0 units=nm" in head
    assert (out / "dendrite.ply").exists()
    import trimesh

    m = trimesh.load(out / "spine_0.ply")
    assert m.is_watertight
    # head sphere r = 200 nm plus a neck: the volume is close to the head's
    assert 0.9 < m.volume / (4 / 3 * np.pi * 200.0 ** 3) < 1.35
    assert main(["mesh", str(src), "-o", str(out), "--alpha-nm", "abc"]) == 2


def test_write_formats(tmp_path):
    res = mesh_spines(_toy_table(), dendrite=False)
    for fmt in ("obj", "stl", "glb"):
        tbl = write_meshes(res, tmp_path / fmt, file_format=fmt)
        assert (tmp_path / fmt / f"spine_0.{fmt}").exists()
        assert tbl.column("mesh_file").to_pylist() == [f"spine_0.{fmt}"]
    assert (tmp_path / "obj" / "spine_0.obj").read_text().startswith("# smlmspine spine_id=0")
    with pytest.raises(ParameterError, match="file_format"):
        write_meshes(res, tmp_path / "x", file_format="vtk")


@pytest.mark.slow
def test_spine_meshes_simulated_membrane(membrane_dendrite):
    """Every spine mesh closed; volumes vs the simulator's true spine meshes."""
    sim = membrane_dendrite
    res = mesh_spines(sim.localizations, label="membrane", dendrite=False)
    assert all(res.spines.column("is_watertight").to_pylist())
    tb = np.c_[[sim.spines.column(f"base_{c}_nm").to_numpy() for c in "xyz"]].T
    sp = res.spines.to_pydict()
    ratios = []
    for i in range(res.spines.num_rows):
        b = np.array([sp["base_x_nm"][i], sp["base_y_nm"][i], sp["base_z_nm"][i]])
        j = int(np.argmin(np.linalg.norm(tb - b, axis=1)))
        ratios.append(sp["volume_um3"][i] / (sim.spine_meshes[j].volume * 1e-9))
    assert 0.85 < np.median(ratios) < 1.15, ratios


@pytest.mark.slow  # ~80 s on the loaded 2-core machine: two full mesh runs of the dendrite
def test_spine_meshes_independent_of_worker_count(membrane_dendrite):
    sim = membrane_dendrite
    iso = isolate_spines(sim.localizations, label="membrane", workers=2)
    one = mesh_spines(sim.localizations, label="membrane", isolation=iso, dendrite=False,
                      workers=1)
    two = mesh_spines(sim.localizations, label="membrane", isolation=iso, dendrite=False,
                      workers=2)          # 8 spines: a pool of 2 processes
    assert one.spines.equals(two.spines)
    for k, env in one.envelopes.items():
        assert np.array_equal(env.mesh.vertices, two.envelopes[k].mesh.vertices)
        assert np.array_equal(env.mesh.faces, two.envelopes[k].mesh.faces)


@pytest.mark.slow  # ~80 s: two full mesh runs; the neck refit itself is tested on analytic tubes in the default suite
def test_neck_surface_switch(membrane_dendrite):
    """mesh_spines refits necks by default (said in each spine's parameters and note) and
    keeps the shell surface with neck_surface=False; the meshes stay valid either way."""
    sim = membrane_dendrite
    iso = isolate_spines(sim.localizations, label="membrane")
    on = mesh_spines(sim.localizations, label="membrane", isolation=iso, dendrite=False)
    off = mesh_spines(sim.localizations, label="membrane", isolation=iso, dendrite=False,
                      neck_surface=False)
    assert on.parameters["neck_surface"] and not off.parameters["neck_surface"]
    applied = [k for k, env in on.envelopes.items()
               if env.parameters.get("neck_surface", {}).get("applied")]
    assert applied, "no neck was refitted on a dendrite with thin and mushroom spines"
    for k in applied:
        assert "neck refitted" in on.envelopes[k].note
        assert on.envelopes[k].is_watertight
        assert "neck refitted" not in off.envelopes[k].note
    assert all("neck_surface" not in env.parameters for env in off.envelopes.values())
