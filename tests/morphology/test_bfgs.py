"""The ring fits' BFGS in numba (morphology._bfgs) against scipy's minimize(BFGS): the
same fits (to the bit here, where numpy and numba call the same BLAS for the small
products; within rounding elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.morphology import _bfgs, _ringfit


@pytest.fixture()
def engine():
    before = _ringfit.BFGS_ENGINE
    yield
    _ringfit.BFGS_ENGINE = before


def _problem(rng, tilt):
    r = rng.uniform(25.0, 150.0)
    m = int(rng.integers(30, 400))
    phi = rng.uniform(0, 2 * np.pi, m)
    uv = r * np.c_[np.cos(phi), np.sin(phi) * rng.uniform(0.5, 1.0)]
    uv = uv + rng.normal(0, 1, (m, 2)) * [12.0, 30.0]
    uv = np.r_[uv, rng.uniform(-2 * r, 2 * r, (m // 5, 2))]     # background points
    t = rng.normal(0, 30.0, len(uv)) if tilt else None
    return r, uv, t


def _fits(r, uv, t):
    c = _ringfit.fit_ring(uv, sigma_u_nm=12.0, sigma_v_nm=30.0, r_max_nm=3 * r,
                          radius0_nm=1.2 * r, t_nm=t, with_error=True, _return_x=True)
    if c is None:
        return None
    e = _ringfit.fit_ellipse_ring(uv, sigma_u_nm=12.0, sigma_v_nm=30.0, r_max_nm=3 * r,
                                  circle=c, t_nm=t)
    return np.r_[c[:5], c[5], e]


@pytest.mark.parametrize("tilt", [False, True])
def test_numba_bfgs_fits_as_scipy(engine, tilt):
    rng = np.random.default_rng(3 + tilt)
    n = 0
    for _ in range(30):
        r, uv, t = _problem(rng, tilt)
        _ringfit.BFGS_ENGINE = "scipy"
        a = _fits(r, uv, t)
        _ringfit.BFGS_ENGINE = "numba"
        b = _fits(r, uv, t)
        if a is None:
            assert b is None
            continue
        n += 1
        # bit-identical with numpy's and numba's BLAS the same library (this set-up);
        # a different BLAS may round the small products differently (1e-8 apart)
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
        # and the fit is a fit: the radius near the truth's scale
        assert 0.3 * r < a[0] < 3.0 * r
    assert n >= 25


def test_bfgs_status_and_minimum():
    # a clean ring: converges (OK) to the ring's radius; the inverse Hessian is
    # symmetric positive definite
    rng = np.random.default_rng(0)
    phi = rng.uniform(0, 2 * np.pi, 300)
    uv = 80.0 * np.c_[np.cos(phi), np.sin(phi)] + rng.normal(0, 1, (300, 2)) * 10.0
    uv = np.ascontiguousarray(np.c_[uv, np.zeros(300)])
    th = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    x, fun, hinv, status = _bfgs.bfgs(_bfgs.RING, np.array([0.0, 0.0, np.log(100.0), -3.0]),
                                      uv, 10.0, 10.0, float(np.log(np.pi * 240.0 ** 2)),
                                      np.cos(th), np.sin(th), 0.0, np.zeros(8), 1e-4)
    assert status == _bfgs.OK
    assert abs(np.exp(x[2]) - 80.0) < 3.0 and np.isfinite(fun)
    np.testing.assert_allclose(hinv, hinv.T, atol=1e-12 * np.abs(hinv).max())
    assert np.all(np.linalg.eigvalsh(0.5 * (hinv + hinv.T)) > 0)


def test_line_search_failure_falls_back_to_scipy(engine, monkeypatch):
    # where DCSRCH finds no step, scipy would try its other line search: the fit then
    # runs scipy's BFGS (same result as the scipy engine)
    rng = np.random.default_rng(7)
    r, uv, t = _problem(rng, True)
    _ringfit.BFGS_ENGINE = "scipy"
    a = _fits(r, uv, t)

    def failing(*args):
        x0 = args[1]
        return x0, np.inf, np.eye(len(x0)), _bfgs.LINE_SEARCH_FAILED

    monkeypatch.setattr(_bfgs, "bfgs", failing)
    _ringfit.BFGS_ENGINE = "numba"
    b = _fits(r, uv, t)
    np.testing.assert_array_equal(a, b)
