"""HDBSCAN wrapper: recovery of known clusters, agreement with the hdbscan package."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from smlmspine.cluster import hdbscan
from smlmspine.errors import ParameterError
from smlmspine.schema import history, make_table

from ._data import gaussian_clusters, to_table


def _labels(xyz, **kw):
    return hdbscan(to_table(xyz), **kw).column("cluster_id").to_numpy()


@pytest.mark.parametrize("dims", [2, 3])
def test_recovers_separated_clusters(dims):
    xyz, truth = gaussian_clusters(20, 50, dims=dims, sigma_nm=15.0, spacing_nm=400.0,
                                   n_background=100, rng=11)
    labels = _labels(xyz, min_cluster_size=15)
    # HDBSCAN (eom) lets clusters absorb nearby uniform background, so the partition is
    # scored on the true cluster members; none of them may be noise.
    member = truth >= 0
    assert adjusted_rand_score(truth[member], labels[member]) >= 0.95
    assert (labels[member] >= 0).all()
    assert labels.max() + 1 == 20
    clean = _labels(xyz[member], min_cluster_size=15)
    assert adjusted_rand_score(truth[member], clean) >= 0.95


def test_same_partition_as_hdbscan_package_and_ordered_ids():
    import hdbscan as pkg

    xyz, _ = gaussian_clusters(8, 40, dims=3, sigma_nm=20.0, spacing_nm=300.0,
                               n_background=60, rng=12)
    ours = _labels(xyz, min_cluster_size=10, min_samples=5)
    ref = pkg.HDBSCAN(min_cluster_size=10, min_samples=5).fit_predict(xyz)
    np.testing.assert_array_equal(ours < 0, ref < 0)
    assert adjusted_rand_score(ref, ours) == 1.0
    first = [np.flatnonzero(ours == k)[0] for k in range(ours.max() + 1)]
    assert first == sorted(first)


def test_selection_epsilon_merges_close_clusters():
    a = np.random.default_rng(13).normal(0, 10, (60, 2))
    xyz = np.concatenate([a, a + [120.0, 0.0]])
    assert _labels(xyz, min_cluster_size=20).max() + 1 == 2
    merged = _labels(xyz, min_cluster_size=20, cluster_selection_epsilon_nm=200.0,
                     allow_single_cluster=True)
    assert merged.max() + 1 == 1


def test_groups_mask_and_small_inputs():
    xyz, _ = gaussian_clusters(2, 30, dims=2, rng=14)
    t = to_table(np.concatenate([xyz, xyz]), channel=np.repeat([0, 1], 60))
    labels = hdbscan(t, min_cluster_size=10, by="channel").column("cluster_id").to_numpy()
    assert labels.max() + 1 == 4 and set(labels[60:]) <= {-1, 2, 3}
    empty = hdbscan(make_table({"x": np.empty(0), "y": np.empty(0)}))
    assert empty.column("cluster_id").to_pylist() == []
    assert (_labels(xyz[:5], min_cluster_size=10) == -1).all()  # fewer than a cluster
    assert (_labels(np.zeros((12, 2)), min_cluster_size=5, min_samples=12) == -1).all()
    dup = np.repeat(np.array([[0.0, 0.0], [500.0, 500.0]]), 20, axis=0)
    assert set(_labels(dup, min_cluster_size=10)) == {0, 1}
    t2 = hdbscan(to_table(xyz), min_cluster_size=10)
    assert history(t2)[-1]["step"] == "cluster.hdbscan"


@pytest.mark.parametrize("kw", [{"min_cluster_size": 1}, {"min_samples": 0},
                                {"cluster_selection_epsilon_nm": -1.0},
                                {"cluster_selection_method": "best"}])
def test_bad_parameters(kw):
    with pytest.raises(ParameterError):
        hdbscan(to_table(np.zeros((20, 2))), **kw)


def test_recovers_simulated_synapses_per_channel():
    from smlmspine.coupling import BoxRegion
    from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses

    sim = synapses(populations=SynapsePopulations(n_pre=40, n_post=40, coupled_fraction=0.5),
                   rendering=SynapseRendering(locs_per_object=20, blinks_per_fluorophore=2,
                                              object_radius_nm=25.0, precision_nm=8.0),
                   region=BoxRegion(np.zeros(3), [20000.0] * 3), rng=5)
    truth = np.concatenate([sim.pre_truth.column("cluster_id").to_numpy(),
                            sim.post_truth.column("cluster_id").to_numpy() + 40])
    labels = hdbscan(sim.localizations(), min_cluster_size=10, by="channel")
    assert adjusted_rand_score(truth, labels.column("cluster_id").to_numpy()) >= 0.95
