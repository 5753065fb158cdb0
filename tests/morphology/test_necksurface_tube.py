"""The neck refit of a headless spine runs to the tip (analytic tube, fixed seed)."""

import numpy as np
import trimesh

from smlmspine.morphology._necksurface import fit_neck_surface
from smlmspine.morphology._sections import section_profile


def _tube_points(radius, length, sigma, n, rng):
    """A membrane label on a tube of ``radius`` along +z from 0 to ``length`` (nm)."""
    t = rng.uniform(0.0, length, n)
    a = rng.uniform(0.0, 2 * np.pi, n)
    p = np.c_[radius * np.cos(a), radius * np.sin(a), t]
    return p + rng.normal(0.0, sigma, p.shape)


def _revolved(s, r):
    """Closed solid of revolution about +z: radius r[i] at height s[i] (nm)."""
    a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    v = np.concatenate([np.c_[ri * np.cos(a), ri * np.sin(a), np.full(32, si)]
                        for si, ri in zip(s, r)])
    faces = []
    for i in range(len(s) - 1):
        for j in range(32):
            a0, a1 = i * 32 + j, i * 32 + (j + 1) % 32
            b0, b1 = a0 + 32, a1 + 32
            faces += [[a0, a1, b1], [a0, b1, b0]]
    v = np.r_[v, [[0, 0, s[0]]], [[0, 0, s[-1]]]]
    c0, c1 = len(v) - 2, len(v) - 1
    top = (len(s) - 1) * 32
    for j in range(32):
        faces += [[c0, (j + 1) % 32, j], [c1, top + j, top + (j + 1) % 32]]
    m = trimesh.Trimesh(v, np.array(faces), process=False)
    assert m.is_watertight and m.volume > 0
    return m


def _biased_mesh(length):
    """A closed tube whose distal part is too wide: 100 nm up to 700 nm, 130 nm beyond
    (the outward bias of a shell fit on a thin tube), rounded tip."""
    s = np.linspace(0.0, length, 80)
    r = np.where(s < 700.0, 50.0, 65.0)
    r[-6:] *= np.sqrt(np.clip(1 - ((s[-6:] - s[-6]) / (s[-1] - s[-6] + 1e-9)) ** 2, 0.05, 1))
    return _revolved(s, r)


def test_headless_tube_refitted_to_the_tip():
    rng = np.random.default_rng(3)
    length = 1700.0
    pts = _tube_points(50.0, length, 12.0, 6000, rng)
    mesh = _biased_mesh(length)
    out, fit = fit_neck_surface(mesh, pts, np.zeros(3), precision_nm=12.0,
                                base_axis=np.array([0.0, 0.0, 1.0]))
    assert fit.applied, fit.reason
    assert fit.s_end_nm > length - 200.0          # refitted up to the tip, not 700 nm
    prof = section_profile(out, np.zeros(3), np.array([0.0, 0.0, 1.0]), step_nm=10.0)
    s, d = prof["s_nm"], prof["diameter_nm"]
    distal = (s > 900.0) & (s < length - 150.0)
    assert distal.sum() > 20
    # the distal part now follows the localizations (100 nm), not the biased mesh (130)
    assert abs(np.median(d[distal]) - 100.0) < 8.0


def test_spine_with_a_head_stops_at_the_head():
    """Ring fits wider than 1.2x the neck end the refit (a head is not a neck)."""
    rng = np.random.default_rng(4)
    neck = _tube_points(50.0, 600.0, 12.0, 2500, rng)
    u = rng.normal(size=(6000, 3))
    head = 250.0 * u / np.linalg.norm(u, axis=1, keepdims=True) + [0, 0, 830.0]
    head += rng.normal(0.0, 12.0, head.shape)
    pts = np.r_[neck, head[head[:, 2] > 620.0]]
    sz = np.linspace(0.0, 1080.0, 110)
    r = np.where(sz < 600.0, 60.0, np.sqrt(np.clip(250.0 ** 2 - (sz - 830.0) ** 2, 0.0, None)))
    r = np.maximum(r, np.where(sz < 1075.0, 60.0, 5.0))
    mesh = _revolved(sz, r)
    out, fit = fit_neck_surface(mesh, pts, np.zeros(3), precision_nm=12.0,
                                base_axis=np.array([0.0, 0.0, 1.0]))
    assert fit.applied, fit.reason
    assert fit.s_end_nm < 650.0
    assert all(w[1] < 130.0 for w in fit.windows)
