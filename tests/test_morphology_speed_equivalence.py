"""The fast morphology kernels measure what the straightforward implementations measured.

References (the code before the speed-up, kept here): per-plane cross-sections over all
faces with Qhull Feret widths, per-level connected components for the tip count,
trimesh's capped slice, volume, centre of mass and convex hull.
"""

import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError

from smlmspine.errors import ParameterError
from smlmspine.morphology import centreline, cross_section, measure_spine, section_profile
from smlmspine.morphology._measure import (_distal_volume, _hull_volume, _n_tips, _volume_centroid,
                                           find_base, measure_spines)
from smlmspine.morphology._sections import geodesic_from_base
from smlmspine.testing import analytic_spine


def _ref_feret(points2d):
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
    return float(widths.max(axis=1).min()), max_w


def _ref_cross_section(mesh, origin, normal):
    """One plane, all faces (the implementation before the batched kernels)."""
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    v = np.asarray(mesh.vertices, dtype=float)
    faces = np.asarray(mesh.faces)
    fe = np.asarray(mesh.faces_unique_edges)
    fn = np.asarray(mesh.face_normals)
    d = (v - origin) @ normal
    pos = d >= 0
    nposf = pos[faces].sum(axis=1)
    cross = (nposf == 1) | (nposf == 2)
    if not np.any(cross):
        return None
    cf, cfe = faces[cross], fe[cross]
    a_idx, b_idx = cf[:, [0, 1, 2]], cf[:, [1, 2, 0]]
    crosses = pos[a_idx] != pos[b_idx]
    da, db = d[a_idx], d[b_idx]
    t = np.where(crosses, da / np.where(crosses, da - db, 1.0), 0.0)
    pts = v[a_idx] + t[..., None] * (v[b_idx] - v[a_idx])
    sel = np.argsort(~crosses, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(cf))[:, None]
    p0, p1 = pts[rows, sel][:, 0], pts[rows, sel][:, 1]
    e0, e1 = cfe[rows, sel][:, 0], cfe[rows, sel][:, 1]
    direction = np.cross(normal, fn[cross])
    flip = np.einsum("ij,ij->i", p1 - p0, direction) < 0
    p0, p1 = np.where(flip[:, None], p1, p0), np.where(flip[:, None], p0, p1)
    a = np.array([1.0, 0, 0]) if abs(normal[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(normal, a)
    u /= np.linalg.norm(u)
    w = np.cross(normal, u)
    a2 = np.stack([(p0 - origin) @ u, (p0 - origin) @ w], axis=1)
    b2 = np.stack([(p1 - origin) @ u, (p1 - origin) @ w], axis=1)
    uniq, inv = np.unique(np.r_[e0, e1], return_inverse=True)
    n = len(uniq)
    i0, i1 = inv[: len(e0)], inv[len(e0):]
    ncomp, lab = connected_components(coo_matrix((np.ones(len(i0)), (i0, i1)), shape=(n, n)),
                                      directed=False)
    seg_lab = lab[i0]
    ya, yb = a2[:, 1], b2[:, 1]
    straddle = (ya > 0) != (yb > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = a2[:, 0] + (0 - ya) * (b2[:, 0] - a2[:, 0]) / (yb - ya)
    parity = np.bincount(seg_lab[straddle & (xcross > 0)], minlength=ncomp) % 2
    inside = np.flatnonzero(parity == 1)
    if inside.size == 0:
        return None
    signed = 0.5 * (a2[:, 0] * b2[:, 1] - b2[:, 0] * a2[:, 1])
    areas = np.bincount(seg_lab, weights=signed, minlength=ncomp)
    comp = inside[np.argmin(np.abs(areas[inside]))]
    m = seg_lab == comp
    area = abs(float(areas[comp]))
    min_w, max_w = _ref_feret(np.vstack([a2[m], b2[m]]))
    return {"area_nm2": area, "diameter_nm": 2.0 * np.sqrt(area / np.pi), "min_width_nm": min_w,
            "max_width_nm": max_w, "perimeter_nm": float(np.linalg.norm(b2[m] - a2[m], axis=1).sum())}


def _ref_n_tips(mesh, geodesic, step_nm, min_branch_nm, height=None, min_height_fraction=0.5):
    e = np.asarray(mesh.edges_unique)
    v = np.asarray(mesh.vertices, float)
    best = 1
    hmin = -np.inf if height is None else min_height_fraction * float(np.max(height))
    for level in np.arange(step_nm, geodesic.max() - min_branch_nm, max(step_nm * 4, min_branch_nm / 4)):
        keep = geodesic > level
        idx = np.flatnonzero(keep)
        remap = -np.ones(len(geodesic), int)
        remap[idx] = np.arange(idx.size)
        ee = e[keep[e[:, 0]] & keep[e[:, 1]]]
        n, lab = connected_components(coo_matrix((np.ones(len(ee)), (remap[ee[:, 0]], remap[ee[:, 1]])),
                                                 shape=(idx.size, idx.size)), directed=False)
        far = np.zeros(n, bool)
        np.maximum.at(far, lab, geodesic[idx] > level + min_branch_nm)
        if height is not None:
            distal = np.zeros(n, bool)
            np.maximum.at(distal, lab, height[idx] >= hmin)
            far &= distal
        if far.sum() < 2:
            continue
        tips = []
        for c in np.flatnonzero(far):
            members = idx[lab == c]
            tip = v[members[np.argmax(geodesic[members])]]
            if all(np.linalg.norm(tip - t) >= min_branch_nm for t in tips):
                tips.append(tip)
        best = max(best, len(tips))
    return best


def _branched():
    a = analytic_spine(50.0, 400.0, 200.0, sections=32)
    parts = []
    for deg in (50, -50):
        b = a.copy()
        b.apply_transform(trimesh.transformations.rotation_matrix(np.radians(deg), [0, 1, 0]))
        parts.append(b)
    parts.append(trimesh.creation.icosphere(subdivisions=3, radius=120.0))
    voxel = trimesh.util.concatenate(parts).voxelized(pitch=15.0).fill()
    body = voxel.marching_cubes
    body.apply_transform(voxel.transform)
    return max(body.split(only_watertight=False), key=lambda m: len(m.faces))


def _meshes():
    far = analytic_spine(60.0, 500.0, 250.0, bend_radius_nm=700.0, sections=24)
    far.apply_translation([2.0e4, -1.5e4, 3.0e3])  # cells imaged far from the origin
    return {
        "straight": (analytic_spine(50.0, 500.0, 300.0, sections=24), [0, 0, 0]),
        "bent": (analytic_spine(60.0, 700.0, 300.0, bend_radius_nm=900.0, sections=24), [0, 0, 0]),
        "offset": (far, [2.0e4, -1.5e4, 3.0e3]),
        "box": (trimesh.creation.box(extents=[100.0, 200.0, 300.0]), [0, 0, -150]),
    }


def _close(a, b, rel=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return all(a[k] == pytest.approx(b[k], rel=rel, abs=1e-9) for k in b)


@pytest.mark.parametrize("name", ["straight", "bent", "offset", "box"])
def test_cross_sections_match_the_per_plane_reference(name):
    mesh, base = _meshes()[name]
    rng = np.random.default_rng(3)
    v = np.asarray(mesh.vertices)
    lo, hi = v.min(axis=0), v.max(axis=0)
    n_found = 0
    for _ in range(40):
        origin = lo + rng.random(3) * (hi - lo)
        normal = rng.normal(size=3)
        new, ref = cross_section(mesh, origin, normal), _ref_cross_section(mesh, origin, normal)
        assert _close(new, ref), (origin, normal, new, ref)
        n_found += ref is not None
    assert n_found > 5  # the planes do cut the mesh around their origin


def _ref_section_profile(mesh, base, axis, step_nm=10.0, smooth_nm=30.0, near_base="skip"):
    """The per-section loop before batching (centreline unchanged)."""
    pts, s = centreline(mesh, np.asarray(base, float), np.asarray(axis, float), step_nm=step_nm,
                        smooth_nm=smooth_nm)
    half = max(2 * step_nm, smooth_nm)
    length = float(s[-1])

    def _section_at(sv, parallel=False):
        k = int(np.clip(np.searchsorted(s, sv), 1, len(s) - 1))
        f = (sv - s[k - 1]) / max(s[k] - s[k - 1], 1e-12)
        p = pts[k - 1] + f * (pts[k] - pts[k - 1])
        lo = pts[max(np.searchsorted(s, sv - half) - 1, 0)]
        hi = pts[min(np.searchsorted(s, sv + half), len(pts) - 1)]
        return p, _ref_cross_section(mesh, p, np.asarray(axis, float) if parallel else hi - lo)

    # within one base radius of the base the sections are parallel to the base plane,
    # or left out
    start = max(step_nm / 2, smooth_nm / 2)
    _, first = _section_at(min(start, length / 2))
    near = start if first is None else max(start, first["diameter_nm"] / 2)
    if near_base == "skip":
        start = near
    rows = []
    for sv in np.arange(start, length, step_nm):
        p, sec = _section_at(sv, parallel=sv < near)
        if sec is not None:
            rows.append((sv, *p, *(sec[k] for k in ("area_nm2", "diameter_nm", "min_width_nm",
                                                    "max_width_nm", "perimeter_nm"))))
    return np.array(rows)


@pytest.mark.parametrize("near_base", ["skip", "parallel"])
@pytest.mark.parametrize("name", ["straight", "bent", "offset"])
def test_section_profile_matches_the_per_section_reference(name, near_base):
    mesh, base = _meshes()[name]
    axis = np.asarray(mesh.vertices).mean(axis=0) - base
    axis /= np.linalg.norm(axis)
    prof = section_profile(mesh, base, axis, step_nm=10.0, near_base=near_base)
    ref = _ref_section_profile(mesh, base, axis, near_base=near_base)
    keys = ("s_nm", "x_nm", "y_nm", "z_nm", "area_nm2", "diameter_nm", "min_width_nm",
            "max_width_nm", "perimeter_nm")
    new = np.stack([prof[k] for k in keys], axis=1)
    assert new.shape == ref.shape and len(ref) > 30
    scale = np.abs(ref).max(axis=0)  # coordinates near 0: compare to their column's scale
    assert np.all(np.abs(new - ref) <= 1e-9 * scale)


def test_open_mesh_sections_match_the_reference():
    # A sphere with a hole: planes through the hole cut open chains, not loops.
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=100.0)
    c = sphere.triangles_center
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[~((c[:, 2] > 40) & (c[:, 0] > 0))])
    assert not holed.is_watertight
    rng = np.random.default_rng(5)
    for z in np.linspace(-90, 90, 13):
        origin = np.array([0.0, 0.0, z]) + rng.normal(0, 5, 3)
        normal = np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.2, 3)
        assert _close(cross_section(holed, origin, normal), _ref_cross_section(holed, origin, normal))


def test_feret_kernel_matches_qhull_widths():
    from smlmspine.morphology._sections import _kernels

    rng = np.random.default_rng(7)
    sets = [rng.normal(size=(n, 2)) * [100.0, 40.0] for n in (3, 5, 50, 400)]
    sets.append(np.c_[np.linspace(0, 10, 7), np.linspace(0, 5, 7)])  # collinear: extents
    sets.append(np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 1.0]]))        # two distinct points
    sq = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
    sets.append(np.r_[sq, sq, [[1.0, 0.0], [1.0, 0.5]]])               # duplicates, ties in x
    x = np.concatenate([s[:, 0] for s in sets])
    y = np.concatenate([s[:, 1] for s in sets])
    counts = np.array([len(s) for s in sets])
    out = np.empty((len(sets), 2))
    _kernels()["feret"](x, y, np.r_[0, np.cumsum(counts)[:-1]], counts, out)
    for s, (min_w, max_w) in zip(sets, out):
        ref = _ref_feret(s)
        assert min_w == pytest.approx(ref[0], rel=1e-12) and max_w == pytest.approx(ref[1], rel=1e-12)


