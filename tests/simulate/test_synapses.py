"""The synapse simulator: truth consistent with the parameters."""

import numpy as np
import pytest

from smlmspine.coupling import MaskRegion
from smlmspine.errors import ParameterError
from smlmspine.schema import coordinates, validate
from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses


@pytest.mark.parametrize("ndim", [2, 3])
def test_truth_matches_parameters(ndim):
    sim = synapses(populations=SynapsePopulations(n_pre=2000, n_post=1000, coupled_fraction=0.4,
                                                  distance_mean_nm=100, distance_sd_nm=30),
                   ndim=ndim, rng=0)
    assert sim.n_coupled == 400 and sim.coupled_fraction_post == 0.4
    assert sim.coupled_fraction_pre == pytest.approx(0.2)
    pre, post = coordinates(sim.pre_objects), coordinates(sim.post_objects)
    assert pre.shape == (2000, ndim) and post.shape == (1000, ndim)
    assert sim.region.contains(pre).all() and sim.region.contains(post).all()
    i = sim.pairs.column("pre_index").to_numpy()
    j = sim.pairs.column("post_index").to_numpy()
    d = sim.pairs.column("distance_nm").to_numpy()
    assert len(set(i)) == i.size and len(set(j)) == j.size  # one partner each
    np.testing.assert_allclose(np.linalg.norm(pre[i] - post[j], axis=1), d)
    assert d.mean() == pytest.approx(100, abs=4) and d.std() == pytest.approx(30, abs=4)
    assert sim.mean_coupling_distance_nm == pytest.approx(d.mean())


def test_localizations_and_truth():
    sim = synapses(populations=SynapsePopulations(n_pre=100, n_post=100, coupled_fraction=0.5),
                   rendering=SynapseRendering(locs_per_object=5, blinks_per_fluorophore=2,
                                              object_radius_nm=30, precision_nm=5),
                   ndim=3, rng=1)
    locs = sim.pre_localizations
    validate(locs)
    ids = sim.pre_truth.column("cluster_id").to_numpy()
    assert ids.size == locs.num_rows and locs.num_rows > 500
    xyz = coordinates(locs)
    centres = coordinates(sim.pre_objects)[ids]
    assert np.percentile(np.linalg.norm(xyz - centres, axis=1), 95) < 30 + 4 * 5 * np.sqrt(3)
    both = sim.localizations()
    assert set(both.column("channel").to_pylist()) == {0, 1}
    assert sim.objects().num_rows == 200


def test_mask_region_and_reproducibility():
    m = np.zeros((50, 50), bool)
    m[10:40, 5:45] = True
    a = synapses(populations=SynapsePopulations(n_pre=200, n_post=200),
                 region=MaskRegion(m, voxel_size_nm=100.0), rng=3)
    b = synapses(populations=SynapsePopulations(n_pre=200, n_post=200),
                 region=MaskRegion(m, voxel_size_nm=100.0), rng=3)
    assert a.pre_objects.equals(b.pre_objects) and a.pairs.equals(b.pairs)
    assert a.region.contains(coordinates(a.post_objects)).all()


def test_bad_parameters():
    with pytest.raises(ParameterError, match="coupled_fraction"):
        synapses(populations=SynapsePopulations(coupled_fraction=1.5))
    with pytest.raises(ParameterError, match="region= must be a smlmspine.coupling region"):
        synapses(region=np.ones((5, 5), bool))
    with pytest.raises(ParameterError, match="ndim=3 but the region is 2D"):
        synapses(region=MaskRegion(np.ones((5, 5), bool), voxel_size_nm=100.0), ndim=3)
    with pytest.raises(ParameterError, match="ndim"):
        synapses(ndim=4)
