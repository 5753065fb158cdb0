"""The napari plugin without napari: manifest, reader dispatch and the layer-data tuples.

``smlmspine.napari`` imports nothing from napari; these tests run in the default suite
whether napari is installed or not (the one npe2 check skips without npe2).
"""

from __future__ import annotations

import importlib
import importlib.resources
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile
import trimesh
import yaml

import smlmspine.io as sio
from smlmspine.envelope import export_mesh
from smlmspine.errors import FormatError, ParameterError
from smlmspine.napari import (IMAGE_EXTENSIONS, MAX_POINTS, MESH_EXTENSIONS, get_reader,
                              image_layers, localization_layers, mesh_layers, points_layers,
                              simulated_dendrite, surface_layer, voxel_image_layers)
from smlmspine.schema import make_table
from smlmspine.simulate import Geometry, dendrite
from smlmspine.voxel import VoxelImage, render, write_image

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "smlmspine" / "napari" / "napari.yaml"


# ---------------------------------------------------------------------------------------
# fixtures: a small simulated dendrite written in several forms


@pytest.fixture(scope="module")
def sim():
    return dendrite(geometry=Geometry(n_spines=2, shaft_length_nm=2000), rng=3)


@pytest.fixture(scope="module")
def files(sim, tmp_path_factory):
    d = tmp_path_factory.mktemp("napari")
    out = {"parquet": d / "dendrite.parquet", "csv": d / "dendrite.csv"}
    sim.write(out["parquet"])  # + dendrite.truth/ (mesh.ply, spine_<id>.ply, tables)
    sio.write(sim.localizations, out["csv"])  # ThunderSTORM CSV
    out["truth"] = d / "dendrite.truth"
    # a folder as `smlmspine mesh` writes it (export_mesh: header "smlmspine ... units=nm")
    meshes = d / "meshes"
    meshes.mkdir()
    export_mesh(sim.mesh, meshes / "dendrite.ply")
    for sid, m in sorted(sim.spine_meshes.items(), reverse=True):
        export_mesh(m, meshes / f"spine_{sid}.ply", spine_id=sid)
    sim.spines.to_pandas().to_parquet(meshes / "spines.parquet")
    out["meshes"] = meshes
    out["stl"] = export_mesh(sim.spine_meshes[min(sim.spine_meshes)], d / "spine.stl")
    out["foreign_obj"] = d / "foreign.obj"  # no units declared
    trimesh.creation.box(extents=(1.0, 2.0, 3.0)).export(out["foreign_obj"])
    out["ome"] = d / "image.ome.tif"
    out["labels"] = d / "labels.ome.tif"
    out["plain_tif"] = d / "plain.tif"
    image = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    tifffile.imwrite(out["ome"], image, ome=True, metadata=_ome_meta("ZYX", 3))
    tifffile.imwrite(out["labels"], image.astype(np.uint32), ome=True,
                     metadata=_ome_meta("ZYX", 3))
    tifffile.imwrite(out["plain_tif"], image, photometric="minisblack")
    out["npy"] = d / "array.npy"
    np.save(out["npy"], np.zeros((4, 4)))
    out["notes"] = d / "notes.txt"
    out["notes"].write_text("not localizations\n")
    out["empty_dir"] = d / "empty"
    out["empty_dir"].mkdir()
    return out


def _ome_meta(axes: str, n_planes: int, **extra) -> dict:
    # voxel 50 x 20 x 10 nm (z given in um, y in nm, x in um); voxel 0 centred at
    # x = 1.5 um, y = 100 nm, z = -0.2 um
    return {"axes": axes, "PhysicalSizeX": 0.01, "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 20, "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.05,
            "Plane": {"PositionX": [1.5] * n_planes, "PositionXUnit": ["µm"] * n_planes,
                      "PositionY": [100.0] * n_planes, "PositionYUnit": ["nm"] * n_planes,
                      "PositionZ": [-0.2] * n_planes},
            **extra}


