"""The neck, neck length and spine length do not depend on how the spine's base is closed.

Analytic spines (a neck from z = 0 up to a sphere head) are built here as implicit
surfaces and meshed by marching cubes (8 nm voxels, irregular triangles like a real
reconstruction), with three closures of the base: cut flat at z = 0, closed by a rounded
cap below z = 0 (what a reconstruction of a cut spine does), and joined to a
perpendicular cylinder shaft whose surface touches z = 0. Necks: circular, elliptical,
and with two minima.

Tolerances: marching cubes at 8 nm put a 150 nm neck within 0.3 % and the two-minima
neck (40 nm wide dips sampled every 10 nm) within 1.2 % (measured); the head-neck
boundary is interpolated between 10 nm sections (<= 5 nm of a 400-500 nm neck, 1.2 %);
the centreline of the elliptical neck wanders by ~1 % of the length. Hence 3 % against
the analytic values and 5 % between closures (the issue's requirement).
"""

from functools import lru_cache

import numpy as np
import pytest
import trimesh

from smlmspine.morphology import base_plane, measure_spine

from ._shapes import revolved

R_NECK, L_NECK, R_HEAD, R_SHAFT = 75.0, 500.0, 250.0, 250.0
ZC = L_NECK + np.sqrt(R_HEAD ** 2 - R_NECK ** 2)
ELL_A, ELL_B = 100.0, R_NECK ** 2 / 100.0     # same area as the circular neck
VOXEL = 8.0


def _neck_radius(z):
    return R_NECK - 20.0 * np.exp(-((z - 200.0) / 40.0) ** 2) - 30.0 * np.exp(-((z - 380.0) / 40.0) ** 2)


def _inside(kind, closure, x, y, z):
    """Implicit function (< 0 inside) of the spine with the given neck and base closure."""
    if kind == "cylinder":
        neck = np.hypot(x, y) - R_NECK
    elif kind == "ellipse":
        neck = (np.sqrt((x / ELL_A) ** 2 + (y / ELL_B) ** 2) - 1.0) * R_NECK
    else:
        neck = np.hypot(x, y) - _neck_radius(z)
    head = np.sqrt(x ** 2 + y ** 2 + (z - ZC) ** 2) - R_HEAD
    spine = np.minimum(np.maximum(neck, z - ZC), head)
    if closure == "flat":
        return np.maximum(spine, -z)
    if closure == "cap":
        if kind == "ellipse":
            c = np.sqrt(ELL_A * ELL_B)
            cap = (np.sqrt((x / ELL_A) ** 2 + (y / ELL_B) ** 2 + (z / c) ** 2) - 1.0) * c
        else:
            cap = np.sqrt(x ** 2 + y ** 2 + z ** 2) - float(_neck_radius(0.0) if kind == "two_minima" else R_NECK)
        return np.minimum(np.maximum(spine, -z), cap)
    shaft = np.maximum(np.hypot(y, z + R_SHAFT) - R_SHAFT, np.abs(x) - 400.0)
    return np.minimum(np.maximum(spine, -z - R_SHAFT), shaft)


@lru_cache(maxsize=None)
def _mesh(kind, closure):
    from skimage.measure import marching_cubes

    # grid offset so that no node lies on z = 0 (degenerate triangles on the flat cut)
    lo = np.array([-270.3, -270.7, -90.4])
    hi = np.array([270.0, 270.0, ZC + R_HEAD + 20])
    if closure == "shaft":
        lo[0], hi[0], lo[2] = -410.3, 410.0, -2 * R_SHAFT - 10.4
    ax = [np.arange(a, b + VOXEL, VOXEL) for a, b in zip(lo, hi)]
    f = _inside(kind, closure, *np.meshgrid(*ax, indexing="ij"))
    v, faces, _, _ = marching_cubes(f, 0.0, spacing=(VOXEL,) * 3)
    mesh = trimesh.Trimesh(v + lo, faces[:, ::-1], process=True)
    assert mesh.is_watertight
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _analytic(kind):
    """(neck minimum diameter, neck length, spine length) by the definitions of
    docs/morphology.md: equivalent diameter; boundary where the diameter first exceeds
    1.2 x the minimum distal of it; centreline length base -> top of the head."""
    if kind == "two_minima":
        z = np.linspace(0, L_NECK, 50001)
        r = _neck_radius(z)
        i = int(np.argmin(r))
        j = i + int(np.argmax(r[i:] > 1.2 * r[i]))
        return 2 * r[i], z[j], ZC + R_HEAD
    # the head sphere's section reaches 1.2 x the neck at z = ZC - sqrt(R^2 - (1.2 r)^2)
    return 2 * R_NECK, ZC - np.sqrt(R_HEAD ** 2 - (1.2 * R_NECK) ** 2), ZC + R_HEAD


