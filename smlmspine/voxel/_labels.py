"""Meshes to label volumes, and image labels back onto localizations.

:func:`mesh_to_labels` decides inside/outside exactly at voxel centres: rays along the
image's z axis through every (y, x) voxel centre, each triangle crossing found with exact
orientation tests (a float filter, exact rational arithmetic when the filter cannot
decide) and a symbolic perturbation of the ray (Edelsbrunner & Muecke's simulation of
simplicity), so a ray through an edge or a vertex crosses the surface exactly once where
it passes through it. A closed mesh (every edge in two faces) is then filled by crossing
parity; any other mesh by its generalised winding number (Jacobson et al. 2013), computed
exactly as the integer winding number of the mesh closed by a cone over its boundary
(signed crossings) minus the cone's solid angle (van Oosterom & Strackee 1983): no surface
voxelization is filled, so nothing swells by a voxel. :func:`mesh_fraction` supersamples
the same test for a partial-volume fraction. :func:`labels_to_points` looks an image up
at every localization through the image's physical grid (pixel-centre convention).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ._image import VoxelImage

__all__ = ["mesh_to_labels", "mesh_fraction", "labels_to_points", "load_meshes",
           "LABEL_CONVENTION"]

#: Name of the metadata entry of a label image that says how its values map to spines.
LABEL_CONVENTION = "smlmspine.labels"

#: Candidate (triangle, ray) pairs handled at once (bounds the work arrays, ~200 B each).
_CHUNK = 1_000_000
#: Shewchuk's orient2d error bound factor ((3 + 16 eps) eps, eps = 2^-53), with margin.
_ERRBOUND = 3.3306690738754716e-16 * 1.01
_SPINE_FILE = re.compile(r"^spine_(-?\d+)$")


# --------------------------------------------------------------------------------------
# meshes in
# --------------------------------------------------------------------------------------
def load_meshes(meshes, *, units: str | None = None) -> tuple[dict[int, Any], Any]:
    """Spine meshes by ``spine_id`` and the dendrite mesh, from a folder or a mapping.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        A folder as written by ``smlmspine mesh`` / ``run`` (``spine_<id>.<ext>`` and an
        optional ``dendrite.<ext>``, any of PLY, OBJ, OFF, STL, GLB), or a mapping
        ``{spine_id: trimesh.Trimesh}`` whose optional key ``"dendrite"`` is the
        dendrite mesh. Coordinates in nm.
    units : {"nm", "um"}, optional
        Units of the mesh files (see :func:`smlmspine.morphology.load_mesh`); default:
        the units the files declare (smlmspine's own files declare nm), else an error.

    Returns
    -------
    spines : dict of int to trimesh.Trimesh
        In increasing ``spine_id``.
    dendrite : trimesh.Trimesh or None

    Raises
    ------
    FormatError
        The folder does not exist or holds no spine or dendrite mesh.
    ParameterError
        A key is not a spine id >= 0 or a value is not a triangle mesh.

    Examples
    --------
    >>> import trimesh
    >>> spines, dendrite = load_meshes({3: trimesh.creation.icosphere()})
    >>> sorted(spines), dendrite is None
    ([3], True)
    """
    if isinstance(meshes, (str, Path)):
        return _load_folder(Path(meshes), units)
    if not isinstance(meshes, Mapping):
        raise ParameterError("meshes must be a mesh folder or a mapping {spine_id: mesh}, got "
                             f"{type(meshes).__name__}")
    spines, dendrite = {}, None
    for key, mesh in meshes.items():
        if key == "dendrite":
            dendrite = _check_mesh(mesh, "meshes['dendrite']")
            continue
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ParameterError(f"meshes: keys must be spine ids (int >= 0) or 'dendrite', got "
                                 f"{key!r}")
        spines[int(key)] = _check_mesh(mesh, f"meshes[{key!r}]")
    return dict(sorted(spines.items())), dendrite


def _check_mesh(mesh, name):
    faces = getattr(mesh, "faces", None)
    vertices = getattr(mesh, "vertices", None)
    if faces is None or vertices is None:
        raise ParameterError(f"{name} must be a triangle mesh (trimesh.Trimesh), got "
                             f"{type(mesh).__name__}")
    v = np.asarray(vertices, float)
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise ParameterError(f"{name}: vertices must be finite (V, 3) coordinates (nm), got "
                             f"shape {v.shape}")
    return mesh


def _load_folder(folder: Path, units):
    from ..envelope import MESH_FORMATS
    from ..morphology import load_mesh

    if not folder.is_dir():
        raise FormatError("no such mesh folder", path=folder)
    spines, dendrite = {}, None
    for path in sorted(folder.iterdir()):
        if path.suffix.lower().lstrip(".") not in MESH_FORMATS + ("off",):
            continue
        m = _SPINE_FILE.match(path.stem)
        if m:
            sid = int(m.group(1))
            if sid < 0:
                raise FormatError(f"spine id {sid} < 0 in the file name", path=path)
            if sid in spines:
                raise FormatError(f"a second mesh of spine {sid} (one file per spine)",
                                  path=path)
            spines[sid] = load_mesh(path, units=units)
        elif path.stem == "dendrite":
            if dendrite is not None:
                raise FormatError("a second dendrite mesh", path=path)
            dendrite = load_mesh(path, units=units)
    if not spines and dendrite is None:
        raise FormatError("no spine_<id>.<ext> or dendrite.<ext> mesh in the folder (as "
                          "written by `smlmspine mesh`)", path=folder)
    return dict(sorted(spines.items())), dendrite


# --------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------
def _voxel3(voxel_nm) -> tuple[float, float, float]:
    from .._validate import positive

    if np.ndim(voxel_nm) == 0:
        v = positive(voxel_nm, "voxel_nm", unit="nm")
        return (v, v, v)
    vals = list(np.asarray(voxel_nm, dtype=object).ravel())
    if len(vals) != 3:
        raise ParameterError(f"voxel_nm must be one size or three (z, y, x) in nm, got "
                             f"{voxel_nm!r}")
    return tuple(positive(v, "voxel_nm", unit="nm") for v in vals)


def _grid(meshes_all, *, voxel_nm, like, roi_nm, margin_voxels=2):
    """(origin zyx, voxel zyx, shape zyx) of the label grid."""
    if like is not None:
        if not isinstance(like, VoxelImage):
            raise ParameterError(f"like must be a VoxelImage, got {type(like).__name__}")
        if like.spatial_axes != ("z", "y", "x"):
            raise ParameterError("like must be a 3D image (spatial axes z, y, x) for a label "
                                 f"volume, got axes {like.axes}")
        vox = tuple(float(v) for v in like.voxel_nm)
        if voxel_nm is not None and not np.allclose(_voxel3(voxel_nm), vox, rtol=1e-9, atol=0):
            raise ParameterError(f"voxel_nm={voxel_nm!r} differs from the voxel size of like "
                                 f"{vox} (z, y, x nm); give one of them")
        return (tuple(float(o) for o in like.origin_nm), vox,
                tuple(int(n) for n in like.spatial_shape))
    if voxel_nm is None:
        raise ParameterError("give voxel_nm (nm) or like= (an image whose grid to use)")
    vox = _voxel3(voxel_nm)
    if roi_nm is not None:
        try:
            r = np.asarray(roi_nm, float).ravel()
        except (TypeError, ValueError):
            r = np.empty(0)
        # the order of render's roi_nm: (x0, y0, x1, y1, z0, z1)
        lo = r[[4, 1, 0]] if r.shape == (6,) else r
        hi = r[[5, 3, 2]] if r.shape == (6,) else r
        if r.shape != (6,) or not np.isfinite(r).all() or np.any(hi <= lo):
            raise ParameterError("roi_nm must be (x0, y0, x1, y1, z0, z1) in nm (as for render) "
                                 f"with x1 > x0, y1 > y0, z1 > z0, got {roi_nm!r}")
        v = np.asarray(vox)
        shape = np.maximum(1, np.ceil((hi - lo) / v - 1e-9)).astype(np.int64)
        origin = lo + v / 2
        return tuple(origin.tolist()), vox, tuple(int(n) for n in shape)
    bounds = [np.asarray(m.vertices, float) for m in meshes_all if len(m.faces)]
    if not bounds:
        raise ParameterError("no mesh with faces to place a grid around; give like= or roi_nm")
    pts = np.concatenate(bounds)
    lo, hi = pts.min(0)[::-1], pts.max(0)[::-1]          # z, y, x
    v = np.asarray(vox)
    # voxel edges on multiples of the voxel size: grids of two calls line up
    first = np.floor(lo / v) - margin_voxels
    last = np.ceil(hi / v) + margin_voxels
    shape = (last - first).astype(np.int64)
    origin = (first + 0.5) * v
    return tuple(origin.tolist()), vox, tuple(int(n) for n in shape)


# --------------------------------------------------------------------------------------
# exact ray crossings
# --------------------------------------------------------------------------------------
def _orient_exact(au, av, bu, bv, pu, pv) -> int:
    """Exact sign of (b - a) x (p - a) from the floats' integer ratios (powers of two)."""
    ratios = [float(x).as_integer_ratio() for x in (au, av, bu, bv, pu, pv)]
    den = max(d for _, d in ratios)
    n = [num * (den // d) for num, d in ratios]
    det = (n[2] - n[0]) * (n[5] - n[1]) - (n[3] - n[1]) * (n[4] - n[0])
    return (det > 0) - (det < 0)


def _two_diff_err(a, b):
    """Rounding error of the float difference a - b (Knuth's TwoSum; 0: exact)."""
    d = a - b
    bb = d - a
    return (a - (d - bb)) + (-b - bb)


def _split(a):
    c = 134217729.0 * a        # 2^27 + 1 (Veltkamp)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod_err(a, b, p):
    """Rounding error of the float product p = a * b (Dekker's TwoProduct; 0: exact)."""
    ah, al = _split(a)
    bh, bl = _split(b)
    return al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def _edge_sign(au, av, bu, bv, pu, pv):
    """Sign of orient2d(a, b, p) for edges a -> b in canonical order, p perturbed.

    Exact: the float determinant is trusted beyond Shewchuk's error bound, or when its
    four differences and two products were exact (then the sign of their float
    difference is exact); otherwise it is recomputed in integers. A point on the line
    (zero) is moved by (eps, eps^2): its side is then that of the edge's direction, the
    same for every triangle sharing the edge and consistent at vertices (one perturbed
    point for all edges).
    """
    x1, y1, x2, y2 = bu - au, pv - av, bv - av, pu - au
    dl = x1 * y1
    dr = x2 * y2
    det = dl - dr
    sign = np.sign(det).astype(np.int8)
    unsure = np.flatnonzero(np.abs(det) <= _ERRBOUND * (np.abs(dl) + np.abs(dr)))
    if len(unsure):
        u = unsure
        exact = ((_two_diff_err(bu[u], au[u]) == 0) & (_two_diff_err(pv[u], av[u]) == 0)
                 & (_two_diff_err(bv[u], av[u]) == 0) & (_two_diff_err(pu[u], au[u]) == 0)
                 & (_two_prod_err(x1[u], y1[u], dl[u]) == 0)
                 & (_two_prod_err(x2[u], y2[u], dr[u]) == 0))
        for i in u[~exact]:
            sign[i] = _orient_exact(au[i], av[i], bu[i], bv[i], pu[i], pv[i])
    zero = sign == 0
    if zero.any():
        # E(p + (eps, eps^2)) = E(p) - (bv - av) eps + (bu - au) eps^2
        dv = bv[zero] - av[zero]
        du = bu[zero] - au[zero]
        sign[zero] = np.where(dv != 0, -np.sign(dv), np.sign(du)).astype(np.int8)
    return sign, det


def _ray_crossings(tri, ray_u, ray_v):
    """Every (triangle, ray) crossing: ray indices, crossing heights and signs.

    Parameters
    ----------
    tri : (F, 3, 3) float64
        Triangles in (u, v, w) coordinates; rays run along +w.
    ray_u, ray_v : (nu,), (nv,) float64
        Ray positions (the voxel centres); a ray is (iv, iu).

    Returns
    -------
    iv, iu : int64 arrays; w : float64; sign : int8 (+1 where the triangle is
    counter-clockwise seen from +w, i.e. its normal points along +w).
    """
    out_iv, out_iu, out_w, out_s = [], [], [], []
    nu, nv = len(ray_u), len(ray_v)
    if not len(tri) or not nu or not nv:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0), np.empty(0, np.int8)
    u0, du = ray_u[0], (ray_u[1] - ray_u[0]) if nu > 1 else 1.0
    v0, dv = ray_v[0], (ray_v[1] - ray_v[0]) if nv > 1 else 1.0
    tu, tv = tri[:, :, 0], tri[:, :, 1]
    # every ray within a triangle's bounds (the float quotients err by far less than 1)
    iu_lo = np.clip(np.floor((tu.min(1) - u0) / du), 0, nu).astype(np.int64)
    iu_hi = np.clip(np.ceil((tu.max(1) - u0) / du), -1, nu - 1).astype(np.int64)
    iv_lo = np.clip(np.floor((tv.min(1) - v0) / dv), 0, nv).astype(np.int64)
    iv_hi = np.clip(np.ceil((tv.max(1) - v0) / dv), -1, nv - 1).astype(np.int64)
    cu = np.maximum(iu_hi - iu_lo + 1, 0)
    cv = np.maximum(iv_hi - iv_lo + 1, 0)
    count = cu * cv
    keep = np.flatnonzero(count)
    # canonical order of each edge's end points (lexicographic in u, then v), shared by
    # every triangle holding the edge: the same floats enter the same determinant
    ends = [(0, 1), (1, 2), (2, 0)]
    csum = np.cumsum(count[keep])
    start = 0
    while start < len(keep):
        stop = int(np.searchsorted(csum, (csum[start - 1] if start else 0) + _CHUNK,
                                   side="right"))
        stop = max(stop, start + 1)
        t_idx = keep[start:stop]
        n_c = count[t_idx]
        t = np.repeat(t_idx, n_c)
        first = np.cumsum(n_c) - n_c
        local = np.arange(int(n_c.sum())) - np.repeat(first, n_c)
        ru = iu_lo[t] + local % cu[t]
        rv = iv_lo[t] + local // cu[t]
        pu, pv = ray_u[ru], ray_v[rv]
        signs, dets = [], []
        for a, b in ends:
            A, B = tri[t, a], tri[t, b]
            swap = (A[:, 0] > B[:, 0]) | ((A[:, 0] == B[:, 0]) & (A[:, 1] > B[:, 1]))
            P = np.where(swap[:, None], B, A)
            Q = np.where(swap[:, None], A, B)
            s, d = _edge_sign(P[:, 0], P[:, 1], Q[:, 0], Q[:, 1], pu, pv)
            flip = np.where(swap, -1, 1)
            signs.append(s * flip.astype(np.int8))
            dets.append(d * flip)
        s0, s1, s2 = signs
        hit = (s0 == s1) & (s1 == s2) & (s0 != 0)
        if hit.any():
            th = t[hit]
            # barycentric weights: the determinant of the edge opposite each vertex
            w0, w1, w2 = dets[1][hit], dets[2][hit], dets[0][hit]
            tot = w0 + w1 + w2
            tot = np.where(tot == 0, 1.0, tot)
            w = (w0 * tri[th, 0, 2] + w1 * tri[th, 1, 2] + w2 * tri[th, 2, 2]) / tot
            # a crossing within a float's reach of a vertex: keep it within the triangle
            w = np.clip(w, tri[th, :, 2].min(1), tri[th, :, 2].max(1))
            out_iv.append(rv[hit])
            out_iu.append(ru[hit])
            out_w.append(w)
            out_s.append(s0[hit])
        start = stop
    if not out_w:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0), np.empty(0, np.int8)
    return (np.concatenate(out_iv), np.concatenate(out_iu), np.concatenate(out_w),
            np.concatenate(out_s))


def _first_above(w, origin, step, n):
    """Index of the first voxel centre (origin + k step, k = 0..n) strictly above w."""
    k = np.floor((w - origin) / step).astype(np.int64) + 1
    k = np.clip(k, 0, n)
    # exact against the centres as the grid defines them (origin + k * step)
    below = (k > 0) & (origin + (k - 1) * step > w)
    k[below] -= 1
    above = (k < n) & (origin + np.minimum(k, n - 1) * step <= w)
    k[above] += 1
    return k


def _is_closed(faces: np.ndarray, n_vertices: int) -> bool:
    """Every undirected edge in exactly two faces."""
    if not len(faces):
        return False
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
    key = np.minimum(e[:, 0], e[:, 1]) * (n_vertices + 1) + np.maximum(e[:, 0], e[:, 1])
    _, counts = np.unique(key, return_counts=True)
    return bool(np.all(counts == 2))


def _merged(vertices, faces):
    """Vertices merged by exact coordinates (edges shared by coordinates, not by index)."""
    v = np.ascontiguousarray(vertices + 0.0)             # -0.0 -> 0.0
    rows = v.view(np.dtype((np.void, v.dtype.itemsize * 3))).ravel()
    _, first, inv = np.unique(rows, return_index=True, return_inverse=True)
    return v[first], inv.reshape(-1)[faces]


def _cone(vertices, faces):
    """Triangles closing the mesh's boundary, one cone per boundary component.

    The boundary of a 2-chain is a 1-cycle (and so is each of its connected
    components), so mesh + cones is closed whatever the holes' shapes; each boundary
    edge a -> b of net multiplicity m gives the triangle (b, a, apex) m times, the apex
    being the mean of its component's vertices. Returns a list of (K, 3, 3) arrays.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    d = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    lo = np.minimum(d[:, 0], d[:, 1])
    hi = np.maximum(d[:, 0], d[:, 1])
    sgn = np.where(d[:, 0] < d[:, 1], 1, -1)
    key = lo.astype(np.int64) * (len(vertices) + 1) + hi
    uk, inv = np.unique(key, return_inverse=True)
    net = np.bincount(inv.reshape(-1), weights=sgn, minlength=len(uk)).astype(np.int64)
    bad = np.flatnonzero(net)
    if not len(bad):
        return []
    a = uk[bad] // (len(vertices) + 1)
    b = uk[bad] % (len(vertices) + 1)
    m = net[bad]
    # oriented edge: lo -> hi with multiplicity m (negative: hi -> lo)
    src = np.repeat(np.where(m > 0, a, b), np.abs(m))
    dst = np.repeat(np.where(m > 0, b, a), np.abs(m))
    n = len(vertices)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    parts = []
    for c in np.unique(comp[src]):
        sel = comp[src] == c
        verts = np.unique(np.r_[src[sel], dst[sel]])
        apex = vertices[verts].mean(0)
        parts.append(np.stack([vertices[dst[sel]], vertices[src[sel]],
                               np.broadcast_to(apex, (int(sel.sum()), 3))], 1))
    return parts


def _cone_bound(parts, pts):
    """Upper bound of |sum of the cones' solid angles| at each point: area / distance^2
    per cone (distance to its bounding box, a lower bound of the distance to it)."""
    out = np.zeros(len(pts))
    for tri in parts:
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]),
                                    axis=1).sum()
        lo, hi = tri.reshape(-1, 3).min(0), tri.reshape(-1, 3).max(0)
        gap = np.maximum(np.maximum(lo - pts, pts - hi), 0.0)
        d2 = np.einsum("ij,ij->i", gap, gap)
        with np.errstate(divide="ignore"):
            out += np.where(d2 > 0, area / np.where(d2 > 0, d2, 1.0), np.inf)
    return out


def _solid_angle_sum(tri, pts):
    """Sum over triangles of the signed solid angle at each point (van Oosterom-Strackee)."""
    out = np.zeros(len(pts))
    step = max(1, 2_000_000 // max(1, len(tri)))
    for s in range(0, len(pts), step):
        p = pts[s:s + step, None, :]
        a = tri[None, :, 0] - p
        b = tri[None, :, 1] - p
        c = tri[None, :, 2] - p
        la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
        num = np.einsum("ijk,ijk->ij", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("ijk,ijk->ij", a, b) * lc
               + np.einsum("ijk,ijk->ij", a, c) * lb + np.einsum("ijk,ijk->ij", b, c) * la)
        out[s:s + step] = (2.0 * np.arctan2(num, den)).sum(1)
    return out


#: Voxels of one slab of the inside test (rows of rays at a time; bounds its work arrays
#: at ~15 bytes per voxel).
SLAB_VOXELS = 1 << 23


class _Prepared:
    """A mesh ready for the inside test: merged triangles, the closing cone of an open
    mesh, and which test applies.

    ``mode``: ``"open"`` (generalised winding number: signed crossings of mesh + cone
    minus the cone's solid angle), ``"oriented"`` (closed and consistently oriented: the
    signed crossings are its winding number, whose parity is the crossing parity; they
    differ only where the surface intersects itself, and the winding number (>= 1) then
    decides), ``"unoriented"`` (closed, faces not consistently oriented: parity).
    ``n_differ`` counts the voxels where parity and winding number disagreed.
    """

    def __init__(self, vertices, faces):
        v, f = _merged(np.asarray(vertices, float), np.asarray(faces, np.int64))
        closed = _is_closed(f, len(v))
        tri = v[f]
        self.orient = 1
        if closed:
            d = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
            key = d[:, 0] * (len(v) + 1) + d[:, 1]
            oriented = len(np.unique(key)) == len(key)
            self.mode = "oriented" if oriented else "unoriented"
            # inward-facing normals: negative enclosed volume, winding number -1 inside
            if oriented and np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])
                                      ).sum() < 0:
                self.orient = -1
            self.cone = np.empty((0, 3, 3))
            self.cone_parts = []
        else:
            self.mode = "open"
            self.cone_parts = _cone(v, f)
            self.cone = (np.concatenate(self.cone_parts) if self.cone_parts
                         else np.empty((0, 3, 3)))
            tri = np.concatenate([tri, self.cone])
        self.tri = tri
        self.n_differ = 0

    @property
    def test(self) -> str:
        """The name of the test that decided, for the image's metadata."""
        if self.mode == "open":
            return "winding number"
        if self.mode == "unoriented":
            return "parity (faces not consistently oriented)"
        if self.n_differ:
            return (f"winding number (closed but self-intersecting: {self.n_differ} voxel(s) "
                    "where crossing parity differs)")
        return "parity"


def _prepared(vertices, faces) -> _Prepared:
    """The mesh prepared for :func:`_inside_slabs`."""
    return _Prepared(vertices, faces)


def _inside_slabs(prepared, origin, voxel, lo, hi, *, slab_voxels=SLAB_VOXELS):
    """Inside test at the voxel centres of the block ``[lo, hi)`` (z, y, x indices) of a
    mesh (:func:`_prepared`), in slabs of rows: yields ``(y0, y1, inside)`` with
    ``inside`` of shape ``(nz, y1 - y0, nx)`` (:func:`_inside_block`: all at once)."""
    oz, oy, ox = origin
    vz, vy, vx = voxel
    tri, cone = prepared.tri, prepared.cone
    nz, nu = hi[0] - lo[0], hi[2] - lo[2]
    ray_u = ox + np.arange(lo[2], hi[2]) * vx
    rows = max(1, int(slab_voxels // max(1, (nz + 1) * nu)))
    tv_lo, tv_hi = tri[:, :, 1].min(1), tri[:, :, 1].max(1)
    z0 = oz + lo[0] * vz
    for y0 in range(lo[1], hi[1], rows):
        y1 = min(hi[1], y0 + rows)
        ray_v = oy + np.arange(y0, y1) * vy
        near = (tv_hi >= ray_v[0] - vy) & (tv_lo <= ray_v[-1] + vy)
        iv, iu, w, s = _ray_crossings(tri[near], ray_u, ray_v)
        k = _first_above(w, z0, vz, nz)
        nv = y1 - y0
        if prepared.mode == "unoriented":
            acc = np.zeros((nz + 1, nv, nu), np.uint8)
            np.add.at(acc, (k, iv, iu), np.uint8(1))
            np.cumsum(acc, axis=0, dtype=np.uint8, out=acc)
            yield y0, y1, (acc[:nz] & 1).astype(bool)
            continue
        if prepared.mode == "oriented":
            # winding number below each centre: minus the signed crossings below it
            acc = np.zeros((nz + 1, nv, nu), np.int16)
            np.add.at(acc, (k, iv, iu), (-prepared.orient * s).astype(np.int16))
            np.cumsum(acc, axis=0, dtype=np.int16, out=acc)
            inside = acc[:nz] >= 1
            parity = (acc[:nz] & 1).astype(bool)
            prepared.n_differ += int(np.count_nonzero(inside != parity))
            yield y0, y1, inside
            continue
        acc = np.zeros((nz + 1, nv, nu), np.int32)
        np.add.at(acc, (k, iv, iu), -s.astype(np.int32))
        np.cumsum(acc, axis=0, out=acc)
        # generalised winding number = W (integer, mesh + cones) - cones' solid angle / 4pi.
        # Where the cones' solid angle is bounded below 2 pi (far from the holes) the
        # decision w > 0.5 is W >= 1; the solid angles are summed only near the holes.
        inside = acc[:nz] >= 1
        wind = acc[:nz]
        if len(cone):
            zz, yy, xx = np.meshgrid(oz + np.arange(lo[0], hi[0]) * vz, ray_v, ray_u,
                                     indexing="ij")
            pts = np.c_[xx.ravel(), yy.ravel(), zz.ravel()]
            del zz, yy, xx
            near = np.flatnonzero(_cone_bound(prepared.cone_parts, pts) >= np.pi)
            if len(near):
                w_near = wind.ravel()[near] - _solid_angle_sum(cone, pts[near]) / (4 * np.pi)
                flat = inside.reshape(-1)
                flat[near] = w_near > 0.5
        yield y0, y1, inside


def _inside_block(vertices, faces, origin, voxel, shape, lo, hi):
    """Inside test at the voxel centres of the block ``[lo, hi)`` (z, y, x indices).

    Returns a bool array of the block's shape and the name of the test that decided
    (``"parity"`` for a closed mesh, ``"winding number"`` for an open one; see
    :class:`_Prepared`).
    """
    prepared = _prepared(vertices, faces)
    out = np.zeros(tuple(int(b - a) for a, b in zip(lo, hi)), bool)
    for y0, y1, inside in _inside_slabs(prepared, origin, voxel, lo, hi):
        out[:, y0 - lo[1]:y1 - lo[1]] = inside
    return out, prepared.test


def _block_of(vertices, origin, voxel, shape):
    """Index range [lo, hi) (z, y, x) of the voxel centres within the mesh's bounds."""
    v = np.asarray(vertices, float)
    mn, mx = v.min(0)[::-1], v.max(0)[::-1]
    o, s = np.asarray(origin), np.asarray(voxel)
    lo = np.clip(np.floor((mn - o) / s).astype(np.int64), 0, np.asarray(shape))
    hi = np.clip(np.ceil((mx - o) / s).astype(np.int64) + 1, 0, np.asarray(shape))
    return lo, hi


# --------------------------------------------------------------------------------------
# public: mesh_to_labels, mesh_fraction
# --------------------------------------------------------------------------------------
def mesh_to_labels(meshes, *, voxel_nm=None, like: VoxelImage | None = None, roi_nm=None,
                   units: str | None = None) -> VoxelImage:
    """Label volume of spine (and dendrite) meshes, decided exactly at voxel centres.

    Label values: 0 background; spine ``k`` gets ``k + 1``; the dendrite gets
    ``max spine_id + 2`` (1 without spines), recorded in the metadata
    (``metadata["smlmspine.labels"]``). A spine wins over the dendrite where they
    overlap (the dendrite mesh of ``smlmspine mesh`` holds its spines), and where two
    spines overlap the larger ``spine_id`` wins (``n_overlap_voxels`` in the metadata
    counts such voxels). Inside/outside is decided at each voxel centre: crossing parity
    along rays for closed meshes, the generalised winding number (> 0.5) for open ones
    (see the module docstring); a voxel is never filled because the surface passes
    through it.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        A mesh folder (``spine_<id>.ply``, ``dendrite.ply``, as written by
        ``smlmspine mesh``) or ``{spine_id: trimesh.Trimesh, "dendrite": mesh}``; nm.
    voxel_nm : float or (float, float, float), optional
        Voxel size in nm (one value, or z, y, x). Required unless ``like`` is given.
    like : VoxelImage, optional
        A 3D image whose grid (shape, origin, voxel size) the labels take, so that labels
        and a rendering line up voxel for voxel.
    roi_nm : sequence of 6 float, optional
        ``(x0, y0, x1, y1, z0, z1)`` in nm, as for :func:`smlmspine.voxel.render`: the
        region to label (voxel 0 starts at the lower corner; the same grid as ``render``
        with this ROI). Default: the meshes' bounds plus two voxels, with voxel edges on
        multiples of the voxel size.
    units : {"nm", "um"}, optional
        Units of mesh files that do not declare theirs (folders only).

    Returns
    -------
    VoxelImage
        ``uint32`` labels, axes ``("z", "y", "x")``, ``value_unit="label"``.

    Raises
    ------
    ParameterError
        Neither ``voxel_nm`` nor ``like``; a bad ROI; a grid over the memory budget
        (``SMLMSPINE_MEMORY_BUDGET_GB``).
    FormatError
        A mesh folder that does not exist or holds no mesh.

    Examples
    --------
    >>> import trimesh
    >>> img = mesh_to_labels({0: trimesh.creation.box((100.0, 100.0, 100.0))}, voxel_nm=10)
    >>> int((img.data == 1).sum())   # 10 x 10 x 10 voxel centres inside the box
    1000
    >>> img.metadata["smlmspine.labels"]["offset"]
    1
    """
    from .._validate import check_memory

    spines, dendrite = load_meshes(meshes, units=units)
    allm = list(spines.values()) + ([dendrite] if dendrite is not None else [])
    origin, voxel, shape = _grid(allm, voxel_nm=voxel_nm, like=like, roi_nm=roi_nm)
    n_vox = int(np.prod(shape))
    check_memory(n_vox * 4.0, what=f"a label volume of {shape} voxels (z, y, x; voxel "
                                   f"{voxel} nm)")
    blocks = {k: _block_of(m.vertices, origin, voxel, shape) for k, m in spines.items()
              if len(m.faces)}
    if dendrite is not None and len(dendrite.faces):
        blocks["dendrite"] = _block_of(dendrite.vertices, origin, voxel, shape)
    dendrite_label = (max(spines) + 2) if spines else 1
    labels = np.zeros(shape, np.uint32)
    how = {}

    def fill(mesh, lo, hi, value, name):
        n_over = 0
        prepared = _prepared(mesh.vertices, mesh.faces)
        for y0, y1, inside in _inside_slabs(prepared, origin, voxel, lo, hi):
            view = labels[lo[0]:hi[0], y0:y1, lo[2]:hi[2]]
            if value != dendrite_label:
                hit = view[inside]
                n_over += int(np.count_nonzero((hit != 0) & (hit != dendrite_label)))
            view[inside] = value
        how[name] = prepared.test
        return n_over

    if "dendrite" in blocks and np.all(blocks["dendrite"][1] > blocks["dendrite"][0]):
        fill(dendrite, *blocks["dendrite"], dendrite_label, "dendrite")
    overlap = 0
    for k, m in spines.items():
        if k in blocks and np.all(blocks[k][1] > blocks[k][0]):
            overlap += fill(m, *blocks[k], k + 1, str(k))
    convention = {"offset": 1, "background": 0, "dendrite_label": int(dendrite_label),
                  "spine_ids": [int(k) for k in spines],
                  "overlap_rule": "spines over the dendrite; the larger spine_id over "
                                  "another spine",
                  "n_overlap_voxels": overlap,
                  "inside_test": {k: v for k, v in how.items()}}
    meta = {LABEL_CONVENTION: convention,
            "source_step": "voxel.mesh_to_labels",
            "source": str(meshes) if isinstance(meshes, (str, Path)) else "meshes"}
    return VoxelImage(labels, ("z", "y", "x"), tuple(voxel), tuple(origin),
                      value_unit="label", metadata=meta)


#: Largest supersampling factor of :func:`mesh_fraction` (s^3 samples per voxel).
MAX_SUPERSAMPLE = 16


def mesh_fraction(meshes, *, voxel_nm=None, like: VoxelImage | None = None, roi_nm=None,
                  supersample: int = 4, units: str | None = None) -> VoxelImage:
    """Partial-volume fraction: the part of each voxel inside the meshes (their union).

    Each voxel is split into ``supersample^3`` sub-voxels whose centres get the exact
    inside test of :func:`mesh_to_labels`; the fraction is the share inside any mesh
    (spines or dendrite). Same grid rules as :func:`mesh_to_labels`, so the two line up.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        As for :func:`mesh_to_labels`.
    voxel_nm : float or (float, float, float), optional
        Voxel size in nm (required unless ``like`` is given).
    like : VoxelImage, optional
        A 3D image whose grid to use.
    roi_nm : sequence of 6 float, optional
        ``(x0, y0, x1, y1, z0, z1)`` in nm, as for :func:`smlmspine.voxel.render`.
    supersample : int
        Sub-voxels per axis (1-16; default 4: a fraction in steps of 1/64).
    units : {"nm", "um"}, optional
        Units of mesh files that do not declare theirs.

    Returns
    -------
    VoxelImage
        ``float32`` fractions in [0, 1], axes ``("z", "y", "x")``,
        ``value_unit="fraction"``.

    Raises
    ------
    ParameterError
        As :func:`mesh_to_labels`, or ``supersample`` outside 1-16.

    Examples
    --------
    >>> import trimesh
    >>> box = trimesh.creation.box((95.0, 100.0, 100.0))   # faces at +-47.5 nm
    >>> img = mesh_fraction({0: box}, voxel_nm=10, supersample=4)
    >>> round(float(img.data.sum()) * 1000, 1)   # volume in nm^3 from the fractions
    950000.0
    """
    from .._validate import check_memory, integer

    s = integer(supersample, "supersample", minimum=1, maximum=MAX_SUPERSAMPLE)
    spines, dendrite = load_meshes(meshes, units=units)
    allm = [m for m in list(spines.values()) + [dendrite] if m is not None and len(m.faces)]
    origin, voxel, shape = _grid(allm, voxel_nm=voxel_nm, like=like, roi_nm=roi_nm)
    check_memory(int(np.prod(shape)) * 4.0, what=f"a fraction image of {shape} voxels")
    fine_voxel = tuple(v / s for v in voxel)
    fine_origin = tuple(o - v / 2 + fv / 2 for o, v, fv in zip(origin, voxel, fine_voxel))
    fine_shape = tuple(n * s for n in shape)
    out = np.zeros(shape, np.float32)
    # one slab of voxel layers at a time: the union of the meshes at the fine grid
    per_layer = shape[1] * shape[2] * s ** 3 * 14.0
    from .._validate import memory_budget_bytes

    layers = max(1, min(shape[0], int(memory_budget_bytes() / 4 // max(per_layer, 1))))
    check_memory(per_layer * layers, what=f"supersample={s}: one slab of sub-voxels")
    blocks = [(m, _block_of(m.vertices, fine_origin, fine_voxel, fine_shape)) for m in allm]
    for z0 in range(0, shape[0], layers):
        z1 = min(shape[0], z0 + layers)
        union = np.zeros(((z1 - z0) * s, shape[1] * s, shape[2] * s), bool)
        for m, (lo, hi) in blocks:
            lo2 = np.array([max(lo[0], z0 * s), lo[1], lo[2]])
            hi2 = np.array([min(hi[0], z1 * s), hi[1], hi[2]])
            if not np.all(hi2 > lo2):
                continue
            inside, _ = _inside_block(m.vertices, m.faces, fine_origin, fine_voxel,
                                      fine_shape, lo2, hi2)
            sl = (slice(lo2[0] - z0 * s, hi2[0] - z0 * s), slice(lo2[1], hi2[1]),
                  slice(lo2[2], hi2[2]))
            union[sl] |= inside
        out[z0:z1] = union.reshape(z1 - z0, s, shape[1], s, shape[2], s).mean(
            axis=(1, 3, 5), dtype=np.float64)
    meta = {"source_step": "voxel.mesh_fraction", "supersample": s,
            "source": str(meshes) if isinstance(meshes, (str, Path)) else "meshes"}
    return VoxelImage(out, ("z", "y", "x"), tuple(voxel), tuple(origin),
                      value_unit="fraction", metadata=meta)


# --------------------------------------------------------------------------------------
# public: labels_to_points
# --------------------------------------------------------------------------------------
def labels_to_points(table: pa.Table, labels: VoxelImage, *, column: str = "spine_id",
                     outside: int = -1, offset: int | None = None) -> pa.Table:
    """The table with a label column looked up in a label image at every localization.

    Each localization takes the value of the voxel holding it (pixel-centre
    convention: ``index = floor((coordinate - origin) / voxel + 0.5)`` per axis, the
    image's ``origin_nm`` being the centre of voxel 0). A 2D image (axes ``y, x``) uses
    ``x, y`` only; a 3D image needs ``z``. Value ``L`` becomes ``L - offset``;
    background (0), the dendrite label of a :func:`mesh_to_labels` image, points
    outside the image and points with a NaN coordinate get ``outside``. So
    ``labels_to_points(table, mesh_to_labels(meshes))`` gives each localization its
    ``spine_id`` (-1 outside every spine).

    Parameters
    ----------
    table : pyarrow.Table
        Localization table (``x``, ``y`` and, for a 3D image, ``z`` in nm); STORM or
        MINFLUX.
    labels : VoxelImage
        Integer label image, 2D or 3D, without a channel axis (a numpy, dask or zarr
        array).
    column : str
        Name of the new column (replaced when it exists; default ``"spine_id"``).
    outside : int
        Value for background and points outside the image (default -1).
    offset : int, optional
        Subtracted from every non-zero label. Default: the offset recorded by
        :func:`mesh_to_labels` in the image's metadata (1), else 0 (a segmentation's
        labels are taken as they are).

    Returns
    -------
    pyarrow.Table
        A new table with ``column`` (int64) added; the input is not changed.

    Raises
    ------
    ParameterError
        The image is not an integer 2D/3D image without channels, or the table lacks a
        coordinate the image needs.

    Examples
    --------
    >>> import numpy as np
    >>> import pyarrow as pa
    >>> img = VoxelImage(np.array([[0, 3], [5, 0]], np.uint32), ("y", "x"), (10.0, 10.0),
    ...                  (5.0, 5.0))
    >>> t = pa.table({"x": [5.0, 14.0, 6.0, 40.0], "y": [5.0, 6.0, 16.0, 5.0]})
    >>> labels_to_points(t, img, column="label").column("label").to_pylist()
    [-1, 3, 5, -1]
    """
    from ..schema import coordinates, with_columns, with_history

    if not isinstance(labels, VoxelImage):
        raise ParameterError(f"labels must be a VoxelImage, got {type(labels).__name__}")
    axes = labels.spatial_axes
    if "c" in labels.axes or "rgb" in labels.axes or axes not in (("y", "x"), ("z", "y", "x")):
        raise ParameterError("labels must be a 2D (y, x) or 3D (z, y, x) label image without "
                             f"channels, got axes {labels.axes}")
    dtype = np.dtype(getattr(labels.data, "dtype", np.asarray(labels.data).dtype))
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise ParameterError(f"labels must hold integers (a label image), got {dtype}")
    if not isinstance(column, str) or not column:
        raise ParameterError(f"column must be a non-empty name, got {column!r}")
    outside = int(outside)
    conv = (labels.metadata or {}).get(LABEL_CONVENTION, {}) if isinstance(
        labels.metadata, Mapping) else {}
    if offset is None:
        offset = int(conv.get("offset", 0))
    dendrite_label = conv.get("dendrite_label")
    dims = len(axes)
    if dims == 3 and "z" not in table.column_names:
        raise ParameterError("the label image is 3D (z, y, x) but the table has no z column; "
                             "use a 2D image for 2D data")
    xyz = coordinates(table, dims=dims)                 # (N, dims) in x, y[, z]
    zyx = xyz[:, ::-1]
    finite = np.isfinite(zyx).all(1)
    shape = np.asarray(labels.spatial_shape)
    # far points (and NaN) kept away from the integer cast: index them at -1
    lo = np.asarray(labels.origin_nm) - np.asarray(labels.voxel_nm)
    hi = np.asarray(labels.origin_nm) + np.asarray(labels.voxel_nm) * shape
    near = finite & np.all((zyx >= lo) & (zyx <= hi), axis=1)
    idx = np.full(zyx.shape, -1, np.int64)
    idx[near] = labels.index_of(zyx[near])
    ok = near & np.all((idx >= 0) & (idx < shape), axis=1)
    vals = np.full(len(zyx), outside, np.int64)
    if ok.any():
        raw = _lookup(labels.data, idx[ok]).astype(np.int64)
        mapped = np.where(raw == 0, outside, raw - int(offset))
        if dendrite_label is not None:
            mapped = np.where(raw == int(dendrite_label), outside, mapped)
        vals[ok] = mapped
    out = with_columns(table, {column: vals}, units={column: "1"})
    return with_history(out, "voxel.labels_to_points",
                        {"column": column, "outside": outside, "offset": int(offset),
                         "image_shape": [int(n) for n in shape],
                         "voxel_nm": [float(v) for v in labels.voxel_nm],
                         "origin_nm": [float(o) for o in labels.origin_nm]})


def _lookup(data, idx):
    """Values of ``data`` at integer indices ``idx`` (N, D), numpy, dask or zarr."""
    sel = tuple(idx.T)
    if isinstance(data, np.ndarray):
        return data[sel]
    if hasattr(data, "vindex"):
        out = data.vindex[sel]
        return np.asarray(out.compute() if hasattr(out, "compute") else out)
    return np.asarray(data)[sel]
