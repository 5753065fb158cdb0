"""Alpha shapes and envelope reconstruction against analytic shapes."""

import numpy as np
import pytest
import trimesh

from smlmspine.envelope import alpha_shape, check_mesh, reconstruct, repair_mesh
from smlmspine.envelope._repair import marching_tetrahedra
from smlmspine.errors import ParameterError


def sphere_surface(n, r, sigma, rng):
    p = rng.normal(size=(n, 3))
    p = r * p / np.linalg.norm(p, axis=1, keepdims=True)
    return p + rng.normal(0, sigma, p.shape) if sigma else p


def ball(n, r, sigma, rng):
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p *= r * rng.random(n)[:, None] ** (1 / 3)
    return p + rng.normal(0, sigma, p.shape) if sigma else p


def capsule_surface(n, r, length, sigma, rng):
    """Capsule (cylinder + two hemispheres) sampled uniformly by area; exact volume/area."""
    a_cyl, a_cap = 2 * np.pi * r * length, 4 * np.pi * r * r
    k = rng.random(n) < a_cyl / (a_cyl + a_cap)
    p = np.empty((n, 3))
    m = int(k.sum())
    th = rng.random(m) * 2 * np.pi
    p[k] = np.c_[r * np.cos(th), r * np.sin(th), (rng.random(m) - 0.5) * length]
    q = sphere_surface(n - m, r, 0, rng)
    q[:, 2] += np.sign(q[:, 2]) * length / 2
    p[~k] = q
    vol = np.pi * r * r * length + 4 / 3 * np.pi * r ** 3
    return p + rng.normal(0, sigma, p.shape), vol, a_cyl + a_cap


def assert_valid(env):
    assert env.is_watertight, env.reason
    assert check_mesh(env.mesh.vertices, env.mesh.faces) == ""
    assert env.mesh.is_watertight and env.mesh.is_winding_consistent
    assert len(env.mesh.split(only_watertight=False)) == 1


def test_alpha_sphere_surface_volume_and_area():
    rng = np.random.default_rng(0)
    p = sphere_surface(6000, 200.0, 1.0, rng)
    shell = alpha_shape(p)                   # holes in the sampled shell: a thin wall
    assert shell.volume_nm3 < 0.5 * 4 / 3 * np.pi * 200.0 ** 3
    env = alpha_shape(p, gap_factor=1.5)      # holes bridged: the filled sphere
    assert_valid(env)
    assert env.volume_nm3 == pytest.approx(4 / 3 * np.pi * 200.0 ** 3, rel=0.08)
    assert env.held_fraction >= 0.99


def test_alpha_filled_ball_volume():
    rng = np.random.default_rng(1)
    env = alpha_shape(ball(8000, 250.0, 0.0, rng))
    assert_valid(env)
    assert env.volume_nm3 == pytest.approx(4 / 3 * np.pi * 250.0 ** 3, rel=0.08)


@pytest.mark.parametrize("sigma", [10.0, 20.0])
def test_membrane_sphere_radius_unbiased(sigma):
    rng = np.random.default_rng(2)
    r = 250.0
    p = sphere_surface(8000, r, sigma, rng)
    raw = reconstruct(p, label="membrane", method="alpha", correct_bias=False)
    env = reconstruct(p, label="membrane", precision_nm=sigma)
    assert_valid(env)
    r_raw = (raw.volume_nm3 / (4 / 3 * np.pi)) ** (1 / 3)
    r_fit = (env.volume_nm3 / (4 / 3 * np.pi)) ** (1 / 3)
    assert r_raw - r > 0.4 * sigma          # the outer alpha hull is biased outward
    assert abs(r_fit - r) < 0.02 * r        # the fitted surface is not
    assert env.area_nm2 == pytest.approx(4 * np.pi * r * r, rel=0.06)


def test_volume_ball_radius_unbiased():
    rng = np.random.default_rng(3)
    r, sigma = 250.0, 15.0
    env = reconstruct(ball(10000, r, sigma, rng), label="volume", precision_nm=sigma)
    assert_valid(env)
    assert (env.volume_nm3 / (4 / 3 * np.pi)) ** (1 / 3) == pytest.approx(r, rel=0.025)


def test_membrane_capsule_spine_shape():
    rng = np.random.default_rng(4)
    p, vol, area = capsule_surface(8000, 100.0, 800.0, 12.0, rng)
    env = reconstruct(p, label="membrane", precision_nm=12.0)
    assert_valid(env)
    assert env.volume_nm3 == pytest.approx(vol, rel=0.08)
    assert env.area_nm2 == pytest.approx(area, rel=0.08)