# ---------------------------------------------------------------------------------------
# the manifest and its declaration


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def _resolve(python_name: str):
    module, _, attr = python_name.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_manifest_commands_resolve_and_readers_use_them():
    m = _manifest()
    assert m["name"] == "smlmspine"
    commands = {c["id"]: c for c in m["contributions"]["commands"]}
    for cid, c in commands.items():
        assert cid.startswith("smlmspine."), cid
        assert callable(_resolve(c["python_name"])), c["python_name"]
    assert _resolve(commands["smlmspine.get_reader"]["python_name"]) is get_reader
    readers = m["contributions"]["readers"]
    assert readers and all(r["command"] in commands for r in readers)
    assert any(r.get("accepts_directories") for r in readers)  # mesh folders
    [sample] = m["contributions"]["sample_data"]
    assert _resolve(commands[sample["command"]]["python_name"]) is simulated_dendrite


def test_manifest_patterns_cover_every_reader_extension():
    patterns = {p for r in _manifest()["contributions"]["readers"]
                for p in r["filename_patterns"]}
    assert all(p.startswith("*.") and p == p.lower() for p in patterns), patterns
    wanted = {e for r in sio.readers().values() for e in r.extensions}
    wanted |= set(MESH_EXTENSIONS) | set(IMAGE_EXTENSIONS)
    # "_sml.mat" is a name ending, covered by "*.mat"
    missing = {e for e in wanted if "*" + e not in patterns and not
               any(e.endswith(p[1:]) for p in patterns)}
    assert not missing, f"napari.yaml does not claim {sorted(missing)}"
    # and it claims nothing the plugin cannot read
    known = {"*" + e for e in wanted}
    assert patterns <= known, sorted(patterns - known)


def test_pyproject_declares_the_plugin_as_an_optional_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    napari_extra = project["project"]["optional-dependencies"]["napari"]
    assert any(s.replace(" ", "").startswith("napari>=0.5") for s in napari_extra)
    assert "npe2" in napari_extra
    assert not any(s.startswith(("napari", "npe2")) for s in project["project"]["dependencies"])
    entry = project["project"]["entry-points"]["napari.manifest"]["smlmspine"]
    module, _, resource = entry.partition(":")
    # what npe2 does with the entry point: the resource beside the module
    assert importlib.resources.files(module).joinpath(resource).read_text(encoding="utf-8") \
        == MANIFEST.read_text(encoding="utf-8")
    assert "napari.yaml" in project["tool"]["setuptools"]["package-data"]["smlmspine.napari"]


def test_manifest_is_a_valid_npe2_manifest(files):
    with warnings.catch_warnings():  # npe2 (pydantic) deprecation warnings on import
        warnings.simplefilter("ignore")
        npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "smlmspine"
    manifest.validate_imports()  # every python_name imports
    pm = npe2.PluginManager()
    pm.register(manifest)
    for key in ("csv", "parquet", "meshes", "ome", "stl"):
        found = [r.command for r in pm.iter_compatible_readers([str(files[key])])]
        assert found == ["smlmspine.get_reader"], key


# ---------------------------------------------------------------------------------------
# dispatch


@pytest.mark.parametrize("key", ["parquet", "csv", "truth", "meshes", "stl", "foreign_obj",
                                 "ome", "labels"])
def test_get_reader_claims_our_files(files, key):
    assert callable(get_reader(str(files[key])))


@pytest.mark.parametrize("key", ["plain_tif", "npy", "notes", "empty_dir"])
def test_get_reader_leaves_other_files_to_napari(files, key):
    assert get_reader(str(files[key])) is None


def test_get_reader_lists_and_missing_paths(files, tmp_path):
    reader = get_reader([str(files["csv"]), str(files["parquet"])])
    layers = reader([str(files["csv"]), str(files["parquet"])])
    assert [kind for _, _, kind in layers] == ["points", "points"]
    assert get_reader([str(files["csv"]), str(files["ome"])]) is None  # mixed kinds
    assert get_reader([]) is None
    assert get_reader(str(tmp_path / "missing.csv")) is None


# ---------------------------------------------------------------------------------------
# localizations -> Points


