"""Mesh validity checks and the repair chain (trimesh clean-up, voxel closing + meshing).

A valid envelope is a closed, two-manifold, consistently outward-oriented triangle mesh
of one body with positive volume. :func:`check_mesh` says which of these fails;
:func:`repair_mesh` tries, in order, a trimesh clean-up and a voxel closing followed by
marching tetrahedra, and reports what it did. Nothing here passes an invalid mesh on
without a reason.
"""

from __future__ import annotations

import numpy as np

from .._tetra import CORNERS as _CORNERS
from .._tetra import TETS as _TETS
from .._tetra import tetra_surface
from ._cache import ResultCache as _ResultCache

__all__ = ["check_mesh", "validate_envelope", "repair_mesh", "shape_change", "marching_tetrahedra", "largest_body",
           "voxel_solid_mesh", "surface_distances"]

#: check_mesh / validate_envelope results by mesh bytes
_CHECKS = _ResultCache(32)


def _edge_table(faces: np.ndarray):
    """Directed edges (a->b) of every face, shape (3F, 2), and their face index."""
    e = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1).reshape(-1, 2)
    return e, np.repeat(np.arange(len(faces)), 3)


def check_mesh(vertices: np.ndarray, faces: np.ndarray, *,
               self_intersection: bool = True) -> str:
    """Why a triangle mesh is not a valid closed envelope, or ``""`` when it is.

    Checks, in order: non-empty; no degenerate (repeated-vertex) faces; every edge in
    exactly two faces (watertight, edge-manifold); the two faces use it in opposite
    directions (consistent winding); every vertex has one fan of faces (vertex-manifold);
    one connected body; positive signed volume (outward normals); no zero-area face and
    no two faces that intersect anywhere but at their shared vertices and edge (exact
    test, :func:`~smlmspine.envelope.self_intersections`). The last 32 answers are
    remembered by the exact bytes of ``vertices`` and ``faces`` (the envelope steps check
    the same mesh more than once); the topology is one numba pass
    (:func:`~smlmspine.envelope._selfintersect.mesh_topology`).

    Parameters
    ----------
    vertices : (V, 3) ndarray of float
        Coordinates in nm.
    faces : (F, 3) ndarray of int
    self_intersection : bool
        Run the exact self-intersection test (default True; surfaces made of faces of
        one Delaunay tetrahedralization, such as alpha shapes, cannot intersect
        themselves and skip it).

    Returns
    -------
    str
        Empty when valid, otherwise a short reason.

    Examples
    --------
    >>> v = np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    >>> f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    >>> check_mesh(v, f)
    ''
    >>> check_mesh(v, f[:3])
    'not watertight: 3 boundary edge(s)'
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(2)
    >>> w = s.vertices.copy(); w[0] *= -1.5              # a vertex pushed through
    >>> check_mesh(w, s.faces)
    'self-intersecting: 10 face(s) cross another (10 pair(s))'
    """
    vertices = np.asarray(vertices, float)
    faces = np.asarray(faces, np.int64)
    if len(faces) == 0 or len(vertices) == 0:
        return "empty mesh"
    if not np.isfinite(vertices).all():
        return "non-finite vertex coordinates"
    key = _CHECKS.key(vertices, faces, "check_mesh", bool(self_intersection))
    reason = _CHECKS.get(key)
    if reason is None:
        reason = _check_mesh(vertices, faces, self_intersection)
        _CHECKS.put(key, reason)
    return reason


