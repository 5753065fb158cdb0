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
