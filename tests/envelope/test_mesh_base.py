"""The shaft membrane layer ("skirt") around a spine's base is removed before capping."""

import numpy as np

from smlmspine.envelope._export import _drop_skirt


def test_drop_skirt_keeps_the_spine_removes_the_shaft_layer():
    rng = np.random.default_rng(7)
    # spine: a cylinder shell r = 150 nm along +z from the base plane z = 0 to 600 nm
    th, z = rng.uniform(0, 2 * np.pi, 4000), rng.uniform(0, 600, 4000)
    spine = np.c_[150 * np.cos(th), 150 * np.sin(th), z]
    # shaft membrane in the base plane, out to 400 nm, blurred by 10 nm along z
    r = 400 * np.sqrt(rng.random(6000))
    ph = rng.uniform(0, 2 * np.pi, 6000)
    layer = np.c_[r * np.cos(ph), r * np.sin(ph), np.abs(rng.normal(0, 10, 6000))]
    q = np.r_[spine, layer]
    out = _drop_skirt(q, np.zeros(3), np.array([0.0, 0.0, 1.0]), spacing_nm=10.0,
                      band_nm=40.0, precision_nm=(10.0, 10.0))
    kept = {tuple(x) for x in out}
    spine_kept = np.mean([tuple(x) in kept for x in spine])
    far = layer[np.hypot(layer[:, 0], layer[:, 1]) > 150 + 10 + 2 * 10 + 15]
    far_kept = np.array([tuple(x) in kept for x in far])
    assert spine_kept > 0.995
    assert not far_kept[far[:, 2] < 25.0].any()     # below t0 = 2.5 sigma: all dropped
    assert far_kept.mean() < 0.02                   # above: only the layer's noise tail
    # nothing to remove: the input comes back unchanged
    same = _drop_skirt(spine, np.zeros(3), np.array([0.0, 0.0, 1.0]), spacing_nm=10.0,
                       band_nm=40.0, precision_nm=(10.0, 10.0))
    assert len(same) == len(spine)
