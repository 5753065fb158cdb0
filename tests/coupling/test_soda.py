"""SODA: analytic moments against Monte Carlo, accuracy against simulator truth, pitfalls."""

import warnings

import numpy as np
import pytest

from smlmspine.coupling import BoxRegion, MaskRegion, ring_moments, soda
from smlmspine.coupling._geometry import ball_intersection, disk_intersection, ring_overlap_matrix
from smlmspine.coupling._soda import _boundary_terms, _overlap_sum, _pairs, _ring_index
from smlmspine.errors import ParameterError, QualityWarning
from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses


def _clustered_pre(region, rng, d):
    c = region.sample(30, rng)
    pre = np.repeat(c, 5, axis=0) + rng.normal(0, 40, (150, d))
    return pre[region.contains(pre)]


@pytest.mark.parametrize("region", [BoxRegion([0, 0], [2000, 2000]),
                                    BoxRegion([0, 0, 0], [1000, 1000, 1000]),
                                    MaskRegion(np.ones((40, 40), bool), voxel_size_nm=50.0)],
                         ids=["box2d", "box3d", "mask2d"])
def test_analytic_moments_match_monte_carlo(region):
    """Mean and variance of the edge-corrected ring counts under CSR of population 2,
    with clustered population 1 near the edges (boundary and overlap terms matter)."""
    rng = np.random.default_rng(0)
    d = region.ndim
    pre = _clustered_pre(region, rng, d)
    edges = np.linspace(0, 200, 11)
    n2 = 200
    B, near, ratio = _boundary_terms(pre, region, edges, d)
    mu, cov = ring_moments(n1=len(pre), n2=n2, measure=region.measure, edges_nm=edges, ndim=d,
                           boundary_sum=B, overlap_sum=_overlap_sum(pre, edges, d, near=near,
                                                                    ratio=ratio))
    sims = []
    for _ in range(300):
        i, _, dist = _pairs(pre, region.sample(n2, rng), 200.0)
        sims.append(np.bincount(_ring_index(dist, edges), weights=region.edge_weights(pre[i], dist),
                                minlength=10))
    sims = np.array(sims)
    se = np.sqrt(np.diag(cov) / sims.shape[0])
    assert np.all(np.abs(sims.mean(axis=0) - mu) <= 4 * se + 0.01 * mu)
    np.testing.assert_allclose(sims.var(axis=0, ddof=1), np.diag(cov), rtol=0.3)
    # without boundary and overlap terms the variance is far off (what the terms fix)
    _, naive = ring_moments(n1=len(pre), n2=n2, measure=region.measure, edges_nm=edges, ndim=d)
    assert np.max(np.abs(sims.var(axis=0) / np.diag(naive) - 1)) > 1.0


