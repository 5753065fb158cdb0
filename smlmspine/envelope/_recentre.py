"""Recentre a membrane envelope on its localizations, region by region.

A membrane label puts localizations on the cell surface, blurred by the localization
precision on both sides of it, so over any patch of the membrane about as many
localizations lie inside the true surface as outside it. On the fitted envelope of a
spine that should hold too; where it does not, the surface is off. The vertex-by-vertex
surface fit (:func:`~smlmspine.envelope._reconstruct._fit_surface`) cannot always get
there: on an alpha surface that bridged a gap or a concave corner, or after a hollow
envelope was rebuilt from its outer sheet, its vertices sit on localizations that
already lie on the membrane and the faces between them span the gap.

Measured on simulated EM-like stubby spines on a shaft (1,000 fluorophores/um^2,
sigma 12/12/30 nm, simulation 107 of ``validate_morphology``): the median depth of the
localizations inside the final envelope was +7 to +34 nm over the lowest 250 nm of
the four stubby spines, and -3 to +3 nm inside the true surface. The envelopes were
40-90 nm too wide there (equivalent diameter) and their volumes 1.10-1.51 x the truth.

:func:`recentre` moves each vertex along its normal by the median depth of the
localizations whose closest surface point lies within ``radius_nm`` of it (at least
``min_points`` of them): a regional, robust estimate from ~100 localizations, where the
fit's estimate per vertex has a few. The offsets are

- corrected for the curvature of the surface: the blur along a curved surface carries
  localizations off it, to a mean depth of ``-H sigma_t^2`` at the true surface (``H``
  the mean curvature, > 0 convex; ``sigma_t^2`` the blur variance per direction along
  the surface): -3.5 nm on a 300 nm head at 12/12/30 nm. Without it the heads of thin
  spines moved out by that, and their volumes read +7 % (the thin spines of
  ``validate_morphology --sets em-shaft --seed 2`` 1.101);
- clipped to ``max_shift_sigma`` x the precision along the normal;
- faded out where the envelope is thin (the depth to its far side along ``-normal``
  below ``thin_sigma[1]`` x the largest precision, zero below ``thin_sigma[0]`` x):
  a neck is the neck refit's, whose ring fits model the far wall's localizations;
- weighted near the base (within ``base_zone_nm`` of the base plane) by how radial the
  normal is: the disc closing the base has no localizations of its own;
- zero below ``keep_below_nm`` above the base plane, fading in over ``keep_ramp_nm``
  (:func:`~smlmspine.envelope.mesh_spines` passes the end of a refitted neck: the neck
  is the neck refit's. Run before the refit instead, the moves changed the profile the
  refit finds its windows on: a window in the flare under a mushroom's head read the
  flare, and two necks of ``validate_morphology --sets em-shaft --seed 104`` read
  +29 and +33 % where they had read +11 and +14 %);
- smoothed over ``smooth_rings`` rings of neighbours.

Where the moved surface intersects itself the moves are shortened
(:func:`~smlmspine.envelope._selfintersect.untangle`), within the repair bounds of
:data:`~smlmspine.envelope._reconstruct.REPAIR_MAX_VOLUME_CHANGE` and
``REPAIR_MAX_SHIFT_SIGMA``; a move that stays invalid is dropped and the surface kept.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["recentre", "group_medians"]

#: Radius (nm) around a vertex of the surface points closest to the localizations whose
#: depths set its offset, and the fewest localizations for an offset.
RECENTRE_RADIUS_NM = 100.0
RECENTRE_MIN_POINTS = 20


def group_medians(groups: np.ndarray, values: np.ndarray, n_groups: int):
    """Median of ``values`` per group id (``(medians, counts)``; NaN for empty groups).

    The values are bucketed by group (a counting sort) and each group sorted on its own
    (:func:`_group_medians_kernel`, numba): ~10x faster than one ``lexsort`` over all
    (group, value) pairs on the ~10^5-10^6 pairs of a spine, same medians.

    Parameters
    ----------
    groups : (N,) array of int
        Group id of each value, in ``[0, n_groups)``.
    values : (N,) array of float
    n_groups : int

    Returns
    -------
    medians : (n_groups,) ndarray of float
    counts : (n_groups,) ndarray of int

    Examples
    --------
    >>> m, c = group_medians(np.array([0, 0, 0, 2, 2]), np.array([3.0, 1.0, 2.0, 5.0, 7.0]), 3)
    >>> m.tolist(), c.tolist()
    ([2.0, nan, 6.0], [3, 0, 2])
    """
    g = np.ascontiguousarray(groups, np.int64)
    x = np.ascontiguousarray(values, np.float64)
    if g.shape != x.shape or g.ndim != 1:
        raise ValueError(f"groups and values must be 1-D of one length, got {g.shape}, {x.shape}")
    if len(g) and (g.min() < 0 or g.max() >= n_groups):
        raise ValueError(f"group ids must lie in [0, {n_groups})")
    return _group_medians_kernel(g, x, int(n_groups))


@njit(cache=True, nogil=True)
def _group_medians_kernel(g, x, n_groups):
    counts = np.zeros(n_groups, np.int64)
    for i in range(g.shape[0]):
        counts[g[i]] += 1
    start = np.zeros(n_groups + 1, np.int64)
    for k in range(n_groups):
        start[k + 1] = start[k] + counts[k]
    fill = start[:-1].copy()
    xs = np.empty(x.shape[0])
    for i in range(g.shape[0]):
        xs[fill[g[i]]] = x[i]
        fill[g[i]] += 1
    med = np.full(n_groups, np.nan)
    for k in range(n_groups):
        c = counts[k]
        if c == 0:
            continue
        seg = np.sort(xs[start[k]:start[k + 1]])
        med[k] = 0.5 * (seg[(c - 1) // 2] + seg[c // 2])
    return med, counts


def recentre(mesh, points_nm, base_point_nm, axis, precision_nm, *,
             radius_nm: float = RECENTRE_RADIUS_NM, min_points: int = RECENTRE_MIN_POINTS,
             max_shift_sigma: float = 3.0, thin_sigma=(4.0, 8.0),
             base_zone_nm: float = 150.0, smooth_rings: int = 5,
             keep_below_nm: float | None = None, keep_ramp_nm: float = 40.0,
             curvature_correction: bool = True):
    """The envelope moved onto the median of its localizations, region by region.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Closed, valid spine envelope (nm).
    points_nm : (N, 3) array
        The spine's membrane localizations (nm).
    base_point_nm, axis : (3,) arrays
        Where the spine meets the shaft, and the spine's axis there (unit vector).
    precision_nm : float or (float, float)
        Localization precision (1 sigma; lateral, axial).
    radius_nm, min_points, max_shift_sigma, thin_sigma, base_zone_nm, smooth_rings
        See the module text.
    keep_below_nm : float, optional
        Height above the base plane (nm) below which nothing moves (a refitted neck),
        the moves fading in over the next ``keep_ramp_nm``.
    curvature_correction : bool
        Correct the median depths for the curvature of the surface (module text).

    Returns
    -------
    mesh : trimesh.Trimesh
        The moved mesh, or ``mesh`` itself when nothing was moved or the move was
        refused.
    record : dict
        ``applied``, ``reason`` (why not), ``median_shift_nm`` and ``max_shift_nm``
        (inward positive, over the moved vertices), ``volume_change`` (relative),
        ``n_reverted`` (vertices whose moves were shortened to undo self-intersections).

    Examples
    --------
    A sphere 30 nm too wide around a blurred membrane of radius 300 nm moves in:

    >>> import trimesh
    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal(size=(4000, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    >>> pts = d * (300 + rng.normal(0, 12, (4000, 1)))
    >>> shell = trimesh.creation.icosphere(3, radius=330.0)
    >>> moved, rec = recentre(shell, pts, np.array([0, 0, -1000.0]), np.array([0, 0, 1.0]), 12.0)
    >>> rec["applied"], round(float(np.median(np.linalg.norm(moved.vertices, axis=1))))
    (True, 300)
    """
    import open3d as o3d
    import trimesh
    from scipy.spatial import cKDTree

    from .._profile import step
    from .._raycast import ray_scene
    from ._reconstruct import (_blur_along, _gate, _inner_depth, _mean_curvature,
                               _neighbour_mean, _vertex_normals)
    from ._repair import mesh_volume, validate_envelope
    from ._selfintersect import open3d_self_intersections, untangle

    rec = {"applied": False, "reason": ""}
    v = np.asarray(mesh.vertices, float)
    f = np.asarray(mesh.faces, np.int64)
    q = np.asarray(points_nm, float)
    sig = np.atleast_1d(np.asarray(precision_nm, float))
    sxy, sz = float(sig[0]), float(sig[-1])
    smax = max(sxy, sz)
    if len(q) < min_points or not len(f):
        rec["reason"] = f"fewer than {min_points} localizations"
        return mesh, rec
    nrm = _vertex_normals(mesh)
    # thin parts (necks) are left to the neck refit: fade out by the depth to the far side
    t0, t1 = float(thin_sigma[0]) * smax, float(thin_sigma[1]) * smax
    far = np.nan_to_num(_inner_depth(v, nrm, f), posinf=0.0)
    w = np.clip((far - t0) / max(t1 - t0, 1e-9), 0.0, 1.0)
    # the disc closing the base has no localizations: near the base, radial normals only
    ax = np.asarray(axis, float)
    h = (v - np.asarray(base_point_nm, float)) @ ax
    w = np.where(h < base_zone_nm, w * (1.0 - (nrm @ ax) ** 2), w)
    keep = np.ones(len(v)) if keep_below_nm is None else np.clip(
        (h - float(keep_below_nm)) / max(float(keep_ramp_nm), 1e-9), 0.0, 1.0)
    active = np.flatnonzero(w * keep > 0)
    if not active.size:
        rec["reason"] = "no part to move (thin, or a refitted neck to the tip)"
        return mesh, rec
    with step("depths"):
        scene = ray_scene(v, f)
        qt = o3d.core.Tensor(q.astype(np.float32))
        closest = scene.compute_closest_points(qt)["points"].numpy().astype(float)
        depth = -scene.compute_signed_distance(qt).numpy().astype(float)    # > 0 inside
        # per vertex that may move: the median depth of the localizations whose closest
        # surface point lies within radius_nm of it
        pairs = cKDTree(v[active]).sparse_distance_matrix(cKDTree(closest), radius_nm,
                                                          output_type="coo_matrix")
        med, counts = group_medians(pairs.row, depth[pairs.col], active.size)
    s_n, _ = _blur_along(nrm[active], sxy, sz)
    # on a curved surface the blur along it carries localizations off it: at the true
    # surface their depth is -H sigma_t^2 on average (H mean curvature, > 0 convex;
    # sigma_t^2 the blur variance per direction along the surface), -3.5 nm on a 300 nm
    # head at 12/12/30 nm, and a thin spine's head moved out by that read +7 % volume
    h_curv = np.clip(_mean_curvature(mesh, smooth_rings=3)[active], -0.5 / smax, 0.5 / smax) \
        if curvature_correction else np.zeros(active.size)
    # (written from s_n, not as half of _blur_along's tan2: the same value, but not to
    # the last bit, and the validated meshes were made with this form)
    var_t = 0.5 * (2.0 * sxy ** 2 + sz ** 2 - s_n ** 2)
    off = np.zeros(len(v))
    off[active] = np.where(counts >= min_points,
                           np.clip(np.nan_to_num(med) + h_curv * var_t,
                                   -max_shift_sigma * s_n, max_shift_sigma * s_n), 0.0)
    # (the kept part stays put after the smoothing too)
    shift = _neighbour_mean(off * w * keep, f, int(smooth_rings)) * keep
    if not np.any(np.abs(shift) > 0.01):
        rec["reason"] = "no offset"
        return mesh, rec
    v1 = v - shift[:, None] * nrm
    with step("validate"):
        reason = validate_envelope(v1, f)
    n_rev = 0
    if reason:
        with step("untangle"):
            r = untangle(v, v1, f, extra_bad=lambda x: open3d_self_intersections(x, f))
        n_rev = int(r.n_reverted)
        reason = _gate(r, smax)
        if not reason:
            v1 = np.asarray(r.vertices, float)
            with step("validate"):
                reason = validate_envelope(v1, f)
    if reason:
        rec["reason"] = f"moved surface not valid ({reason})"
        return mesh, rec
    moved = trimesh.Trimesh(v1, f, process=False)
    vol0 = mesh_volume(mesh)
    dist = np.linalg.norm(v1 - v, axis=1) * np.sign(shift)
    big = np.abs(shift) > 0.01
    rec.update(applied=True, median_shift_nm=float(np.median(dist[big])),
               max_shift_nm=float(np.max(np.abs(dist))),
               volume_change=(mesh_volume(moved) - vol0) / vol0 if vol0 else float("nan"),
               n_reverted=n_rev)
    return moved, rec