@pytest.mark.parametrize("make, base, expected", [
    (lambda: analytic_spine(50.0, 500.0, 300.0, sections=24), [0, 0, 0], 1),
    (_branched, [0, 0, -120.0], 2),
])
def test_tip_count_matches_the_per_level_reference(make, base, expected):
    mesh = make()
    b, axis, _ = find_base(mesh, base_point_nm=base)
    geo = geodesic_from_base(mesh, b, axis)
    height = (np.asarray(mesh.vertices) - b) @ axis
    for step, branch in ((10.0, 200.0), (5.0, 80.0), (20.0, 400.0)):
        assert _n_tips(mesh, geo, step, branch, height=height) == \
            _ref_n_tips(mesh, geo, step, branch, height=height)
        assert _n_tips(mesh, geo, step, branch) == _ref_n_tips(mesh, geo, step, branch)
    assert _n_tips(mesh, geo, 10.0, 200.0, height=height) == expected


@pytest.mark.parametrize("name", ["straight", "bent", "offset"])
def test_volumes_match_trimesh(name):
    mesh, base = _meshes()[name]
    vol, centre = _volume_centroid(np.asarray(mesh.vertices, float), np.asarray(mesh.faces))
    assert vol == pytest.approx(mesh.volume, rel=1e-12)
    assert np.allclose(centre, mesh.center_mass, rtol=0, atol=1e-9 * np.ptp(mesh.vertices))
    assert _hull_volume(np.asarray(mesh.vertices, float)) == pytest.approx(mesh.convex_hull.volume, rel=1e-12)
    # The head volume: distal part beyond a plane, against trimesh's slice.
    m = measure_spine(mesh, base_point_nm=base)
    prof, k = m.profile, len(m.profile["s_nm"]) // 2
    p = np.array([prof["x_nm"][k], prof["y_nm"][k], prof["z_nm"][k]])
    t = np.array([prof[c][k + 2] - prof[c][k - 2] for c in ("x_nm", "y_nm", "z_nm")])
    part = trimesh.intersections.slice_mesh_plane(mesh, plane_normal=t / np.linalg.norm(t),
                                                  plane_origin=p, cap=False)
    tri = np.asarray(part.triangles) - p
    ref = abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
    assert _distal_volume(mesh, prof, k) == pytest.approx(ref, rel=1e-9)


