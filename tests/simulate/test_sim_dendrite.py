"""dendrite() / sample_mesh(): statistics of the simulated acquisition against its truth."""

import numpy as np
import pyarrow as pa
import pytest
import trimesh

from smlmspine.errors import ParameterError
from smlmspine.schema import COLUMNS, validate
from smlmspine.simulate import (Acquisition, SimulatedDrift, Geometry, Labeling, Meshing,
                                PhotophysicsModel, SpineParameters, dendrite, mortensen_precision,
                                sample_mesh)

SPINES = [SpineParameters("mushroom", 200.0, 600.0, 800.0, 800.0),
          SpineParameters("thin", 100.0, 700.0, 450.0, 500.0)]


@pytest.fixture(scope="module")
def sim():
    return dendrite(geometry=Geometry(spines=SPINES, shaft_length_nm=4000.0),
                    acquisition=Acquisition(n_frames=5000, n_fiducials=2,
                                            background_rate_per_frame=0.2),
                    labeling=Labeling(labeling_density_per_um2=400.0), rng=7)


def _col(t, name):
    return t.column(name).to_numpy(zero_copy_only=False)


def test_tables_are_canonical_and_row_aligned(sim):
    locs = validate(sim.localizations)
    assert set(locs.column_names) == {"x", "y", "z", "frame", "photons", "background",
                                      "precision_xy", "precision_z"}
    assert all(locs.schema.field(c).type == COLUMNS[c].type for c in locs.column_names)
    assert sim.truth.num_rows == locs.num_rows
    assert np.all(np.diff(_col(locs, "frame")) >= 0)
    assert set(np.unique(_col(sim.truth, "spine_id"))) == {-1, 0, 1}
    bg = _col(sim.truth, "is_background")
    assert np.all(np.isnan(_col(sim.truth, "x_true")[bg]))
    assert np.all(_col(sim.truth, "emitter_id")[bg] == -1)
    assert bg.sum() == pytest.approx(0.2 * 5000, abs=5 * np.sqrt(1000))


def test_meshes_watertight_and_spine_table(sim):
    assert sim.mesh.is_watertight and sim.mesh.is_winding_consistent
    assert sorted(sim.spine_meshes) == [0, 1]
    assert all(m.is_watertight for m in sim.spine_meshes.values())
    sp = sim.spines.to_pandas().set_index("spine_class")
    # neck minimum and head diameter measured on the mesh follow the design
    assert sp.loc["mushroom", "neck_min_diameter_nm"] == pytest.approx(200.0, rel=0.05)
    assert sp.loc["thin", "neck_min_diameter_nm"] == pytest.approx(100.0, rel=0.08)
    assert sp.loc["mushroom", "head_diameter_nm"] == pytest.approx(800.0, rel=0.03)
    assert sp.loc["mushroom", "head_volume_um3"] == pytest.approx(0.268, rel=0.1)
    for k, mesh in sim.spine_meshes.items():
        row = sim.spines.to_pandas().set_index("spine_id").loc[k]
        assert row.volume_um3 == pytest.approx(mesh.volume * 1e-9, rel=1e-6)


def test_precision_distribution(sim):
    fid = _col(sim.truth, "is_fiducial") | _col(sim.truth, "is_background")
    sxy = _col(sim.localizations, "precision_xy")[~fid]
    expected = mortensen_precision(1500.0, 20.0, psf_sigma_nm=150.0, pixel_size_nm=160.0)
    assert np.median(sxy) == pytest.approx(expected, rel=0.05)
    assert 8.0 < np.median(sxy) < 16.0
    np.testing.assert_allclose(_col(sim.localizations, "precision_z"), 2.5 * _col(sim.localizations, "precision_xy"))


