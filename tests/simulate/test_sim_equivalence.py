"""The parameter groups (issue #16) reproduce the flat-keyword simulator's output.

``equivalence_reference.json`` holds summary numbers (row counts, sums of x/y/z,
photons, precisions, frames, spine ids, the whole truth_spines table, drift) of three
simulations recorded with the flat-keyword API before the refactoring (commit 55eafc9),
with the same seeds and settings as below.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import trimesh

from smlmspine.simulate import (Acquisition, SimulatedDrift, Geometry, Labeling, Meshing,
                                PhotophysicsModel, dendrite, sample_mesh)

REFERENCE = json.loads((Path(__file__).parent / "equivalence_reference.json").read_text())


def _summary(sim):
    loc, truth = sim.localizations, sim.truth
    out = {"n": loc.num_rows}
    for c in ("x", "y", "z", "photons", "precision_xy"):
        out["sum_" + c] = float(np.sum(loc.column(c).to_numpy()))
    out["sum_frame"] = int(np.sum(loc.column("frame").to_numpy()))
    out["sum_spine_id"] = int(np.sum(truth.column("spine_id").to_numpy()))
    out["sum_x_true"] = float(np.nansum(truth.column("x_true").to_numpy()))
    out["n_emitters"] = sim.emitters.num_rows
    out["spines"] = sim.spines.to_pydict()
    out["drift_sum"] = float(np.sum(sim.drift.column("dx_nm").to_numpy())
                             + np.sum(sim.drift.column("dz_nm").to_numpy()))
    return out


def _assert_same(got, want, where=""):
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        if math.isnan(want):
            assert math.isnan(got), where
        else:  # the same arithmetic: equal to the last bits (1e-12 allows for a summation order)
            assert got == pytest.approx(want, rel=1e-12, abs=1e-9), where
    else:
        assert got == want, where


def _run(case):
    if case == "a":
        return dendrite(geometry=Geometry(n_spines=3, shaft_length_nm=4000.0),
                        acquisition=Acquisition(n_frames=2000), rng=1)
    if case == "b":
        return dendrite(
            geometry=Geometry(n_spines=2, shaft_length_nm=4000.0, curvature_per_um=0.1,
                              classes=("thin", "branched")),
            labeling=Labeling(label="volume", head_enrichment=2.0),
            acquisition=Acquisition(n_frames=1500, n_fiducials=2, background_rate_per_frame=0.5,
                                    fiducial_photons=20000.0),
            photophysics=PhotophysicsModel(precision_xy_nm=10.0, labeling_efficiency=0.7,
                                           blinks_per_fluorophore=2.0),
            drift=SimulatedDrift(drift_nm=100.0, drift_z_nm=30.0),
            meshing=Meshing(spine_mesh_max_faces=3000, mesh_step_nm=30.0), rng=7)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=500.0)
    small = trimesh.creation.icosphere(subdivisions=2, radius=200.0)
    small.apply_translation([0, 0, 400.0])
    return sample_mesh(
        sphere, spine_meshes={4: small}, acquisition=Acquisition(n_frames=1000),
        photophysics=PhotophysicsModel(photons_median=2000.0, psf_sigma_nm=120.0,
                                       pixel_size_nm=100.0, axial_factor=3.0,
                                       frames_per_blink=2.0, photons_sigma_log=0.3,
                                       background_photons=10.0),
        labeling=Labeling(labeling_density_per_um2=800.0), rng=3)


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_grouped_parameters_reproduce_the_flat_api(case):
    _assert_same(_summary(_run(case)), REFERENCE[case], case)


def test_group_type_is_checked():
    from smlmspine.errors import ParameterError

    with pytest.raises(ParameterError, match="acquisition= must be a smlmspine.simulate.Acquisition"):
        dendrite(acquisition={"n_frames": 10})
