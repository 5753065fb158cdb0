"""Surfaces that cannot intersect themselves: the zero level set of a signed distance.

A vertex-moving fit (the membrane shell fit, smoothing) can fold a surface where it is
thin or strongly curved. :func:`levelset_remesh` rebuilds such a surface from its signed
distance field, sampled on a regular grid whose spacing is well under the thinnest part
of the object (the sign by the parity of the surface crossings along the grid lines,
:mod:`~smlmspine.envelope._levelset_kernels`; the distance only in the band of grid
points next to the surface), and extracted by Lewiner's marching cubes (scikit-image), or by marching tetrahedra on the Kuhn
split of the grid (:func:`~smlmspine.envelope.marching_tetrahedra`) when the cubes'
surface does not pass the exact check. Every triangle lies inside one grid cell and
meets the triangles of the neighbouring cells only in shared edges, so the result is
closed, two-manifold, consistently wound and free of self-intersections by
construction (checked by the exact test all the same). Away from folds the new
surface follows the old one to a small fraction of the grid spacing (the distance field
is linear across a cell up to the surface's curvature); inside a fold the overlapping
sheets are replaced by their outer envelope.
"""

from __future__ import annotations

import numpy as np

__all__ = ["levelset_remesh", "decimate_clean", "rebuild_surface", "levelset_pitch",
           "LEVELSET_MAX_POINTS"]

#: Largest number of grid points of one level-set remesh: the pitch grows until the
#: grid fits (a 1.5 x 0.8 x 0.8 um spine at 8 nm is 1.9e6 points).
LEVELSET_MAX_POINTS = 6_000_000
#: Grid spacing of a rebuild: LEVELSET_PITCH_SIGMA x the smallest localization
#: precision, within LEVELSET_PITCH_NM (7.5 nm for 3D STORM at 10/27 nm, 4 nm for
#: MINFLUX): at most a fifth of a 50 nm neck, and below the blur of the data.
LEVELSET_PITCH_SIGMA = 0.75
LEVELSET_PITCH_NM = (4.0, 10.0)
#: Smallest |signed distance| at a grid point, as a fraction of the pitch.
SNAP = 0.05
JITTER = 1e-2


def levelset_remesh(vertices, faces, *, pitch_nm: float, max_points: int = LEVELSET_MAX_POINTS,
                    fill_axis=None):
    """Closed surface of a (possibly self-intersecting) closed mesh, rebuilt from its
    signed distance field.

    Parameters
    ----------
    vertices : (V, 3) array-like of float
        Mesh vertices in nm.
    faces : (F, 3) array-like of int
        Triangles, outward winding; the mesh must be closed (folds and
        self-intersections are allowed).
    pitch_nm : float
        Grid spacing in nm; choose it well under the thinnest part of the object (a
        neck 50 nm wide needs <= ~10 nm). Enlarged by factors of 1.25 while the grid
        would hold more than ``max_points`` points.
    max_points : int
        Largest grid.
    fill_axis : (3,) array-like, optional
        Fill every hole of the solid's cross-sections perpendicular to this axis (the
        grid is laid out along it): a hollow or cup-shaped surface of a sparsely
        labelled membrane becomes the solid its outer surface encloses. Use only for
        objects whose sections have no holes (a spine along its axis).

    Returns
    -------
    vertices : (V', 3) ndarray of float
    faces : (F', 3) ndarray of int64
        The largest body of the zero level set, outward normals.
    pitch_nm : float
        The grid spacing used.

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(3, radius=100.0)
    >>> v, f, p = levelset_remesh(s.vertices, s.faces, pitch_nm=8.0)
    >>> from smlmspine.envelope import check_mesh
    >>> check_mesh(v, f), bool(round(abs(trimesh.Trimesh(v, f).volume / s.volume - 1), 2) <= 0.01)
    ('', True)
    """
    field = _signed_field(vertices, faces, pitch_nm=pitch_nm, max_points=max_points,
                          fill_axis=fill_axis)
    mv, mf, _ = _extract(field, check=True)
    return mv, mf, field.pitch


class _Field:
    """A signed distance grid and the frame it lives in (internal)."""

    __slots__ = ("vals", "lo", "pitch", "rot", "centre")

    def __init__(self, vals, lo, pitch, rot, centre):
        self.vals, self.lo, self.pitch, self.rot, self.centre = vals, lo, pitch, rot, centre


