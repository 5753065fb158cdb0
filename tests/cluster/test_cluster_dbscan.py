"""Grid DBSCAN: equality with scikit-learn, recovery of known clusters, edge cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from smlmspine.cluster import dbscan
from smlmspine.errors import ParameterError, SchemaError
from smlmspine.schema import history, make_table, metadata

from ._data import gaussian_clusters, to_table


def _sklearn(xyz, eps, min_samples):
    # kd_tree compares squared distances with eps**2, as the grid kernel does (the brute
    # force path uses the inexact |x|^2 + |y|^2 - 2xy expansion).
    model = DBSCAN(eps=eps, min_samples=min_samples, algorithm="kd_tree").fit(xyz)
    core = np.zeros(len(xyz), dtype=bool)
    core[model.core_sample_indices_] = True
    return model.labels_, core


def _labels(xyz, **kw):
    return dbscan(to_table(xyz), **kw).column("cluster_id").to_numpy()


def _check_against_sklearn(xyz, eps, min_samples):
    ref, core = _sklearn(xyz, eps, min_samples)
    # border="lowest" is scikit-learn's rule: identical labels, same numbering
    lowest = _labels(xyz, eps_nm=eps, min_samples=min_samples, border="lowest")
    np.testing.assert_array_equal(lowest, ref)
    # border="nearest": same core points and clusters; a border point gets the cluster of
    # its nearest core point, so it equals scikit-learn's where only one cluster is near
    nearest = _labels(xyz, eps_nm=eps, min_samples=min_samples)
    np.testing.assert_array_equal(nearest[core], ref[core])
    np.testing.assert_array_equal(nearest < 0, ref < 0)
    d2 = ((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(-1)
    for i in np.flatnonzero(~core & (ref >= 0)):
        near = core & (d2[i] <= eps * eps)
        candidates = set(ref[near])
        if len(candidates) == 1:
            assert nearest[i] == ref[i]
        else:
            dist = np.where(near, d2[i], np.inf)
            best = ref[dist == dist.min()]
            assert nearest[i] == best.min()


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_sklearn_on_clustered_data(dims, seed):
    xyz, _ = gaussian_clusters(12, 25, dims=dims, sigma_nm=25.0, spacing_nm=120.0,
                               n_background=150, rng=seed)
    xyz = np.round(xyz)  # integer coordinates: many exact-eps distances and ties
    _check_against_sklearn(xyz, 20.0, 4)


@pytest.mark.parametrize("dims", [2, 3])
def test_equals_sklearn_on_uniform_data(dims):
    xyz = np.random.default_rng(5).uniform(0, 1000, (1500, dims))
    _check_against_sklearn(xyz, 60.0 if dims == 2 else 110.0, 5)


@settings(max_examples=60, deadline=None)
@given(dims=st.sampled_from([2, 3]),
       pts=st.lists(st.tuples(*[st.integers(0, 40)] * 3), min_size=1, max_size=50),
       scale=st.sampled_from([1.0, 0.37, 12.5]),
       eps=st.sampled_from([1.0, 2.0, 3.5, 7.0]),
       min_samples=st.integers(1, 6))
def test_equals_sklearn_property(dims, pts, scale, eps, min_samples):
    xyz = np.asarray(pts, dtype=float)[:, :dims] * scale
    _check_against_sklearn(xyz, eps * scale, min_samples)


@pytest.mark.parametrize("dims", [2, 3])
def test_recovers_separated_clusters(dims):
    xyz, truth = gaussian_clusters(40, 60, dims=dims, sigma_nm=15.0, spacing_nm=400.0,
                                   n_background=200, rng=3)
    labels = _labels(xyz, eps_nm=25.0 if dims == 2 else 35.0, min_samples=6)
    assert adjusted_rand_score(truth, labels) >= 0.95
    assert labels.max() + 1 == 40


def test_ids_numbered_by_first_core_point():
    xyz, _ = gaussian_clusters(10, 20, dims=2, rng=4)
    perm = np.random.default_rng(0).permutation(len(xyz))
    labels = _labels(xyz[perm], eps_nm=30.0, min_samples=3)
    first = [np.flatnonzero(labels == k)[0] for k in range(labels.max() + 1)]
    assert first == sorted(first)


def test_by_channel_clusters_each_channel_alone():
    xyz, _ = gaussian_clusters(4, 30, dims=2, rng=6)
    both = np.concatenate([xyz, xyz + 1.0])  # two channels on top of each other
    channel = np.repeat([0, 1], len(xyz))
    t = to_table(both, channel=channel)
    merged = dbscan(t, eps_nm=30.0, min_samples=4).column("cluster_id").to_numpy()
    split = dbscan(t, eps_nm=30.0, min_samples=4, by="channel").column("cluster_id").to_numpy()
    assert merged.max() + 1 == 4
    assert split.max() + 1 == 8
    for k in range(8):  # each cluster lies in one channel
        assert len(set(channel[split == k])) == 1
    alone = _labels(xyz + 1.0, eps_nm=30.0, min_samples=4)
    np.testing.assert_array_equal(split[channel == 1], np.where(alone >= 0, alone + 4, -1))
    out = dbscan(t, eps_nm=30.0, min_samples=4, by="channel")
    assert metadata(out)["cluster_by"] == "channel"


def test_by_spine_skipping_unassigned():
    xyz, _ = gaussian_clusters(3, 30, dims=3, rng=7)
    spine = np.repeat([-1, 0, 1], 30)
    t = to_table(xyz, spine_id=spine)
    labels = dbscan(t, eps_nm=40.0, min_samples=4, by="spine_id",
                    skip_groups=[-1]).column("cluster_id").to_numpy()
    assert (labels[spine == -1] == -1).all()
    assert set(labels[spine >= 0]) == {0, 1}


def test_mask_restricts_rows_and_excludes_their_nan():
    xyz, _ = gaussian_clusters(2, 30, dims=2, rng=8)
    xyz[0] = np.nan
    mask = np.ones(len(xyz), dtype=bool)
    mask[:30] = False
    labels = _labels(xyz, eps_nm=30.0, min_samples=4, mask=mask)
    assert (labels[:30] == -1).all() and (labels[30:] == 0).sum() >= 28
    with pytest.raises(SchemaError, match=r"'x' holds 1 NaN.*row 0"):
        _labels(xyz, eps_nm=30.0, min_samples=4)


def test_dims_2_ignores_z():
    xyz = np.zeros((20, 3))
    xyz[10:, 2] = 500.0
    assert _labels(xyz, eps_nm=10.0, min_samples=3).max() == 1
    assert _labels(xyz, eps_nm=10.0, min_samples=3, dims=2).max() == 0
    with pytest.raises(SchemaError, match="no 'z'"):
        _labels(xyz[:, :2], eps_nm=10.0, dims=3)


def test_empty_single_duplicate_and_all_noise():
    empty = make_table({"x": np.empty(0), "y": np.empty(0)})
    out = dbscan(empty)
    assert out.num_rows == 0 and out.column("cluster_id").type == pa.int64()
    one = np.array([[5.0, 5.0]])
    assert _labels(one, min_samples=1).tolist() == [0]
    assert _labels(one, min_samples=2).tolist() == [-1]
    dup = np.repeat(np.array([[1.0, 2.0, 3.0]]), 6, axis=0)
    assert _labels(dup, eps_nm=1e-3, min_samples=6).tolist() == [0] * 6
    assert _labels(dup, eps_nm=1e-3, min_samples=7).tolist() == [-1] * 6
    sparse = np.arange(50, dtype=float)[:, None] * np.array([[100.0, 0.0]])
    assert (_labels(sparse, eps_nm=40.0, min_samples=2) == -1).all()


def test_input_not_mutated_and_history_recorded():
    xyz, _ = gaussian_clusters(2, 20, dims=3, rng=9)
    t = to_table(xyz, cluster_id=np.full(len(xyz), 7))
    before = t.to_pydict(), t.schema.metadata
    out = dbscan(t, eps_nm=30.0, min_samples=3)
    assert (t.to_pydict(), t.schema.metadata) == before
    assert out.column_names == t.column_names  # cluster_id replaced, not duplicated
    step = history(out)[-1]
    assert step["step"] == "cluster.dbscan"
    assert step["params"]["eps_nm"] == 30.0 and step["params"]["n_clusters"] == 2


@pytest.mark.parametrize("kw, match", [
    ({"eps_nm": 0.0}, "eps_nm"), ({"eps_nm": float("nan")}, "eps_nm"),
    ({"min_samples": 0}, "min_samples"), ({"min_samples": 2.5}, "min_samples"),
    ({"border": "first"}, "border"), ({"dims": 4}, "dims"),
    ({"mask": np.ones(3, dtype=bool)}, "shape"), ({"mask": np.ones(10)}, "boolean"),
    ({"skip_groups": [-1]}, "needs by"),
])
def test_bad_parameters(kw, match):
    t = to_table(np.zeros((10, 2)))
    with pytest.raises(ParameterError, match=match):
        dbscan(t, **kw)


def test_bad_tables():
    with pytest.raises(SchemaError, match="pyarrow.Table"):
        dbscan(np.zeros((3, 2)))
    with pytest.raises(SchemaError, match="no such column"):
        dbscan(to_table(np.zeros((3, 2))), by="channel")
    with pytest.raises(ParameterError, match="too small"):
        dbscan(to_table(np.array([[0.0, 0.0], [1e15, 1e15]])), eps_nm=1e-6)


def test_int64_index_path_and_kernel_input_untouched():
    from smlmspine.cluster._dbscan import grid_dbscan

    xyz, _ = gaussian_clusters(6, 30, dims=3, sigma_nm=25.0, spacing_nm=150.0,
                               n_background=100, rng=10)
    before = xyz.copy()
    small, k32 = grid_dbscan(xyz, eps=30.0, min_samples=4, border="lowest")
    wide, k64 = grid_dbscan(xyz, eps=30.0, min_samples=4, border="lowest",
                            index_dtype=np.int64)
    np.testing.assert_array_equal(xyz, before)  # overwrite_input=False keeps the input
    np.testing.assert_array_equal(small, wide)
    np.testing.assert_array_equal(small, _sklearn(xyz, 30.0, 4)[0])
    assert k32 == k64 == small.max() + 1


@pytest.mark.parametrize("ndim", [2, 3])
def test_recovers_simulated_synapses_per_channel(ndim):
    from scipy.spatial.distance import pdist

    from smlmspine.coupling import BoxRegion
    from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses

    sim = synapses(populations=SynapsePopulations(n_pre=40, n_post=40, coupled_fraction=0.5),
                   rendering=SynapseRendering(locs_per_object=20, blinks_per_fluorophore=2,
                                              object_radius_nm=25.0, precision_nm=8.0),
                   region=BoxRegion(np.zeros(ndim), [20000.0] * ndim), rng=5)
    objects = sim.objects()
    centres = np.column_stack([objects.column(c).to_numpy() for c in "xyz"[:ndim]])
    channel = objects.column("channel").to_numpy()
    for c in (0, 1):  # well separated within a channel: the premise of the test
        assert pdist(centres[channel == c]).min() > 500.0
    table = sim.localizations()
    truth = np.concatenate([sim.pre_truth.column("cluster_id").to_numpy(),
                            sim.post_truth.column("cluster_id").to_numpy() + 40])
    labels = dbscan(table, eps_nm=40.0, min_samples=4, by="channel").column("cluster_id")
    assert adjusted_rand_score(truth, labels.to_numpy()) >= 0.95
    # coupled pre/post pairs sit ~100 nm apart: without by= some of them merge
    merged = dbscan(table, eps_nm=40.0, min_samples=4).column("cluster_id").to_numpy()
    assert merged.max() + 1 < 80


@pytest.mark.parametrize("dims", [2, 3])
def test_dense_cluster_and_eps_grid_fallback(dims):
    from smlmspine.cluster._dbscan import grid_dbscan

    rng = np.random.default_rng(11)
    fiducial = rng.normal(0, 8.0, (2500, dims))  # thousands of localizations within eps
    xyz = np.concatenate([fiducial, fiducial[:200] + 60.0, rng.uniform(-400, 400, (400, dims))])
    ref = _sklearn(xyz, 15.0, 5)[0]
    fine, _ = grid_dbscan(xyz, eps=15.0, min_samples=5, border="lowest")
    coarse, _ = grid_dbscan(xyz, eps=15.0, min_samples=5, border="lowest", fine_grid=False)
    np.testing.assert_array_equal(fine, ref)
    np.testing.assert_array_equal(coarse, ref)


def test_progress_bar_over_groups(capsys):
    xyz, _ = gaussian_clusters(4, 20, dims=2, rng=12)
    t = to_table(xyz, spine_id=np.repeat([0, 1, 2, 3], 20))
    labels = dbscan(t, eps_nm=30.0, min_samples=4, by="spine_id", progress=True)
    assert labels.column("cluster_id").to_numpy().max() == 3
    assert "clustering groups" in capsys.readouterr().err