def _measure(kind, closure, given):
    kw = {"base_point_nm": [0.0, 0.0, 0.0], "base_normal": [0.0, 0.0, 1.0]} if given else {}
    return measure_spine(_mesh(kind, closure), step_nm=10.0, **kw)


@pytest.mark.parametrize("kind", ["cylinder", "ellipse", "two_minima"])
def test_neck_and_lengths_do_not_depend_on_the_base_closure(kind):
    cases = {
        "flat, base given": _measure(kind, "flat", True),
        "flat, base from the mesh": _measure(kind, "flat", False),
        "cap, base given": _measure(kind, "cap", True),
        "cap, base from the mesh": _measure(kind, "cap", False),
        "shaft, base given": _measure(kind, "shaft", True),
    }
    neck, neck_len, length = _analytic(kind)
    for name, m in cases.items():
        assert m.neck_min_diameter_nm == pytest.approx(neck, rel=0.03), name
        assert m.neck_length_nm == pytest.approx(neck_len, rel=0.03), name
        assert m.length_nm == pytest.approx(length, rel=0.03), name
        # the base section is the neck's: pi r^2 (the shaft joint rounds it by ~1 %)
        assert m.base_area_nm2 == pytest.approx(np.pi * (neck_radius0(kind)) ** 2, rel=0.03), name
    for key in ("neck_min_diameter_nm", "neck_length_nm", "length_nm", "volume_um3",
                "surface_area_um2"):
        vals = np.array([getattr(m, key) for m in cases.values()])
        assert np.ptp(vals) <= 0.05 * vals.min(), (key, vals)
    # the cap is found where the base comes from the mesh, and skipped
    m = cases["cap, base from the mesh"]
    assert m.cap_length_nm == pytest.approx(R_NECK if kind != "ellipse" else np.sqrt(ELL_A * ELL_B), rel=0.1)
    assert m.base_z_nm == pytest.approx(0.0, abs=0.1 * R_NECK)
    assert cases["flat, base from the mesh"].cap_length_nm == 0.0
    assert cases["shaft, base given"].cap_length_nm == 0.0


def neck_radius0(kind):
    return float(_neck_radius(0.0)) if kind == "two_minima" else R_NECK


def test_a_cap_distal_of_a_given_base_plane_is_skipped():
    """The base plane where the labelled points end, the closing cap beyond it (inside
    the spine): lengths from the given plane, the cap never searched for the neck."""
    flat = _measure("cylinder", "flat", True)
    m = measure_spine(_mesh("cylinder", "cap"), base_point_nm=[0, 0, -R_NECK], base_normal=[0, 0, 1],
                      step_nm=10.0)
    assert m.cap_length_nm == pytest.approx(R_NECK, rel=0.1)
    assert m.neck_min_diameter_nm == pytest.approx(flat.neck_min_diameter_nm, rel=0.02)
    assert m.length_nm == pytest.approx(flat.length_nm + R_NECK, rel=0.02)
    assert m.neck_length_nm == pytest.approx(flat.neck_length_nm + R_NECK, rel=0.03)
    # the volume, as the lengths, runs from the given plane: the skipped cap counts as
    # the prism of the base section (the spine cut flat at the plane), not as nothing
    assert m.volume_um3 == pytest.approx(flat.volume_um3 + np.pi * R_NECK ** 3 * 1e-9, rel=0.01)
    # without the cap detection the neck minimum lies in the cap
    old = measure_spine(_mesh("cylinder", "cap"), base_point_nm=[0, 0, -R_NECK], base_normal=[0, 0, 1],
                        step_nm=10.0, detect_cap=False)
    assert old.neck_min_diameter_nm < 0.95 * 2 * R_NECK


