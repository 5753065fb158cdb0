"""``minflux_traces`` and ``synapses.synapses`` with parameter groups (issue #16) give
bit-identical tables to the flat-keyword functions they replaced.

The SHA-256 digests below were computed from the flat-keyword API (commit 1e0a39a,
before the refactoring) with the same seeds and settings, written here in their flat
form next to the groups that carry them: every column of every result table (name, dtype
and raw bytes) goes into one digest per case, so any change of a value, order or dtype
fails.
"""

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from smlmspine.coupling import BoxRegion, MaskRegion
from smlmspine.errors import ParameterError
from smlmspine.simulate import (MinfluxQuality, MinfluxSample, MinfluxTiming, SimulatedDrift,
                                SynapsePopulations, SynapseRendering, minflux_traces)
from smlmspine.simulate.synapses import synapses

# recorded from the flat-keyword API at commit 1e0a39a
REFERENCE = {
    "minflux_default": "2a9499f38396747b72b2fb65888f25f0ad618fa7b94e33c6161d39f9f90a7a1d",
    "minflux_2d_drift": "a6cde96705eaab95ba34cdc4a0fb26d76d6ef866f976b8a0b33ac8169c7b7ec5",
    "minflux_positions": "11c06c95c6c8641d791221747d394887855a58e34b33e0f654e2ba0ca7931670",
    "minflux_zdrift_only": "c654f565d5bacdec983692bdbe336b5df2931cff7872be7ae20b6aa0017e116a",
    "synapses_2d": "151181a187e3764dfe0b1e746d809318a544506b59e8c75ea10315acc617561a",
    "synapses_3d_box": "768b1ec0d99584e97a58dbd2f9384cead257750ff220a540e93927c6f5e63abe",
    "synapses_mask": "82adcf82b981e8f80a4b5b5f850ed32524a74c5dfb48a88c3857fcc7ce351abb",
    "synapses_objects_only": "82b99553ce3c7aaca82633bec1b463459144c2a1c4e222d60a23be63fefd0bec",
}


