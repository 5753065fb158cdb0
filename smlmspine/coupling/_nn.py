"""Nearest-neighbour distances between channels, with CSR-in-region and random-shift nulls."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ._points import as_points, common_ndim
from ._region import make_region

__all__ = ["nn_distances", "nn_test", "NearestNeighbourResult"]


def nn_distances(pre, post, *, ndim: int | None = None) -> np.ndarray:
    """Distance ``(n1,)`` in nm from each ``pre`` point to its nearest ``post`` point.

    Parameters
    ----------
    pre, post : pyarrow.Table or (N, d) array_like
        Points in nm, ``d`` = 2 or 3 (tables: ``x, y(, z)`` or ``centroid_*_nm``).
    ndim : {2, 3}, optional
        Dimensionality used; default 3 only when both populations are 3D (a 3D
        population is otherwise cut to x, y).

    Returns
    -------
    (n1,) ndarray of float64
        Euclidean distance in nm, in the order of ``pre``.

    Raises
    ------
    ParameterError
        ``post`` is empty, or points are not finite / of the wrong shape.

    Examples
    --------
    >>> nn_distances([[0.0, 0.0], [10.0, 0.0]], [[3.0, 4.0]]).tolist()
    [5.0, 8.06225774829855]
    """
    from scipy.spatial import cKDTree

    p1, p2 = as_points(pre, name="pre"), as_points(post, name="post")
    d = common_ndim(p1, p2, ndim)
    p1, p2 = as_points(p1, name="pre", ndim=d), as_points(p2, name="post", ndim=d)
    if p2.shape[0] == 0:
        raise ParameterError("post population is empty: no nearest neighbour")
    dist, _ = cKDTree(p2).query(p1, k=1)
    return np.asarray(dist, dtype=np.float64)


@dataclass(frozen=True)
class NearestNeighbourResult:
    """Observed nearest-neighbour distances (pre -> post) against a Monte-Carlo null.

    ``cdf_*`` are empirical CDFs at ``bins_nm``; the envelope is the pointwise min/max
    over simulations; ``p_value`` is the Monte-Carlo rank p-value of the largest
    absolute CDF deviation from the null mean (a Kolmogorov-type statistic).

    Attributes
    ----------
    distances_nm : (n1,) ndarray
        Observed distance from each ``pre`` point to its nearest ``post`` point, nm.
    bins_nm : (B,) ndarray
        Distances at which the CDFs are evaluated, nm.
    cdf : (B,) ndarray
        Observed empirical CDF, fraction of ``pre`` points with a distance <= ``bins_nm``.
    cdf_null_mean, cdf_null_low, cdf_null_high : (B,) ndarray
        Mean, pointwise minimum and maximum of the CDFs of the simulations.
    median_nm : float
        Median observed distance, nm.
    median_null_nm : float
        Median over the simulations of their median distance, nm.
    p_value : float
        Monte-Carlo p-value ``(1 + #{simulated deviation >= observed}) / (n + 1)``.
    null : {"csr", "shift"}
        The null model (see :func:`nn_test`).
    n_simulations : int
        Simulations used (shifts that left no ``post`` point in the region are dropped).
    parameters : dict
        Analysis settings (``ndim``).
    """

    distances_nm: np.ndarray
    bins_nm: np.ndarray
    cdf: np.ndarray
    cdf_null_mean: np.ndarray
    cdf_null_low: np.ndarray
    cdf_null_high: np.ndarray
    median_nm: float
    median_null_nm: float
    p_value: float
    null: str
    n_simulations: int
    parameters: dict = field(default_factory=dict)

    def to_table(self) -> pa.Table:
        """The CDFs as a table, one row per bin.

        Returns
        -------
        pyarrow.Table
            ``distance_nm``, ``cdf``, ``cdf_null_mean``, ``cdf_null_low``,
            ``cdf_null_high``.
        """
        return pa.table({"distance_nm": self.bins_nm, "cdf": self.cdf,
                         "cdf_null_mean": self.cdf_null_mean, "cdf_null_low": self.cdf_null_low,
                         "cdf_null_high": self.cdf_null_high})

    def to_dict(self) -> dict:
        """The scalar results, JSON-ready.

        Returns
        -------
        dict
            ``median_nm``, ``median_null_nm``, ``p_value``, ``null``, ``n_simulations``,
            ``n_pre`` and the entries of ``parameters``.
        """
        return {"median_nm": self.median_nm, "median_null_nm": self.median_null_nm,
                "p_value": self.p_value, "null": self.null, "n_simulations": self.n_simulations,
                "n_pre": int(self.distances_nm.size), **self.parameters}


def nn_test(pre, post, *, region=None, null: str = "csr", n_simulations: int = 99,
            bins_nm=None, ndim: int | None = None, voxel_size_nm=None, rng=None,
            warn_region: bool = True) -> NearestNeighbourResult:
    """Nearest-neighbour distance distribution pre -> post against a null model.

    Parameters
    ----------
    pre, post : pyarrow.Table or (N, d) array_like
        Points in nm, ``d`` = 2 or 3 (tables: ``x, y(, z)`` or ``centroid_*_nm``).
    region : Region or specification, optional
        See :func:`smlmspine.coupling.make_region` (default: bounding box of both
        populations, with a warning).
    null : {"csr", "shift"}
        ``"csr"``: population 2 redrawn uniformly in the region; ``"shift"``: population
        2 toroidally shifted by a random vector in the region's bounding box (points
        shifted out of the region are dropped).
    n_simulations : int
        Number of null simulations (>= 1).
    bins_nm : (B,) array_like, optional
        Distances in nm at which the CDFs are evaluated (default 101 values from 0 to
        1.5 times the 99th percentile of the observed distances).
    ndim : {2, 3}, optional
        Dimensionality used; default 3 only when both populations are 3D.
    voxel_size_nm : float or sequence, optional
        Pixel (voxel) size of a mask region, nm.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the simulations.
    warn_region : bool
        Warn when the region is derived from the data.

    Returns
    -------
    NearestNeighbourResult

    Raises
    ------
    ParameterError
        An unknown ``null``, ``n_simulations < 1``, an empty ``post``, or invalid points
        or region.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> a = rng.random((300, 2)) * 5000
    >>> b = a + rng.normal(0, 20, a.shape)          # every post 20 nm from a pre
    >>> from smlmspine.coupling import BoxRegion
    >>> res = nn_test(a, np.clip(b, 0, 5000), region=BoxRegion([0, 0], [5000, 5000]),
    ...               n_simulations=19, rng=0)
    >>> res.p_value, res.median_nm < res.median_null_nm
    (0.05, True)
    """
    if null not in ("csr", "shift"):
        raise ParameterError(f"null must be 'csr' or 'shift', got {null!r}")
    if n_simulations < 1:
        raise ParameterError(f"n_simulations must be >= 1, got {n_simulations}")
    rng = np.random.default_rng(rng)
    p1, p2 = as_points(pre, name="pre"), as_points(post, name="post")
    d = common_ndim(p1, p2, ndim)
    p1, p2 = as_points(p1, name="pre", ndim=d), as_points(p2, name="post", ndim=d)
    reg = make_region(region, np.vstack([p1, p2]), voxel_size_nm=voxel_size_nm, warn=warn_region)
    obs = nn_distances(p1, p2)
    bins = (np.linspace(0, np.percentile(obs, 99) * 1.5 + 1e-9, 101) if bins_nm is None
            else np.asarray(bins_nm, dtype=np.float64))
    lo, hi = reg.bounds_nm
    cdfs, meds = [], []
    for _ in range(int(n_simulations)):
        if null == "csr":
            q = reg.sample(p2.shape[0], rng)
        else:
            q = lo + np.mod(p2 - lo + rng.random(d) * (hi - lo), hi - lo)
            q = q[reg.contains(q)]
        if q.shape[0] == 0:
            continue
        s = nn_distances(p1, q)
        cdfs.append(np.searchsorted(np.sort(s), bins, side="right") / s.size)
        meds.append(np.median(s))
    cdfs = np.array(cdfs)
    cdf = np.searchsorted(np.sort(obs), bins, side="right") / obs.size
    mean = cdfs.mean(axis=0)
    dev_sim = np.max(np.abs(cdfs - mean), axis=1)
    dev_obs = np.max(np.abs(cdf - mean))
    p = float((1 + np.sum(dev_sim >= dev_obs)) / (len(cdfs) + 1))
    return NearestNeighbourResult(
        distances_nm=obs, bins_nm=bins, cdf=cdf, cdf_null_mean=mean, cdf_null_low=cdfs.min(axis=0),
        cdf_null_high=cdfs.max(axis=0), median_nm=float(np.median(obs)),
        median_null_nm=float(np.median(meds)), p_value=p, null=null, n_simulations=len(cdfs),
        parameters={"ndim": d})
