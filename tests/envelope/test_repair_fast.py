"""largest_body, the surface voxels of voxel_remesh and the check cache against trimesh."""

import numpy as np
import pytest
import trimesh

from smlmspine.envelope import _repair
from smlmspine.envelope._repair import check_mesh, largest_body


def _trimesh_largest_body(mesh):
    bodies = mesh.split(only_watertight=False)
    if len(bodies) <= 1:
        return mesh
    sizes = [abs(b.volume) if b.is_watertight else b.area for b in bodies]
    return bodies[int(np.argmax(sizes))]


def _bodies(seed):
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(int(rng.integers(2, 5))):
        s = trimesh.creation.icosphere(int(rng.integers(0, 3)), radius=float(rng.uniform(0.5, 2)))
        s.apply_translation(rng.uniform(-5, 5, 3))
        if rng.random() < 0.4:                           # an open body
            s = trimesh.Trimesh(s.vertices, s.faces[int(rng.integers(1, 4)):], process=False)
        parts.append(s)
    m = trimesh.util.concatenate(parts)
    if seed % 3 == 0:                                    # stray faces, some non-manifold
        extra = rng.integers(0, len(m.vertices), (5, 3))
        m = trimesh.Trimesh(m.vertices, np.r_[m.faces, extra], process=False)
    return m


@pytest.mark.parametrize("seed", range(12))
def test_largest_body_is_trimesh_split_pick(seed):
    m = _bodies(seed)
    want = _trimesh_largest_body(m.copy())
    got = largest_body(m.copy())
    np.testing.assert_array_equal(np.asarray(got.vertices), np.asarray(want.vertices))
    np.testing.assert_array_equal(np.asarray(got.faces), np.asarray(want.faces))


def test_largest_body_single_body_is_the_input():
    s = trimesh.creation.icosphere(1)
    assert largest_body(s) is s


def _noisy_sphere(seed, subdiv=2):
    rng = np.random.default_rng(seed)
    s = trimesh.creation.icosphere(subdiv, radius=100.0)
    return trimesh.Trimesh(s.vertices + rng.normal(0, 5, s.vertices.shape), s.faces, process=False)


@pytest.mark.parametrize("seed,div", [(0, 80.0), (1, 37.3), (2, 80.0), (3, 12.0)])
def test_surface_voxels_are_trimesh_voxelized(seed, div):
    m = _noisy_sphere(seed, subdiv=1 + seed % 3)
    pitch = float(np.ptp(m.vertices, axis=0).max()) / div
    vg = m.voxelized(pitch)
    occ, corner = _repair._surface_voxels(m, pitch)
    np.testing.assert_array_equal(occ, np.asarray(vg.matrix, bool))
    np.testing.assert_array_equal(corner, np.asarray(vg.translation, float))