def _digest(tables):
    h = hashlib.sha256()
    for name, t in tables:
        h.update(name.encode())
        for c in t.column_names:
            a = np.ascontiguousarray(t.column(c).to_numpy(zero_copy_only=False))
            h.update(c.encode())
            h.update(str(a.dtype).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _minflux_digest(sim):
    return _digest([("loc", sim.localizations), ("truth", sim.truth), ("em", sim.emitters),
                    ("drift", sim.drift)])


def _synapse_digest(sim):
    return _digest([(n, getattr(sim, n)) for n in (
        "pre_objects", "post_objects", "pre_localizations", "post_localizations", "pre_truth",
        "post_truth", "pairs")])


def _positions():
    return np.random.default_rng(5).random((30, 3)) * 1000


def _mask():
    mask = np.zeros((40, 50), bool)
    mask[5:35, 5:45] = True
    return mask


def _minflux(case):
    if case == "minflux_default":  # flat: n_emitters=40, rng=0
        return minflux_traces(sample=MinfluxSample(n_emitters=40), rng=0)
    if case == "minflux_2d_drift":
        # flat: n_emitters=25, ndim=2, region_nm=(3000, 1500), precision_nm=4,
        # localizations_per_trace=8, traces_per_emitter=2, time_s=120,
        # localization_interval_s=0.01, efo_median_hz=60e3, dwell_s=1e-3, dcr_mean=0.3,
        # background_hz=2e3, invalid_fraction=0.2, drift_nm=40, rng=3
        return minflux_traces(
            sample=MinfluxSample(n_emitters=25, region_nm=(3000.0, 1500.0)), ndim=2,
            timing=MinfluxTiming(localizations_per_trace=8.0, traces_per_emitter=2.0,
                                 time_s=120.0, localization_interval_s=0.01),
            quality=MinfluxQuality(precision_nm=4.0, efo_median_hz=60e3, dwell_s=1e-3,
                                   dcr_mean=0.3, background_hz=2e3, invalid_fraction=0.2),
            drift=SimulatedDrift(drift_nm=40.0), rng=3)
    if case == "minflux_positions":
        # flat: positions_nm=_positions(), precision_nm=2, precision_z_nm=5, n_iterations=7,
        # drift_nm=10, drift_z_nm=20, rng=11
        return minflux_traces(
            sample=MinfluxSample(positions_nm=_positions()),
            quality=MinfluxQuality(precision_nm=2.0, precision_z_nm=5.0, n_iterations=7),
            drift=SimulatedDrift(drift_nm=10.0, drift_z_nm=20.0), rng=11)
    # flat: n_emitters=10, drift_z_nm=15, rng=2 (drift_nm left at the old default 0)
    return minflux_traces(sample=MinfluxSample(n_emitters=10),
                          drift=SimulatedDrift(drift_nm=0.0, drift_z_nm=15.0), rng=2)


def _synapses(case):
    if case == "synapses_2d":
        # flat: n_pre=80, n_post=60, coupled_fraction=0.4, distance_mean_nm=80,
        # distance_sd_nm=20, locs_per_object=6, object_radius_nm=25,
        # blinks_per_fluorophore=2, precision_nm=8, n_frames=500, rng=1
        return synapses(
            populations=SynapsePopulations(n_pre=80, n_post=60, coupled_fraction=0.4,
                                           distance_mean_nm=80.0, distance_sd_nm=20.0),
            rendering=SynapseRendering(locs_per_object=6.0, object_radius_nm=25.0,
                                       blinks_per_fluorophore=2.0, precision_nm=8.0,
                                       n_frames=500), rng=1)
    if case == "synapses_3d_box":
        # flat: n_pre=50, n_post=50, coupled_fraction=0.6, ndim=3, region_lo_nm=(0, 0, 0),
        # region_hi_nm=(4000, 4000, 1000), locs_per_object=4, precision_nm=10,
        # precision_z_nm=30, object_radius_nm=15, rng=2
        return synapses(
            populations=SynapsePopulations(n_pre=50, n_post=50, coupled_fraction=0.6),
            region=BoxRegion((0, 0, 0), (4000, 4000, 1000)), ndim=3,
            rendering=SynapseRendering(locs_per_object=4.0, precision_nm=10.0,
                                       precision_z_nm=30.0, object_radius_nm=15.0), rng=2)
    if case == "synapses_mask":
        # flat: n_pre=30, n_post=30, coupled_fraction=0.5, mask=_mask(), voxel_size_nm=100,
        # mask_origin_nm=(500, 200), locs_per_object=3, rng=4
        return synapses(
            populations=SynapsePopulations(n_pre=30, n_post=30, coupled_fraction=0.5),
            region=MaskRegion(_mask(), voxel_size_nm=100.0, origin_nm=(500.0, 200.0)),
            rendering=SynapseRendering(locs_per_object=3.0), rng=4)
    # flat: n_pre=20, n_post=10, rng=0 (no localizations)
    return synapses(populations=SynapsePopulations(n_pre=20, n_post=10), rng=0)


@pytest.mark.parametrize("case", [k for k in REFERENCE if k.startswith("minflux")])
def test_minflux_groups_reproduce_flat_keywords(case):
    assert _minflux_digest(_minflux(case)) == REFERENCE[case]


@pytest.mark.parametrize("case", [k for k in REFERENCE if k.startswith("synapses")])
def test_synapse_groups_reproduce_flat_keywords(case):
    assert _synapse_digest(_synapses(case)) == REFERENCE[case]


def test_recorded_parameters_stay_flat():
    sim = _minflux("minflux_positions")
    assert sim.parameters == {
        "background_hz": 5000.0, "dcr_mean": 0.5, "drift_nm": 10.0, "drift_z_nm": 20.0,
        "dwell_s": 0.002, "efo_median_hz": 80000.0, "invalid_fraction": 0.1, "kind": "minflux",
        "localization_interval_s": 0.005, "localizations_per_trace": 20.0, "n_emitters": 30,
        "n_iterations": 7, "ndim": 3, "precision_nm": 2.0, "precision_z_nm": 5.0,
        "time_s": 600.0, "traces_per_emitter": 1.5}
    syn = _synapses("synapses_3d_box")
    assert syn.parameters == {
        "blinks_per_fluorophore": 1.0, "coupled_fraction": 0.6, "distance_mean_nm": 100.0,
        "distance_sd_nm": 30.0, "locs_per_object": 4.0, "n_frames": 10000, "n_post": 50,
        "n_pre": 50, "ndim": 3, "object_radius_nm": 15.0, "precision_nm": 10.0,
        "precision_z_nm": 30.0}


def test_digest_sees_a_one_bit_change():
    sim = _minflux("minflux_default")
    x = sim.localizations.column("x").to_numpy().copy()
    x[0] = np.nextafter(x[0], np.inf)
    changed = sim.localizations.set_column(0, "x", pa.array(x))
    assert _digest([("loc", changed)]) != _digest([("loc", sim.localizations)])


def test_groups_default_to_the_old_defaults():
    # the flat keywords' defaults (commit 1e0a39a)
    default = MinfluxSample()
    assert (default.n_emitters, default.region_nm, default.positions_nm) == (
        100, (2000.0, 2000.0, 600.0), None)
    assert MinfluxTiming() == MinfluxTiming(20.0, 1.5, 600.0, 0.005)
    assert MinfluxQuality() == MinfluxQuality(3.0, None, 80e3, 2e-3, 0.5, 5e3, 0.1, None)
    assert SynapsePopulations() == SynapsePopulations(500, 500, 0.5, 100.0, 30.0)
    assert SynapseRendering() == SynapseRendering(0.0, 1.0, 0.0, 10.0, None, 10000)
    # minflux: no drift unless asked (SimulatedDrift's own default is 150 nm)
    sim = minflux_traces(sample=MinfluxSample(n_emitters=5), rng=0)
    assert not np.any(sim.truth.column("dx_nm").to_numpy())


@pytest.mark.parametrize("make, match", [
    (lambda: MinfluxSample(n_emitters=-1), "n_emitters must be >= 0"),
    (lambda: MinfluxSample(region_nm=(1.0,)), "region_nm must have 2 or 3 values"),
    (lambda: MinfluxSample(positions_nm=np.zeros((3, 4))), r"positions_nm must have shape"),
    (lambda: MinfluxTiming(localizations_per_trace=0.5), "must be >= 1"),
    (lambda: MinfluxTiming(time_s=0.0), "must be > 0"),
    (lambda: MinfluxQuality(precision_nm=0.0), "must be > 0"),
    (lambda: MinfluxQuality(invalid_fraction=1.0), r"invalid_fraction must be in \[0, 1\)"),
    (lambda: MinfluxQuality(n_iterations=0), "n_iterations must be >= 1"),
    (lambda: minflux_traces(ndim=4), "ndim must be 2 or 3"),
    (lambda: minflux_traces(timing=MinfluxQuality()), "timing= must be a smlmspine.simulate.MinfluxTiming"),
    (lambda: minflux_traces(drift=SimulatedDrift(table=object())), "not a drift table"),
    (lambda: SynapsePopulations(coupled_fraction=-0.1), r"coupled_fraction must be in \[0, 1\]"),
    (lambda: SynapsePopulations(n_pre=-1), "n_pre and n_post must be >= 0"),
    (lambda: SynapsePopulations(distance_sd_nm=-1.0), "must be >= 0"),
    (lambda: SynapseRendering(locs_per_object=-1.0), "must be >= 0"),
    (lambda: SynapseRendering(blinks_per_fluorophore=0.0), "must be > 0"),
    (lambda: synapses(region="box"), "region= must be a smlmspine.coupling region"),
    (lambda: synapses(region=BoxRegion((0, 0), (1, 1)), ndim=3), "ndim=3 but the region is 2D"),
    (lambda: synapses(ndim=1), "ndim must be 2 or 3"),
])
def test_bad_groups_are_refused(make, match):
    with pytest.raises(ParameterError, match=match):
        make()


def test_positions_are_not_mutated():
    pos = _positions()
    before = pos.copy()
    minflux_traces(sample=MinfluxSample(positions_nm=pos), ndim=2, rng=0)
    np.testing.assert_array_equal(pos, before)