def _topology_numpy(vertices, faces):
    """The checks of :func:`._selfintersect.mesh_topology` in numpy (any face indices)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nv = np.int64(len(vertices))
    e, ef = _edge_table(faces)
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    key = lo * nv + hi
    order = np.argsort(key, kind="stable")
    ks = key[order]
    _, start, count = np.unique(ks, return_index=True, return_counts=True)
    if np.any(count == 1):
        return f"not watertight: {int(np.sum(count == 1))} boundary edge(s)"
    if np.any(count != 2):
        return f"non-manifold: {int(np.sum(count > 2))} edge(s) shared by more than two faces"
    first, second = order[start], order[start + 1]
    if np.any(e[first, 0] == e[second, 0]):
        return "inconsistent winding: neighbouring faces disagree on orientation"
    # vertex manifold: corners (face, vertex) around each vertex form a single fan
    corner = np.arange(3 * len(faces)).reshape(-1, 3)
    fa, fb = ef[first], ef[second]
    a, b = e[first, 0], e[first, 1]

    def corner_of(f, v):
        return corner[f, np.argmax(faces[f] == v[:, None], axis=1)]

    rows = np.concatenate([corner_of(fa, a), corner_of(fa, b)])
    cols = np.concatenate([corner_of(fb, a), corner_of(fb, b)])
    n_c = 3 * len(faces)
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_c, n_c))
    _, lab = connected_components(g, directed=False)
    cv = faces.ravel()
    pairs = np.unique(cv.astype(np.int64) * n_c + lab)
    fans = np.bincount(pairs // n_c, minlength=len(vertices))
    if np.any(fans > 1):
        return f"non-manifold: {int(np.sum(fans > 1))} vertex(es) joining separate sheets"
    # one body
    g = coo_matrix((np.ones(len(fa)), (fa, fb)), shape=(len(faces), len(faces)))
    n_body, _ = connected_components(g, directed=False)
    if n_body != 1:
        return f"{n_body} separate bodies"
    return ""


def _check_mesh(vertices, faces, self_intersection):
    from ._selfintersect import _volume, mesh_topology

    if np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2])
              | (faces[:, 0] == faces[:, 2])):
        return "degenerate faces (repeated vertex)"
    if faces.min() < 0 or faces.max() >= len(vertices):
        reason = _topology_numpy(vertices, faces)   # (out-of-range indices: as before)
        if reason:
            return reason
        code, count = 0, 0
    else:
        code, count = mesh_topology(np.ascontiguousarray(faces), len(vertices))
    if code == 1:
        return f"not watertight: {count} boundary edge(s)"
    if code == 2:
        return f"non-manifold: {count} edge(s) shared by more than two faces"
    if code == 3:
        return "inconsistent winding: neighbouring faces disagree on orientation"
    if code == 4:
        return f"non-manifold: {count} vertex(es) joining separate sheets"
    if code == 5:
        return f"{count} separate bodies"
    vol = _volume(vertices, faces)
    if not vol > 0:
        return "inward-oriented or zero-volume mesh"
    if self_intersection:
        from ._selfintersect import self_intersections

        hit, deg, n_pairs = self_intersections(vertices, faces)
        if deg.any():
            return f"degenerate faces: {int(deg.sum())} of zero area"
        if n_pairs:
            return (f"self-intersecting: {int(hit.sum())} face(s) cross another "
                    f"({n_pairs} pair(s))")
    return ""


def validate_envelope(vertices: np.ndarray, faces: np.ndarray) -> str:
    """:func:`check_mesh` and Open3D's self-intersection test: ``""`` when both pass.

    Open3D's ``get_self_intersecting_triangles`` skips pairs that share a vertex and
    uses a tolerance, so it can flag touching faces the exact test passes (and misses
    folds at a shared vertex the exact test finds); a written envelope must pass both.
    Both run on the coordinates rounded to float32, as mesh files (PLY, STL, GLB) store
    them: a surface valid in float64 whose rounding makes two triangles touch is not
    valid as written.

    Parameters
    ----------
    vertices : (V, 3) ndarray of float
        Coordinates in nm.
    faces : (F, 3) ndarray of int
        Triangles (outward winding).

    Returns
    -------
    str
        Empty when the mesh passes both tests, otherwise the first reason found.
    """
    v32 = np.asarray(vertices, np.float32).astype(np.float64)
    reason = check_mesh(v32, faces)
    if reason:
        return reason
    key = _CHECKS.key(v32, np.asarray(faces, np.int64), "open3d")
    reason = _CHECKS.get(key)
    if reason is None:
        from ._selfintersect import open3d_self_intersections

        n = int(open3d_self_intersections(v32, faces).sum())
        reason = f"self-intersecting (Open3D): {n} face(s)" if n else ""
        _CHECKS.put(key, reason)
    return reason


def mesh_volume(mesh) -> float:
    """``mesh.volume`` of a ``trimesh.Trimesh``, to the last bit, without the rest of
    trimesh's mass properties (centre of mass, inertia): the same terms (the triangles'
    cross products and coordinate sums, as trimesh caches and forms them) summed the
    same way, ~3x faster (0.37 s against 1.26 s on 200 spine envelopes; equal on all).

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(3, radius=7.3)
    >>> mesh_volume(s) == float(s.copy().volume)
    True
    """
    tri = mesh.triangles
    f1x = tri[:, 0, 0] + tri[:, 1, 0] + tri[:, 2, 0]
    return float((mesh.triangles_cross[:, 0] * f1x).sum() / 6.0)


def largest_body(mesh):
    """The connected body of ``mesh`` with the largest absolute volume (or area).

    The same body, vertices and faces in the same order, as picking from trimesh's
    ``mesh.split(only_watertight=False)`` (faces joined by an edge that exactly two
    faces use; components that are not closed get trimesh's ``fill_holes`` and are
    measured by area), without building a trimesh for every closed component: their
    volumes come from one pass over the faces (scipy.sparse.csgraph for the
    components).

    Examples
    --------
    >>> import trimesh
    >>> a = trimesh.creation.icosphere(1, radius=1.0)
    >>> b = trimesh.creation.icosphere(1, radius=2.0)
    >>> both = trimesh.util.concatenate([a, b])
    >>> round(float(largest_body(both).volume / b.volume), 6)
    1.0
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from trimesh.grouping import group

    faces = np.asarray(mesh.faces, np.int64)
    nf = len(faces)
    if nf <= 1:
        return mesh
    verts = np.asarray(mesh.vertices, np.float64)
    nv = np.int64(max(len(verts), 1))
    # undirected edges of every face; an edge used by exactly two faces joins them
    # (trimesh's face_adjacency)
    e = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1).reshape(-1, 2)
    ekey = np.minimum(e[:, 0], e[:, 1]) * nv + np.maximum(e[:, 0], e[:, 1])
    order = np.argsort(ekey, kind="stable")
    ks = ekey[order]
    new = np.r_[True, ks[1:] != ks[:-1]]
    start = np.flatnonzero(new)
    count = np.diff(np.r_[start, len(ks)])
    pair = start[count == 2]
    fa, fb = order[pair] // 3, order[pair + 1] // 3
    g = coo_matrix((np.ones(len(fa)), (fa, fb)), shape=(nf, nf))
    n_comp, labels = connected_components(g, directed=False)
    if n_comp <= 1:
        return mesh
    # closed components: every edge used exactly twice within the component
    if np.all(count == 2):
        closed = np.ones(n_comp, bool)
    else:
        ckey = ks * n_comp + labels[order // 3]
        _, cnt = np.unique(ckey, return_counts=True)
        comp_of = np.unique(ckey) % n_comp
        closed = np.ones(n_comp, bool)
        closed[comp_of[cnt != 2]] = False
    # signed volumes of the closed components (relative to the centre, one pass)
    c = verts.mean(0)
    v0, v1, v2 = verts[faces[:, 0]] - c, verts[faces[:, 1]] - c, verts[faces[:, 2]] - c
    vol = np.bincount(labels, np.einsum("ij,ij->i", v0, np.cross(v1, v2)),
                      minlength=n_comp) / 6.0
    components = group(labels, min_len=1)   # trimesh's face order within a component
    comp_label = np.array([labels[c_[0]] for c_ in components])
    sizes = np.abs(vol[comp_label])
    filled = {}
    for k in np.flatnonzero(~closed[comp_label]):
        # not closed: trimesh's submesh with its hole filling, measured by area
        body = mesh.submesh([components[k]], only_watertight=False, repair=True)[0]
        filled[k] = body
        sizes[k] = abs(body.volume) if body.is_watertight else body.area
    best = int(np.argmax(sizes))
    if best in filled:
        return filled[best]
    index = components[best]
    current = faces[index]
    unique = np.unique(current.reshape(-1))
    mask = np.arange(len(verts))
    mask[unique] = np.arange(len(unique))
    import trimesh

    return trimesh.Trimesh(vertices=verts[unique], faces=mask[current], process=False)


def marching_tetrahedra(values: np.ndarray, *, level: float = 0.0, spacing: float = 1.0,
                        origin=(0.0, 0.0, 0.0)):
    """Closed triangle mesh of the ``level`` iso-surface of a 3D scalar grid.

    Marching tetrahedra on the Kuhn split of every grid cube has no ambiguous cases, so
    the surface is a consistently oriented 2-manifold wherever it does not touch the
    grid border (pad the grid to guarantee that). Values below ``level`` are inside;
    normals point outward.

    Parameters
    ----------
    values : (I, J, K) ndarray of float
    level : float
    spacing : float
        Grid spacing in nm.
    origin : (3,) array-like
        Coordinates of ``values[0, 0, 0]`` in nm.

    Returns
    -------
    vertices : (V, 3) ndarray of float
    faces : (F, 3) ndarray of int64

    Examples
    --------
    >>> g = np.indices((9, 9, 9)).astype(float) - 4.0
    >>> v, f = marching_tetrahedra(np.sqrt((g ** 2).sum(0)), level=3.0)
    >>> check_mesh(v, f)
    ''
    """
    vals = np.asarray(values, float) - level
    vals = np.where(vals == 0.0, 1e-9, vals)
    shape = np.array(vals.shape)
    if vals.ndim != 3 or np.any(shape < 2):
        return np.empty((0, 3)), np.empty((0, 3), np.int64)
    flat = vals.ravel()
    inside = flat < 0
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    # cubes with mixed corners
    base = np.indices(shape - 1).reshape(3, -1).T
    base_id = base @ strides
    corner_off = _CORNERS @ strides
    cid = base_id[:, None] + corner_off[None, :]
    cin = inside[cid]
    mixed = cin.any(1) & ~cin.all(1)
    cid, cin = cid[mixed], cin[mixed]
    tv = cid[:, _TETS].reshape(-1, 4)
    tin = cin[:, _TETS].reshape(-1, 4)
    org = np.asarray(origin, float)

    def xyz(idx):
        return np.stack(np.unravel_index(idx, tuple(shape)), 1).astype(float) * spacing + org

    return tetra_surface(tv, tin, flat, xyz)


def _surface_voxels(mesh, pitch_nm: float):
    """The voxels of trimesh's ``mesh.voxelized(pitch_nm)`` (before filling).

    trimesh (``voxelize_subdivide``) subdivides the mesh until no edge is longer than
    half a pitch and marks the voxels of its vertices (``round(v / pitch)``); here the
    same points come from :func:`._selfintersect._subdivision_points` (each face split
    on its own in numba, no mesh of the subdivided surface) and are marked in a dense
    grid directly.

    Returns
    -------
    occupied : (I, J, K) ndarray of bool
        Marked voxels, ``occupied[0, 0, 0]`` at the lowest marked index.
    corner : (3,) ndarray of float
        Centre of voxel ``[0, 0, 0]`` (nm).
    """
    from ._selfintersect import _subdivision_points

    v = np.ascontiguousarray(mesh.vertices, np.float64)
    f = np.ascontiguousarray(mesh.faces, np.int64)
    pts, ok = _subdivision_points(v, f, float(pitch_nm) / 2.0, 10)
    if not ok:
        raise ValueError("max_iter exceeded!")   # as trimesh's subdivide_to_size
    hit = np.round(pts / pitch_nm).astype(int)
    lo = hit.min(axis=0)
    hit -= lo
    occ = np.zeros(tuple(hit.max(axis=0) + 1), bool)
    occ[hit[:, 0], hit[:, 1], hit[:, 2]] = True
    return occ, lo * pitch_nm


def voxel_remesh(mesh_or_points, *, pitch_nm: float, closing_voxels: int = 1,
                 points: bool = False):
    """Voxelize (a mesh, or points), close, fill and re-mesh as one closed body.

    Returns ``(vertices, faces)``; the surface lies at the occupancy boundary after a
    light Gaussian blur (half a voxel), so it adds no offset to the occupied voxels. The
    occupied voxels themselves reach beyond the input surface: every voxel the surface
    passes through is marked. Measured on spheres of radius 50-300 nm at 8-25 nm voxels,
    the result lies 0.56-0.66 voxel outside (sphere of 100 nm at 15 nm: volume +32 %;
    a 100 nm tube: +30 %). Where it repairs an alpha surface, the surface fit that
    follows moves the vertices back onto the localizations.
    """
    from scipy import ndimage

    if points:
        pts = np.asarray(mesh_or_points, float)
        lo = pts.min(0) - 3 * pitch_nm * (closing_voxels + 2)
        idx = np.floor((pts - lo) / pitch_nm).astype(np.int64)
        shape = idx.max(0) + 3 * (closing_voxels + 2) + 1
        occ = np.zeros(tuple(shape), bool)
        occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
        origin = lo + 0.5 * pitch_nm
    else:
        occ, corner = _surface_voxels(mesh_or_points, pitch_nm)
        occ = np.pad(ndimage.binary_fill_holes(occ), closing_voxels + 2)
        origin = corner - (closing_voxels + 2) * pitch_nm
    if closing_voxels > 0:
        st = ndimage.generate_binary_structure(3, 1)
        occ = ndimage.binary_closing(occ, structure=st, iterations=closing_voxels)
    occ = ndimage.binary_fill_holes(occ)
    lab, n = ndimage.label(occ)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        occ = lab == (1 + int(np.argmax(sizes)))
    field = ndimage.gaussian_filter(occ.astype(float), 0.5)
    return marching_tetrahedra(-field, level=-0.5, spacing=pitch_nm, origin=origin)


def surface_distances(mesh_a, mesh_b, *, n_samples: int = 20000, both: bool = True):
    """Distances from surface samples of each mesh to the other mesh's surface samples.

    ``n_samples`` area-weighted samples per mesh (fixed seeds) plus its vertices; each
    is measured to the nearest sample of the other mesh (resolution about the sample
    spacing).

    Parameters
    ----------
    mesh_a, mesh_b : trimesh.Trimesh
    n_samples : int
    both : bool
        Both directions; ``False``: only ``d_ba`` (the same values, half the work),
        ``d_ab`` is then None.

    Returns
    -------
    d_ab, d_ba : ndarray of float
        Distances (nm) from the samples of ``mesh_a`` to ``mesh_b`` and back.
    """
    from scipy.spatial import cKDTree

    a, b = _surface_samples(mesh_a, n_samples, 0), _surface_samples(mesh_b, n_samples, 1)
    return (cKDTree(b).query(a)[0] if both else None), cKDTree(a).query(b)[0]


def _surface_samples(m, n, seed):
    rng = np.random.default_rng(seed)
    v, f = np.asarray(m.vertices, float), np.asarray(m.faces)
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(f), n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    t = tri[pick]
    return np.r_[t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0]), v]


