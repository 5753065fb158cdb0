"""The base and axis of labelled spines with no shaft model (``--spine-labels`` on
spines cut from their dendrite): the base is where the labelled membrane ends, an open
ring, whatever the spine's proportions or where it lies in the cloud."""

import numpy as np
import pyarrow as pa
import pytest

from smlmspine.envelope import isolate_spines
from smlmspine.errors import QualityWarning


def _shell(rng, n, kind):
    """Membrane points of a spine along +z from its open base at the origin: a stubby
    dome (hemisphere on a short wide cylinder; flat: much wider than long) or a thin spine (100 nm
    neck, 500 nm head), with 12/12/30 nm localization noise."""
    if kind in ("stubby", "flat-stubby"):
        r, h_cyl = (260.0, 200.0) if kind == "stubby" else (320.0, 60.0)   # flat: its axis is its shortest
        a_cyl, a_dome = 2 * np.pi * r * h_cyl, 2 * np.pi * r ** 2
        m = rng.random(n) < a_cyl / (a_cyl + a_dome)
        phi = rng.uniform(0, 2 * np.pi, n)
        z = np.where(m, rng.uniform(0, h_cyl, n), 0.0)
        cz = rng.uniform(0, 1, n)                # dome: uniform in height (Archimedes)
        rr = np.where(m, r, r * np.sqrt(1 - cz ** 2))
        z = np.where(m, z, h_cyl + r * cz)
    else:
        rn, ln, rh = 50.0, 600.0, 250.0
        a_neck, a_head = 2 * np.pi * rn * ln, 4 * np.pi * rh ** 2
        m = rng.random(n) < a_neck / (a_neck + a_head)
        phi = rng.uniform(0, 2 * np.pi, n)
        cz = rng.uniform(-1, 1, n)
        rr = np.where(m, rn, rh * np.sqrt(1 - cz ** 2))
        z = np.where(m, rng.uniform(0, ln, n), ln + rh + rh * cz)
        keep = m | (rr > rn) | (z > ln + rh)     # no head membrane inside the neck
        phi, rr, z = phi[keep], rr[keep], z[keep]
    p = np.c_[rr * np.cos(phi), rr * np.sin(phi), z]
    return p + rng.normal(0, 1, p.shape) * [12.0, 12.0, 30.0]