def _signed_field(vertices, faces, *, pitch_nm, max_points, fill_axis):
    """The grid of :func:`levelset_remesh`: the sign at every point by crossing parity
    (:func:`~smlmspine.envelope._levelset_kernels.grid_inside`), the distance (Open3D's
    closest-point query) only in the band of points next to a sign change, +-2 pitches
    elsewhere, the border outside."""
    import open3d as o3d

    from ._levelset_kernels import grid_inside

    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    if not (np.isfinite(pitch_nm) and pitch_nm > 0):
        raise ValueError(f"pitch_nm must be a positive number, got {pitch_nm!r}")
    centre = 0.5 * (v.min(0) + v.max(0))
    rot = np.eye(3)
    if fill_axis is not None:
        ax = np.asarray(fill_axis, float)
        ax = ax / np.linalg.norm(ax)
        e1 = np.cross(ax, [1.0, 0.0, 0.0] if abs(ax[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        rot = np.array([e1, np.cross(ax, e1), ax])   # rows: the grid's x, y, z
    local = (v - centre) @ rot.T
    pitch = float(pitch_nm)
    while True:
        lo = local.min(0) - 2.5 * pitch
        n = np.ceil((local.max(0) + 2.5 * pitch - lo) / pitch).astype(np.int64) + 1
        if np.prod(n) <= max_points:
            break
        pitch *= 1.25
    # the sign everywhere from the parity of the crossings along the grid lines (the
    # majority of the three axes; three random rays per point by Open3D's
    # compute_occupancy before, 20x slower), the
    # distance only in a band of grid points next to a sign change (the closest-point
    # query costs ~15x a ray). Mesh and grid in float32, as Open3D's queries take them.
    local32 = local.astype(np.float32)
    inside = grid_inside(local32.astype(np.float64), f, origin=lo, pitch_nm=pitch,
                         shape=tuple(int(k) for k in n))
    if fill_axis is not None:
        from scipy import ndimage

        in_slice = np.zeros((3, 3, 3), bool)
        in_slice[:, :, 1] = ndimage.generate_binary_structure(2, 1)
        inside = ndimage.binary_fill_holes(inside, structure=in_slice)
    band = _band(inside)
    vals = np.where(inside, -2.0 * pitch, 2.0 * pitch)
    idx = np.nonzero(band)
    q = np.stack([lo[k] + pitch * idx[k] for k in range(3)], -1).astype(np.float32)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(local32), o3d.core.Tensor(f.astype(np.uint32)))
    dist = scene.compute_distance(o3d.core.Tensor(q)).numpy().astype(float)
    # keep the level set off the grid points: a surface through (or within a hair of)
    # a grid point gives slivers and triangles a hair apart, which tolerance-based
    # tests (Open3D's) call intersecting. Moves the surface by <= SNAP x pitch.
    dist = np.maximum(dist, SNAP * pitch)
    vals[idx] = np.where(inside[idx], -dist, dist)
    vals[0], vals[-1], vals[:, 0], vals[:, -1], vals[:, :, 0], vals[:, :, -1] = (pitch,) * 6
    return _Field(vals, lo, pitch, rot, centre)


def _largest_body(v, f):
    """Vertices and faces of the connected body with the largest |volume|: the input
    when it is one body (found by a union-find over the vertices, ~30x faster than
    trimesh's split), else :func:`~smlmspine.envelope._repair.largest_body`."""
    from ._levelset_kernels import mesh_components

    lab = mesh_components(f, len(v))
    if np.all(lab[f[:, 0]] == lab[f[0, 0]]):
        return v, f
    import trimesh

    from ._repair import largest_body

    body = largest_body(trimesh.Trimesh(v, f, process=False))
    return np.asarray(body.vertices, float), np.asarray(body.faces, np.int64)


def _extract(field, *, extractor="cubes", check=True):
    """Surface of the zero level set of ``field``: ``(vertices, faces, why)``.

    Lewiner's marching cubes (scikit-image), a third of the triangles of marching
    tetrahedra; with ``check``, its surface is checked (:func:`check_mesh`) and
    marching tetrahedra take over when it is not clean. ``why`` is the check's
    result ("" clean, None not checked)."""
    from ._repair import check_mesh, marching_tetrahedra

    vals, lo, pitch = field.vals, field.lo, field.pitch
    extractors = ("cubes", "tetrahedra") if extractor == "cubes" else ("tetrahedra",)
    mv, mf, why = np.zeros((0, 3)), np.zeros((0, 3), np.int64), None
    for extractor in extractors:
        if extractor == "cubes":
            from skimage.measure import marching_cubes

            mv, mf, _, _ = marching_cubes(vals, level=0.0, spacing=(pitch,) * 3,
                                          method="lewiner", allow_degenerate=False)
            mv = mv.astype(float) + lo
            mf = mf.astype(np.int64)   # outward for values < 0 inside
        else:
            mv, mf = marching_tetrahedra(vals, level=0.0, spacing=pitch, origin=lo)
        if not len(mf):
            why = None
            break
        mv, mf = _largest_body(mv, mf)
        # grid-plane vertices: many triangles have a vertex or edge exactly in one
        # plane of the grid, where Open3D's triangle-triangle test reports pairs
        # several nm apart as intersecting. A fixed-seed jitter of JITTER x pitch takes
        # them off the planes (the exact test is run on the result all the same).
        mv = mv + np.random.default_rng(0).uniform(-JITTER, JITTER, mv.shape) * pitch
        # in the data frame, rounded to float32 as mesh files store it
        mv = ((mv @ field.rot + field.centre).astype(np.float32)).astype(np.float64)
        if not check:
            why = None
            break
        why = check_mesh(mv, mf)
        if not why:
            break
    return mv, mf, why


def _band(inside):
    """Grid points with a face neighbour of the other sign, and their face neighbours."""
    from scipy import ndimage

    st = ndimage.generate_binary_structure(3, 1)
    edge = inside & ~ndimage.binary_erosion(inside, st, border_value=1)
    edge |= ~inside & ndimage.binary_dilation(inside, st)
    return ndimage.binary_dilation(edge, st)


def decimate_clean(vertices, faces, *, target_faces: int, max_shift_nm: float | None = None,
                   engine: str = "open3d"):
    """Quadric decimation (Open3D) towards ``target_faces`` triangles, kept only where
    the result passes the exact mesh check (closed, manifold, wound, free of
    self-intersections).

    Tries ``target_faces``, 2x and 4x as many in one step; when none is clean, halves
    the face count step by step while each step is clean, and returns the last clean
    step (the input when the first one fails). With ``max_shift_nm``, a step whose only
    fault is a few self-intersecting triangles is smoothed there
    (:func:`~smlmspine.envelope._selfintersect.smooth_untangle`) and kept when no
    vertex moved farther than ``max_shift_nm``. ``engine="qem"`` decimates with the
    package's :func:`~smlmspine.envelope._levelset_decimate.quadric_decimate` instead of
    Open3D's (as :func:`rebuild_surface` does).

    Returns
    -------
    vertices : (V', 3) ndarray of float
    faces : (F', 3) ndarray of int64
    """
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    target = max(int(target_faces), 4)
    simplify = _simplifier(v.mean(0), max_shift_nm, engine)
    v, f, _ = _decimate(v, f, target, simplify)
    return v, f


def _decimate(v, f, target, simplify):
    """The decimation steps of :func:`decimate_clean`: ``(v, f, checked)``, where
    ``checked`` says that the result is a step that passed the check (else it is the
    input, unchecked)."""
    for k in (1, 2, 4):      # in one step when that is clean
        if k * target >= len(f):
            break
        dv, df, ok = simplify(v, f, k * target)
        if ok:
            return dv, df, True
    checked = False
    while len(f) > target:   # else by halving steps, each checked
        dv, df, ok = simplify(v, f, max(target, len(f) // 2))
        if not ok or len(df) >= len(f):
            break
        v, f, checked = dv, df, True
    return v, f, checked


def _simplifier(centre, max_shift_nm, engine="open3d"):
    """``simplify(v, f, n) -> (v', f', clean)``: one quadric decimation to ``n``
    triangles (Open3D's, about ``centre``, or the package's
    :func:`~smlmspine.envelope._levelset_decimate.quadric_decimate` with ``engine="qem"``),
    untangled locally when allowed, and checked."""
    from ._repair import check_mesh
    from ._selfintersect import smooth_untangle

    def simplify(v, f, n):
        if engine == "qem":
            from ._levelset_decimate import quadric_decimate

            dv, df = quadric_decimate(v, f, target_faces=int(n))
            dv = dv.astype(np.float32).astype(np.float64)
        else:
            import open3d as o3d

            m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v - centre),
                                          o3d.utility.Vector3iVector(f.astype(np.int32)))
            d = m.simplify_quadric_decimation(int(n))
            d.remove_unreferenced_vertices()
            dv = (np.asarray(d.vertices, float) + centre).astype(np.float32).astype(np.float64)
            df = np.asarray(d.triangles, np.int64)
        if not len(df):
            return dv, df, False
        why = check_mesh(dv, df)
        if why.startswith("self-intersecting") and max_shift_nm:
            # a few folded triangles: smooth them out locally, if that moves little
            r = smooth_untangle(dv, df, max_rounds=4)
            if r.ok and r.max_shift_nm <= max_shift_nm:
                dv = r.vertices.astype(np.float32).astype(np.float64)   # as stored
                why = check_mesh(dv, df)
        return dv, df, not why

    return simplify


def levelset_pitch(precision_nm) -> float:
    """Grid spacing (nm) of a rebuild for this localization precision (1 sigma, nm;
    isotropic or per axis): ``LEVELSET_PITCH_SIGMA`` x the smallest, within
    ``LEVELSET_PITCH_NM`` (the smallest pitch when the precision is unknown).

    Parameters
    ----------
    precision_nm : float, sequence of float or None
        Localization precision.

    Returns
    -------
    float

    Examples
    --------
    >>> levelset_pitch((10.0, 27.0)), levelset_pitch(3.0), levelset_pitch(None)
    (7.5, 4.0, 4.0)
    """
    lo, hi = LEVELSET_PITCH_NM
    if precision_nm is None or not np.size(precision_nm):
        return lo
    return float(np.clip(LEVELSET_PITCH_SIGMA * float(np.min(precision_nm)), lo, hi))


def rebuild_surface(vertices, faces, *, precision_nm, fill_axis=None, engine="qem"):
    """A closed mesh rebuilt as a level set (:func:`levelset_remesh` at
    :func:`levelset_pitch`) and decimated back to about two grid spacings per edge
    (the steps of :func:`decimate_clean`; the grid surface has ~3 triangles per cell
    crossed, many of them slivers). The marching-cubes surface is checked only when no
    decimation step passes the check (marching tetrahedra then, as in
    :func:`levelset_remesh`).

    Parameters
    ----------
    vertices : (V, 3) array-like of float
        Mesh vertices (nm).
    faces : (F, 3) array-like of int
        Triangles of a closed mesh (folds allowed).
    precision_nm : float, sequence of float or None
        Localization precision (sets the grid spacing).
    fill_axis : (3,) array-like, optional
        See :func:`levelset_remesh`.
    engine : {"qem", "open3d"}
        Decimation: the package's quadric edge collapse
        (:func:`~smlmspine.envelope._levelset_decimate.quadric_decimate`, refuses
        collapses that fold a triangle; ~3x faster) or Open3D's
        ``simplify_quadric_decimation`` (the default before).

    Returns
    -------
    vertices : (V', 3) ndarray of float
    faces : (F', 3) ndarray of int64
        Empty when the level set is empty.
    pitch_nm : float
        The grid spacing used.
    n_grid_faces : int
        Triangles of the level set before decimation.
    """
    if engine not in ("qem", "open3d"):
        raise ValueError(f"engine must be 'qem' or 'open3d', got {engine!r}")
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    tri = v[f]
    area = 0.5 * float(np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]),
                                      axis=1).sum())
    field = _signed_field(v, f, pitch_nm=levelset_pitch(precision_nm),
                          max_points=LEVELSET_MAX_POINTS, fill_axis=fill_axis)
    pitch = field.pitch
    target = max(2000, int(area / (2.0 * pitch) ** 2 * 2))
    # the cubes' surface is decimated first and checked only when no decimation step
    # passed the check (the exact self-intersection test of the full grid surface costs
    # about as much as the whole decimation): the same result as checking it first
    # whenever it is clean; marching tetrahedra when it is not
    lv, lf, _ = _extract(field, check=False)
    n_grid = int(len(lf))
    if n_grid:
        lv, lf, checked = _decimate(lv, lf, target, _simplifier(lv.mean(0), pitch, engine))
        if not checked:
            from ._repair import check_mesh

            if len(lf) == n_grid and check_mesh(lv, lf):
                lv, lf, _ = _extract(field, extractor="tetrahedra", check=False)
                n_grid = int(len(lf))
                if n_grid:
                    lv, lf, _ = _decimate(lv, lf, target, _simplifier(lv.mean(0), pitch, engine))
    return lv, lf, pitch, n_grid