def test_measure_spines_equals_measure_spine_and_returns_errors():
    meshes = [analytic_spine(r, 400.0, 200.0, sections=24) for r in (40.0, 60.0)]
    meshes.append(trimesh.Trimesh(np.eye(3), [[0, 1, 2]], process=False))  # not a closed surface
    out = measure_spines(meshes, base_points_nm=[[0, 0, 0], None, None], step_nm=8.0)
    assert out[0].to_dict() == measure_spine(meshes[0], base_point_nm=[0, 0, 0], step_nm=8.0).to_dict()
    assert out[1].to_dict() == measure_spine(meshes[1], step_nm=8.0).to_dict()
    assert isinstance(out[2], ParameterError)
    with pytest.raises(ParameterError, match="one base point"):
        measure_spines(meshes, base_points_nm=[[0, 0, 0]])
    with pytest.raises(ParameterError, match="unknown measure_spine option"):
        measure_spines(meshes, stepnm=8.0)


@pytest.mark.slow
def test_measure_spines_in_worker_processes_gives_the_same_features():
    meshes = [analytic_spine(30.0 + 5 * i, 400.0, 200.0, bend_radius_nm=None if i % 2 else 800.0,
                             sections=24) for i in range(8)]
    serial = measure_spines(meshes, base_points_nm=[[0, 0, 0]] * 8)
    pooled = measure_spines(meshes, base_points_nm=[[0, 0, 0]] * 8, workers=2)  # 8 meshes: 2 workers
    assert [m.to_dict() for m in pooled] == [m.to_dict() for m in serial]
