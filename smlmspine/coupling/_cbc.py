"""Coordinate-based colocalization (CBC; Malkusch et al., Histochem. Cell Biol. 137, 1 (2012)).

For each localization ``A_i`` of channel A (``pre``, the first argument of :func:`cbc`)
and radii ``r_1 < ... < r_n = R_max``:

``D_AA(r) = N_AA(r) / N_AA(R_max) * (R_max / r)^d`` and ``D_AB(r)`` likewise with the
localizations of channel B (``post``; ``N`` counts within ``r``, the point itself
excluded from ``N_AA``; ``d`` = 2 or 3). The Spearman rank correlation ``S_i`` of ``D_AA`` and ``D_AB``
over the radii, weighted by the distance ``E_i`` to the nearest B localization, gives
``C_i = S_i * exp(-E_i / R_max)`` in [-1, 1]: 1 colocalized, 0 uncorrelated, -1
anti-correlated. A localization without any B neighbour within ``R_max`` gets 0 (and
NaN when it has no A neighbour either, where no distribution exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ._points import as_points, common_ndim

__all__ = ["cbc", "CbcResult"]


@dataclass(frozen=True)
class CbcResult:
    """CBC values ``(n_pre,)`` of the ``pre`` localizations with respect to ``post``.

    Attributes
    ----------
    values : (N,) ndarray of float
        CBC value per ``pre`` localization, in [-1, 1] (NaN without a ``pre`` neighbour).
    nearest_distance_nm : (N,) ndarray of float
        Distance to the nearest ``post`` localization, nm (inf without any).
    radii_nm : (K,) ndarray of float
        The radii, nm.
    parameters : dict
        ``r_max_nm``, ``n_radii``, ``ndim``.
    """

    values: np.ndarray
    nearest_distance_nm: np.ndarray
    radii_nm: np.ndarray
    parameters: dict = field(default_factory=dict)

    def to_table(self) -> pa.Table:
        """One row per ``pre`` localization.

        Returns
        -------
        pyarrow.Table
            ``cbc``, ``nearest_distance_nm``.
        """
        return pa.table({"cbc": self.values, "nearest_distance_nm": self.nearest_distance_nm})

    def to_dict(self) -> dict:
        """Summary: count, mean and median of the finite values, radii, parameters.

        Returns
        -------
        dict
        """
        v = self.values[np.isfinite(self.values)]
        return {"n": int(self.values.size), "mean_cbc": float(v.mean()) if v.size else None,
                "median_cbc": float(np.median(v)) if v.size else None,
                "radii_nm": self.radii_nm.tolist(), **self.parameters}


def _rank_rows(a):
    """Average ranks along axis 1 (ties share the mean rank)."""
    from scipy.stats import rankdata

    return rankdata(a, axis=1)


def cbc(pre, post, *, r_max_nm: float = 500.0, n_radii: int = 10,
        ndim: int | None = None) -> CbcResult:
    """CBC value of every localization of ``pre`` with respect to ``post``.

    The arguments are in the ``(pre, post)`` order of the other coupling functions;
    ``pre`` plays channel A of the module docstring (the channel that gets one value per
    localization), ``post`` channel B. Swap them for the values of the post channel.

    Parameters
    ----------
    pre : pyarrow.Table or (N, d) array
        Localizations scored (channel A), nm (``x``, ``y`` (, ``z``) of a table).
    post : pyarrow.Table or (M, d) array
        Localizations they are compared with (channel B), nm.
    r_max_nm : float
        Largest radius ``R_max``, nm.
    n_radii : int
        Number of radii, evenly spaced in ``(0, R_max]``; at least 2.
    ndim : {2, 3}, optional
        Dimensionality; default: the common dimensionality of the two inputs.

    Returns
    -------
    CbcResult
        ``values`` (N,) in [-1, 1] (0 without a ``post`` neighbour within ``R_max``, NaN
        without a ``pre`` neighbour), ``nearest_distance_nm`` (N,) to the nearest
        ``post`` localization, ``radii_nm``.

    Raises
    ------
    ParameterError
        ``r_max_nm <= 0``, ``n_radii < 2``, or inputs that are not point sets.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pre = rng.normal(0, 50, (200, 2)) + rng.integers(0, 10, (200, 1)) * 2000.0
    >>> same = cbc(pre, pre + rng.normal(0, 5, pre.shape), r_max_nm=300).values
    >>> far = cbc(pre, pre + 5000.0, r_max_nm=300).values
    >>> bool(np.nanmean(same) > 0.5), bool(np.nanmean(far) == 0.0)
    (True, True)
    """
    from scipy.spatial import cKDTree

    p1, p2 = as_points(pre, name="pre"), as_points(post, name="post")
    d = common_ndim(p1, p2, ndim)
    p1, p2 = as_points(p1, name="pre", ndim=d), as_points(p2, name="post", ndim=d)
    if not r_max_nm > 0 or n_radii < 2:
        raise ParameterError(f"need r_max_nm > 0 and n_radii >= 2, got {r_max_nm}, {n_radii}")
    radii = np.linspace(r_max_nm / n_radii, r_max_nm, n_radii)
    n = p1.shape[0]
    if n == 0:
        return CbcResult(np.empty(0), np.empty(0), radii, {"r_max_nm": r_max_nm, "n_radii": n_radii})
    ta = cKDTree(p1)
    tb = cKDTree(p2) if p2.shape[0] else None
    naa = np.column_stack([ta.query_ball_point(p1, r, return_length=True) - 1 for r in radii])
    if tb is not None:
        nab = np.column_stack([tb.query_ball_point(p1, r, return_length=True) for r in radii])
        e, _ = tb.query(p1, k=1)
    else:
        nab = np.zeros_like(naa)
        e = np.full(n, np.inf)
    scale = (r_max_nm / radii) ** d
    with np.errstate(invalid="ignore", divide="ignore"):
        daa = naa / naa[:, -1:] * scale
        dab = nab / nab[:, -1:] * scale
    out = np.full(n, np.nan)
    ok_b = nab[:, -1] > 0
    ok_a = naa[:, -1] > 0
    both = ok_a & ok_b
    if np.any(both):
        ra, rb = _rank_rows(daa[both]), _rank_rows(dab[both])
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(den > 0, (ra * rb).sum(axis=1) / den, 0.0)
        out[both] = s * np.exp(-e[both] / r_max_nm)
    out[ok_a & ~ok_b] = 0.0
    out[~ok_a & ~ok_b] = np.nan
    # A alone but B present: D_AA undefined; Malkusch assign by the B distribution only
    out[~ok_a & ok_b] = np.nan
    return CbcResult(values=out, nearest_distance_nm=np.asarray(e, dtype=np.float64), radii_nm=radii,
                     parameters={"r_max_nm": float(r_max_nm), "n_radii": int(n_radii), "ndim": d})