def test_drift_applied_equals_truth_and_is_bounded(sim):
    locs, truth = sim.localizations, sim.truth
    real = ~_col(truth, "is_background")
    frame = _col(locs, "frame")[real]
    dr = np.column_stack([_col(sim.drift, c) for c in ("dx_nm", "dy_nm", "dz_nm")])
    assert np.array_equal(_col(sim.drift, "frame"), np.arange(5000))
    for k, (obs, true, prec) in enumerate((("x", "x_true", "precision_xy"), ("y", "y_true", "precision_xy"),
                                           ("z", "z_true", "precision_z"))):
        zscore = (_col(locs, obs)[real] - _col(truth, true)[real] - dr[frame, k]) / _col(locs, prec)[real]
        assert abs(zscore.mean()) < 0.03
        assert zscore.std() == pytest.approx(1.0, abs=0.03)
    assert np.all(dr[0] == 0.0)
    assert np.hypot(dr[:, 0], dr[:, 1]).max() == pytest.approx(150.0)
    assert np.abs(dr[:, 2]).max() == pytest.approx(75.0)


def test_localizations_per_fluorophore_and_efficiency(sim):
    em = sim.emitters.to_pandas()
    fl = em[~em.is_fiducial]
    seen = fl.n_localizations > 0
    assert seen.mean() == pytest.approx(0.8, abs=0.025)
    assert fl.n_localizations[seen].mean() == pytest.approx(3.0 * 1.5, rel=0.05)
    beads = em[em.is_fiducial]
    assert np.all(beads.n_localizations > 0.95 * 5000)
    # the per-localization truth agrees with the emitter table
    truth = sim.truth.to_pandas()
    real = truth[truth.emitter_id >= 0]
    assert np.array_equal(np.bincount(real.emitter_id, minlength=len(em)), em.n_localizations.to_numpy())
    np.testing.assert_array_equal(real.x_true.to_numpy(), em.x_nm.to_numpy()[real.emitter_id])
    np.testing.assert_array_equal(real.spine_id.to_numpy(), em.spine_id.to_numpy()[real.emitter_id])


def test_membrane_labeling_density_and_position(sim):
    em = sim.emitters.to_pandas()
    fl = em[~em.is_fiducial]
    r = sim.parameters["shaft_radius_nm"]
    area_um2 = (sim.mesh.area - 2 * np.pi * r ** 2) * 1e-6  # minus the unlabelled end caps
    assert len(fl) / area_um2 == pytest.approx(400.0, rel=0.04)
    pts = fl[["x_nm", "y_nm", "z_nm"]].to_numpy()[::25]
    _, dist, _ = trimesh.proximity.closest_point(sim.mesh, pts)
    assert np.percentile(dist, 99) < 10.0
    # spine emitters are beyond their base plane
    sp = sim.spines.to_pandas().set_index("spine_id")
    for k, row in sp.iterrows():
        p = fl[fl.spine_id == k][["x_nm", "y_nm", "z_nm"]].to_numpy()
        t = (p - row[["base_x_nm", "base_y_nm", "base_z_nm"]].to_numpy(float)) @ \
            row[["axis_x", "axis_y", "axis_z"]].to_numpy(float)
        assert len(p) == row.n_emitters and np.all(t > 0) and t.max() <= row.length_nm + 1


def test_volume_label_density_inside_with_head_enrichment():
    sim = dendrite(geometry=Geometry(spines=[SpineParameters("mushroom", 200.0, 500.0, 800.0, 800.0)],
                                     shaft_length_nm=2500.0),
                   labeling=Labeling(label="volume", labeling_density_per_um3=2000.0,
                                     head_enrichment=3.0),
                   acquisition=Acquisition(n_frames=500), rng=3)
    em = sim.emitters.to_pandas()
    v_spine = sim.spines.column("volume_um3").to_numpy()[0]
    v_shaft = sim.mesh.volume * 1e-9 - v_spine
    assert (em.spine_id == -1).sum() / v_shaft == pytest.approx(2000.0, rel=0.06)
    v_head = np.pi / 6 * 0.8 ** 3  # the head ellipsoid gets 2x extra density
    assert (em.spine_id == 0).sum() / (v_spine + 2 * v_head) == pytest.approx(2000.0, rel=0.08)
    from smlmspine.simulate._dendrite import _mesh_inside

    pts = em[["x_nm", "y_nm", "z_nm"]].to_numpy()
    assert _mesh_inside(sim.mesh)(pts).mean() > 0.99