def test_anisotropic_precision_accepted():
    rng = np.random.default_rng(5)
    p = sphere_surface(5000, 200.0, 0, rng) + rng.normal(0, [10, 10, 25], (5000, 3))
    env = reconstruct(p, label="membrane", precision_nm=(10.0, 25.0))
    assert_valid(env)
    assert (env.volume_nm3 / (4 / 3 * np.pi)) ** (1 / 3) == pytest.approx(200.0, rel=0.03)


def test_degenerate_inputs():
    rng = np.random.default_rng(6)
    plane = np.c_[rng.random((50, 2)) * 100, np.zeros(50)]
    with pytest.raises(ParameterError, match="coplanar"):
        alpha_shape(plane)
    with pytest.raises(ParameterError, match="at least 4"):
        alpha_shape(rng.random((3, 3)))
    with pytest.raises(ParameterError, match="at least 4"):
        alpha_shape(np.repeat(rng.random((2, 3)), 5, axis=0))
    with pytest.raises(ParameterError, match="shape"):
        alpha_shape(rng.random((10, 2)))
    bad = rng.random((10, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        alpha_shape(bad)
    with pytest.raises(ParameterError, match="alpha_nm"):
        alpha_shape(rng.random((10, 3)), alpha_nm=-1.0)
    with pytest.raises(ParameterError, match="label"):
        reconstruct(rng.random((10, 3)), label="surface")


def test_duplicates_huge_and_tiny_alpha():
    rng = np.random.default_rng(7)
    p = sphere_surface(2000, 100.0, 3.0, rng)
    dup = np.r_[p, p[:500]]
    env = alpha_shape(dup)
    assert_valid(env)
    hull = alpha_shape(p, alpha_nm=1e6)           # huge alpha: the convex hull
    assert_valid(hull)
    assert hull.volume_nm3 == pytest.approx(trimesh.Trimesh(p).convex_hull.volume, rel=1e-6)
    tiny = alpha_shape(p, alpha_nm=0.5)           # tiny alpha: flagged, never a crash
    assert not tiny.is_watertight and "too small" in tiny.reason


def test_check_and_repair():
    m = trimesh.creation.icosphere(subdivisions=3, radius=100.0)
    assert check_mesh(m.vertices, m.faces) == ""
    holed = trimesh.Trimesh(m.vertices, m.faces[1:], process=False)
    assert "not watertight" in check_mesh(holed.vertices, holed.faces)
    fixed, reason, steps = repair_mesh(holed)
    assert reason == "" and steps
    assert fixed.volume == pytest.approx(m.volume, rel=0.05)
    two = trimesh.util.concatenate([m, m.copy().apply_translation([500.0, 0, 0])])
    assert "2 separate bodies" in check_mesh(two.vertices, two.faces)
    inv = trimesh.Trimesh(m.vertices, m.faces[:, ::-1], process=False)
    assert "inward" in check_mesh(inv.vertices, inv.faces)


def test_marching_tetrahedra_sphere():
    g = (np.indices((41, 41, 41)) - 20.0) * 5.0
    v, f = marching_tetrahedra(np.sqrt((g ** 2).sum(0)), level=60.0, spacing=5.0)
    assert check_mesh(v, f) == ""
    assert trimesh.Trimesh(v, f).volume == pytest.approx(4 / 3 * np.pi * 60.0 ** 3, rel=0.02)


def test_voxel_repaired_alpha_surface_decimated_by_the_package(monkeypatch):
    """The bridged sphere shell goes through the voxel repair; the decimation after it
    is the package's quadric decimation (Open3D's took most of reconstruct's time on
    simulated spines), and the result stays a valid surface of about the same volume."""
    from smlmspine.envelope import _levelset

    calls = []
    real = _levelset.quadric_decimate

    def spy(*args, **kwargs):
        calls.append(kwargs.get("target_faces"))
        return real(*args, **kwargs)

    monkeypatch.setattr(_levelset, "quadric_decimate", spy)
    rng = np.random.default_rng(0)
    p = sphere_surface(6000, 200.0, 1.0, rng)
    env = alpha_shape(p, gap_factor=1.5)
    assert "voxel remesh" in env.note and "decimated to" in env.note
    assert calls
    assert_valid(env)
    assert env.volume_nm3 == pytest.approx(4 / 3 * np.pi * 200.0 ** 3, rel=0.08)