def _rotation(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("kind", ["stubby", "flat-stubby", "thin"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labelled_spine_base_is_its_open_end(kind, seed):
    rng = np.random.default_rng(seed)
    rot = _rotation(rng)
    offset = rng.uniform(-3000, 3000, 3)
    p = _shell(rng, 4000, kind) @ rot.T + offset
    # a second spine far away, so that "away from the cloud's centre" is no guide
    other = _shell(rng, 4000, "thin") @ _rotation(rng).T + offset + rng.normal(0, 1, 3) * 2500
    xyz = np.r_[p, other]
    table = pa.table({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                      "frame": np.arange(len(xyz), dtype=np.int64),
                      "spine_id": np.r_[np.zeros(len(p), np.int64), np.ones(len(other), np.int64)]})
    with pytest.warns(QualityWarning, match="do not look like a dendrite"):
        iso = isolate_spines(table, spine_labels="spine_id")
    s = iso.spines.to_pylist()[0]
    axis = np.array([s["axis_x"], s["axis_y"], s["axis_z"]])
    base = np.array([s["base_x_nm"], s["base_y_nm"], s["base_z_nm"]])
    true_axis = rot[:, 2]
    assert axis @ true_axis > 0.95                      # along the spine, into it
    assert np.linalg.norm(base - offset) < 80.0         # at the open ring, not the tip


def _one_labelled_spine(p):
    """Base point and axis of the localizations ``p`` (nm, precision 12/12/30 nm)
    isolated as one labelled spine with no shaft."""
    table = pa.table({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2],
                      "precision_xy": np.full(len(p), 12.0), "precision_z": np.full(len(p), 30.0),
                      "spine_id": np.zeros(len(p), np.int64)})
    with pytest.warns(QualityWarning):
        iso = isolate_spines(table, spine_labels="spine_id")
    s = iso.spines.to_pylist()[0]
    return (np.array([s["base_x_nm"], s["base_y_nm"], s["base_z_nm"]]),
            np.array([s["axis_x"], s["axis_y"], s["axis_z"]]))


@pytest.mark.parametrize("kind", ["stubby", "thin"])
@pytest.mark.parametrize("seed", [0, 1])
def test_labelled_base_sits_on_the_cut_not_below_it(kind, seed):
    # The cut is at z = 0; the localizations spread 2-3 sigma below it. The base is the
    # edge of their density (within 0.6x the precision along the axis of the cut), not
    # the 0.5th percentile (25-75 nm below it for a dense stubby spine at 30 nm axial
    # precision), which made stubby spines long.
    rng = np.random.default_rng(seed)
    rot = _rotation(rng)
    p = _shell(rng, 6000, kind) @ rot.T
    base, axis = _one_labelled_spine(p)
    true_axis = rot[:, 2]
    below = float(-(base @ true_axis))                 # how far below the cut
    sigma_a = np.sqrt(12.0 ** 2 * (1 - axis[2] ** 2) + 30.0 ** 2 * axis[2] ** 2)
    assert abs(below) < 0.6 * sigma_a + 2.0, (below, sigma_a)
    if kind == "stubby":
        old = float(np.percentile(p @ true_axis, 0.5))     # the former rule
        assert old < -1.2 * sigma_a and abs(old) > 2 * abs(below) + 10.0
    assert axis @ true_axis > np.cos(np.radians(3.0))


def test_base_edge_fits_the_blurred_edge_of_a_uniform_band():
    from smlmspine.envelope._isolate import _base_edge

    rng = np.random.default_rng(3)
    for sigma in (3.0, 12.0, 30.0):
        h = rng.uniform(0.0, 800.0, 20000) + rng.normal(0, sigma, 20000) + 50.0
        assert abs(_base_edge(h, sigma) - 50.0) < 0.2 * sigma + 0.5
    # sparse (2 per nm), 12 nm blur
    h = rng.uniform(0.0, 600.0, 1200) + rng.normal(0, 12.0, 1200) + 50.0
    assert abs(_base_edge(h, 12.0) - 50.0) < 8.0
    # too few points: the 0.5th percentile, no fit
    h = rng.uniform(0, 100, 30)
    assert _base_edge(h, 10.0) == np.sort(h)[0]


@pytest.mark.parametrize("tilt_deg", [0.0, 12.0, 25.0])
def test_cut_normal_turns_a_tilted_axis_to_the_cut(tilt_deg):
    # A wide membrane tube cut at z = 0 (the cut's normal is +z); the axis handed in is
    # tilted (the principal axis of a curved spine is not its cut's normal).
    from smlmspine.envelope._isolate import _cut_normal

    rng = np.random.default_rng(int(tilt_deg))
    n = 12000
    phi, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 500, n)
    p = np.c_[250 * np.cos(phi), 250 * np.sin(phi), z] + rng.normal(0, 1, (n, 3)) * [12, 12, 30]
    t = np.radians(tilt_deg)
    a = np.array([np.sin(t), 0.0, np.cos(t)])
    got = _cut_normal(p, a, 12.0, 30.0)
    assert np.degrees(np.arccos(np.clip(got[2], -1, 1))) < 3.0
    # a thin, sparse tube: the slope is not significant, the axis is kept as it is
    p = np.c_[40 * np.cos(phi[:300]), 40 * np.sin(phi[:300]), z[:300]] + rng.normal(0, 1, (300, 3)) * 30
    np.testing.assert_array_equal(_cut_normal(p, a, 12.0, 30.0), a)


def test_labelled_base_is_the_centre_of_the_cut_ring_for_a_leaning_spine():
    # A neck (r 90 nm) straight up from its cut at z = 0, with its head (r 350 nm) leaning
    # 300 nm to +x: the centroid, and the axis line through it, lie beside the cut. The
    # base is the centre of the ring of localizations at the edge (within 30 nm of the
    # cut's centre), not the point of the centroid's axis at the edge's height.
    from smlmspine.envelope._isolate import _base_edge

    rng = np.random.default_rng(8)
    n_neck, n_head = 5000, 14000
    phi, z = rng.uniform(0, 2 * np.pi, n_neck), rng.uniform(0, 500, n_neck)
    neck = np.c_[90 * np.cos(phi), 90 * np.sin(phi), z]
    u = rng.normal(size=(n_head, 3))
    head = 350 * u / np.linalg.norm(u, axis=1, keepdims=True) + [300.0, 0.0, 800.0]
    head = head[np.hypot(head[:, 0], head[:, 1]) > 90.0]   # no head membrane in the neck
    p = np.r_[neck, head] + rng.normal(0, 1, (len(neck) + len(head), 3)) * [12, 12, 30]
    base, axis = _one_labelled_spine(p)
    assert np.linalg.norm(base) < 30.0, base
    # the former base, on the axis line through the centroid, lies beside the cut
    cen = p.mean(0)
    sig = np.sqrt(12.0 ** 2 * (1 - axis[2] ** 2) + 30.0 ** 2 * axis[2] ** 2)
    old = cen + _base_edge((p - cen) @ axis, sig) * axis
    assert np.linalg.norm(old[:2]) > 100.0, old