def test_user_drift_table_and_mesh_sampling():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1000.0)
    drift = pa.table({"frame": [0, 999], "dx_nm": [0.0, 100.0], "dy_nm": [0.0, -50.0]})
    sim = sample_mesh(sphere, acquisition=Acquisition(n_frames=1000), drift=SimulatedDrift(table=drift),
                      photophysics=PhotophysicsModel(precision_xy_nm=15.0), rng=5)
    np.testing.assert_allclose(sim.drift.column("dx_nm").to_numpy(), np.linspace(0, 100, 1000))
    np.testing.assert_allclose(sim.drift.column("dz_nm").to_numpy(), 0.0)
    em = sim.emitters.to_pandas()
    assert np.abs(np.linalg.norm(em[["x_nm", "y_nm", "z_nm"]].to_numpy(), axis=1) - 1000.0).max() < 5.0
    assert len(em) / (sphere.area * 1e-6) == pytest.approx(500.0, rel=0.05)
    assert sim.spines.num_rows == 0
    sxy = sim.localizations.column("precision_xy").to_numpy()
    assert np.median(sxy) == pytest.approx(15.0, rel=0.05)


def test_seed_reproducible_small():
    kw = dict(geometry=Geometry(n_spines=1, classes=["stubby"], shaft_length_nm=2000.0),
              acquisition=Acquisition(n_frames=300), meshing=Meshing(mesh_step_nm=40.0))
    a, b = dendrite(rng=11, **kw), dendrite(rng=11, **kw)
    assert a.localizations.equals(b.localizations)
    assert a.truth.to_pandas().equals(b.truth.to_pandas())  # NaN-aware (background rows)
    assert a.spines.equals(b.spines)
    c = dendrite(rng=12, **kw)
    assert not a.localizations.equals(c.localizations)


@pytest.mark.parametrize("group, kw, match", [
    (Labeling, {"label": "surface"}, "label"),
    (Acquisition, {"n_frames": 0}, "n_frames"),
    (PhotophysicsModel, {"labeling_efficiency": 1.5}, "labeling_efficiency"),
    (Geometry, {"classes": ["giant"]}, "unknown spine class"),
    (Meshing, {"mesh_step_nm": 0.0}, "mesh_step_nm"),
    (SimulatedDrift, {"drift_nm": -1.0}, "drift_nm"),
])
def test_bad_parameters(group, kw, match):
    with pytest.raises(ParameterError, match=match):
        group(**kw)


def test_bad_geometry_is_refused():
    with pytest.raises(ParameterError, match="curvature"):
        dendrite(geometry=Geometry(n_spines=1, shaft_length_nm=2000.0, curvature_per_um=1.0))


def test_volume_label_on_a_user_mesh():
    box = trimesh.creation.box(extents=[2000.0, 1000.0, 500.0])
    sim = sample_mesh(box, labeling=Labeling(label="volume", labeling_density_per_um3=3000.0),
                      acquisition=Acquisition(n_frames=200), rng=2)
    pts = sim.emitters.to_pandas()[["x_nm", "y_nm", "z_nm"]].to_numpy()
    assert len(pts) / (box.volume * 1e-9) == pytest.approx(3000.0, rel=0.06)  # 1 um^3
    assert np.all(np.abs(pts) <= [1000.0, 500.0, 250.0])
    open_mesh = trimesh.Trimesh(box.vertices, box.faces[:-2], process=False)
    with pytest.raises(ParameterError, match="watertight"):
        sample_mesh(open_mesh, labeling=Labeling(label="volume"), rng=0)


def test_public_names_resolve():
    import smlmspine.simulate as simulate

    for name in simulate.__all__:
        assert getattr(simulate, name) is not None, name
