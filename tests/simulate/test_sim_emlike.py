"""EM-like spines (issue #14 item 1): irregular surfaces, elliptic/bent/beaded necks,
lobed heads, low-poly truth meshes and spine-only data sets, against their design."""

import numpy as np
import pytest

from smlmspine.errors import ParameterError
from smlmspine.morphology._sections import cross_section
from smlmspine.simulate import (Acquisition, Geometry, Labeling, Meshing, SpineParameters,
                                SpineShapeNoise, dendrite, measure_truth_spine)
from smlmspine.simulate._geometry import build_geometry
from smlmspine.simulate._shape import draw_noise_field, draw_spine_shape


def _geometry(params, noise, *, seed=0, layout="spines", gap_nm=200.0):
    rng = np.random.default_rng(seed)
    field = draw_noise_field(noise, rng)
    shapes = [draw_spine_shape(noise, p, rng) for p in params]
    return build_geometry(params, shaft_radius_nm=400.0, shaft_length_nm=6000.0, shapes=shapes,
                          field=field, layout=layout, min_gap_nm=gap_nm, rng=rng)


def _trimesh(v, f):
    import trimesh

    return trimesh.Trimesh(v, f, process=False)


def test_irregularity_amplitude_on_the_truth_mesh():
    # Spherical heads: the smooth head's implicit function is the exact distance, so on
    # the irregular mesh |p - c| - R = -field(p) (the field is the normal displacement).
    amp = 8.0
    noise = SpineShapeNoise(amplitude_nm=amp, wavelength_nm=150.0)
    params = [SpineParameters("mushroom", 150.0, 300.0, 500.0, 500.0) for _ in range(3)]
    geom = _geometry(params, noise, seed=4)
    disp, resid = [], []
    for k, sp in enumerate(geom.spines):
        v, f = geom.spine_mesh(k, step_nm=10.0)
        assert _trimesh(v, f).is_watertight
        c, frame, radii = sp.heads()[0]
        distal = (v - c) @ frame[0] > 0.2 * radii[0]
        d = np.linalg.norm(v[distal] - c, axis=1) - radii[0]
        disp.append(d)
        resid.append(d + geom.field(v[distal]))
    disp, resid = np.concatenate(disp), np.concatenate(resid)
    assert np.sqrt(np.mean(disp ** 2)) == pytest.approx(amp, rel=0.2)
    assert np.sqrt(np.mean(resid ** 2)) < 0.15 * amp   # the displacement is the field


def test_elliptic_neck_reaches_the_requested_aspect_with_the_design_area():
    noise = SpineShapeNoise(neck_aspect_max=2.0)
    prm = SpineParameters("mushroom", 200.0, 800.0, 700.0, 700.0)
    geom = _geometry([prm], noise, seed=1)
    sp = geom.spines[0]
    v, f = geom.spine_mesh(0, step_nm=8.0)
    mesh = _trimesh(v, f)
    assert mesh.is_watertight
    ratios, diams = [], []
    for t in np.linspace(0.1, 0.8, 15) * prm.neck_length_nm:
        sec = cross_section(mesh, sp.base + t * sp.axis, sp.axis)
        ratios.append(sec["max_width_nm"] / sec["min_width_nm"])
        diams.append(sec["diameter_nm"])
    assert max(ratios) == pytest.approx(2.0, rel=0.08)
    assert min(ratios) > 1.35                      # between (1 + 2) / 2 and 2 along the neck
    assert np.median(diams) == pytest.approx(200.0, rel=0.04)   # equivalent diameter kept
    m = measure_truth_spine(v, f, base_nm=sp.base, axis=sp.axis)
    assert m.neck_min_diameter_nm == pytest.approx(200.0, rel=0.05)


def test_neck_with_several_minima():
    noise = SpineShapeNoise(n_neck_minima=3, neck_bulge=0.4)
    prm = SpineParameters("mushroom", 160.0, 900.0, 700.0, 700.0)
    geom = _geometry([prm], noise, seed=2)
    sp = geom.spines[0]
    v, f = geom.spine_mesh(0, step_nm=8.0)
    mesh = _trimesh(v, f)
    L = prm.neck_length_nm

    def d(s):
        return cross_section(mesh, sp.base + s * L * sp.axis, sp.axis)["diameter_nm"]

    for s in (1 / 6, 1 / 2):                       # minima at s = (k + 1/2) / 3
        assert d(s) == pytest.approx(160.0, rel=0.05)
    for s in (1 / 3, 2 / 3):                       # 40 % wider between them
        assert d(s) == pytest.approx(1.4 * 160.0, rel=0.06)


