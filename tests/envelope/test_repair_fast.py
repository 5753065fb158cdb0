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
