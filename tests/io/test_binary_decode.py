"""DECODE HDF5 emitter files: layout of decode.utils.emitter_io.save_h5, px and nm variants."""

import h5py
import numpy as np
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read
from smlmspine.schema import metadata, unit_of


def write_decode(path, n=40, xy_unit="px", px_size=(100.0, 110.0), seed=1, empty=("bg_cr",),
                 meta=True):
    rng = np.random.default_rng(seed)
    data = {
        "xyz": np.column_stack([rng.uniform(0, 64, n), rng.uniform(0, 64, n),
                                rng.uniform(-500, 500, n)]).astype("f4"),
        "xyz_sig": rng.uniform(0.05, 0.3, (n, 3)).astype("f4"),
        "xyz_cr": rng.uniform(0.001, 0.01, (n, 3)).astype("f4"),
        "phot": rng.uniform(1000, 5000, n).astype("f4"),
        "phot_sig": rng.uniform(10, 50, n).astype("f4"),
        "frame_ix": np.sort(rng.integers(0, 500, n)).astype("i8"),
        "id": np.arange(n, dtype="i8"),
        "prob": rng.uniform(0.5, 1, n).astype("f4"),
        "bg": rng.uniform(10, 100, n).astype("f4"),
    }
    with h5py.File(path, "w") as f:
        if meta:
            m = f.create_group("meta")
            if xy_unit is not None:
                m.attrs["xy_unit"] = xy_unit
            if px_size is not None:
                m.attrs["px_size"] = np.asarray(px_size, dtype="f4")
        f.create_group("decode").attrs["version"] = "v0.10.0"
        g = f.create_group("data")
        for k, v in data.items():
            g.create_dataset(k, data=v)
        for k in empty:
            g.create_dataset(k, data=h5py.Empty("f"))
    return data


def test_px_file_converted_to_nm(tmp_path):
    p = tmp_path / "emitters.h5"
    d = write_decode(p)
    assert detect_format(p) == "decode"
    t = read(p)
    sx, sy = np.float32(100.0), np.float32(110.0)
    np.testing.assert_allclose(t.column("x").to_numpy(), d["xyz"][:, 0].astype(float) * sx, rtol=1e-12)
    np.testing.assert_allclose(t.column("y").to_numpy(), d["xyz"][:, 1].astype(float) * sy, rtol=1e-12)
    # DECODE scales only x/y: z is always nm
    np.testing.assert_array_equal(t.column("z").to_numpy(), d["xyz"][:, 2])
    np.testing.assert_allclose(t.column("x_sig").to_numpy(), d["xyz_sig"][:, 0] * 100.0, rtol=1e-6)
    np.testing.assert_allclose(t.column("precision_xy").to_numpy(),
                               (d["xyz_sig"][:, 0] * 100.0 + d["xyz_sig"][:, 1] * 110.0) / 2, rtol=1e-6)
    np.testing.assert_array_equal(t.column("precision_z").to_numpy(), d["xyz_sig"][:, 2])
    # CRLB is a variance: px^2
    np.testing.assert_allclose(t.column("y_cr").to_numpy(), d["xyz_cr"][:, 1] * 110.0 ** 2, rtol=1e-6)
    assert unit_of(t, "y_cr") == "nm^2" and unit_of(t, "phot_sig") == "photon"
    np.testing.assert_array_equal(t.column("frame").to_numpy(), d["frame_ix"])
    np.testing.assert_array_equal(t.column("photons").to_numpy(), d["phot"])
    np.testing.assert_array_equal(t.column("background").to_numpy(), d["bg"])
    assert "bg_cr" not in t.column_names  # empty (all-NaN) dataset
    assert t.column("id").to_pylist() == list(range(40))
    assert metadata(t)["pixel_size_nm"] == [100.0, 110.0]


def test_nm_file_kept(tmp_path):
    p = tmp_path / "e.h5"
    d = write_decode(p, xy_unit="nm", px_size=(100.0, 100.0))
    t = read(p)
    np.testing.assert_array_equal(t.column("x").to_numpy(), d["xyz"][:, 0])
    assert metadata(t)["pixel_size_nm"] is None
    assert metadata(t)["camera_pixel_size_nm"] == [100.0, 100.0]


def test_px_without_px_size_needs_argument(tmp_path):
    p = tmp_path / "e.h5"
    d = write_decode(p, px_size=None)
    with pytest.raises(FormatError, match=r"e\.h5.*px_size is missing.*pixel_size_nm"):
        read(p)
    t = read(p, pixel_size_nm=90.0)
    np.testing.assert_allclose(t.column("x").to_numpy(), d["xyz"][:, 0].astype(float) * 90.0, rtol=1e-12)


def test_missing_unit_refused(tmp_path):
    p = tmp_path / "e.h5"
    write_decode(p, xy_unit=None)
    with pytest.raises(FormatError, match="xy_unit is missing"):
        read(p)
    write_decode(p, xy_unit="furlong")
    with pytest.raises(FormatError, match="expected 'px' or 'nm'"):
        read(p)


def test_missing_xyz_and_wrong_lengths(tmp_path):
    p = tmp_path / "e.h5"
    with h5py.File(p, "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        f.create_group("data").create_dataset("phot", data=np.ones(3))
    with pytest.raises(FormatError, match=r"e\.h5.*no coordinate dataset 'data/xyz'"):
        read(p, format="decode")
    with h5py.File(p, "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        g = f.create_group("data")
        g.create_dataset("xyz", data=np.ones((3, 3)))
        g.create_dataset("phot", data=np.ones(4))
    with pytest.raises(FormatError, match="'data/phot' has shape"):
        read(p)
