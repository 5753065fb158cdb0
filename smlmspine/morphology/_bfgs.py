"""BFGS for the ring fits of :mod:`._ringfit`, in numba: scipy's algorithm, without its
Python overhead.

A window's ring fit is a handful of BFGS runs of 10-30 iterations on 4-6 parameters,
each iteration one likelihood evaluation (a numba kernel, ~60 us for a few hundred
points); scipy's ``minimize(method="BFGS")`` spends more than that again per iteration
in Python (its scalar-function wrapper, the MINPACK line search ``DCSRCH`` ported to
Python): ~40 % of a neck refit's fit on EM-like spines.

:func:`bfgs` follows ``scipy.optimize._optimize._minimize_bfgs`` (scipy 1.17) step by
step: the same start (identity inverse Hessian, ``old_old_fval = f + |g| / 2``), the
same stopping rules (``max |g| <= gtol``, ``200 n`` iterations, a zero step, a
non-finite value), the same inverse-Hessian update, and scipy's ``line_search_wolfe1``
(:func:`_dcsrch` and :func:`_dcstep`: MINPACK's ``DCSRCH``/``DCSTEP`` as scipy's
``_dcsrch.py`` has them, ``c1 = 1e-4``, ``c2 = 0.9``, ``xtol = 1e-14``, steps in
``[1e-100, 1e100]``, 100 iterations). Where scipy would fall back to its pure-Python
``line_search_wolfe2`` (``DCSRCH`` found no step), :func:`bfgs` stops and says so, and
the caller runs scipy's BFGS instead. The dot and matrix products go to BLAS, as
numpy's do (a dot product summed in a loop instead gave results 1e-8 apart): on 200
random ring and ellipse fits and 60 recorded neck refits the results were bit-identical
to scipy's (tests compare them).

Objectives (``kind``): 0 the ring with an axis tilt (6 parameters), 1 the ring without
(the first 4; the tilt is 0), 2 the ellipse's free parameters ``(log r, logit b, eta,
theta)`` around the circle's fixed centre and tilt (``full``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._ringnll import _nll_ellipse, _nll_grad

__all__ = ["bfgs", "RING_TILT", "RING", "ELLIPSE", "OK", "LINE_SEARCH_FAILED"]

RING_TILT, RING, ELLIPSE = 0, 1, 2
#: :func:`bfgs` status: stopped as scipy's BFGS would; or the line search found no step
#: (scipy would try its other line search: run scipy's BFGS instead).
OK, LINE_SEARCH_FAILED = 0, 1

_opts = {"cache": True, "nogil": True, "error_model": "numpy"}
_ring_nll = njit(**_opts)(_nll_grad)
_ellipse_nll = njit(**_opts)(_nll_ellipse)


@njit(**_opts)
def _fg(kind, x, uv, su, sv, log_area, ct, st, eta_max, full):
    if kind == RING_TILT:
        return _ring_nll(x, uv, su, sv, log_area, ct, st)
    if kind == RING:
        xx = np.zeros(6)
        xx[:4] = x
        f, g = _ring_nll(xx, uv, su, sv, log_area, ct, st)
        return f, g[:4].copy()
    xx = full.copy()
    xx[2], xx[3], xx[6], xx[7] = x[0], x[1], x[2], x[3]
    return _ellipse_nll(xx, uv, su, sv, log_area, ct, st, eta_max)


@njit(**_opts)
def _dot(a, b):
    return np.dot(a, b)   # BLAS, as numpy (scipy's BFGS) computes it


@njit(**_opts)
def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK's DCSTEP (scipy's ``_dcsrch.dcstep``)."""
    sgnd = np.sign(dp) * np.sign(dx)
    if fp > fx:
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * np.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp < stx:
            gamma *= -1
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        r = p / q
        stpc = stx + r * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(stpc - stx) <= abs(stpq - stx):
            stpf = stpc
        else:
            stpf = stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:
        theta = 3 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * np.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp > stx:
            gamma *= -1
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        r = p / q
        stpc = stp + r * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if abs(stpc - stp) > abs(stpq - stp):
            stpf = stpc
        else:
            stpf = stpq
        brackt = True
    elif abs(dp) < abs(dx):
        theta = 3 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * np.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0 and gamma != 0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            if abs(stpc - stp) < abs(stpq - stp):
                stpf = stpc
            else:
                stpf = stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            if abs(stpc - stp) > abs(stpq - stp):
                stpf = stpc
            else:
                stpf = stpq
            stpf = min(max(stpf, stpmin), stpmax)
    else:
        if brackt:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            s = max(abs(theta), abs(dy), abs(dp))
            gamma = s * np.sqrt((theta / s) ** 2 - (dy / s) * (dp / s))
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            r = p / q
            stpc = stp + r * (sty - stp)
            stpf = stpc
        elif stp > stx:
            stpf = stpmax
        else:
            stpf = stpmin
    if fp > fx:
        sty = stp
        fy = fp
        dy = dp
    else:
        if sgnd < 0:
            sty = stx
            fy = fx
            dy = dx
        stx = stp
        fx = fp
        dx = dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


