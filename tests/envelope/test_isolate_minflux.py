"""Spine isolation at MINFLUX-like precision (sigma ~3 nm): heads are not split."""

import numpy as np

from smlmspine.envelope import isolate_spines
from smlmspine.envelope._isolate import _spacing_nm


def test_spacing_ignores_clumps_of_repeated_localizations():
    # a membrane patch sampled at 1200 localizations/um^2: once uniformly (STORM-like
    # blur spreads an emitter's repeats) and once as 200 emitters/um^2 localized 6 times
    # each with sigma 3 nm (MINFLUX-like clumps: the 4th neighbour lies in the clump)
    rng = np.random.default_rng(0)
    side = 4000.0
    n_loc = int(1200 * (side / 1000) ** 2)
    flat = np.c_[rng.uniform(0, side, (n_loc, 2)), np.zeros(n_loc)]
    em = np.c_[rng.uniform(0, side, (n_loc // 6, 2)), np.zeros(n_loc // 6)]
    clumped = np.repeat(em, 6, axis=0) + rng.normal(0, 3.0, (n_loc, 3))
    s_flat, s_clumped = _spacing_nm(flat), _spacing_nm(clumped)
    assert 25.0 < s_flat < 40.0, s_flat              # 4th neighbour of 1200/um^2: ~32 nm
    assert s_clumped > 0.8 * s_flat, (s_clumped, s_flat)


def test_minflux_like_membrane_spines_not_split():
    from smlmspine.simulate import (Acquisition, SimulatedDrift, Geometry, Labeling,
                                    PhotophysicsModel, dendrite)

    sim = dendrite(geometry=Geometry(n_spines=8, shaft_length_nm=7000.0),
                   labeling=Labeling(label="membrane", labeling_density_per_um2=500.0),
                   photophysics=PhotophysicsModel(precision_xy_nm=3.0, axial_factor=1.0),
                   acquisition=Acquisition(n_frames=8000), drift=SimulatedDrift(drift_nm=0.0), rng=11)
    iso = isolate_spines(sim.localizations, label="membrane")
    pred = iso.table.column("spine_id").to_numpy()
    truth = sim.truth.column("spine_id").to_numpy()
    sizes = np.bincount(truth[truth >= 0])
    big = set(np.flatnonzero(sizes >= 200).tolist())
    assert len(big) >= 6
    matched, tp = set(), 0
    for k in range(iso.n_spines):
        t = truth[pred == k]
        best = int(np.bincount(t[t >= 0]).argmax())
        assert (t == best).mean() > 0.9           # each found spine is one true spine
        assert best not in matched                # and no true spine is found twice
        matched.add(best)
        tp += int((t == best).sum())
    assert big <= matched
    f1 = 2 * tp / ((pred >= 0).sum() + (truth >= 0).sum())
    assert f1 > 0.95, f1