def test_counts_beyond_int32_do_not_overflow():
    n = 100_000  # n1 * n2 = 1e10 > 2^31 (and n1^2 n2 > 2^63)
    mu, cov = ring_moments(n1=np.int32(n), n2=np.int32(n), measure=1e14,
                           edges_nm=np.array([0, 10, 20]), ndim=2)
    a = np.pi * np.array([100.0, 300.0])
    np.testing.assert_allclose(mu, 1e10 * a / 1e14)
    np.testing.assert_allclose(np.diag(cov), 1e5 * (1e5 * a / 1e14 - 1e10 * a ** 2 / 1e28))
    assert np.all(np.diag(cov) > 0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_edge_fraction_on_the_boundary_is_one_half(ndim):
    """beta(0) = 2: a point on a flat edge sees half of any small circle/sphere."""
    box = BoxRegion(np.zeros(ndim), np.full(ndim, 1000.0))
    c = np.full((3, ndim), 500.0)
    c[:, 0] = 0.0
    np.testing.assert_allclose(box.fraction_inside(c, [1e-3, 10.0, 300.0]), 0.5, atol=1e-6)
    np.testing.assert_allclose(box.edge_weights(c, [1e-3, 10.0, 300.0]), 2.0, atol=1e-5)
    corner = np.zeros((1, ndim))
    assert box.fraction_inside(corner, [100.0])[0] == pytest.approx(0.5 ** ndim, abs=1e-6)
    mask = MaskRegion(np.ones((20,) * ndim, bool), voxel_size_nm=50.0)
    # the mask quadrature converges to the same value, in any unit system
    assert mask.fraction_inside(c, [10.0, 300.0]) == pytest.approx([0.5, 0.5], abs=0.01)
    mask_um = MaskRegion(np.ones((20,) * ndim, bool), voxel_size_nm=0.05)
    assert mask_um.fraction_inside(c / 1000, [0.3])[0] == pytest.approx(0.5, abs=0.01)


def test_sphere_fraction_against_cap_formula():
    box = BoxRegion([0, 0, 0], [1000, 1000, 1000])
    # plane at distance e cuts a cap of area fraction (1 - e/r)/2
    for e, r in [(100, 200), (50, 300), (10, 11)]:
        f = box.fraction_inside([[e, 500, 500]], [r])[0]
        assert f == pytest.approx(1 - (1 - e / r) / 2, abs=1e-4)


def test_overlap_includes_pairs_between_rmax_and_2rmax():
    """Two pre points 1.5 r_max apart: their outer rings overlap and must be counted."""
    r_max = 100.0
    edges = np.linspace(0, r_max, 6)
    pre = np.array([[0.0, 0.0], [150.0, 0.0]])
    S = _overlap_sum(pre, edges, 2)
    assert S.sum() > 0
    # total overlap of the two disks (both orders) = 2 * lens area of radius r_max at 150
    assert S.sum() == pytest.approx(2 * disk_intersection(r_max, r_max, 150.0), rel=1e-3)
    np.testing.assert_allclose(S, ring_overlap_matrix(edges, [150.0], 2) * 1
                               + ring_overlap_matrix(edges, [150.0], 2).T, rtol=1e-3)


def test_lens_volumes_against_monte_carlo():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-100, 100, (400000, 3))
    inside = (np.linalg.norm(pts, axis=1) <= 60) & (np.linalg.norm(pts - [50, 0, 0], axis=1) <= 80)
    mc = inside.mean() * 200 ** 3
    assert ball_intersection(60.0, 80.0, 50.0) == pytest.approx(mc, rel=0.02)
    pts2 = pts[:, :2]
    inside2 = (np.linalg.norm(pts2, axis=1) <= 60) & (np.linalg.norm(pts2 - [50, 0], axis=1) <= 80)
    assert disk_intersection(60.0, 80.0, 50.0) == pytest.approx(inside2.mean() * 200 ** 2, rel=0.02)


_CASES = [(d, m, s, a) for d in (2, 3) for (m, s) in ((50, 15), (100, 30)) for a in (0.25, 0.5, 0.75)]


@pytest.mark.parametrize("ndim,mean,sd,alpha", _CASES)
def test_accuracy_against_simulator_truth(ndim, mean, sd, alpha):
    hi = (20000, 20000) if ndim == 2 else (6000, 6000, 6000)
    sim = synapses(populations=SynapsePopulations(n_pre=1000, n_post=1000,
                                                  coupled_fraction=alpha, distance_mean_nm=mean,
                                                  distance_sd_nm=sd),
                   region=BoxRegion(np.zeros(len(hi)), hi), rng=11)
    res = soda(sim.pre_objects, sim.post_objects, region=sim.region, r_max_nm=300, ring_nm=10)
    assert res.coupled and res.p_value < 1e-6
    assert abs(res.coupling_index_post - sim.coupled_fraction_post) <= 0.05
    assert abs(res.coupling_index_pre - sim.coupled_fraction_pre) <= 0.05
    assert abs(res.mean_coupling_distance_weighted_nm - sim.mean_coupling_distance_nm) <= 10


