"""The plugin inside napari (headless: ``napari.components.ViewerModel``, no Qt window).

Marked slow and skipped without napari (the ``napari`` extra); the layer-data tuples
themselves are tested without napari in ``test_napari_reader.py``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import smlmspine.io as sio
from smlmspine.envelope import export_mesh
from smlmspine.napari import points_layers
from smlmspine.schema import make_table
from smlmspine.simulate import Geometry, dendrite

pytestmark = pytest.mark.slow

MANIFEST = Path(__file__).resolve().parents[2] / "smlmspine" / "napari" / "napari.yaml"


@pytest.fixture(scope="module")
def napari():
    with warnings.catch_warnings():  # napari / npe2 / pydantic deprecations on import
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        npe2 = pytest.importorskip("npe2")
        import napari.components  # noqa: F401  (the attribute below)
        import napari.layers  # noqa: F401
    pm = npe2.PluginManager.instance()
    try:
        pm.get_manifest("smlmspine")  # installed: found through the entry point
    except KeyError:
        pm.register(npe2.PluginManifest.from_file(MANIFEST))  # a source checkout
    return napari


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("napari_viewer")
    sim = dendrite(geometry=Geometry(n_spines=2, shaft_length_nm=2000), rng=3)
    sio.write(sim.localizations, d / "locs.csv")
    meshes = d / "meshes"
    meshes.mkdir()
    export_mesh(sim.mesh, meshes / "dendrite.ply")
    for sid, m in sim.spine_meshes.items():
        export_mesh(m, meshes / f"spine_{sid}.ply", spine_id=sid)
    image = np.zeros((3, 4, 5), np.float32)
    tifffile.imwrite(d / "image.ome.tif", image, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.01, "PhysicalSizeY": 0.02,
                               "PhysicalSizeZ": 0.05,
                               "Plane": {"PositionX": [1.5] * 3, "PositionY": [0.1] * 3,
                                         "PositionZ": [-0.2] * 3}})
    return sim, d


def test_viewer_opens_points_meshes_and_image_through_the_plugin(napari, data):
    sim, d = data
    viewer = napari.components.ViewerModel()
    [points] = viewer.open(d / "locs.csv", plugin="smlmspine")
    surfaces = viewer.open(d / "meshes", plugin="smlmspine")
    [image] = viewer.open(d / "image.ome.tif", plugin="smlmspine")

    table = sim.localizations
    zyx = np.column_stack([table.column(c).to_numpy() for c in ("z", "y", "x")])
    assert type(points).__name__ == "Points"
    np.testing.assert_allclose(points.data, zyx, atol=1e-6)
    assert [str(u) for u in points.units] == ["nanometer"] * 3
    assert tuple(points.axis_labels) == ("z", "y", "x")
    assert set(table.column_names) <= set(points.features.columns)
    # coloured by z: the deepest and the highest localization differ in colour
    lo, hi = np.argmin(zyx[:, 0]), np.argmax(zyx[:, 0])
    assert not np.allclose(points.face_color[lo], points.face_color[hi])

    assert [type(s).__name__ for s in surfaces] == ["Surface"] * (1 + len(sim.spine_meshes))
    sid = min(sim.spine_meshes)
    spine = next(s for s in surfaces if s.name == f"spine_{sid}.ply")
    np.testing.assert_allclose(spine.vertices, sim.spine_meshes[sid].vertices[:, ::-1], rtol=1e-6)
    assert all(str(u) == "nanometer" for s in surfaces for u in s.units)

    assert type(image).__name__ == "Image"
    np.testing.assert_allclose(image.scale, [50.0, 20.0, 10.0])
    # voxel index 0 sits at the OME origin (pixel centres, nm)
    np.testing.assert_allclose(image.data_to_world([0, 0, 0]), [-200.0, 100.0, 1500.0])


def test_napari_accepts_the_subsample_and_density_layers(napari):
    rng = np.random.default_rng(1)
    t = make_table({"x": rng.uniform(0, 1e4, 500), "y": rng.uniform(0, 1e4, 500),
                    "z": rng.uniform(-300, 300, 500)})
    layers = [napari.layers.Layer.create(*tup) for tup in points_layers(t, max_points=50)]
    assert [type(layer).__name__ for layer in layers] == ["Points", "Image"]
    assert len(layers[0].data) == 50 and layers[1].data.sum() == 500


def test_sample_data_opens_in_napari(napari):
    viewer = napari.components.ViewerModel()
    layers = viewer.open_sample("smlmspine", "simulated_dendrite")
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds[0] == "Points" and set(kinds[1:]) == {"Surface"} and len(kinds) >= 3
