"""Truth meshes and spine measurements against analytic shapes."""

import numpy as np
import pytest
import trimesh

from smlmspine.errors import ParameterError
from smlmspine.simulate import (SpineParameters, cross_section_areas, draw_spine_parameters,
                                measure_truth_spine, mesh_implicit)
from smlmspine.simulate._geometry import build_geometry


def _mesh(f, lo, hi, step):
    v, fa = mesh_implicit(f, lo, hi, step_nm=step)
    return trimesh.Trimesh(v, fa, process=False)


@pytest.mark.parametrize("radius", [120.0, 500.0])
def test_implicit_sphere_is_watertight_with_analytic_volume(radius):
    m = _mesh(lambda p: np.linalg.norm(p, axis=1) - radius, [-radius - 40] * 3,
              [radius + 40] * 3, radius / 25)
    assert m.is_watertight and m.is_winding_consistent
    assert m.volume == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.005)
    assert m.area == pytest.approx(4 * np.pi * radius ** 2, rel=0.005)
    # outward orientation: normals point away from the centre
    assert np.all(np.einsum("ij,ij->i", m.face_normals, m.triangles_center) > 0)


def test_measure_cylinder_plus_sphere_matches_formulas():
    """Neck = cylinder (r), head = sphere (R) centred at the neck's end, base cut at z = 0."""
    r, c, R = 50.0, 600.0, 300.0

    def f(p):
        cyl = np.maximum(np.hypot(p[:, 0], p[:, 1]) - r, np.abs(p[:, 2] - c / 2) - c / 2)
        sph = np.linalg.norm(p - [0, 0, c], axis=1) - R
        return np.maximum(np.minimum(cyl, sph), -p[:, 2])

    m = _mesh(f, [-R - 20, -R - 20, -20], [R + 20, R + 20, c + R + 20], 8.0)
    assert m.is_watertight
    meas = measure_truth_spine(m.vertices, m.faces, base_nm=[0, 0, 0], axis=[0, 0, 1])
    rho = 1.2 * r  # head-neck boundary: first section wider than 1.2 x neck minimum
    h = R + np.sqrt(R ** 2 - rho ** 2)
    z1 = c - np.sqrt(R ** 2 - r ** 2)
    assert meas.length_nm == pytest.approx(c + R, abs=1.0)
    assert meas.neck_min_diameter_nm == pytest.approx(2 * r, rel=0.04)
    assert meas.head_diameter_nm == pytest.approx(2 * R, rel=0.005)
    assert meas.neck_length_nm == pytest.approx(c - np.sqrt(R ** 2 - rho ** 2), abs=4.0)
    assert meas.head_volume_um3 == pytest.approx(np.pi * h ** 2 * (3 * R - h) / 3 * 1e-9, rel=0.01)
    assert meas.volume_um3 == pytest.approx((np.pi * r ** 2 * z1 + 4 / 3 * np.pi * R ** 3) * 1e-9,
                                            rel=0.005)


def test_measure_exact_cylinder_mesh():
    cyl = trimesh.creation.cylinder(radius=80.0, height=500.0, sections=512)
    meas = measure_truth_spine(cyl.vertices, cyl.faces, base_nm=[0, 0, -250], axis=[0, 0, 1])
    assert meas.neck_min_diameter_nm == pytest.approx(160.0, rel=1e-3)
    assert meas.head_diameter_nm == pytest.approx(160.0, rel=1e-3)
    assert meas.length_nm == pytest.approx(500.0)
    assert meas.volume_um3 == pytest.approx(np.pi * 80 ** 2 * 500 * 1e-9, rel=1e-3)


def test_cross_section_of_a_box_with_a_hole():
    outer = trimesh.creation.box(extents=[4.0, 4.0, 2.0])
    inner = trimesh.creation.box(extents=[2.0, 2.0, 4.0])
    inner.invert()  # inward faces: a hole seen as a negative area
    both = trimesh.util.concatenate([outer, inner])
    a = cross_section_areas(both.vertices, both.faces, [0, 0, 0], [0, 0, 1], [0.0, 0.5])
    np.testing.assert_allclose(a, [12.0, 12.0])


def test_spine_classes_follow_literature_defaults():
    rng = np.random.default_rng(0)
    mush = [draw_spine_parameters("mushroom", rng=rng) for _ in range(300)]
    thin = [draw_spine_parameters("thin", rng=rng) for _ in range(300)]
    assert np.median([p.neck_diameter_nm for p in mush]) == pytest.approx(200, rel=0.1)
    assert np.median([p.neck_diameter_nm for p in thin]) == pytest.approx(100, rel=0.1)
    vol = [np.pi / 6 * p.head_diameter_nm ** 2 * p.head_length_nm * 1e-9 for p in mush]
    assert np.median(vol) == pytest.approx(0.27, rel=0.15)
    for p in mush + thin:
        assert 50 <= p.neck_diameter_nm <= 400 and 200 <= p.head_diameter_nm <= 1500
    assert all(p.head_diameter_nm < 350 for p in thin) and all(p.head_diameter_nm >= 350 for p in mush)
    assert not draw_spine_parameters("filopodium", rng=1).has_head


def test_overfull_shaft_and_bad_class_raise():
    prm = [SpineParameters("mushroom", 200, 500, 800, 800)] * 10
    with pytest.raises(ParameterError, match="could not place"):
        build_geometry(prm, shaft_radius_nm=400, shaft_length_nm=2000, rng=0)
    with pytest.raises(ParameterError, match="spine_class"):
        SpineParameters("huge", 200, 500, 800, 800)


def test_branched_spine_two_heads():
    from smlmspine.simulate import measure_truth_spine as measure

    g = build_geometry([SpineParameters("branched", 120.0, 900.0, 450.0, 450.0)],
                       shaft_radius_nm=400, shaft_length_nm=3000, rng=0)
    sp = g.spines[0]
    assert len(sp.heads()) == 2
    v, f = g.spine_mesh(0, step_nm=15.0)
    m = trimesh.Trimesh(v, f, process=False)
    assert m.is_watertight and m.body_count == 1
    meas = measure(v, f, base_nm=sp.base, axis=sp.axis)
    # the widest section cuts both (round) heads: equivalent diameter sqrt(2) x 450 nm
    assert meas.head_diameter_nm == pytest.approx(np.sqrt(2) * 450.0, rel=0.03)
    assert meas.neck_min_diameter_nm == pytest.approx(120.0, rel=0.06)
