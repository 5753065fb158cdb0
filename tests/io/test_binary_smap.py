"""SMAP _sml.mat: MATLAB v7.3 (HDF5 with a 512-byte header) and older MAT (scipy.io)."""

import h5py
import numpy as np
import pytest
import scipy.io

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read
from smlmspine.schema import metadata, unit_of


def loc_fields(n=30, three_d=True, seed=2):
    rng = np.random.default_rng(seed)
    loc = {"xnm": rng.uniform(0, 20000, n), "ynm": rng.uniform(0, 20000, n),
           "frame": np.sort(rng.integers(1, 2000, n)).astype(float),
           "phot": rng.uniform(500, 8000, n).astype("f4"), "bg": rng.uniform(5, 60, n).astype("f4"),
           "locprecnm": rng.uniform(3, 20, n).astype("f4"), "channel": np.zeros(n),
           "PSFxnm": rng.uniform(90, 160, n).astype("f4"), "xpix": rng.uniform(0, 200, n),
           "filenumber": np.ones(n)}
    if three_d:
        loc["znm"] = rng.uniform(-600, 600, n)
        loc["locprecznm"] = rng.uniform(10, 50, n).astype("f4")
    return loc


def write_v5(path, loc, cam_um=(0.117, 0.117)):
    saveloc = {"loc": {k: v.reshape(-1, 1) for k, v in loc.items()}}
    if cam_um is not None:
        saveloc["file"] = {"name": "run.tif", "info": {"cam_pixelsize_um": np.array(cam_um),
                                                       "Width": 256.0}}
    scipy.io.savemat(path, {"saveloc": saveloc})


def _mat73(path):
    f = h5py.File(path, "w", userblock_size=512)
    return f


def _finish_mat73(path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def write_v73(path, loc, cam_um=(0.117, 0.117), struct_array=False):
    with _mat73(path) as f:
        s = f.create_group("saveloc")
        s.attrs["MATLAB_class"] = np.bytes_("struct")
        g = s.create_group("loc")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        for k, v in loc.items():
            ds = g.create_dataset(k, data=np.asarray(v).reshape(1, -1))  # N x 1 column vector
            ds.attrs["MATLAB_class"] = np.bytes_("double" if v.dtype == np.float64 else "single")
        e = g.create_dataset("empty_field", data=np.array([0, 0], dtype="u8"))
        e.attrs["MATLAB_empty"] = np.uint8(1)
        if cam_um is not None:
            if struct_array:
                refs = f.create_group("#refs#")
                info = refs.create_group("a")
                info.create_dataset("cam_pixelsize_um", data=np.asarray(cam_um).reshape(-1, 1))
                fs = s.create_group("file")
                fs.create_dataset("info", data=np.array([[info.ref]], dtype=h5py.ref_dtype))
            else:
                fs = s.create_group("file")
                info = fs.create_group("info")
                info.create_dataset("cam_pixelsize_um", data=np.asarray(cam_um).reshape(-1, 1))
    _finish_mat73(path)


@pytest.mark.parametrize("version", ["v5", "v7.3", "v7.3-refs"])
@pytest.mark.parametrize("three_d", [False, True], ids=["2D", "3D"])
def test_values(tmp_path, version, three_d):
    loc = loc_fields(three_d=three_d)
    p = tmp_path / "cell1_sml.mat"
    if version == "v5":
        write_v5(p, loc)
    else:
        write_v73(p, loc, struct_array=version == "v7.3-refs")
    assert detect_format(p) == "smap"
    t = read(p)
    np.testing.assert_array_equal(t.column("x").to_numpy(), loc["xnm"])
    np.testing.assert_array_equal(t.column("y").to_numpy(), loc["ynm"])
    np.testing.assert_array_equal(t.column("frame").to_numpy(), loc["frame"].astype(int))  # 1-based kept
    np.testing.assert_array_equal(t.column("photons").to_numpy(), loc["phot"])
    np.testing.assert_array_equal(t.column("background").to_numpy(), loc["bg"])
    np.testing.assert_array_equal(t.column("precision_xy").to_numpy(), loc["locprecnm"])
    assert t.column("channel").to_pylist() == [0] * 30
    np.testing.assert_array_equal(t.column("psfxnm").to_numpy(), loc["PSFxnm"])
    assert unit_of(t, "psfxnm") == "nm" and unit_of(t, "xpix") == "px"
    assert "empty_field" not in t.column_names
    if three_d:
        np.testing.assert_array_equal(t.column("z").to_numpy(), loc["znm"])
        np.testing.assert_array_equal(t.column("precision_z").to_numpy(), loc["locprecznm"])
    else:
        assert "z" not in t.column_names
    meta = metadata(t)
    assert meta["format"] == "smap" and meta["pixel_size_nm"] is None
    assert meta["camera_pixel_size_nm"] == pytest.approx(117.0)


def test_without_file_info(tmp_path):
    p = tmp_path / "a_sml.mat"
    write_v5(p, loc_fields(5), cam_um=None)
    assert "camera_pixel_size_nm" not in metadata(read(p))


def test_missing_xnm(tmp_path):
    loc = loc_fields(5)
    del loc["xnm"]
    for writer in (write_v5, write_v73):
        p = tmp_path / f"{writer.__name__}_sml.mat"
        writer(p, loc)
        with pytest.raises(FormatError, match=r"_sml\.mat.*no 'xnm' field"):
            read(p)


def test_mat_without_saveloc_is_not_smap(tmp_path):
    p = tmp_path / "other.mat"
    scipy.io.savemat(p, {"something": np.ones(3)})
    with pytest.raises(FormatError, match="no struct variable 'saveloc'"):
        read(p, format="smap")
    try:
        fmt = detect_format(p)
    except FormatError:
        fmt = None
    assert fmt != "smap"
