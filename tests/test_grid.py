"""The shared cell-grid kernels (smlmspine._grid) and their four users give the same
neighbours, labels and distances as independent references (scipy's cKDTree,
scikit-learn's DBSCAN, brute force), including the edge cases of a grid: empty input,
one point, duplicate points, points on cell boundaries, huge coordinates, NaN."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")


def _sets(rng, d):
    """Named point sets (N, d) covering the grid's edge cases."""
    lattice = np.indices((9,) * d).reshape(d, -1).T.astype(float) * 10.0  # on cell edges
    return {
        "uniform": rng.uniform(0, 600, (3000, d)),
        "blobs": np.concatenate([rng.normal(c, 6.0, (150, d))
                                 for c in rng.uniform(0, 800, (8, d))]),
        "lattice": lattice,
        "duplicates": np.repeat(rng.uniform(0, 80, (150, d)), 4, axis=0),
        "huge": rng.uniform(0, 300, (800, d)) + 1e9,
        "one": np.zeros((1, d)),
    }


# --------------------------------------------------------------------------- primitives

def test_lower_bound_matches_searchsorted():
    from smlmspine._grid import lower_bound

    rng = np.random.default_rng(0)
    a = np.sort(rng.integers(0, 50, 200))
    for v in list(range(-2, 53)) + [a[0], a[-1]]:
        assert lower_bound(a, 0, a.size, v) == np.searchsorted(a, v, side="left")
        assert lower_bound(a, 10, 60, v) == 10 + np.searchsorted(a[10:60], v, side="left")
    assert lower_bound(a[:0], 0, 0, 5) == 0


def test_union_find_matches_connected_components():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from smlmspine._grid import find, union

    rng = np.random.default_rng(1)
    n = 500
    edges = rng.integers(0, n, (350, 2))
    parent = np.arange(n)
    for a, b in edges:
        union(parent, a, b)
    roots = np.array([find(parent, i) for i in range(n)])
    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, ref = connected_components(g, directed=False)
    # the same partition, and the root of every tree is its lowest member
    for r in np.unique(roots):
        members = np.flatnonzero(roots == r)
        assert r == members.min()
        assert np.unique(ref[members]).size == 1
        assert (ref == ref[members[0]]).sum() == members.size
    assert not union(parent, edges[0, 0], edges[0, 1])  # already joined


