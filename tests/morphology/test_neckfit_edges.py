"""The point-based neck fit (morphology/_neckfit.py) on data at the model's edge: no
RuntimeWarning reaches the user (the suite turns warnings into errors), the fit still
returns, and an optimum whose curvature cannot be measured has a NaN uncertainty."""

import numpy as np
import pytest

from smlmspine.morphology._neckfit import NLL_OUT_OF_RANGE, _nll, fit_neck_diameter


@pytest.mark.parametrize("label", ["membrane", "volume"])
def test_far_outliers_with_a_fixed_precision_do_not_warn(label):
    """90 distances within 1 nm of the axis and 10 at 100 um, precision fixed at 12 nm:
    the likelihood overflows on part of the simplex (Nelder-Mead subtracted inf from
    inf, the Hessian divided by zero: two warnings on a 10^7-localization run)."""
    rng = np.random.default_rng(1)
    r = np.r_[rng.uniform(0, 1, 90), np.full(10, 1e5)]
    fit = fit_neck_diameter(r, label=label, sigma_nm=12.0)
    assert np.isfinite(fit.diameter_nm)
    assert np.isnan(fit.diameter_err_nm)


def test_out_of_range_likelihood_is_finite():
    r = np.linspace(1.0, 100.0, 50)
    assert _nll(np.array([np.log(50.0), np.log(1e-6)]), r, 101.0, "membrane", None) == NLL_OUT_OF_RANGE
    assert _nll(np.array([800.0, 0.0]), r, 101.0, "volume", None) == NLL_OUT_OF_RANGE


def test_ordinary_fit_unchanged():
    """A 120 nm membrane ring, sigma 12 nm: within 4 nm, with a finite uncertainty."""
    rng = np.random.default_rng(0)
    phi = rng.uniform(0, 2 * np.pi, 3000)
    xy = 60.0 * np.c_[np.cos(phi), np.sin(phi)] + rng.normal(0, 12.0, (3000, 2))
    fit = fit_neck_diameter(np.hypot(*xy.T), label="membrane")
    assert abs(fit.diameter_nm - 120.0) < 4 and 0 < fit.diameter_err_nm < 5