def test_bent_neck_truth_follows_the_centreline():
    noise = SpineShapeNoise(neck_curvature=0.45, neck_kink_deg=30.0)
    prm = SpineParameters("thin", 120.0, 1200.0, 320.0, 340.0)
    sim = dendrite(geometry=Geometry(spines=[prm], layout="spines", shape_noise=noise),
                   meshing=Meshing(spine_mesh_step_nm=6.0), acquisition=Acquisition(n_frames=20),
                   labeling=Labeling(labeling_density_per_um2=50.0), rng=3)
    row = sim.spines.to_pylist()[0]
    mesh = sim.spine_meshes[0]
    base = np.array([row["base_x_nm"], row["base_y_nm"], row["base_z_nm"]])
    axis = np.array([row["axis_x"], row["axis_y"], row["axis_z"]])
    tip = mesh.vertices[np.argmax((mesh.vertices - base) @ axis)]
    lateral = np.linalg.norm((tip - base) - ((tip - base) @ axis) * axis)
    assert lateral > 200.0                          # the spine is bent
    # sections perpendicular to the true centreline: the design neck
    assert row["neck_min_diameter_nm"] == pytest.approx(120.0, rel=0.06)
    assert row["head_diameter_nm"] == pytest.approx(320.0, rel=0.08)
    # arc length base -> tip exceeds the straight-axis extent
    assert row["length_nm"] > (tip - base) @ axis
    assert row["length_nm"] == pytest.approx(1200.0 + 0.45 * 340.0 + 0.5 * 340.0, rel=0.1)


def test_decimated_truth_meshes_are_low_poly_watertight_and_labelled():
    noise = SpineShapeNoise(amplitude_nm=8.0, neck_aspect_max=1.5, head_lobes=2,
                            decimate_vertices=600)
    params = [SpineParameters("mushroom", 160.0, 400.0, 500.0, 500.0),
              SpineParameters("thin", 110.0, 700.0, 300.0, 340.0)]
    sim = dendrite(geometry=Geometry(spines=params, layout="spines", shape_noise=noise),
                   acquisition=Acquisition(n_frames=20),
                   labeling=Labeling(labeling_density_per_um2=300.0), rng=5)
    from smlmspine.simulate._dendrite import _signed_distance

    em = sim.emitters.to_pandas()
    for k, mesh in sim.spine_meshes.items():
        assert 540 <= len(mesh.vertices) <= 660
        assert mesh.is_watertight and mesh.volume > 0
        p = em[em.spine_id == k][["x_nm", "y_nm", "z_nm"]].to_numpy()
        assert len(p) > 100
        assert np.abs(_signed_distance(mesh)(p)).max() < 0.05   # on the low-poly surface
    assert sim.mesh.is_watertight


def test_spine_only_set_is_cut_flat_spaced_and_fully_labelled():
    gap = 300.0
    from dataclasses import replace

    noise = replace(SpineShapeNoise.em_like(), decimate_vertices=500)
    sim = dendrite(geometry=Geometry(n_spines=3, classes=("thin",), layout="spines",
                                     spine_gap_nm=gap, shape_noise=noise),
                   acquisition=Acquisition(n_frames=200, background_rate_per_frame=0.0),
                   labeling=Labeling(labeling_density_per_um2=200.0), rng=6)
    sid = sim.truth.column("spine_id").to_numpy()
    table = sim.spines.to_pandas()
    assert (sid >= 0).all()                                   # no shaft, no background
    assert set(np.unique(sid)) == set(table.spine_id)
    em = sim.emitters.to_pandas()
    assert (em.spine_id >= 0).all()
    assert np.array_equal(em.groupby("spine_id").size().to_numpy(), table.n_emitters.to_numpy())
    verts = {}
    for row in table.itertuples():
        mesh = sim.spine_meshes[row.spine_id]
        assert mesh.is_watertight
        base = np.array([row.base_x_nm, row.base_y_nm, row.base_z_nm])
        axis = np.array([row.axis_x, row.axis_y, row.axis_z])
        t = (mesh.vertices - base) @ axis
        assert t.min() > -0.5 and np.sum(np.abs(t) < 0.5) >= 3   # cut flat at the base
        p = em[em.spine_id == row.spine_id][["x_nm", "y_nm", "z_nm"]].to_numpy()
        tp = (p - base) @ axis
        assert tp.min() > -0.05 and np.sum(tp < 0.05) == 0     # none on the cut (the cap)
        verts[row.spine_id] = mesh.vertices
        # the truth is that of the flat-cut (decimated) truth mesh
        assert row.volume_um3 == pytest.approx(mesh.volume * 1e-9, rel=1e-9)
        assert 450 <= len(mesh.vertices) <= 550
    from scipy.spatial import cKDTree

    ids = sorted(verts)
    for i in ids:
        for j in ids:
            if i < j:
                dist, _ = cKDTree(verts[j]).query(verts[i])
                assert dist.min() >= gap


