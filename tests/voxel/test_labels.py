"""mesh_to_labels / mesh_fraction / labels_to_points against analytic shapes and the
simulator's truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import trimesh

from smlmspine.errors import FormatError, ParameterError
from smlmspine.voxel import VoxelImage, labels_to_points, mesh_fraction, mesh_to_labels
from smlmspine.voxel._inside import _solid_angle_sum


def _centres(img):
    axes = [img.origin_nm[k] + np.arange(img.data.shape[k]) * img.voxel_nm[k] for k in range(3)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return np.c_[xx.ravel(), yy.ravel(), zz.ravel()]


@pytest.mark.parametrize("voxel", [10.0, 17.0])
def test_sphere_volume_within_one_voxel_shell(voxel):
    r = 300.0
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=r)
    img = mesh_to_labels({0: mesh}, voxel_nm=voxel)
    v_est = np.count_nonzero(img.data == 1) * voxel ** 3
    assert abs(v_est - mesh.volume) <= mesh.area * voxel
    # tighter than the shell: voxel-centre sampling of a smooth solid is unbiased
    assert v_est == pytest.approx(mesh.volume, rel=0.01)
    assert img.data.dtype == np.uint32 and set(np.unique(img.data)) == {0, 1}


def test_torus_volume_against_analytic():
    R, r, voxel = 300.0, 100.0, 10.0
    mesh = trimesh.creation.torus(major_radius=R, minor_radius=r, major_sections=128,
                                  minor_sections=64)
    img = mesh_to_labels({4: mesh}, voxel_nm=voxel)
    v_true = 2 * np.pi ** 2 * R * r ** 2
    area_true = 4 * np.pi ** 2 * R * r
    v_est = np.count_nonzero(img.data == 5) * voxel ** 3
    assert abs(v_est - v_true) <= area_true * voxel
    assert v_est == pytest.approx(mesh.volume, rel=0.01)
    # the hole is empty: the voxel at the centre is background
    c = img.index_of([[0.0, 0.0, 0.0]])[0]
    assert img.data[tuple(c)] == 0


def test_rays_through_edges_and_vertices_count_once():
    # box faces on voxel centres: rays run along its vertical edges and through corners
    box = trimesh.creation.box((190.0, 190.0, 190.0))
    img = mesh_to_labels({0: box}, voxel_nm=10.0)
    assert np.count_nonzero(img.data) == 19 ** 3
    # octahedron with vertices on rays: every centre off the surface decided as the
    # exact winding number says
    v = np.array([[105, 5, 5], [-95, 5, 5], [5, 105, 5], [5, -95, 5], [5, 5, 105],
                  [5, 5, -95]], float)
    octa = trimesh.convex.convex_hull(v)
    img = mesh_to_labels({0: octa}, voxel_nm=10.0)
    p = _centres(img)
    d = np.abs(p - 5).sum(1)
    got = (img.data == 1).ravel()
    assert np.array_equal(got[d < 100 - 1e-9], np.ones(np.sum(d < 100 - 1e-9), bool))
    assert not got[d > 100 + 1e-9].any()


def test_exact_on_lattice_vertices_against_winding_number():
    rng = np.random.default_rng(1)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=60.0)
    mesh.vertices += rng.normal(0, 2, mesh.vertices.shape)
    mesh.vertices = np.round(mesh.vertices / 5) * 5     # vertices on the rays: ties
    img = mesh_to_labels({0: mesh}, voxel_nm=5.0)
    p = _centres(img)
    p = p[np.linalg.norm(p, axis=1) < 75]               # the brute force only near the surface
    img_at = img.data.ravel()[np.linalg.norm(_centres(img), axis=1) < 75]
    w = _solid_angle_sum(mesh.vertices[mesh.faces], p) / (4 * np.pi)
    _, dist, _ = trimesh.proximity.closest_point(mesh, p)
    off = dist > 1e-9                                   # on the surface: a tie, either way
    assert np.array_equal((img_at == 1)[off], np.round(w[off]) > 0.5)
    assert np.count_nonzero(img.data) == np.count_nonzero(img_at)


def test_open_mesh_uses_winding_number():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=100.0)
    holed = trimesh.Trimesh(mesh.vertices, mesh.faces[3:], process=False)
    assert not holed.is_watertight
    img = mesh_to_labels({0: holed}, voxel_nm=10.0)
    assert img.metadata["smlmspine.labels"]["inside_test"]["0"] == "winding number"
    full = mesh_to_labels({0: mesh}, voxel_nm=10.0)
    n_full = np.count_nonzero(full.data)
    # a few missing faces change only voxels near the hole
    assert abs(np.count_nonzero(img.data) - n_full) < 0.03 * n_full
    # against the brute-force generalised winding number of the open mesh
    p = _centres(img)
    w = _solid_angle_sum(holed.vertices[holed.faces], p) / (4 * np.pi)
    clear = np.abs(w - 0.5) > 1e-6
    assert np.array_equal((img.data == 1).ravel()[clear], w[clear] > 0.5)


def test_overlap_rule_and_dendrite_label():
    dend = trimesh.creation.box((400.0, 200.0, 200.0))
    s2 = trimesh.creation.icosphere(radius=80.0)
    s2.apply_translation([100.0, 0, 0])                 # inside the dendrite box
    s7 = trimesh.creation.icosphere(radius=80.0)
    s7.apply_translation([160.0, 0, 0])                 # overlaps spine 2
    img = mesh_to_labels({2: s2, 7: s7, "dendrite": dend}, voxel_nm=10.0)
    conv = img.metadata["smlmspine.labels"]
    assert conv["dendrite_label"] == 9 and conv["offset"] == 1
    at = lambda x: int(img.data[tuple(img.index_of([[0.0, 0.0, x]])[0])])  # noqa: E731
    assert at(-150.0) == 9          # dendrite only
    assert at(60.0) == 3            # spine 2 over the dendrite
    assert at(130.0) == 8           # spines 2 and 7 overlap: the larger id wins
    assert at(230.0) == 8           # spine 7 beyond the dendrite
    assert conv["n_overlap_voxels"] > 0


def test_like_alignment_and_roi():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=150.0)
    like = VoxelImage(np.zeros((30, 40, 50), np.float32), ("z", "y", "x"), (10.0, 10.0, 10.0),
                      (-143.0, -197.0, -251.0))
    img = mesh_to_labels({0: mesh}, like=like)
    assert img.data.shape == (30, 40, 50)
    assert img.origin_nm == like.origin_nm and img.voxel_nm == like.voxel_nm
    # each labelled voxel centre is inside the sphere as the grid of `like` places it
    p = _centres(img)
    r = np.linalg.norm(p, axis=1)
    lab = (img.data == 1).ravel()
    assert lab[r < 145].all() and not lab[r > 151].any()
    with pytest.raises(ParameterError, match="differs from the voxel size"):
        mesh_to_labels({0: mesh}, like=like, voxel_nm=5.0)
    roi = mesh_to_labels({0: mesh}, voxel_nm=10.0, roi_nm=(0, 0, 200, 100, 0, 50))
    assert roi.data.shape == (5, 10, 20) and roi.origin_nm == (5.0, 5.0, 5.0)


def test_grid_from_bounds_has_edges_on_voxel_multiples():
    mesh = trimesh.creation.icosphere(radius=100.0)
    mesh.apply_translation([1234.5, 678.9, -55.5])
    img = mesh_to_labels({0: mesh}, voxel_nm=20.0)
    edges = np.asarray(img.origin_nm) - 10.0
    assert np.allclose(edges / 20.0, np.round(edges / 20.0))
    assert np.count_nonzero(img.data) > 0


def test_mesh_fraction_sums_to_volume():
    box = trimesh.creation.box((95.0, 100.0, 83.0))
    img = mesh_fraction({0: box}, voxel_nm=10.0, supersample=4)
    # sub-voxel centres (2.5 nm apart) inside the box, per axis; none on a face
    n_in = 1
    for k, a in zip((2, 1, 0), (95.0, 100.0, 83.0)):
        first = img.origin_nm[k] - 5.0 + 1.25
        c = first + 2.5 * np.arange(img.data.shape[k] * 4)
        assert not np.any(np.isclose(np.abs(c), a / 2))
        n_in *= np.count_nonzero(np.abs(c) < a / 2)
    assert float(img.data.sum(dtype=np.float64)) * 64 == pytest.approx(n_in, abs=1e-6)
    assert float(img.data.sum()) * 1000 == pytest.approx(box.volume, rel=0.04)
    assert img.data.min() >= 0 and img.data.max() <= 1
    assert ((img.data > 0) & (img.data < 1)).any()
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=200.0)
    f = mesh_fraction({0: sphere, "dendrite": sphere}, voxel_nm=20.0, supersample=5)
    assert float(f.data.sum()) * 8000 == pytest.approx(sphere.volume, rel=0.01)  # union


def test_mesh_folder(tmp_path):
    from smlmspine.envelope import export_mesh

    export_mesh(trimesh.creation.icosphere(radius=100.0), tmp_path / "spine_3.ply", spine_id=3)
    export_mesh(trimesh.creation.box((500.0, 300.0, 300.0)), tmp_path / "dendrite.ply")
    (tmp_path / "spines.parquet").write_bytes(b"")      # other files are ignored
    img = mesh_to_labels(tmp_path, voxel_nm=20.0)
    assert set(np.unique(img.data)) == {0, 4, 5}
    with pytest.raises(FormatError, match="no such mesh folder"):
        mesh_to_labels(tmp_path / "spines.parquet", voxel_nm=20.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no spine_"):
        mesh_to_labels(tmp_path / "empty", voxel_nm=20.0)


def test_refusals():
    mesh = trimesh.creation.icosphere(radius=100.0)
    with pytest.raises(ParameterError, match="voxel_nm"):
        mesh_to_labels({0: mesh})
    with pytest.raises(ParameterError, match="spine ids"):
        mesh_to_labels({-1: mesh}, voxel_nm=10.0)
    with pytest.raises(ParameterError, match="memory budget"):
        mesh_to_labels({0: mesh}, voxel_nm=0.05)
    with pytest.raises(ParameterError, match="roi_nm"):
        mesh_to_labels({0: mesh}, voxel_nm=10.0, roi_nm=(0, 0, -1, 1, 0, 1))


# -- labels_to_points -------------------------------------------------------------------
def test_labels_to_points_pixel_centre_convention_2d():
    img = VoxelImage(np.arange(1, 13, dtype=np.uint16).reshape(3, 4), ("y", "x"), (10.0, 20.0),
                     (100.0, 50.0))
    # voxel (iy, ix) holds y in [100 + 10 iy - 5, 100 + 10 iy + 5), x likewise with 20 nm
    t = pa.table({"x": [40.0, 59.9, 60.0, 110.0, 120.0, 39.9, np.nan],
                  "y": [95.0, 104.9, 105.0, 124.9, 100.0, 100.0, 100.0],
                  "z": [1e6] * 7})             # a 2D image ignores z
    out = labels_to_points(t, img, column="lab", outside=-7)
    assert out.column("lab").to_pylist() == [1, 1, 6, 12, -7, -7, -7]
    assert t.column_names == ["x", "y", "z"]                          # input unchanged


def test_labels_to_points_3d_needs_z():
    img = VoxelImage(np.ones((2, 2, 2), np.uint32), ("z", "y", "x"), (1.0,) * 3, (0.0,) * 3)
    with pytest.raises(ParameterError, match="no z column"):
        labels_to_points(pa.table({"x": [0.0], "y": [0.0]}), img)
    with pytest.raises(ParameterError, match="integers"):
        labels_to_points(pa.table({"x": [0.0], "y": [0.0], "z": [0.0]}),
                         VoxelImage(np.ones((2, 2, 2)), ("z", "y", "x"), (1.0,) * 3, (0.0,) * 3))


def test_labels_to_points_voxel_index_round_trip():
    # an image of voxel indices gives back each point's voxel (pixel-centre convention)
    rng = np.random.default_rng(0)
    shape = (7, 9, 11)
    idx_img = (np.arange(np.prod(shape)) + 1).reshape(shape).astype(np.uint32)
    img = VoxelImage(idx_img, ("z", "y", "x"), (30.0, 12.0, 8.0), (-50.0, 20.0, 3.0))
    n = 5000
    zyx = rng.uniform(-0.5, 1, (n, 3)) * np.asarray(shape) * np.asarray(img.voxel_nm) \
        + np.asarray(img.origin_nm)
    t = pa.table({"x": zyx[:, 2], "y": zyx[:, 1], "z": zyx[:, 0]})
    got = labels_to_points(t, img, column="v", offset=0).column("v").to_numpy()
    k = np.floor((zyx - img.origin_nm) / img.voxel_nm + 0.5).astype(int)
    inside = np.all((k >= 0) & (k < shape), axis=1)
    want = np.where(inside, np.ravel_multi_index(np.clip(k, 0, np.array(shape) - 1).T, shape) + 1,
                    -1)
    assert np.array_equal(got, want)
    assert inside.any() and (~inside).any()


def test_labels_to_points_minflux_table():
    from smlmspine.simulate import MinfluxSample, minflux_traces

    mf = minflux_traces(sample=MinfluxSample(n_emitters=20, region_nm=(1000.0, 1000.0)),
                        ndim=2, rng=2)
    img = VoxelImage(np.zeros((10, 10), np.uint32), ("y", "x"), (100.0, 100.0), (50.0, 50.0))
    img.data[:, 5:] = 4
    out = labels_to_points(mf.localizations, img, column="region")
    x = mf.localizations.column("x").to_numpy()
    y = mf.localizations.column("y").to_numpy()
    r = out.column("region").to_numpy()
    inside = (x >= 0) & (x < 1000) & (y >= 0) & (y < 1000)
    assert np.array_equal(r[inside & (x >= 500)], np.full(np.sum(inside & (x >= 500)), 4))
    assert (r[inside & (x < 500)] == -1).all()


@pytest.fixture(scope="module")
def volume_dendrite():
    """A volume-labelled dendrite without drift, at MINFLUX-like precision (3 nm lateral,
    7.5 nm axial): measured positions then stay in their spines."""
    from smlmspine.simulate import (Acquisition, Geometry, Labeling, PhotophysicsModel,
                                    SimulatedDrift, dendrite)

    return dendrite(geometry=Geometry(n_spines=4, shaft_length_nm=4000),
                    labeling=Labeling(label="volume"),
                    photophysics=PhotophysicsModel(precision_xy_nm=3.0),
                    drift=SimulatedDrift(drift_nm=0.0, drift_z_nm=0.0),
                    acquisition=Acquisition(background_rate_per_frame=0.0), rng=1)


def test_round_trip_on_simulated_volume_dendrite(volume_dendrite):
    sim = volume_dendrite
    img = mesh_to_labels({**sim.spine_meshes, "dendrite": sim.mesh}, voxel_nm=10.0)
    tr = sim.truth
    want = tr.column("spine_id").to_numpy()
    spine = want >= 0
    assert spine.sum() > 1000
    # at the true emitter positions: what the labels say about the true geometry
    true_pos = pa.table({"x": tr.column("x_true"), "y": tr.column("y_true"),
                         "z": tr.column("z_true")})
    got = labels_to_points(true_pos, img).column("spine_id").to_numpy()
    assert np.mean(got[spine] == want[spine]) >= 0.95
    assert np.mean(got[~spine] == -1) >= 0.99
    # at the measured positions (the table a user has)
    got_m = labels_to_points(sim.localizations, img).column("spine_id").to_numpy()
    assert np.mean(got_m[spine] == want[spine]) >= 0.95
    # lost localizations fall outside every spine, hardly ever into another spine
    wrong = (got_m >= 0) & (got_m != want)
    assert wrong.mean() < 0.002


def test_slabs_give_the_same_labels():
    from smlmspine.voxel._inside import _inside_block, _inside_slabs, _prepared

    torus = trimesh.creation.torus(major_radius=200.0, minor_radius=60.0)
    holed = trimesh.Trimesh(torus.vertices, torus.faces[4:], process=False)
    origin, voxel, lo, hi = (-95.0, -275.0, -275.0), (10.0, 10.0, 10.0), (0, 0, 0), (20, 56, 56)
    for mesh in (torus, holed):
        whole, _ = _inside_block(mesh.vertices, mesh.faces, origin, voxel, None, lo, hi)
        prepared = _prepared(mesh.vertices, mesh.faces)
        parts = list(_inside_slabs(prepared, origin, voxel, lo, hi, slab_voxels=2000))
        assert len(parts) > 10
        assert np.array_equal(np.concatenate([p for _, _, p in parts], axis=1), whole)
        assert whole.sum() > 0.9 * 2 * np.pi ** 2 * 200 * 60 ** 2 / 1000


def test_labels_to_points_on_a_lazy_ome_zarr(tmp_path):
    from smlmspine.voxel import read_image, write_image

    img = mesh_to_labels({2: trimesh.creation.icosphere(radius=100.0)}, voxel_nm=20.0)
    write_image(img, tmp_path / "l.ome.zarr")
    lazy = read_image(tmp_path / "l.ome.zarr", lazy=True)
    assert not isinstance(lazy.data, np.ndarray)
    t = pa.table({"x": [0.0, 500.0, 90.0], "y": [0.0, 0.0, 0.0], "z": [0.0, 0.0, 0.0]})
    assert labels_to_points(t, lazy).column("spine_id").to_pylist() == \
        labels_to_points(t, img).column("spine_id").to_pylist() == [2, -1, 2]


def test_closed_self_intersecting_inverted_and_unoriented_meshes():
    a = trimesh.creation.icosphere(subdivisions=3, radius=100.0)
    b = a.copy()
    b.apply_translation([100.0, 0, 0])
    both = trimesh.util.concatenate([a, b])          # closed, oriented, self-intersecting
    img = mesh_to_labels({0: both}, voxel_nm=10.0)
    c = _centres(img)
    union = (np.linalg.norm(c, axis=1) < 99) | (np.linalg.norm(c - [100.0, 0, 0], axis=1) < 99)
    outside = (np.linalg.norm(c, axis=1) > 101) & (np.linalg.norm(c - [100.0, 0, 0], axis=1) > 101)
    got = (img.data == 1).ravel()
    assert got[union].all() and not got[outside].any()   # the lens counts (parity: a hole)
    assert img.metadata["smlmspine.labels"]["inside_test"]["0"].startswith(
        "winding number (closed but self-intersecting")
    ref = (mesh_to_labels({0: a}, voxel_nm=10.0, roi_nm=(-150, -150, 250, 150, -150, 150))
           .data == 1)
    inverted = trimesh.Trimesh(a.vertices, a.faces[:, ::-1], process=False)
    unoriented = trimesh.Trimesh(a.vertices, np.r_[a.faces[:40, ::-1], a.faces[40:]],
                                 process=False)
    for mesh, test in ((inverted, "parity"),
                       (unoriented, "parity (faces not consistently oriented)")):
        img = mesh_to_labels({0: mesh}, voxel_nm=10.0, roi_nm=(-150, -150, 250, 150, -150, 150))
        assert np.array_equal(img.data == 1, ref)
        assert img.metadata["smlmspine.labels"]["inside_test"]["0"] == test


def test_open_mesh_with_two_holes_against_brute_force():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=100.0)
    c = mesh.triangles_center
    far = [int(np.argmax(c[:, 0])), int(np.argmin(c[:, 0]))]          # opposite sides
    drop = np.unique(np.concatenate([np.flatnonzero(np.linalg.norm(c - c[i], axis=1) < 40)
                                     for i in far]))
    holed = trimesh.Trimesh(mesh.vertices, np.delete(mesh.faces, drop, axis=0), process=False)
    from smlmspine.voxel._inside import _prepared

    assert len(_prepared(holed.vertices, holed.faces).cone_parts) == 2
    img = mesh_to_labels({0: holed}, voxel_nm=8.0)
    p = _centres(img)
    w = _solid_angle_sum(holed.vertices[holed.faces], p) / (4 * np.pi)
    clear = np.abs(w - 0.5) > 1e-6
    assert np.array_equal((img.data == 1).ravel()[clear], w[clear] > 0.5)
    n_full = np.count_nonzero(mesh_to_labels({0: mesh}, voxel_nm=8.0).data)
    assert 0.8 * n_full < np.count_nonzero(img.data) < n_full   # the holes cut into it


def test_vectorized_exact_orientation_against_integer_arithmetic():
    from smlmspine.voxel._inside import _orient_exact, _orient_exact_vec

    rng = np.random.default_rng(0)
    n = 3000
    a = rng.uniform(0, 5000, (n, 2))
    d = rng.uniform(-50, 50, (n, 2))
    b = a + d
    p = a + rng.uniform(-2, 3, n)[:, None] * d           # on the line, rounded
    p[::3] = np.round(p[::3] / 5) * 5
    a[::7, 1] = a[::7, 0] - 1300.0                      # diagonal edges and rays: exact ties
    b[::7, 1] = b[::7, 0] - 1300.0
    p[::7, 1] = p[::7, 0] - 1300.0
    got = _orient_exact_vec(a[:, 0], a[:, 1], b[:, 0], b[:, 1], p[:, 0], p[:, 1])
    want = np.array([_orient_exact(*row) for row in np.c_[a, b, p]])
    assert np.array_equal(got, want)
    assert {-1, 0, 1} <= set(want.tolist())


def test_2d_like_gives_projected_labels():
    dend = trimesh.creation.box((600.0, 200.0, 200.0))
    s1 = trimesh.creation.icosphere(subdivisions=3, radius=80.0)
    s1.apply_translation([150.0, 0, 150.0])                 # above the box top (z = 100)
    like = VoxelImage(np.zeros((30, 40), np.float32), ("y", "x"), (20.0, 20.0),
                      (-290.0, -390.0))
    img = mesh_to_labels({1: s1, "dendrite": dend}, like=like)
    assert img.axes == ("y", "x") and img.data.shape == (30, 40)
    assert img.origin_nm == like.origin_nm and img.voxel_nm == like.voxel_nm
    at = lambda x, y: int(img.data[tuple(img.index_of([[y, x]])[0])])  # noqa: E731
    assert at(150.0, 0.0) == 2        # the spine's column, over the dendrite below it
    assert at(-200.0, 0.0) == 3       # dendrite only
    assert at(150.0, 150.0) == 0      # beyond both
    # the spine's footprint: pixels whose centre is within the sphere's outline
    yy, xx = np.meshgrid(like.origin_nm[0] + 20 * np.arange(30),
                         like.origin_nm[1] + 20 * np.arange(40), indexing="ij")
    r = np.hypot(xx - 150.0, yy)
    assert (img.data[r < 75] == 2).all() and not (img.data[r > 82] == 2).any()
    # a 2D table gets spine_id through the 2D image
    t = pa.table({"x": [150.0, -200.0], "y": [10.0, 0.0]})
    assert labels_to_points(t, img).column("spine_id").to_pylist() == [1, -1]
