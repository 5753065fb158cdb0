"""coupling.cluster_centroids and coupling.soda_cross_h (what `smlmspine couple` computes)."""

import json

import numpy as np
import pytest

from smlmspine.cli import main
from smlmspine.coupling import (BoxRegion, cluster_centroids, cross_k_envelope, soda,
                                soda_cross_h)
from smlmspine.coupling._points import as_points
from smlmspine.errors import ParameterError, QualityWarning, SchemaError
from smlmspine.io import write
from smlmspine.schema import make_table, with_columns
from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses


@pytest.mark.parametrize("ndim", [2, 3])
def test_cluster_centroids_are_the_mean_of_each_cluster(ndim):
    sim = synapses(populations=SynapsePopulations(n_pre=60, n_post=10),
                   rendering=SynapseRendering(locs_per_object=12, object_radius_nm=20,
                                              precision_nm=4),
                   ndim=ndim, rng=4)
    ids = sim.pre_truth.column("cluster_id").to_numpy()
    table = with_columns(sim.pre_localizations, {"cluster_id": ids})
    pts = as_points(cluster_centroids(table))
    xyz = as_points(sim.pre_localizations)
    present = np.unique(ids)
    assert pts.shape == (present.size, ndim)
    np.testing.assert_allclose(pts, [xyz[ids == i].mean(axis=0) for i in present], atol=1e-9)
    # ... and close to the true object centres
    truth = as_points(sim.pre_objects)[present]
    assert np.median(np.linalg.norm(pts - truth, axis=1)) < 15


def test_cluster_centroids_leave_noise_out_and_refuse_unclustered():
    t = make_table({"x": [0.0, 4.0, 100.0], "y": [0.0, 0.0, 50.0], "cluster_id": [3, 3, -1]})
    assert as_points(cluster_centroids(t)).tolist() == [[2.0, 0.0]]
    with pytest.raises(SchemaError, match="'cluster_id' column"):
        cluster_centroids(make_table({"x": [0.0], "y": [0.0]}))
    with pytest.raises(ParameterError, match="no clustered localization"):
        cluster_centroids(make_table({"x": [0.0], "y": [0.0], "cluster_id": [-1]}))


def test_soda_cross_h_detects_coupling_and_not_independence():
    box = BoxRegion([0, 0], [10000, 10000])
    coupled = synapses(populations=SynapsePopulations(n_pre=400, n_post=400,
                                                      coupled_fraction=0.8, distance_mean_nm=60,
                                                      distance_sd_nm=10),
                       region=BoxRegion((0, 0), (10000, 10000)), rng=6)
    res = soda(coupled.pre_objects, coupled.post_objects, region=box, r_max_nm=200, ring_nm=20)
    rip = soda_cross_h(res, coupled.pre_objects, coupled.post_objects, region=box, rng=0)
    np.testing.assert_array_equal(rip.radii_nm, res.r_edges_nm[1:])
    assert rip.n_simulations == 19 and rip.null == "csr"
    assert rip.p_value == pytest.approx(0.05)             # observed beyond every simulation
    assert np.all(rip.h_nm[3:] > rip.h_high_nm[3:])       # from 80 nm on, above the envelope
    free = synapses(populations=SynapsePopulations(n_pre=400, n_post=400, coupled_fraction=0.0),
                    region=BoxRegion((0, 0), (10000, 10000)), rng=6)
    res0 = soda(free.pre_objects, free.post_objects, region=box, r_max_nm=200, ring_nm=20)
    rip0 = soda_cross_h(res0, free.pre_objects, free.post_objects, region=box, rng=0)
    assert rip0.p_value > 0.1


def test_soda_cross_h_is_cross_k_envelope_on_the_points_inside():
    rng = np.random.default_rng(2)
    pre, post = rng.uniform(0, 3000, (200, 2)), rng.uniform(0, 3000, (200, 2))
    box = BoxRegion([0, 0], [2000, 3000])
    with pytest.warns(QualityWarning, match="outside the region"):
        res = soda(pre, post, region=box, r_max_nm=150, ring_nm=30, outside="drop")
    got = soda_cross_h(res, pre, post, region=box, null="shift", n_simulations=9, rng=3)
    inside1, inside2 = pre[box.contains(pre)], post[box.contains(post)]
    want = cross_k_envelope(inside1, inside2, radii_nm=[30, 60, 90, 120, 150], region=box,
                            null="shift", n_simulations=9, rng=3)
    np.testing.assert_array_equal(got.h_nm, want.h_nm)
    np.testing.assert_array_equal(got.h_high_nm, want.h_high_nm)
    assert got.p_value == want.p_value and got.n_pre == inside1.shape[0]
    with pytest.raises(ParameterError, match="SodaResult"):
        soda_cross_h("soda", pre, post)


def test_cli_summary_carries_the_api_value(tmp_path):
    sim = synapses(populations=SynapsePopulations(n_pre=200, n_post=200, coupled_fraction=0.5,
                                                  distance_mean_nm=80, distance_sd_nm=15),
                   region=BoxRegion((0, 0), (6000, 6000)), rng=1)
    write(sim.pre_objects, tmp_path / "pre.parquet")
    write(sim.post_objects, tmp_path / "post.parquet")
    assert main(["couple", str(tmp_path / "pre.parquet"), str(tmp_path / "post.parquet"),
                 "-o", str(tmp_path / "o"), "--region", "0,0,6000,6000", "--r-max-nm", "200",
                 "--seed", "5"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    box = BoxRegion([0, 0], [6000, 6000])
    res = soda(sim.pre_objects, sim.post_objects, region=box, r_max_nm=200, rng=5)
    rip = soda_cross_h(res, sim.pre_objects, sim.post_objects, region=box, rng=5)
    assert summary["cross_h_p_value"] == rip.p_value
    assert summary["coupling_index_post"] == res.coupling_index_post
