"""The dendrite's end-cap discs are jittered into general position (the Delaunay kernel
decides instead of handing the whole dendrite to Qhull); a spine's base disc is not."""

from __future__ import annotations

import numpy as np

from smlmspine.envelope import _export
from smlmspine.envelope._delaunay import delaunay


def _tube(seed=0):
    # a membrane-like tube shell (r 300 nm, 1.2 um long, along z) with noise
    rng = np.random.default_rng(seed)
    n = 3000
    phi, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 1200.0, n)
    r = 300.0 + rng.normal(0, 8.0, n)
    return np.c_[r * np.cos(phi), r * np.sin(phi), z]


def test_base_disc_is_a_plane_grid_and_end_cap_is_jittered():
    p = _tube()
    origin, normal = np.array([0.0, 0.0, 20.0]), np.array([0.0, 0.0, 1.0])
    plain = _export._cap_disc(p, origin, normal, band_nm=40.0, spacing_nm=30.0)
    jit = _export._cap_disc(p, origin, normal, band_nm=40.0, spacing_nm=30.0,
                            jitter=_export.END_CAP_JITTER)
    assert len(plain) == len(jit) > 100
    # the spine base disc: exactly in the plane, on the grid
    assert np.all(plain[:, 2] == 20.0)
    steps = np.diff(np.unique(np.round(plain[:, 0], 6)))
    np.testing.assert_allclose(steps, 30.0, atol=1e-6)
    # jittered: within the fractions of the step, and fixed (same seed, same points)
    d = jit - plain
    assert np.abs(d[:, :2]).max() <= _export.END_CAP_JITTER[0] * 30.0 + 1e-9
    assert np.abs(d[:, 2]).max() <= _export.END_CAP_JITTER[1] * 30.0 + 1e-9
    assert np.abs(d[:, 2]).max() > 0.0
    np.testing.assert_array_equal(
        jit, _export._cap_disc(p, origin, normal, band_nm=40.0, spacing_nm=30.0,
                               jitter=_export.END_CAP_JITTER))


def test_jittered_caps_let_the_delaunay_kernel_decide():
    p = _tube()
    origin, normal = np.array([0.0, 0.0, 20.0]), np.array([0.0, 0.0, 1.0])
    out = {}
    for name, jitter in (("grid", None), ("jittered", _export.END_CAP_JITTER)):
        disc = _export._cap_disc(p, origin, normal, band_nm=40.0, spacing_nm=30.0,
                                 jitter=jitter)
        q = np.r_[p, disc]
        out[name] = delaunay(q - q.mean(0), None)
    assert out["grid"] is None            # degenerate: left to Qhull
    assert out["jittered"] is not None    # general position: the kernel's tetrahedra
    simplices, _ = out["jittered"]
    assert simplices.shape[1] == 4 and len(simplices) > 3000