def test_points_layer_zyx_features_units_and_colour(sim, files):
    table = sim.localizations
    for key in ("parquet", "csv"):
        [(data, kw, kind)] = get_reader(str(files[key]))(str(files[key]))
        assert kind == "points"
        want = np.column_stack([table.column(c).to_numpy() for c in ("z", "y", "x")])
        np.testing.assert_allclose(data, want, rtol=0, atol=1e-6 if key == "csv" else 0)
        assert kw["axis_labels"] == ("z", "y", "x") and kw["units"] == ("nm",) * 3
        assert set(table.column_names) <= set(kw["features"])
        np.testing.assert_allclose(kw["features"]["photons"], table.column("photons").to_numpy(),
                                   rtol=1e-6)
        assert kw["face_color"] == "z" and kw["face_colormap"]
        lo, hi = kw["face_contrast_limits"]
        z = table.column("z").to_numpy()
        assert lo == pytest.approx(np.percentile(z, 1)) and hi == pytest.approx(np.percentile(z, 99))
        size = 2 * np.median(table.column("precision_xy").to_numpy())
        assert kw["size"] == pytest.approx(size, rel=1e-6) and 5 <= kw["size"] <= 100
        info = kw["metadata"]["smlmspine"]
        assert info["n_localizations"] == info["n_shown"] == table.num_rows
        assert not info["subsampled"] and info["columns"]["x"] == "nm"
        assert kw["name"] == files[key].name


def test_points_layer_2d_is_yx():
    t = make_table({"x": [1.0, 2.0, 3.0], "y": [10.0, 20.0, 30.0], "frame": [1, 2, 3]})
    [(data, kw, kind)] = points_layers(t, name="flat")
    assert data.tolist() == [[10.0, 1.0], [20.0, 2.0], [30.0, 3.0]]
    assert kw["axis_labels"] == ("y", "x") and kw["units"] == ("nm", "nm")
    assert "face_colormap" not in kw and kw["size"] == 20.0  # no precision column
    assert kw["features"]["frame"].tolist() == [1, 2, 3]
    # a z column of NaNs (2D data in a 3D layout) is 2D too
    t = make_table({"x": [1.0], "y": [2.0], "z": [np.nan]})
    assert points_layers(t)[0][1]["axis_labels"] == ("y", "x")


def test_points_layer_subsample_is_deterministic_with_a_density_of_all():
    rng = np.random.default_rng(5)
    n = 1000
    x, y, z = rng.uniform(0, 2000, n), rng.uniform(-500, 700, n), rng.uniform(-300, 300, n)
    t = make_table({"x": x, "y": y, "z": z, "frame": np.arange(n)})
    layers = points_layers(t, name="big", max_points=100)
    again = points_layers(t, name="big", max_points=100)
    (pts, kw, kind), (image, ikw, ikind) = layers
    assert (kind, ikind) == ("points", "image")
    np.testing.assert_array_equal(pts, again[0][0])
    assert pts.shape == (100, 3) and kw["name"] == "big (subsample 100 of 1,000)"
    info = kw["metadata"]["smlmspine"]
    assert info["subsampled"] and info["n_shown"] == 100 and info["n_localizations"] == n
    # every point shown is a row of the table, features aligned with it, rows in order
    rows = kw["features"]["frame"]
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(pts, np.column_stack([z[rows], y[rows], x[rows]]))
    # the density image counts all n localizations, each in the pixel napari puts it in
    assert image.sum() == n
    assert ikw["axis_labels"] == ("y", "x") and ikw["units"] == ("nm", "nm")
    scale, translate = np.array(ikw["scale"]), np.array(ikw["translate"])
    idx = np.floor((np.column_stack([y, x]) - translate) / scale + 0.5).astype(int)
    counts = np.zeros_like(image)
    np.add.at(counts, (idx[:, 0], idx[:, 1]), 1)
    np.testing.assert_array_equal(counts, image)
    assert MAX_POINTS >= 1_000_000


def test_points_layers_refuse_bad_input():
    t = make_table({"x": [1.0], "y": [2.0]})
    with pytest.raises(ParameterError, match="max_points"):
        points_layers(t, max_points=0)
    with pytest.raises(FormatError, match=r"no column\(s\) \['y'\]"):
        points_layers(pa.table({"x": [1.0]}))


def test_unreadable_localization_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('"x [nm]","y [nm]"\n1,oops\n')
    with pytest.raises(FormatError, match="bad.csv"):
        localization_layers(bad)


