"""3D alpha shapes from one Delaunay tetrahedralization (vectorised numpy).

Method (docs/envelope.md):

1. One Delaunay tetrahedralization per object (numba Bowyer-Watson with certified
   predicates, :mod:`._delaunay`; Qhull via ``scipy.spatial.Delaunay`` when the input is
   too degenerate to decide in double precision); circumradius of every tetrahedron.
2. Keep the tetrahedra with circumradius ``< alpha`` (the regularized alpha solid: no
   dangling triangles or edges).
3. Keep the face-connected component that holds the most points; fill cavities: every
   region of removed tetrahedra that does not reach the convex hull is enclosed and
   becomes solid (a closed membrane shell thus gives a filled object).
4. Local repair: tetrahedra around non-manifold edges/vertices of the boundary are added
   (only those with circumradius below ``2 alpha``), a few rounds.
5. The boundary = faces of solid tetrahedra shared with non-solid ones (or on the hull),
   oriented away from the opposite vertex, i.e. outward.

``alpha_nm="auto"`` picks the smallest alpha on a geometric grid (ratio 1.15) starting at
2.5 point spacings (median distance to the 4th nearest neighbour) such that the solid is one closed, manifold body
holding at least ``min_fraction`` (99 %) of the points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["alpha_shape", "AlphaComplex"]


@dataclass(frozen=True, eq=False)
class AlphaComplex:
    """A Delaunay tetrahedralization with circumradii, filtered by :meth:`solid`.

    Made by :meth:`build`. Every alpha is a filter of the same tetrahedra, so trying
    many alphas (as ``alpha_nm="auto"`` of :func:`~smlmspine.envelope.alpha_shape`
    does) costs one tetrahedralization.

    Attributes
    ----------
    points : (N, 3) ndarray of float
        Input points in nm.
    simplices : (T, 4) ndarray of int
        Tetrahedra, as indices into ``points``.
    neighbors : (T, 4) ndarray of int
        Neighbour across the face opposite each vertex, -1 on the convex hull.
    radii_nm : (T,) ndarray of float
        Circumradius of each tetrahedron (inf when flat).
    vertex_of : (N,) ndarray of int
        Delaunay vertex that represents each point (itself, or the vertex a duplicate or
        coplanar point was merged into).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(-100.0, 100.0, size=(3000, 3))
    >>> p = p[np.linalg.norm(p, axis=1) < 100.0]          # solid ball, r = 100 nm
    >>> cx = AlphaComplex.build(p)
    >>> cx.simplices.shape[1], cx.radii_nm.shape == (len(cx.simplices),)
    (4, True)
    >>> keep, held, faces = cx.solid(20.0)
    >>> held, faces.shape[1]
    (1.0, 3)
    >>> round(cx.solid_volume(20.0) / (4 / 3 * np.pi * 100.0 ** 3), 2)
    0.82
    """

    points: np.ndarray
    simplices: np.ndarray
    neighbors: np.ndarray
    radii_nm: np.ndarray
    vertex_of: np.ndarray

    @classmethod
    def build(cls, points: np.ndarray, *, delaunay: str = "auto") -> "AlphaComplex":
        """Tetrahedralize ``points`` once, with the circumradius of every tetrahedron.

        Parameters
        ----------
        points : (N, 3) array-like of float
            Coordinates in nm: finite, at least 4 distinct points, not all coplanar.
            Copies of a point are allowed (each is represented by one Delaunay vertex,
            ``vertex_of``).
        delaunay : {"auto", "qhull"}
            ``"auto"`` (default): the numba kernel of :mod:`._delaunay` (certified exact
            decisions; Qhull when the input is too degenerate to decide in double
            precision); ``"qhull"``: always ``scipy.spatial.Delaunay``. Both give the
            same tetrahedra for points in general position (in another order).

        Returns
        -------
        AlphaComplex
            ``points`` (as float) with the ``simplices``, ``neighbors``, ``radii_nm``
            (nm) and ``vertex_of`` of their tetrahedralization.

        Raises
        ------
        ParameterError
            ``delaunay`` is neither ``"auto"`` nor ``"qhull"``; ``points`` is not
            numeric, not of shape (N, 3), holds NaN or inf, has fewer than 4 distinct
            points, or is coplanar or collinear (no 3D extent), or Qhull cannot
            tetrahedralize it.
        """
        if delaunay not in ("auto", "qhull"):
            raise ParameterError(f"delaunay must be 'auto' or 'qhull', got {delaunay!r}")
        pts, first, vertex_of = _check_points(points, return_distinct=True)
        centre = pts.mean(0)
        q = pts - centre
        res = None
        if delaunay == "auto":
            from ._delaunay import delaunay as _kernel_delaunay

            res = _kernel_delaunay(q, None if len(first) == len(pts) else first)
        if res is not None:
            s, nb = res
        else:
            s, nb, vertex_of = _qhull(q)
        from ._alpha_kernels import circumradii

        return cls(pts, s, nb, circumradii(q, s), vertex_of)

    def solid_volume(self, alpha_nm: float, *, gap_nm: float = 0.0) -> float:
        """Volume of the alpha solid, without the manifold repair of :meth:`solid`.

        The tetrahedra with circumradius below ``alpha_nm``, their face-connected
        component with the most tetrahedra, cavities filled as in :meth:`solid`.

        Parameters
        ----------
        alpha_nm : float
            Alpha radius in nm.
        gap_nm : float
            Also fill the empty regions that reach the convex hull only through
            triangles of circumradius below ``gap_nm`` (nm; see :meth:`solid`). 0
            (default): only fully enclosed cavities.

        Returns
        -------
        float
            Volume in nm^3 (0.0 when no tetrahedron is kept).
        """
        keep = self._fill_cavities(self._main_component(self.radii_nm < alpha_nm), gap_nm)
        s = self.simplices[keep]
        p = self.points
        a = p[s[:, 0]]
        det = np.einsum("ij,ij->i", p[s[:, 1]] - a,
                        np.cross(p[s[:, 2]] - a, p[s[:, 3]] - a))
        return float(np.abs(det).sum() / 6.0)

    def held_fraction(self, alpha_nm: float) -> float:
        """Fraction of the points held by the main solid component at ``alpha_nm``.

        The face-connected component (with the most tetrahedra) of the tetrahedra with
        circumradius below ``alpha_nm``, before cavity filling and repair: the quick
        test of the bisection in the automatic alpha search of
        :func:`~smlmspine.envelope.alpha_shape`.

        Parameters
        ----------
        alpha_nm : float
            Alpha radius in nm.

        Returns
        -------
        float
            Fraction (0-1) of the points whose Delaunay vertex (``vertex_of``) belongs to
            a tetrahedron of that component; 0.0 for no points.
        """
        keep = self._main_component(self.radii_nm < alpha_nm)
        return self._held(keep)

    def _held(self, keep) -> float:
        from ._alpha_kernels import held_fraction

        if not len(self.points):
            return 0.0
        return float(held_fraction(np.ascontiguousarray(keep, bool), self.simplices,
                                   np.ascontiguousarray(self.vertex_of, np.int64)))

    def face_radii(self) -> np.ndarray:
        """Circumradius of the triangle opposite each vertex of each tetrahedron.

        Computed on the first call and kept on the instance (the ``gap_nm`` filling of
        :meth:`solid` and :meth:`solid_volume` uses it).

        Returns
        -------
        (T, 4) ndarray of float
            Circumradius in nm of the face opposite ``simplices[t, i]`` (the face shared
            with ``neighbors[t, i]``); inf for a face of zero area.
        """
        cached = self.__dict__.get("_face_radii")
        if cached is not None:
            return cached
        p, s = self.points, self.simplices
        out = np.empty(s.shape)
        for i in range(4):
            a, b, c = (p[s[:, (i + k) % 4]] for k in (1, 2, 3))
            la, lb, lc = (np.linalg.norm(b - c, axis=1), np.linalg.norm(c - a, axis=1),
                          np.linalg.norm(a - b, axis=1))
            area2 = np.linalg.norm(np.cross(b - a, c - a), axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, i] = np.where(area2 > 0, la * lb * lc / (2.0 * area2), np.inf)
        object.__setattr__(self, "_face_radii", out)
        return out

    def solid(self, alpha_nm: float, *, repair_rounds: int = 4, gap_nm: float = 0.0):
        """Solid tetrahedra mask, the fraction of points held, and the boundary faces.

        The tetrahedra with circumradius below ``alpha_nm``; their face-connected
        component with the most tetrahedra; cavities filled (every empty region that
        does not reach the convex hull); then up to ``repair_rounds`` rounds of local
        repair, each adding the removed tetrahedra of circumradius below
        ``2 * alpha_nm`` that touch a non-manifold edge or vertex of the boundary.

        Parameters
        ----------
        alpha_nm : float
            Alpha radius in nm.
        repair_rounds : int
            Most repair rounds (default 4; 0: none). The rounds stop early when the
            boundary is manifold or no tetrahedron can be added.
        gap_nm : float
            > 0: an empty region counts as outside only if it reaches the convex hull
            through triangles of circumradius >= ``gap_nm`` (nm); regions behind smaller
            openings (holes in a sampled membrane) are filled. 0 (default): only fully
            enclosed cavities are filled.

        Returns
        -------
        keep : (T,) ndarray of bool
            Solid tetrahedra.
        held : float
            Fraction (0-1) of the points whose Delaunay vertex (``vertex_of``) belongs
            to a solid tetrahedron.
        faces : (F, 3) ndarray of int
            Boundary triangles (solid tetrahedra next to removed ones or on the convex
            hull) as indices into ``points``, oriented outward. Not checked: the repair
            may leave non-manifold edges or vertices
            (:func:`~smlmspine.envelope.check_mesh` says).
        """
        keep, held, faces, _ = self._solid(alpha_nm, repair_rounds=repair_rounds,
                                           gap_nm=gap_nm)
        return keep, held, faces

    def _solid(self, alpha_nm: float, *, repair_rounds: int = 4, gap_nm: float = 0.0):
        """:meth:`solid` plus whether the faces are manifold: True (no edge in more than
        two faces, every vertex one fan of faces), False (some left after the repair)."""
        keep = self.radii_nm < alpha_nm
        keep = self._main_component(keep)
        keep = self._fill_cavities(keep, gap_nm)
        faces = self._boundary(keep)
        manifold = False
        for _ in range(repair_rounds):
            found, add = self._repair_candidates(faces, keep, 2.0 * alpha_nm)
            if not found:
                manifold = True
                break
            if not add.any():
                manifold = False
                break
            keep = self._fill_cavities(keep | add, gap_nm)
            faces = self._boundary(keep)
        else:  # rounds used up: is the last surface manifold?
            manifold = not self._repair_candidates(faces, keep, 0.0)[0]
        return keep, self._held(keep), faces, manifold

    def _main_component(self, keep):
        from ._alpha_kernels import main_component

        return main_component(np.ascontiguousarray(keep, bool), self.neighbors)

    def _fill_cavities(self, keep, gap_nm: float = 0.0):
        from ._alpha_kernels import fill_cavities

        gap = float(gap_nm)
        fr = self.face_radii() if gap > 0 else np.empty((0, 4))
        return fill_cavities(np.ascontiguousarray(keep, bool), self.neighbors, fr, gap)

    def _boundary(self, keep):
        from ._alpha_kernels import boundary_faces

        return boundary_faces(np.ascontiguousarray(keep, bool), self.simplices, self.neighbors,
                              self.points)

    def _repair_candidates(self, faces, keep, limit_nm: float):
        """(found, add): non-manifold edges/vertices of ``faces`` and the removed
        tetrahedra with circumradius < ``limit_nm`` touching them."""
        from ._alpha_kernels import repair_candidates

        if len(faces) == 0:
            return False, np.zeros(len(keep), bool)
        return repair_candidates(faces, len(self.points), self.simplices,
                                 np.ascontiguousarray(keep, bool), self.radii_nm,
                                 float(limit_nm))


#: Above this many points Qhull's Delaunay is joggled (``QJ``) from the start instead of
#: merging degenerate facets exactly (``Qc Q12``): the square grid of a base-cap disc
#: (many co-circular, coplanar points) made the exact merge take 205-257 s for one
#: 46,750-point region of a 10^7-localization dendrite, 2.4 s joggled. Spines are thinned
#: to at most 20,000 localizations, so only oversized regions (and large dendrite meshes)
#: take this path.
QHULL_JOGGLE_ABOVE = 40_000


def _qhull(q: np.ndarray):
    """Qhull's Delaunay of the (centred) points: simplices, neighbours, vertex_of."""
    from scipy.spatial import Delaunay, QhullError

    try:
        try:
            tri = Delaunay(q, qhull_options="QJ Qbb" if len(q) > QHULL_JOGGLE_ABOVE
                           else "Qbb Qc Q12")
        except QhullError:
            # degenerate input (e.g. exactly co-spherical points): joggle it
            tri = Delaunay(q, qhull_options="QJ Qbb")
    except QhullError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "qhull error"
        raise ParameterError(
            f"points: cannot tetrahedralize {len(q)} points (coplanar, collinear or "
            f"all duplicates?): {first}") from exc
    vertex_of = np.arange(len(q))
    if len(tri.coplanar):
        vertex_of[tri.coplanar[:, 0]] = tri.coplanar[:, 2]
    return tri.simplices.astype(np.int64), tri.neighbors.astype(np.int64), vertex_of