def test_plain_shapes_are_unchanged_and_parameters_checked():
    from smlmspine.simulate import SimulatedDrift

    kw = dict(geometry=Geometry(n_spines=1, classes=["stubby"], shaft_length_nm=2000.0),
              acquisition=Acquisition(n_frames=100), meshing=Meshing(mesh_step_nm=40.0),
              drift=SimulatedDrift(drift_nm=0.0))
    a = dendrite(rng=3, **kw)
    g = kw.pop("geometry")
    from dataclasses import replace

    b = dendrite(rng=3, geometry=replace(g, shape_noise=SpineShapeNoise()), **kw)
    assert a.localizations.equals(b.localizations) and a.spines.equals(b.spines)
    for bad, match in [({"amplitude_nm": 100.0, "wavelength_nm": 200.0}, "too large"),
                       ({"neck_aspect_max": 0.5}, "neck_aspect_max"),
                       ({"decimate_vertices": 10}, "decimate_vertices")]:
        with pytest.raises(ParameterError, match=match):
            SpineShapeNoise(**bad)
    with pytest.raises(ParameterError, match="layout"):
        Geometry(layout="grid")


def test_volume_label_fills_the_low_poly_spines():
    noise = SpineShapeNoise(amplitude_nm=6.0, neck_aspect_max=1.6, decimate_vertices=400)
    params = [SpineParameters("thin", 110.0, 700.0, 300.0, 340.0),
              SpineParameters("mushroom", 160.0, 400.0, 500.0, 500.0)]
    sim = dendrite(geometry=Geometry(spines=params, layout="spines", shape_noise=noise),
                   labeling=Labeling(label="volume", labeling_density_per_um3=20000.0),
                   acquisition=Acquisition(n_frames=20), rng=8)
    from smlmspine.simulate._dendrite import _signed_distance

    em = sim.emitters.to_pandas()
    assert (em.spine_id >= 0).all()
    for k, mesh in sim.spine_meshes.items():
        p = em[em.spine_id == k][["x_nm", "y_nm", "z_nm"]].to_numpy()
        assert _signed_distance(mesh)(p).max() <= 0.05          # inside the truth mesh
        assert len(p) / (mesh.volume * 1e-9) == pytest.approx(20000.0, rel=0.15)


def test_cli_spine_only_em_like(tmp_path):
    import pyarrow.parquet as pq

    from smlmspine.cli import main

    out = tmp_path / "em.parquet"
    assert main(["simulate", "dendrite", str(out), "--seed", "2", "--layout", "spines",
                 "--n-spines", "2", "--classes", "thin", "--em-like", "--decimate-vertices", "400",
                 "--neck-aspect-max", "2", "--n-frames", "50", "--background-rate-per-frame", "0",
                 "--drift-nm", "0"]) == 0
    truth = pq.read_table(tmp_path / "em.truth" / "localizations.parquet")
    spines = pq.read_table(tmp_path / "em.truth" / "spines.parquet")
    sid = truth.column("spine_id").to_numpy()
    assert (sid >= 0).all() and set(sid) == set(spines.column("spine_id").to_pylist()) == {0, 1}
    import json

    params = json.loads((tmp_path / "em.truth" / "parameters.json").read_text())
    text = json.dumps(params)
    assert '"layout": "spines"' in text and '"neck_aspect_max": 2.0' in text
