"""Spine measurements from a closed mesh: neck, head, length, volumes, shape indices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ParameterError
from ._sections import geodesic_from_base, section_profile

__all__ = ["SpineMeasurement", "measure_spine", "measure_spines", "find_base", "FEATURE_NAMES"]


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
                      threshold: float) -> tuple[int, int, int | None]:
    """Sections of the head, the neck minimum and the head-neck boundary of a profile.

    The head is the widest section of the distal half (``s >= length / 2``: a flared base
    is not a head), the neck minimum the narrowest section up to the head, the boundary
    the first section from the neck minimum on wider than ``threshold`` x that minimum
    (None when there is none).
    """
    distal = np.flatnonzero(s >= length / 2)
    half = int(distal[0]) if distal.size else 0
    i_head = half + int(np.argmax(d[half:]))
    i_neck = int(np.argmin(d[: i_head + 1]))
    above = np.flatnonzero(d[i_neck: i_head + 1] > threshold * d[i_neck])
    return i_head, i_neck, (i_neck + int(above[0]) if above.size else None)


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
    from .._validate import positive

    step_nm = positive(step_nm, "step_nm", unit="nm")
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
    i_head, i_neck, boundary = head_neck_indices(s, d, length, head_neck_threshold)
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
    watertight = bool(mesh.is_watertight)
    if watertight:
        vol, centroid = _volume_centroid(verts, np.asarray(mesh.faces))
    else:
        vol, centroid = float("nan"), verts.mean(axis=0)
    head_vol = vol
    if watertight and boundary:
        head_vol = _distal_volume(mesh, prof, boundary)
    hull_vol = _hull_volume(verts)
    dist = np.linalg.norm(verts - centroid, axis=1)
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
        surface_area_um2=float(mesh.area) * 1e-6,
        convex_hull_ratio=vol / hull_vol if hull_vol and np.isfinite(vol) else float("nan"),
        head_neck_ratio=head_d / neck_min if neck_min > 0 else float("inf"),
        open_angle_deg=open_angle, cvd=cvd, is_watertight=watertight,
        n_tips=tips, base_x_nm=float(base[0]), base_y_nm=float(base[1]), base_z_nm=float(base[2]),
        profile=prof)


def measure_spines(meshes, *, base_points_nm=None, workers: int = 1, progress: bool = False,
                   **options) -> list:
    """Measure many spine meshes, optionally in worker processes.

    Parameters
    ----------
    meshes : sequence of trimesh.Trimesh
        Spine surfaces in nm.
    base_points_nm : (N, 3) array-like or sequence of (3,) or None, optional
        One base point per mesh (an entry may be ``None``: base from the mesh, as in
        :func:`measure_spine`); default: every base from its mesh.
    workers : int
        Processes: 1 measures here (default), -1 uses every core, n uses n (at most one
        per 4 meshes; a pool costs about a second to start). Each mesh is measured on
        its own arrays, so results do not depend on the worker count.
    progress : bool
        Show a progress bar.
    **options
        Passed to :func:`measure_spine` (``step_nm``, ``smooth_nm``,
        ``head_neck_threshold``, ``min_branch_nm``).

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
    unknown = set(options) - {"step_nm", "smooth_nm", "head_neck_threshold", "min_branch_nm"}
    if unknown:
        raise ParameterError(f"unknown measure_spine option(s) {sorted(unknown)}; expected "
                             "step_nm, smooth_nm, head_neck_threshold, min_branch_nm")
    n_workers = _n_workers(workers, n)
    if n_workers > 1:
        # One process per core: Qhull, Dijkstra and the many small array operations hold
        # the GIL. Meshes travel as arrays (vertices, faces, face normals).
        jobs = [(np.asarray(m.vertices, float), np.asarray(m.faces), np.asarray(m.face_normals),
                 b, options) for m, b in zip(meshes, bases)]
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        try:
            with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init) as ex:
                it = ex.map(_measure_job, jobs, chunksize=max(1, n // (4 * n_workers)))
                return list(_progress(it, progress, n))
        except (BrokenProcessPool, OSError) as exc:
            # e.g. a calling script without an ``if __name__ == "__main__":`` guard
            import warnings

            warnings.warn(f"measure_spines: process pool failed ({exc!r}); measuring in this "
                          "process (workers=1 avoids the pool)", RuntimeWarning, stacklevel=2)
    return list(_progress((_measure_one(m, b, options) for m, b in zip(meshes, bases)), progress, n))


def _measure_one(mesh, base, options):
    try:
        return measure_spine(mesh, base_point_nm=base, **options)
    except ParameterError as exc:
        return exc


def _measure_job(job):
    import trimesh

    v, f, fn, base, options = job
    return _measure_one(trimesh.Trimesh(v, f, face_normals=fn, process=False), base, options)


def _worker_init():
    # One BLAS thread per worker process: the workers already fill the cores.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return
    threadpool_limits(1)


def _n_workers(workers, n_jobs: int) -> int:
    import os

    if workers is None or int(workers) == 0:
        return 1
    n = int(workers)
    if n < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n)
    return max(1, min(n, n_jobs // 4))


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

    The faces are clipped to the distal side of the plane (a face cut by the plane keeps
    its distal triangle or quadrilateral, in its own winding). The cap lies in the
    cutting plane, so tetrahedra with their apex on the plane give the enclosed volume
    from the distal surface alone (no cap triangulation).
    """
    p = np.array([prof["x_nm"][boundary], prof["y_nm"][boundary], prof["z_nm"][boundary]])
    lo = max(boundary - 2, 0)
    hi = min(boundary + 2, len(prof["s_nm"]) - 1)
    t = np.array([prof["x_nm"][hi] - prof["x_nm"][lo], prof["y_nm"][hi] - prof["y_nm"][lo],
                  prof["z_nm"][hi] - prof["z_nm"][lo]])
    if np.linalg.norm(t) == 0:
        return float("nan")
    n = t / np.linalg.norm(t)
    v = np.asarray(mesh.vertices, float) - p
    faces = np.asarray(mesh.faces)
    d = v @ n
    side = d[faces] >= 0  # (F, 3)
    npos = side.sum(axis=1)
    if not np.any(npos):
        return float("nan")
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
    tri = np.concatenate(tris)
    return float(abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0))
