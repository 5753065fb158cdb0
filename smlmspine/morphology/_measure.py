"""Spine measurements from a closed mesh: neck, head, length, volumes, shape indices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ParameterError
from ._sections import _cross_sections, _mesh_arrays, centreline, geodesic_from_base, section_profile

__all__ = ["SpineMeasurement", "measure_spine", "measure_spines", "find_base", "base_plane",
           "BasePlane", "FEATURE_NAMES"]


@dataclass(frozen=True)
class SpineMeasurement:
    """Morphometrics of one spine mesh (lengths in nm, volumes in um^3).

    Definitions (docs/morphology.md): sections are perpendicular to the centreline,
    every ``step_nm``; the equivalent diameter of a section is 2*sqrt(A/pi). The head is
    at the section of largest diameter in the distal half (a flared base is not a
    head); the neck minimum is the narrowest section
    between the base and the head; the head-neck boundary is the first section distal
    of the neck minimum whose diameter exceeds ``head_neck_threshold`` x the neck
    minimum. ``neck_length_nm`` runs from the base to that boundary.
    The base plane and the closing cap come from :func:`base_plane`: the cap is never
    searched for the neck; the shape indices are those of the part distal of the base
    section (``base_area_nm2`` is the area of that section, ``cap_length_nm`` the axial
    extent of the excluded cap); ``volume_um3`` and ``surface_area_um2`` are that
    part's plus, for a given base plane, the prism of the base section between the
    plane and the base section (where a cap or a gap was skipped: the spine as if cut
    flat at its base plane; its side counted as the perimeter of a circle of the base
    area).
    ``open_angle_deg`` is the angle at the base between the directions to the centre
    of mass and to the tip (0 for a straight spine, growing with bending);
    ``cvd`` is the coefficient of variation (std/mean) of the distances from the
    centre of mass to the mesh vertices; ``convex_hull_ratio`` is volume / convex
    hull volume; ``n_tips`` counts distal branches (> 1: branched).

    Attributes
    ----------
    length_nm : float
        Centreline length from the base plane to the tip (nm).
    neck_min_diameter_nm, neck_mean_diameter_nm : float
        Narrowest and mean equivalent diameter of the sections between the base and the
        head (nm; NaN without a neck section).
    neck_length_nm : float
        From the base to the head-neck boundary along the centreline (nm; NaN when
        there is no boundary).
    head_diameter_nm : float
        Largest equivalent diameter in the distal half (nm).
    head_volume_um3 : float
        Volume distal of the head-neck boundary (um^3; the whole volume without one).
    volume_um3, surface_area_um2 : float
        Volume and area of the part distal of the base section (um^3, um^2; NaN
        volume for a mesh that is not watertight); both also hold the prism of the
        base section over the skipped cap or gap of a given base plane (its side as a
        circle's perimeter of the base area).
    convex_hull_ratio, head_neck_ratio, open_angle_deg, cvd : float
        Shape indices (see above); ``head_neck_ratio`` = head / neck minimum diameter.
    is_watertight : bool
        The mesh was closed (volumes are meaningful).
    n_tips : int
        Distal branches of the centreline graph (> 1: branched).
    base_x_nm, base_y_nm, base_z_nm : float
        Base point (nm), from :func:`base_plane`.
    base_area_nm2 : float
        Area of the base section (nm^2).
    cap_length_nm : float
        Axial extent of the closing cap left out (nm; 0 when none).
    profile : dict
        The section profile (``s_nm``, ``diameter_nm``, centreline ``x_nm``, ``y_nm``,
        ``z_nm``, ...), not part of :meth:`to_dict`.
    """

    length_nm: float
    neck_min_diameter_nm: float
    neck_mean_diameter_nm: float
    neck_length_nm: float
    head_diameter_nm: float
    head_volume_um3: float
    volume_um3: float
    surface_area_um2: float
    convex_hull_ratio: float
    head_neck_ratio: float
    open_angle_deg: float
    cvd: float
    is_watertight: bool
    n_tips: int
    base_x_nm: float
    base_y_nm: float
    base_z_nm: float
    base_area_nm2: float
    cap_length_nm: float
    profile: dict = field(repr=False, compare=False, default_factory=dict)

    def to_dict(self) -> dict:
        """The features as a flat dict (without the profile).

        Returns
        -------
        dict
            Field name -> value, JSON-compatible scalars.
        """
        d = asdict(self)
        d.pop("profile")
        return d


FEATURE_NAMES = tuple(k for k in SpineMeasurement.__dataclass_fields__ if k != "profile")


def find_base(mesh, *, base_point_nm=None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Base point and axis of a spine mesh: given point, open boundary loop, or heuristic.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The spine surface (nm), closed or open at its base.
    base_point_nm : (3,) array-like, optional
        The base point if known (then the axis points to the mesh centroid).

    Returns
    -------
    point : (3,) ndarray
        Base point (nm).
    axis : (3,) ndarray or None
        Unit axis into the spine (None when the heuristic cannot tell).
    how : str
        ``"given"``, ``"boundary"`` (centroid of the largest open boundary loop; axis
        into the spine) or ``"heuristic"`` (the narrower end of the mesh's principal
        axis; see docs/morphology.md).
    """
    v = np.asarray(mesh.vertices, float)
    centroid = v.mean(axis=0)
    if base_point_nm is not None:
        b = np.asarray(base_point_nm, float).reshape(3)
        axis = centroid - b
        return b, axis / np.linalg.norm(axis), "given"
    if not mesh.is_watertight:
        outline = mesh.outline()
        if outline is not None and len(outline.entities):
            loops = [outline.vertices[e.points] for e in outline.entities]
            loop = max(loops, key=len)
            b = loop.mean(axis=0)
            axis = centroid - b
            return b, axis / np.linalg.norm(axis), "boundary"
    c = v - centroid
    _, _, vt = np.linalg.svd(c[:: max(len(c) // 5000, 1)], full_matrices=False)
    main = vt[0]
    proj = c @ main
    span = proj.max() - proj.min()
    ends = []
    for sign in (1, -1):
        sel = (proj >= proj.max() - 0.15 * span) if sign > 0 else (proj <= proj.min() + 0.15 * span)
        radial = np.linalg.norm(c[sel] - np.outer(proj[sel], main), axis=1)
        ends.append(np.median(radial))
    sign = 1 if ends[0] < ends[1] else -1
    b = centroid + main * (proj.max() if sign > 0 else proj.min())
    return b, -sign * main, "heuristic"


@dataclass(frozen=True)
class BasePlane:
    """Where a spine starts: its base plane and the closing cap left out of the measurement.

    Attributes
    ----------
    point_nm : (3,) ndarray
        Base point; lengths (``length_nm``, ``neck_length_nm``) run from here.
    normal : (3,) ndarray
        Unit normal of the base plane, into the spine (the spine axis at its base).
    how : str
        ``"given"`` (point and normal given), ``"given point"`` (normal towards the
        mesh centroid, or, when that is > 10 deg off, along the centreline from the
        point, to its point at 20 % of its length or 150 nm), ``"boundary"`` (open
        boundary loop), ``"heuristic"`` (narrower end of the principal axis);
        ``"+cap"`` is appended when a closing cap was found.
    cap_length_nm : float
        Axial extent of the closing cap found at the base, from where the mesh begins to
        the cap's end (0: none).
    skip_nm : float
        Length distal of a given base point that is not spine: a gap before the mesh
        begins and a closing cap distal of the plane; the cross-sections, volume and
        area start there. 0 for a base from the mesh (its point is moved to the end of
        the cap instead).
    base_area_nm2 : float
        Area of the base section: the cross-section perpendicular to ``normal`` where
        the spine proper begins (``skip_nm`` beyond the base point), the largest of
        three sections within ``step_nm`` of it; NaN if none.
    """

    point_nm: np.ndarray
    normal: np.ndarray
    how: str
    cap_length_nm: float
    skip_nm: float
    base_area_nm2: float


#: Length (nm) beyond the first section, within one base radius of the base, that the
#: neck minimum leaves out: the rim of the base, which the envelope rounds (~2 sigma
#: of 3D STORM's axial precision; a filled stubby spine's first sections read 404-483
#: nm over 30 nm, its narrowest section beyond 534). The whole base radius, tried
#: first, also left out necks narrowest near the base: EM-like spines labelled on
#: their own, neck minimum 90th percentile |error| 21.8 -> 25.5 %; MINFLUX-like
#: 16.5 -> 21.7 % (40 spines each, seed 1).
BASE_RIM_NM = 60.0


def _cap_end(h: np.ndarray, d: np.ndarray) -> tuple[float, float] | None:
    """End of a closing cap in an axial diameter profile ``d(h)`` (nm; NaN: no section).

    A cap is a base region where the section shrinks to nothing towards the end. From
    the first section the diameter rises to a plateau ``D`` (the first section not
    exceeded by 3 % within the next quarter of its diameter), within ``D`` (two base
    radii). An elliptic cap ``(d/D)^2 = 1 - ((h_b - h)/c)^2`` (a hemisphere when
    ``c = D/2``) is fitted to the rising sections with ``0.05 < (d/D)^2 < 0.95`` (linear
    least squares in ``sqrt(1 - (d/D)^2)``, at least 3 sections). It is a cap when it
    fits (every residual <= 0.05), is short (``c <= 0.75 D``) and closes where the mesh
    begins (its apex ``h_b - c`` at most ``D/4`` before the first section): a neck that
    merely narrows towards its base, or widens as a cone, is not. Returns ``(h_b, D)``, ``h_b`` at most a quarter diameter beyond the
    plateau's first section, or None (no cap).
    """
    ok = np.flatnonzero(np.isfinite(d) & (d > 0))
    if ok.size < 4:
        return None
    dh = float(np.min(np.diff(h))) if len(h) > 1 else 1.0
    h, d = h[ok], d[ok]
    plateau = None
    for j in range(len(d)):
        ahead = (h > h[j]) & (h <= h[j] + max(0.25 * d[j], 2 * dh))
        if not np.any(ahead) or d[ahead].max() < 1.03 * d[j]:
            plateau = j
            break
    if plateau is None or plateau == 0:
        return None
    near = (h >= h[plateau]) & (h <= h[plateau] + 0.25 * d[plateau])
    dp = float(d[near].max())
    if h[plateau] - h[0] > dp:
        return None
    a = (d[: plateau + 1] / dp) ** 2
    sel = (a > 0.05) & (a < 0.95)
    if np.count_nonzero(sel) < 3:
        return None
    x, y = h[: plateau + 1][sel], np.sqrt(1.0 - a[sel])
    slope, icpt = np.polyfit(x, y, 1)
    if slope >= 0 or np.abs(y - (slope * x + icpt)).max() > 0.05:
        return None   # not cap-shaped (a cone, a neck running into a head)
    hb, c = -icpt / slope, -1.0 / slope
    if c > 0.75 * dp or h[0] - (hb - c) > 0.25 * dp:
        return None
    return float(np.clip(hb, h[0], h[plateau] + 0.25 * d[plateau])), dp


def base_plane(mesh, *, base_point_nm=None, base_normal=None, step_nm: float = 10.0,
               detect_cap: bool = True) -> BasePlane:
    """The base plane of a spine mesh and the closing cap at its base.

    The base point and normal are given (e.g. from the envelope stage: the shaft surface
    for a spine on a shaft, the plane through the base-most localizations for a spine
    labelled on its own) or come from the mesh (:func:`find_base`). A spine cut from its
    dendrite and meshed closed has a *cap* at the base, where its sections shrink to
    nothing: sections perpendicular to the normal every ``step_nm / 2`` from the base
    (when the first lies within min(half its diameter, 100 nm) of the plane; within 800 nm; the scan stops, in blocks of 64 sections, once it reaches 1.25x the
    largest diameter beyond the first section without growth over the last quarter
    diameter) find it (:func:`_cap_end`). A cap distal of a given base plane is
    skipped (``skip_nm``: lengths still run from the given plane); with a base from the
    mesh, the base point moves to the cap's end (where the cut was).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The spine surface (nm).
    base_point_nm : (3,) array-like, optional
        Where the spine meets the shaft (nm).
    base_normal : (3,) array-like, optional
        Normal of the base plane (turned to point into the spine); needs
        ``base_point_nm``.
    step_nm : float
        Section spacing of the centreline (the cap scan uses half of it).
    detect_cap : bool
        Look for a closing cap at the base (default True).

    Returns
    -------
    BasePlane

    Raises
    ------
    ParameterError
        ``base_normal`` without ``base_point_nm``, or not 3 finite numbers.

    Examples
    --------
    >>> import trimesh
    >>> tube = trimesh.creation.capsule(height=400.0, radius=50.0, count=[64, 64])
    >>> bp = base_plane(tube, step_nm=10.0)          # hemispherical caps at both ends
    >>> round(bp.cap_length_nm / 50.0, 1), round(2 * (bp.base_area_nm2 / 3.1416) ** 0.5 / 100.0, 2)
    (1.0, 1.0)
    """
    if base_normal is not None and base_point_nm is None:
        raise ParameterError("base_normal needs base_point_nm (a plane needs a point)")
    b, axis, how = find_base(mesh, base_point_nm=base_point_nm)
    v = np.asarray(mesh.vertices, float)
    if base_normal is not None:
        n = np.asarray(base_normal, float).reshape(-1)
        if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) == 0:
            raise ParameterError(f"base_normal must be 3 finite numbers, not all 0; got {base_normal!r}")
        n = n / np.linalg.norm(n)
        # into the spine: towards the bulk of the mesh (a normal given outward is turned)
        axis = n if np.mean((v - b) @ n) >= 0 else -n
        how = "given"
    elif how == "given":
        # the direction to the centroid is off for a bent spine: when the centreline
        # (geodesic bins) leaves the base point more than 10 deg away from it, its
        # direction a little way in is the normal
        how = "given point"
        pts, sl = centreline(mesh, b, None, step_nm=step_nm)
        if len(pts) > 2 and sl[-1] > 0:
            k = min(int(np.searchsorted(sl, min(0.2 * sl[-1], 150.0))), len(pts) - 1)
            t = pts[max(k, 1)] - b
            if np.linalg.norm(t) > 0 and t @ axis < np.cos(np.radians(10.0)) * np.linalg.norm(t):
                axis = t / np.linalg.norm(t)
    hv = (v - b) @ axis
    given = how.startswith("given")
    h_lo = 0.0 if given else float(min(hv.min(), 0.0))
    span = float(hv.max()) - h_lo
    arrs = _mesh_arrays(mesh)
    cap, skip, hb = 0.0, 0.0, h_lo
    if detect_cap and span > 0:
        reach = min(0.6 * span, 800.0)
        dh = max(step_nm / 2, reach / 160)
        h_all = h_lo + dh * (np.arange(int(reach / dh)) + 0.5)
        d_all = np.full(len(h_all), np.nan)
        n = 0
        while n < len(h_all):
            # 64 planes at a time (one kernel block); stop once the profile reaches 1.25x
            # its largest diameter beyond its first section with no growth in the last
            # quarter diameter: a cap (<= 1 diameter) and its plateau test are then in
            hb_ = h_all[n:n + 64]
            secs = _cross_sections(arrs, b + hb_[:, None] * axis, np.repeat(axis[None], len(hb_), 0),
                                   feret=False)
            d_all[n:n + 64] = [np.nan if sc is None else sc["diameter_nm"] for sc in secs]
            n += len(hb_)
            ok = np.flatnonzero(np.isfinite(d_all[:n]))
            if ok.size:
                dmax = float(np.nanmax(d_all[:n]))
                last = ok[h_all[ok] >= h_all[n - 1] - 0.25 * dmax]
                if (h_all[n - 1] - h_all[ok[0]] >= 1.25 * dmax + 2 * dh and last.size
                        and d_all[last].max() < 1.03 * d_all[last[0]]):
                    break
        h, d = h_all[:n], d_all[:n]
        valid = np.flatnonzero(np.isfinite(d))
        # The straight scan must enter the spine near the plane (the mesh may begin a
        # little distal of a given base plane: the base-most localizations lie outside
        # the envelope); when it does not (a bent neck leaves the axis), no cap is sought.
        enters = valid.size >= 4 and h[valid[0]] - h_lo <= min(0.5 * d[valid[0]], 100.0)
        if enters:
            found = _cap_end(h, d)
            if given:
                # no spine before the mesh begins
                hb = max(hb, float(h[valid[0]]) - dh / 2)
            if found is not None:
                cap = found[0] - (float(h[valid[0]]) - dh / 2)
                hb = found[0]
                how += "+cap"
    if given:
        skip = max(hb, 0.0)
    else:
        b = b + hb * axis
    # The base section: the largest of three within step_nm distal of the plane (a flat
    # closing face lies in the plane; a mesh rounds the rim of a cut over a few nm).
    hs = skip + np.array([min(1.0, step_nm / 8), step_nm / 2, step_nm])
    secs = _cross_sections(arrs, b + hs[:, None] * axis, np.repeat(axis[None], 3, 0), feret=False)
    areas = [sc["area_nm2"] for sc in secs if sc is not None]
    area = float(max(areas)) if areas else float("nan")
    return BasePlane(point_nm=b, normal=axis, how=how, cap_length_nm=float(cap), skip_nm=float(skip),
                     base_area_nm2=area)


def _n_tips(mesh, geodesic: np.ndarray, step_nm: float, min_branch_nm: float,
            height: np.ndarray | None = None, min_height_fraction: float = 0.5) -> int:
    """Number of distal tips (branches) of a spine mesh.

    For geodesic levels from the base, the vertices beyond the level split into
    connected components (over the mesh edges). A component is a branch when it reaches
    ``min_branch_nm`` beyond the level (geodesically) AND it is distal: it reaches an
    axial ``height`` (distance from the base along the spine axis) of at least
    ``min_height_fraction`` x the spine's largest height. The second condition rejects
    side lobes near the base of wide, short spines. Branches must also end in distinct
    tips: the tip (farthest vertex) of each counted branch lies >= ``min_branch_nm``
    from the tips of the others, so two sheets of one noisy envelope top (reconstructed
    stubby spines) are one tip. The count is the largest number of branches at any level.
    """
    e = np.asarray(mesh.edges_unique, dtype=np.int64)
    v = np.asarray(mesh.vertices, float)
    g = np.asarray(geodesic, float)
    gmax = g.max()
    levels = np.arange(step_nm, gmax - min_branch_nm, max(step_nm * 4, min_branch_nm / 4))
    if levels.size == 0:
        return 1
    h = np.zeros(len(g)) if height is None else np.asarray(height, float)
    hmin = -np.inf if height is None else min_height_fraction * float(np.max(height))
    # Vertices by decreasing geodesic distance; an edge joins the superlevel sets once
    # both its ends have (at the smaller of their distances).
    vorder = np.argsort(-g, kind="stable")
    elevel = np.minimum(g[e[:, 0]], g[e[:, 1]])
    eorder = np.argsort(-elevel, kind="stable")
    return int(_tips_kernel()(g, h, v, e[eorder], elevel[eorder], vorder, levels[::-1].copy(),
                              float(min_branch_nm), float(hmin)))


def _count_tips(g, h, v, edges, elevel, vorder, levels, min_branch, hmin):
    """Numba kernel of :func:`_n_tips`: union-find over the superlevel sets g > level.

    ``levels`` decrease; vertices (``vorder``) and edges (sorted by decreasing
    ``elevel``) are added while above the level. At each level the components reaching
    ``min_branch`` beyond it and a height >= ``hmin`` are the branches; in order of their
    smallest vertex index (as scipy labels components), the tip (first vertex of largest
    g) of each is kept when >= ``min_branch`` from the tips kept before.
    """
    n = g.shape[0]
    parent = np.arange(n)
    gmax = np.full(n, -np.inf)  # per root: largest g, its (first) vertex, largest height
    arg = np.arange(n)
    hmax = np.full(n, -np.inf)
    size = np.ones(n, dtype=np.int64)
    added = np.zeros(n, dtype=np.bool_)
    seen = np.full(n, -1)
    roots = np.empty(n, dtype=np.int64)
    tips = np.empty((n, 3))
    best = 1
    iv = 0
    ie = 0
    for li in range(levels.shape[0]):
        level = levels[li]
        while iv < n and g[vorder[iv]] > level:
            a = vorder[iv]
            added[a] = True
            gmax[a] = g[a]
            hmax[a] = h[a]
            iv += 1
        while ie < edges.shape[0] and elevel[ie] > level:
            a = edges[ie, 0]
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            b = edges[ie, 1]
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            ie += 1
            if a == b:
                continue
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a  # union by size
            size[a] += size[b]
            if gmax[b] > gmax[a] or (gmax[b] == gmax[a] and arg[b] < arg[a]):
                gmax[a] = gmax[b]
                arg[a] = arg[b]
            hmax[a] = max(hmax[a], hmax[b])
        # Branch components, in order of their smallest vertex (first met in this scan).
        nb = 0
        for a in range(n):
            if not added[a]:
                continue
            r = a
            while parent[r] != r:
                parent[r] = parent[parent[r]]
                r = parent[r]
            if seen[r] == li:
                continue
            seen[r] = li
            if gmax[r] > level + min_branch and hmax[r] >= hmin:
                roots[nb] = r
                nb += 1
        if nb < 2:
            continue
        nt = 0
        for q in range(nb):
            t = arg[roots[q]]
            ok = True
            for p in range(nt):
                dx = v[t, 0] - tips[p, 0]
                dy = v[t, 1] - tips[p, 1]
                dz = v[t, 2] - tips[p, 2]
                if np.sqrt(dx * dx + dy * dy + dz * dz) < min_branch:
                    ok = False
                    break
            if ok:
                tips[nt, 0] = v[t, 0]
                tips[nt, 1] = v[t, 1]
                tips[nt, 2] = v[t, 2]
                nt += 1
        best = max(best, nt)
    return best


_TIPS = None


def _tips_kernel():
    global _TIPS
    if _TIPS is None:
        from numba import njit

        _TIPS = njit(cache=True, nogil=True)(_count_tips)
    return _TIPS


def head_neck_indices(s: np.ndarray, d: np.ndarray, length: float,
                      threshold: float, neck_from_nm: float = -np.inf) -> tuple[int, int, int | None]:
    """Sections of the head, the neck minimum and the head-neck boundary of a profile.

    The head is the widest section of the distal half (``s >= length / 2``: a flared base
    is not a head), the neck minimum the narrowest section from ``neck_from_nm`` up to
    the head (the head itself when there is none in between), the boundary the first
    section from the neck minimum on wider than ``threshold`` x that minimum (None when
    there is none).
    """
    distal = np.flatnonzero(s >= length / 2)
    half = int(distal[0]) if distal.size else 0
    i_head = half + int(np.argmax(d[half:]))
    first = min(int(np.searchsorted(s, neck_from_nm)), i_head)
    i_neck = first + int(np.argmin(d[first: i_head + 1]))
    above = np.flatnonzero(d[i_neck: i_head + 1] > threshold * d[i_neck])
    return i_head, i_neck, (i_neck + int(above[0]) if above.size else None)


def measure_spine(mesh, *, base_point_nm=None, base_normal=None, step_nm: float = 10.0,
                  smooth_nm: float = 30.0, head_neck_threshold: float = 1.2,
                  min_branch_nm: float = 200.0, detect_cap: bool = True) -> SpineMeasurement:
    """Measure one closed spine mesh (coordinates in nm).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The spine surface, in nm. Watertight meshes give volumes; an open mesh (e.g.
        cut at the base) is measured with its base from the open boundary.
    base_point_nm : (3,) array-like, optional
        Where the spine meets the shaft. Default: the open boundary loop if any, else
        the narrower end of the principal axis (a heuristic; give the base if known).
    base_normal : (3,) array-like, optional
        Normal of the base plane (the spine axis at its base; turned to point into the
        spine); needs ``base_point_nm``. Default: towards the mesh centroid, or along the
        centreline from the base point for a bent spine. See :func:`base_plane`.
    step_nm : float
        Spacing of the cross-sections along the centreline.
    head_neck_threshold : float
        Head-neck boundary: first section distal of the neck minimum wider than this
        factor times the neck minimum.
    smooth_nm : float
        Length (nm) over which the section profile is smoothed before the head, the
        neck minimum and the head-neck boundary are located.
    min_branch_nm : float
        A distal branch of the centreline counts as a tip (``n_tips``) when it is at
        least this long (nm).
    detect_cap : bool
        Find and leave out a cap closing the spine's cut base (:func:`base_plane`).

    Returns
    -------
    SpineMeasurement

    Raises
    ------
    ParameterError
        Non-positive ``step_nm``, an empty mesh, or a bad base point / normal.

    Examples
    --------
    >>> import trimesh
    >>> cyl = trimesh.creation.cylinder(radius=50.0, height=400.0, sections=64)
    >>> m = measure_spine(cyl, base_point_nm=[0, 0, -200])
    >>> round(m.neck_min_diameter_nm), round(m.length_nm)
    (100, 400)
    """
    from .._validate import positive

    step_nm = positive(step_nm, "step_nm", unit="nm")
    if len(mesh.faces) < 4:
        raise ParameterError(f"the spine mesh has {len(mesh.faces)} faces; need a closed surface")
    bp = base_plane(mesh, base_point_nm=base_point_nm, base_normal=base_normal, step_nm=step_nm,
                    detect_cap=detect_cap)
    base, axis = bp.point_nm, bp.normal
    geo = geodesic_from_base(mesh, base, axis)
    prof = section_profile(mesh, base, axis, step_nm=step_nm, smooth_nm=smooth_nm, geodesic=geo,
                           skip_nm=bp.skip_nm, distal_only=True, near_base="parallel")
    s, d = prof["s_nm"], prof["diameter_nm"]
    length = float(prof["length_nm"])
    if d.size == 0:
        raise ParameterError("no cross-section of the mesh encloses its centreline; "
                             "is the mesh closed and is the base right?")
    # the first BASE_RIM_NM of sections beyond the base section serve the head (a
    # stubby spine wider than long has it there), not the neck minimum: the envelope
    # rounds the rim of the base there (a filled stubby spine's base read 404 nm for
    # 534 and made it a mushroom)
    rim_end = min(float(prof["near_base_nm"]), float(s[0]) + BASE_RIM_NM)
    i_head, i_neck, boundary = head_neck_indices(s, d, length, head_neck_threshold,
                                                 neck_from_nm=rim_end)
    head_d = float(d[i_head])
    neck_min = float(d[i_neck])
    if boundary is None or boundary == 0:
        neck_length = 0.0
        neck_mean = neck_min
    else:
        # Interpolate where the diameter crosses the threshold between two sections.
        thr = head_neck_threshold * neck_min
        d0, d1 = d[boundary - 1], d[boundary]
        frac = (thr - d0) / (d1 - d0) if d1 > d0 else 1.0
        neck_length = float(s[boundary - 1] + np.clip(frac, 0, 1) * (s[boundary] - s[boundary - 1]))
        neck_mean = float(np.mean(d[:boundary]))
    verts = np.asarray(mesh.vertices, float)
    faces = np.asarray(mesh.faces)
    watertight = bool(mesh.is_watertight)
    # The spine proper: the surface distal of the base section (no cap, no shaft, not
    # the flat face closing a cut), closed by that section for the volume.
    origin = base + bp.skip_nm * axis
    edges = np.asarray(mesh.edges_unique)
    h_edge = float(np.median(np.linalg.norm(verts[edges[:, 0]] - verts[edges[:, 1]], axis=1))) \
        if len(edges) else 1.0
    tris = _clip_triangles(verts, faces, origin, axis, in_plane_nm=0.25 * h_edge)
    if len(tris) == 0:
        raise ParameterError("no part of the spine mesh lies distal of its base plane; "
                             "is the base (point and normal) right?")
    area = float(0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]),
                                      axis=1).sum())
    spine_verts = verts[(verts - origin) @ axis >= -0.25 * h_edge]
    if len(spine_verts) < 4:
        spine_verts = tris.reshape(-1, 3) + origin
    if watertight:
        det = np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2]))
        total = float(det.sum())
        vol = total / 6.0
        centroid = origin + ((det[:, None] * tris.sum(axis=1)).sum(axis=0) / (4.0 * total)
                             if total != 0 else tris.reshape(-1, 3).mean(axis=0))
    else:
        vol, centroid = float("nan"), spine_verts.mean(axis=0)
    head_vol = vol
    if watertight and boundary:
        head_vol = _distal_volume(mesh, prof, boundary)
    hull_vol = _hull_volume(np.vstack([spine_verts, tris.reshape(-1, 3) + origin]))
    distal_vol = vol
    if np.isfinite(vol) and bp.skip_nm > 0 and np.isfinite(bp.base_area_nm2):
        # the spine begins at the given base plane: between it and the base section (a
        # closing cap, or a gap before the mesh begins) the spine is taken as the prism
        # of the base section, as a cut-flat spine is (left out, the slab was lost:
        # a 94 nm rounded rim called a cap took 25 % of a simulated stubby spine)
        vol = vol + bp.skip_nm * bp.base_area_nm2
        # and its side as membrane (perimeter of a circle of the base area: the solid
        # measured stays a closed one, surface area + base area >= the isoperimetric bound)
        area = area + bp.skip_nm * 2.0 * np.sqrt(np.pi * bp.base_area_nm2)
    dist = np.linalg.norm(spine_verts - centroid, axis=1)
    cvd = float(dist.std() / dist.mean()) if dist.mean() > 0 else float("nan")
    tip = verts[int(np.argmax(geo))]
    open_angle = _angle_deg(centroid - base, tip - base)
    axis_u = axis if axis is not None else (centroid - base)
    axis_u = axis_u / (np.linalg.norm(axis_u) or 1.0)
    tips = _n_tips(mesh, geo, step_nm, min_branch_nm, height=(verts - base) @ axis_u)
    return SpineMeasurement(
        length_nm=length, neck_min_diameter_nm=neck_min, neck_mean_diameter_nm=neck_mean,
        neck_length_nm=neck_length, head_diameter_nm=head_d,
        head_volume_um3=head_vol * 1e-9, volume_um3=vol * 1e-9,
        surface_area_um2=area * 1e-6,
        convex_hull_ratio=(distal_vol / hull_vol if hull_vol and np.isfinite(distal_vol)
                           else float("nan")),
        head_neck_ratio=head_d / neck_min if neck_min > 0 else float("inf"),
        open_angle_deg=open_angle, cvd=cvd, is_watertight=watertight,
        n_tips=tips, base_x_nm=float(base[0]), base_y_nm=float(base[1]), base_z_nm=float(base[2]),
        base_area_nm2=bp.base_area_nm2, cap_length_nm=bp.cap_length_nm, profile=prof)


