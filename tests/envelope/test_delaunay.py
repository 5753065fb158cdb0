"""The numba Delaunay kernel and alpha-complex kernels against Qhull and the former numpy
implementation (kept below as a reference)."""

import numpy as np
import pytest
from scipy.spatial import Delaunay, cKDTree

from smlmspine.envelope import AlphaComplex, alpha_shape
from smlmspine.envelope._alpha import _alpha_envelope
from smlmspine.envelope._delaunay import delaunay
from smlmspine.envelope._result import Envelope
from smlmspine.errors import ParameterError


def sphere_surface(n, r, sigma, rng):
    p = rng.normal(size=(n, 3))
    p = r * p / np.linalg.norm(p, axis=1, keepdims=True)
    return p + rng.normal(0, sigma, p.shape)


def ball(n, r, rng):
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p * r * rng.random(n)[:, None] ** (1 / 3)


def two_blobs(n, rng):
    """Two balls joined by a thin neck: several components and cavities at small alpha."""
    p = np.r_[ball(n // 2, 150.0, rng), ball(n // 2, 150.0, rng) + [400.0, 0, 0]]
    neck = np.c_[rng.random(n // 10) * 400, rng.normal(0, 15, (n // 10, 2))]
    return np.r_[p, neck]


def canon_tets(s):
    s = np.sort(np.asarray(s), 1)
    return s[np.lexsort(s.T[::-1])]


def canon_faces(f):
    """Faces with the smallest index first (orientation kept), rows sorted."""
    f = np.asarray(f)
    r = np.argmin(f, 1)
    g = np.stack([f[np.arange(len(f)), (r + k) % 3] for k in range(3)], 1)
    return g[np.lexsort(g.T[::-1])]


def face_coordinates(mesh):
    """(F, 9) face corner coordinates, each face from its lexicographically smallest
    corner (orientation kept), rows sorted."""
    tri = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    first = np.array([min(range(3), key=lambda k: tuple(t[k])) for t in tri], int)
    rot = np.stack([tri[np.arange(len(tri)), (first + k) % 3] for k in range(3)], 1)
    rot = rot.reshape(len(tri), 9)
    return rot[np.lexsort(rot.T[::-1])]


SHAPES = {
    "uniform": lambda rng: rng.random((3000, 3)) * 1000.0,
    "sphere": lambda rng: sphere_surface(5000, 500.0, 10.0, rng),
    "ball": lambda rng: ball(4000, 300.0, rng),
    "offset": lambda rng: sphere_surface(3000, 250.0, 5.0, rng) + [5e4, -2e4, 1e5],
    "rounded 0.1 nm": lambda rng: np.round(sphere_surface(3000, 250.0, 5.0, rng), 1),
    "blobs": lambda rng: two_blobs(4000, rng),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_kernel_equals_qhull(shape):
    rng = np.random.default_rng(0)
    p = SHAPES[shape](rng)
    q = p - p.mean(0)
    res = delaunay(q)
    assert res is not None
    s, nb = res
    tri = Delaunay(q, qhull_options="Qbb Qc Q12")
    np.testing.assert_array_equal(canon_tets(s), canon_tets(tri.simplices))
    # positively oriented, neighbours share the face opposite each vertex
    a = q[s[:, 0]]
    det = np.einsum("ij,ij->i", q[s[:, 1]] - a, np.cross(q[s[:, 2]] - a, q[s[:, 3]] - a))
    assert (det < 0).all()  # orient3d(a, b, c, d) > 0 in Shewchuk's convention
    for k in range(4):
        t = np.flatnonzero(nb[:, k] >= 0)
        face = np.sort(np.delete(s[t], k, axis=1), 1)
        other = s[nb[t, k]]
        assert (face[:, :, None] == other[:, None, :]).any(2).all()
        assert not (s[t, k][:, None] == other).any(1).any()  # the opposite vertex differs
    assert (nb == -1).sum() == (tri.neighbors == -1).sum()


def test_kernel_empty_circumspheres():
    """Delaunay property checked directly: no point strictly inside any circumsphere."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(2000, 3)) * 100.0
    s, _ = delaunay(p)
    a, b, c, d = (p[s[:, i]] for i in range(4))
    m = np.stack([b - a, c - a, d - a], 1)
    rhs = 0.5 * np.stack([((x - a) ** 2).sum(1) for x in (b, c, d)], 1)
    centre = a + np.linalg.solve(m, rhs[..., None])[..., 0]
    r = np.linalg.norm(centre - a, axis=1)
    inside = cKDTree(p).query_ball_point(centre, r * (1 - 1e-9), return_length=True)
    assert (inside == 0).all()


@pytest.mark.parametrize("case", ["lattice", "cospherical", "integer nm"])
def test_degenerate_input_falls_back_to_qhull(case):
    rng = np.random.default_rng(2)
    if case == "lattice":
        p = np.stack(np.meshgrid(*[np.arange(6.0)] * 3), -1).reshape(-1, 3) * 10.0
    elif case == "cospherical":
        p = rng.normal(size=(400, 3))
        p = 100.0 * p / np.linalg.norm(p, axis=1, keepdims=True)
        p = np.r_[p, [[0.0, 0.0, 0.0]]]
    else:
        p = np.round(sphere_surface(5000, 500.0, 10.0, rng))
    cx = AlphaComplex.build(p)
    if case == "lattice":  # exactly co-spherical points: the kernel cannot decide
        assert delaunay(p - p.mean(0)) is None
    assert len(cx.simplices) > 0
    env = alpha_shape(p)  # never a crash; same result as Qhull alone
    ref = _alpha_envelope(AlphaComplex.build(p, delaunay="qhull"), alpha_nm="auto",
                          min_fraction=0.99)
    assert env.alpha_nm == ref.alpha_nm and env.is_watertight == ref.is_watertight


def test_duplicates_map_to_the_first_copy():
    rng = np.random.default_rng(3)
    p = sphere_surface(2000, 100.0, 3.0, rng)
    dup = np.r_[p, p[:500], p[:10]]
    cx = AlphaComplex.build(dup)
    np.testing.assert_array_equal(cx.vertex_of[:2000], np.arange(2000))
    np.testing.assert_array_equal(cx.vertex_of[2000:2500], np.arange(500))
    np.testing.assert_array_equal(cx.vertex_of[2500:], np.arange(10))
    assert cx.simplices.max() < 2000
    # same surface as with Qhull (which may keep another copy of a point as the vertex)
    kw = dict(alpha_nm="auto", min_fraction=0.99)
    a = _alpha_envelope(cx, **kw)
    b = _alpha_envelope(AlphaComplex.build(dup, delaunay="qhull"), **kw)
    assert (a.alpha_nm, a.held_fraction) == (b.alpha_nm, b.held_fraction)
    np.testing.assert_array_equal(face_coordinates(a.mesh), face_coordinates(b.mesh))


def test_four_points():
    p = np.array([[0.0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]])
    s, nb = delaunay(p)
    assert s.shape == (1, 4) and (nb == -1).all()
    env = alpha_shape(p, alpha_nm=1e3)
    assert env.is_watertight and env.volume_nm3 == pytest.approx(100.0 ** 3 / 6)
    with pytest.raises(ParameterError, match="delaunay"):
        AlphaComplex.build(p, delaunay="cgal")


@pytest.mark.parametrize("shape", ["sphere", "ball", "blobs"])
@pytest.mark.parametrize("gap_factor", [0.0, 1.5])
def test_alpha_shape_same_as_qhull(shape, gap_factor):
    """Same alpha, held fraction, faces (up to order) and notes as with Qhull's tetrahedra."""
    rng = np.random.default_rng(4)
    p = SHAPES[shape](rng)
    kw = dict(alpha_nm="auto", min_fraction=0.99, gap_factor=gap_factor)
    a = _alpha_envelope(AlphaComplex.build(p), **kw)
    b = _alpha_envelope(AlphaComplex.build(p, delaunay="qhull"), **kw)
    assert (a.alpha_nm, a.held_fraction, a.is_watertight, a.reason, a.note) == (
        b.alpha_nm, b.held_fraction, b.is_watertight, b.reason, b.note)
    np.testing.assert_array_equal(np.asarray(a.mesh.vertices), np.asarray(b.mesh.vertices))
    np.testing.assert_array_equal(canon_faces(a.mesh.faces), canon_faces(b.mesh.faces))


# --- the former numpy/scipy implementation of the alpha-complex steps (reference) ---

def _ref_main_component(cx, keep):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not keep.any():
        return keep
    idx = np.flatnonzero(keep)
    t = np.repeat(idx, 4)
    n = cx.neighbors[idx].ravel()
    ok = n >= 0
    ok[ok] = keep[n[ok]]
    g = coo_matrix((np.ones(int(ok.sum())), (t[ok], n[ok])), shape=(len(keep),) * 2)
    _, lab = connected_components(g, directed=False)
    lk = lab[idx]
    out = np.zeros_like(keep)
    out[idx[lk == int(np.argmax(np.bincount(lk)))]] = True
    return out


def _ref_fill_cavities(cx, keep, gap_nm):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    free = ~keep
    if not free.any():
        return keep
    nt = len(keep)
    idx = np.flatnonzero(free)
    t = np.repeat(idx, 4)
    n = np.where(cx.neighbors[idx].ravel() < 0, nt, cx.neighbors[idx].ravel())
    ok = n == nt
    ok[~ok] = free[n[~ok]]
    if gap_nm > 0:
        ok &= (cx.face_radii()[idx].ravel() >= gap_nm) | (n == nt)
    g = coo_matrix((np.ones(int(ok.sum())), (t[ok], n[ok])), shape=(nt + 1,) * 2)
    _, lab = connected_components(g, directed=False)
    return keep | (free & (lab[:nt] != lab[nt]))


def _ref_boundary(cx, keep):
    idx = np.flatnonzero(keep)
    nb = cx.neighbors[idx]
    other = np.where(nb >= 0, keep[np.maximum(nb, 0)], False)
    ti, fi = np.nonzero(~other)
    tet = cx.simplices[idx[ti]]
    opp = tet[np.arange(len(fi)), fi]
    faces = np.stack([tet[np.arange(len(fi)), (fi + k) % 4] for k in (1, 2, 3)], 1)
    p = cx.points
    a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), p[opp] - a) > 0
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _ref_bad_tets(cx, faces):
    """Tetrahedra touching an edge in > 2 faces or a vertex with > 1 fan (None if none)."""
    nv = np.int64(len(cx.points))
    e = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1).reshape(-1, 2)
    key = np.minimum(e[:, 0], e[:, 1]) * nv + np.maximum(e[:, 0], e[:, 1])
    uk, cnt = np.unique(key, return_counts=True)
    bad_edges = uk[cnt > 2]
    # vertex fans: corners joined across edges used by >= 2 faces (union-find)
    order = np.argsort(key, kind="stable")
    parent = np.arange(3 * len(faces))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in np.flatnonzero(key[order][1:] == key[order][:-1]):
        fa, fb = order[i] // 3, order[i + 1] // 3
        for v in e[order[i]]:
            ca = 3 * fa + int(np.flatnonzero(faces[fa] == v)[0])
            cb = 3 * fb + int(np.flatnonzero(faces[fb] == v)[0])
            parent[find(ca)] = find(cb)
    roots = np.array([find(c) for c in range(3 * len(faces))])
    pairs = np.unique(np.c_[faces.ravel(), roots], axis=0)
    v, cnt = np.unique(pairs[:, 0], return_counts=True)
    bad_vertices = v[cnt > 1]
    if bad_edges.size == 0 and bad_vertices.size == 0:
        return None
    s = cx.simplices
    bad = np.isin(s, bad_vertices).any(1)
    for i, j in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
        bad |= np.isin(np.minimum(s[:, i], s[:, j]) * nv + np.maximum(s[:, i], s[:, j]),
                       bad_edges)
    return bad


@pytest.mark.parametrize("shape", ["sphere", "blobs"])
def test_kernels_match_reference(shape):
    rng = np.random.default_rng(5)
    p = SHAPES[shape](rng)[:2500]
    cx = AlphaComplex.build(p, delaunay="qhull")
    finite = cx.radii_nm[np.isfinite(cx.radii_nm)]
    n_bad = 0
    for alpha in np.quantile(finite, [0.2, 0.5, 0.8, 0.95]):
        keep = cx.radii_nm < alpha
        main = cx._main_component(keep)
        np.testing.assert_array_equal(main, _ref_main_component(cx, keep))
        for gap in (0.0, 1.5 * alpha):
            filled = cx._fill_cavities(main, gap)
            np.testing.assert_array_equal(filled, _ref_fill_cavities(cx, main, gap))
            faces = cx._boundary(filled)
            np.testing.assert_array_equal(faces, _ref_boundary(cx, filled))
            found, add = cx._repair_candidates(faces, filled, 2 * alpha)
            bad = _ref_bad_tets(cx, faces)
            assert found == (bad is not None)
            if bad is not None:
                n_bad += 1
                np.testing.assert_array_equal(add, bad & ~filled & (cx.radii_nm < 2 * alpha))
    assert n_bad > 0  # the non-manifold branch was exercised


@pytest.mark.parametrize("case", ["sphere", "duplicates", "elongated", "clusters", "five"])
def test_point_spacing_same_as_kdtree(case):
    from smlmspine.envelope._alpha import point_spacing_nm
    from smlmspine.envelope._alpha_kernels import kth_neighbor_distances

    rng = np.random.default_rng(6)
    p = {"sphere": lambda: sphere_surface(5000, 500.0, 10.0, rng),
         "duplicates": lambda: np.repeat(rng.random((1000, 3)) * 100, 3, axis=0),
         "elongated": lambda: rng.random((3000, 3)) * [2e4, 50, 50],
         "clusters": lambda: np.r_[rng.normal(0, 5, (3000, 3)), rng.normal(1e6, 5, (3000, 3))],
         "five": lambda: rng.random((5, 3))}[case]()
    k = min(5, len(p))
    ref = cKDTree(p).query(p, k=k)[0][:, -1]
    d = kth_neighbor_distances(p, k)
    if case == "clusters":
        assert len(d) == 0  # too clustered for one grid: point_spacing_nm uses the k-d tree
    else:
        np.testing.assert_array_equal(d, ref)
    ref = ref[ref > 0]
    assert point_spacing_nm(p) == (float(np.median(ref)) if ref.size else 1.0)


def test_kernel_retries_with_more_room(monkeypatch):
    """A conflict region too large for the scratch space: retried with 4x the room."""
    from smlmspine.envelope import _delaunay

    rng = np.random.default_rng(7)
    p = sphere_surface(3000, 500.0, 10.0, rng)
    monkeypatch.setattr(_delaunay, "_SCRATCH", 64)
    s, _ = _delaunay.delaunay(p)
    np.testing.assert_array_equal(canon_tets(s), canon_tets(Delaunay(p).simplices))