@njit(**_opts)
def _dcsrch(kind, xk, pk, gfk, phi0, old_phi0, uv, su, sv, log_area, ct, st, eta_max,
            full):
    """scipy's ``line_search_wolfe1`` (``scalar_search_wolfe1`` and ``DCSRCH``) along
    ``pk`` from ``xk``: ``(found, step, f at the step, gradient at the step)``."""
    ftol, gtol, xtol, stpmin, stpmax = 1e-4, 0.9, 1e-14, 1e-100, 1e100
    derphi0 = _dot(gfk, pk)
    if derphi0 != 0:
        alpha1 = min(1.0, 1.01 * 2 * (phi0 - old_phi0) / derphi0)
        if alpha1 < 0:
            alpha1 = 1.0
    else:
        alpha1 = 1.0
    gval = gfk.copy()
    # START (the first of DCSRCH's 100 iterations)
    stp, f, g = alpha1, phi0, derphi0
    if stp < stpmin or stp > stpmax or g >= 0:
        return False, stp, f, gval
    brackt = False
    stage = 1
    finit, ginit = f, g
    gtest = ftol * ginit
    width = stpmax - stpmin
    width1 = width / 0.5
    stx, fx, gx = 0.0, finit, ginit
    sty, fy, gy = 0.0, finit, ginit
    stmin = 0.0
    stmax = stp + 4.0 * stp
    for _ in range(99):
        # FG: the function and its derivative at stp
        f, gval = _fg(kind, xk + stp * pk, uv, su, sv, log_area, ct, st, eta_max, full)
        g = _dot(gval, pk)
        ftest = finit + stp * gtest
        if stage == 1 and f <= ftest and g >= 0:
            stage = 2
        warn = False
        if brackt and (stp <= stmin or stp >= stmax):
            warn = True
        if brackt and stmax - stmin <= xtol * stmax:
            warn = True
        if stp == stpmax and f <= ftest and g <= gtest:
            warn = True
        if stp == stpmin and (f > ftest or g >= gtest):
            warn = True
        if f <= ftest and abs(g) <= gtol * -ginit:
            return True, stp, f, gval            # CONVERGENCE
        if warn:
            return False, stp, f, gval
        if stage == 1 and f <= fx and f > ftest:
            fm = f - stp * gtest
            fxm = fx - stx * gtest
            fym = fy - sty * gtest
            gm = g - gtest
            gxm = gx - gtest
            gym = gy - gtest
            stx, fxm, gxm, sty, fym, gym, stp, brackt = _dcstep(
                stx, fxm, gxm, sty, fym, gym, stp, fm, gm, brackt, stmin, stmax)
            fx = fxm + stx * gtest
            fy = fym + sty * gtest
            gx = gxm + gtest
            gy = gym + gtest
        else:
            stx, fx, gx, sty, fy, gy, stp, brackt = _dcstep(
                stx, fx, gx, sty, fy, gy, stp, f, g, brackt, stmin, stmax)
        if brackt:
            if abs(sty - stx) >= 0.66 * width1:
                stp = stx + 0.5 * (sty - stx)
            width1 = width
            width = abs(sty - stx)
        if brackt:
            stmin = min(stx, sty)
            stmax = max(stx, sty)
        else:
            stmin = stp + 1.1 * (stp - stx)
            stmax = stp + 4.0 * (stp - stx)
        stp = min(max(stp, stpmin), stpmax)
        if (brackt and (stp <= stmin or stp >= stmax)
                or (brackt and stmax - stmin <= xtol * stmax)):
            stp = stx
        if not np.isfinite(stp):
            return False, stp, f, gval
    return False, stp, f, gval


@njit(**_opts)
def bfgs(kind, x0, uv, su, sv, log_area, ct, st, eta_max, full, gtol):
    """Minimize objective ``kind`` from ``x0`` as scipy's BFGS does (module doc).

    Returns ``(x, fun, hess_inv, status)``; ``status`` :data:`OK` or
    :data:`LINE_SEARCH_FAILED` (then run scipy's BFGS instead)."""
    n = x0.size
    maxiter = n * 200
    xk = x0.copy()
    old_fval, gfk = _fg(kind, xk, uv, su, sv, log_area, ct, st, eta_max, full)
    hk = np.eye(n)
    old_old_fval = old_fval + np.sqrt(_dot(gfk, gfk)) / 2
    gnorm = np.max(np.abs(gfk))
    k = 0
    while gnorm > gtol and k < maxiter:
        pk = -np.dot(hk, gfk)
        found, alpha_k, fval, gfkp1 = _dcsrch(kind, xk, pk, gfk, old_fval, old_old_fval,
                                              uv, su, sv, log_area, ct, st, eta_max, full)
        if not found:
            return xk, old_fval, hk, LINE_SEARCH_FAILED
        old_old_fval = old_fval
        old_fval = fval
        sk = alpha_k * pk
        xk = xk + sk
        yk = gfkp1 - gfk
        gfk = gfkp1
        k += 1
        gnorm = np.max(np.abs(gfk))
        if gnorm <= gtol:
            break
        if alpha_k * np.sqrt(_dot(pk, pk)) <= 0.0:
            break
        if not np.isfinite(old_fval):
            break
        rhok_inv = _dot(yk, sk)
        rhok = 1000.0 if rhok_inv == 0.0 else 1.0 / rhok_inv
        a1 = np.empty((n, n))
        a2 = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                a1[i, j] = (1.0 if i == j else 0.0) - sk[i] * yk[j] * rhok
                a2[i, j] = (1.0 if i == j else 0.0) - yk[i] * sk[j] * rhok
        hk = a1 @ (hk @ a2)
        for i in range(n):
            for j in range(n):
                hk[i, j] += rhok * sk[i] * sk[j]
    return xk, old_fval, hk, OK
