"""Spine measurements from a closed mesh: neck, head, length, volumes, shape indices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ParameterError
from ._sections import geodesic_from_base, section_profile

__all__ = ["SpineMeasurement", "measure_spine", "find_base", "FEATURE_NAMES"]


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
    ``open_angle_deg`` is the angle at the base between the directions to the centre
    of mass and to the tip (0 for a straight spine, growing with bending);
    ``cvd`` is the coefficient of variation (std/mean) of the distances from the
    centre of mass to the mesh vertices; ``convex_hull_ratio`` is volume / convex
    hull volume; ``n_tips`` counts distal branches (> 1: branched).
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
    profile: dict = field(repr=False, compare=False, default_factory=dict)

    def to_dict(self) -> dict:
        """The features as a flat dict (without the profile)."""
        d = asdict(self)
        d.pop("profile")
        return d


FEATURE_NAMES = tuple(k for k in SpineMeasurement.__dataclass_fields__ if k != "profile")


def find_base(mesh, *, base_point_nm=None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Base point and axis of a spine mesh: given point, open boundary loop, or heuristic.

    Returns ``(point, axis or None, how)`` where ``how`` is ``"given"``,
    ``"boundary"`` (centroid of the largest open boundary loop; axis into the spine)
    or ``"heuristic"`` (the narrower end of the mesh's principal axis; see docs).
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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.asarray(mesh.edges_unique)
    v = np.asarray(mesh.vertices, float)
    best = 1
    gmax = geodesic.max()
    hmin = -np.inf if height is None else min_height_fraction * float(np.max(height))
    for level in np.arange(step_nm, gmax - min_branch_nm, max(step_nm * 4, min_branch_nm / 4)):
        keep = geodesic > level
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            break
        remap = -np.ones(len(geodesic), int)
        remap[idx] = np.arange(idx.size)
        ee = e[keep[e[:, 0]] & keep[e[:, 1]]]
        n, lab = connected_components(coo_matrix((np.ones(len(ee)), (remap[ee[:, 0]], remap[ee[:, 1]])),
                                                 shape=(idx.size, idx.size)), directed=False)
        # Count only components that reach min_branch_nm beyond the level and are distal.
        far = np.zeros(n, bool)
        np.maximum.at(far, lab, geodesic[idx] > level + min_branch_nm)
        if height is not None:
            distal = np.zeros(n, bool)
            np.maximum.at(distal, lab, height[idx] >= hmin)
            far &= distal
        if far.sum() < 2:
            continue
        # Distinct branches have tips >= min_branch_nm apart (not two sheets of one top).
        tips = []
        for c in np.flatnonzero(far):
            members = idx[lab == c]
            tip = v[members[np.argmax(geodesic[members])]]
            if all(np.linalg.norm(tip - t) >= min_branch_nm for t in tips):
                tips.append(tip)
        best = max(best, len(tips))
    return best


def measure_spine(mesh, *, base_point_nm=None, step_nm: float = 10.0, smooth_nm: float = 30.0,
                  head_neck_threshold: float = 1.2, min_branch_nm: float = 200.0) -> SpineMeasurement:
    """Measure one closed spine mesh (coordinates in nm).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The spine surface, in nm. Watertight meshes give volumes; an open mesh (e.g.
        cut at the base) is measured with its base from the open boundary.
    base_point_nm : (3,) array-like, optional
        Where the spine meets the shaft. Default: the open boundary loop if any, else
        the narrower end of the principal axis (a heuristic; give the base if known).
    step_nm : float
        Spacing of the cross-sections along the centreline.
    head_neck_threshold : float
        Head-neck boundary: first section distal of the neck minimum wider than this
        factor times the neck minimum.

    Examples
    --------
    >>> import trimesh
    >>> cyl = trimesh.creation.cylinder(radius=50.0, height=400.0, sections=64)
    >>> m = measure_spine(cyl, base_point_nm=[0, 0, -200])
    >>> round(m.neck_min_diameter_nm), round(m.length_nm)
    (100, 400)
    """
    if step_nm <= 0:
        raise ParameterError(f"step_nm must be > 0, got {step_nm}")
    if len(mesh.faces) < 4:
        raise ParameterError(f"the spine mesh has {len(mesh.faces)} faces; need a closed surface")
    base, axis, _ = find_base(mesh, base_point_nm=base_point_nm)
    geo = geodesic_from_base(mesh, base, axis)
    prof = section_profile(mesh, base, axis, step_nm=step_nm, smooth_nm=smooth_nm, geodesic=geo)
    s, d = prof["s_nm"], prof["diameter_nm"]
    length = float(prof["length_nm"])
    if d.size == 0:
        raise ParameterError("no cross-section of the mesh encloses its centreline; "
                             "is the mesh closed and is the base right?")
    # The head is the widest section of the distal half: a flared base is not a head.
    distal = np.flatnonzero(s >= length / 2)
    half = int(distal[0]) if distal.size else 0
    i_head = half + int(np.argmax(d[half:]))
    head_d = float(d[i_head])
    i_neck = int(np.argmin(d[: i_head + 1]))
    neck_min = float(d[i_neck])
    boundary = None
    for k in range(i_neck, i_head + 1):
        if d[k] > head_neck_threshold * neck_min:
            boundary = k
            break
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
    vol = float(mesh.volume) if mesh.is_watertight else float("nan")
    head_vol = vol
    if mesh.is_watertight and boundary:
        head_vol = _distal_volume(mesh, prof, boundary)
    try:
        hull_vol = float(mesh.convex_hull.volume)
    except Exception:  # degenerate hull
        hull_vol = float("nan")
    centroid = np.asarray(mesh.center_mass if mesh.is_watertight else mesh.vertices.mean(axis=0))
    dist = np.linalg.norm(np.asarray(mesh.vertices) - centroid, axis=1)
    cvd = float(dist.std() / dist.mean()) if dist.mean() > 0 else float("nan")
    tip = np.asarray(mesh.vertices)[int(np.argmax(geo))]
    open_angle = _angle_deg(centroid - base, tip - base)
    axis_u = axis if axis is not None else (centroid - base)
    axis_u = axis_u / (np.linalg.norm(axis_u) or 1.0)
    tips = _n_tips(mesh, geo, step_nm, min_branch_nm, height=(np.asarray(mesh.vertices) - base) @ axis_u)
    return SpineMeasurement(
        length_nm=length, neck_min_diameter_nm=neck_min, neck_mean_diameter_nm=neck_mean,
        neck_length_nm=neck_length, head_diameter_nm=head_d,
        head_volume_um3=head_vol * 1e-9, volume_um3=vol * 1e-9,
        surface_area_um2=float(mesh.area) * 1e-6,
        convex_hull_ratio=vol / hull_vol if hull_vol and np.isfinite(vol) else float("nan"),
        head_neck_ratio=head_d / neck_min if neck_min > 0 else float("inf"),
        open_angle_deg=open_angle, cvd=cvd, is_watertight=bool(mesh.is_watertight),
        n_tips=tips, base_x_nm=float(base[0]), base_y_nm=float(base[1]), base_z_nm=float(base[2]),
        profile=prof)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def _distal_volume(mesh, prof: dict, boundary: int) -> float:
    """Volume of the mesh beyond the head-neck boundary plane (capped slice)."""
    import trimesh

    p = np.array([prof["x_nm"][boundary], prof["y_nm"][boundary], prof["z_nm"][boundary]])
    lo = max(boundary - 2, 0)
    hi = min(boundary + 2, len(prof["s_nm"]) - 1)
    t = np.array([prof["x_nm"][hi] - prof["x_nm"][lo], prof["y_nm"][hi] - prof["y_nm"][lo],
                  prof["z_nm"][hi] - prof["z_nm"][lo]])
    if np.linalg.norm(t) == 0:
        return float("nan")
    n = t / np.linalg.norm(t)
    try:
        part = trimesh.intersections.slice_mesh_plane(mesh, plane_normal=n, plane_origin=p, cap=False)
    except ValueError:
        return float("nan")
    if part is None or len(part.faces) == 0:
        return float("nan")
    # The cap lies in the cutting plane, so tetrahedra with their apex on the plane
    # give the enclosed volume from the distal surface alone (no cap triangulation).
    tri = np.asarray(part.triangles) - p
    return float(abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0))
