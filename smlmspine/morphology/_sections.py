"""Centreline and perpendicular cross-sections of a closed spine mesh.

The centreline follows the geodesic distance from the spine base over the mesh
surface: vertices are binned by geodesic distance and each bin's centroid is a
centreline point (for a tube, a ring of equal geodesic distance is a cross-section
ring, so this follows bent spines). Cross-sections are cut perpendicular to the
smoothed centreline with a vectorised plane/mesh intersection; the loop enclosing the
centreline point is kept (a bent spine may cut the same plane elsewhere too).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import ConvexHull, QhullError

from ..errors import ParameterError

__all__ = ["geodesic_from_base", "centreline", "cross_section", "section_profile"]


def _edge_graph(vertices: np.ndarray, edges: np.ndarray):
    lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    n = len(vertices)
    g = coo_matrix((np.r_[lengths, lengths], (np.r_[edges[:, 0], edges[:, 1]],
                                               np.r_[edges[:, 1], edges[:, 0]])), shape=(n, n))
    return g.tocsr(), lengths


def geodesic_from_base(mesh, base_point_nm: np.ndarray, base_axis: np.ndarray | None = None) -> np.ndarray:
    """Geodesic distance (nm) of every vertex from the spine base over the mesh edges.

    Sources are the vertices within one median edge length of the base plane (when an
    axis is given) near the base point, or the vertex nearest to the base point.
    """
    v = np.asarray(mesh.vertices, dtype=float)
    graph, lengths = _edge_graph(v, np.asarray(mesh.edges_unique))
    h = float(np.median(lengths)) if len(lengths) else 1.0
    d_base = np.linalg.norm(v - base_point_nm, axis=1)
    if base_axis is not None:
        height = (v - base_point_nm) @ base_axis
        radius = np.sqrt(np.maximum(d_base ** 2 - height ** 2, 0))
        reach = np.percentile(radius[np.abs(height) <= 2 * h], 100) if np.any(np.abs(height) <= 2 * h) else 0
        sources = np.flatnonzero((height <= h) & (radius <= reach + h))
    else:
        sources = np.array([], dtype=int)
    if sources.size == 0:
        sources = np.array([int(np.argmin(d_base))])
    dist = dijkstra(graph, directed=False, indices=sources, min_only=True)
    if not np.all(np.isfinite(dist)):
        raise ParameterError("the spine mesh is not one connected body "
                             f"({int(np.sum(~np.isfinite(dist)))} vertices unreachable from the base)")
    return dist


def centreline(mesh, base_point_nm: np.ndarray, base_axis: np.ndarray | None = None, *,
               step_nm: float = 10.0, smooth_nm: float = 30.0,
               geodesic: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centreline from base to tip: ``(points (K, 3) nm, arc length (K,) nm)``.

    Starts at the base point and ends at the tip (the vertex of largest geodesic
    distance); intermediate points are centroids of geodesic level bins of width
    ``step_nm``, smoothed with a Gaussian of ``smooth_nm`` along the arc.
    """
    v = np.asarray(mesh.vertices, dtype=float)
    g = geodesic_from_base(mesh, base_point_nm, base_axis) if geodesic is None else geodesic
    tip = v[int(np.argmax(g))]
    # Bins narrower than the mesh edges hold partial vertex rings whose centroids are
    # off-axis: use at least 3x the 90th-percentile edge length.
    edges = np.asarray(mesh.edges_unique)
    elen = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    width = max(step_nm, 3.0 * float(np.percentile(elen, 90)))
    smooth_nm = max(smooth_nm, width)
    nbins = max(int(np.ceil(g.max() / width)), 1)
    idx = np.minimum((g / width).astype(int), nbins - 1)
    counts = np.bincount(idx, minlength=nbins)
    sums = np.stack([np.bincount(idx, weights=v[:, k], minlength=nbins) for k in range(3)], axis=1)
    ok = counts > 0
    cents = sums[ok] / counts[ok, None]
    pts = np.vstack([base_point_nm, cents, tip])
    # Smooth the interior points along the arc (Gaussian kernel in arc length).
    s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    if smooth_nm > 0 and len(pts) > 3:
        w = np.exp(-0.5 * ((s[:, None] - s[None, :]) / smooth_nm) ** 2)
        sm = (w @ pts) / w.sum(axis=1, keepdims=True)
        sm[0], sm[-1] = pts[0], pts[-1]
        pts = sm
    keep = np.r_[True, np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-9]
    pts = pts[keep]
    s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    return pts, s


