"""spine_grids: canonical frames on the simulator's truth, mask volumes, files."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import trimesh

from smlmspine.errors import ParameterError
from smlmspine.voxel._grids import (SPINE_GRID_COLUMNS, canonical_frame, read_spine_grids,
                                    spine_grids, write_spine_grids)


@pytest.fixture(scope="module")
def sim():
    from smlmspine.simulate import Acquisition, Geometry, Labeling, dendrite

    return dendrite(geometry=Geometry(n_spines=4, shaft_length_nm=4000),
                    labeling=Labeling(label="volume"),
                    acquisition=Acquisition(background_rate_per_frame=0.0), rng=1)


@pytest.fixture(scope="module")
def grids(sim):
    return spine_grids(sim.spine_meshes, spines=sim.spines, size=32, points=512,
                       channels=("mask", "sdf", "density"), table=sim.localizations)


def _canonical(mesh, affine):
    return np.asarray(mesh.vertices) @ affine[:3, :3].T + affine[:3, 3]


def test_canonical_frame_base_at_origin_head_on_plus_z(sim, grids):
    truth = sim.spines.to_pydict()
    for row, k in enumerate(grids.spine_ids):
        i = truth["spine_id"].index(int(k))
        A = grids.affines[row]
        base = np.array([truth[f"base_{a}_nm"][i] for a in "xyz"])
        assert np.allclose(A[:3, :3] @ base + A[:3, 3], 0, atol=1e-6)
        assert np.allclose(A[:3, :3] @ A[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(A[:3, :3]) == pytest.approx(1.0)
        v = _canonical(sim.spine_meshes[int(k)], A)
        # the truth mesh is cut at the base plane: nothing below z = 0; the tip at length
        assert v[:, 2].min() == pytest.approx(0.0, abs=1e-6)
        assert v[:, 2].max() == pytest.approx(truth["length_nm"][i], rel=1e-6)
        # the head (the distal half's surface) is on +z, centred on the axis
        c = sim.spine_meshes[int(k)].center_mass @ A[:3, :3].T + A[:3, 3]
        assert c[2] > 0.2 * truth["length_nm"][i]
        assert np.hypot(c[0], c[1]) < 0.1 * truth["length_nm"][i]


def test_estimated_frames_match_the_truth(sim):
    g = spine_grids(sim.spine_meshes, size=16, points=16)        # no spines table
    truth = sim.spines.to_pydict()
    for row, k in enumerate(g.spine_ids):
        i = truth["spine_id"].index(int(k))
        axis = np.array([truth[f"axis_{a}"][i] for a in "xyz"])
        est = g.affines[row][2, :3]
        assert g.index.column("frame_source")[row].as_py() == "cap"
        assert np.degrees(np.arccos(np.clip(est @ axis, -1, 1))) < 3.0
        # the estimated base lies in the true base plane, near the true base point
        base = np.array([truth[f"base_{a}_nm"][i] for a in "xyz"])
        est_base = np.array([g.index.column(f"base_{a}_nm")[row].as_py() for a in "xyz"])
        assert abs((est_base - base) @ axis) < 2.0
        assert np.linalg.norm(est_base - base) < 60.0


def test_mask_volume_matches_mesh_volume(sim, grids):
    for row, k in enumerate(grids.spine_ids):
        mesh = sim.spine_meshes[int(k)]
        h = grids.index.column("pitch_nm")[row].as_py()
        v_mask = float(grids.grids[row, 0].sum()) * h ** 3
        assert abs(v_mask - mesh.volume) <= mesh.area * h
        assert grids.index.column("mask_volume_nm3")[row].as_py() == pytest.approx(v_mask)
        assert not grids.index.column("cropped")[row].as_py()       # fitted pitch: all in


def test_sdf_and_density_channels(sim, grids):
    row = 1
    A = grids.affines[row]
    mesh = sim.spine_meshes[int(grids.spine_ids[row])].copy()
    mesh.apply_transform(A)
    c = grids.grid_centres(row).reshape(-1, 3)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(c), 400, replace=False)
    _, dist, _ = trimesh.proximity.closest_point(mesh, c[pick])
    sdf = grids.grids[row, 1].reshape(-1)[pick]
    mask = grids.grids[row, 0].reshape(-1)[pick]
    h = grids.index.column("pitch_nm")[row].as_py()
    assert np.all(np.abs(np.abs(sdf) - dist) < 0.15 * h)
    assert np.array_equal(sdf < 0, mask > 0)
    # density: every localization of the spine's grid counted once
    dens = grids.grids[:, 2].sum(axis=(1, 2, 3))
    assert np.array_equal(dens.astype(int), grids.index.column("n_localizations").to_numpy())
    sid = sim.truth.column("spine_id").to_numpy()
    assert dens[row] >= 0.9 * np.sum(sid == grids.spine_ids[row])


def test_point_cloud_on_surface_with_outward_normals(sim, grids):
    row = 0
    mesh = sim.spine_meshes[int(grids.spine_ids[row])].copy()
    mesh.apply_transform(grids.affines[row])
    p = grids.points[row].astype(float)
    assert p.shape == (512, 3)
    _, dist, _ = trimesh.proximity.closest_point(mesh, p)
    assert dist.max() < 0.01
    n = grids.normals[row].astype(float)
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    # outward: a step along the normal leaves the solid
    from smlmspine._raycast import ray_scene

    occ = ray_scene(mesh.vertices, mesh.faces).compute_occupancy(
        (p + 2.0 * n).astype(np.float32)).numpy()
    assert np.mean(occ) < 0.02
    assert np.mean(ray_scene(mesh.vertices, mesh.faces).compute_occupancy(
        (p - 2.0 * n).astype(np.float32)).numpy()) > 0.9


def test_fixed_pitch_crops_and_flags(sim):
    g = spine_grids(sim.spine_meshes, spines=sim.spines, size=16, voxel_nm=10.0, points=256)
    assert g.index.column("cropped").to_pylist() == [True] * 4
    assert all(f > 0 for f in g.index.column("outside_fraction").to_pylist())
    assert set(g.index.column("pitch_nm").to_pylist()) == {10.0}


def test_cone_frame_from_cap_and_pitch_fit():
    cone = trimesh.creation.cone(radius=100.0, height=400.0, sections=64)  # base cap at z=0
    R = trimesh.transformations.rotation_matrix(0.7, [1, 1, 0])
    cone.apply_transform(R)
    cone.apply_translation([1000.0, -500.0, 30.0])
    g = spine_grids({5: cone}, size=32, points=64)
    A = g.affines[0]
    v = _canonical(cone, A)
    assert g.index.column("frame_source")[0].as_py() == "cap"
    assert np.allclose(A[2, :3], R[:3, 2], atol=1e-9)               # the apex direction
    assert v[:, 2].min() == pytest.approx(0, abs=1e-6)
    assert v[:, 2].max() == pytest.approx(400, abs=1e-6)
    h = g.index.column("pitch_nm")[0].as_py()
    m = g.index.column("base_layer")[0].as_py()
    assert 400 <= (32 - m - 0.5) * h <= 400 * 1.001          # the length fits exactly
    mask_vol = float(g.grids[0, 0].sum()) * h ** 3
    v_true = np.pi * 100.0 ** 2 * 400.0 / 3
    assert abs(mask_vol - v_true) <= cone.area * h


def test_write_read_npz_and_zarr(tmp_path, grids):
    for fmt in ("npz", "zarr"):
        out = write_spine_grids(grids, tmp_path / fmt, format=fmt)
        assert out.name == f"spine_grids.{fmt}"
        back = read_spine_grids(out)
        assert np.array_equal(back["grids"], grids.grids)
        assert np.array_equal(back["points"], grids.points)
        assert np.array_equal(back["affines"], grids.affines)
        assert np.array_equal(back["spine_ids"], grids.spine_ids)
        assert back["channels"] == ("mask", "sdf", "density")
        index = pq.read_table(tmp_path / fmt / "spine_grids.parquet")
        assert index.column_names == list(SPINE_GRID_COLUMNS)
        assert index.equals(grids.index)
    import zarr

    arr = zarr.open_group(str(tmp_path / "zarr" / "spine_grids.zarr"), mode="r")["grids"]
    assert arr.chunks == (1, 3, 32, 32, 32)


def test_refusals(sim):
    meshes = {0: sim.spine_meshes[0]}
    with pytest.raises(ParameterError, match="density channel needs table"):
        spine_grids(meshes, channels=("density",))
    with pytest.raises(ParameterError, match="channels must be"):
        spine_grids(meshes, channels=("mask", "colour"))
    with pytest.raises(ParameterError, match="size"):
        spine_grids(meshes, size=2)
    with pytest.raises(ParameterError, match="memory budget"):
        spine_grids(meshes, size=512, channels=("mask", "sdf"))
    with pytest.raises(ParameterError, match="non-zero axis"):
        canonical_frame(sim.spine_meshes[0], base_nm=[0, 0, 0], axis=[0, 0, 0])


def test_pca_frame_from_the_narrow_end():
    # a mushroom-like solid without a flat cap: thin end (neck) to wide end (head)
    cone = trimesh.creation.cone(radius=150.0, height=600.0, sections=48)
    base = cone.vertices[:, 2] < 1e-9
    rng = np.random.default_rng(3)
    cone.vertices[base, 2] -= rng.uniform(5.0, 30.0, base.sum())    # no planar facet left
    g = spine_grids({1: cone}, size=16, points=32)
    assert g.index.column("frame_source")[0].as_py() == "pca"
    axis = g.affines[0][2, :3]
    assert axis @ [0, 0, -1.0] > 0.99          # from the apex (narrow) to the wide end
    v = _canonical(cone, g.affines[0])
    assert v[:, 2].min() == pytest.approx(0.0, abs=1e-6)


def test_density_from_a_minflux_table():
    from smlmspine.simulate import MinfluxSample, minflux_traces

    cone = trimesh.creation.cone(radius=100.0, height=400.0, sections=32)
    mf = minflux_traces(sample=MinfluxSample(n_emitters=300, region_nm=(600.0, 600.0, 600.0)),
                        ndim=3, rng=4)
    shift = np.array([1300.0, 1300.0, 100.0])        # region: x, y from 1 um, z from 0
    cone.apply_translation(shift)
    g = spine_grids({0: cone}, size=16, points=8, channels=("density",), table=mf.localizations)
    xyz = np.c_[[mf.localizations.column(a).to_numpy() for a in "xyz"]].T - shift
    h = g.index.column("pitch_nm")[0].as_py()
    m = g.index.column("base_layer")[0].as_py()
    # the cone's frame is the data frame shifted (axis +z): count the box directly
    assert np.allclose(g.affines[0][2, :3], [0, 0, 1])
    q = xyz @ g.affines[0][:3, :3].T
    inside = (np.all(np.abs(q[:, :2]) < 8 * h, axis=1) & (q[:, 2] >= -m * h)
              & (q[:, 2] < (16 - m) * h))
    assert g.grids[0, 0].sum() == inside.sum() == g.index.column("n_localizations")[0].as_py()
    assert inside.sum() > 0
