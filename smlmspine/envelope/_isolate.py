"""Spine isolation: shaft centreline and radius, protrusions, individual spines.

Method (docs/envelope.md):

1. Background: localizations whose distance to their 8th nearest neighbour exceeds
   ``background_factor`` (5) times the median of that distance are background (-1).
2. Shaft centreline: points are projected on their main (PCA) axis and cut into slices
   of ``slice_nm``; in each slice, in the plane perpendicular to the local axis, a robust
   centre and radius are fitted (membrane: circle fit; volume: mean and
   ``sqrt(2 <rho^2>)`` of a filled disc), each round keeping only points within 1.25
   radii, so that spines (a minority) do not pull it. The centres are smoothed (cubic
   least-squares in the slice coordinate), the radii by a running median; a second
   round repeats this with slices along the fitted curve.
3. Height of every point above the shaft surface = distance to the centreline minus the
   local radius. Points higher than ``margin_nm`` are protrusion candidates, split into
   spines with DBSCAN (``eps_nm``: 3 point spacings, the spacing measured beyond the
   clumps of repeated localizations of one emitter); clusters of fewer than
   ``min_localizations`` are dropped.
4. Each spine's axis is the direction from the centreline to its centroid, made
   perpendicular to the local shaft tangent; its base is where the axis leaves the shaft
   surface; it owns every point beyond the base plane (the plane through the base
   perpendicular to the axis) within its cut radius of the axis (the 98th percentile of
   its candidates' distance to the axis, plus 60 nm + 2 sigma). A point claimed by two
   spines goes to the nearer axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .._labels import check_label
from ..errors import ParameterError, QualityWarning, SchemaError
from ..schema import column_specs, coordinates, spec_table, with_columns, with_history

__all__ = ["isolate_spines", "IsolatedSpines", "Centreline", "ISOLATED_SPINE_COLUMNS",
           "DENDRITE_SCORE_MIN"]

#: Default ``min_dendrite_score``: below it the data are not taken as a dendrite fragment
#: (no spines, a QualityWarning). See :func:`dendrite_score_from` and docs/envelope.md.
DENDRITE_SCORE_MIN = 0.5

#: Columns of the per-spine table of :func:`isolate_spines` (in memory, not written; the
#: written per-spine tables are :data:`smlmspine.morphology.SPINE_COLUMNS` and
#: ``SPINE_MESH_COLUMNS``).
ISOLATED_SPINE_COLUMNS = column_specs(
    ("spine_id", pa.int64(), "1", "spine label, as in the localization table's spine_id"),
    ("n_localizations", pa.int64(), "1", "localizations assigned to the spine"),
    ("base_x_nm", pa.float64(), "nm", "base point (the axis meets the shaft surface), x"),
    ("base_y_nm", pa.float64(), "nm", "base point, y"),
    ("base_z_nm", pa.float64(), "nm", "base point, z"),
    ("axis_x", pa.float64(), "1", "unit spine axis (base to tip), x"),
    ("axis_y", pa.float64(), "1", "unit spine axis, y"),
    ("axis_z", pa.float64(), "1", "unit spine axis, z"),
    ("extent_nm", pa.float64(), "nm", "98th percentile of the localizations' distance "
                                      "from the base plane along the axis (not the "
                                      "centreline length_nm of the morphology stage)"),
    ("cut_radius_nm", pa.float64(), "nm", "radius around the axis that holds the spine"),
    ("detection_confidence", pa.float64(), "1", "how surely this is a spine, 0-1: geometric "
                                                "mean of height vs precision, localization "
                                                "count, separation from the shaft and "
                                                "coverage around the axis (docs/envelope.md)"),
)


@dataclass(frozen=True, eq=False)
class Centreline:
    """Fitted shaft centreline: samples along the curve with local tangent and radius.

    Attributes
    ----------
    points_nm : (M, 3) ndarray of float
    tangents : (M, 3) ndarray of float
        Unit tangents.
    radius_nm : (M,) ndarray of float
        Shaft radius at each sample (robust per-slice fit, smoothed).
    """

    points_nm: np.ndarray
    tangents: np.ndarray
    radius_nm: np.ndarray

    def project(self, p: np.ndarray, *, workers: int = 1):
        """Nearest sample, distance to the centreline and local radius of each point.

        The distance is measured perpendicular to the tangent at the nearest sample (the
        component along the tangent is removed).

        Parameters
        ----------
        p : (N, 3) ndarray of float
            Points in nm.
        workers : int
            Threads of the nearest-sample query (``scipy.spatial.cKDTree.query``; -1:
            all cores). Default 1.

        Returns
        -------
        j : (N,) ndarray of int
            Index of the nearest sample of ``points_nm``.
        distance_nm : (N,) ndarray of float
            Distance (nm) from the centreline, perpendicular to ``tangents[j]``.
        radius_nm : (N,) ndarray of float
            Shaft radius (nm) at that sample, ``radius_nm[j]``.
        radial : (N, 3) ndarray of float
            Vector (nm) from the centreline to the point, perpendicular to the tangent
            (its norm is ``distance_nm``).

        Examples
        --------
        >>> x = np.linspace(0.0, 1000.0, 11)
        >>> line = Centreline(points_nm=np.c_[x, 0 * x, 0 * x],
        ...                   tangents=np.tile([1.0, 0.0, 0.0], (11, 1)),
        ...                   radius_nm=np.full(11, 250.0))
        >>> j, dist, rad, radial = line.project(np.array([[420.0, 0.0, 300.0]]))
        >>> int(j[0]), float(dist[0]), float(rad[0]), radial[0].tolist()
        (4, 300.0, 250.0, [0.0, 0.0, 300.0])
        """
        from scipy.spatial import cKDTree

        _, j = cKDTree(self.points_nm).query(p, workers=workers)
        rel = p - self.points_nm[j]
        t = self.tangents[j]
        along = np.einsum("ij,ij->i", rel, t)
        radial = rel - along[:, None] * t
        return j, np.linalg.norm(radial, axis=1), self.radius_nm[j], radial


@dataclass(frozen=True, eq=False)
class IsolatedSpines:
    """Result of :func:`isolate_spines`.

    Attributes
    ----------
    table : pyarrow.Table
        The input table with ``spine_id`` (-1 for shaft and background).
    spines : pyarrow.Table
        One row per spine (:data:`ISOLATED_SPINE_COLUMNS`), in increasing ``spine_id``.
    centreline : Centreline or None
        The shaft model (None when no shaft could be fitted).
    is_background : (N,) ndarray of bool
        Localizations taken as background.
    parameters : dict
    dendrite : dict
        How dendrite-like the data are: ``dendrite_score`` (0-1), ``looks_like_dendrite``,
        ``min_dendrite_score``, the component scores (``components``), the raw
        measurements (``measured``) and a ``reason`` (see docs/envelope.md).
    """

    table: pa.Table
    spines: pa.Table
    centreline: Any
    is_background: np.ndarray
    parameters: dict = field(default_factory=dict)
    dendrite: dict = field(default_factory=dict)

    @property
    def n_spines(self) -> int:
        """Number of spines (rows of ``spines``)."""
        return self.spines.num_rows

    def to_dict(self) -> dict:
        """Counts, parameters and dendrite score of the isolation, JSON-compatible.

        Returns
        -------
        dict
            ``n_spines``, ``n_localizations`` (rows of ``table``), ``n_background``
            (localizations taken as background), and copies of ``parameters`` and
            ``dendrite``.
        """
        return {"n_spines": self.n_spines, "n_localizations": self.table.num_rows,
                "n_background": int(self.is_background.sum()),
                "parameters": dict(self.parameters), "dendrite": dict(self.dendrite)}


def _background(p: np.ndarray, factor: float, k: int = 8, workers: int = 1) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(p) <= k:
        return np.zeros(len(p), bool)
    tree = cKDTree(p)
    # queried in the tree's own leaf order, not the table's (frame) order: neighbouring
    # queries then walk the same nodes (2.5x faster on the 390k localizations of the
    # 588k dendrite of issue #19); each query is independent, so the distances are the
    # same numbers. (_alpha_kernels.kth_neighbor_distances gives them as fast, but its
    # first call in this process loads its kernels, ~0.3 s more on the main process's
    # path before the spine jobs.)
    order = tree.indices
    d, _ = tree.query(p[order], k=k + 1, workers=workers)
    dk = np.empty(len(p))
    dk[order] = d[:, -1]
    return dk > factor * np.median(dk)


def _spacing_nm(p: np.ndarray, *, workers: int = 1, max_probe: int = 20000,
                k_far: int = 32) -> float:
    """Point spacing of a dendrite's localizations for the DBSCAN radius, nm.

    The median distance to the 4th nearest neighbour, but at least the median distance
    to the ``k_far``-th (32nd) neighbour times ``sqrt(4 / k_far)`` (the 4th-neighbour
    distance of a uniformly sampled surface of the same density). The two agree where
    an emitter's repeated localizations are blurred into each other (3D STORM membrane:
    35 and 33 nm); with a precision far below the emitter spacing (MINFLUX-like, sigma
    3 nm) they form clumps, the 4th neighbour lies in the clump (14 nm) while the clumps
    are ~31 nm apart (500 fluorophores/um^2), and 3 such spacings broke spine heads into
    several clusters. For a volume the surface scaling underestimates (uniform 3D
    sampling: ``sqrt`` instead of the cube root), so there the 4th neighbour still wins
    unless the localizations clump.
    """
    from scipy.spatial import cKDTree

    probe = p[:: max(1, len(p) // max_probe)]    # spacing of the full data, probed
    k = int(min(k_far, len(p) - 1))
    dk, _ = cKDTree(p).query(probe, k=k + 1, workers=workers)
    near = float(np.median(dk[:, min(4, k)]))
    if k <= 4:
        return near
    return max(near, float(np.median(dk[:, k])) * np.sqrt(4.0 / k))


def _frame(t: np.ndarray):
    u = np.cross(t, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(t, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    return u, np.cross(t, u)


def _slice_fit(q: np.ndarray, label: str, n_sectors: int = 24, prior=None):
    """Robust centre (2,) and radius of a shaft cross-section from (n, 2) points.

    Spines must be a minority of the cross-section's *angular* coverage, not of its
    points (a big head can hold more points than the shaft ring in its slice): every
    point is weighted by 1 / (points in its angular sector around the current centre),
    so each occupied sector weighs the same, and points far from the current circle
    get zero weight (Tukey biweight on the radial residual, membrane) or are cut at
    1.25 radii (volume).
    """
    c = np.median(q, axis=0)
    rho = np.linalg.norm(q - c, axis=1)
    r = float(np.median(rho)) * (1.0 if label == "membrane" else np.sqrt(2.0))
    if len(q) < 10:
        return c, r
    if label == "membrane":
        c, r = _coverage_circle(q, n_sectors=n_sectors, prior=prior)
        rho = np.linalg.norm(q - c, axis=1)
    for it in range(8):
        d = q - c
        ang = np.arctan2(d[:, 1], d[:, 0])
        sec = np.minimum(((ang + np.pi) / (2 * np.pi) * n_sectors).astype(np.int64),
                         n_sectors - 1)
        w_ang = 1.0 / np.bincount(sec, minlength=n_sectors)[sec]
        if label == "membrane":
            res = rho - r
            scale = _weighted_median(np.abs(res), w_ang) * 1.4826
            scale = max(scale, 0.02 * r, 2.0)
            # Tukey biweight from the coverage circle: spine points get no weight
            k = 4.685 * scale
            w = w_ang * np.where(np.abs(res) < k, (1 - (res / k) ** 2) ** 2, 0.0)
            # not an end cap's disc inside either
            w = np.where(rho > 0.6 * r, w, 0.0)
            if np.count_nonzero(w) < 10:
                break
            sw = np.sqrt(w)
            a = np.c_[2 * q, np.ones(len(q))] * sw[:, None]
            b = (q ** 2).sum(1) * sw
            sol, *_ = np.linalg.lstsq(a, b, rcond=None)
            c = sol[:2]
            rho = np.linalg.norm(q - c, axis=1)
            ring = w > 0
            r = _weighted_median(rho[ring], w[ring])
        else:
            keep = rho < 1.25 * r
            if keep.sum() < 10:
                break
            wk = w_ang[keep]
            c = (q[keep] * wk[:, None]).sum(0) / wk.sum()
            rho = np.linalg.norm(q - c, axis=1)
            keep = rho < 1.25 * r
            r = float(np.sqrt(2.0 * np.average(rho[keep] ** 2, weights=w_ang[keep])))
    return c, float(r)


def _coverage_circle(q: np.ndarray, *, n_sectors: int = 24, n_trials: int = 160,
                     max_points: int = 1500, prior=None):
    """Circle through 3 points (random, fixed seed) that covers most angular sectors.

    Each hypothesis is scored by the number of sectors (around its own centre) holding at
    ``max(3, 1/4 of its mean per sector)`` points within ``0.1 rho_med + 25 nm`` of the
    circle and fewer points inside the circle than in the band (a membrane ring is
    hollow), ties broken by the number of such points: a spine, however many points it
    holds, covers few sectors.
    """
    rng = np.random.default_rng(0)
    qs = q[np.sort(rng.choice(len(q), max_points, replace=False))] if len(q) > max_points else q
    m0 = qs.mean(0)
    qs = qs - m0
    idx = rng.integers(0, len(qs), (n_trials, 3))
    a, b, cc = qs[idx[:, 0]], qs[idx[:, 1]], qs[idx[:, 2]]
    d = 2 * (a[:, 0] * (b[:, 1] - cc[:, 1]) + b[:, 0] * (cc[:, 1] - a[:, 1])
             + cc[:, 0] * (a[:, 1] - b[:, 1]))
    a2, b2, c2 = (a ** 2).sum(1), (b ** 2).sum(1), (cc ** 2).sum(1)
    ok = np.abs(d) > 1e-9
    d = np.where(ok, d, 1.0)
    ux = (a2 * (b[:, 1] - cc[:, 1]) + b2 * (cc[:, 1] - a[:, 1]) + c2 * (a[:, 1] - b[:, 1])) / d
    uy = (a2 * (cc[:, 0] - b[:, 0]) + b2 * (a[:, 0] - cc[:, 0]) + c2 * (b[:, 0] - a[:, 0])) / d
    u = np.c_[ux, uy]
    r = np.linalg.norm(a - u, axis=1)
    ext = float(np.ptp(qs, axis=0).max())
    ok &= (r > 1e-6) & (r < ext)
    if prior is not None:
        # near the previous round's centreline: a sectioned spine head is a circle too
        pc, pr = np.asarray(prior[0], float) - m0, float(prior[1])
        ok &= (np.linalg.norm(u - pc, axis=1) < 0.5 * pr) & (r > 0.6 * pr) & (r < 1.6 * pr)
        if not ok.any():
            return pc + m0, pr
    dv = qs[None, :, :] - u[:, None, :]
    rho = np.sqrt((dv ** 2).sum(-1))
    # one band for every hypothesis (a band growing with r favours big circles)
    band = 0.1 * float(np.median(np.linalg.norm(qs - np.median(qs, 0), axis=1))) + 25.0
    inl = (np.abs(rho - r[:, None]) < band) & ok[:, None]
    sec = ((np.arctan2(dv[..., 1], dv[..., 0]) + np.pi) / (2 * np.pi) * n_sectors)
    sec = np.minimum(sec.astype(np.int64), n_sectors - 1) + n_sectors * np.arange(n_trials)[:, None]
    per = np.bincount(sec[inl], minlength=n_trials * n_sectors).reshape(n_trials, n_sectors)
    # a membrane ring is hollow: a sector whose inside holds more points than its band
    # (a circle drawn inside a filled blob of points) does not count
    inside = (rho < r[:, None] - band) & ok[:, None]
    per_in = np.bincount(sec[inside], minlength=n_trials * n_sectors).reshape(n_trials,
                                                                              n_sectors)
    per = np.where(per_in > per, 0, per)
    # a sector counts when it holds a quarter of the hypothesis' mean per sector: a
    # circle that runs through the dense ring on one side only covers few sectors
    need = np.maximum(3.0, 0.25 * per.sum(1, keepdims=True) / n_sectors)
    score = (per >= need).sum(1) * (len(qs) + 1) + inl.sum(1)
    best = int(np.argmax(score))
    return u[best] + m0, float(r[best])


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    o = np.argsort(x)
    cw = np.cumsum(w[o])
    return float(x[o][np.searchsorted(cw, 0.5 * cw[-1])])


def _running_median(x: np.ndarray, w: int = 5) -> np.ndarray:
    h = w // 2
    return np.array([np.median(x[max(0, i - h):i + h + 1]) for i in range(len(x))])


def _robust_polyfit(x, y, deg, rounds: int = 4):
    """Polynomial fit of the (n, 3) points ``y`` over ``x`` with Huber reweighting."""
    w = np.ones(len(x))
    for _ in range(rounds):
        coef = [np.polyfit(x, y[:, k], deg, w=w) for k in range(3)]
        fit = np.stack([np.polyval(c, x) for c in coef], 1)
        res = np.linalg.norm(y - fit, axis=1)
        scale = 1.5 * max(float(np.median(res)), 1e-6)
        w = np.sqrt(np.where(res <= scale, 1.0, scale / np.maximum(res, 1e-12)))
    return coef


def _fit_centreline(p: np.ndarray, *, label: str, slice_nm: float, workers: int = 1,
                    max_slice_points: int = 6000) -> Centreline:
    m = p.mean(0)
    _, _, vt = np.linalg.svd(p - m, full_matrices=False)
    e1 = vt[0]
    s = (p - m) @ e1
    tang_of = None
    curve = None
    for rnd in range(2):
        if rnd == 1:
            j, *_ = curve.project(p, workers=workers)
            s = curve_s[j]
        lo, hi = s.min(), s.max()
        nb = max(int(np.ceil((hi - lo) / slice_nm)), 1)
        edges = np.linspace(lo, hi, nb + 1)
        which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, nb - 1)
        counts = np.bincount(which, minlength=nb)
        min_count = max(30, 0.5 * np.median(counts[counts > 0]))  # skip partial end slices
        # every slice's points in table order, from one stable sort (not a pass over
        # all points per slice)
        order = np.argsort(which, kind="stable")
        start = np.r_[0, np.cumsum(counts)]

        def fit_slice(b, rnd=rnd, edges=edges, order=order, start=start):
            sc = 0.5 * (edges[b] + edges[b + 1])
            if rnd == 0:
                t = e1
                origin = m + sc * e1
            else:
                k = int(np.argmin(np.abs(curve_s - sc)))
                t = curve.tangents[k]
                origin = curve.points_nm[k]
            u, w = _frame(t)
            rel = p[order[start[b]:start[b + 1]]] - origin
            q = np.c_[rel @ u, rel @ w]
            prior = None
            if rnd == 1:
                prior = (np.zeros(2), float(curve.radius_nm[k]))
            if len(q) > max_slice_points:
                # a fixed-seed subset: the ring fit needs a few thousand points, not 10^5
                q = q[np.sort(np.random.default_rng(b).choice(len(q), max_slice_points,
                                                              replace=False))]
            c2, r = _slice_fit(q, label, prior=prior)
            return sc, origin + c2[0] * u + c2[1] * w, r

        # the slices are independent: threads (numpy releases the GIL in the fits' array
        # work), results in slice order whatever their number
        todo = [b for b in range(nb) if counts[b] >= min_count]
        from .._workers import n_workers

        n_threads = n_workers(workers, len(todo))
        if n_threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_threads) as ex:
                fits = list(ex.map(fit_slice, todo))
        else:
            fits = [fit_slice(b) for b in todo]
        cs = [f[0] for f in fits]
        cc = [f[1] for f in fits]
        rr = [f[2] for f in fits]
        if len(cs) < 2:
            raise ParameterError("cannot fit a shaft: fewer than 2 slices hold 30 localizations; "
                                 "use a smaller slice_nm or give spine labels")
        cs, cc, rr = np.array(cs), np.array(cc), np.array(rr)
        deg = int(min(3, len(cs) - 1))
        coef = _robust_polyfit(cs, cc, deg)
        ss = np.linspace(lo, hi, 2000)
        pts = np.stack([np.polyval(c, ss) for c in coef], 1)
        der = np.stack([np.polyval(np.polyder(c), ss) for c in coef], 1) if deg > 0 else \
            np.tile(e1, (len(ss), 1))
        der /= np.linalg.norm(der, axis=1, keepdims=True)
        rad = np.interp(ss, cs, _running_median(rr))
        # arc-length-like parameter of the samples (for the second round's slices)
        seg = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
        curve_s = lo + seg
        curve = Centreline(pts, der, rad)
    return curve


def _local_angle(curve: Centreline, j: np.ndarray, radial: np.ndarray) -> np.ndarray:
    """Angle (rad) of each point's radial vector around the centreline tangent at sample j."""
    t = curve.tangents[j]
    u = np.cross(t, [0.0, 0.0, 1.0])
    bad = np.linalg.norm(u, axis=1) < 1e-6
    if bad.any():
        u[bad] = np.cross(t[bad], [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = np.cross(t, u)
    return np.arctan2(np.einsum("ij,ij->i", radial, w), np.einsum("ij,ij->i", radial, u))


def _dendrite_components(fg, curve: Centreline, j, dist, rad, radial, height, thr, cand,
                         sigma_r, label: str, precision_nm=(10.0, 25.0), n_sectors: int = 12,
                         per_bin: float = 5.0) -> dict:
    """Raw shaft-fit residual, shaft-surface coverage and protrusion footprint.

    ``shaft_residual``: membrane, median ``|d - r| / r`` of the localizations within
    ``2 r`` of the centreline (d: distance to it, r: local radius);
    ``shaft_residual_excess`` subtracts the part the precision explains (``0.674
    sigma``, the median of ``|N(0, sigma)|``, sigma the median radial precision) before
    dividing by r. Volume: the Kolmogorov distance of ``(d / r)^2`` (uniform on [0, 1]
    for a filled disc) to the uniform distribution; the excess is the distance to a
    filled disc blurred by the precision (``precision_nm`` = (lateral, axial) sigma,
    a fixed-seed sample of 4000 points, both within 2 r).
    ``shaft_coverage``: fraction of the shaft surface's angular (12 sectors) x axial
    bins holding a shaft localization (``|d - r|`` within the protrusion margin or
    ``0.15 r``, membrane; ``d < r``, volume); the bins are at least r long and hold 5
    shaft localizations on average.
    ``protrusion_footprint``: fraction of those bins under which protrusion candidates
    stand (at least a quarter of the median shaft count of a bin, and 2).
    """
    near = fg & (dist < 2.0 * rad)
    if near.sum() < 10:
        return {"shaft_residual": np.nan, "shaft_residual_excess": np.nan,
                "shaft_coverage": 0.0, "protrusion_footprint": np.nan}
    x = dist[near] / rad[near]
    if label == "membrane":
        residual = float(np.median(np.abs(x - 1.0)))
        absd = float(np.median(np.abs(dist[near] - rad[near])))
        excess = max(0.0, absd - 0.674 * float(np.median(sigma_r[near]))) / \
            float(np.median(rad[near]))
        band = fg & (np.abs(height) < np.maximum(thr, 0.15 * rad))
    else:
        # filled disc: (dist / r)^2 uniform on [0, 1]; Kolmogorov distance to it
        u = np.sort(x ** 2)
        ecdf = np.arange(1, len(u) + 1) / len(u)
        residual = float(np.max(np.abs(ecdf - np.minimum(u, 1.0))))
        # the same for a disc blurred by the precision (fitted r^2 = r0^2 + 2 s^2)
        rm = float(np.median(rad[near]))
        s1, s2 = float(precision_nm[0]) / rm, float(precision_nm[1]) / rm
        rng = np.random.default_rng(0)
        r0 = np.sqrt(max(1.0 - 2.0 * (s1 ** 2 + s2 ** 2), 0.05))
        th = rng.uniform(0.0, 2.0 * np.pi, 4000)
        rho = r0 * np.sqrt(rng.random(4000))
        ref = np.c_[rho * np.cos(th), rho * np.sin(th)] + rng.normal(0.0, 1.0, (4000, 2)) * [s1, s2]
        xr = np.linalg.norm(ref, axis=1)
        xr = np.sort(xr[xr < 2.0] ** 2)
        grid = np.r_[u, xr]
        excess = float(np.max(np.abs(np.searchsorted(u, grid, side="right") / len(u)
                                     - np.searchsorted(xr, grid, side="right") / len(xr))))
        band = fg & (dist < rad)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(curve.points_nm, axis=0), axis=1))]
    s = arc[j]
    lo, hi = np.percentile(s[fg], [1, 99])
    n_band = int(band.sum())
    length = max(hi - lo, 1e-9)
    bin_len = max(float(np.median(rad[fg])), length * n_sectors * per_bin / max(n_band, 1))
    n_ax = max(1, int(length // bin_len))
    ang = _local_angle(curve, j, radial)
    sec = np.minimum(((ang + np.pi) / (2 * np.pi) * n_sectors).astype(np.int64), n_sectors - 1)
    ax = np.floor((s - lo) / length * n_ax).astype(np.int64)
    inside = (ax >= 0) & (ax < n_ax)
    nb = n_ax * n_sectors
    idx = np.where(inside, ax, 0) * n_sectors + sec
    cnt = np.bincount(idx[band & inside], minlength=nb)
    coverage = float(np.mean(cnt > 0))
    ccnt = np.bincount(idx[cand & inside], minlength=nb)
    need = max(2.0, 0.25 * float(np.median(cnt[cnt > 0]))) if (cnt > 0).any() else 2.0
    footprint = float(np.mean(ccnt >= need))
    return {"shaft_residual": residual, "shaft_residual_excess": excess,
            "shaft_coverage": coverage, "protrusion_footprint": footprint,
            "shaft_bins": int(nb)}


#: Linear ramps from raw measurement to component score: (value scoring 0, value scoring 1).
SCORE_RAMPS = {"shaft_fit": (0.25, 0.10), "shaft_coverage": (0.60, 0.90),
               "protrusion_contrast": (0.60, 0.30)}


def _ramp(x: float, zero: float, one: float) -> float:
    if not np.isfinite(x):
        return float("nan")
    return float(np.clip((x - zero) / (one - zero), 0.0, 1.0))


def dendrite_score_from(measured: dict, *, min_dendrite_score: float = DENDRITE_SCORE_MIN) -> dict:
    """Combine the raw shaft measurements into the dendrite score (0-1) and its verdict.

    Components (each 0-1, a linear ramp between the :data:`SCORE_RAMPS` anchors):
    ``shaft_fit`` from ``shaft_residual_excess`` (1 at <= 0.10, 0 at >= 0.25),
    ``shaft_coverage`` from ``shaft_coverage`` (0 at <= 0.60, 1 at >= 0.90) and
    ``protrusion_contrast`` from ``protrusion_footprint`` (1 at <= 0.30, 0 at >= 0.60;
    no protrusions at all score 1). ``dendrite_score`` is their geometric mean: any
    component at 0 makes it 0.

    Examples
    --------
    >>> d = dendrite_score_from({"shaft_residual_excess": 0.02, "shaft_coverage": 1.0,
    ...                          "protrusion_footprint": 0.1})
    >>> d["dendrite_score"], d["looks_like_dendrite"]
    (1.0, True)
    >>> d = dendrite_score_from({"shaft_residual_excess": 0.4, "shaft_coverage": 0.35,
    ...                          "protrusion_footprint": 0.25})
    >>> d["dendrite_score"], d["looks_like_dendrite"]
    (0.0, False)
    """
    comp = {"shaft_fit": _ramp(measured.get("shaft_residual_excess", np.nan),
                               *SCORE_RAMPS["shaft_fit"]),
            "shaft_coverage": _ramp(measured.get("shaft_coverage", 0.0),
                                    *SCORE_RAMPS["shaft_coverage"]),
            "protrusion_contrast": _ramp(measured.get("protrusion_footprint", np.nan),
                                         *SCORE_RAMPS["protrusion_contrast"])}
    if not np.isfinite(comp["protrusion_contrast"]):
        comp["protrusion_contrast"] = 1.0
    if not np.isfinite(comp["shaft_fit"]):
        comp["shaft_fit"] = 0.0
    score = float(np.prod(list(comp.values())) ** (1.0 / len(comp)))
    ok = score >= float(min_dendrite_score)
    reason = ""
    if not ok:
        weak = [f"{k.replace('_', ' ')} {v:.2f}" for k, v in comp.items() if v < 0.5]
        reason = (f"dendrite_score {score:.2f} < {float(min_dendrite_score):.2f}"
                  + (f" ({', '.join(weak)})" if weak else ""))
        if comp["shaft_fit"] < 0.5 and comp["shaft_coverage"] >= 0.5:
            # a covered tube whose cross-section is not the expected ring/disc
            reason += "; a tube of another cross-section: is the label (membrane/volume) right?"
    return {"dendrite_score": score, "looks_like_dendrite": bool(ok),
            "min_dendrite_score": float(min_dendrite_score), "components": comp,
            "measured": {k: (float(v) if isinstance(v, float) else v)
                         for k, v in measured.items()},
            "reason": reason}


def _spine_confidence(p, sel, base, a, height, thr, sigma_r, *, min_localizations: int,
                      min_height_nm: float, n_sectors: int = 8) -> tuple[float, dict]:
    """Detection confidence (0-1) of one spine from its localizations ``p[sel]``.

    Geometric mean of: ``height`` = 98th-percentile height above the shaft surface over
    ``2 min_height_nm + 8 sigma`` (sigma: median radial precision), capped at 1;
    ``count`` = ``1 - exp(-n / (3 min_localizations))``; ``separation`` = fraction of
    its localizations above the protrusion margin; ``coverage`` = fraction of 8
    angular sectors around its axis holding localizations (distal 3/4 of its length).
    """
    n = int(sel.sum())
    if n == 0:
        return float("nan"), {}
    h = height[sel]
    sig = float(np.median(sigma_r[sel]))
    c_h = float(np.clip(np.percentile(h, 98) / (2.0 * min_height_nm + 8.0 * sig), 0.0, 1.0))
    c_n = float(1.0 - np.exp(-n / (3.0 * max(int(min_localizations), 1))))
    c_s = float(np.mean(h > thr[sel]))
    q = p[sel] - base
    t = q @ a
    length = float(np.percentile(t, 98))
    d = q[t > 0.25 * length] - np.outer(t[t > 0.25 * length], a)
    if len(d) >= 3:
        ang = _local_angle(Centreline(np.zeros((1, 3)), a[None, :], np.zeros(1)),
                           np.zeros(len(d), np.int64), d)
        sec = np.minimum(((ang + np.pi) / (2 * np.pi) * n_sectors).astype(np.int64),
                         n_sectors - 1)
        c_c = float(len(np.unique(sec)) / n_sectors)
    else:
        c_c = 0.0
    parts = {"height": c_h, "count": c_n, "separation": c_s, "coverage": c_c}
    conf = float(np.prod(list(parts.values())) ** 0.25)
    return conf, parts


def _spine_frames(p, lab, n_lab, curve: Centreline | None, precision_nm=None):
    """Axis and base of each labelled group: on the shaft surface below its centroid, or,
    with no shaft model, on the edge where its localizations end (:func:`_base_edge`;
    ``precision_nm`` = (xy, z) sigma, nm)."""
    out = []
    centre = p.mean(0)
    for k in range(n_lab):
        q = p[lab == k]
        cen = q.mean(0)
        if curve is not None:
            j, dist, rad, radial = curve.project(cen[None, :])
            c = curve.points_nm[j[0]]
            t = curve.tangents[j[0]]
            a = cen - c
            a -= (a @ t) * t
            if np.linalg.norm(a) < 1e-9:
                a = radial[0]
            a /= max(np.linalg.norm(a), 1e-12)
            base = c + rad[0] * a
        else:
            a = _labelled_axis(q, cen, centre)
            sxy, sz = precision_nm if precision_nm is not None else (np.nan, np.nan)
            a = _cut_normal(q, a, sxy, sz)
            sigma_a = float(np.sqrt(sxy ** 2 * (1.0 - a[2] ** 2) + sz ** 2 * a[2] ** 2))
            h = (q - cen) @ a
            h0 = _base_edge(h, sigma_a)
            base = cen + h0 * a
            # on the axis through the centroid the base of a curved spine lies beside its
            # cut (simulated EM-like mushrooms: 150-300 nm, the spine 95-233 nm too long,
            # the neck minimum read beside the neck): the centre of the ring of
            # localizations at the edge instead
            ring = np.abs(h - h0) <= max(2.0 * sigma_a, 20.0) if np.isfinite(sigma_a) else None
            if ring is not None and ring.sum() >= 20:
                off = q[ring].mean(0) - cen
                base = base + off - (off @ a) * a
        out.append((base, a))
    return out


def _cut_normal(q: np.ndarray, a: np.ndarray, sxy: float, sz: float, *, sectors: int = 12,
                rounds: int = 3, min_sector: int = 30, min_z: float = 3.0) -> np.ndarray:
    """Normal of the plane where a labelled spine's localizations ``q`` end (its cut),
    starting from its axis ``a`` (into the spine).

    The principal axis of a curved or kinked spine is not the normal of its cut (on
    simulated EM-like spines it was up to 26 deg off), and a base plane tilted to the
    cut lengthens or shortens the spine by up to the base radius. Around the axis, in
    ``sectors`` angular sectors of the base band (the localizations within max(6 sigma,
    0.8 x the band's median radius) of the lowest ones), the 10th percentile of the
    axial position is the edge (sectors of at least ``min_sector`` localizations, at
    least 2/3 of them); a plane fitted to the sector edges tilts the axis when its slope
    exceeds ``min_z`` standard errors (repeated up to ``rounds`` times). Returns ``a``
    unchanged when too few sectors hold localizations. On 48 simulated EM-like spines
    (12/12/30 nm) ``min_sector`` 30 and ``min_z`` 3 left none more than 5 deg worse off
    than the principal axis; 8 and 2 turned six (five thin spines, a filopodium) 5-44 deg
    further off.
    """
    a = np.asarray(a, float)
    sigma = float(np.nanmax([sxy, sz, 1.0])) if np.any(np.isfinite([sxy, sz])) else 10.0
    cen = q.mean(0)
    for _ in range(rounds):
        e1 = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(a, e1)
        d = q - cen
        h, u, v = d @ a, d @ e1, d @ e2
        lo = float(np.percentile(h, 0.5))
        near = h <= lo + 6.0 * sigma
        if near.sum() < min_sector * sectors:
            return a
        uc, vc = u[near].mean(), v[near].mean()
        r = float(np.median(np.hypot(u[near] - uc, v[near] - vc)))
        band = h <= lo + max(6.0 * sigma, 0.8 * r)
        ang = np.arctan2(v[band] - vc, u[band] - uc)
        k = np.minimum(((ang + np.pi) / (2 * np.pi) * sectors).astype(int), sectors - 1)
        rows = []
        for j in range(sectors):
            m = k == j
            if m.sum() >= min_sector:
                hs = h[band][m]
                e = np.percentile(hs, 10)
                low = hs <= np.percentile(hs, 25)
                rows.append((u[band][m][low].mean(), v[band][m][low].mean(), e))
        if len(rows) < sectors * 2 // 3:
            return a
        X = np.c_[np.ones(len(rows)), np.array(rows)[:, :2]]
        y = np.array(rows)[:, 2]
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        res = y - X @ coef
        dof = max(len(rows) - 3, 1)
        cov = np.linalg.pinv(X.T @ X) * float(res @ res) / dof
        g = coef[1:]
        se = np.sqrt(np.maximum(np.diag(cov)[1:], 1e-12))
        if np.hypot(*(g / se)) < min_z:
            return a
        # the plane h = c + g . (u, v): its normal, into the spine
        n = a - g[0] * e1 - g[1] * e2
        n /= np.linalg.norm(n)
        if np.degrees(np.arccos(np.clip(n @ a, -1, 1))) < 0.5:
            return n
        a = n
    return a


def _base_edge(h: np.ndarray, sigma_nm: float) -> float:
    """Where the localizations of a labelled spine end along its axis (positions ``h``,
    nm): the cut from its dendrite, blurred by the localization precision.

    Near its base the localizations lie at about constant density per unit length
    along the axis up to an edge ``h0``, blurred by a Gaussian of width ``s``: their
    density is proportional to ``Phi((h - h0) / s)``. ``h0`` and ``s`` (at least 0.8x
    ``sigma_nm``, the precision along the axis; wider where the cut is tilted to the
    axis) are fitted by maximum likelihood to the lowest localizations (a window of
    max(8 sigma, 80 nm) above the 0.5th percentile). The 0.5th percentile itself, used
    before, sits 2-3 sigma below the cut of a dense spine: on simulated EM-like stubby
    spines (sigma 12/30 nm) 26-75 nm, which made them 6-18 % too long. On uniform bands
    of 2 localizations per nm (sigma 12 nm, 40 seeds) the edge comes out 0.6 +- 3.1 nm
    (a least-squares fit of the cumulative count: 1.1 +- 4.4 nm). Returns the 0.5th
    percentile when there are fewer than 50 localizations or the fit fails.
    """
    h = np.sort(np.asarray(h, float))
    lo = float(h[int(0.005 * (len(h) - 1))]) if len(h) else 0.0
    if len(h) < 50 or not np.isfinite(sigma_nm) or sigma_nm <= 0:
        return lo
    from scipy.optimize import minimize
    from scipy.special import log_ndtr, ndtr

    top = lo + max(8.0 * sigma_nm, 80.0)
    x = h[h <= top]
    if len(x) < 20:
        return lo

    def nll(prm):
        h0, log_s = prm
        s = np.exp(log_s)
        zt = (top - h0) / s
        # the density's integral up to the window's top
        norm = (top - h0) * ndtr(zt) + s * np.exp(-0.5 * zt * zt) / np.sqrt(2 * np.pi)
        return -(float(log_ndtr((x - h0) / s).sum()) - len(x) * np.log(max(norm, 1e-300)))

    try:
        fit = minimize(nll, [min(lo + 2.5 * sigma_nm, top - 2 * sigma_nm), np.log(sigma_nm)],
                       bounds=[(h[0] - 3 * sigma_nm, top - sigma_nm),
                               (np.log(0.8 * sigma_nm), np.log(3 * sigma_nm + 30.0))],
                       method="L-BFGS-B")
    except (ValueError, FloatingPointError):
        return lo
    if not np.isfinite(fit.x[0]) or not np.isfinite(fit.fun):
        return lo
    return float(fit.x[0])


#: A labelled spine with no shaft model: principal axes whose standard deviation is at
#: least this fraction of the largest are candidates for the spine axis.
SQUAT_AXIS_RATIO = 0.7
#: The ends of a candidate axis must differ at least this much in openness
#: (:func:`_end_openness`) for the open one to be taken as the base.
END_OPENNESS_GAP = 0.15


def _slab_radius(q, h, a, lo, hi) -> float:
    """Median distance from the axis ``a`` of the points with ``lo <= h <= hi`` (NaN for
    fewer than 8)."""
    sel = (h >= lo) & (h <= hi)
    if sel.sum() < 8:
        return np.nan
    flat = q[sel] - np.outer(h[sel], a)
    return float(np.median(np.linalg.norm(flat - flat.mean(0), axis=1)))


def _end_openness(q, cen, a) -> float:
    """How open the ``-a`` end of a labelled spine is: the median distance from the axis
    of the localizations in its last slab (0.3 x the radius further in, >= 20 nm thick)
    over that radius (the slab 10-25 % of the length in). About 1 where the labelled
    surface ends in an open ring (the cut from an unlabelled shaft), about 0.5 at a
    rounded closed tip (a dome's last slab of 0.3 R has median radius ~sqrt(0.3) R)."""
    h = (q - cen) @ a
    lo, hi = np.percentile(h, [0.5, 99.5])
    span = hi - lo
    r_in = _slab_radius(q, h, a, lo + 0.10 * span, lo + 0.25 * span)
    if not np.isfinite(r_in) or r_in <= 0:
        return np.nan
    return _slab_radius(q, h, a, lo, lo + max(0.3 * r_in, 20.0)) / r_in


#: The surface normals of an open membrane sum to the area vector of its opening
#: (:func:`_normal_sum`); for a squat spine (second principal axis >= SQUAT_AXIS_RATIO x
#: the first) the opening is taken as the base when that sum is at least this fraction of
#: the number of localizations (simulated EM-like cut spines, 5 seeds: stubby 0.06-0.19,
#: squat mushrooms, whose base is a thin neck, <= 0.04).
OPENING_MIN_FRACTION = 0.08


def _normal_sum(q, cen, k: int = 24) -> np.ndarray:
    """Sum of the localizations' surface normals, each turned away from the centroid.

    The normal of a localization is the smallest principal axis of its ``k`` nearest
    neighbours. Over a closed surface such normals cancel; over a membrane open at its
    base they sum to the base's area vector, pointing into the spine (in units of
    localizations: about 0.25 x their number for a stubby spine's wide base)."""
    from scipy.spatial import cKDTree

    if len(q) < 4 * k:
        return np.zeros(3)
    idx = cKDTree(q).query(q, k=k)[1]
    nb = q[idx] - q[idx].mean(axis=1, keepdims=True)
    _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", nb, nb))
    n = vecs[:, :, 0]
    n *= np.sign(np.einsum("ij,ij->i", n, q - cen))[:, None]
    return n.sum(axis=0)


def _labelled_axis(q, cen, centre) -> np.ndarray:
    """Axis (unit, pointing into the spine from its base) of a labelled spine with no
    shaft model.

    The base is where the labelled localizations end: for a membrane label the open ring
    where the spine was cut from (or joins) an unlabelled shaft, for a filled label the
    flat cut. A squat spine (second principal axis at least :data:`SQUAT_AXIS_RATIO` x
    the first) whose surface normals sum to a clear opening (:func:`_normal_sum`,
    :data:`OPENING_MIN_FRACTION`) takes that direction: a stubby spine's axis is often
    its shortest. Otherwise, of the principal axes at least SQUAT_AXIS_RATIO as long as
    the longest and both their directions, the base is the more open end
    (:func:`_end_openness`); when no axis has ends clearly different (a thin tube at
    axial blur), the main axis is turned towards its less open end all the same, and
    away from the whole cloud's centre where openness is undefined.
    """
    _, sv, vt = np.linalg.svd(q - cen, full_matrices=False)
    if sv[1] >= SQUAT_AXIS_RATIO * sv[0]:
        s = _normal_sum(q, cen)
        if np.linalg.norm(s) >= OPENING_MIN_FRACTION * len(q):
            return s / np.linalg.norm(s)   # a wide open base: the opening says where
    cands = [vt[i] for i in range(len(sv)) if sv[i] >= SQUAT_AXIS_RATIO * sv[0]]
    best, best_gap = vt[0], 0.0
    for v in cands:
        base_end, tip_end = _end_openness(q, cen, v), _end_openness(q, cen, -v)
        gap = abs(base_end - tip_end)
        if np.isfinite(gap) and gap > best_gap:
            best, best_gap = (v if base_end > tip_end else -v), gap
    if best_gap < END_OPENNESS_GAP:
        # no end clearly open: the main axis, turned by the sign of its ends' openness
        # (on 52 simulated EM-like necked spines cut from their dendrite, 5 seeds, the
        # sign was wrong for 3, "away from the cloud's centre" for 16), or away from the
        # cloud's centre where the openness is undefined
        gap = _end_openness(q, cen, vt[0]) - _end_openness(q, cen, -vt[0])
        if np.isfinite(gap) and gap != 0.0:
            best = vt[0] if gap > 0 else -vt[0]
        else:
            best = vt[0] if (cen - centre) @ vt[0] >= 0 else -vt[0]
    return best


def isolate_spines(table: pa.Table, *, label: str = "membrane", spine_labels: str | None = None,
                   margin_nm: float | str = "auto", eps_nm: float | str = "auto",
                   min_localizations: int = 50, min_height_nm: float = 150.0,
                   slice_nm: float = 500.0,
                   background_factor: float = 5.0,
                   min_dendrite_score: float = DENDRITE_SCORE_MIN,
                   workers: int = -1) -> IsolatedSpines:
    """Separate the dendritic shaft from its spines and label each spine.

    Parameters
    ----------
    table : pyarrow.Table
        3D localization table (x, y, z in nm) of one dendrite fragment.
    label : {"membrane", "volume"}
        What was labelled (changes the shaft cross-section model).
    spine_labels : str, optional
        Name of an integer column that already labels the spines (>= 0; -1 or
        negative = shaft/background): no detection, only base points and axes.
    margin_nm : float or "auto"
        Height above the fitted shaft surface beyond which a point is a protrusion
        candidate, nm. ``"auto"``: 60 nm plus 4 times the median precision along the
        point's radial direction (from ``precision_xy``/``precision_z``; 10 nm and 25 nm
        when the table has none); the cut radius then adds ``60 + 2 max(sigma_xy, sigma_z)``
        (a fixed ``margin_nm`` is used for both).
    eps_nm : float or "auto"
        DBSCAN radius that splits the candidates into spines, nm. ``"auto"``: 3 point
        spacings of the localizations; spacing = median distance to the 4th nearest
        neighbour, at least ``sqrt(4/32)`` times the median distance to the 32nd (so that
        clumps of repeated localizations of one emitter, at MINFLUX-like precision, do
        not shrink it to the clump size).
    min_localizations : int
        Smallest spine kept, localizations (default 50).
    min_height_nm : float
        A candidate cluster is a spine only if its 98th-percentile height above the shaft
        surface reaches this (default 150 nm): rejects bumps of shaft noise.
    slice_nm : float
        Slice thickness of the centreline fit, nm (default 500).
    background_factor : float
        Background threshold on the 8th-neighbour distance, times its median (default 5).
    min_dendrite_score : float
        Below this ``dendrite_score`` (0-1; default :data:`DENDRITE_SCORE_MIN` = 0.5) the
        data are not taken as a dendrite fragment: no spines are reported and a
        :class:`~smlmspine.errors.QualityWarning` says why. The score (shaft fit
        residual, shaft surface coverage, protrusion contrast) is in the result's
        ``dendrite`` (docs/envelope.md); 0 turns the check off. With ``spine_labels``
        the given spines are kept whatever the score (the warning still comes).
    workers : int
        Threads for the scipy neighbour searches (-1 = all cores, the default). The
        result does not depend on it.

    Returns
    -------
    IsolatedSpines
        ``table`` with ``spine_id``, per-spine ``spines`` table (with each spine's
        ``detection_confidence``), the ``centreline`` and the ``dendrite`` score.

    Warns
    -----
    QualityWarning
        The data do not look like a dendrite fragment (then no spines are found).

    Raises
    ------
    ParameterError
        Bad parameters, 2D data, too few localizations to fit a shaft.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> rng = np.random.default_rng(0)
    >>> th, x = rng.uniform(0, 2 * np.pi, 20000), rng.uniform(0, 6000, 20000)
    >>> shaft = np.c_[x, 400 * np.cos(th), 400 * np.sin(th)]          # tube, r = 400 nm
    >>> u = rng.normal(size=(1500, 3)); u /= np.linalg.norm(u, axis=1)[:, None]
    >>> head = u * 200 + [3000, 0, 1000]                                # a head above it
    >>> t = np.linspace(0, 1, 300)[:, None]
    >>> neck = np.array([3000, 0, 400]) * (1 - t) + np.array([3000, 0, 800]) * t
    >>> p = np.r_[shaft, head, neck] + rng.normal(0, 10, (21800, 3))
    >>> res = isolate_spines(make_table({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2]}))
    >>> res.n_spines, [round(v, 1) for v in res.spines.column("axis_z").to_pylist()]
    (1, [1.0])
    """
    check_label(label)
    if "z" not in table.column_names:
        raise SchemaError("spine isolation needs 3D localizations: the table has no 'z' column")
    if int(min_localizations) < 4:
        raise ParameterError(f"min_localizations must be >= 4, got {min_localizations!r}")
    for name, val in (("slice_nm", slice_nm), ("background_factor", background_factor)):
        if not (np.isfinite(val) and val > 0):
            raise ParameterError(f"{name} must be a positive number, got {val!r}")
    if not (np.isfinite(min_dendrite_score) and 0.0 <= min_dendrite_score <= 1.0):
        raise ParameterError(f"min_dendrite_score must be in [0, 1], got {min_dendrite_score!r}")
    p = coordinates(table, dims=3)
    n = len(p)
    if n < 100:
        raise ParameterError(f"spine isolation needs at least 100 localizations, got {n}")
    bg = _background(p, float(background_factor), workers=workers)
    fg = ~bg
    params: dict[str, Any] = {"label": label, "spine_labels": spine_labels,
                              "min_localizations": int(min_localizations),
                              "slice_nm": float(slice_nm),
                              "background_factor": float(background_factor)}
    sxy, sz = _precision(table)
    auto_margin = margin_nm == "auto"
    if auto_margin:
        margin = 60.0 + 4.0 * max(sxy, sz)
    else:
        margin = _positive("margin_nm", margin_nm)
    params["margin_nm"] = "auto" if auto_margin else margin
    params["min_height_nm"] = float(min_height_nm)
    params["min_dendrite_score"] = float(min_dendrite_score)
    if spine_labels is not None:
        if spine_labels not in table.column_names:
            raise SchemaError(f"spine_labels: no column {spine_labels!r}; found "
                              f"{table.column_names}")
        raw = np.asarray(table.column(spine_labels).to_numpy(zero_copy_only=False))
        if not np.issubdtype(raw.dtype, np.integer):
            raise SchemaError(f"spine_labels column {spine_labels!r} must hold integers, "
                              f"found {raw.dtype}")
        ids, lab = np.unique(np.where(raw >= 0, raw, -1), return_inverse=True)
        if ids.size and ids[0] < 0:
            lab = lab - 1
            ids = ids[1:]
        shaft = lab < 0
        curve = None
        if shaft.sum() >= 300:
            try:
                curve = _fit_centreline(p[shaft & fg], label=label, slice_nm=slice_nm)
            except ParameterError:
                curve = None
        frames = _spine_frames(p, lab, len(ids), curve, precision_nm=(sxy, sz))
        geo = None
        if curve is None:
            dend = dendrite_score_from({"shaft_residual_excess": np.nan, "shaft_coverage": 0.0},
                                       min_dendrite_score=min_dendrite_score)
            dend["reason"] = "no shaft could be fitted to the unlabelled localizations"
        else:
            geo = _shaft_geometry(p, curve, sxy, sz, auto_margin, margin, workers)
            j, dist, rad, radial, height, thr, sigma_r = geo
            measured = _dendrite_components(fg & shaft, curve, j, dist, rad, radial, height,
                                            thr, fg & (lab >= 0), sigma_r, label,
                                            precision_nm=(sxy, sz))
            dend = dendrite_score_from(measured, min_dendrite_score=min_dendrite_score)
        _warn_not_dendrite(dend, kept=True)
        conf = _confidences(p, lab, frames, geo, params)
        return _result(table, p, lab, ids, frames, curve, bg, params, margin, conf=conf,
                       dendrite=dend)
    try:
        curve = _fit_centreline(p[fg], label=label, slice_nm=float(slice_nm), workers=workers)
    except ParameterError as exc:
        # no shaft at all: not a dendrite fragment (or far too sparse for one)
        dend = dendrite_score_from({"shaft_residual_excess": np.nan, "shaft_coverage": 0.0},
                                   min_dendrite_score=min_dendrite_score)
        dend["reason"] = f"no shaft could be fitted ({exc})"
        dend["looks_like_dendrite"] = False
        _warn_not_dendrite(dend)
        return _result(table, p, np.full(n, -1, np.int64), np.arange(0), [], None, bg, params,
                       margin, conf=[], dendrite=dend)
    geo = _shaft_geometry(p, curve, sxy, sz, auto_margin, margin, workers)
    j, dist, rad, radial, height, thr, sigma_r = geo
    cand = fg & (height > thr)
    dend = dendrite_score_from(
        _dendrite_components(fg, curve, j, dist, rad, radial, height, thr, cand, sigma_r, label,
                             precision_nm=(sxy, sz)),
        min_dendrite_score=min_dendrite_score)
    if not dend["looks_like_dendrite"]:
        _warn_not_dendrite(dend)
        return _result(table, p, np.full(n, -1, np.int64), np.arange(0), [], curve, bg, params,
                       margin, conf=[], dendrite=dend)
    if eps_nm == "auto":
        eps = 3.0 * _spacing_nm(p[fg], workers=workers)
    else:
        eps = _positive("eps_nm", eps_nm)
    params["eps_nm"] = float(eps)
    lab = np.full(n, -1, np.int64)
    if cand.sum() >= int(min_localizations):
        from ..cluster._dbscan import grid_dbscan

        # the package's own DBSCAN with scikit-learn's border rule ("lowest"): the same
        # labels as sklearn.cluster.DBSCAN(eps, min_samples=5), which was used before
        # (see docs/architecture.md, shared kernels, for the measurement)
        try:
            cl, _ = grid_dbscan(p[cand], eps=float(eps), min_samples=5, border="lowest")
        except OverflowError as exc:
            raise ParameterError(f"eps_nm={eps:g} is too small for the extent of the "
                                 f"candidate localizations: {exc}") from None
        sizes = np.bincount(cl[cl >= 0]) if (cl >= 0).any() else np.zeros(0, int)
        hc = height[cand]
        big = [k for k in np.flatnonzero(sizes >= int(min_localizations))
               if np.percentile(hc[cl == k], 98) >= float(min_height_nm)]
        big = np.asarray(big, np.int64)
        remap = np.full(len(sizes) + 1, -1, np.int64)
        remap[big] = np.arange(len(big))
        lab[cand] = remap[cl]
    n_lab = int(lab.max()) + 1 if (lab >= 0).any() else 0
    frames = _spine_frames(p, lab, n_lab, curve)
    lab, n_lab, frames = _merge_duplicates(p, lab, n_lab, frames, curve)
    # grow each spine down to its base plane, within its cut radius
    pad = 60.0 + 2.0 * max(sxy, sz) if auto_margin else margin
    params["cut_pad_nm"] = float(pad)
    cuts: list[float] = []
    best = np.full(n, np.inf)
    out = np.full(n, -1, np.int64)
    for k, (base, a) in enumerate(frames):
        q = p[lab == k] - base
        tq = q @ a
        rq = np.sqrt(np.maximum((q * q).sum(1) - tq * tq, 0))
        cut = float(np.percentile(rq, 98)) + pad
        cuts.append(cut)
        d = p - base
        t_ = d @ a
        r_ = np.sqrt(np.maximum(np.einsum("ij,ij->i", d, d) - t_ * t_, 0))
        mine = fg & (t_ > 0) & (r_ < cut) & (r_ < best)
        # a point of another spine's candidate cluster stays there
        mine &= (lab < 0) | (lab == k)
        out[mine] = k
        best[mine] = r_[mine]
    ids = np.arange(n_lab)
    conf = _confidences(p, out, frames, geo, params)
    return _result(table, p, out, ids, frames, curve, bg, params, margin, cuts, conf=conf,
                   dendrite=dend)


def _shaft_geometry(p, curve, sxy, sz, auto_margin, margin, workers):
    """Projection on the centreline, height above the shaft, margin and radial precision."""
    j, dist, rad, radial = curve.project(p, workers=workers)
    height = dist - rad
    # precision along the radial direction of each point
    rz = radial[:, 2] / np.maximum(dist, 1e-12)
    sigma_r = np.sqrt(sxy ** 2 * (1 - rz ** 2) + sz ** 2 * rz ** 2)
    # auto: 60 nm plus 4 sigma of the precision along the radial direction
    thr = 60.0 + 4.0 * sigma_r if auto_margin else np.full(len(p), float(margin))
    return j, dist, rad, radial, height, thr, sigma_r


def _confidences(p, lab, frames, geo, params) -> list[float]:
    if geo is None:
        return [float("nan")] * len(frames)
    _, _, _, _, height, thr, sigma_r = geo
    return [_spine_confidence(p, lab == k, base, a, height, thr, sigma_r,
                              min_localizations=params["min_localizations"],
                              min_height_nm=params["min_height_nm"])[0]
            for k, (base, a) in enumerate(frames)]


def _warn_not_dendrite(dend: dict, kept: bool = False) -> None:
    if dend["looks_like_dendrite"]:
        return
    import warnings

    what = ("the given spine labels are kept" if kept else "no spines reported")
    warnings.warn(f"the localizations do not look like a dendrite fragment: {dend['reason']}; "
                  f"{what} (see docs/envelope.md, 'Is it a dendrite?')", QualityWarning,
                  stacklevel=3)


def _merge_duplicates(p, lab, n_lab, frames, curve, max_angle_deg: float = 30.0):
    """Merge a candidate cluster into a larger one whose region holds its base."""
    if n_lab < 2:
        return lab, n_lab, frames
    sizes = np.bincount(lab[lab >= 0], minlength=n_lab)
    order = np.argsort(-sizes)
    target = np.arange(n_lab)
    cuts = []
    for k in range(n_lab):
        q = p[lab == k] - frames[k][0]
        t = q @ frames[k][1]
        cuts.append(float(np.percentile(np.sqrt(np.maximum((q * q).sum(1) - t * t, 0)), 98)))
    cos_max = np.cos(np.radians(max_angle_deg))
    for i, k in enumerate(order):
        for big in order[:i]:
            if target[big] != big:
                continue
            bb, ab = frames[big]
            d = frames[k][0] - bb
            radial = np.linalg.norm(d - (d @ ab) * ab)
            if frames[k][1] @ ab > cos_max and radial < cuts[big]:
                target[k] = big
                break
    if np.all(target == np.arange(n_lab)):
        return lab, n_lab, frames
    keep = np.unique(target)
    new_id = np.full(n_lab, -1, np.int64)
    new_id[keep] = np.arange(len(keep))
    lab = np.where(lab >= 0, new_id[target[np.maximum(lab, 0)]], -1)
    return lab, len(keep), _spine_frames(p, lab, len(keep), curve)


def _result(table, p, lab, ids, frames, curve, bg, params, margin, cuts=None, *, conf,
            dendrite):
    rows = {name: [] for name in ISOLATED_SPINE_COLUMNS}
    keep_ids = []
    for k, (base, a) in enumerate(frames):
        sel = lab == k
        if not sel.any():
            continue
        q = p[sel] - base
        tq = q @ a
        rq = np.sqrt(np.maximum((q * q).sum(1) - tq * tq, 0))
        keep_ids.append(k)
        rows["spine_id"].append(int(ids[k]))
        rows["n_localizations"].append(int(sel.sum()))
        for c, v in zip("xyz", base):
            rows[f"base_{c}_nm"].append(float(v))
        for c, v in zip("xyz", a):
            rows[f"axis_{c}"].append(float(v))
        rows["extent_nm"].append(float(np.percentile(tq, 98)))
        rows["cut_radius_nm"].append(cuts[k] if cuts is not None else float(rq.max()))
        rows["detection_confidence"].append(float(conf[k]))
    spine_id = np.where(lab >= 0, np.asarray(ids, np.int64)[np.maximum(lab, 0)] if len(ids)
                        else -1, -1)
    out = with_columns(table, {"spine_id": spine_id})
    out = with_history(out, "envelope.isolate_spines", params)
    spines = spec_table(ISOLATED_SPINE_COLUMNS, rows,
                        metadata={"source_step": "envelope.isolate_spines"})
    return IsolatedSpines(out, spines, curve, bg, params, dendrite)


def _precision(table) -> tuple[float, float]:
    """Median lateral and axial precision (nm); 10 nm / 25 nm when the table has none."""
    out = []
    for name, default in (("precision_xy", 10.0), ("precision_z", None)):
        val = default
        if name in table.column_names:
            v = np.asarray(table.column(name).to_numpy(zero_copy_only=False), float)
            v = v[np.isfinite(v)]
            if v.size:
                val = float(np.median(v))
        out.append(val)
    if out[1] is None:
        out[1] = 2.5 * out[0]
    return out[0], out[1]


def _positive(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a number in nm or 'auto', got {value!r}") from exc
    if not (np.isfinite(v) and v > 0):
        raise ParameterError(f"{name} must be a positive number, got {value!r}")
    return v
