"""Cluster statistics against analytic values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from smlmspine.cluster import CLUSTER_COLUMNS, cluster_statistics, dbscan
from smlmspine.errors import ParameterError, SchemaError
from smlmspine.schema import make_table, metadata

from ._data import gaussian_clusters, to_table


def _ball(n, radius, dims, rng):
    rng = np.random.default_rng(rng)
    v = rng.normal(size=(n, dims))
    v /= np.linalg.norm(v, axis=1)[:, None]
    return v * radius * rng.uniform(size=(n, 1)) ** (1 / dims)


def _stats(xyz, ids, **kw):
    return cluster_statistics(to_table(xyz, cluster_id=ids, **kw)).to_pydict()


def test_uniform_ball():
    r = 200.0
    n = 60000
    xyz = _ball(n, r, 3, rng=0) + [1000.0, -50.0, 30.0]
    s = _stats(xyz, np.zeros(len(xyz), dtype=int))
    volume = 4 / 3 * np.pi * r ** 3
    assert s["radius_of_gyration_nm"][0] == pytest.approx(np.sqrt(3 / 5) * r, rel=0.01)
    # the hull of a sample lies inside the ball; its deficit shrinks as N^(-1/2)
    assert s["convex_hull_volume_nm3"][0] == pytest.approx(volume, rel=0.03)
    assert s["convex_hull_volume_nm3"][0] < volume
    assert s["density_per_nm3"][0] == pytest.approx(n / volume, rel=0.03)
    assert s["centroid_x_nm"][0] == pytest.approx(1000.0, abs=3.0)
    for k in (1, 2, 3):  # isotropic: each axis sqrt(r^2 / 5)
        assert s[f"principal_axis_{k}_nm"][0] == pytest.approx(r / np.sqrt(5), rel=0.02)
    assert np.isnan(s["convex_hull_area_nm2"][0]) and np.isnan(s["density_per_nm2"][0])


def test_uniform_disk():
    r = 150.0
    xy = _ball(20000, r, 2, rng=1)
    s = _stats(xy, np.zeros(len(xy), dtype=int))
    assert s["radius_of_gyration_nm"][0] == pytest.approx(np.sqrt(1 / 2) * r, rel=0.01)
    assert s["convex_hull_area_nm2"][0] == pytest.approx(np.pi * r ** 2, rel=0.01)
    assert np.isnan(s["centroid_z_nm"][0]) and np.isnan(s["principal_axis_3_nm"][0])
    assert np.isnan(s["convex_hull_volume_nm3"][0]) and s["n_dims"] == [2]


def test_principal_axes_of_anisotropic_gaussian():
    rng = np.random.default_rng(2)
    sig = np.array([10.0, 40.0, 20.0])
    xyz = rng.normal(0, sig, (30000, 3))
    c, s_ = np.cos(0.7), np.sin(0.7)
    xyz = xyz @ np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]])  # rotated
    s = _stats(xyz, np.zeros(len(xyz), dtype=int))
    got = [s[f"principal_axis_{k}_nm"][0] for k in (1, 2, 3)]
    np.testing.assert_allclose(got, [40.0, 20.0, 10.0], rtol=0.02)
    assert s["radius_of_gyration_nm"][0] == pytest.approx(np.sqrt((sig ** 2).sum()), rel=0.02)


def test_several_clusters_sorted_with_frames_time_photons():
    xyz = np.array([[0, 0], [2, 0], [0, 2], [2, 2], [9, 9], [10, 10], [11, 11], [50, 50.0]])
    ids = np.array([3, 3, 3, 3, 1, 1, 1, -1])
    t = to_table(xyz, cluster_id=ids, frame=[5, 7, 1, 9, 4, 4, 100, 0],
                 time_s=[0.5, 0.7, 0.1, 0.9, 0.4, 0.4, 10.0, 0.0],
                 photons=[100.0, 200, 300, 400, 1, 2, 3, 1e6])
    s = cluster_statistics(t).to_pydict()
    assert s["cluster_id"] == [1, 3] and s["n_localizations"] == [3, 4]
    assert s["first_frame"] == [4, 1] and s["last_frame"] == [100, 9]
    assert s["time_span_s"] == pytest.approx([9.6, 0.8])
    assert s["photons_sum"] == [6.0, 1000.0]
    assert np.isnan(s["convex_hull_area_nm2"][0])  # collinear: degenerate hull
    assert s["convex_hull_area_nm2"][1] == 4.0 and s["density_per_nm2"][1] == 1.0
    assert s["centroid_x_nm"] == [10.0, 1.0]
    assert s["group"] == [-1, -1]


def test_absent_columns_give_null_and_nan():
    s = _stats(np.array([[0.0, 0.0, 0.0], [1, 0, 0], [0, 1, 0]]), np.zeros(3, dtype=int))
    assert s["first_frame"] == [None] and np.isnan(s["time_span_s"][0])
    assert np.isnan(s["photons_sum"][0])
    assert np.isnan(s["convex_hull_volume_nm3"][0])  # 3 points: no 3D hull
    single = _stats(np.array([[4.0, 5.0]]), np.array([0]))
    assert single["radius_of_gyration_nm"] == [0.0] and single["n_localizations"] == [1]
    dup = _stats(np.ones((5, 3)), np.zeros(5, dtype=int))
    assert dup["radius_of_gyration_nm"] == [0.0] and np.isnan(dup["convex_hull_volume_nm3"][0])


def test_group_column_from_clustering_by_channel():
    xyz, _ = gaussian_clusters(3, 30, dims=2, rng=3)
    t = to_table(np.concatenate([xyz, xyz]), channel=np.repeat([0, 2], 90))
    c = dbscan(t, eps_nm=30.0, min_samples=4, by="channel")
    s = cluster_statistics(c)
    assert s.column("group").to_pylist() == [0, 0, 0, 2, 2, 2]
    assert metadata(s)["group_by"] == "channel"
    assert cluster_statistics(c, by=None).column("group").to_pylist() == [-1] * 6
    merged = dbscan(t, eps_nm=30.0, min_samples=4)
    with pytest.raises(ParameterError, match="spans several values"):
        cluster_statistics(merged, by="channel")


def test_schema_units_and_empty():
    s = _stats(np.zeros((4, 2)), np.full(4, -1))
    assert s["cluster_id"] == []
    t = cluster_statistics(to_table(np.zeros((4, 3)), cluster_id=[0, 0, 1, 1]))
    assert t.column_names == list(CLUSTER_COLUMNS)
    for name, spec in CLUSTER_COLUMNS.items():
        f = t.schema.field(name)
        assert f.type == spec.type and f.metadata[b"unit"].decode() == spec.unit
    empty = make_table({"x": np.empty(0), "y": np.empty(0), "cluster_id": np.empty(0, int)})
    assert cluster_statistics(empty).num_rows == 0


def test_many_clusters_vectorised():
    rng = np.random.default_rng(4)
    n_clusters = 20000
    ids = rng.permutation(np.repeat(np.arange(n_clusters), 5))
    xyz = rng.normal(size=(ids.size, 3)) + ids[:, None] * 100.0
    s = cluster_statistics(to_table(xyz, cluster_id=ids), hulls=False).to_pydict()
    assert s["cluster_id"] == list(range(n_clusters))
    np.testing.assert_allclose(s["centroid_x_nm"], np.arange(n_clusters) * 100.0, atol=3.0)


def test_errors():
    with pytest.raises(SchemaError, match="no 'cluster_id'"):
        cluster_statistics(to_table(np.zeros((3, 2))))
    with pytest.raises(SchemaError, match="'y' holds 1 NaN"):
        cluster_statistics(to_table(np.array([[0.0, np.nan]]), cluster_id=[0]))
    t = to_table(np.zeros((3, 2)), cluster_id=[0, 0, 0])
    assert cluster_statistics(t).num_rows == 1
    bad = t.set_column(2, "cluster_id", pa.array([0.5, 0.5, 0.5]))
    with pytest.raises(SchemaError, match="integers"):
        cluster_statistics(bad)


def test_2d_hull_kernel_matches_qhull():
    from scipy.spatial import ConvexHull, QhullError

    rng = np.random.default_rng(5)
    counts = rng.integers(1, 30, 400)
    counts[:3] = [3, 4, 2]
    ids = np.repeat(np.arange(counts.size), counts)
    xy = np.round(rng.normal(size=(ids.size, 2)) * rng.uniform(1, 80, (ids.size, 1)), 1)
    xy[:3] = [[0, 0], [1, 1], [2, 2]]  # collinear
    xy[3:7] = [[5, 5]] * 4  # identical
    got = cluster_statistics(to_table(xy, cluster_id=ids)).column("convex_hull_area_nm2")
    ref = np.full(counts.size, np.nan)
    for k in range(counts.size):
        try:
            ref[k] = ConvexHull(xy[ids == k]).volume
        except (QhullError, ValueError):
            pass
    ref[ref <= 0] = np.nan
    assert np.isnan(got.to_numpy()[:3]).all()
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-9, equal_nan=True)


def test_3d_hull_kernel_matches_qhull():
    from scipy.spatial import ConvexHull, QhullError

    from smlmspine.cluster._hull import hull_volumes_3d

    rng = np.random.default_rng(6)
    counts = rng.integers(1, 60, 300)
    counts[:4] = [4, 5, 3, 6]
    ids = np.repeat(np.arange(counts.size), counts)
    xyz = np.round(rng.normal(size=(ids.size, 3)) * rng.uniform(1, 80, (ids.size, 1)), 1)
    xyz[:4] = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]  # coplanar
    xyz[4:9] = [[1, 2, 3]] * 5  # identical
    got = cluster_statistics(to_table(xyz, cluster_id=ids)).column("convex_hull_volume_nm3")
    ref = np.full(counts.size, np.nan)
    for k in range(counts.size):
        try:
            ref[k] = ConvexHull(xyz[ids == k]).volume
        except (QhullError, ValueError):
            pass
    ref[ref <= 0] = np.nan
    assert np.isnan(got.to_numpy()[:3]).all()
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-9, equal_nan=True)
    ball = _ball(3000, 100.0, 3, rng=7)  # one big cluster through the kernel, not Qhull
    vol = hull_volumes_3d(ball, np.array([0]), np.array([3000]), max_points=5000)
    assert vol[0] == pytest.approx(ConvexHull(ball).volume, rel=1e-9)
