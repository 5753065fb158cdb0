"""Maximum-likelihood fit of a blurred membrane ring to localizations in a slab.

Model (one cross-section window of a tubular neck): in the section plane, with the
basis ``u`` (horizontal, perpendicular to the tube axis) and ``v = axis x u``, the
membrane is a circle of radius ``R`` around ``(c_u, c_v)``; every localization is a
point of the circle blurred by a Gaussian with the *anisotropic* localization
precision projected onto the plane (``sigma_u = sigma_xy``, ``sigma_v^2 =
sigma_xy^2 (1 - v_z^2) + sigma_z^2 v_z^2``: 3D STORM blurs a tilted neck far more along
``v``). A uniform background over the fitted disc of radius ``r_max`` takes stray
points (of a head or shaft at the window's ends). Parameters ``(c_u, c_v, log R,
logit b)`` are fitted by BFGS with the analytic gradient (numba kernel); the circle
is integrated over ``K = 48`` angles.

Unlike the radial Rice fit (:func:`fit_neck_diameter`), the centre is free (the
centreline of a noisy mesh is off by 10-20 nm) and the blur needs no isotropic
approximation, which biased thin 3D STORM necks by +9 % (simulated spines, sigma_xy 12,
sigma_z 33 nm).

:func:`fit_ellipse_ring` refits the same model with an elliptic ring (semi-axes
``r e^eta``, ``r e^-eta``, an orientation; points weighted by arc length), from the
circle's centre and tilt, with an analytic gradient: an elliptic section whose short
axis lies along the blur of the axial precision makes the circle sit on the long axis.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_ellipse_ring", "fit_ring", "section_basis"]

_K = 48


def section_basis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal ``(u, v)`` of the plane perpendicular to ``axis``; ``u`` horizontal."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    u = np.cross(a, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.array([1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    return u, np.cross(a, u)


def _first4(fg):
    return fg[0], fg[1][:4]


#: "numba": the ring fits' BFGS runs in numba (:func:`._bfgs.bfgs`, scipy's algorithm;
#: scipy's own where its line search needs its fallback); "scipy": scipy's
#: ``minimize(method="BFGS")`` (as before; the tests compare the two).
BFGS_ENGINE = "numba"


class _Result:
    __slots__ = ("x", "fun", "hess_inv")

    def __init__(self, x, fun, hess_inv):
        self.x, self.fun, self.hess_inv = x, fun, hess_inv


def _minimize(kind, x0, args, gtol, *, scipy_fun, eta_max=0.0, full=None):
    """BFGS of objective ``kind`` (:mod:`._bfgs`) from ``x0``; ``scipy_fun`` is the same
    objective for scipy (``(f, g)`` of the free parameters)."""
    from scipy import optimize

    x0 = np.asarray(x0, float)
    if BFGS_ENGINE == "numba":
        from . import _bfgs

        uv, su, sv, log_area, ct, st = args[:6]
        x, fun, hinv, status = _bfgs.bfgs(kind, x0, uv, su, sv, log_area, ct, st,
                                          float(eta_max),
                                          np.zeros(8) if full is None else full, float(gtol))
        if status == _bfgs.OK:
            return _Result(x, float(fun), hinv)
    res = optimize.minimize(scipy_fun, x0, args=args, jac=True, method="BFGS",
                            options={"gtol": gtol})
    return _Result(res.x, float(res.fun), getattr(res, "hess_inv", None))


def _kernel():
    """The numba-compiled ``_nll_grad`` (cached on disk; the one :mod:`._bfgs` calls)."""
    from ._bfgs import _ring_nll

    return _ring_nll


def _points(uv, t_nm, r_max_nm):
    """``(n, 3)`` section coordinates and the centred axial coordinate of the points
    within ``r_max_nm``, or None when fewer than 20."""
    uv = np.asarray(uv, float)
    t = np.zeros(len(uv)) if t_nm is None else np.asarray(t_nm, float)
    sel = np.hypot(uv[:, 0], uv[:, 1]) < r_max_nm
    if sel.sum() < 20:
        return None
    t = t[sel] - (t[sel].mean() if t_nm is not None else 0.0)
    return np.ascontiguousarray(np.c_[uv[sel], t])


def fit_ring(uv: np.ndarray, *, sigma_u_nm: float, sigma_v_nm: float, r_max_nm: float,
             radius0_nm: float, t_nm: np.ndarray | None = None, with_error: bool = False,
             _return_x: bool = False) -> tuple[float, ...] | None:
    """Fit a blurred ring to 2D section coordinates (nm, centred on the guessed axis).

    With ``t_nm`` (each point's coordinate along the guessed axis) the tube's axis may
    be tilted against the guessed one (two more parameters, the centre's drift per nm
    of ``t``): a window axis a few degrees off otherwise smears the ring by
    ``window * sin(angle)`` and widens thin necks.

    Returns ``(radius_nm, centre_u_nm, centre_v_nm, ring_fraction)`` or None when fewer
    than 20 points lie within ``r_max_nm``. With ``with_error`` a fifth item, the
    standard error of the radius (nm): ``R * sqrt(H^-1[log R, log R])`` from BFGS's
    inverse-Hessian estimate of the negative log-likelihood at the optimum (no extra
    likelihood evaluations; an approximation, NaN when it is not positive).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> phi = rng.uniform(0, 2 * np.pi, 400)
    >>> uv = 50.0 * np.c_[np.cos(phi), np.sin(phi)] + rng.normal(0, 1, (400, 2)) * [12.0, 30.0]
    >>> r, cu, cv, frac = fit_ring(uv + [8.0, -5.0], sigma_u_nm=12.0, sigma_v_nm=30.0,
    ...                            r_max_nm=150.0, radius0_nm=70.0)
    >>> abs(r - 50.0) < 4, abs(cu - 8.0) < 5
    (True, True)
    >>> err = fit_ring(uv, sigma_u_nm=12.0, sigma_v_nm=30.0, r_max_nm=150.0, radius0_nm=70.0,
    ...                with_error=True)[4]
    >>> bool(0.3 < err < 4.0)
    True
    """
    from ._bfgs import RING, RING_TILT

    uv = _points(uv, t_nm, r_max_nm)
    if uv is None:
        return None
    tilt = t_nm is not None
    th = np.linspace(0.0, 2.0 * np.pi, _K, endpoint=False)
    ct, st = np.cos(th), np.sin(th)
    f = _kernel()
    args = (uv, float(sigma_u_nm), float(sigma_v_nm), float(np.log(np.pi * r_max_nm ** 2)), ct, st)
    best = None
    for r0 in (radius0_nm, 0.6 * radius0_nm):
        # BFGS: the parameters are unbounded by construction (log R, logit b); scipy's
        # L-BFGS-B cost 10x more per fit in its own overhead here
        x0 = [0.0, 0.0, np.log(max(r0, 5.0)), -3.0]
        if tilt:
            res = _minimize(RING_TILT, x0 + [0.0, 0.0], args, 1e-4, scipy_fun=f)
        else:   # no tilt: the gradient's last two entries are dropped
            res = _minimize(RING, x0, args, 1e-4,
                            scipy_fun=lambda y, *a: _first4(f(np.r_[y, 0.0, 0.0], *a)))
        if best is None or res.fun < best.fun:
            best = res
    cu, cv, lr, lb = best.x[:4]
    r = float(np.exp(lr))
    if not (np.isfinite(r) and r < r_max_nm and np.hypot(cu, cv) < r_max_nm):
        return None
    out = (r, float(cu), float(cv), float(1.0 - 1.0 / (1.0 + np.exp(-lb))))
    if with_error:
        var = float(np.asarray(best.hess_inv)[2, 2]) if getattr(best, "hess_inv", None) is not None \
            else float("nan")
        out = out + (float(r * np.sqrt(var)) if var > 0 else float("nan"),)
    if _return_x:
        out = out + (np.r_[best.x, [0.0, 0.0]][:6],)
    return out


#: Largest aspect ratio (long / short semi-axis) of :func:`fit_ellipse_ring`: EM
#: reconstructions of spine necks have sections of aspect up to ~2 (issue #14); beyond
#: it, a short axis along the blur of the axial precision is not identified.
MAX_ASPECT = 3.0


def _ellipse_kernel():
    """The numba-compiled ``_nll_ellipse`` (the one :mod:`._bfgs` calls)."""
    from ._bfgs import _ellipse_nll

    return _ellipse_nll


def fit_ellipse_ring(uv: np.ndarray, *, sigma_u_nm: float, sigma_v_nm: float,
                     r_max_nm: float, circle, t_nm: np.ndarray | None = None):
    """Refit a blurred ring (:func:`fit_ring`'s model) as an ellipse.

    ``circle`` is :func:`fit_ring`'s result for the same points (the start). The ellipse
    has the semi-axes ``r e^eta`` and ``r e^-eta`` (``r``: the radius of the circle of
    the same area), an orientation, and aspect at most MAX_ASPECT.

    Returns
    -------
    (r_nm, aspect, delta_nll) or None
        The equivalent radius ``sqrt(a b)``, the aspect ``a / b`` and how much the
        negative log-likelihood dropped against the circle (twice it is chi-square
        with 2 degrees of freedom when the section is a circle). None when fewer than
        20 points lie within ``r_max_nm``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> phi = rng.uniform(0, 2 * np.pi, 4000)
    >>> pts = np.c_[60.0 * np.cos(phi), 25.0 * np.sin(phi)]   # a 2.4:1 ellipse
    >>> pts = pts[rng.uniform(0, 1, 4000) < np.hypot(60 * np.sin(phi), 25 * np.cos(phi)) / 60]
    >>> uv = pts[:300] + rng.normal(0, 1, (300, 2)) * [10.0, 25.0]
    >>> c = fit_ring(uv, sigma_u_nm=10.0, sigma_v_nm=25.0, r_max_nm=150.0, radius0_nm=50.0)
    >>> e = fit_ellipse_ring(uv, sigma_u_nm=10.0, sigma_v_nm=25.0, r_max_nm=150.0, circle=c)
    >>> bool(c[0] > 45.0), bool(abs(e[0] - np.sqrt(60 * 25)) < 6.0), bool(e[2] > 5.0)
    (True, True, True)
    """
    from ._bfgs import ELLIPSE

    uv = _points(uv, t_nm, r_max_nm)
    if uv is None:
        return None
    th = np.linspace(0.0, 2.0 * np.pi, _K, endpoint=False)
    f = _ellipse_kernel()
    eta_max = 0.5 * np.log(MAX_ASPECT)
    args = (uv, float(sigma_u_nm), float(sigma_v_nm), float(np.log(np.pi * r_max_nm ** 2)),
            np.cos(th), np.sin(th), float(eta_max))
    r0 = float(circle[0])
    # the centre and the axis tilt stay the circle's (its last item, when fit_ring gave
    # its parameters): only the radius, background, ellipticity and orientation move
    xc = np.asarray(circle[-1], float) if not np.isscalar(circle[-1]) else np.array(
        [circle[1], circle[2], np.log(r0),
         np.log(max(1.0 - circle[3], 1e-9) / max(circle[3], 1e-9)), 0.0, 0.0])
    full = np.r_[xc[:6], 0.0, 0.0]
    free = np.array([2, 3, 6, 7])

    def g(y, *a):
        x = full.copy()
        x[free] = y
        return f(x, *a)

    nll_c = g(full[free], *args)[0]
    best = None
    for th0 in (0.0, 0.5 * np.pi):
        y0 = full[free].copy()
        y0[2], y0[3] = 0.3, th0
        res = _minimize(ELLIPSE, y0, args, 1e-3, scipy_fun=g, eta_max=eta_max, full=full)
        if best is None or res.fun < best.fun:
            best = res
    eta = min(max(float(best.x[2]), -eta_max), eta_max)
    r = float(np.exp(best.x[0]))
    if not (np.isfinite(r) and r < r_max_nm) or best.fun > nll_c:
        return r0, 1.0, 0.0
    return r, float(np.exp(2.0 * abs(eta))), float(nll_c - best.fun)