def test_a_neck_narrowing_towards_its_base_is_not_a_cap():
    """A conical neck (100 nm at the base, 150 nm 100 nm further) cut flat: no cap."""
    z0 = np.linspace(0, 100, 11)
    prof = np.r_[[[0.0, 0.0]], np.c_[50.0 + 0.25 * z0, z0], [[75.0, 500.0], [0.0, 500.0]]]
    mesh = trimesh.creation.revolve(prof, sections=96)
    bp = base_plane(mesh, base_point_nm=[0, 0, 0], base_normal=[0, 0, 1])
    assert bp.cap_length_nm == 0.0 and bp.skip_nm == pytest.approx(0.0, abs=2.0)
    # the largest of the sections within step_nm (10 nm) of the plane: radius 52.5 nm
    assert bp.base_area_nm2 == pytest.approx(np.pi * 52.5 ** 2, rel=0.02)
    bp = base_plane(mesh)
    assert bp.cap_length_nm == 0.0


def test_membrane_labelled_cut_spine_reconstructed_and_measured():
    """The issue's case: a spine cut from its dendrite, its membrane labelled (no points
    on the cut), reconstructed with the default envelope (which closes the base) and
    measured from the plane through the base-most localizations, as `smlmspine mesh
    --spine-labels` does. The true neck is 150 nm."""
    from smlmspine.envelope import reconstruct

    rng = np.random.default_rng(0)
    pts, _ = trimesh.sample.sample_surface(_mesh("cylinder", "flat"), 12000, seed=1)
    pts = pts[np.abs(pts[:, 2]) > 1e-6]           # no localizations on the cut
    pts = pts + rng.normal(0, 8.0, pts.shape)
    env = reconstruct(pts, label="membrane", precision_nm=8.0)
    assert env.is_watertight
    centre = pts.mean(axis=0)
    axis = np.linalg.svd(pts - centre, full_matrices=False)[2][0]
    axis = axis if axis[2] > 0 else -axis
    base = centre + ((pts - centre) @ axis).min() * axis
    m = measure_spine(env.mesh, base_point_nm=base, base_normal=axis)
    assert m.neck_min_diameter_nm == pytest.approx(2 * R_NECK, rel=0.08)
    # lengths from the base-most localization (3 sigma below the cut at most)
    assert m.length_nm == pytest.approx(ZC + R_HEAD - base[2], rel=0.03)
    assert m.base_area_nm2 == pytest.approx(np.pi * R_NECK ** 2, rel=0.2)


