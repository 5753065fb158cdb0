"""The negative log-likelihoods of :mod:`._ringfit`'s ring and ellipse models and their
gradients (plain Python, compiled by numba in :mod:`._bfgs`)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__: list[str] = []


@njit(cache=True, nogil=True, error_model="numpy")
def _mixture(lring, b, log_area):
    """``(log p, w)`` of one point under the ring (log-density ``lring``, weight
    ``1 - b``) mixed with the uniform background (``b``, over ``exp(log_area)``): the
    log of the mixture density, and ``w`` the posterior weight of the ring."""
    a1 = np.log1p(-b) + lring
    a2 = np.log(b) - log_area
    mx = max(a1, a2)
    lp = mx + np.log(np.exp(a1 - mx) + np.exp(a2 - mx))
    return lp, np.exp(a1 - lp)


def _nll_grad(x, uv, su, sv, log_area, ct, st):
    # uv: (n, 3) section coordinates and the axial coordinate t (centred in the window);
    # the axis may be tilted: the centre is (cu + gu t, cv + gv t)
    cu0, cv0, gu, gv = x[0], x[1], x[4], x[5]
    # clamped (a line search may probe wild values): R <= 160 um, 1e-13 < b < 1 - 1e-13
    lr = min(max(x[2], -10.0), 12.0)
    lb = min(max(x[3], -30.0), 30.0)
    r = np.exp(lr)
    b = 1.0 / (1.0 + np.exp(-lb))
    k = ct.size
    lnorm = np.log(2.0 * np.pi * su * sv) + np.log(k)
    g = np.zeros(6)
    f = 0.0
    q = np.empty(k)
    for i in range(uv.shape[0]):
        cu = cu0 + gu * uv[i, 2]
        cv = cv0 + gv * uv[i, 2]
        m = -1e300
        for j in range(k):
            du = (uv[i, 0] - cu - r * ct[j]) / su
            dv = (uv[i, 1] - cv - r * st[j]) / sv
            q[j] = -0.5 * (du * du + dv * dv)
            if q[j] > m:
                m = q[j]
        s0 = 0.0
        su_ = 0.0
        sv_ = 0.0
        sr = 0.0
        for j in range(k):
            e = np.exp(q[j] - m)
            du = (uv[i, 0] - cu - r * ct[j]) / su
            dv = (uv[i, 1] - cv - r * st[j]) / sv
            s0 += e
            su_ += e * du / su
            sv_ += e * dv / sv
            sr += e * (du * ct[j] / su + dv * st[j] / sv)
        if s0 <= 0.0:
            return np.inf, g
        lring = m + np.log(s0) - lnorm
        lp, w = _mixture(lring, b, log_area)
        f -= lp
        g[0] -= w * su_ / s0
        g[1] -= w * sv_ / s0
        g[4] -= w * su_ / s0 * uv[i, 2]
        g[5] -= w * sv_ / s0 * uv[i, 2]
        g[2] -= w * r * sr / s0
        # d log p / d lb = (1 - w) (1 - b) - w b
        g[3] -= (1.0 - w) * (1.0 - b) - w * b
    return f, g


def _nll_ellipse(x, uv, su, sv, log_area, ct, st, eta_max):
    # the ring of _nll_grad as an ellipse: semi-axes r e^eta, r e^-eta, rotated by th;
    # points weighted by arc length (a membrane labelled uniformly per area). Returns
    # the negative log-likelihood and its gradient in the free parameters
    # (log r, logit b, eta, th) = x[2], x[3], x[6], x[7]; centre and tilt are fixed
    cu0, cv0, gu, gv = x[0], x[1], x[4], x[5]
    lr = min(max(x[2], -10.0), 12.0)
    lb = min(max(x[3], -30.0), 30.0)
    eta = min(max(x[6], -eta_max), eta_max)
    d_eta = 1.0 if -eta_max < x[6] < eta_max else 0.0    # (0 on the clamp)
    r = np.exp(lr)
    b = 1.0 / (1.0 + np.exp(-lb))
    ax, bx = r * np.exp(eta), r * np.exp(-eta)
    c, s = np.cos(x[7]), np.sin(x[7])
    k = ct.size
    px = np.empty(k)
    py = np.empty(k)
    ex_ = np.empty(k)      # d px / d eta
    ey_ = np.empty(k)      # d py / d eta
    lw = np.empty(k)
    dlw = np.empty(k)      # d lw / d eta
    tot = 0.0
    for j in range(k):
        ex, ey = ax * ct[j], bx * st[j]
        px[j] = c * ex - s * ey
        py[j] = s * ex + c * ey
        ex_[j] = c * ex + s * ey
        ey_[j] = s * ex - c * ey
        l2 = (ax * st[j]) ** 2 + (bx * ct[j]) ** 2
        lw[j] = np.sqrt(l2)
        dlw[j] = ((ax * st[j]) ** 2 - (bx * ct[j]) ** 2) / l2
        tot += lw[j]
    mean_dlw = 0.0
    for j in range(k):
        mean_dlw += lw[j] / tot * dlw[j]
    for j in range(k):
        lw[j] = np.log(lw[j] / tot)
        dlw[j] -= mean_dlw
    lnorm = np.log(2.0 * np.pi * su * sv)
    f = 0.0
    g = np.zeros(4)
    q = np.empty(k)
    for i in range(uv.shape[0]):
        cu = cu0 + gu * uv[i, 2]
        cv = cv0 + gv * uv[i, 2]
        m = -1e300
        for j in range(k):
            du = (uv[i, 0] - cu - px[j]) / su
            dv = (uv[i, 1] - cv - py[j]) / sv
            q[j] = lw[j] - 0.5 * (du * du + dv * dv)
            if q[j] > m:
                m = q[j]
        s0 = 0.0
        sr = 0.0
        se = 0.0
        sth = 0.0
        for j in range(k):
            e = np.exp(q[j] - m)
            du = (uv[i, 0] - cu - px[j]) / (su * su)
            dv = (uv[i, 1] - cv - py[j]) / (sv * sv)
            s0 += e
            sr += e * (du * px[j] + dv * py[j])
            se += e * (dlw[j] + du * ex_[j] + dv * ey_[j])
            sth += e * (dv * px[j] - du * py[j])
        lring = m + np.log(s0) - lnorm
        lp, w = _mixture(lring, b, log_area)
        f -= lp
        g[0] -= w * sr / s0
        g[1] -= (1.0 - w) * (1.0 - b) - w * b
        g[2] -= w * se / s0 * d_eta
        g[3] -= w * sth / s0
    return f, g