@pytest.mark.parametrize("total_per_point", [0.5, 100.0])
def test_sort_cells_counting_and_merge_sort_agree_with_numpy(total_per_point):
    from smlmspine._grid import sort_cells

    rng = np.random.default_rng(2)
    n = 4000
    total = int(n * total_per_point)
    keys = rng.integers(0, total, n).astype(np.int64)
    order, ukeys, starts = sort_cells(keys, total)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(ukeys, np.unique(keys))
    np.testing.assert_array_equal(np.diff(starts), np.unique(keys, return_counts=True)[1])
    empty = sort_cells(np.zeros(0, np.int64), 10)
    assert empty[0].size == 0 and empty[1].size == 0 and empty[2].tolist() == [0]


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("reach", [1, 2])
def test_neighbour_cells_brute_force(d, order, reach):
    from smlmspine._grid import (cell_slots, key_coords, neighbour_cells, neighbour_table,
                                 strides_for)

    rng = np.random.default_rng(3 + d)
    dims = np.array([7, 5, 6][:d], np.int64)
    strides, total = strides_for(dims, order)
    ukeys = np.unique(rng.integers(0, total, total // 3)).astype(np.int64)
    coords = np.empty((ukeys.size, d), np.int64)
    c = np.empty(d, np.int64)
    for j, k in enumerate(ukeys):
        key_coords(k, dims, strides, c)
        coords[j] = c
        assert (c * strides).sum() == k
    out = np.empty((2 * reach + 1) ** d, np.int64)
    sparse = np.empty(0, np.int64)
    dense = cell_slots(ukeys, total)
    bases = [np.array(b, np.int64) for b in rng.integers(-3, 9, (60, d))]
    for base in bases:
        want = np.flatnonzero(np.all(np.abs(coords - base) <= reach, axis=1))
        got = out[:neighbour_cells(ukeys, sparse, base, dims, strides, reach, out)].copy()
        np.testing.assert_array_equal(np.sort(got), want)
        # a run of consecutive keys per row: cells of a row come in key order
        got_dense = out[:neighbour_cells(ukeys, dense, base, dims, strides, reach, out)]
        np.testing.assert_array_equal(got_dense, got)
    # the table of every occupied cell's neighbours
    first, cells = neighbour_table(ukeys, sparse, dims, strides, reach)
    for j in range(ukeys.size):
        want = np.flatnonzero(np.all(np.abs(coords - coords[j]) <= reach, axis=1))
        np.testing.assert_array_equal(np.sort(cells[first[j]:first[j + 1]]), want)


def test_cell_of_clamps_and_keeps_far_queries_off_the_grid():
    from smlmspine._grid import cell_of

    assert cell_of(25.0, 0.0, 10.0, 0, 5, True) == 2
    assert cell_of(20.0, 0.0, 10.0, 0, 5, True) == 2  # on a cell boundary: the upper cell
    assert cell_of(-1e300, 0.0, 10.0, 0, 5, True) == 0
    assert cell_of(1e300, 0.0, 10.0, 0, 5, True) == 4
    assert cell_of(1e300, 0.0, 10.0, 0, 5, False) == 6  # off the grid, no overflow
    assert cell_of(-1e300, 0.0, 10.0, 1, 5, False) == -2
    assert cell_of(25.0, 0.0, 10.0, 1, 5, True) == 3


def test_strides_overflow_and_nan_refused():
    from smlmspine._grid import check_finite, strides_for

    assert strides_for([3, 4, 5], "F")[0].tolist() == [1, 3, 12]
    assert strides_for([3, 4, 5], "C")[0].tolist() == [20, 5, 1]
    with pytest.raises(OverflowError):
        strides_for([2 ** 31, 2 ** 31, 2], "F")
    with pytest.raises(ValueError, match="finite"):
        check_finite(np.array([[0.0, np.nan]]))
    check_finite(np.zeros((0, 3)))


# --------------------------------------------------------------------------- DBSCAN

@pytest.mark.parametrize("d", [1, 2, 3])
def test_dbscan_equals_sklearn_on_edge_cases(d):
    from sklearn.cluster import DBSCAN

    from smlmspine.cluster._dbscan import grid_dbscan

    rng = np.random.default_rng(10 + d)
    for name, pts in _sets(rng, d).items():
        for eps, k in ((10.0, 4), (25.0, 6)):
            ref = DBSCAN(eps=eps, min_samples=k).fit_predict(pts)
            for fine in (True, False):
                lab, n = grid_dbscan(pts, eps=eps, min_samples=k, border="lowest",
                                     fine_grid=fine)
                np.testing.assert_array_equal(lab, ref, err_msg=f"{name} eps={eps} {fine}")
                assert n == ref.max() + 1


def test_dbscan_nearest_border_rule_brute_force():
    from scipy.spatial.distance import cdist
    from sklearn.cluster import DBSCAN

    from smlmspine.cluster._dbscan import grid_dbscan

    rng = np.random.default_rng(20)
    pts = np.concatenate([rng.normal(c, 8.0, (60, 2)) for c in ([0, 0], [38, 0], [0, 40])]
                         + [rng.uniform(-40, 80, (200, 2))])
    eps, k = 9.0, 5
    sk = DBSCAN(eps=eps, min_samples=k).fit(pts)
    lab, _ = grid_dbscan(pts, eps=eps, min_samples=k, border="nearest")
    core = np.zeros(len(pts), bool)
    core[sk.core_sample_indices_] = True
    np.testing.assert_array_equal(lab[core], sk.labels_[core])
    dist = cdist(pts, pts[core])
    for i in np.flatnonzero(~core):
        near = dist[i] <= eps
        if not near.any():
            assert lab[i] == -1
            continue
        dmin = dist[i][near].min()
        cand = sk.labels_[core][near][dist[i][near] == dmin]
        assert lab[i] == cand.min()


def test_dbscan_empty_input_and_nan_refused():
    from smlmspine.cluster import dbscan
    from smlmspine.cluster._dbscan import grid_dbscan
    from smlmspine.errors import SchemaError
    from smlmspine.schema import make_table

    lab, n = grid_dbscan(np.zeros((0, 3)), eps=5.0, min_samples=3)
    assert lab.shape == (0,) and n == 0
    with pytest.raises(SchemaError):
        dbscan(make_table({"x": [0.0, np.nan], "y": [0.0, 0.0]}), eps_nm=5.0)


# --------------------------------------------------------------------------- GridIndex

@pytest.mark.parametrize("d", [2, 3])
def test_grid_index_pairs_equal_kdtree(d):
    from scipy.spatial import cKDTree

    from smlmspine.drift._kernels import GridIndex

    rng = np.random.default_rng(30 + d)
    for name, ref in _sets(rng, d).items():
        q = np.concatenate([ref[:200] + rng.normal(0, 5, (min(200, len(ref)), d)),
                            rng.uniform(-50, 700, (300, d)) + ref.min(0),
                            np.full((1, d), 1e12)])  # far off the grid
        labels = rng.integers(0, 3, len(ref))
        for radius, r in ((30.0, 30.0), (30.0, 12.5)):
            for bounds in (None, (ref.min(0) + 20, ref.max(0) - 20)):
                gi = GridIndex(ref, radius, bounds=bounds, labels=labels)
                i, j, diff = gi.pairs(q, r, skip_label=1)
                got = set(zip(i.tolist(), j.tolist()))
                tree = cKDTree(ref)
                want = {(a, b) for b, hits in enumerate(tree.query_ball_point(q, r))
                        for a in hits if labels[a] != 1}
                if bounds is None:
                    assert got == want, name
                else:
                    # points outside the bounds sit in the border cells: pairs may be
                    # missed there, never invented
                    assert got <= want, name
                np.testing.assert_array_equal(diff, q[j] - ref[i])
    empty = GridIndex(rng.uniform(0, 10, (5, 2)), 3.0).pairs(np.zeros((0, 2)))
    assert all(len(a) == 0 for a in empty)
    with pytest.raises(ValueError, match="finite"):
        GridIndex(np.array([[0.0, np.nan]]), 3.0)
    with pytest.raises(ValueError, match="finite"):
        GridIndex(np.zeros((2, 2)), 3.0).pairs(np.array([[np.inf, 0.0]]))


# --------------------------------------------------------------------------- k-th neighbour

def test_kth_neighbor_distances_equal_kdtree():
    from scipy.spatial import cKDTree

    from smlmspine.envelope._alpha_kernels import kth_neighbor_distances

    rng = np.random.default_rng(40)
    n_grid = 0
    for name, pts in _sets(rng, 3).items():
        for k in (1, 2, 5):
            if k > len(pts):
                continue
            got = kth_neighbor_distances(pts, k)
            if got.size == 0:  # too clustered for one grid: the caller uses a k-d tree
                continue
            n_grid += 1
            want = cKDTree(pts).query(pts, k=k)[0]
            want = want if want.ndim == 1 else want[:, -1]
            np.testing.assert_array_equal(got, want, err_msg=f"{name} k={k}")
    assert n_grid >= 12  # most sets run on the grid


# --------------------------------------------------------------------------- blink linking

def _greedy_link(x, y, z, frame, r, rz, gap):
    """Reference of merge_blinks' fixed-radius linking: every burst is a candidate."""
    bursts = []  # [sum x, sum y, sum z, n, last frame]
    labels = np.empty(len(x), np.int64)
    for i in np.argsort(frame, kind="stable"):
        best, bestd = -1, 2.0
        for b, (sx, sy, sz, sn, last) in enumerate(bursts):
            if last < frame[i] - gap - 1 or last >= frame[i]:
                continue
            d2 = (x[i] - sx / sn) ** 2 + (y[i] - sy / sn) ** 2
            score = d2 / (r * r)
            if score <= 1.0 and abs(z[i] - sz / sn) <= rz and score < bestd:
                best, bestd = b, score
        if best < 0:
            best = len(bursts)
            bursts.append([0.0, 0.0, 0.0, 0.0, 0])
        s = bursts[best]
        s[0] += x[i]
        s[1] += y[i]
        s[2] += z[i]
        s[3] += 1.0
        s[4] = frame[i]
        labels[i] = best
    return labels


def test_merge_linking_equals_brute_force():
    from smlmspine.merge import merge_blinks
    from smlmspine.schema import make_table

    rng = np.random.default_rng(50)
    n_em = 300
    em = rng.uniform(0, 4000, (n_em, 3))
    e = rng.integers(0, n_em, 1500)
    frame = rng.integers(0, 300, 1500)
    x, y = em[e, 0] + rng.normal(0, 4, 1500), em[e, 1] + rng.normal(0, 4, 1500)
    z = em[e, 2] + rng.normal(0, 10, 1500)
    t = make_table({"x": x, "y": y, "z": z, "frame": frame})
    for gap in (0, 2):
        ref = _greedy_link(x, y, z, frame, 25.0, 60.0, gap)
        m = merge_blinks(t, radius_nm=25.0, radius_z_nm=60.0, max_gap_frames=gap)
        counts = np.bincount(ref)
        first = np.array([frame[ref == b].min() for b in range(counts.size)])
        assert m.num_rows == counts.size
        np.testing.assert_array_equal(m.column("n_merged").to_numpy(), counts)
        np.testing.assert_array_equal(m.column("first_frame").to_numpy(), first)
        mx = np.array([x[ref == b].mean() for b in range(counts.size)])
        np.testing.assert_allclose(m.column("x").to_numpy(), mx, rtol=0, atol=1e-9)