def test_labelled_cut_spines_through_mesh_spines_and_spine_features():
    """`smlmspine mesh --spine-labels` on spines cut from their dendrite (issue #14): two
    membrane-labelled spines without a shaft, one upright, one lying along x; the
    isolation's base plane (base-most localizations, main axis) goes to the morphology,
    which finds the closed base and measures the neck there, not in the cap."""
    import warnings

    from smlmspine.envelope import mesh_spines
    from smlmspine.errors import QualityWarning
    from smlmspine.morphology import spine_features
    from smlmspine.schema import make_table

    rng = np.random.default_rng(3)
    pts, _ = trimesh.sample.sample_surface(_mesh("cylinder", "flat"), 9000, seed=2)
    pts = pts[np.abs(pts[:, 2]) > 1e-6]
    lying = pts[:, [2, 1, 0]] + [3000.0, 0.0, 0.0]          # rotated: axis along +x
    p = np.vstack([pts, lying]) + rng.normal(0, 8.0, (2 * len(pts), 3))
    lab = np.repeat([0, 1], len(pts)).astype(np.int64)
    t = make_table({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2], "spine_id": lab,
                    "precision_xy": np.full(len(p), 8.0), "precision_z": np.full(len(p), 8.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QualityWarning)   # no shaft: the dendrite verdict
        res = mesh_spines(t, label="membrane", spine_labels="spine_id", dendrite=False,
                          neck_surface=False)
    out = spine_features(res, label="membrane", precision_nm=8.0).to_pylist()
    assert len(out) == 2
    for row in out:
        assert row["is_watertight"]
        assert row["neck_min_diameter_nm"] == pytest.approx(2 * R_NECK, rel=0.08), row
        assert row["head_diameter_nm"] == pytest.approx(2 * R_HEAD, rel=0.05)
        assert row["base_area_nm2"] == pytest.approx(np.pi * R_NECK ** 2, rel=0.2)
        assert row["length_nm"] == pytest.approx(ZC + R_HEAD, rel=0.05)
        assert row["quality"] == "ok" and row["trustworthy"], row["quality_reason"]


def test_no_cap_where_the_straight_scan_misses_the_base_or_the_rise_is_a_cone():
    """False caps seen on EM-like simulated spines: (1) the base normal does not run along
    the neck (a bent neck), so the straight scan meets the head first: its rounded bottom
    is no cap, and nothing is skipped; (2) a stubby spine widening as a cone from 200 to
    500 nm over 250 nm is no cap (it does not fit an elliptic cap)."""
    from smlmspine.testing import analytic_spine

    mesh = analytic_spine(50.0, 500.0, 300.0, sections=96)
    zc = 500.0 + np.sqrt(300.0 ** 2 - 50.0 ** 2)
    base = np.array([150.0, 0.0, 0.0])
    bp = base_plane(mesh, base_point_nm=base, base_normal=[0.0, 0.0, zc] - base)
    assert bp.cap_length_nm == 0.0 and bp.skip_nm == 0.0
    z0 = np.linspace(0, 250, 26)
    prof = np.r_[[[0.0, 0.0]], np.c_[100.0 + 0.6 * z0, z0], [[250.0, 400.0], [0.0, 400.0]]]
    cone = trimesh.creation.revolve(prof, sections=96)
    # (from the mesh alone the base of this wider-than-tall shape is a guess: its principal
    # axis is lateral; the cone is tested with its base given)
    assert base_plane(cone, base_point_nm=[0, 0, 0], base_normal=[0, 0, 1]).cap_length_nm == 0.0


def test_a_rounded_rim_called_a_cap_keeps_its_volume():
    """A stubby spine on a shaft (given base plane) whose reconstructed base rim is
    rounded (section 0.78 -> 1 of the plateau over ~90 nm, as the disc closing a shell
    comes out) is read as a closing cap; the skipped slab counts as the prism of the
    base section, so the volume stays within 2 % of the spine cut flat at the plane
    (without it: -25 %, as the simulated MINFLUX-like stubby spines' 0.70-0.79)."""
    r0, length = 215.0, 430.0
    z = np.linspace(0.0, length, 87)
    rim = r0 * np.sqrt(np.clip(1.0 - 0.39 * np.clip(1.0 - z / 90.0, 0, 1) ** 2, 0, 1))
    dome = np.sqrt(np.clip(r0 ** 2 - (z - (length - r0)) ** 2, 0.0, None))
    r = np.where(z > length - r0, dome, rim)
    flat_r = np.where(z > length - r0, dome, r0)
    rounded = revolved(z, np.maximum(r, 2.0), segments=64)
    flat = revolved(z, np.maximum(flat_r, 2.0), segments=64)
    m = measure_spine(rounded, base_point_nm=[0, 0, 0], base_normal=[0, 0, 1], step_nm=10.0)
    assert m.cap_length_nm > 40.0                       # the rim is read as a cap ...
    assert m.volume_um3 == pytest.approx(flat.volume * 1e-9, rel=0.02)   # ... volume kept
    # and the area is the flat-cut spine's without its base disc (the prism's side)
    assert m.surface_area_um2 == pytest.approx((flat.area - m.base_area_nm2) * 1e-6, rel=0.03)
    assert m.length_nm == pytest.approx(length, rel=0.03)
