"""Volumes of thin membrane tubes (issue #14 item 5).

A capsule membrane (radius 60-100 nm, 800 nm long) sampled uniformly on its surface and
blurred by an anisotropic Gaussian (sigma_xy 12 nm, sigma_z 33 nm), its axis along x so
that the axial blur crosses the tube. The point spacing is about the largest precision,
as :func:`smlmspine.envelope.mesh_spines` thins membrane spines to. Without
``curvature_correction`` (the second-pass lateral limit and the sagitta-noise correction,
docs/envelope.md, "Thin tubes"; off by default) these come out 1.17-1.92x the true volume.
"""

import numpy as np
import pytest

from smlmspine.envelope import reconstruct

SIGMA_XY, SIGMA_Z = 12.0, 33.0
LENGTH = 800.0


def _capsule_shell(radius, n, rng):
    """Area-uniform points on a capsule along x (nm), blurred by (12, 12, 33) nm."""
    a_cyl, a_cap = 2 * np.pi * radius * LENGTH, 4 * np.pi * radius ** 2
    n_cyl = int(round(n * a_cyl / (a_cyl + a_cap)))
    x = rng.uniform(-LENGTH / 2, LENGTH / 2, n_cyl)
    th = rng.uniform(0, 2 * np.pi, n_cyl)
    tube = np.c_[x, radius * np.cos(th), radius * np.sin(th)]
    u = rng.normal(size=(n - n_cyl, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    caps = radius * u
    caps[:, 0] += np.where(u[:, 0] > 0, LENGTH / 2, -LENGTH / 2)
    pts = np.r_[tube, caps]
    return pts + rng.normal(size=pts.shape) * [SIGMA_XY, SIGMA_XY, SIGMA_Z]


@pytest.mark.parametrize("radius", [60.0, 80.0, 100.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_thin_tube_volume_within_10_percent(radius, seed):
    true_volume = np.pi * radius ** 2 * LENGTH + 4 / 3 * np.pi * radius ** 3
    area = 2 * np.pi * radius * LENGTH + 4 * np.pi * radius ** 2
    n = int(area / SIGMA_Z ** 2)   # spacing ~ the largest precision
    pts = _capsule_shell(radius, n, np.random.default_rng(seed))
    env = reconstruct(pts, label="membrane", precision_nm=(SIGMA_XY, SIGMA_Z),
                      curvature_correction=True)
    assert env.is_watertight, env.reason
    ratio = env.volume_nm3 / true_volume
    assert abs(ratio - 1.0) < 0.10, f"radius {radius} nm: volume ratio {ratio:.3f}"


def test_thin_tube_raw_alpha_is_too_large():
    """The uncorrected alpha shape of the same tube is far outside (the test above is not
    met by the raw hull)."""
    radius = 60.0
    true_volume = np.pi * radius ** 2 * LENGTH + 4 / 3 * np.pi * radius ** 3
    n = int((2 * np.pi * radius * LENGTH + 4 * np.pi * radius ** 2) / SIGMA_Z ** 2)
    pts = _capsule_shell(radius, n, np.random.default_rng(0))
    env = reconstruct(pts, label="membrane", method="alpha", correct_bias=False, smooth=0)
    assert env.is_watertight
    assert env.volume_nm3 / true_volume > 1.5
