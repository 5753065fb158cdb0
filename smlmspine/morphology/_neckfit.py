"""Point-based neck diameter: fit a blurred tube model to the localizations themselves.

Around a straight neck segment the radial distances ``r`` of localizations from the
neck axis follow, for a membrane label (points on a cylinder of radius R, blurred by
an isotropic Gaussian of width sigma in the section plane), a Rice distribution
``Rice(nu=R, sigma)``; for a volume label (points filling the disk of radius R) the
density ``2 r / R^2 * P(|N((r, 0), sigma^2 I)| <= R)``, i.e. a non-central chi-square
CDF. Both are fitted by maximum likelihood on ``r < r_max`` (the truncation is in the
likelihood), so the envelope's outward bias never enters the estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from ..errors import ParameterError

__all__ = ["NeckFit", "fit_neck_diameter", "radial_distances"]


@dataclass(frozen=True)
class NeckFit:
    """Result of the point-based neck fit (nm).

    Attributes
    ----------
    diameter_nm : float
        Fitted neck diameter 2R (nm): twice the radius of the membrane shell
        (``label="membrane"``) or of the filled disk (``label="volume"``).
    diameter_err_nm : float
        Standard error of ``diameter_nm`` (nm), from the numerical Hessian of the
        negative log-likelihood (NaN when the Hessian cannot be inverted).
    sigma_nm : float
        Localization precision in the section plane (nm): fitted, or the
        ``sigma_nm`` given to :func:`fit_neck_diameter`.
    n_localizations : int
        Number of radial distances used (finite and below ``r_max_nm``).
    label : str
        ``"membrane"`` or ``"volume"``, the model fitted.
    converged : bool
        Whether the Nelder-Mead optimiser reported success; when False the numbers
        are the last iterate and should not be trusted.
    """

    diameter_nm: float
    diameter_err_nm: float
    sigma_nm: float
    n_localizations: int
    label: str
    converged: bool

    def to_dict(self) -> dict:
        """The fit as a dict of plain values (JSON-compatible).

        Returns
        -------
        dict
            One key per attribute.

        Examples
        --------
        >>> NeckFit(120.0, 3.0, 12.0, 500, "membrane", True).to_dict()["diameter_nm"]
        120.0
        """
        return asdict(self)


def radial_distances(points_nm: np.ndarray, axis_point_nm, axis_dir, *, s_min_nm: float,
                     s_max_nm: float) -> np.ndarray:
    """Distances of points from the axis line, for points whose projection on the axis
    (measured from ``axis_point_nm``) lies in ``[s_min_nm, s_max_nm]``.

    Parameters
    ----------
    points_nm : (N, 3) array_like of float
        Localizations (nm).
    axis_point_nm : (3,) array_like of float
        A point of the axis (nm); the origin of the axial coordinate ``s``.
    axis_dir : (3,) array_like of float
        Direction of the axis (any non-zero length; normalised here). ``s`` grows
        along it.
    s_min_nm, s_max_nm : float
        Range of the axial coordinate (nm, inclusive) of the points kept: a slab
        across the axis.

    Returns
    -------
    (K,) ndarray of float
        Distance (nm) of each kept point from the axis line, in the order of
        ``points_nm``; K <= N.

    Examples
    --------
    >>> radial_distances([[30.0, 40.0, 5.0], [10.0, 0.0, 50.0]], [0, 0, 0], [0, 0, 2],
    ...                  s_min_nm=0.0, s_max_nm=20.0)
    array([50.])
    """
    a = np.asarray(axis_dir, float)
    a = a / np.linalg.norm(a)
    rel = np.asarray(points_nm, float) - np.asarray(axis_point_nm, float)
    s = rel @ a
    sel = (s >= s_min_nm) & (s <= s_max_nm)
    perp = rel[sel] - np.outer(s[sel], a)
    return np.linalg.norm(perp, axis=1)


#: Negative log-likelihood returned where the model gives no finite value (a radius or
#: precision far outside the data: overflow, a zero density). Finite, so Nelder-Mead's
#: simplex arithmetic and the numerical Hessian never subtract inf from inf (two such
#: "invalid value" RuntimeWarnings reached the terminal on a 10^7-localization run).
NLL_OUT_OF_RANGE = 1e300


def _nll(params, r, r_max, label, sigma_fixed):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        val = _nll_raw(params, r, r_max, label, sigma_fixed)
    return float(val) if np.isfinite(val) else NLL_OUT_OF_RANGE


def _nll_raw(params, r, r_max, label, sigma_fixed):
    R = np.exp(params[0])
    sigma = sigma_fixed if sigma_fixed is not None else np.exp(params[1])
    if not (np.isfinite(R) and np.isfinite(sigma) and R > 0 and sigma > 0):
        return np.inf
    if label == "membrane":
        logp = stats.rice.logpdf(r, R / sigma, scale=sigma)
        norm = stats.rice.cdf(r_max, R / sigma, scale=sigma)
    else:
        cdf = stats.ncx2.cdf((R / sigma) ** 2, 2, (r / sigma) ** 2)
        logp = np.log(2 * r / R ** 2) + np.log(np.maximum(cdf, 1e-300))
        # Normalisation over [0, r_max] by quadrature on a fine grid.
        grid = np.linspace(0, r_max, 400)[1:]
        dens = 2 * grid / R ** 2 * stats.ncx2.cdf((R / sigma) ** 2, 2, (grid / sigma) ** 2)
        norm = np.trapezoid(np.r_[0.0, dens], np.r_[0.0, grid])
    return -(np.sum(logp) - len(r) * np.log(max(norm, 1e-300)))


def fit_neck_diameter(radial_nm: np.ndarray, *, label: str = "membrane", r_max_nm: float | None = None,
                      sigma_nm: float | None = None, initial_radius_nm: float | None = None) -> NeckFit:
    """Fit the neck diameter from radial distances of localizations to the neck axis.

    Parameters
    ----------
    radial_nm : (N,) ndarray
        Distances from the neck axis (see :func:`radial_distances`).
    label : {"membrane", "volume"}
        Membrane probe (a blurred shell) or filling label (a blurred disk).
    r_max_nm : float, optional
        Only distances below this are used (default: all).
    sigma_nm : float, optional
        Localization precision in the section plane (nm); fitted when not given.
    initial_radius_nm : float, optional
        Starting radius of the optimiser (nm; default: the median distance for a
        membrane label, the 90th percentile for a volume label).

    Returns
    -------
    NeckFit
        Diameter, its standard error and the precision (nm), the number of distances
        used and whether the optimiser converged.

    Raises
    ------
    ParameterError
        When ``label`` is not ``"membrane"`` or ``"volume"``, or fewer than 20 finite
        distances (below ``r_max_nm``) remain.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> phi = rng.uniform(0, 2 * np.pi, 3000)
    >>> xy = 60.0 * np.c_[np.cos(phi), np.sin(phi)] + rng.normal(0, 12.0, (3000, 2))
    >>> fit = fit_neck_diameter(np.hypot(*xy.T), label="membrane")
    >>> abs(fit.diameter_nm - 120.0) < 4
    True
    """
    from .._labels import check_label

    check_label(label)
    r = np.asarray(radial_nm, float)
    r = r[np.isfinite(r)]
    if r_max_nm is not None:
        r = r[r < r_max_nm]
    if r.size < 20:
        raise ParameterError(f"only {r.size} localizations around the neck; need >= 20 for a fit")
    r = np.maximum(r, 1e-6)
    r_max = float(r_max_nm) if r_max_nm is not None else float(r.max() * 1.0001)
    R0 = initial_radius_nm or (np.median(r) if label == "membrane" else np.percentile(r, 90))
    s0 = sigma_nm or max(np.std(r) * 0.7, 1.0)
    x0 = [np.log(R0)] + ([] if sigma_nm is not None else [np.log(s0)])
    res = optimize.minimize(_nll, x0, args=(r, r_max, label, sigma_nm), method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
    R = float(np.exp(res.x[0]))
    sigma = float(sigma_nm if sigma_nm is not None else np.exp(res.x[1]))
    err = _radius_error(res.x, r, r_max, label, sigma_nm) * R
    return NeckFit(diameter_nm=2 * R, diameter_err_nm=2 * err, sigma_nm=sigma,
                   n_localizations=int(r.size), label=label, converged=bool(res.success))


def _radius_error(x, r, r_max, label, sigma_fixed) -> float:
    """Standard error of log R from the numerical Hessian of the negative log-likelihood."""
    x = np.asarray(x, float)
    k = len(x)
    h = 1e-3
    H = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            f = [_nll(x + si * ei + sj * ej, r, r_max, label, sigma_fixed)
                 for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
            if max(f) >= NLL_OUT_OF_RANGE:   # the optimum sits at the model's edge
                return float("nan")
            H[i, j] = (f[0] - f[1] - f[2] + f[3]) / (4 * h * h)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return float("nan")
    return float(np.sqrt(max(cov[0, 0], 0.0))) if np.isfinite(cov[0, 0]) else float("nan")