def test_surface_voxels_too_many_rounds_fails_like_trimesh():
    # a needle 1100 nm long: 10 rounds of halving leave 1.07 nm, more than half a 2 nm
    # pitch (trimesh gives up) and less than half a 2.2 nm pitch (same voxels)
    m = trimesh.Trimesh([[0.0, 0, 0], [1100, 0, 0], [0, 0.2, 0]], [[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="max_iter exceeded"):
        m.voxelized(2.0)
    with pytest.raises(ValueError, match="max_iter exceeded"):
        _repair._surface_voxels(m, 2.0)
    occ, corner = _repair._surface_voxels(m, 2.2)
    vg = m.voxelized(2.2)
    np.testing.assert_array_equal(occ, np.asarray(vg.matrix, bool))
    np.testing.assert_array_equal(corner, np.asarray(vg.translation, float))


def test_voxel_remesh_closed_and_close_to_the_sphere():
    m = _noisy_sphere(4, subdiv=3)
    v, f = _repair.voxel_remesh(m, pitch_nm=5.0)
    assert check_mesh(v, f) == ""
    r = np.linalg.norm(v - v.mean(0), axis=1)
    assert abs(np.median(r) - 100.0) < 5.0


@pytest.mark.parametrize("radius, pitch", [(50.0, 15.0), (100.0, 15.0), (300.0, 15.0),
                                           (100.0, 8.0), (100.0, 25.0)])
def test_voxel_remesh_lies_about_half_a_voxel_outside(radius, pitch):
    """The documented offset of the voxel remesh (its docstring, docs/envelope.md): the
    voxels the surface passes through count as occupied, so the result lies 0.56-0.66
    voxel outside a sphere, whatever its size."""
    s = trimesh.creation.icosphere(5, radius=radius)
    s.apply_translation(np.random.default_rng(int(radius + pitch)).uniform(0, pitch, 3))
    v, f = _repair.voxel_remesh(s, pitch_nm=pitch)
    assert check_mesh(v, f) == ""
    grown = (trimesh.Trimesh(v, f).volume / s.volume) ** (1 / 3) * radius - radius
    assert 0.5 * pitch < grown < 0.7 * pitch


def test_check_cache_sees_in_place_changes():
    s = trimesh.creation.icosphere(2)
    v = np.array(s.vertices)
    f = np.array(s.faces)
    _repair._CHECKS.clear()
    assert check_mesh(v, f) == ""
    assert check_mesh(v, f) == "" and _repair._CHECKS.hits == 1
    v[0] *= -1.5                                          # same array, pushed through
    assert check_mesh(v, f).startswith("self-intersecting: 10 face(s)")
    assert check_mesh(v, f, self_intersection=False) == ""
    f[0] = f[0, ::-1]                                     # one face flipped in place
    assert check_mesh(v, f, self_intersection=False).startswith("inconsistent winding")


def _topology_cases():
    rng = np.random.default_rng(11)
    ico = trimesh.creation.icosphere(2)
    v, f = np.array(ico.vertices), np.array(ico.faces)
    yield "closed", v, f
    yield "open", v, f[3:]
    flipped = f.copy()
    flipped[5] = flipped[5, ::-1]
    yield "one face flipped", v, flipped
    yield "all flipped", v, f[:, ::-1].copy()
    two = trimesh.util.concatenate([ico, trimesh.creation.icosphere(1, radius=0.3)])
    yield "two bodies", np.array(two.vertices), np.array(two.faces)
    # two spheres sharing one vertex (a bowtie vertex)
    b = trimesh.creation.icosphere(1)
    shift = np.array(b.vertices) + (np.array(ico.vertices)[0] - np.array(b.vertices)[0]) * 1.0
    shift[1:] += 3.0
    vv = np.r_[v, shift[1:]]
    fb = np.array(b.faces) + len(v) - 1
    fb[np.array(b.faces) == 0] = 0
    yield "bowtie vertex", vv, np.r_[f, fb]
    # an edge used by four faces: two tetrahedra glued along one edge only
    tv = np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    tf = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3],
                   [0, 3, 4], [0, 4, 5], [0, 5, 3], [3, 5, 4]])
    yield "tetrahedra", tv, tf
    yield "tetrahedra, shared edge", np.r_[tv, [[0, 0, -1]]], np.r_[tf[:4], [[0, 2, 6], [2, 3, 6]]]
    for k in range(40):
        nv = int(rng.integers(4, 12))
        sv = rng.normal(size=(nv, 3))
        sf = np.array([rng.choice(nv, 3, replace=False) for _ in range(int(rng.integers(4, 20)))])
        yield f"soup{k}", sv, np.r_[sf, sf[:, ::-1]] if k % 2 else sf


@pytest.mark.parametrize("case", list(range(48)))
def test_topology_kernel_matches_numpy(case):
    name, v, f = list(_topology_cases())[case]
    f = np.asarray(f, np.int64)
    if np.any((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])):
        pytest.skip("degenerate faces are rejected before the topology checks")
    want = _repair._topology_numpy(np.asarray(v, float), f)
    _repair._CHECKS.clear()
    got = check_mesh(v, f, self_intersection=False)
    if want:
        assert got == want, name
    else:
        assert got in ("", "inward-oriented or zero-volume mesh"), name


def test_surface_distances_one_way_is_the_same_as_both():
    # the level-set gate needs only the new surface's distances to the old one
    import trimesh

    from smlmspine.envelope._repair import surface_distances

    a = trimesh.creation.icosphere(3, radius=100.0)
    b = trimesh.creation.box(extents=(150.0, 150.0, 180.0))
    d_ab, d_ba = surface_distances(a, b, n_samples=3000)
    none, d_ba1 = surface_distances(a, b, n_samples=3000, both=False)
    assert none is None
    np.testing.assert_array_equal(d_ba, d_ba1)
    # a box's corners lie ~ (75^2+75^2+90^2)^0.5 - 100 = 39 nm outside the sphere
    assert d_ba.max() == pytest.approx(np.sqrt(75**2 + 75**2 + 90**2) - 100.0, abs=3.0)
    assert d_ab.max() > 0


def test_mesh_volume_equals_trimesh_to_the_bit():
    """mesh_volume is trimesh's volume without the rest of its mass properties: the same
    float on noisy, large and non-closed meshes (it feeds gates that compare volumes)."""
    import trimesh

    from smlmspine.envelope._repair import mesh_volume

    rng = np.random.default_rng(5)
    for sub, noise in ((1, 0.0), (3, 0.7), (5, 2.0)):
        s = trimesh.creation.icosphere(sub, radius=123.4)
        v = s.vertices + rng.normal(0, noise, s.vertices.shape) + [1e4, -3e3, 250.0]
        for faces in (s.faces, s.faces[:-7]):
            a = trimesh.Trimesh(v, faces, process=False)
            b = trimesh.Trimesh(v, faces, process=False)
            assert mesh_volume(a) == float(b.volume)
