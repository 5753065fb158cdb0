"""Cross Ripley K, L and H functions (2D/3D) with edge corrections and envelopes.

``K(r) = |Omega| / (n1 n2) * sum_ij w_ij 1(d_ij <= r)`` between population 1 (pre) and
population 2 (post); ``L(r) = sqrt(K / pi)`` (2D) or ``(3 K / (4 pi))^(1/3)`` (3D) and
``H(r) = L(r) - r`` (0 under CSR). Edge corrections:

- ``"isotropic"`` (Ripley): ``w_ij = 1 / f_i(d_ij)``, the inverse fraction of the circle
  (sphere) of radius ``d_ij`` around ``x_i`` inside the region;
- ``"translation"`` (Ohser): ``w_ij = |Omega| / |Omega cap (Omega + x_j - x_i)|``, box
  regions only: ``prod_a L_a / (L_a - |dx_a|)``;
- ``"border"`` (reduced sample): only population-1 points at least ``r`` from the edge
  count at radius ``r``, ``K(r) = |Omega| / (n1(r) n2) sum ...``;
- ``"none"``.

Convex regions (box, convex polygon/hull) are counted by a numba cell-list kernel
(memory O(N), no pair list); masks and non-convex polygons by chunks of k-d tree pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ._points import as_points, common_ndim
from ._region import BoxRegion, ConvexRegion, make_region

__all__ = ["cross_k", "cross_k_envelope", "RipleyResult"]

_MODES = {"none": 0, "isotropic": 1, "translation": 2, "border": 3}


@dataclass(frozen=True)
class RipleyResult:
    """Cross K/L/H per radius; envelopes are NaN unless from :func:`cross_k_envelope`.

    ``k_nm_d`` is in nm^2 (2D) or nm^3 (3D); ``l_nm``, ``h_nm`` in nm.

    Attributes
    ----------
    radii_nm : (R,) ndarray
        Radii in nm.
    k_nm_d : (R,) ndarray
        Cross K at each radius, nm^2 (2D) or nm^3 (3D); NaN with the border correction
        when no population-1 point is at least ``r`` from the edge.
    l_nm : (R,) ndarray
        ``L(r)``, nm.
    h_nm : (R,) ndarray
        ``H(r) = L(r) - r``, nm (0 under CSR, > 0 when ``post`` clusters around ``pre``).
    ndim : {2, 3}
        Dimensionality.
    correction : {"isotropic", "translation", "border", "none"}
        Edge correction used.
    n_pre, n_post : int
        Number of points of population 1 and 2.
    region_measure_nm_d : float
        Area (nm^2) or volume (nm^3) of the region.
    k_low_nm_d, k_high_nm_d : (R,) ndarray or None
        Pointwise minimum and maximum of K over the simulations (None without envelope).
    h_low_nm, h_high_nm, h_mean_nm : (R,) ndarray or None
        Pointwise minimum, maximum and mean of H over the simulations, nm.
    p_value : float
        Monte-Carlo p-value of the largest deviation of H from the null mean (NaN
        without envelope).
    n_simulations : int
        Simulations used (0 without envelope).
    null : str
        Null model of the envelope (``"csr"`` or ``"shift"``; empty without envelope).
    parameters : dict
        Analysis settings (``region``: :meth:`Region.to_dict`).
    """

    radii_nm: np.ndarray
    k_nm_d: np.ndarray
    l_nm: np.ndarray
    h_nm: np.ndarray
    ndim: int
    correction: str
    n_pre: int
    n_post: int
    region_measure_nm_d: float
    k_low_nm_d: np.ndarray = None
    k_high_nm_d: np.ndarray = None
    h_low_nm: np.ndarray = None
    h_high_nm: np.ndarray = None
    h_mean_nm: np.ndarray = None
    p_value: float = float("nan")
    n_simulations: int = 0
    null: str = ""
    parameters: dict = field(default_factory=dict)

    def to_table(self) -> pa.Table:
        """One row per radius; envelope columns NaN when there is no envelope.

        Returns
        -------
        pyarrow.Table
            ``radius_nm``, ``k_nm_d``, ``l_nm``, ``h_nm``, ``k_low_nm_d``,
            ``k_high_nm_d``, ``h_low_nm``, ``h_high_nm``, ``h_mean_nm``.
        """
        nan = np.full(self.radii_nm.size, np.nan)
        g = lambda v: nan if v is None else v  # noqa: E731
        return pa.table({"radius_nm": self.radii_nm, "k_nm_d": self.k_nm_d, "l_nm": self.l_nm,
                         "h_nm": self.h_nm, "k_low_nm_d": g(self.k_low_nm_d),
                         "k_high_nm_d": g(self.k_high_nm_d), "h_low_nm": g(self.h_low_nm),
                         "h_high_nm": g(self.h_high_nm), "h_mean_nm": g(self.h_mean_nm)})

    def to_dict(self) -> dict:
        """Every field, arrays as lists (JSON-ready).

        Returns
        -------
        dict
            ``{field name: value}``.
        """
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.__dict__.items()}


def _l_from_k(k, ndim):
    k = np.maximum(k, 0.0)
    return np.sqrt(k / np.pi) if ndim == 2 else np.cbrt(3.0 * k / (4.0 * np.pi))


def _counts(p1, p2, edges, region, correction):
    """Per-bin weighted counts (cumulative for border) and eligible n1 per radius."""
    mode = _MODES[correction]
    d = p1.shape[1]
    conv = region if isinstance(region, ConvexRegion) else getattr(region, "_convex", None)
    if correction == "translation" and not isinstance(region, BoxRegion):
        raise ParameterError("the translation correction needs a box region (got "
                             f"{region.kind}); use 'isotropic' or 'border'")
    if conv is not None:
        from ._kernels import cross_k_counts

        size = (region.size_nm if isinstance(region, BoxRegion) else np.ones(d))
        c, elig = cross_k_counts(p1, p2, edges, conv.A, conv.b, mode, np.asarray(size, float), 4)
        return c, elig
    # generic region: k-d tree pairs per chunk of population 1
    from scipy.spatial import cKDTree

    K = edges.size - 1
    c = np.zeros(K)
    edist = region.edge_distance(p1)
    elig = np.array([(edist >= r).sum() for r in edges[1:]], dtype=float)
    t2 = cKDTree(p2)
    for s in range(0, p1.shape[0], 20000):
        sub = p1[s:s + 20000]
        t1 = cKDTree(sub)
        sp = t1.sparse_distance_matrix(t2, edges[-1], output_type="ndarray")
        i, dist = sp["i"], sp["v"]
        k = np.clip(np.searchsorted(edges, dist, side="left") - 1, 0, K - 1)
        if mode == 3:
            e = edist[s + i]
            for kk in range(K):
                c[kk] += np.sum((dist <= edges[kk + 1]) & (e >= edges[kk + 1]))
            continue
        w = region.edge_weights(sub[i], dist) if mode == 1 else np.ones(dist.size)
        c += np.bincount(k, weights=w, minlength=K)[:K]
    return c, elig


def cross_k(pre, post, *, radii_nm, region=None, correction: str = "isotropic",
            ndim: int | None = None, voxel_size_nm=None, warn_region: bool = True) -> RipleyResult:
    """Cross Ripley K/L/H of ``post`` around ``pre`` at the given radii.

    Parameters
    ----------
    pre, post : pyarrow.Table or (N, d) array
        Points in nm (tables: ``x, y(, z)`` or ``centroid_*_nm``).
    radii_nm : sequence of float
        Increasing positive radii, nm.
    region : Region or specification, optional
        See :func:`smlmspine.coupling.make_region` (default: bounding box, with a warning).
    correction : {"isotropic", "translation", "border", "none"}
        Edge correction (module docstring); ``"translation"`` needs a box region.
    ndim : {2, 3}, optional
        Dimensionality used; default 3 only when both populations are 3D.
    voxel_size_nm : float or sequence, optional
        Pixel (voxel) size of a mask region, nm.
    warn_region : bool
        Warn when the region is derived from the data.

    Returns
    -------
    RipleyResult
        Without envelope (the envelope fields are None/NaN).

    Raises
    ------
    ParameterError
        An unknown correction, radii that are not increasing and positive, an empty
        population, or ``"translation"`` with a region that is not a box.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.random((2000, 2)) * 1e4, rng.random((2000, 2)) * 1e4
    >>> res = cross_k(a, b, radii_nm=[200, 400], region=BoxRegion([0, 0], [1e4, 1e4]))
    >>> bool(np.all(np.abs(res.h_nm) < 15))
    True
    """
    if correction not in _MODES:
        raise ParameterError(f"correction must be one of {sorted(_MODES)}, got {correction!r}")
    p1, p2 = as_points(pre, name="pre"), as_points(post, name="post")
    d = common_ndim(p1, p2, ndim)
    p1, p2 = as_points(p1, name="pre", ndim=d), as_points(p2, name="post", ndim=d)
    radii = np.asarray(radii_nm, dtype=np.float64).reshape(-1)
    if radii.size == 0 or np.any(radii <= 0) or np.any(np.diff(radii) <= 0):
        raise ParameterError(f"radii_nm must be increasing positive values, got {radii.tolist()}")
    reg = make_region(region, np.vstack([p1, p2]), voxel_size_nm=voxel_size_nm, warn=warn_region)
    n1, n2 = p1.shape[0], p2.shape[0]
    if n1 == 0 or n2 == 0:
        raise ParameterError(f"cross K needs points in both populations (got {n1}, {n2})")
    edges = np.r_[0.0, radii]
    c, elig = _counts(p1, p2, edges, reg, correction)
    measure = reg.measure
    if correction == "border":
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(elig > 0, measure * c / (elig * float(n2)), np.nan)
    else:
        k = measure * np.cumsum(c) / (float(n1) * float(n2))
    L = _l_from_k(k, d)
    return RipleyResult(radii_nm=radii, k_nm_d=k, l_nm=L, h_nm=L - radii, ndim=d,
                        correction=correction, n_pre=n1, n_post=n2, region_measure_nm_d=measure,
                        parameters={"region": reg.to_dict()})


def cross_k_envelope(pre, post, *, radii_nm, region=None, correction: str = "isotropic",
                     n_simulations: int = 99, null: str = "csr", ndim: int | None = None,
                     voxel_size_nm=None, rng=None, warn_region: bool = True) -> RipleyResult:
    """Cross K/L/H with pointwise Monte-Carlo envelopes (min/max over simulations).

    ``null="csr"`` redraws population 2 uniformly in the region; ``null="shift"``
    shifts it toroidally by a random vector within the region's bounding box (keeps its
    own clustering; points shifted out of a mask are dropped). ``p_value`` is the
    Monte-Carlo rank p-value of the maximum absolute deviation of H from the null mean
    over the radii.

    Parameters
    ----------
    pre, post : pyarrow.Table or (N, d) array
        Points in nm (tables: ``x, y(, z)`` or ``centroid_*_nm``).
    radii_nm : sequence of float
        Increasing positive radii, nm.
    region : Region or specification, optional
        See :func:`smlmspine.coupling.make_region` (default: bounding box, with a warning).
    correction : {"isotropic", "translation", "border", "none"}
        Edge correction (see :func:`cross_k`).
    n_simulations : int
        Number of null simulations (>= 1).
    null : {"csr", "shift"}
        Null model of population 2 (see above).
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
    RipleyResult
        The observed K/L/H with ``k_low_nm_d``, ``k_high_nm_d``, ``h_low_nm``,
        ``h_high_nm``, ``h_mean_nm``, ``p_value``, ``n_simulations`` and ``null`` set.

    Raises
    ------
    ParameterError
        An unknown ``null``, ``n_simulations < 1``, or the errors of :func:`cross_k`.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> a = rng.random((200, 2)) * 5000
    >>> b = a + rng.normal(0, 15, a.shape)                # post clustered around pre
    >>> res = cross_k_envelope(a, b, radii_nm=[50, 100, 200], n_simulations=19, rng=0,
    ...                        region=BoxRegion([-100, -100], [5100, 5100]))
    >>> res.p_value, bool(np.all(res.h_nm > res.h_high_nm))
    (0.05, True)
    """
    if null not in ("csr", "shift"):
        raise ParameterError(f"null must be 'csr' or 'shift', got {null!r}")
    if n_simulations < 1:
        raise ParameterError(f"n_simulations must be >= 1, got {n_simulations}")
    rng = np.random.default_rng(rng)
    obs = cross_k(pre, post, radii_nm=radii_nm, region=region, correction=correction, ndim=ndim,
                  voxel_size_nm=voxel_size_nm, warn_region=warn_region)
    p1 = as_points(pre, name="pre", ndim=obs.ndim)
    p2 = as_points(post, name="post", ndim=obs.ndim)
    reg = make_region(region, np.vstack([p1, p2]), voxel_size_nm=voxel_size_nm, warn=False)
    lo, hi = reg.bounds_nm
    ks, hs = [], []
    for _ in range(int(n_simulations)):
        if null == "csr":
            q = reg.sample(p2.shape[0], rng)
        else:
            q = lo + np.mod(p2 - lo + rng.random(obs.ndim) * (hi - lo), hi - lo)
            q = q[reg.contains(q)]
            if q.shape[0] == 0:
                continue
        r = cross_k(p1, q, radii_nm=obs.radii_nm, region=reg, correction=correction)
        ks.append(r.k_nm_d)
        hs.append(r.h_nm)
    ks, hs = np.array(ks), np.array(hs)
    hmean = np.nanmean(hs, axis=0)
    dev_sim = np.nanmax(np.abs(hs - hmean), axis=1)
    dev_obs = np.nanmax(np.abs(obs.h_nm - hmean))
    p = float((1 + np.sum(dev_sim >= dev_obs)) / (len(hs) + 1))
    return RipleyResult(radii_nm=obs.radii_nm, k_nm_d=obs.k_nm_d, l_nm=obs.l_nm, h_nm=obs.h_nm,
                        ndim=obs.ndim, correction=correction, n_pre=obs.n_pre, n_post=obs.n_post,
                        region_measure_nm_d=obs.region_measure_nm_d,
                        k_low_nm_d=np.nanmin(ks, axis=0), k_high_nm_d=np.nanmax(ks, axis=0),
                        h_low_nm=np.nanmin(hs, axis=0), h_high_nm=np.nanmax(hs, axis=0),
                        h_mean_nm=hmean, p_value=p, n_simulations=len(hs), null=null,
                        parameters=obs.parameters)