def _plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0, 0]) if abs(normal[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(normal, a)
    u /= np.linalg.norm(u)
    return u, np.cross(normal, u)


def cross_section(mesh, origin: np.ndarray, normal: np.ndarray, *, _cache: dict | None = None) -> dict | None:
    """The cross-section loop of a closed mesh that encloses ``origin`` in the plane.

    Returns
    -------
    dict or None
        ``area_nm2``, ``diameter_nm`` (equivalent 2*sqrt(A/pi)), ``min_width_nm`` and
        ``max_width_nm`` (minimum/maximum Feret width of the loop), ``perimeter_nm``;
        ``None`` when no loop of the mesh encloses the origin.
    """
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    v = np.asarray(mesh.vertices, dtype=float)
    faces = np.asarray(mesh.faces)
    if _cache is None or "fe" not in _cache:
        fe = np.asarray(mesh.faces_unique_edges)
        fn = np.asarray(mesh.face_normals)
        if _cache is not None:
            _cache.update(fe=fe, fn=fn)
    else:
        fe, fn = _cache["fe"], _cache["fn"]
    d = (v - origin) @ normal
    pos = d >= 0
    fpos = pos[faces]
    nposf = fpos.sum(axis=1)
    cross = (nposf == 1) | (nposf == 2)
    if not np.any(cross):
        return None
    cf = faces[cross]
    cfe = fe[cross]
    # Face edges in trimesh order: (v0,v1), (v1,v2), (v2,v0).
    a_idx = cf[:, [0, 1, 2]]
    b_idx = cf[:, [1, 2, 0]]
    crosses = pos[a_idx] != pos[b_idx]  # exactly two per crossing face
    da, db = d[a_idx], d[b_idx]
    t = np.where(crosses, da / np.where(crosses, da - db, 1.0), 0.0)
    pts = v[a_idx] + t[..., None] * (v[b_idx] - v[a_idx])
    sel = np.argsort(~crosses, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(cf))[:, None]
    p0, p1 = pts[rows, sel][:, 0], pts[rows, sel][:, 1]
    e0, e1 = cfe[rows, sel][:, 0], cfe[rows, sel][:, 1]
    # Orient each segment along normal x face_normal (consistent for an outward mesh).
    direction = np.cross(normal, fn[cross])
    flip = np.einsum("ij,ij->i", p1 - p0, direction) < 0
    p0, p1 = np.where(flip[:, None], p1, p0), np.where(flip[:, None], p0, p1)
    u, w = _plane_basis(normal)
    a2 = np.stack([(p0 - origin) @ u, (p0 - origin) @ w], axis=1)
    b2 = np.stack([(p1 - origin) @ u, (p1 - origin) @ w], axis=1)
    # Loops: connected components of the graph whose nodes are crossed mesh edges.
    uniq, inv = np.unique(np.r_[e0, e1], return_inverse=True)
    n = len(uniq)
    i0, i1 = inv[: len(e0)], inv[len(e0):]
    ncomp, lab = connected_components(coo_matrix((np.ones(len(i0)), (i0, i1)), shape=(n, n)),
                                      directed=False)
    seg_lab = lab[i0]
    # Point-in-loop by ray casting along +u from the origin (at 2D (0, 0)).
    ya, yb = a2[:, 1], b2[:, 1]
    straddle = (ya > 0) != (yb > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = a2[:, 0] + (0 - ya) * (b2[:, 0] - a2[:, 0]) / (yb - ya)
    hits = straddle & (xcross > 0)
    parity = np.bincount(seg_lab[hits], minlength=ncomp) % 2
    inside = np.flatnonzero(parity == 1)
    if inside.size == 0:
        return None
    signed = 0.5 * (a2[:, 0] * b2[:, 1] - b2[:, 0] * a2[:, 1])
    areas = np.bincount(seg_lab, weights=signed, minlength=ncomp)
    # The innermost enclosing loop is the one of smallest |area|.
    comp = inside[np.argmin(np.abs(areas[inside]))]
    m = seg_lab == comp
    area = abs(float(areas[comp]))
    loop_pts = np.vstack([a2[m], b2[m]])
    perim = float(np.linalg.norm(b2[m] - a2[m], axis=1).sum())
    min_w, max_w = _feret(loop_pts)
    return {"area_nm2": area, "diameter_nm": 2.0 * np.sqrt(area / np.pi),
            "min_width_nm": min_w, "max_width_nm": max_w, "perimeter_nm": perim}


def _feret(points2d: np.ndarray) -> tuple[float, float]:
    try:
        hull = points2d[ConvexHull(points2d).vertices]
    except (QhullError, ValueError):
        ext = np.ptp(points2d, axis=0) if len(points2d) else np.zeros(2)
        return float(ext.min()), float(ext.max())
    diff = hull[:, None, :] - hull[None, :, :]
    max_w = float(np.sqrt((diff ** 2).sum(-1)).max())
    edges = np.roll(hull, -1, axis=0) - hull
    lens = np.linalg.norm(edges, axis=1)
    ok = lens > 0
    nrm = np.stack([-edges[ok, 1], edges[ok, 0]], axis=1) / lens[ok, None]
    widths = np.abs(np.einsum("ekd,ed->ek", hull[None, :, :] - hull[ok][:, None, :], nrm))
    min_w = float(widths.max(axis=1).min()) if len(widths) else 0.0
    return min_w, max_w


def section_profile(mesh, base_point_nm, base_axis=None, *, step_nm: float = 10.0,
                    smooth_nm: float = 30.0, geodesic: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Cross-sections every ``step_nm`` along the centreline.

    Returns a dict of equal-length arrays: ``s_nm`` (arc length from the base),
    ``x_nm``/``y_nm``/``z_nm`` (centreline point), ``area_nm2``, ``diameter_nm``,
    ``min_width_nm``, ``max_width_nm``, ``perimeter_nm``, and ``length_nm`` (scalar
    array: the centreline length base -> tip).
    """
    if step_nm <= 0:
        raise ParameterError(f"step_nm must be > 0, got {step_nm}")
    pts, s = centreline(mesh, np.asarray(base_point_nm, float),
                        None if base_axis is None else np.asarray(base_axis, float) /
                        np.linalg.norm(base_axis), step_nm=step_nm, smooth_nm=smooth_nm,
                        geodesic=geodesic)
    half = max(2 * step_nm, smooth_nm)
    length = float(s[-1])
    cache: dict = {}

    def _section_at(sv):
        k = int(np.clip(np.searchsorted(s, sv), 1, len(s) - 1))
        f = (sv - s[k - 1]) / max(s[k] - s[k - 1], 1e-12)
        p = pts[k - 1] + f * (pts[k] - pts[k - 1])
        # Tangent from a window of +-half for stability.
        lo = pts[max(np.searchsorted(s, sv - half) - 1, 0)]
        hi = pts[min(np.searchsorted(s, sv + half), len(pts) - 1)]
        tangent = hi - lo
        if np.linalg.norm(tangent) == 0:
            return p, None
        return p, cross_section(mesh, p, tangent, _cache=cache)

    # Closer to the base than about one base radius, an oblique plane cuts the base
    # cap: start at the radius of a first section near the base (and >= step/2).
    start = max(step_nm / 2, smooth_nm / 2)
    _, first = _section_at(min(start, length / 2))
    if first is not None:
        start = max(start, first["diameter_nm"] / 2)
    samples = np.arange(start, length, step_nm)
    rows = []
    for sv in samples:
        p, sec = _section_at(sv)
        if sec is None:
            continue
        rows.append((sv, *p, sec["area_nm2"], sec["diameter_nm"], sec["min_width_nm"],
                     sec["max_width_nm"], sec["perimeter_nm"]))
    arr = np.array(rows, dtype=float).reshape(-1, 9)
    keys = ("s_nm", "x_nm", "y_nm", "z_nm", "area_nm2", "diameter_nm", "min_width_nm",
            "max_width_nm", "perimeter_nm")
    out = {k: arr[:, i] for i, k in enumerate(keys)}
    out["length_nm"] = np.array(length)
    return out
