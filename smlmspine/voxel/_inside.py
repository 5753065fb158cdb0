"""The exact inside test of a triangle mesh at the centres of a voxel grid.

Rays run along the grid's z axis through every (y, x) voxel centre. Each triangle
crossing is found with exact orientation tests (a float filter, Dekker/Knuth error-free
transforms, integer arithmetic when neither decides) and a symbolic perturbation of the
ray (Edelsbrunner & Muecke's simulation of simplicity), so a ray through an edge or a
vertex crosses the surface exactly once where it passes through it. A closed mesh is
decided by crossing parity (its winding number where it intersects itself), any other
mesh by its generalised winding number (Jacobson et al. 2013), computed exactly as the
integer winding number of the mesh closed by cones over its boundary minus the cones'
solid angle (van Oosterom & Strackee 1983). Used by :mod:`smlmspine.voxel._labels` and
:mod:`smlmspine.voxel._grids`.
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []

#: Candidate (triangle, ray) pairs handled at once (bounds the work arrays, ~200 B each).
_CHUNK = 1_000_000
#: Shewchuk's orient2d error bound factor ((3 + 16 eps) eps, eps = 2^-53), with margin.
_ERRBOUND = 3.3306690738754716e-16 * 1.01


def _orient_exact(au, av, bu, bv, pu, pv) -> int:
    """Exact sign of (b - a) x (p - a) from the floats' integer ratios (powers of two)."""
    ratios = [float(x).as_integer_ratio() for x in (au, av, bu, bv, pu, pv)]
    den = max(d for _, d in ratios)
    n = [num * (den // d) for num, d in ratios]
    det = (n[2] - n[0]) * (n[5] - n[1]) - (n[3] - n[1]) * (n[4] - n[0])
    return (det > 0) - (det < 0)


def _two_sum(a, b):
    """a + b = x + y exactly (Knuth's TwoSum)."""
    x = a + b
    bv = x - a
    av = x - bv
    return x, (a - av) + (b - bv)


def _split(a):
    c = 134217729.0 * a        # 2^27 + 1 (Veltkamp)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """a * b = p + e exactly (Dekker's TwoProduct)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def _exact_sign(terms):
    """Exact sign of the sum of each row of ``terms`` (N, m) (Shewchuk's expansion sum:
    the components grow without overlap; the largest non-zero one has the sum's sign)."""
    comps = []
    for j in range(terms.shape[1]):
        q = terms[:, j]
        new = []
        for e in comps:
            q, h = _two_sum(q, e)
            new.append(h)
        new.append(q)
        comps = new
    sign = np.zeros(len(terms), np.int8)
    for e in comps:                       # later components are larger: last non-zero wins
        sign = np.where(e != 0, np.sign(e), sign).astype(np.int8)
    return sign


def _orient_exact_vec(au, av, bu, bv, pu, pv):
    """Exact sign of (b - a) x (p - a), vectorized (error-free transforms)."""
    x1 = _two_sum(bu, -au)
    y1 = _two_sum(pv, -av)
    x2 = _two_sum(bv, -av)
    y2 = _two_sum(pu, -au)
    terms = []
    for xa in x1:
        for yb in y1:
            terms.extend(_two_prod(xa, yb))
    for xa in x2:
        for yb in y2:
            terms.extend(-t for t in _two_prod(xa, yb))
    return _exact_sign(np.stack(terms, axis=1))


def _edge_sign(au, av, bu, bv, pu, pv):
    """Sign of orient2d(a, b, p) for edges a -> b in canonical order, p perturbed.

    Exact: the float determinant is trusted beyond Shewchuk's error bound; otherwise
    its sign is computed exactly from error-free transforms (the differences as two
    floats each, the products as sums of exact float products, the 16 terms summed as
    a non-overlapping expansion). A point on the line (zero) is moved by
    (eps, eps^2): its side is then that of the edge's direction, the same for every
    triangle sharing the edge and consistent at vertices (one perturbed point for all
    edges).
    """
    x1, y1, x2, y2 = bu - au, pv - av, bv - av, pu - au
    dl = x1 * y1
    dr = x2 * y2
    det = dl - dr
    sign = np.sign(det).astype(np.int8)
    unsure = np.flatnonzero(np.abs(det) <= _ERRBOUND * (np.abs(dl) + np.abs(dr)))
    if len(unsure):
        u = unsure
        sign[u] = _orient_exact_vec(au[u], av[u], bu[u], bv[u], pu[u], pv[u])
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
            key = np.sort(d[:, 0] * (len(v) + 1) + d[:, 1])
            oriented = not np.any(key[1:] == key[:-1])     # no directed edge twice
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
            w = acc[:nz]
            inside = w >= 1
            if w.max(initial=0) > 1 or w.min(initial=0) < 0:   # else parity == inside
                prepared.n_differ += int(np.count_nonzero(inside != (w & 1).astype(bool)))
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