# ---------------------------------------------------------------------------------------
# meshes -> Surface


def test_mesh_folder_gives_one_surface_per_mesh(sim, files):
    layers = mesh_layers(files["meshes"])
    sids = sorted(sim.spine_meshes)
    assert [kw["name"] for _, kw, _ in layers] == ["dendrite.ply"] + [f"spine_{s}.ply" for s in sids]
    assert all(kind == "surface" for _, _, kind in layers)
    for (verts, faces, values), kw, _ in layers[1:]:
        m = sim.spine_meshes[int(kw["name"][6:-4])]
        np.testing.assert_allclose(verts, m.vertices[:, ::-1], rtol=1e-6)  # float32 PLY
        np.testing.assert_array_equal(faces, m.faces)
        assert values.shape == (len(verts),)
        assert kw["units"] == ("nm",) * 3 and kw["axis_labels"] == ("z", "y", "x")
    # distinct colours for the spines, the dendrite translucent grey
    assert layers[0][1]["colormap"] == "gray" and layers[0][1]["opacity"] < 1
    assert len({kw["colormap"] for _, kw, _ in layers[1:]}) == len(sids)


def test_simulated_truth_meshes_are_nm_and_foreign_meshes_have_no_unit(sim, files):
    layers = mesh_layers(files["truth"])
    assert [kw["name"] for _, kw, _ in layers][0] == "mesh.ply"
    assert all(kw["units"] == ("nm",) * 3 for _, kw, _ in layers)
    (verts, faces, _), kw, _ = mesh_layers(files["foreign_obj"])[0]
    assert "units" not in kw and kw["metadata"]["smlmspine"]["units"] is None
    np.testing.assert_allclose(np.ptp(verts, axis=0), [3.0, 2.0, 1.0])  # z, y, x extents
    [((verts, _, _), kw, _)] = mesh_layers(files["stl"])  # STL: no header, no unit
    assert "units" not in kw and len(verts)


def test_mesh_errors(files, tmp_path):
    with pytest.raises(FormatError, match="no mesh file"):
        mesh_layers(files["empty_dir"])
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 2\nend_header\n1 2\n")
    with pytest.raises(FormatError, match="bad.ply"):
        mesh_layers(bad)
    with pytest.raises(ParameterError, match=r"'vertices' must have shape \(V, 3\)"):
        surface_layer(np.zeros((3, 2)), [[0, 1, 2]])


# ---------------------------------------------------------------------------------------
# OME-TIFF -> Image / Labels


def test_ome_tiff_image_scale_and_origin_in_nm(files):
    [(data, kw, kind)] = get_reader(str(files["ome"]))(str(files["ome"]))
    assert kind == "image" and data.shape == (3, 4, 5)
    np.testing.assert_array_equal(data, np.arange(60, dtype=np.float32).reshape(3, 4, 5))
    assert kw["scale"] == pytest.approx((50.0, 20.0, 10.0))
    assert kw["translate"] == pytest.approx((-200.0, 100.0, 1500.0))
    assert kw["units"] == ("nm",) * 3 and kw["axis_labels"] == ("z", "y", "x")
    [(labels, lkw, lkind)] = image_layers(files["labels"])
    assert lkind == "labels" and labels.dtype == np.uint32
    assert lkw["scale"] == kw["scale"] and "colormap" not in lkw


def test_ome_tiff_channels_become_layers_and_missing_sizes_no_unit(tmp_path):
    path = tmp_path / "two.ome.tif"
    data = np.stack([np.zeros((4, 5), np.uint16), np.ones((4, 5), np.uint16)])
    tifffile.imwrite(path, data, ome=True,
                     metadata=_ome_meta("CYX", 2, Channel={"Name": ["pre", "post"]}))
    layers = image_layers(path)
    assert [kw["name"] for _, kw, _ in layers] == ["two.ome.tif [pre]", "two.ome.tif [post]"]
    assert [int(d.max()) for d, _, _ in layers] == [0, 1]
    assert all(kw["scale"] == pytest.approx((20.0, 10.0)) and kw["axis_labels"] == ("y", "x")
               for _, kw, _ in layers)
    bare = tmp_path / "bare.ome.tif"
    tifffile.imwrite(bare, data[0], ome=True, metadata={"axes": "YX"})
    [(_, kw, _)] = image_layers(bare)
    assert kw["scale"] == (1.0, 1.0) and "units" not in kw  # never guessed
    assert kw["metadata"]["smlmspine"]["units"] is None


