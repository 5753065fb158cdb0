"""The filtered/exact predicates and the result cache of the exact self-intersection test."""

from fractions import Fraction

import numpy as np
import pytest

from smlmspine.envelope import _selfintersect as si


def _sign(x):
    return (x > 0) - (x < 0)


def _orient3d_fraction(P, a, b, c, d):
    r = [[Fraction(float(P[i, k])) - Fraction(float(P[d, k])) for k in range(3)] for i in (a, b, c)]
    det = (r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
           - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
           + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]))
    return _sign(det)


def _orient2d_fraction(P, a, b, c, ax):
    u, w = [k for k in range(3) if k != ax]
    f = [[Fraction(float(P[i, u])), Fraction(float(P[i, w]))] for i in (a, b, c)]
    det = (f[0][0] - f[2][0]) * (f[1][1] - f[2][1]) - (f[0][1] - f[2][1]) * (f[1][0] - f[2][0])
    return _sign(det)


def _near_degenerate_points(rng, n, *, spread):
    """Points a few ulps off a plane, with coordinates of mixed magnitude and sign."""
    base = rng.normal(size=(3, 3)) * spread
    s, t = rng.normal(size=(2, n))
    p = base[0] + s[:, None] * (base[1] - base[0]) + t[:, None] * (base[2] - base[0])
    ulp = np.spacing(np.abs(p).max())
    return p + rng.integers(-2, 3, size=p.shape) * ulp


@pytest.mark.parametrize("spread", [1.0, 1e3, 1e-3])
def test_orient3d_matches_rational_arithmetic(spread):
    rng = np.random.default_rng(3)
    g = np.round(rng.normal(size=(30, 2)) * 4) / 4 * spread
    plane = np.c_[g, 0.5 * g[:, 0] + 0.25 * g[:, 1] + 3.0 * spread]   # exactly coplanar
    P = np.r_[_near_degenerate_points(rng, 30, spread=spread), plane]
    n_zero = 0
    for _ in range(600):
        a, b, c, d = rng.choice(len(P), 4, replace=False)
        want = _orient3d_fraction(P, a, b, c, d)
        assert si._orient3d(P, a, b, c, d) == want
        assert si._orient3d_exact(P, a, b, c, d) == want
        n_zero += want == 0
    assert n_zero > 0          # exact zeros were tested too


def test_orient3d_exact_both_stages():
    # differences that are not exact in double (|coordinates| of very different size)
    rng = np.random.default_rng(4)
    P = np.r_[rng.normal(size=(10, 3)) * 1e8, rng.normal(size=(10, 3)) * 1e-8]
    for _ in range(300):
        a, b, c, d = rng.choice(len(P), 4, replace=False)
        assert si._orient3d_exact(P, a, b, c, d) == _orient3d_fraction(P, a, b, c, d)


def test_orient2d_matches_rational_arithmetic():
    rng = np.random.default_rng(5)
    P = np.r_[_near_degenerate_points(rng, 40, spread=10.0),
              np.round(rng.normal(size=(20, 3)) * 2) / 2]
    for _ in range(600):
        a, b, c = rng.choice(len(P), 3, replace=False)
        ax = int(rng.integers(3))
        want = _orient2d_fraction(P, a, b, c, ax)
        assert si._orient2d(P, a, b, c, ax) == want
        assert si._orient2d_exact(P, a, b, c, ax) == want


def test_touching_and_coplanar_pairs_on_grid_coordinates():
    v = np.array([[0., 0, 0], [4, 0, 0], [0, 4, 0],        # a triangle in z = 0
                  [1, 1, 0], [5, 5, 0], [1, 5, 0],         # coplanar, overlapping it
                  [2, 2, 0], [9, 9, 1], [9, 8, 2],         # touching it at one point
                  [20, 0, 0], [24, 0, 0], [20, 4, 0],      # far away
                  [0, 0, 0.0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    hit, deg, n = si.self_intersections(v, f)
    assert n == 1 and hit.all() and not deg.any()
    hit, _, n = si.self_intersections(v, np.array([[0, 1, 2], [6, 7, 8]]))
    assert n == 1 and hit.all()                            # touching counts
    hit, _, n = si.self_intersections(v, np.array([[0, 1, 2], [9, 10, 11]]))
    assert n == 0 and not hit.any()
    _, deg, _ = si.self_intersections(v, np.array([[0, 1, 2], [0, 3, 6]]))   # collinear
    assert deg.tolist() == [False, True]


def test_cache_returns_copies_and_sees_changed_input():
    import trimesh

    s = trimesh.creation.icosphere(2)
    v = np.array(s.vertices)
    f = np.array(s.faces)
    si._CACHE.clear()
    hit, deg, n = si.self_intersections(v, f)
    assert n == 0
    hit[:] = True                                          # the caller's copy only
    hit2, _, n2 = si.self_intersections(v, f)
    assert si._CACHE.hits == 1 and n2 == 0 and not hit2.any()
    v[0] *= -1.5                                           # pushed through, same array
    hit3, _, n3 = si.self_intersections(v, f)
    assert n3 > 0 and hit3.sum() == 10
    assert si._CACHE.misses == 2


def test_incremental_test_matches_the_full_one_round_after_round():
    """_Intersections re-tests only pairs near moved vertices: the intersecting faces
    equal those of the full test after every move (folds made and undone, the same
    vertex moved twice, nothing moved), and a move's verdict does not lag behind."""
    import trimesh

    s = trimesh.creation.icosphere(3, radius=100.0)
    f = np.array(s.faces)
    v = np.array(s.vertices)
    rng = np.random.default_rng(11)
    test = si._Intersections(f)
    assert not test(v).any()
    n_bad_rounds = 0
    for _ in range(12):
        w = v.copy()
        k = rng.choice(len(v), size=rng.integers(1, 6), replace=False)
        w[k] *= rng.uniform(-1.2, 1.3, size=(len(k), 1))     # some pushed through
        full = si.self_intersections(w, f)[0]
        assert np.array_equal(test(w), full)
        assert np.array_equal(test(w), full)                   # nothing moved since
        n_bad_rounds += bool(full.any())
        if rng.random() < 0.5:
            v = w                                              # keep some folds
    assert n_bad_rounds >= 4                                   # the test saw folds
    assert np.array_equal(test(s.vertices), si.self_intersections(s.vertices, f)[0])


def test_pairs_with_finds_only_and_all_pairs_of_the_changed_faces():
    import trimesh

    s = trimesh.creation.icosphere(2)
    f = np.array(s.faces)
    v = np.array(s.vertices)
    v[0] *= -1.5                                               # folds near vertex 0
    hit, _, n = si.self_intersections(v, f)
    changed = (f == 0).any(axis=1)
    pairs = si._pairs_with(v, f, changed)
    assert len(pairs) == n > 0
    assert np.all(changed[pairs[:, 0]] | changed[pairs[:, 1]])
    far = ~changed & ~np.isin(np.arange(len(f)), pairs.ravel())
    assert len(si._pairs_with(v, f, far & (np.arange(len(f)) == np.flatnonzero(far)[0]))) == 0