def measure_spines(meshes, *, base_points_nm=None, base_normals=None, workers: int = 1,
                   progress: bool = False, **options) -> list:
    """Measure many spine meshes, optionally in worker processes.

    Parameters
    ----------
    meshes : sequence of trimesh.Trimesh
        Spine surfaces in nm.
    base_points_nm : (N, 3) array-like or sequence of (3,) or None, optional
        One base point per mesh (an entry may be ``None``: base from the mesh, as in
        :func:`measure_spine`); default: every base from its mesh.
    base_normals : (N, 3) array-like or sequence of (3,) or None, optional
        One base-plane normal per mesh (an entry may be ``None``); needs the base points.
    workers : int
        Processes: 1 measures here (default), -1 uses every core, n uses n (at most one
        per 4 meshes; a pool costs about a second to start). Each mesh is measured on
        its own arrays, so results do not depend on the worker count.
    progress : bool
        Show a progress bar.
    **options
        Passed to :func:`measure_spine` (``step_nm``, ``smooth_nm``,
        ``head_neck_threshold``, ``min_branch_nm``, ``detect_cap``).

    Returns
    -------
    list
        One item per mesh, in order: its :class:`SpineMeasurement`, or, for a mesh that
        cannot be measured, the :class:`~smlmspine.errors.ParameterError` that
        :func:`measure_spine` raised (so one bad mesh does not stop the batch).

    Examples
    --------
    >>> import trimesh
    >>> cyls = [trimesh.creation.cylinder(radius=r, height=400.0, sections=64) for r in (40.0, 60.0)]
    >>> out = measure_spines(cyls, base_points_nm=[[0, 0, -200]] * 2)
    >>> [round(m.neck_min_diameter_nm) for m in out]
    [80, 120]
    """
    meshes = list(meshes)
    n = len(meshes)
    if base_points_nm is None:
        bases = [None] * n
    else:
        bases = [None if b is None else np.asarray(b, float).reshape(3) for b in base_points_nm]
        if len(bases) != n:
            raise ParameterError(f"base_points_nm has {len(bases)} entries for {n} meshes; "
                                 "give one base point (or None) per mesh")
    normals = [None] * n
    if base_normals is not None:
        normals = [None if q is None else np.asarray(q, float).reshape(3) for q in base_normals]
        if len(normals) != n:
            raise ParameterError(f"base_normals has {len(normals)} entries for {n} meshes; "
                                 "give one base normal (or None) per mesh")
    unknown = set(options) - {"step_nm", "smooth_nm", "head_neck_threshold", "min_branch_nm",
                              "detect_cap"}
    if unknown:
        raise ParameterError(f"unknown measure_spine option(s) {sorted(unknown)}; expected "
                             "step_nm, smooth_nm, head_neck_threshold, min_branch_nm, detect_cap")
    from .._workers import n_workers as _n_workers

    n_workers = _n_workers(workers, n, jobs_per_worker=4)
    if n_workers > 1:
        # One process per core: Qhull, Dijkstra and the many small array operations hold
        # the GIL. Meshes travel as arrays (vertices, faces, face normals).
        jobs = [(np.asarray(m.vertices, float), np.asarray(m.faces), np.asarray(m.face_normals),
                 b, q, options) for m, b, q in zip(meshes, bases, normals)]
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        try:
            import os

            from .._parentwatch import POLL_S, exit_with

            # (one BLAS thread per worker: the workers already fill the cores)
            from .._workers import abandon

            with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=exit_with,
                                     initargs=(os.getpid(), POLL_S, 1)) as ex:
                try:
                    it = ex.map(_measure_job, jobs, chunksize=max(1, n // (4 * n_workers)))
                    return list(_progress(it, progress, n))
                except KeyboardInterrupt:   # Ctrl-C, SIGTERM: not every queued spine first
                    abandon(ex)
                    raise
        except (BrokenProcessPool, OSError) as exc:
            # e.g. a calling script without an ``if __name__ == "__main__":`` guard
            import warnings

            warnings.warn(f"measure_spines: process pool failed ({exc!r}); measuring in this "
                          "process (workers=1 avoids the pool)", RuntimeWarning, stacklevel=2)
    return list(_progress((_measure_one(m, b, q, options) for m, b, q in zip(meshes, bases, normals)),
                          progress, n))


def _measure_one(mesh, base, normal, options):
    try:
        return measure_spine(mesh, base_point_nm=base, base_normal=normal, **options)
    except ParameterError as exc:
        return exc


def _measure_job(job):
    import trimesh

    v, f, fn, base, normal, options = job
    return _measure_one(trimesh.Trimesh(v, f, face_normals=fn, process=False), base, normal, options)


def _progress(items, progress: bool, total: int):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="measuring spines", unit="spine")


def _volume_centroid(v: np.ndarray, faces: np.ndarray) -> tuple[float, np.ndarray]:
    """Signed volume (nm^3) and centre of mass (3,) of a closed mesh (uniform density).

    Sums the tetrahedra from a reference point (the vertex mean, which keeps the
    products small) to every face, as trimesh's ``volume`` and ``center_mass`` do.
    """
    ref = v.mean(axis=0)
    a, b, c = v[faces[:, 0]] - ref, v[faces[:, 1]] - ref, v[faces[:, 2]] - ref
    det = np.einsum("ij,ij->i", a, np.cross(b, c))  # 6 x signed tetrahedron volumes
    total = det.sum()
    if total == 0:
        return 0.0, v.mean(axis=0)
    centre = ref + (det[:, None] * (a + b + c)).sum(axis=0) / (4.0 * total)
    return float(total / 6.0), centre


def _hull_volume(points: np.ndarray) -> float:
    """Volume of the convex hull of (N, 3) points (Qhull); NaN for a flat or degenerate set.

    Qhull runs first without pre-merging of facets (``Q0``, about twice as fast on
    rounded spine meshes, same volume to rounding); when that stops on a precision
    error (nearly coplanar points), it runs again with its default merging.
    """
    from scipy.spatial import ConvexHull, QhullError

    for options in ("Q0", None):
        try:
            return float(ConvexHull(points, qhull_options=options).volume)
        except (QhullError, ValueError):
            continue
    return float("nan")


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def _distal_volume(mesh, prof: dict, boundary: int) -> float:
    """Volume of the mesh beyond the head-neck boundary plane (capped slice).

    The faces are clipped to the distal side of the plane (:func:`_clip_triangles`). The
    cap lies in the cutting plane, so tetrahedra with their apex on the plane give the
    enclosed volume from the distal surface alone (no cap triangulation).
    """
    p = np.array([prof["x_nm"][boundary], prof["y_nm"][boundary], prof["z_nm"][boundary]])
    lo = max(boundary - 2, 0)
    hi = min(boundary + 2, len(prof["s_nm"]) - 1)
    t = np.array([prof["x_nm"][hi] - prof["x_nm"][lo], prof["y_nm"][hi] - prof["y_nm"][lo],
                  prof["z_nm"][hi] - prof["z_nm"][lo]])
    if np.linalg.norm(t) == 0:
        return float("nan")
    tri = _clip_triangles(np.asarray(mesh.vertices, float), np.asarray(mesh.faces), p,
                          t / np.linalg.norm(t))
    if len(tri) == 0:
        return float("nan")
    return float(abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0))