def _check_points(points, *, return_distinct: bool = False):
    """Validated (N, 3) float array; with ``return_distinct`` also the index of the
    first occurrence of every distinct point (increasing) and, for every point, that of
    its first copy."""
    try:
        pts = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"points must be numeric, got {type(points).__name__}") from exc
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ParameterError(f"'points' must have shape (N, 3), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ParameterError("'points' holds NaN or inf coordinates")
    # duplicates: lexicographic sort (stable: the first copy comes first in its group)
    order = np.lexsort(pts.T[::-1])
    ps = pts[order]
    new = np.ones(len(pts), bool)
    new[1:] = (ps[1:] != ps[:-1]).any(1)
    n_unique = int(new.sum())
    if n_unique < 4:
        raise ParameterError(f"a 3D envelope needs at least 4 distinct points, got {n_unique}")
    sv = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    if sv[2] <= 1e-9 * sv[0]:
        raise ParameterError(f"points: all {len(pts)} points are coplanar or collinear "
                             "(no 3D extent); a 3D envelope needs a volume")
    if not return_distinct:
        return pts
    if n_unique == len(pts):
        idx = np.arange(len(pts))
        return pts, idx, idx
    heads = order[new]
    vertex_of = np.empty(len(pts), np.int64)
    vertex_of[order] = heads[np.cumsum(new) - 1]
    return pts, np.sort(heads), vertex_of


#: ``alpha_nm="auto"`` never goes below this many times the point spacing (the median
#: distance to the 4th nearest neighbour): below it, the surface follows the sampling
#: gaps and the volume is underestimated.
AUTO_MIN_SPACINGS = 2.5


#: Repeated localizations of one emitter are the points within this many precisions
#: (the largest of lateral and axial) of each other (single linkage), see
#: :func:`point_spacing_nm`.
REPEAT_LINK_SIGMAS = 3.0
#: ... and the grouping is trusted only when 95 % of the points lie in groups with no
#: point farther than this many precisions from their centroid. On simulated spines
#: that was 3.2-4.0 precisions at MINFLUX-like precision (2.5 nm), and 16-56 at STORM
#: precision (12/30 nm), where the emitters lie closer than the link distance and the
#: links chain them into groups hundreds of nm wide.
REPEAT_MAX_RADIUS_SIGMAS = 6.0


def point_spacing_nm(points: np.ndarray, precision_nm=None) -> float:
    """Median distance from a point to its 4th nearest neighbour (nm).

    Copies of a point count as neighbours at distance 0; points whose 4th neighbour is
    such a copy are left out of the median (1.0 when none is left).

    With ``precision_nm`` (1 sigma, nm; a number or ``(lateral, axial)``), the spacing is
    that of the emitters: the repeated localizations of one emitter (points within
    REPEAT_LINK_SIGMAS precisions, single linkage) count once, at their
    centroid, when they form compact groups (REPEAT_MAX_RADIUS_SIGMAS). The precision
    used is the largest of lateral and axial: the blinks of one emitter are resolved
    only when they are in every direction. MINFLUX-like
    precision (2.5 nm) resolves every blink of an emitter as its own point: the 4th
    neighbour is then mostly a repeat of the same emitter (10-16 nm on simulated spines
    labelled at 500 emitters/um^2) and the spacing of the membrane sample (35-48 nm) is
    missed; at STORM precision the groups chain and the plain spacing is returned.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> emitters = rng.uniform(0, 1000, (300, 3))
    >>> blinks = np.repeat(emitters, 6, axis=0) + rng.normal(0, 2.0, (1800, 3))
    >>> round(point_spacing_nm(blinks) / point_spacing_nm(emitters), 1)
    0.0
    >>> round(point_spacing_nm(blinks, precision_nm=2.0) / point_spacing_nm(emitters), 1)
    1.0
    >>> round(point_spacing_nm(blinks, precision_nm=40.0) / point_spacing_nm(emitters), 1)  # chains
    0.0
    """
    pts = np.ascontiguousarray(points, dtype=float)
    if precision_nm is not None and len(pts) >= 10:
        sig = float(np.max(np.atleast_1d(np.asarray(precision_nm, float))))
        if np.isfinite(sig) and sig > 0:
            cen = _emitter_centroids(pts, sig)
            if cen is not None:
                pts = cen
    if len(pts) < 2:
        return 1.0
    k = min(5, len(pts))  # the point itself is the first
    nn = np.empty(0)
    if pts.ndim == 2 and pts.shape[1] == 3 and np.isfinite(pts).all():
        from ._alpha_kernels import kth_neighbor_distances

        nn = kth_neighbor_distances(pts, k)  # exact: the same values as cKDTree's
    if len(nn) != len(pts):
        from scipy.spatial import cKDTree

        nn = cKDTree(pts).query(pts, k=k)[0][:, -1]
    nn = nn[nn > 0]
    return float(np.median(nn)) if nn.size else 1.0


def _emitter_centroids(pts: np.ndarray, sigma_nm: float):
    """Centroids of the groups of repeated localizations (see :func:`point_spacing_nm`),
    or None when there are fewer than 10 groups, nothing was grouped, or the groups
    chain (non-finite input: None)."""
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.isfinite(pts).all():
        return None
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(pts)
    pairs = cKDTree(pts).query_pairs(REPEAT_LINK_SIGMAS * sigma_nm, output_type="ndarray")
    if not len(pairs):
        return None
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_groups, lab = connected_components(graph, directed=False)
    if n_groups < 10 or n_groups == n:
        return None
    cen = np.zeros((n_groups, 3))
    np.add.at(cen, lab, pts)
    cen /= np.bincount(lab, minlength=n_groups)[:, None]
    radius = np.zeros(n_groups)
    np.maximum.at(radius, lab, np.linalg.norm(pts - cen[lab], axis=1))
    # (over the points, not the groups: a chained shell is a few giant groups among
    # many single stray points)
    if np.percentile(radius[lab], 95) > REPEAT_MAX_RADIUS_SIGMAS * sigma_nm:
        return None
    return cen


def _alpha_grid(points: np.ndarray, radii: np.ndarray, precision_nm=None) -> np.ndarray:
    start = AUTO_MIN_SPACINGS * point_spacing_nm(points, precision_nm)
    finite = radii[np.isfinite(radii)]
    stop = float(finite.max()) * 1.01 if finite.size else start * 1e3
    stop = max(stop, start * 1.2)
    n = int(np.ceil(np.log(stop / start) / np.log(1.15))) + 1
    return start * 1.15 ** np.arange(n)


def alpha_shape(points, *, alpha_nm="auto", min_fraction: float = 0.99, gap_factor: float = 0.0):
    """Closed 3D alpha shape of a point cloud, cavities filled, as a checked envelope.

    Parameters
    ----------
    points : (N, 3) array-like of float
        Coordinates in nm (N >= 4, not all coplanar).
    alpha_nm : float or "auto"
        Alpha radius in nm: tetrahedra with a larger circumradius are removed. ``"auto"``
        (default): the smallest alpha (geometric grid, ratio 1.15, from 2.5 times the
        median distance to the 4th nearest neighbour) whose solid is one closed manifold body holding at
        least ``min_fraction`` of the points.
    min_fraction : float
        Fraction of the points the body must hold for ``"auto"`` (default 0.99), and
        below which a fixed-alpha result is flagged in ``note``.
    gap_factor : float
        Fill enclosed regions whose openings to the outside are all narrower than
        ``gap_factor * alpha`` (triangle circumradius): closes a sampled membrane shell
        with holes. 0 (default) fills only fully enclosed cavities.

    Returns
    -------
    Envelope
        ``mesh`` (trimesh, nm, outward normals), ``is_watertight`` (closed, manifold,
        one body) and ``reason`` when not, ``alpha_nm`` used, ``held_fraction``.

    Raises
    ------
    ParameterError
        Fewer than 4 distinct points, all coplanar, non-finite input, bad alpha.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.normal(size=(2000, 3))
    >>> p = 100.0 * p / np.linalg.norm(p, axis=1, keepdims=True)  # sphere, r = 100 nm
    >>> env = alpha_shape(p)
    >>> env.is_watertight, round(env.volume_nm3 / (4 / 3 * np.pi * 100.0 ** 3), 1)
    (True, 1.0)
    """
    from ._result import Envelope

    if not 0.0 < float(min_fraction) <= 1.0:
        raise ParameterError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
    auto = isinstance(alpha_nm, str)
    if auto and alpha_nm != "auto":
        raise ParameterError(f"alpha_nm must be a positive number in nm or 'auto', got {alpha_nm!r}")
    if not auto:
        try:
            alpha = float(alpha_nm)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"alpha_nm must be a number or 'auto', got {alpha_nm!r}") from exc
        if not alpha > 0 or not np.isfinite(alpha):
            raise ParameterError(f"alpha_nm must be a positive finite number, got {alpha_nm!r}")
    if not float(gap_factor) >= 0:
        raise ParameterError(f"gap_factor must be >= 0, got {gap_factor!r}")
    cx = AlphaComplex.build(points)
    return _alpha_envelope(cx, alpha_nm=alpha_nm, min_fraction=min_fraction,
                           gap_factor=float(gap_factor))


