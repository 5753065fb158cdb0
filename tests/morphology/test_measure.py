import numpy as np
import pytest
import trimesh

from smlmspine.errors import ParameterError
from smlmspine.morphology import (ClassRules, classify_rules, cross_section, features_table,
                                  fit_neck_diameter, measure_spine, neck_fit_for_spine,
                                  profile_table, radial_distances)

from smlmspine.testing import analytic_spine
from smlmspine.testing import analytic_spine_volume_nm3 as analytic_volume


@pytest.mark.parametrize("r, L, R, bend", [
    (50.0, 500.0, 300.0, None),     # thin neck, large head
    (100.0, 800.0, 350.0, None),    # mushroom
    (30.0, 300.0, 180.0, None),     # very thin neck, small head
    (60.0, 700.0, 300.0, 900.0),    # bent neck (radius of curvature 900 nm)
    (100.0, 600.0, 400.0, 500.0),   # strongly bent
])
def test_analytic_spine_diameters_and_volume(r, L, R, bend):
    mesh = analytic_spine(r, L, R, bend_radius_nm=bend, sections=96)
    assert mesh.is_watertight
    m = measure_spine(mesh, base_point_nm=[0, 0, 0], step_nm=8.0)
    assert m.neck_min_diameter_nm == pytest.approx(2 * r, rel=0.02)
    assert m.head_diameter_nm == pytest.approx(2 * R, rel=0.02)
    assert m.volume_um3 == pytest.approx(analytic_volume(r, L, R) * 1e-9, rel=0.01)
    assert m.neck_length_nm == pytest.approx(L, rel=0.03)
    zc = L + np.sqrt(R ** 2 - r ** 2)
    assert m.length_nm == pytest.approx(zc + R, rel=0.02)
    # Head volume: the sphere above the neck junction.
    assert m.head_volume_um3 == pytest.approx((analytic_volume(r, L, R) - np.pi * r ** 2 * L) * 1e-9, rel=0.02)
    assert m.n_tips == 1
    assert m.head_neck_ratio == pytest.approx(R / r, rel=0.03)


def test_open_angle_grows_with_bending():
    straight = measure_spine(analytic_spine(60.0, 700.0, 300.0), base_point_nm=[0, 0, 0])
    bent = measure_spine(analytic_spine(60.0, 700.0, 300.0, bend_radius_nm=600.0), base_point_nm=[0, 0, 0])
    assert straight.open_angle_deg < 1.0
    assert bent.open_angle_deg > straight.open_angle_deg + 3.0


def test_cross_section_of_a_box_is_exact():
    box = trimesh.creation.box(extents=[100.0, 200.0, 300.0])
    sec = cross_section(box, np.zeros(3), np.array([0, 0, 1.0]))
    assert sec["area_nm2"] == pytest.approx(20000.0)
    assert sec["min_width_nm"] == pytest.approx(100.0)
    assert sec["max_width_nm"] == pytest.approx(np.hypot(100, 200))
    assert cross_section(box, np.array([500.0, 0, 0]), np.array([0, 0, 1.0])) is None


def test_branched_spine_has_two_tips():
    a = analytic_spine(50.0, 400.0, 200.0)
    b = a.copy()
    b.apply_transform(trimesh.transformations.rotation_matrix(np.radians(50), [0, 1, 0]))
    c = a.copy()
    c.apply_transform(trimesh.transformations.rotation_matrix(np.radians(-50), [0, 1, 0]))
    # Two spines joined at a common base: one body through a shared base sphere.
    base = trimesh.creation.icosphere(subdivisions=3, radius=120.0)
    mesh = trimesh.util.concatenate([b, c, base])
    voxel = mesh.voxelized(pitch=12.0).fill()
    body = voxel.marching_cubes
    body.apply_transform(voxel.transform)
    body = max(body.split(only_watertight=False), key=lambda m: len(m.faces))
    m = measure_spine(body, base_point_nm=[0, 0, -120.0], step_nm=10.0)
    assert m.n_tips == 2
    assert classify_rules(m.to_dict()) == "branched"


@pytest.mark.parametrize("mesh, expected", [
    (lambda: analytic_spine(100.0, 700.0, 350.0), "mushroom"),
    (lambda: analytic_spine(50.0, 600.0, 140.0), "thin"),
    (lambda: analytic_spine(250.0, 300.0, 250.0), "stubby"),       # no neck, short
    (lambda: analytic_spine(50.0, 2000.0, 50.0, sections=48), "filopodium"),  # no head, long
])
def test_rule_classes_on_analytic_shapes(mesh, expected):
    meas = measure_spine(mesh(), base_point_nm=[0, 0, 0])
    assert classify_rules(meas.to_dict()) == expected


def test_rules_thresholds_are_parameters():
    f = {"n_tips": 1, "head_neck_ratio": 2.0, "head_diameter_nm": 400.0, "length_nm": 900.0,
         "neck_min_diameter_nm": 200.0}
    assert classify_rules(f) == "mushroom"
    assert classify_rules(f, ClassRules(mushroom_head_nm=450.0)) == "thin"


@pytest.mark.parametrize("label, sigma", [("membrane", 12.0), ("membrane", 3.0), ("volume", 12.0)])
def test_neck_fit_recovers_diameter_from_points(label, sigma):
    rng = np.random.default_rng(7)
    r, L, R = 60.0, 600.0, 300.0
    mesh = analytic_spine(r, L, R)
    meas = measure_spine(mesh, base_point_nm=[0, 0, 0])
    n = 4000
    z = rng.uniform(0, L, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    rad = np.full(n, r) if label == "membrane" else r * np.sqrt(rng.uniform(0, 1, n))
    pts = np.c_[rad * np.cos(phi), rad * np.sin(phi), z] + rng.normal(0, sigma, (n, 3))
    fit = neck_fit_for_spine(pts, meas, label=label)
    assert fit is not None
    assert fit.diameter_nm == pytest.approx(2 * r, abs=max(3 * fit.diameter_err_nm, 3.0))
    assert fit.sigma_nm == pytest.approx(sigma, rel=0.25)
    # The naive outer extent of the points is biased wide; the fit is not.
    naive = 2 * np.percentile(radial_distances(pts, [0, 0, 0], [0, 0, 1], s_min_nm=100, s_max_nm=500), 99)
    assert naive > 2 * r + 2 * sigma


def test_neck_fit_needs_enough_points():
    with pytest.raises(ParameterError, match="need >= 20"):
        fit_neck_diameter(np.array([10.0, 20.0]))
    with pytest.raises(ParameterError, match="label"):
        fit_neck_diameter(np.ones(50), label="cytosol")


def test_tables_follow_their_schema():
    meas = measure_spine(analytic_spine(), base_point_nm=[0, 0, 0])
    t = features_table([meas], sources=["a.ply"], spine_ids=[3])
    assert t.column("spine_class").to_pylist() == ["mushroom"]
    assert t.schema.field("neck_min_diameter_nm").metadata[b"unit"] == b"nm"
    p = profile_table(meas, spine_id=3)
    assert p.num_rows == len(meas.profile["s_nm"]) and set(p.column("spine_id").to_pylist()) == {3}


def test_degenerate_mesh_is_a_clear_error():
    tri = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]])
    with pytest.raises(ParameterError):
        measure_spine(tri, base_point_nm=[0, 0, 0])
    with pytest.raises(ParameterError, match="step_nm"):
        measure_spine(analytic_spine(), step_nm=0)
