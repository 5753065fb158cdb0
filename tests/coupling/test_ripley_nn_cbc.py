"""Cross Ripley K/L/H, nearest-neighbour tests and CBC against analytic truth."""

import numpy as np
import pytest

from smlmspine.coupling import (BoxRegion, MaskRegion, PolygonRegion, cbc, cross_k, cross_k_envelope,
                                nn_distances, nn_test)
from smlmspine.errors import ParameterError


def _brute_k(p1, p2, radii, region, correction):
    d = np.linalg.norm(p1[:, None, :] - p2[None, :, :], axis=2)
    out = []
    for r in radii:
        i, j = np.nonzero(d <= r)
        if correction == "isotropic":
            w = region.edge_weights(p1[i], d[i, j])
        elif correction == "translation":
            L = region.size_nm
            w = np.prod(L / (L - np.abs(p2[j] - p1[i])), axis=1)
        else:
            w = np.ones(i.size)
        out.append(region.measure * w.sum() / (len(p1) * len(p2)))
    return np.array(out)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("correction", ["isotropic", "translation", "none"])
def test_cross_k_matches_brute_force(ndim, correction):
    rng = np.random.default_rng(0)
    box = BoxRegion(np.zeros(ndim), np.full(ndim, 1000.0))
    p1, p2 = box.sample(150, rng), box.sample(170, rng)
    radii = [50.0, 120.0, 250.0]
    res = cross_k(p1, p2, radii_nm=radii, region=box, correction=correction)
    np.testing.assert_allclose(res.k_nm_d, _brute_k(p1, p2, radii, box, correction), rtol=1e-9)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("correction", ["isotropic", "translation", "border"])
def test_cross_k_unbiased_under_csr(ndim, correction):
    """Averaged over CSR realisations, K(r) = pi r^2 (2D) / 4/3 pi r^3 (3D) for each correction,
    while the uncorrected estimator is biased low."""
    rng = np.random.default_rng(1)
    box = BoxRegion(np.zeros(ndim), np.full(ndim, 2000.0 if ndim == 2 else 1000.0))
    radii = np.array([100.0, 200.0, 300.0])
    truth = np.pi * radii ** 2 if ndim == 2 else 4 / 3 * np.pi * radii ** 3
    ks, k0 = [], []
    for _ in range(40):
        p1, p2 = box.sample(300, rng), box.sample(300, rng)
        ks.append(cross_k(p1, p2, radii_nm=radii, region=box, correction=correction).k_nm_d)
        k0.append(cross_k(p1, p2, radii_nm=radii, region=box, correction="none").k_nm_d)
    np.testing.assert_allclose(np.mean(ks, axis=0), truth, rtol=0.05)
    assert np.mean(k0, axis=0)[-1] < 0.92 * truth[-1]


def test_mask_and_polygon_regions_agree_with_box():
    rng = np.random.default_rng(2)
    box = BoxRegion([0, 0], [1000, 1000])
    p1, p2 = box.sample(200, rng), box.sample(200, rng)
    kb = cross_k(p1, p2, radii_nm=[100, 200], region=box).k_nm_d
    km = cross_k(p1, p2, radii_nm=[100, 200], region=MaskRegion(np.ones((50, 50), bool),
                                                               voxel_size_nm=20.0)).k_nm_d
    kp = cross_k(p1, p2, radii_nm=[100, 200],
                 region=PolygonRegion([[0, 0], [1000, 0], [1000, 1000], [0, 1000]])).k_nm_d
    np.testing.assert_allclose(km, kb, rtol=0.01)
    np.testing.assert_allclose(kp, kb, rtol=1e-9)