def _alpha_envelope(cx: AlphaComplex, *, alpha_nm, min_fraction, label="volume",
                    extra=None, gap_factor: float = 0.0, precision_nm=None,
                    decimate_if=None):
    """The alpha surface of ``cx`` as an Envelope, repaired when invalid.

    A voxel-remeshed repair is decimated back to about the alpha surface's resolution,
    unless ``decimate_if`` (a predicate on the voxel remesh) says the caller will not
    use it: it is then neither checked nor decimated
    (:func:`~smlmspine.envelope._repair.repair_mesh`'s ``use_if``), and the envelope
    is the invalid alpha surface with the reason."""
    import trimesh

    from ._repair import check_mesh
    from ._result import Envelope

    auto = isinstance(alpha_nm, str)
    if auto:
        grid = _alpha_grid(cx.points, cx.radii_nm, precision_nm)
        # bisection on the held fraction (monotone in alpha), then step up to validity
        lo, hi = 0, len(grid) - 1
        if cx.held_fraction(grid[0]) >= min_fraction:
            hi = 0
        while lo < hi:
            mid = (lo + hi) // 2
            frac = cx.held_fraction(grid[mid])
            if frac >= min_fraction:
                hi = mid
            else:
                lo = mid + 1
        chosen = None
        for k in range(lo, len(grid)):
            keep, frac, faces, manifold = cx._solid(grid[k], gap_nm=gap_factor * grid[k])
            # not manifold: an edge in > 2 faces or a vertex with > 1 fan of faces, which
            # check_mesh rejects (it is the slower test, run only on the survivors)
            if frac >= min_fraction and manifold:
                if not _faces_reason(cx.points, faces, check_mesh):
                    chosen = (grid[k], keep, frac, faces, "")
                    break
            if k - lo >= 12:
                break
        if chosen is None:
            a = grid[lo]
            keep, frac, faces = cx.solid(a, gap_nm=gap_factor * a)
            chosen = (a, keep, frac, faces, _faces_reason(cx.points, faces, check_mesh))
        alpha, keep, frac, faces, reason = chosen
    else:
        alpha = float(alpha_nm)
        keep, frac, faces = cx.solid(alpha, gap_nm=gap_factor * alpha)
        reason = _faces_reason(cx.points, faces, check_mesh)
    used = np.unique(faces)
    remap = np.full(len(cx.points), -1, np.int64)
    remap[used] = np.arange(len(used))
    mesh = trimesh.Trimesh(cx.points[used], remap[faces], process=False)
    note = ""
    if reason and len(faces):
        from .._profile import step
        from ._repair import repair_mesh

        with step("repair"):
            fixed, reason2, steps = repair_mesh(mesh, use_if=decimate_if)
        voxel = not reason2 and any(s_.startswith("voxel remesh") for s_ in steps)
        if voxel:
            # the voxel surface is much finer than the alpha surface (tetrahedra of a
            # grid at 1/80 of the extent): bring it back to about the alpha surface's
            # resolution, or the surface fit folds its many small triangles
            from ._levelset import decimate_clean

            with step("decimate"):
                dv, df = decimate_clean(fixed.vertices, fixed.faces,
                                        target_faces=max(len(faces), 1000), engine="qem")
            if len(df) < len(fixed.faces):
                fixed = trimesh.Trimesh(dv, df, process=False)
                steps.append(f"decimated to {len(df)} faces")
        if not reason2:
            mesh, note = fixed, f"alpha surface was invalid ({reason}); repaired: " + ", ".join(steps)
            reason = ""
    if frac < min_fraction:
        note = (note + "; " if note else "") + (
            f"the body holds {100 * frac:.1f} % of the points (< {100 * min_fraction:g} %): "
            f"alpha_nm={alpha:.4g} is too small for this point density")
    params = {"alpha_nm": float(alpha), "alpha_auto": auto, "min_fraction": float(min_fraction),
              "gap_factor": float(gap_factor)}
    params.update(extra or {})
    return Envelope(mesh=mesh, is_watertight=not reason, reason=reason, method="alpha",
                    label=label, alpha_nm=float(alpha), held_fraction=frac,
                    n_points=len(cx.points), parameters=params, note=note)


def _faces_reason(points, faces, check_mesh):
    if len(faces) == 0:
        return "alpha too small: no tetrahedron kept"
    # faces of one Delaunay tetrahedralization meet only in shared edges and vertices:
    # the exact self-intersection test cannot fail here (the result is checked again
    # after every vertex move, see _reconstruct._finish)
    return check_mesh(points, faces, self_intersection=False)