def _clip_triangles(verts: np.ndarray, faces: np.ndarray, point: np.ndarray, normal: np.ndarray,
                    in_plane_nm: float | None = None) -> np.ndarray:
    """The mesh surface on the distal side of a plane, as triangles (T, 3, 3) relative to
    ``point`` (nm).

    A face cut by the plane keeps its distal triangle or quadrilateral (two triangles),
    in its own winding. With ``in_plane_nm``, faces lying in the plane (every vertex
    within that distance of it, and facing along the normal within 18 deg: the flat
    face closing a cut spine) are left out.
    """
    n = np.asarray(normal, float)
    v = np.asarray(verts, float) - np.asarray(point, float)
    faces = np.asarray(faces)
    d = v @ n
    if in_plane_nm is not None and len(faces):
        a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
        fn = np.cross(b - a, c - a)
        nrm = np.linalg.norm(fn, axis=1)
        flat = (np.abs(d[faces]).max(axis=1) <= in_plane_nm) & \
            (np.abs(fn @ n) >= 0.95 * np.where(nrm > 0, nrm, np.inf))
        faces = faces[~flat]
    side = d[faces] >= 0  # (F, 3)
    npos = side.sum(axis=1)
    tris = [v[faces[npos == 3]]]
    for kind in (1, 2):
        sel = npos == kind
        if not np.any(sel):
            continue
        f, sd = faces[sel], side[sel]
        # Rotate each face so that its odd vertex (the one on its own side) comes first.
        odd = np.argmax(sd if kind == 1 else ~sd, axis=1)
        rows = np.arange(len(f))[:, None]
        f = f[rows, (odd[:, None] + np.arange(3)) % 3]
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        da, db, dc = d[f[:, 0]], d[f[:, 1]], d[f[:, 2]]
        ab = a + (da / (da - db))[:, None] * (b - a)  # the cut points on edges ab and ca
        ca = c + (dc / (dc - da))[:, None] * (a - c)
        if kind == 1:  # a distal: triangle (a, ab, ca)
            tris.append(np.stack([a, ab, ca], axis=1))
        else:  # b and c distal: quadrilateral (ab, b, c, ca)
            tris.append(np.stack([ab, b, c], axis=1))
            tris.append(np.stack([ab, c, ca], axis=1))
    return np.concatenate(tris).reshape(-1, 3, 3)