def shape_change(mesh_a, mesh_b, *, n_samples: int = 20000) -> tuple[float, float]:
    """``(hausdorff_nm, volume_change)`` of ``mesh_b`` against ``mesh_a``.

    The Hausdorff distance is estimated from ``n_samples`` surface samples of each mesh
    (fixed seed) against dense samples of the other (resolution about the sample
    spacing); the volume change is relative (signed volumes).
    """
    from ._selfintersect import _volume

    d_ab, d_ba = surface_distances(mesh_a, mesh_b, n_samples=n_samples)
    h = max(float(d_ab.max()), float(d_ba.max()))
    va = _volume(np.asarray(mesh_a.vertices, float), np.asarray(mesh_a.faces))
    vb = _volume(np.asarray(mesh_b.vertices, float), np.asarray(mesh_b.faces))
    return h, (vb - va) / va if va else float("nan")


def repair_mesh(mesh, *, pitch_nm: float | None = None, sigma_nm: float | None = None,
                max_volume_change: float = float("inf"), max_shift_sigma: float = float("inf"),
                use_if=None):
    """Try to turn ``mesh`` into a valid closed envelope.

    Steps, stopping at the first that yields a valid mesh: (1) trimesh clean-up
    (merge vertices, drop degenerate and duplicate faces, fill small holes, fix
    normals, keep the largest body); (2) voxel remesh: voxelize at ``pitch_nm`` (default:
    1/80 of the largest extent), close by one voxel, fill cavities, keep the largest
    component, marching tetrahedra (free of self-intersections by construction).

    A step's result is refused when it changes the volume by more than
    ``max_volume_change`` (relative) or lies farther than ``max_shift_sigma`` x
    ``sigma_nm`` from the input surface (Hausdorff distance, :func:`shape_change`).
    Validity is :func:`check_mesh` (with the exact self-intersection test).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The surface to repair, coordinates in nm (not modified: the steps work on
        copies).
    pitch_nm : float, optional
        Voxel size of the voxel remesh in nm; default: 1/80 of the largest extent of
        ``mesh``.
    sigma_nm : float, optional
        Localization precision in nm, the unit of ``max_shift_sigma``; None (default) or
        0: no bound on the shift.
    max_volume_change : float
        Largest accepted relative change of the signed volume, ``|V_new / V - 1|``
        (default inf: no bound).
    max_shift_sigma : float
        Largest accepted Hausdorff distance between the result and ``mesh``, in units
        of ``sigma_nm`` (default inf: no bound). With both bounds infinite the shape
        change is not measured.
    use_if : callable, optional
        A predicate on the voxel remesh (a ``trimesh.Trimesh``): when it says the caller
        will not use that surface (a bridged shell short of doubling the volume), it is
        neither checked nor returned (the exact self-intersection test of a fine voxel
        surface is most of a repair's check); the result is then the clean-up's, with
        the reason.

    Returns
    -------
    mesh : trimesh.Trimesh
        The first valid result; when there is none, the trimesh clean-up's result.
    reason : str
        ``""`` when the result is valid, otherwise why it is not (each step's reason).
    steps : list of str
        What was done, with the measured shape change when a bound is set.

    Examples
    --------
    >>> import trimesh
    >>> box = trimesh.creation.box((100.0, 100.0, 100.0))
    >>> holed = trimesh.Trimesh(box.vertices, box.faces[1:], process=False)
    >>> check_mesh(holed.vertices, holed.faces)
    'not watertight: 3 boundary edge(s)'
    >>> fixed, reason, steps = repair_mesh(holed)
    >>> reason, steps, round(fixed.volume)
    ('', ['trimesh clean-up'], 1000000)
    """
    import trimesh

    steps: list[str] = []
    lim = max_shift_sigma * sigma_nm if sigma_nm else float("inf")

    def refused(fixed):
        if not (np.isfinite(max_volume_change) or np.isfinite(lim)):
            return ""
        h, dv = shape_change(mesh, fixed)
        steps[-1] += f" (Hausdorff {h:.1f} nm, volume {100 * dv:+.1f} %)"
        if abs(dv) > max_volume_change or h > lim:
            return (f"shape change above the bound (Hausdorff {h:.0f} nm, volume "
                    f"{100 * dv:+.1f} %; bounds {lim:.0f} nm, {100 * max_volume_change:g} %)")
        return ""

    m = mesh.copy()
    try:
        m.merge_vertices()
        m.update_faces(m.nondegenerate_faces())
        m.update_faces(m.unique_faces())
        m.remove_unreferenced_vertices()
        trimesh.repair.fill_holes(m)
        from ._winding import fix_normals

        fix_normals(m)   # trimesh's fix_normals, without networkx (same faces)
        m = largest_body(m)
        steps.append("trimesh clean-up")
        reason = check_mesh(m.vertices, m.faces)
        if not reason:
            reason = refused(m)
            if not reason:
                return m, "", steps
    except ImportError:  # a missing dependency (networkx, rtree) is not broken input
        raise
    except Exception as exc:  # trimesh can fail on badly broken input
        steps.append(f"trimesh clean-up failed ({type(exc).__name__})")
        reason = "trimesh clean-up failed"
    if len(mesh.vertices) == 0:
        return m, reason or "empty mesh", steps
    ext = float(np.ptp(mesh.vertices, axis=0).max())
    pitch = float(pitch_nm) if pitch_nm else max(ext / 80.0, 1e-9)
    try:
        v, f = voxel_remesh(mesh, pitch_nm=pitch)
        steps.append(f"voxel remesh (pitch {pitch:.3g} nm)")
        vm = trimesh.Trimesh(v, f, process=False)
        if use_if is not None and not use_if(vm):
            steps[-1] += ": not used by the caller, not checked"
            return m, f"{reason}; voxel remesh not used by the caller", steps
        r2 = check_mesh(vm.vertices, vm.faces) or refused(vm)
        if not r2:
            return vm, "", steps
        reason = f"{reason}; voxel remesh: {r2}"
    except ImportError:
        raise
    except Exception as exc:
        steps.append(f"voxel remesh failed ({type(exc).__name__}: {exc})")
    return m, reason, steps


