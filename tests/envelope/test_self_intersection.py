"""Exact self-intersection test, the repairs, and written envelopes free of them."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import trimesh

from smlmspine.envelope._repair import check_mesh, validate_envelope
from smlmspine.envelope._selfintersect import (_orient3d, open3d_self_intersections,
                                               self_intersections, smooth_untangle, untangle)


def _exact_orient(p):
    m = [[Fraction(float(x)) - Fraction(float(y)) for x, y in zip(p[i], p[3])] for i in range(3)]
    det = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
           - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
           + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    return (det > 0) - (det < 0)


def test_orientation_sign_is_exact():
    """Nearly and exactly coplanar points (where doubles fail) give the rational sign."""
    rng = np.random.default_rng(3)
    wrong = 0
    for k in range(600):
        p = rng.normal(size=(4, 3)) * rng.choice([1e-3, 1.0, 1e4])
        if k % 2 == 0:   # d in the plane of abc up to the rounding of the coordinates
            p[3] = p[0] + 0.3 * (p[1] - p[0]) + 0.7 * (p[2] - p[0])
        else:            # exactly on a line through two of them (midpoint)
            p[3] = 0.5 * (p[0] + p[1])
        wrong += _orient3d(p, 0, 1, 2, 3) != _exact_orient(p)
    assert wrong == 0


def _flags(v, f):
    hit, deg, n = self_intersections(np.asarray(v, float), np.asarray(f))
    return hit.tolist(), n


def test_crossing_triangles():
    v = [[0, 0, 0], [2, 0, 0], [0, 2, 0], [0.5, 0.5, -1], [0.5, 0.5, 1], [3, 3, 0]]
    assert _flags(v, [[0, 1, 2], [3, 4, 5]]) == ([True, True], 1)
    # the same pair moved apart by 1e-9 along z: no longer touching
    w = np.array(v, float)
    w[3:, 2] += 1.0 + 1e-9
    assert _flags(w, [[0, 1, 2], [3, 4, 5]]) == ([False, False], 0)


def test_touching_without_crossing():
    """Neighbours at a sharp angle touch only along their shared edge or vertex."""
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, 1e-12], [-1, -1, 0], [1, -1, 0]]
    # shared edge 0-1, the second triangle folded to a dihedral angle of ~0 (not flat)
    assert _flags(v, [[0, 1, 2], [1, 0, 3]]) == ([False, False], 0)
    # shared vertex 0 only, the other triangle on the far side in the same plane
    assert _flags(v, [[0, 1, 2], [0, 4, 5]]) == ([False, False], 0)
    # non-adjacent triangles touching at one point: the surface is not embedded
    t = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.25, 0.25, 0], [0.25, 0.25, 1], [1, 1, 1]]
    assert _flags(t, [[0, 1, 2], [3, 4, 5]]) == ([True, True], 1)


def test_flat_fold_at_shared_edge():
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.3, 0.3, 0], [0.4, -1, 0]]
    assert _flags(v, [[0, 1, 2], [1, 0, 3]]) == ([True, True], 1)    # folded flat onto it
    assert _flags(v, [[0, 1, 2], [1, 0, 4]]) == ([False, False], 0)  # flat, other side


def test_fold_at_shared_vertex_that_open3d_misses():
    """Two faces sharing only vertex 0; the edge 3-4 of one pierces the other."""
    v = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0.4, 0.4, -1], [0.4, 0.4, 1]], float)
    f = np.array([[0, 1, 2], [0, 3, 4]])
    assert _flags(v, f) == ([True, True], 1)
    assert not open3d_self_intersections(v, f).any()


@pytest.mark.parametrize("noise_nm,second", [(4.0, False), (2.0, True), (8.0, False),
                                             (12.0, True)])
def test_open3d_by_blocks_flags_what_open3d_flags_on_the_whole_mesh(noise_nm, second):
    """Cut into blocks of OPEN3D_BLOCK triangles, each with its own vertices: the same
    triangles as Open3D's test of the whole mesh (folds of a noisy sphere, a second
    sphere through the first)."""
    import open3d as o3d

    from smlmspine.envelope import _selfintersect

    rng = np.random.default_rng(int(noise_nm))
    s = trimesh.creation.icosphere(4, radius=100.0)
    v, f = s.vertices + rng.normal(0, noise_nm, s.vertices.shape), s.faces
    if second:
        t = trimesh.creation.icosphere(3, radius=60.0)
        v, f = np.r_[v, t.vertices + [80.0, 0.0, 0.0]], np.r_[f, t.faces + len(v)]
    assert len(f) > 5 * _selfintersect.OPEN3D_BLOCK
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v),
                                  o3d.utility.Vector3iVector(f.astype(np.int32)))
    want = np.zeros(len(f), bool)
    pairs = np.asarray(m.get_self_intersecting_triangles())
    want[np.unique(pairs.ravel())] = True
    assert want.sum() > 100
    np.testing.assert_array_equal(open3d_self_intersections(v, f), want)


def test_icosphere_clean_and_pushed_vertex():
    s = trimesh.creation.icosphere(3, radius=200.0)
    assert _flags(s.vertices, s.faces)[1] == 0
    assert not open3d_self_intersections(s.vertices, s.faces).any()
    assert validate_envelope(s.vertices, s.faces) == ""
    moved = s.vertices.copy()
    moved[7] = -1.3 * moved[7]            # through the opposite side
    hit, _, n = self_intersections(moved, s.faces)
    assert n > 0 and hit.sum() >= 6
    assert check_mesh(moved, s.faces).startswith("self-intersecting")
    assert open3d_self_intersections(moved, s.faces).any()
    r = untangle(s.vertices, moved, s.faces)
    assert r.ok and self_intersections(r.vertices, s.faces)[2] == 0
    # only the pushed vertex had to go back
    assert np.allclose(np.delete(r.vertices, 7, 0), np.delete(moved, 7, 0))


def test_duplicate_vertices_and_zero_area_faces():
    s = trimesh.creation.icosphere(1)
    v = np.r_[s.vertices, s.vertices[:1]]          # a copy of vertex 0 ...
    f = s.faces.copy()
    k = np.flatnonzero((f == 0).any(1))[0]
    f[k][f[k] == 0] = len(v) - 1                    # ... used by one of its faces
    hit, deg, n = self_intersections(v, f)
    assert n > 0                                    # ... touches its neighbours
    line = np.array([[0, 0, 0], [1, 1, 1], [3, 3, 3], [5, 0, 0], [6, 0, 0], [5, 1, 0]], float)
    hit, deg, n = self_intersections(line, np.array([[0, 1, 2], [3, 4, 5]]))
    assert deg.tolist() == [True, False] and n == 0     # collinear corners: zero area


def test_smooth_untangle_small_fold():
    s = trimesh.creation.icosphere(3, radius=100.0)
    v = s.vertices.copy()
    nb = s.vertex_neighbors[10][0]
    v[10] = v[nb] + 0.6 * (v[nb] - v[10])
    assert self_intersections(v, s.faces)[2] > 0
    r = smooth_untangle(v, s.faces)
    assert r.ok and self_intersections(r.vertices, s.faces)[2] == 0
    assert abs(r.volume_change) < 0.005 and r.max_shift_nm < 15.0


def _membrane_spine(rng, *, sigma=(10.0, 25.0), n=1500):
    """Noisy membrane samples of a spine: neck (radius 60, 0-500 nm) + head (radius 220)."""
    z = rng.uniform(0.0, 560.0, n // 3)
    t = rng.uniform(0, 2 * np.pi, n // 3)
    p_neck = np.c_[60.0 * np.cos(t), 60.0 * np.sin(t), z]
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    p_head = np.array([0, 0, 740.0]) + 220.0 * u
    p_head = p_head[np.hypot(p_head[:, 0], p_head[:, 1]) > 60.0]
    p_head = p_head[: 2 * n // 3]
    p = np.r_[p_neck, p_head]
    p = p[np.hypot(p[:, 0], p[:, 1]) > 59.0]
    p += rng.normal(size=p.shape) * np.array([sigma[0], sigma[0], sigma[1]])
    return p


def test_reconstructed_spine_passes_both_tests():
    """A membrane spine with a thin neck under 3D STORM blur: the envelope is free of
    self-intersections (exact and Open3D) and its volume within 15 % of the truth."""
    from smlmspine.envelope import reconstruct

    rng = np.random.default_rng(5)
    p = _membrane_spine(rng)
    # close the open base with a disc of points at z = 0
    g = np.mgrid[-60:61:12, -60:61:12].reshape(2, -1).T.astype(float)
    g = g[np.hypot(g[:, 0], g[:, 1]) < 54.0]
    p = np.r_[p, np.c_[g, np.zeros(len(g))]]
    env = reconstruct(p, label="membrane", precision_nm=(10.0, 25.0))
    assert env.is_watertight, env.reason
    m = env.mesh
    assert self_intersections(m.vertices, m.faces)[2] == 0
    assert not open3d_self_intersections(m.vertices, m.faces).any()
    cap_h = 220.0 - np.sqrt(220.0 ** 2 - 60.0 ** 2)
    truth = (np.pi * 60.0 ** 2 * (740.0 - 220.0 + cap_h) + 4 / 3 * np.pi * 220.0 ** 3
             - np.pi * cap_h ** 2 * (3 * 220.0 - cap_h) / 3)
    assert abs(env.volume_nm3 / truth - 1) < 0.15
    for rec in env.parameters.get("untangle", {}).values():
        assert abs(rec["volume_change"]) <= 0.05


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_dendrite.csv"


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE.exists(), reason="bundled sample not found")
def test_sample_run_meshes_free_of_self_intersections(tmp_path):
    """``smlmspine run`` on the bundled sample (~40-60 s): every mesh written and called
    watertight passes the exact and the Open3D test."""
    import pyarrow.parquet as pq

    from smlmspine.cli import main

    assert main(["run", str(SAMPLE), "-o", str(tmp_path), "--workers", "1"]) == 0
    tbl = pq.read_table(tmp_path / "spines.parquet").to_pylist()
    assert tbl
    for row in tbl:
        m = trimesh.load(tmp_path / row["mesh_file"], process=False)
        bad = self_intersections(m.vertices, m.faces)[2] + open3d_self_intersections(
            m.vertices, m.faces).sum()
        assert (bad == 0) == row["is_watertight"] or not row["is_watertight"]
        if row["is_watertight"]:
            assert bad == 0 and check_mesh(m.vertices, m.faces) == ""
        else:
            assert row["reason"]
