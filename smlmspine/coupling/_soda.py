"""SODA (Statistical Object Distance Analysis) for point patterns, 2D and 3D.

Method (Lagache et al., Nat. Commun. 9, 698 (2018)), as implemented here; see
``docs/coupling.md`` for the derivation and the choices made.

Let population 1 (pre, ``n1`` points ``x_i``) and population 2 (post, ``n2`` points
``y_j``) lie in a region ``Omega`` of measure ``|Omega|`` (area or volume), and rings
(shells in 3D) ``R_k = (r_{k-1}, r_k]``, ``r_0 = 0``, of width ``ring_nm`` up to
``r_max_nm``, with measures ``a_k``.

1. Weighted ring counts ``C_k = sum_ij w_ij 1(d_ij in R_k)`` with Ripley's isotropic
   edge weight ``w_ij = 1 / f_i(d_ij)``, ``f_i(r)`` the fraction of the circle (sphere)
   of radius ``r`` around ``x_i`` inside ``Omega``; ``Delta K_k = |Omega| C_k /(n1 n2)``.
2. Null: population 2 is CSR in ``Omega`` given population 1 (``n2`` iid uniform points).
   Then exactly ``E C_k = n1 n2 a_k / |Omega|`` and

   ``Cov(C_k, C_l) = n2 [ (delta_kl B_k + S_kl) / |Omega| - n1^2 a_k a_l / |Omega|^2 ]``

   with the boundary term ``B_k = sum_i int_{R_k} w_i(y)^2 dy`` (``= n1 a_k`` away from
   the edge; integrated radially with Gauss-Legendre, 4 nodes per ring) and the ring
   overlap ("mixing") matrix ``S_kl = sum_{i != i'} |R_k(x_i) cap R_l(x_i')|`` over pairs
   of population-1 points closer than ``2 r_max`` (closed-form lens areas/volumes,
   summed over a fine histogram of the pair distances).
3. Per ring a normalised statistic ``(C_k - E C_k) / sd_k`` and, for the decision, a
   z-score from the (mid-p) upper tail of a scaled Poisson law with the same mean and
   variance (ring counts are small at short distances, where the normal tail is too
   light and gives false positives). A ring is
   significant when its z-score exceeds the threshold, by default the universal
   threshold ``sqrt(2 ln n1)``.
4. The coupled pairs in ring ``k`` number ``e_k = C_k - B'_k`` (excess over the
   background ``B'_k``); a pair at distance ``d_ij`` in ring ``k`` has coupling
   probability ``p_ij = min(1, w_ij e_k / C_k)``. The number of coupled pairs
   ``N_c = sum_ij p_ij`` is the number of coupled objects of each population when every
   object has at most one partner (a synapse); coupling index of population 1:
   ``min(1, N_c / n1)``, of population 2: ``min(1, N_c / n2)`` (``index="pairs"``).
   Capping each object's ``sum p`` at 1 instead (``index="points"``, the default for the
   Monte-Carlo nulls on raw localizations, where every localization of an object pairs
   with many of its partner) biases the index low when coupling is dense among objects,
   because the probability of a ring is spread over its background pairs too.
   Mean coupling distance: probability-weighted ``sum p_ij d_ij / sum p_ij``
   (``mean_coupling_distance_weighted_nm``) and unweighted over the pairs with
   ``p_ij > 0`` (``mean_coupling_distance_nm``; includes background pairs of the
   coupled rings, hence biased towards the ring's outer part).
5. Bias correction (``bias_correction=True``, default): with broad coupling distances the
   tails of the distance distribution fall in rings that are not individually
   significant, and plain SODA (``bias_correction=False``: coupling only in significant
   rings) underestimates the coupled fraction. Starting from the significant rings,
   each run of consecutive significant rings is widened to the rings overlapping
   ``m +- 2.5 s`` (``m``, ``s``: the excess-weighted mean and standard deviation of the
   distance in the current window), iterated to a fixed point; the excess of every ring
   in the window counts, so the estimate is unbiased when the window holds the coupling
   distribution. The background is updated in the same loop to the non-partner pairs
   only, ``B'_k = (1 - N_c / (n1 n2)) E C_k``.

For raw localizations (clustered, blinking) the analytic null is wrong (population 2
itself is clustered); ``null="shift"`` (random toroidal shifts of population 2 within
the region's bounding box) or ``null="csr"`` (``n2`` uniform points in the region) give
the ring means and covariances by Monte Carlo instead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, QualityWarning
from ..schema import column_specs, spec_table
from ._geometry import background_mean_distance, ring_measure, ring_overlap_matrix
from ._points import as_points, common_ndim
from ._region import Region, make_region

__all__ = ["soda", "SodaResult", "ring_moments", "PAIR_COLUMNS", "RING_COLUMNS"]

_F, _I, _B = pa.float64(), pa.int64(), pa.bool_()

#: Columns of ``pairs.parquet`` (``data_schemas/pairs.json``).
PAIR_COLUMNS = column_specs(
    ("pre_index", _I, "1", "row index of the population-1 (pre) object"),
    ("post_index", _I, "1", "row index of the population-2 (post) object"),
    ("distance_nm", _F, "nm", "distance between the two objects"),
    ("ring", _I, "1", "index of the ring the distance falls in (0 = innermost)"),
    ("edge_weight", _F, "1", "Ripley isotropic edge-correction weight of the pair (1 = interior)"),
    ("probability", _F, "1", "coupling probability of the pair (0 outside the coupled rings)"),
)

#: Columns of ``rings.parquet`` (``data_schemas/rings.json``).
RING_COLUMNS = column_specs(
    ("ring", _I, "1", "ring index, 0 = innermost"),
    ("r_inner_nm", _F, "nm", "inner radius of the ring"),
    ("r_outer_nm", _F, "nm", "outer radius of the ring"),
    ("n_pairs", _I, "1", "number of pre-post pairs with a distance in the ring"),
    ("weighted_count", _F, "1", "edge-corrected pair count C_k"),
    ("expected", _F, "1", "expected weighted count under the null"),
    ("variance", _F, "1", "variance of the weighted count under the null"),
    ("delta_k", _F, "nm^d", "Ripley cross-K increment |Omega| C_k / (n1 n2), nm^2 (2D) or nm^3 (3D)"),
    ("statistic", _F, "1", "normalised ring statistic (C_k - expected) / sqrt(variance)"),
    ("z_score", _F, "1", "normal score of the ring's upper-tail probability (scaled Poisson law for "
                         "the analytic null), compared with the threshold"),
    ("p_value", _F, "1", "upper-tail probability of the ring count under the null"),
    ("significant", _B, "1", "z_score above the threshold and a positive excess"),
    ("in_window", _B, "1", "ring counted as coupled (significant, or added by the bias correction)"),
    ("excess", _F, "1", "estimated number of coupled pairs in the ring (weighted count minus background)"),
)


@dataclass(frozen=True)
class SodaResult:
    """Result of :func:`soda`. Arrays are per ring (``K``) or per pair (``P``).

    ``coupling_index_pre`` / ``coupling_index_post``: fraction of population 1 / 2
    coupled; ``n_coupled_pre`` / ``n_coupled_post``: the same as (expected) counts;
    ``mean_coupling_distance_weighted_nm``: probability-weighted mean distance of the
    pairs; ``mean_coupling_distance_nm``: unweighted mean distance of the pairs with a
    non-zero probability; ``p_value``: probability, under the null, of a ring statistic
    at least as extreme as the largest one observed (Bonferroni over rings for the
    analytic null, Monte-Carlo rank otherwise).

    Attributes
    ----------
    ndim : {2, 3}
        Dimensionality of the analysis.
    n_pre, n_post : int
        Points of population 1 and 2 analysed (inside the region).
    region_measure_nm_d : float
        Area (nm^2, 2D) or volume (nm^3, 3D) of the region.
    null : {"analytic", "shift", "csr"}
        The null model used.
    threshold : float
        Significance threshold of the ring z-scores.
    r_edges_nm : (K + 1,) ndarray
        Ring edges in nm, from 0 to ``r_max``.
    n_pairs : (K,) ndarray of int64
        Pre-post pairs per ring.
    weighted_count : (K,) ndarray
        Edge-corrected pair count ``C_k`` per ring.
    expected : (K,) ndarray
        Mean of ``C_k`` under the null.
    covariance : (K, K) ndarray
        Covariance of the ring counts under the null (:attr:`variance` is its diagonal).
    statistic : (K,) ndarray
        ``(C_k - expected) / sqrt(variance)``.
    z_score : (K,) ndarray
        Normal score of the ring's upper-tail probability (scaled Poisson law for the
        analytic null, the statistic itself for the Monte-Carlo nulls).
    ring_p_value : (K,) ndarray
        Upper-tail probability of each ring count under the null.
    significant : (K,) ndarray of bool
        ``z_score > threshold`` and ``C_k > expected``.
    in_window : (K,) ndarray of bool
        Rings counted as coupled (significant, or added by the bias correction).
    excess : (K,) ndarray
        Coupled pairs estimated per ring (count minus background) inside the window,
        ``C_k - expected`` outside it.
    coupling_index_pre, coupling_index_post : float
        Fraction of population 1 / 2 coupled, in [0, 1].
    n_coupled_pre, n_coupled_post : float
        The same as (expected) numbers of points.
    n_coupled_pairs : float
        Sum of the pair probabilities.
    mean_coupling_distance_nm : float
        Unweighted mean distance of the pairs with a non-zero probability, nm; NaN
        when no pair is coupled.
    mean_coupling_distance_weighted_nm : float
        Probability-weighted mean pair distance, nm; NaN when no pair is coupled.
    p_value : float
        Probability under the null of a largest ring statistic at least as extreme.
    pair_pre, pair_post : (P,) ndarray of int64
        Input row indices of the pre and post point of each pair closer than ``r_max``.
    pair_distance_nm : (P,) ndarray
        Pair distance, nm.
    pair_ring : (P,) ndarray of int64
        Ring of each pair (0 = innermost).
    pair_weight : (P,) ndarray
        Ripley isotropic edge-correction weight of each pair (1 in the interior).
    pair_probability : (P,) ndarray
        Coupling probability of each pair (0 outside the coupled rings).
    parameters : dict
        The analysis settings (``r_max_nm``, ``ring_nm``, ``n_rings``, ``threshold``,
        ``null``, ``index``, ``region``, ...), as written to ``summary.json``.
    """

    ndim: int
    n_pre: int
    n_post: int
    region_measure_nm_d: float
    null: str
    threshold: float
    r_edges_nm: np.ndarray
    n_pairs: np.ndarray
    weighted_count: np.ndarray
    expected: np.ndarray
    covariance: np.ndarray
    statistic: np.ndarray
    z_score: np.ndarray
    ring_p_value: np.ndarray
    significant: np.ndarray
    in_window: np.ndarray
    excess: np.ndarray
    coupling_index_pre: float
    coupling_index_post: float
    n_coupled_pre: float
    n_coupled_post: float
    n_coupled_pairs: float
    mean_coupling_distance_nm: float
    mean_coupling_distance_weighted_nm: float
    p_value: float
    pair_pre: np.ndarray
    pair_post: np.ndarray
    pair_distance_nm: np.ndarray
    pair_ring: np.ndarray
    pair_weight: np.ndarray
    pair_probability: np.ndarray
    parameters: dict = field(default_factory=dict)

    @property
    def variance(self) -> np.ndarray:
        """Variance ``(K,)`` of the ring counts under the null (diagonal of the covariance)."""
        return np.diag(self.covariance).copy()

    @property
    def coupled(self) -> bool:
        """Whether any ring is significant."""
        return bool(np.any(self.significant))

    def to_dict(self) -> dict:
        """The summary (``summary.json``): scalars and parameters, JSON-ready.

        Returns
        -------
        dict
            The scalar results (non-finite values as ``None``), ``coupled``,
            ``n_significant_rings`` and ``parameters``.
        """

        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None

        return {
            "coupling_index_pre": num(self.coupling_index_pre),
            "coupling_index_post": num(self.coupling_index_post),
            "n_coupled_pre": num(self.n_coupled_pre),
            "n_coupled_post": num(self.n_coupled_post),
            "n_coupled_pairs": num(self.n_coupled_pairs),
            "mean_coupling_distance_nm": num(self.mean_coupling_distance_nm),
            "mean_coupling_distance_weighted_nm": num(self.mean_coupling_distance_weighted_nm),
            "p_value": num(self.p_value),
            "coupled": self.coupled,
            "n_significant_rings": int(np.sum(self.significant)),
            "n_pre": int(self.n_pre), "n_post": int(self.n_post), "ndim": int(self.ndim),
            "region_measure_nm_d": num(self.region_measure_nm_d),
            "threshold": num(self.threshold), "null": self.null,
            "parameters": dict(self.parameters),
        }

    def rings_table(self) -> pa.Table:
        """One row per ring (``data_schemas/rings.json``).

        Returns
        -------
        pyarrow.Table
            Columns :data:`RING_COLUMNS`; the summary of :meth:`to_dict` in the schema
            metadata (``summary``).
        """
        e = self.r_edges_nm
        measure = self.region_measure_nm_d
        scale = measure / (float(self.n_pre) * float(self.n_post)) if self.n_pre and self.n_post else np.nan
        return spec_table(RING_COLUMNS, {
            "ring": np.arange(e.size - 1, dtype=np.int64), "r_inner_nm": e[:-1], "r_outer_nm": e[1:],
            "n_pairs": self.n_pairs.astype(np.int64), "weighted_count": self.weighted_count,
            "expected": self.expected, "variance": self.variance,
            "delta_k": self.weighted_count * scale, "statistic": self.statistic,
            "z_score": self.z_score, "p_value": self.ring_p_value,
            "significant": self.significant.astype(bool), "in_window": self.in_window.astype(bool),
            "excess": self.excess}, metadata={"summary": self.to_dict()})

    def pairs_table(self) -> pa.Table:
        """One row per pre-post pair closer than ``r_max`` (``data_schemas/pairs.json``).

        Returns
        -------
        pyarrow.Table
            Columns :data:`PAIR_COLUMNS`; the summary of :meth:`to_dict` in the schema
            metadata (``summary``).
        """
        return spec_table(PAIR_COLUMNS, {
            "pre_index": self.pair_pre.astype(np.int64), "post_index": self.pair_post.astype(np.int64),
            "distance_nm": self.pair_distance_nm, "ring": self.pair_ring.astype(np.int64),
            "edge_weight": self.pair_weight, "probability": self.pair_probability},
            metadata={"summary": self.to_dict()})

    def to_table(self) -> pa.Table:
        """Same as :meth:`pairs_table`.

        Returns
        -------
        pyarrow.Table
            One row per pre-post pair closer than ``r_max``.
        """
        return self.pairs_table()


def ring_moments(*, n1, n2, measure, edges_nm, ndim, boundary_sum=None, overlap_sum=None):
    """Mean ``(K,)`` and covariance ``(K, K)`` of the weighted ring counts under CSR.

    Parameters
    ----------
    n1, n2 : int or float
        Population sizes (converted to float64: ``n1 * n2`` may exceed 2^63).
    measure : float
        Region area (nm^2) or volume (nm^3).
    edges_nm : (K + 1,) array
        Ring edges in nm, increasing from 0.
    ndim : {2, 3}
        Dimensionality (rings are annuli in 2D, spherical shells in 3D).
    boundary_sum : (K,) array, optional
        ``B_k = sum_i int_{R_k} w_i^2``; default ``n1 a_k`` (no edge effects).
    overlap_sum : (K, K) array, optional
        ``S_kl`` (ordered pairs ``i != i'``); default 0.

    Returns
    -------
    mean : (K,) ndarray
        ``E C_k = n1 n2 a_k / measure`` (``a_k`` the ring measure).
    covariance : (K, K) ndarray
        ``n2 [(delta_kl B_k + S_kl) / measure - n1^2 a_k a_l / measure^2]``.

    Examples
    --------
    >>> mu, cov = ring_moments(n1=10**6, n2=10**6, measure=1e12, edges_nm=[0.0, 10.0], ndim=2)
    >>> round(float(mu[0]), 3), bool(cov[0, 0] > 0)
    (314.159, True)
    """
    n1 = float(n1)
    n2 = float(n2)
    measure = float(measure)
    a = ring_measure(np.asarray(edges_nm, dtype=np.float64), ndim)
    B = n1 * a if boundary_sum is None else np.asarray(boundary_sum, dtype=np.float64)
    S = np.zeros((a.size, a.size)) if overlap_sum is None else np.asarray(overlap_sum, dtype=np.float64)
    mu = n1 * n2 * a / measure
    cov = n2 * ((np.diag(B) + S) / measure - n1 * n1 * np.outer(a, a) / measure ** 2)
    return mu, cov


#: Peak bytes per pre-post pair within r_max (distance matrix, sorted copies, rings, weights).
_BYTES_PER_PAIR = 128


def _check_pair_budget(pre, post, r_max):
    """Refuse (before enumerating them) more pairs than the memory budget holds; the
    exact count is taken only when the all-pairs bound exceeds the budget."""
    from .._validate import check_count, memory_budget_bytes

    if _BYTES_PER_PAIR * float(pre.shape[0]) * float(post.shape[0]) <= memory_budget_bytes():
        return
    from scipy.spatial import cKDTree

    n = int(cKDTree(pre).count_neighbors(cKDTree(post), r_max))
    check_count(n, _BYTES_PER_PAIR, what=f"r_max_nm={r_max:g}: {n} pre-post pairs within r_max")


def _pairs(pre, post, r_max):
    from scipy.spatial import cKDTree

    if pre.shape[0] == 0 or post.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    t1, t2 = cKDTree(pre), cKDTree(post)
    sp = t1.sparse_distance_matrix(t2, r_max, output_type="ndarray")
    i, j, d = sp["i"].astype(np.int64), sp["j"].astype(np.int64), sp["v"].astype(np.float64)
    # coincident points (d == 0) fall in ring 0
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def _ring_index(d, edges):
    k = np.searchsorted(edges, d, side="left") - 1
    return np.clip(k, 0, edges.size - 2)


def _boundary_terms(pre, region, edges, ndim, n_nodes=4):
    """Per-point boundary integrals ``b_ik = int_{R_k} w_i(y)^2 dy`` for points near the edge.

    Returns ``(B, near, ratio)``: ``B_k = sum_i b_ik`` (``(K,)``), the indices of the
    points closer to the edge than ``r_max`` and their ``b_ik / a_k`` (``(m, K)``; 1 for
    interior points). Radial Gauss-Legendre, ``n_nodes`` per ring.
    """
    a = ring_measure(edges, ndim)
    n1 = pre.shape[0]
    K = edges.size - 1
    B = n1 * a
    near = np.flatnonzero(region.edge_distance(pre) < edges[-1]) if n1 else np.empty(0, np.int64)
    ratio = np.ones((near.size, K))
    if near.size == 0:
        return B, near, ratio
    xg, wg = np.polynomial.legendre.leggauss(n_nodes)
    lo, hi = edges[:-1], edges[1:]
    radii = (0.5 * (hi - lo)[:, None] * xg[None, :] + 0.5 * (hi + lo)[:, None])  # (K, n)
    weights = 0.5 * (hi - lo)[:, None] * wg[None, :]
    jac = 2 * np.pi * radii if ndim == 2 else 4 * np.pi * radii ** 2
    for s in range(0, near.size, 2000):
        idx = near[s:s + 2000]
        c = np.repeat(pre[idx], K * n_nodes, axis=0)
        r = np.tile(radii.reshape(-1), idx.size)
        w = region.edge_weights(c, r).reshape(idx.size, K, n_nodes)
        # the part of the ring inside Omega has measure f * jac dr and w = 1/f there:
        # int w^2 dy over it = int (1/f) jac dr
        integ = np.sum(w * (jac * weights)[None], axis=2)  # (m, K)
        ratio[s:s + idx.size] = integ / a[None, :]
        B += integ.sum(axis=0) - idx.size * a
    return B, near, ratio


def _boundary_sum(pre, region, edges, ndim, n_nodes=4):
    """``B_k = sum_i int_{R_k} w_i(y)^2 dy`` (see :func:`_boundary_terms`)."""
    return _boundary_terms(pre, region, edges, ndim, n_nodes)[0]


def _overlap_sum(pre, edges, ndim, n_bins=2000, near=None, ratio=None):
    """``S_kl`` over ordered pairs of population-1 points closer than ``2 r_max``.

    ``S_kl = sum_{i != i'} int_{R_k(x_i) cap R_l(x_i') cap Omega} w_i w_i'``, approximated
    by the lens measure times ``u_ik u_i'l`` with ``u_ik = sqrt(b_ik / a_k)`` (the rms edge
    weight of the ring; 1 for points farther than ``r_max`` from the edge, where it is
    exact). Pairs of interior points are summed over a fine histogram of their distances.
    """
    from scipy.spatial import cKDTree

    K = edges.size - 1
    if pre.shape[0] < 2:
        return np.zeros((K, K))
    r2 = 2.0 * edges[-1]
    pp = cKDTree(pre).query_pairs(r2, output_type="ndarray")
    if pp.shape[0] == 0:
        return np.zeros((K, K))
    d = np.linalg.norm(pre[pp[:, 0]] - pre[pp[:, 1]], axis=1)
    u = None
    S = np.zeros((K, K))
    if near is not None and near.size:
        u = np.ones((pre.shape[0], K))
        u[near] = np.sqrt(np.maximum(ratio, 0.0))
        is_near = np.zeros(pre.shape[0], bool)
        is_near[near] = True
        edge_pair = is_near[pp[:, 0]] | is_near[pp[:, 1]]
        if np.any(edge_pair):
            f = _lens_fn(ndim)
            q = pp[edge_pair]
            dq = d[edge_pair]
            e = edges
            for s in range(0, dq.size, 2000):
                dd = dq[s:s + 2000]
                L = f(e[None, :, None], e[None, None, :], dd[:, None, None])
                O = L[:, 1:, 1:] - L[:, :-1, 1:] - L[:, 1:, :-1] + L[:, :-1, :-1]
                ua, ub = u[q[s:s + 2000, 0]], u[q[s:s + 2000, 1]]
                S += np.einsum("pk,pkl,pl->kl", ua, O, ub)
            d = d[~edge_pair]
        if d.size == 0:
            return S + S.T
    # fine histogram; each bin evaluated at the mean distance of its pairs
    bins = np.linspace(0.0, r2, n_bins + 1)
    b = np.clip(np.searchsorted(bins, d, side="right") - 1, 0, n_bins - 1)
    cnt = np.bincount(b, minlength=n_bins).astype(np.float64)
    dsum = np.bincount(b, weights=d, minlength=n_bins)
    ok = cnt > 0
    S = S + ring_overlap_matrix(edges, dsum[ok] / cnt[ok], ndim, counts=cnt[ok])
    return S + S.T  # ordered pairs (i, i') and (i', i)


def _lens_fn(ndim):
    from ._geometry import ball_intersection, disk_intersection

    return disk_intersection if ndim == 2 else ball_intersection


def _poisson_z(count, mean, var):
    """Normal score of the mid-p upper tail ``P(X > c) + P(X = c) / 2`` of a scaled Poisson.

    ``X = s * Poisson(lam)`` with ``s = var / mean`` and ``lam = mean / s`` has the given
    mean and variance; ``c = count / s`` may be fractional (edge weights, scaling), the
    tail then uses the regularised incomplete gamma function and the Poisson point mass
    uses the gamma function, both continuous in ``c``.
    """
    from scipy.special import gammainc, gammaln, ndtri

    p = np.ones(count.shape)
    ok = (mean > 0) & (var > 0)
    scale = np.where(ok, var / np.where(mean > 0, mean, 1.0), 1.0)
    lam = np.where(ok, mean / scale, 0.0)
    a = np.where(ok, np.maximum(count, 0.0) / scale, 0.0)
    if np.any(ok):
        ge = np.where(a > 0, gammainc(np.where(a > 0, a, 1.0), lam), 1.0)  # P(X >= a)
        mass = np.exp(a * np.log(np.where(lam > 0, lam, 1.0)) - lam - gammaln(a + 1.0))
        p = np.where(ok, ge - 0.5 * mass, 1.0)
    p = np.clip(p, 1e-300, 1.0)
    return np.clip(-ndtri(p), -40.0, 40.0), p


def _mc_counts(pre, post, region, edges, null, n_sim, rng, weights_fn):
    rng = np.random.default_rng(rng)
    lo, hi = region.bounds_nm
    K = edges.size - 1
    sims = np.empty((n_sim, K))
    for s in range(n_sim):
        if null == "csr":
            p2 = region.sample(post.shape[0], rng)
        else:
            shift = rng.random(pre.shape[1]) * (hi - lo)
            p2 = lo + np.mod(post - lo + shift, hi - lo)
            p2 = p2[region.contains(p2)]
        i, j, d = _pairs(pre, p2, edges[-1])
        w = weights_fn(i, d)
        sims[s] = np.bincount(_ring_index(d, edges), weights=w, minlength=K)[:K]
    return sims


def soda(pre, post, *, region=None, r_max_nm: float = 500.0, ring_nm: float = 20.0,
         ndim: int | None = None, threshold: float | str = "universal",
         bias_correction: bool = True, null: str = "analytic", n_simulations: int = 99,
         voxel_size_nm=None, outside: str = "error", index: str | None = None, rng=None,
         warn_region: bool = True) -> SodaResult:
    """SODA coupling analysis between two point populations (2D or 3D).

    Parameters
    ----------
    pre, post : pyarrow.Table or (N, d) array
        Population 1 and 2: a table with ``x, y(, z)`` (localizations or objects) or a
        cluster statistics table (``centroid_*_nm``), or coordinates in nm.
    region : Region, str, tuple, array or None
        Observation region (see :func:`smlmspine.coupling.make_region`); default
        ``"bbox"`` of all points, with a QualityWarning.
    r_max_nm : float
        Largest distance analysed, nm (default 500).
    ring_nm : float
        Ring width, nm (default 20).
    ndim : {2, 3}, optional
        Force 2D (drop z) or 3D; default: 3D when both inputs have z.
    threshold : float or "universal"
        Significance threshold of the ring z-scores; ``"universal"`` is ``sqrt(2 ln n1)``.
    bias_correction : bool
        Widen the coupled window around the significant rings (module docstring, step
        5); ``False`` gives plain SODA.
    null : {"analytic", "shift", "csr"}
        Null model: the analytic CSR moments (objects), or Monte Carlo with random
        toroidal shifts / CSR of population 2 (raw clustered localizations).
    n_simulations : int
        Monte-Carlo realisations for ``null="shift"|"csr"``.
    voxel_size_nm : float or sequence, optional
        Pixel size of a mask region given as an array or a TIFF path.
    index : {"pairs", "points"}, optional
        How coupled counts are formed: ``"pairs"`` (``N_c = sum p_ij`` coupled objects in
        each population, for objects with at most one partner; default with the analytic
        null) or ``"points"`` (``sum_j min(1, sum_i p_ij)``: points with a partner, for
        raw localizations where each has many; default with the Monte-Carlo nulls).
    outside : {"error", "drop"}
        Points outside the region raise a ParameterError, or are left out with a
        QualityWarning (``pair_pre``/``pair_post`` keep the input row indices).
    rng : numpy Generator, int or None
        Random source of the Monte-Carlo null.
    warn_region : bool
        Warn (:class:`~smlmspine.errors.QualityWarning`) when the region is derived from
        the data (``"bbox"``, ``"hull"``).

    Returns
    -------
    SodaResult

    Raises
    ------
    ParameterError
        Non-positive ``r_max_nm``/``ring_nm``, an unknown ``null``, ``threshold``,
        ``index`` or ``outside``, points outside the region with ``outside="error"``,
        an empty population, or more pairs or rings than the memory budget holds.

    Examples
    --------
    >>> from smlmspine.coupling import BoxRegion
    >>> from smlmspine.simulate.synapses import SynapsePopulations, synapses
    >>> sim = synapses(populations=SynapsePopulations(n_pre=400, n_post=400, coupled_fraction=0.5,
    ...                                               distance_mean_nm=80, distance_sd_nm=10),
    ...                region=BoxRegion((0, 0), (20000, 20000)), rng=0)
    >>> res = soda(sim.pre_objects, sim.post_objects, region=sim.region, r_max_nm=300, ring_nm=20)
    >>> abs(res.coupling_index_post - 0.5) < 0.05, abs(res.mean_coupling_distance_weighted_nm - 80) < 10
    (True, True)
    """
    p1 = as_points(pre, name="pre")
    p2 = as_points(post, name="post")
    d = common_ndim(p1, p2, ndim)
    p1, p2 = as_points(p1, name="pre", ndim=d), as_points(p2, name="post", ndim=d)
    if not (r_max_nm > 0 and ring_nm > 0 and math.isfinite(r_max_nm) and math.isfinite(ring_nm)):
        raise ParameterError(f"r_max_nm and ring_nm must be positive, got {r_max_nm} and {ring_nm}")
    if null not in ("analytic", "shift", "csr"):
        raise ParameterError(f"null must be 'analytic', 'shift' or 'csr', got {null!r}")
    from .._validate import check_memory, integer, positive

    n_rings = r_max_nm / ring_nm
    # ring covariance (K x K, a few copies) and per-point / per-simulation ring arrays
    n_sims = integer(n_simulations, "n_simulations", minimum=1) if null != "analytic" else 0
    check_memory(8.0 * (4 * n_rings * n_rings + 3 * n_rings * (p1.shape[0] + p2.shape[0] + n_sims)),
                 what=f"ring_nm={ring_nm:g} with r_max_nm={r_max_nm:g}: {n_rings:.3g} rings")
    K = max(1, int(math.ceil(r_max_nm / ring_nm - 1e-9)))
    edges = np.linspace(0.0, K * ring_nm, K + 1)
    r_max = float(edges[-1])
    allpts = np.vstack([p1, p2]) if (p1.size + p2.size) else np.zeros((0, d))
    reg = make_region(region, allpts, voxel_size_nm=voxel_size_nm, warn=warn_region)
    if not isinstance(reg, Region):  # pragma: no cover - make_region always returns one
        raise ParameterError("invalid region")
    if outside not in ("error", "drop"):
        raise ParameterError(f"outside must be 'error' or 'drop', got {outside!r}")
    inside1, inside2 = reg.contains(p1), reg.contains(p2)
    rows1, rows2 = np.arange(p1.shape[0]), np.arange(p2.shape[0])
    if not inside1.all() or not inside2.all():
        msg = (f"{int((~inside1).sum())} pre and {int((~inside2).sum())} post point(s) lie "
               "outside the region")
        if outside == "error":
            raise ParameterError(msg + "; crop them, enlarge the region or pass outside='drop' "
                                       "(CLI: --outside drop)")
        warnings.warn(msg + "; they are left out", QualityWarning, stacklevel=2)
        rows1, rows2 = np.flatnonzero(inside1), np.flatnonzero(inside2)
        p1, p2 = p1[rows1], p2[rows2]
    n1, n2 = p1.shape[0], p2.shape[0]
    if n1 == 0 or n2 == 0:
        raise ParameterError(f"SODA needs points in both populations (got {n1} pre, {n2} post)")
    measure = reg.measure
    if isinstance(threshold, str):
        if threshold != "universal":
            raise ParameterError(f"threshold must be a number or 'universal', got {threshold!r}")
        thr = math.sqrt(2.0 * math.log(max(n1, 2)))
    else:
        thr = positive(threshold, "threshold")

    def weights_fn(i, dist):
        return reg.edge_weights(p1[i], dist)

    _check_pair_budget(p1, p2, r_max)
    pi, pj, pd = _pairs(p1, p2, r_max)
    pk = _ring_index(pd, edges)
    pw = weights_fn(pi, pd)
    n_pairs = np.bincount(pk, minlength=K)[:K].astype(np.int64)
    C = np.bincount(pk, weights=pw, minlength=K)[:K]
    if null == "analytic":
        B, near, ratio = _boundary_terms(p1, reg, edges, d)
        S = _overlap_sum(p1, edges, d, near=near, ratio=ratio)
        mu, cov = ring_moments(n1=n1, n2=n2, measure=measure, edges_nm=edges, ndim=d,
                               boundary_sum=B, overlap_sum=S)
        var = np.maximum(np.diag(cov), 1e-12)
        stat = (C - mu) / np.sqrt(var)
        z, ring_p = _poisson_z(C, mu, var)
        p_value = float(min(1.0, K * ring_p.min()))
    else:
        sims = _mc_counts(p1, p2, reg, edges, null, int(n_simulations), rng, weights_fn)
        mu = sims.mean(axis=0)
        cov = np.atleast_2d(np.cov(sims, rowvar=False))
        var = np.maximum(np.diag(cov), 1e-12)
        stat = (C - mu) / np.sqrt(var)
        z = stat
        from scipy.special import ndtr

        ring_p = ndtr(-z)
        smax = ((sims - mu) / np.sqrt(var)).max(axis=1)
        p_value = float((1 + np.sum(smax >= stat.max())) / (n_simulations + 1))
    significant = (z > thr) & (C > mu)
    window, excess, Nc = _coupled_window(C, mu, significant, edges, d, n1, n2, bias_correction)
    # per-pair probabilities
    ratio = np.where(window & (C > 0), np.maximum(excess, 0.0) / np.where(C > 0, C, 1.0), 0.0)
    prob = np.minimum(1.0, pw * ratio[pk])
    tot = prob.sum()
    if index is None:
        index = "pairs" if null == "analytic" else "points"
    if index == "pairs":
        # each coupled pair is one coupled object of either population (one partner each)
        n_cpost, n_cpre = min(float(n2), float(tot)), min(float(n1), float(tot))
    elif index == "points":
        # probability that a point has at least one partner, capped per point (many
        # localizations of one object pair with many of its partner)
        n_cpost = float(np.minimum(1.0, np.bincount(pj, weights=prob, minlength=n2)).sum())
        n_cpre = float(np.minimum(1.0, np.bincount(pi, weights=prob, minlength=n1)).sum())
    else:
        raise ParameterError(f"index must be 'pairs' or 'points', got {index!r}")
    mean_w = float((prob * pd).sum() / tot) if tot > 0 else float("nan")
    mean_u = float(pd[prob > 0].mean()) if tot > 0 else float("nan")
    params = {"r_max_nm": r_max, "outside": outside, "index": index,
              "n_left_out": [int(inside1.size - rows1.size), int(inside2.size - rows2.size)],
              "ring_nm": float(ring_nm), "n_rings": K, "threshold": thr,
              "threshold_rule": threshold if isinstance(threshold, str) else "fixed",
              "bias_correction": bool(bias_correction), "null": null,
              "n_simulations": int(n_simulations) if null != "analytic" else 0,
              "region": reg.to_dict()}
    return SodaResult(
        ndim=d, n_pre=n1, n_post=n2, region_measure_nm_d=float(measure), null=null, threshold=thr,
        r_edges_nm=edges, n_pairs=n_pairs, weighted_count=C, expected=mu, covariance=cov,
        statistic=stat, z_score=z, ring_p_value=ring_p, significant=significant,
        in_window=window, excess=np.where(window, excess, C - mu),
        coupling_index_pre=n_cpre / n1, coupling_index_post=n_cpost / n2,
        n_coupled_pre=n_cpre, n_coupled_post=n_cpost, n_coupled_pairs=float(tot),
        mean_coupling_distance_nm=mean_u, mean_coupling_distance_weighted_nm=mean_w,
        p_value=p_value, pair_pre=rows1[pi], pair_post=rows2[pj], pair_distance_nm=pd, pair_ring=pk,
        pair_weight=pw, pair_probability=prob, parameters=params)


def _runs(mask):
    """Start/stop index pairs of the runs of True in a 1D boolean array."""
    m = np.r_[False, mask, False].astype(np.int8)
    dm = np.diff(m)
    return list(zip(np.flatnonzero(dm == 1), np.flatnonzero(dm == -1)))


def _coupled_window(C, mu, significant, edges, ndim, n1, n2, bias_correction, max_iter=50):
    """Rings counted as coupled, their excess, and the number of coupled pairs."""
    K = C.size
    excess = C - mu
    if not significant.any():
        return np.zeros(K, bool), excess, 0.0
    if not bias_correction:
        return significant.copy(), excess, float(excess[significant].sum())
    mids = background_mean_distance(edges, ndim)
    width = edges[1] - edges[0]
    seeds = _runs(significant)
    window = significant.copy()
    nc = float(np.maximum(excess[window], 0).sum())
    for _ in range(max_iter):
        bg = mu * (1.0 - nc / (float(n1) * float(n2)))
        ex = C - bg
        new = significant.copy()
        for a, b in seeds:
            # grow from the seed run inside the current window
            lo, hi = a, b
            while lo > 0 and window[lo - 1]:
                lo -= 1
            while hi < K and window[hi]:
                hi += 1
            w = np.maximum(ex[lo:hi], 0.0)
            if w.sum() <= 0:
                continue
            m = float(np.sum(w * mids[lo:hi]) / w.sum())
            s = float(np.sqrt(max(np.sum(w * (mids[lo:hi] - m) ** 2) / w.sum(), width ** 2 / 12)))
            r0, r1 = m - 2.5 * s, m + 2.5 * s
            new |= (edges[1:] > r0) & (edges[:-1] < r1)
        nc_new = float(ex[new].sum())
        if np.array_equal(new, window) and abs(nc_new - nc) <= 1e-9 * max(1.0, nc):
            break
        window, nc = new, max(nc_new, 0.0)
    bg = mu * (1.0 - nc / (float(n1) * float(n2)))
    return window, C - bg, float(max(nc, 0.0))