def test_bias_correction_recovers_broad_coupling():
    """With broad distances plain SODA misses the tails; the correction does not."""
    errs, errs0 = [], []
    for seed in range(4):
        sim = synapses(populations=SynapsePopulations(n_pre=1000, n_post=1000,
                                                      coupled_fraction=0.5, distance_mean_nm=100,
                                                      distance_sd_nm=30),
                       region=BoxRegion((0, 0), (20000, 20000)), rng=seed)
        kw = dict(region=sim.region, r_max_nm=300, ring_nm=10)
        errs.append(soda(sim.pre_objects, sim.post_objects, **kw).coupling_index_post - 0.5)
        errs0.append(soda(sim.pre_objects, sim.post_objects, bias_correction=False,
                          **kw).coupling_index_post - 0.5)
    assert np.mean(errs0) < -0.02          # plain SODA underestimates
    assert abs(np.mean(errs)) < 0.015       # corrected
    assert abs(np.mean(errs)) < abs(np.mean(errs0)) / 2


def test_false_positive_rate_at_alpha_zero():
    """Small version of the validation (benchmarks/validate_coupling.py runs 100)."""
    false = 0
    for seed in range(20):
        sim = synapses(populations=SynapsePopulations(n_pre=500, n_post=500, coupled_fraction=0.0),
                       region=BoxRegion((0, 0), (15000, 15000)), rng=100 + seed)
        res = soda(sim.pre_objects, sim.post_objects, region=sim.region, r_max_nm=300, ring_nm=10)
        false += res.coupled
        assert res.coupling_index_post == 0.0 or res.coupled
    assert false <= 1


def test_monte_carlo_null_on_raw_localizations():
    sim = synapses(populations=SynapsePopulations(n_pre=200, n_post=200, coupled_fraction=0.6,
                                                  distance_mean_nm=80, distance_sd_nm=15),
                   rendering=SynapseRendering(locs_per_object=4, blinks_per_fluorophore=3,
                                              precision_nm=8),
                   region=BoxRegion((0, 0), (8000, 8000)), rng=5)
    pre = sim.pre_localizations.filter(_inside(sim, sim.pre_localizations))
    post = sim.post_localizations.filter(_inside(sim, sim.post_localizations))
    res = soda(pre, post, region=sim.region, r_max_nm=300, ring_nm=20, null="shift",
               n_simulations=19, rng=0)
    assert res.coupled and res.p_value <= 0.05
    assert 60 <= res.mean_coupling_distance_weighted_nm <= 110
    sim0 = synapses(populations=SynapsePopulations(n_pre=200, n_post=200, coupled_fraction=0.0),
                    rendering=SynapseRendering(locs_per_object=4, blinks_per_fluorophore=3,
                                               precision_nm=8),
                    region=BoxRegion((0, 0), (8000, 8000)), rng=6)
    pre0 = sim0.pre_localizations.filter(_inside(sim0, sim0.pre_localizations))
    post0 = sim0.post_localizations.filter(_inside(sim0, sim0.post_localizations))
    res0 = soda(pre0, post0, region=sim0.region, r_max_nm=300, ring_nm=20, null="csr",
                n_simulations=19, rng=0)
    # clustered localizations against CSR would be "significant" with the analytic null;
    # the Monte-Carlo null of the coupling rings is what is compared here
    res_shift = soda(pre0, post0, region=sim0.region, r_max_nm=300, ring_nm=20, null="shift",
                     n_simulations=19, rng=0)
    assert not res_shift.coupled
    assert res0.null == "csr"


def _inside(sim, table):
    import pyarrow as pa

    from smlmspine.schema import coordinates

    return pa.array(sim.region.contains(coordinates(table)))