def test_envelope_and_h_detect_coupling():
    rng = np.random.default_rng(3)
    box = BoxRegion([0, 0], [5000, 5000])
    a = box.sample(300, rng)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 5000)
    env = cross_k_envelope(a, b, radii_nm=[25, 50, 100, 200], region=box, n_simulations=19, rng=0)
    assert np.all(env.h_nm[:2] > env.h_high_nm[:2]) and env.p_value == pytest.approx(0.05)
    c = box.sample(300, rng)
    env0 = cross_k_envelope(a, c, radii_nm=[25, 50, 100, 200], region=box, n_simulations=19, rng=0)
    assert env0.p_value > 0.05
    assert env0.to_table().num_rows == 4


def test_cross_k_errors():
    box = BoxRegion([0, 0], [100, 100])
    with pytest.raises(ParameterError, match="increasing positive"):
        cross_k([[1, 1]], [[2, 2]], radii_nm=[10, 5], region=box)
    with pytest.raises(ParameterError, match="translation correction needs a box"):
        cross_k([[1, 1]], [[2, 2]], radii_nm=[10], correction="translation",
                region=MaskRegion(np.ones((5, 5), bool), voxel_size_nm=20.0))
    with pytest.raises(ParameterError, match="correction must be"):
        cross_k([[1, 1]], [[2, 2]], radii_nm=[10], region=box, correction="ohser")


def test_nn_distances_and_nulls():
    rng = np.random.default_rng(4)
    box = BoxRegion([0, 0], [4000, 4000])
    a = box.sample(400, rng)
    b = box.sample(400, rng)
    d = nn_distances(a, b)
    # CSR: nearest-neighbour distance is Rayleigh with mean 0.5 / sqrt(density) (edge effects small)
    assert d.mean() == pytest.approx(0.5 / np.sqrt(400 / 4000 ** 2), rel=0.1)
    res = nn_test(a, b, region=box, n_simulations=19, rng=0)
    assert res.p_value > 0.05
    close = np.clip(a + rng.normal(0, 15, a.shape), 0, 4000)
    for null in ("csr", "shift"):
        r = nn_test(a, close, region=box, null=null, n_simulations=19, rng=0)
        assert r.p_value == pytest.approx(0.05) and r.median_nm < r.median_null_nm / 3


def test_cbc_values():
    rng = np.random.default_rng(5)
    centers = rng.random((20, 2)) * 20000
    a = np.repeat(centers, 30, axis=0) + rng.normal(0, 40, (600, 2))
    same = np.repeat(centers, 30, axis=0) + rng.normal(0, 40, (600, 2))
    other = np.repeat(rng.random((20, 2)) * 20000, 30, axis=0) + rng.normal(0, 40, (600, 2))
    c_same = cbc(a, same, r_max_nm=300).values
    c_other = cbc(a, other, r_max_nm=300).values
    assert np.nanmean(c_same) > 0.6
    assert abs(np.nanmean(c_other)) < 0.1
    assert np.all((c_same[np.isfinite(c_same)] >= -1) & (c_same[np.isfinite(c_same)] <= 1))


def test_cbc_takes_pre_then_post_and_scores_pre():
    rng = np.random.default_rng(7)
    centers = rng.random((10, 2)) * 10000
    pre = np.repeat(centers, 20, axis=0) + rng.normal(0, 30, (200, 2))
    post = centers[:4] + rng.normal(0, 30, (4, 2))   # only 4 of the 10 sites labelled
    by_name = cbc(pre=pre, post=post, r_max_nm=300)
    assert by_name.values.shape == (200,) and by_name.nearest_distance_nm.shape == (200,)
    np.testing.assert_array_equal(by_name.values, cbc(pre, post, r_max_nm=300).values)
    # pre localizations at an unlabelled site have no post neighbour within R_max: 0
    site = np.repeat(np.arange(10), 20)
    assert np.all(by_name.values[site >= 4] == 0.0)
    np.testing.assert_allclose(
        by_name.nearest_distance_nm,
        np.linalg.norm(pre[:, None] - post[None], axis=2).min(axis=1))
    swapped = cbc(post, pre, r_max_nm=300)
    assert swapped.values.shape == (4,)
