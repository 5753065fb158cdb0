"""smlmspine.voxel.write_image / read_image: OME-TIFF and OME-Zarr metadata read back by
tifffile, zarr and ome-zarr-models; plain TIFF and NumPy; atomic writes."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from smlmspine.errors import FormatError, ParameterError
from smlmspine.schema import make_table
from smlmspine.voxel import VoxelImage, read_image, render, write_image


def _image(axes=("z", "y", "x"), shape=(3, 40, 50), voxel=(50.0, 7.0, 7.0),
           origin=(-125.0, 3.5, 1003.5), names=(), unit="localizations per voxel"):
    rng = np.random.default_rng(0)
    return VoxelImage(rng.random(shape).astype(np.float32), axes, voxel, origin, names, unit,
                      {"method": "test"})


def _pixels(xml):
    root = ET.fromstring(xml)
    pix = next(e for e in root.iter() if e.tag.endswith("Pixels"))
    planes = [e.attrib for e in root.iter() if e.tag.endswith("Plane")]
    return pix.attrib, planes


@pytest.mark.parametrize("axes,shape,voxel,origin", [
    (("y", "x"), (40, 50), (7.0, 7.0), (3.5, 1003.5)),
    (("z", "y", "x"), (3, 40, 50), (50.0, 7.0, 7.0), (-125.0, 3.5, 1003.5)),
    (("c", "z", "y", "x"), (2, 3, 40, 50), (50.0, 10.0, 12.5), (25.0, 5.0, 6.25)),
])
def test_ome_tiff_metadata_read_back_by_tifffile(tmp_path, axes, shape, voxel, origin):
    import tifffile

    names = ("channel=0", "channel=1") if "c" in axes else ()
    img = _image(axes, shape, voxel, origin, names)
    p = write_image(img, tmp_path / "a.ome.tif")
    with tifffile.TiffFile(p) as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert series.axes == "".join(a.upper() for a in axes)
        np.testing.assert_array_equal(series.asarray(), img.data)
        pix, planes = _pixels(tif.ome_metadata)
        page = tif.pages[0]
        xres = page.tags["XResolution"].value
        unit = page.tags["ResolutionUnit"].value
    v = dict(zip(("z", "y", "x")[3 - len(voxel):], voxel))
    o = dict(zip(("z", "y", "x")[3 - len(voxel):], origin))
    # OME-XML: physical sizes in µm (exact decimal of the nm value / 1000)
    for a in v:
        assert pix[f"PhysicalSize{a.upper()}Unit"] == "µm"
        assert float(pix[f"PhysicalSize{a.upper()}"]) * 1000 == pytest.approx(v[a], rel=1e-15)
    assert float(planes[0]["PositionX"]) * 1000 == pytest.approx(o["x"], rel=1e-15)
    if "z" in v:
        zs = sorted({float(p["PositionZ"]) * 1000 for p in planes})
        np.testing.assert_allclose(zs, o["z"] + v["z"] * np.arange(shape[-3]))
    # TIFF resolution tags (what Fiji reads): pixels per cm
    assert int(unit) == 3
    assert xres[0] / xres[1] == pytest.approx(1e7 / v["x"], rel=1e-6)
    back = read_image(p)
    assert back.axes == axes and back.voxel_nm == voxel and back.origin_nm == origin
    assert back.channel_names == names and back.value_unit == img.value_unit
    np.testing.assert_array_equal(back.data, img.data)


def test_ome_tiff_without_package_metadata_uses_ome_xml(tmp_path):
    import tifffile

    p = tmp_path / "foreign.ome.tif"
    tifffile.imwrite(p, np.zeros((2, 4, 5), np.float32), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.016, "PhysicalSizeY": 0.016,
                               "PhysicalSizeZ": 0.1, "PhysicalSizeZUnit": "µm",
                               "Plane": {"PositionX": [1.5] * 2, "PositionY": [2.0] * 2,
                                         "PositionZ": [0.25, 0.35]}})
    back = read_image(p)
    assert back.voxel_nm == (100.0, 16.0, 16.0)
    assert back.origin_nm == (250.0, 2000.0, 1500.0)


def test_large_ome_tiff_is_tiled_with_a_subifd_pyramid(tmp_path):
    import tifffile

    img = VoxelImage(np.ones((2100, 2200), np.float32), ("y", "x"), (10.0, 10.0), (5.0, 5.0),
                     value_unit="localizations per voxel")
    p = write_image(img, tmp_path / "big.ome.tif")
    with tifffile.TiffFile(p) as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].tilewidth == 256
        levels = tif.series[0].levels
        assert [lv.shape for lv in levels] == [(2100, 2200), (1050, 1100), (525, 550),
                                               (263, 275)]
        np.testing.assert_allclose(levels[2].asarray(), 1.0)
    lvl = read_image(p, level=1)
    assert lvl.voxel_nm == (20.0, 20.0) and lvl.origin_nm == (10.0, 10.0)


def test_label_image_is_uint32(tmp_path):
    import tifffile

    lab = VoxelImage(np.array([[0, 1], [2, 70000]], np.int64), ("y", "x"), (5.0, 5.0),
                     (2.5, 2.5), value_unit="label")
    p = write_image(lab, tmp_path / "lab.ome.tif")
    with tifffile.TiffFile(p) as tif:
        assert tif.series[0].dtype == np.uint32
    back = read_image(p)
    assert back.value_unit == "label" and back.data.dtype == np.uint32
    assert back.data.tolist() == [[0, 1], [2, 70000]]
    with pytest.raises(ParameterError, match="uint32"):
        write_image(VoxelImage(np.array([[-1]]), ("y", "x"), (1.0, 1.0), (0.5, 0.5),
                               value_unit="label"), tmp_path / "neg.ome.tif")
    assert not (tmp_path / "neg.ome.tif").exists()


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_ome_zarr_metadata_validated_and_read_by_zarr(tmp_path, version):
    import ome_zarr_models.v04 as m04
    import ome_zarr_models.v05 as m05
    import zarr

    img = _image(("c", "z", "y", "x"), (2, 3, 600, 520), (50.0, 7.0, 7.0),
                 (-125.0, 3.5, 1003.5), ("a", "b"))
    p = write_image(img, tmp_path / "a.ome.zarr", version=version)
    group = zarr.open_group(str(p), mode="r")
    model = (m05 if version == "0.5" else m04).Image.from_zarr(group)   # raises if invalid
    assert model is not None
    assert group.metadata.zarr_format == (3 if version == "0.5" else 2)
    attrs = group.attrs.asdict()
    ome = attrs["ome"] if version == "0.5" else attrs
    if version == "0.5":
        assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("unit") for a in ms["axes"]] == [None, "nanometer", "nanometer",
                                                     "nanometer"]
    ds = ms["datasets"]
    assert len(ds) == 2   # 600 -> 300: the pyramid stops at <= 512
    scale, trans = ds[0]["coordinateTransformations"]
    assert scale["type"] == "scale" and trans["type"] == "translation"
    assert scale["scale"] == [1.0, 50.0, 7.0, 7.0]
    assert trans["translation"] == [0.0, -125.0, 3.5, 1003.5]
    s1, t1 = ds[1]["coordinateTransformations"]
    assert s1["scale"] == [1.0, 50.0, 14.0, 14.0] and t1["translation"] == [0.0, -125.0, 7.0,
                                                                            1007.0]
    assert attrs["smlmspine"]["voxel_nm"] == [50.0, 7.0, 7.0]
    np.testing.assert_array_equal(group["0"][...], img.data)
    back = read_image(p)
    assert back.voxel_nm == img.voxel_nm and back.origin_nm == img.origin_nm
    assert back.channel_names == ("a", "b")
    lazy = read_image(p, lazy=True)
    assert isinstance(lazy.data, zarr.Array) and lazy.data.shape == img.data.shape


def test_foreign_ome_zarr_read_from_transforms(tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "f.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("0", data=np.ones((4, 5), np.uint16), chunks=(4, 5))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [0.02, 0.01]},
            {"type": "translation", "translation": [1.0, 2.0]}]}]}]}
    back = read_image(tmp_path / "f.ome.zarr")
    assert back.voxel_nm == pytest.approx((20.0, 10.0))
    assert back.origin_nm == pytest.approx((1000.0, 2000.0))


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_ome_zarr_labels(tmp_path, version):
    import ome_zarr_models.v04 as m04
    import ome_zarr_models.v05 as m05
    import zarr

    m = m05 if version == "0.5" else m04
    grid = dict(axes=("z", "y", "x"), voxel_nm=(50.0, 10.0, 10.0), origin_nm=(25.0, 5.0, 5.0))
    lab = VoxelImage((np.arange(4 * 30 * 20) % 5).reshape(4, 30, 20).astype(np.int32),
                     value_unit="label", **grid)
    # a label image alone: an image-label multiscale at the root
    p = write_image(lab, tmp_path / "lab.ome.zarr", version=version)
    g = zarr.open_group(str(p), mode="r")
    m.ImageLabel.from_zarr(g)
    assert g["0"].dtype == np.uint32
    assert read_image(p).value_unit == "label"
    # an image with its labels in the NGFF labels group
    img = VoxelImage(np.ones((4, 30, 20), np.float32), value_unit="localizations per voxel",
                     **grid)
    p = write_image(img, tmp_path / "img.ome.zarr", labels={"spines": lab}, version=version)
    g = zarr.open_group(str(p), mode="r")
    m.Image.from_zarr(g)
    labels_attrs = g["labels"].attrs.asdict()
    assert (labels_attrs["ome"] if version == "0.5" else labels_attrs)["labels"] == ["spines"]
    back = read_image(p, label="spines")
    np.testing.assert_array_equal(back.data, lab.data)
    assert back.voxel_nm == grid["voxel_nm"] and back.origin_nm == grid["origin_nm"]
    other = VoxelImage(lab.data, axes=grid["axes"], voxel_nm=(50.0, 10.0, 11.0),
                       origin_nm=grid["origin_nm"], value_unit="label")
    with pytest.raises(ParameterError, match="not on the image's grid"):
        write_image(img, tmp_path / "bad.ome.zarr", labels={"x": other})


@pytest.mark.parametrize("ext", [".ome.tif", ".ome.zarr"])
@pytest.mark.parametrize("dims", [2, 3])
def test_render_write_read_gives_each_localization_its_voxel(tmp_path, ext, dims):
    rng = np.random.default_rng(11)
    n = 1500
    t = make_table({"x": rng.uniform(-800, 2200, n), "y": rng.uniform(100, 1900, n),
                    "z": rng.uniform(-400, 400, n)})
    img = render(t, voxel_nm=(40.0, 10.0, 10.0)[3 - dims:], dims=dims)
    back = read_image(write_image(img, tmp_path / f"r{ext}"))
    assert back.voxel_nm == img.voxel_nm and back.origin_nm == img.origin_nm
    pts = np.column_stack([t.column(a).to_numpy() for a in ("z", "y", "x")[3 - dims:]])
    idx = back.index_of(pts)
    assert ((idx >= 0) & (idx < np.array(back.spatial_shape))).all()
    # every localization is counted in the voxel its coordinates fall in: rebuilding the
    # image from the looked-up indices gives the read-back image exactly
    rebuilt = np.zeros(back.spatial_shape)
    np.add.at(rebuilt, tuple(idx.T), 1)
    np.testing.assert_array_equal(back.data, rebuilt)
    # and the voxel's edges bracket the coordinate (pixel-centre convention)
    lo = np.array(back.origin_nm) + (idx - 0.5) * np.array(back.voxel_nm)
    assert ((pts >= lo - 1e-9) & (pts < lo + np.array(back.voxel_nm) + 1e-9)).all()


def test_plain_tiff_and_npy_need_a_voxel_size(tmp_path):
    import tifffile

    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    tifffile.imwrite(tmp_path / "plain.tif", a)
    np.save(tmp_path / "a.npy", a.astype(np.float32))
    for name in ("plain.tif", "a.npy"):
        with pytest.raises(ParameterError, match="voxel_nm"):
            read_image(tmp_path / name)
        img = read_image(tmp_path / name, voxel_nm=12.5)
        assert img.axes == ("y", "x") and img.voxel_nm == (12.5, 12.5)
        assert img.origin_nm == (6.25, 6.25)
        np.testing.assert_array_equal(img.data, a)
    img = read_image(tmp_path / "a.npy", voxel_nm=(2.0, 3.0), origin_nm=(10.0, 20.0))
    assert img.origin_nm == (10.0, 20.0)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="without objects"):
        read_image(tmp_path / "obj.npy", voxel_nm=1.0)


def test_failed_writes_leave_nothing_and_keep_the_old_output(tmp_path, monkeypatch):
    img = _image()
    good = write_image(img, tmp_path / "keep.ome.zarr")
    tif = write_image(img, tmp_path / "keep.ome.tif")
    before = sorted(os.listdir(tmp_path))
    tif_bytes = tif.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk gone")

    big = VoxelImage(np.ones((600, 600), np.float32), ("y", "x"), (1.0, 1.0), (0.5, 0.5))
    import smlmspine.voxel._omezarr as oz
    monkeypatch.setattr(oz, "downsample_yx", boom)
    with pytest.raises(RuntimeError):
        write_image(big, good)
    with pytest.raises(RuntimeError):
        write_image(big, tmp_path / "new.ome.zarr")
    import smlmspine.voxel._ometiff as ot
    monkeypatch.setattr(ot, "downsample_yx", boom)
    big_tif = VoxelImage(np.ones((2100, 2100), np.float32), ("y", "x"), (1.0, 1.0), (0.5, 0.5))
    with pytest.raises(RuntimeError):
        write_image(big_tif, tif)
    assert sorted(os.listdir(tmp_path)) == before          # no temporary siblings left
    assert tif.read_bytes() == tif_bytes
    np.testing.assert_array_equal(read_image(good).data, img.data)


def test_bad_paths_and_images(tmp_path):
    img = _image()
    with pytest.raises(FormatError, match="extension"):
        write_image(img, tmp_path / "a.png")
    with pytest.raises(FormatError, match="written as"):
        write_image(img, tmp_path / "a.npy")
    (tmp_path / "folder.ome.zarr").mkdir()
    (tmp_path / "folder.ome.zarr" / "precious.txt").write_text("x")
    with pytest.raises(FormatError, match="not a Zarr store"):
        write_image(img, tmp_path / "folder.ome.zarr")
    with pytest.raises(FormatError, match="does not exist"):
        write_image(img, tmp_path / "no" / "a.ome.tif")
    with pytest.raises(ParameterError, match="axes"):
        write_image(VoxelImage(np.ones((2, 2)), ("x", "y"), (1.0, 1.0), (0.0, 0.0)),
                    tmp_path / "b.ome.tif")
    with pytest.raises(ParameterError, match="labels= is for OME-Zarr"):
        write_image(img, tmp_path / "c.ome.tif", labels={"a": img})
    with pytest.raises(FormatError, match="no such file"):
        read_image(tmp_path / "missing.ome.tif")
    (tmp_path / "junk.ome.tif").write_bytes(b"not a tiff")
    with pytest.raises(FormatError, match="not a readable TIFF"):
        read_image(tmp_path / "junk.ome.tif")
    with pytest.raises(FormatError, match="multiscales"):
        import zarr

        zarr.open_group(str(tmp_path / "empty.ome.zarr"), mode="w")
        read_image(tmp_path / "empty.ome.zarr")