def _ball(r: int) -> np.ndarray:
    g = np.indices((2 * r + 1,) * 3) - r
    return (g ** 2).sum(0) <= r * r + 1e-9


def voxel_solid_mesh(points: np.ndarray, *, pitch_nm: float, close_voxels: int = 2):
    """Closed surface of the solid a point cloud encloses: voxelize, close, fill, re-mesh.

    The occupied voxels are dilated by a ball of ``close_voxels`` (sealing holes of a
    sampled membrane up to about twice that), enclosed space is filled, the result eroded
    by the same ball, the largest component kept and its boundary meshed by marching
    tetrahedra on the occupancy blurred by half a voxel (level 0.5). The surface passes
    about half a voxel outside the outermost points, like an alpha surface; the caller
    fits it onto the data.

    Returns ``(vertices, faces)`` (nm), a closed manifold by construction.
    """
    from scipy import ndimage

    pts = np.asarray(points, float)
    pad = close_voxels + 3
    lo = pts.min(0) - pad * pitch_nm
    idx = np.floor((pts - lo) / pitch_nm).astype(np.int64)
    shape = tuple(idx.max(0) + pad + 1)
    occ = np.zeros(shape, bool)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    if close_voxels > 0:
        ball = _ball(int(close_voxels))
        occ = ndimage.binary_dilation(occ, structure=ball)
        occ = ndimage.binary_fill_holes(occ)
        occ = ndimage.binary_erosion(occ, structure=ball, border_value=0)
    else:
        occ = ndimage.binary_fill_holes(occ)
    lab, n = ndimage.label(occ)
    if n == 0:
        return np.empty((0, 3)), np.empty((0, 3), np.int64)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        occ = lab == (1 + int(np.argmax(sizes)))
    field = ndimage.gaussian_filter(occ.astype(float), 0.5)
    return marching_tetrahedra(-field, level=-0.5, spacing=pitch_nm, origin=lo + 0.5 * pitch_nm)
