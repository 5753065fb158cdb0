"""Elliptic neck sections (issue #14: EM necks have sections of aspect up to ~2).

With the short axis along the blur of the axial precision, a circle fitted to the
localizations sits on the long axis; the neck refit takes the equivalent radius
``sqrt(a b)`` of an ellipse fit when it fits better (fixed seeds, analytic shapes).
"""

import numpy as np
import pytest

import smlmspine.morphology._necksurface as necksurface
from smlmspine.morphology._necksurface import fit_neck_surface
from smlmspine.morphology._ringfit import fit_ellipse_ring, fit_ring
from smlmspine.morphology._sections import section_profile

from ._shapes import revolved


def _ellipse_points(a, b, n, rng):
    """Points on an ellipse (semi-axes a along u, b along v), uniform per arc length."""
    phi = rng.uniform(0, 2 * np.pi, 20 * n)
    keep = rng.uniform(0, 1, phi.size) < np.hypot(a * np.sin(phi), b * np.cos(phi)) / max(a, b)
    phi = phi[keep][:n]
    return np.c_[a * np.cos(phi), b * np.sin(phi)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elliptic_section_gets_its_equivalent_radius(seed):
    rng = np.random.default_rng(seed)
    a, b, su, sv = 48.0, 20.0, 10.0, 25.0          # a 62 nm neck (2 sqrt(ab)) of aspect 2.4
    uv = _ellipse_points(a, b, 200, rng) + rng.normal(0, 1, (200, 2)) * [su, sv]
    c = fit_ring(uv, sigma_u_nm=su, sigma_v_nm=sv, r_max_nm=150.0, radius0_nm=50.0)
    e = fit_ellipse_ring(uv, sigma_u_nm=su, sigma_v_nm=sv, r_max_nm=150.0, circle=c)
    r_eq = np.sqrt(a * b)
    assert c[0] > 1.15 * r_eq                      # the circle reads the long axis
    assert abs(e[0] / r_eq - 1.0) < 0.12
    assert e[2] > necksurface.ELLIPSE_MIN_DNLL and e[1] > 1.5


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_circular_section_stays_a_circle(seed):
    rng = np.random.default_rng(10 + seed)
    r, su, sv = 40.0, 10.0, 25.0
    uv = _ellipse_points(r, r, 200, rng) + rng.normal(0, 1, (200, 2)) * [su, sv]
    c = fit_ring(uv, sigma_u_nm=su, sigma_v_nm=sv, r_max_nm=150.0, radius0_nm=50.0)
    e = fit_ellipse_ring(uv, sigma_u_nm=su, sigma_v_nm=sv, r_max_nm=150.0, circle=c)
    assert abs(c[0] / r - 1.0) < 0.1
    # not significantly better: the refit keeps the circle
    assert e[2] < necksurface.ELLIPSE_MIN_DNLL


def _elliptic_tube_points(a, b, length, sxy, sz, n, rng):
    """A membrane label on an elliptic tube along +x (short axis along z), blurred."""
    uv = _ellipse_points(a, b, n, rng)
    p = np.c_[rng.uniform(0.0, length, len(uv)), uv[:, 0], uv[:, 1]]
    return p + rng.normal(0.0, 1.0, p.shape) * [sxy, sxy, sz]


def test_neck_refit_of_an_elliptic_neck_reads_its_area(monkeypatch):
    """A horizontal neck of sections 2 x (48 x 20) nm (equivalent diameter 62 nm) under
    3D STORM blur (12/30 nm): refitted to within 12 % of 62 nm; with circles only it
    reads > 15 % wide."""
    rng = np.random.default_rng(5)
    a, b, length = 48.0, 20.0, 900.0
    pts = _elliptic_tube_points(a, b, length, 12.0, 30.0, 5000, rng)
    sz = np.linspace(0.0, length, 90)
    mesh = revolved(sz, np.full_like(sz, 45.0), segments=32)
    mesh.vertices = mesh.vertices[:, [2, 0, 1]]      # the tube along +x
    axis = np.array([1.0, 0.0, 0.0])
    d_eq = 2.0 * np.sqrt(a * b)

    def refit_median():
        out, fit = fit_neck_surface(mesh, pts, np.zeros(3), precision_nm=(12.0, 30.0),
                                    base_axis=axis)
        assert fit.applied, fit.reason
        prof = section_profile(out, np.zeros(3), axis, step_nm=10.0)
        s, d = prof["s_nm"], prof["diameter_nm"]
        return float(np.median(d[(s > 150.0) & (s < length - 150.0)]))

    assert abs(refit_median() / d_eq - 1.0) < 0.12
    monkeypatch.setattr(necksurface, "ELLIPSE_MIN_DNLL", None)
    assert refit_median() > 1.15 * d_eq


def test_ellipse_gradient_matches_finite_differences():
    """The analytic gradient of the elliptic ring's negative log-likelihood (log r,
    logit b, eta, orientation) agrees with central differences (fixed seed)."""
    from smlmspine.morphology import _ringfit as R

    rng = np.random.default_rng(0)
    phi = rng.uniform(0, 2 * np.pi, 300)
    uv = np.c_[60 * np.cos(phi) + rng.normal(0, 12, 300), 30 * np.sin(phi) + rng.normal(0, 30, 300),
               rng.normal(0, 40, 300)]
    th = np.linspace(0, 2 * np.pi, R._K, endpoint=False)
    f = R._ellipse_kernel()
    args = (np.ascontiguousarray(uv), 12.0, 30.0, np.log(np.pi * 150 ** 2), np.cos(th),
            np.sin(th), 0.5 * np.log(R.MAX_ASPECT))
    full = np.array([1.0, -2.0, np.log(45.0), -2.0, 0.01, -0.02, 0.2, 0.3])
    free = [2, 3, 6, 7]
    for _ in range(3):
        x = full.copy()
        x[free] += rng.normal(0, 0.2, 4)
        g = f(x, *args)[1]
        num = np.empty(4)
        for i, k in enumerate(free):
            xp, xm = x.copy(), x.copy()
            xp[k] += 1e-5
            xm[k] -= 1e-5
            num[i] = (f(xp, *args)[0] - f(xm, *args)[0]) / 2e-5
        assert np.allclose(g, num, rtol=1e-4, atol=1e-3), (g, num)


def test_ellipse_at_its_aspect_bound_is_not_taken():
    """Circular windows of a 72 nm neck from few fluorophores (14, ~3 localizations
    each, sigma 9.9 / 24 nm): the ellipse refit often runs to its aspect bound with an
    equivalent radius far below the truth; the window keeps its circle then."""
    from smlmspine.morphology._necksurface import _window_radius
    from smlmspine.morphology._ringfit import MAX_ASPECT

    r_true, length, at_bound, taken, n = 36.0, 150.0, [], 0, 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        phi, x = rng.uniform(0, 2 * np.pi, 14), rng.uniform(-length / 2, length / 2, 14)
        f = np.repeat(np.c_[x, r_true * np.cos(phi), r_true * np.sin(phi)],
                      rng.geometric(1 / 3, 14), axis=0)
        p = f + rng.normal(0, 1, f.shape) * [9.9, 9.9, 24.0]
        c = fit_ring(p[:, 1:], sigma_u_nm=9.9, sigma_v_nm=24.0, r_max_nm=130.0,
                     radius0_nm=48.0, t_nm=p[:, 0], _return_x=True)
        if c is None:
            continue
        e = fit_ellipse_ring(p[:, 1:], sigma_u_nm=9.9, sigma_v_nm=24.0, r_max_nm=130.0,
                             circle=c, t_nm=p[:, 0])
        n += 1
        r = _window_radius(c[0], e)
        taken += r != c[0]
        if e[1] >= MAX_ASPECT * (1 - 1e-9) and e[2] > necksurface.ELLIPSE_MIN_DNLL \
                and e[0] < c[0]:
            at_bound.append((c[0], e[0]))
            assert r == c[0]
    assert n >= 140
    # such ellipses occur (seeds 14, 24, 45, 72, 74, 83, 113, 131 here) and read narrow
    assert len(at_bound) >= 5
    assert np.median([e for _, e in at_bound]) < 0.85 * r_true
    assert taken <= 0.02 * n          # circles keep their radius in >= 98 % of windows


def test_ellipse_within_its_bound_is_taken():
    rng = np.random.default_rng(0)
    a, b, su, sv = 48.0, 20.0, 10.0, 25.0
    uv = _ellipse_points(a, b, 200, rng) + rng.normal(0, 1, (200, 2)) * [su, sv]
    c = fit_ring(uv, sigma_u_nm=su, sigma_v_nm=sv, r_max_nm=150.0, radius0_nm=50.0)
    e = fit_ellipse_ring(uv, sigma_u_nm=su, sigma_v_nm=sv, r_max_nm=150.0, circle=c)
    from smlmspine.morphology._necksurface import _window_radius

    assert e[1] < 2.9 and _window_radius(c[0], e) == e[0] < c[0]