def test_image_errors(files, tmp_path, monkeypatch):
    with pytest.raises(FormatError, match="not an OME-TIFF"):
        image_layers(files["plain_tif"])
    odd = tmp_path / "odd.ome.tif"
    tifffile.imwrite(odd, np.zeros((2, 5, 6), np.uint8), ome=True, photometric="minisblack",
                     metadata={"axes": "TYX"})
    with pytest.raises(FormatError, match="axes must be among"):
        image_layers(odd)
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "1e-7")  # 100 bytes < 60 float32
    with pytest.raises(ParameterError, match="memory budget"):
        image_layers(files["ome"])


def test_rendered_image_lines_up_with_the_points_in_napari(sim, tmp_path):
    """render -> write_image -> the plugin: napari's world->data mapping of every
    localization (index = (position - translate) / scale, rounded) lands in a voxel that
    counted it; the histogram is rebuilt exactly from the Points layer."""
    image = render(sim.localizations, voxel_nm=50.0, dims=3)
    path = write_image(image, tmp_path / "render.ome.tif")
    [(data, kw, kind)] = get_reader(str(path))(str(path))
    assert kind == "image" and kw["units"] == ("nm",) * 3
    assert kw["scale"] == tuple(image.voxel_nm) and kw["translate"] == tuple(image.origin_nm)
    [(points, _, _)] = points_layers(sim.localizations)
    idx = np.floor((points - np.array(kw["translate"])) / np.array(kw["scale"]) + 0.5)
    counts = np.zeros(data.shape)
    np.add.at(counts, tuple(idx.astype(int).T), 1)
    np.testing.assert_array_equal(counts, data)


def test_package_label_and_channel_images(tmp_path):
    labels = VoxelImage(np.arange(60, dtype=np.uint32).reshape(3, 4, 5), ("z", "y", "x"),
                        (30.0, 10.0, 10.0), (15.0, 5.0, 5.0), value_unit="label")
    write_image(labels, tmp_path / "labels.ome.tif")
    [(data, kw, kind)] = image_layers(tmp_path / "labels.ome.tif")
    assert kind == "labels" and data.dtype == np.uint32
    np.testing.assert_array_equal(data, labels.data)
    assert kw["translate"] == (15.0, 5.0, 5.0)
    two = VoxelImage(np.stack([np.zeros((4, 5), np.float32), np.ones((4, 5), np.float32)]),
                     ("c", "y", "x"), (20.0, 20.0), (0.0, 0.0), channel_names=("pre", "post"))
    layers = voxel_image_layers(two, name="two")
    assert [(kw["name"], kind, float(d.max())) for d, kw, kind in layers] == \
        [("two [pre]", "image", 0.0), ("two [post]", "image", 1.0)]
    assert layers[0][1]["colormap"] != layers[1][1]["colormap"]


def test_sample_data_is_the_simulation_with_its_true_meshes():
    layers = simulated_dendrite(n_spines=2, rng=3)
    sim = dendrite(geometry=Geometry(n_spines=2, shaft_length_nm=4000), rng=3)
    (points, kw, kind), (fragment, fkw, fkind), *spines = layers
    assert (kind, fkind) == ("points", "surface")
    want = np.column_stack([sim.localizations.column(c).to_numpy() for c in ("z", "y", "x")])
    np.testing.assert_array_equal(points, want)
    np.testing.assert_array_equal(fragment[0], sim.mesh.vertices[:, ::-1])
    assert [skw["name"] for _, skw, _ in spines] == [f"true spine {s}" for s in sorted(sim.spine_meshes)]
    for (verts, faces, _), skw, _ in spines:
        m = sim.spine_meshes[int(skw["name"].rsplit(" ", 1)[1])]
        np.testing.assert_array_equal(verts, m.vertices[:, ::-1])
        np.testing.assert_array_equal(faces, m.faces)