def test_region_from_data_warns_and_bad_input_raises():
    sim = synapses(populations=SynapsePopulations(n_pre=100, n_post=100, coupled_fraction=0.5),
                   region=BoxRegion((0, 0), (5000, 5000)), rng=2)
    with pytest.warns(QualityWarning, match="oversized region inflates"):
        soda(sim.pre_objects, sim.post_objects, r_max_nm=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        soda(sim.pre_objects, sim.post_objects, region=sim.region, r_max_nm=200)
    with pytest.raises(ParameterError, match="outside the region"):
        soda(sim.pre_objects, sim.post_objects, region=BoxRegion([0, 0], [1000, 1000]))
    with pytest.raises(ParameterError, match="null must be"):
        soda(sim.pre_objects, sim.post_objects, region=sim.region, null="poisson")
    with pytest.raises(ParameterError, match="positive"):
        soda(sim.pre_objects, sim.post_objects, region=sim.region, ring_nm=0)


def test_tables_and_summary():
    sim = synapses(populations=SynapsePopulations(n_pre=300, n_post=300, coupled_fraction=0.5,
                                                  distance_mean_nm=60, distance_sd_nm=10),
                   region=BoxRegion((0, 0), (10000, 10000)), rng=4)
    res = soda(sim.pre_objects, sim.post_objects, region=sim.region, r_max_nm=200, ring_nm=20)
    rings, pairs = res.rings_table(), res.pairs_table()
    assert rings.num_rows == 10 and pairs.num_rows == res.pair_pre.size
    assert pairs.column("probability").to_numpy().sum() == pytest.approx(res.n_coupled_pairs)
    assert rings.schema.field("r_outer_nm").metadata[b"unit"] == b"nm"
    summary = res.to_dict()
    for key in ("coupling_index_pre", "coupling_index_post", "n_coupled_pre", "n_coupled_post",
                "mean_coupling_distance_nm", "mean_coupling_distance_weighted_nm", "p_value"):
        assert key in summary
    # the unweighted mean includes the background pairs of the coupled rings
    assert summary["mean_coupling_distance_nm"] >= summary["mean_coupling_distance_weighted_nm"] - 1
    # true pairs get a higher probability than the rest
    truth = set(zip(sim.pairs.column("pre_index").to_pylist(), sim.pairs.column("post_index").to_pylist()))
    is_true = np.array([(i, j) in truth for i, j in zip(res.pair_pre, res.pair_post)])
    assert res.pair_probability[is_true].mean() > 3 * res.pair_probability[~is_true].mean()


def test_centroid_tables_and_3d_mask():
    import pyarrow as pa

    sim = synapses(populations=SynapsePopulations(n_pre=300, n_post=300, coupled_fraction=0.5,
                                                  distance_mean_nm=80, distance_sd_nm=10),
                   region=MaskRegion(np.ones((10, 30, 30), bool), voxel_size_nm=(100, 100, 100)),
                   rng=7)
    assert sim.ndim == 3
    pre = pa.table({"centroid_x_nm": sim.pre_objects.column("x"),
                    "centroid_y_nm": sim.pre_objects.column("y"),
                    "centroid_z_nm": sim.pre_objects.column("z")})
    res = soda(pre, sim.post_objects, region=sim.region, r_max_nm=200, ring_nm=20)
    assert res.ndim == 3
    assert abs(res.coupling_index_post - 0.5) <= 0.07


def test_points_outside_region_can_be_dropped():
    sim = synapses(populations=SynapsePopulations(n_pre=200, n_post=200, coupled_fraction=0.5,
                                                  distance_mean_nm=60, distance_sd_nm=10),
                   region=BoxRegion((0, 0), (6000, 6000)), rng=12)
    pre = np.vstack([np.asarray(sim.pre_objects.select(["x", "y"]).to_pandas()), [[-50.0, 10.0]]])
    post = np.asarray(sim.post_objects.select(["x", "y"]).to_pandas())
    with pytest.raises(ParameterError, match="outside='drop'"):
        soda(pre, post, region=sim.region, r_max_nm=200)
    with pytest.warns(QualityWarning, match="1 pre and 0 post"):
        res = soda(pre, post, region=sim.region, r_max_nm=200, outside="drop")
    ref = soda(pre[:-1], post, region=sim.region, r_max_nm=200)
    assert res.coupling_index_post == pytest.approx(ref.coupling_index_post)
    np.testing.assert_array_equal(res.pair_pre, ref.pair_pre)
    assert res.parameters["n_left_out"] == [1, 0]
    with pytest.raises(ParameterError, match="index must be"):
        soda(pre[:-1], post, region=sim.region, index="objects")
