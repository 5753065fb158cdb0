"""Shaft model robust to a few big spines (spines a minority of the angular coverage)."""

import numpy as np

from smlmspine.envelope import isolate_spines
from smlmspine.envelope._isolate import _slice_fit


def test_slice_fit_spines_are_a_minority_of_the_angle_not_of_the_points():
    # a shaft ring (r 400) and a protrusion (neck + head section, a blob 2 x 250 nm
    # wide) holding MORE points than the ring: weighted by angular sector, it is a minority
    rng = np.random.default_rng(3)
    th = rng.uniform(0, 2 * np.pi, 1500)
    shaft = np.c_[400 * np.cos(th), 400 * np.sin(th)]
    u = rng.normal(size=(2500, 2))
    u /= np.linalg.norm(u, axis=1)[:, None]
    u *= np.sqrt(rng.random(2500))[:, None]                 # filled
    blob = np.c_[900 + 250 * u[:, 0], 300 + 250 * u[:, 1]]
    neck = np.c_[np.linspace(400, 700, 300), np.linspace(0, 150, 300)]
    truth = np.array([50.0, -20.0])
    q = np.r_[shaft, blob, neck] + rng.normal(0, 15, (4300, 2)) + truth
    c, r = _slice_fit(q, "membrane")
    assert np.hypot(*(c - truth)) < 10.0, c
    assert abs(r - 400.0) < 8.0, r
    # a spine head cut through is a full ring itself (here with more points than the
    # shaft): a single slice cannot tell, the previous round's centreline (prior) does
    th2 = rng.uniform(0, 2 * np.pi, 2500)
    head = np.c_[1000 + 350 * np.cos(th2), 300 + 350 * np.sin(th2)]
    q2 = np.r_[shaft, head, neck] + rng.normal(0, 15, (4300, 2)) + truth
    c, r = _slice_fit(q2, "membrane", prior=(truth + [60.0, 40.0], 420.0))
    assert np.hypot(*(c - truth)) < 10.0, c
    assert abs(r - 400.0) < 8.0, r


def test_short_shaft_two_big_spines_no_shaft_false_positives():
    from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, dendrite

    spines = [{"spine_class": "mushroom", "neck_diameter_nm": 200.0, "neck_length_nm": 500.0,
               "head_diameter_nm": 800.0, "head_length_nm": 800.0, "position_nm": 1200.0},
              {"spine_class": "mushroom", "neck_diameter_nm": 180.0, "neck_length_nm": 600.0,
               "head_diameter_nm": 700.0, "head_length_nm": 700.0, "position_nm": 3300.0}]
    sim = dendrite(geometry=Geometry(spines=spines, shaft_length_nm=4500.0),
                   acquisition=Acquisition(n_frames=6000), drift=SimulatedDrift(drift_nm=0.0), rng=5)
    iso = isolate_spines(sim.localizations)
    pred = iso.table.column("spine_id").to_numpy()
    truth = sim.truth.column("spine_id").to_numpy()
    assert iso.n_spines == 2
    for k in range(2):
        t = truth[pred == k]
        best = np.bincount(t[t >= 0]).argmax()
        assert (t == best).mean() > 0.9           # each found spine is one true spine
        assert (t == -1).mean() < 0.1             # not the shaft's far wall
    # shaft radius of the simulator (400 nm) everywhere, not pulled by the heads
    assert np.all(np.abs(iso.centreline.radius_nm - 400.0) < 20.0)


def test_background_flags_are_those_of_a_plain_neighbour_query():
    # _background queries in the tree's leaf order (faster); the flags must be those of
    # the 8th-neighbour distances queried in table order, duplicates (distance 0) and a
    # sparse background included
    from scipy.spatial import cKDTree

    from smlmspine.envelope._isolate import _background

    rng = np.random.default_rng(11)
    dense = rng.normal(0, 200, (4000, 3))
    sparse = rng.uniform(-3000, 3000, (300, 3))
    p = np.r_[dense, dense[:50], sparse][rng.permutation(4350)]
    d, _ = cKDTree(p).query(p, k=9)
    want = d[:, -1] > 5.0 * np.median(d[:, -1])
    for workers in (1, 2):
        got = _background(p, 5.0, workers=workers)
        np.testing.assert_array_equal(got, want)
    assert 200 < want.sum() < 400   # the sparse points, not the dense ones
