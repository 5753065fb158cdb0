"""envelope._winding.fix_normals: the faces trimesh.repair.fix_normals gives, without
networkx, on broken meshes (flipped faces, holes, several bodies, non-manifold edges)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from smlmspine.envelope._winding import fix_normals


def _broken(rng, k):
    parts = []
    for _ in range(int(rng.integers(1, 4))):
        s = trimesh.creation.icosphere(int(rng.integers(1, 4)), radius=float(rng.uniform(50, 200)))
        s.apply_translation(rng.uniform(-150, 150, 3))
        parts.append(s)
    m = trimesh.util.concatenate(parts)
    f = m.faces.copy()
    flip = rng.random(len(f)) < rng.uniform(0, 0.5)
    f[flip] = f[flip][:, ::-1]
    f = f[rng.random(len(f)) > rng.uniform(0, 0.05)]          # holes
    if k % 3 == 0:   # non-manifold: some faces glued on again, turned
        f = np.r_[f, f[:20, ::-1][:, [1, 0, 2]]]
    return trimesh.Trimesh(m.vertices, f, process=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_same_faces_as_trimesh(seed):
    rng = np.random.default_rng(seed)
    flipped_any = 0
    for k in range(60):
        m = _broken(rng, k)
        a, b = m.copy(), m.copy()
        trimesh.repair.fix_normals(a)
        fix_normals(b)
        np.testing.assert_array_equal(np.asarray(b.faces), np.asarray(a.faces))
        flipped_any += not np.array_equal(np.asarray(a.faces), m.faces)
    assert flipped_any > 30          # the traversal had work to do


def test_small_component_starts_where_networkx_starts():
    # a big sphere and a small one: the small component is under half the graph, so
    # networkx starts it from the first node of a Python set, not its first node
    big = trimesh.creation.icosphere(3, radius=300.0)
    small = trimesh.creation.icosphere(1, radius=50.0)
    small.apply_translation((1000.0, 0, 0))
    m = trimesh.util.concatenate([big, small])
    f = m.faces.copy()
    rng = np.random.default_rng(5)
    flip = rng.random(len(f)) < 0.3
    f[flip] = f[flip][:, ::-1]
    m = trimesh.Trimesh(m.vertices, f, process=False)
    a, b = m.copy(), m.copy()
    trimesh.repair.fix_normals(a)
    fix_normals(b)
    np.testing.assert_array_equal(np.asarray(b.faces), np.asarray(a.faces))
    assert b.is_winding_consistent


def test_consistent_mesh_is_left_alone_and_inverted_one_turned():
    s = trimesh.creation.icosphere(2, radius=100.0)
    m = trimesh.Trimesh(s.vertices, s.faces[:, ::-1], process=False)   # inside out
    fix_normals(m)
    assert m.volume > 0
    np.testing.assert_array_equal(np.asarray(m.faces), s.faces)
