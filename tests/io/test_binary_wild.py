"""Binary files from the wild and hostile binary input (issue #15).

Every fixture is written here, from the format descriptions in docs/formats/*.md:
``.smlm`` manifests as locan and ShareLoc write them, the published Abberior MINFLUX
MATLAB struct (v5 and v7.3), forged ``.npy`` headers, zip bombs, YAML alias bombs.
"""

import json
import struct
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

from smlmspine.errors import FormatError, ParameterError, QualityWarning
from smlmspine.io import detect_format, read, smlmzip, write
from smlmspine.schema import make_table, metadata, unit_of

# --------------------------------------------------------------------------- .smlm (foreign)


def foreign_smlm(path, columns, *, fmt_extra=None, file_extra=None, manifest_extra=None,
                 units=None, shapes=None, as_strings=True, dtype_names=None,
                 compression=zipfile.ZIP_DEFLATED):
    """columns: list of (header, numpy dtype, values). Numbers in the manifest are strings
    when ``as_strings`` (protobuf JSON, as locan writes it)."""
    n = len(columns[0][2])
    rec = np.empty(n, dtype=[(f"c{i}", "<" + np.dtype(dt).str[1:])
                             for i, (_, dt, _) in enumerate(columns)])
    for i, (_, _, v) in enumerate(columns):
        rec[f"c{i}"] = v
    num = str if as_strings else int
    fmt = {"name": "smlm-table(binary)-0", "type": "table", "mode": "binary",
           "columns": num(len(columns)), "headers": [h for h, _, _ in columns],
           "dtype": dtype_names or [np.dtype(dt).name for _, dt, _ in columns],
           "shape": shapes if shapes is not None else [num(1)] * len(columns),
           "units": units if units is not None else [""] * len(columns)}
    fmt.update(fmt_extra or {})
    info = {"name": "table-0.bin", "type": "table", "format": "smlm-table(binary)-0",
            "channel": "default", "rows": num(n),
            "offset": {h: num(0) for h, _, _ in columns}}
    info.update(file_extra or {})
    manifest = {"format_version": "0.2", "formats": {"smlm-table(binary)-0": fmt},
                "files": [info], **(manifest_extra or {})}
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("table-0.bin", rec.tobytes())
    return path


def locan_columns(n=30, seed=1):
    rng = np.random.default_rng(seed)
    return [("position_x", "float32", rng.uniform(0, 5e3, n)),
            ("position_y", "float32", rng.uniform(0, 5e3, n)),
            ("position_z", "float32", rng.uniform(-400, 400, n)),
            ("frame", "uint32", np.arange(n) * 3),
            ("intensity", "float32", rng.uniform(200, 5000, n)),
            ("local_background", "float32", rng.uniform(5, 50, n)),
            ("uncertainty_x", "float32", rng.uniform(3, 15, n)),
            ("uncertainty_y", "float32", rng.uniform(3, 15, n)),
            ("chi_square", "float64", rng.uniform(0, 3, n))]


LOCAN_META = {"locdata_meta": {"identifier": "1", "element_count": "30",
                               "localization_properties": [
                                   {"name": "position_x", "unit": "nm", "type": "float"},
                                   {"name": "position_y", "unit": "nm", "type": "float"},
                                   {"name": "position_z", "unit": "nm", "type": "float"}]}}


def test_locan_manifest_with_string_numbers(tmp_path):
    cols = locan_columns()
    # locan writes "Uint32" (its upper->lower replacement turns UINT32 into Uint32)
    dtype_names = [("Uint32" if dt == "uint32" else dt) for _, dt, _ in cols]
    p = foreign_smlm(tmp_path / "locan.smlm", cols, dtype_names=dtype_names,
                     manifest_extra=LOCAN_META)
    assert detect_format(p) == "smlm"
    t = read(p)
    v = {h: np.asarray(x, dtype=dt) for h, dt, x in cols}
    assert t.num_rows == 30
    assert t.column_names == ["x", "y", "z", "frame", "photons", "background", "uncertainty_x",
                              "uncertainty_y", "chi_square"]
    np.testing.assert_array_equal(t.column("x").to_numpy(), v["position_x"].astype(np.float64))
    np.testing.assert_array_equal(t.column("z").to_numpy(), v["position_z"].astype(np.float64))
    np.testing.assert_array_equal(t.column("frame").to_numpy(), v["frame"].astype(np.int64))
    np.testing.assert_array_equal(t.column("photons").to_numpy(), v["intensity"])
    np.testing.assert_array_equal(t.column("background").to_numpy(), v["local_background"])
    np.testing.assert_array_equal(t.column("uncertainty_x").to_numpy(), v["uncertainty_x"])
    np.testing.assert_array_equal(t.column("chi_square").to_numpy(), v["chi_square"])
    assert unit_of(t, "x") == "nm" and unit_of(t, "uncertainty_y") == "nm"
    assert unit_of(t, "chi_square") is None
    f = t.schema.field("background")
    assert f.metadata[b"original_name"] == b"local_background"


def test_units_from_locdata_meta_and_header_brackets(tmp_path):
    cols = locan_columns(5)[:3]
    meta = {"locdata_meta": {"localization_properties": [
        {"name": n, "unit": "um"} for n in ("position_x", "position_y", "position_z")]}}
    p = foreign_smlm(tmp_path / "um.smlm", cols, manifest_extra=meta)
    t = read(p)
    np.testing.assert_allclose(t.column("x").to_numpy(),
                               np.asarray(cols[0][2], dtype=np.float32).astype(np.float64) * 1e3,
                               rtol=1e-15)
    # a unit in brackets in the header (ShareLoc tables exported from CSV)
    cols2 = [("x [um]", "float64", [1.5, 2.0]), ("y [um]", "float64", [0.25, 3.0]),
             ("frame", "uint32", [0, 1])]
    t2 = read(foreign_smlm(tmp_path / "br.smlm", cols2, as_strings=False))
    assert t2.column("x").to_pylist() == [1500.0, 2000.0]
    assert t2.column("y").to_pylist() == [250.0, 3000.0]


def test_contradicting_units_are_refused(tmp_path):
    cols = locan_columns(5)[:3]
    p = foreign_smlm(tmp_path / "c.smlm", cols, units=["nm", "nm", "nm"],
                     manifest_extra={"locdata_meta": {"localization_properties": [
                         {"name": "position_x", "unit": "um"}]}})
    with pytest.raises(FormatError, match=r"c\.smlm.*different units for column "
                                          r"'position_x': 'nm' \(units\), 'um' \(locdata_meta\)"):
        read(p)


def test_pixel_units_are_refused_not_guessed(tmp_path):
    cols = [("x", "float32", [1.0, 2.0]), ("y", "float32", [1.0, 2.0])]
    p = foreign_smlm(tmp_path / "px.smlm", cols, units=["px", "px"])
    with pytest.raises(FormatError, match=r"px\.smlm.*column 'x'.*unit 'px', not a length unit"):
        read(p)


def test_shareloc_rapidstorm_vocabulary(tmp_path):
    n = 4
    cols = [("x_position", "float32", [10.0, 20.0, 30.0, 40.0]),
            ("y_position", "float32", [1.0, 2.0, 3.0, 4.0]),
            ("frame", "uint32", np.arange(n)),
            ("Amplitude_0_0", "float32", [100.0, 200.0, 300.0, 400.0]),
            ("LocalBackground_0_0", "float32", [1.0, 1.5, 2.0, 2.5])]
    t = read(foreign_smlm(tmp_path / "r.smlm", cols, units=["nm", "nm", "frame", "1", "1"],
                          as_strings=False))
    assert t.column_names == ["x", "y", "frame", "photons", "background"]
    assert t.column("photons").to_pylist() == [100.0, 200.0, 300.0, 400.0]


def test_shapes_as_strings_and_vector_columns(tmp_path):
    cols = [("x", "float32", [1.0]), ("y", "float32", [2.0])]
    t = read(foreign_smlm(tmp_path / "ok.smlm", cols, shapes=[["1"], "1"]))
    assert t.column("y").to_pylist() == [2.0]
    p = foreign_smlm(tmp_path / "vec.smlm", cols, shapes=["1", ["2"]])
    with pytest.raises(FormatError, match=r"column 'y' has shape \['2'\] \(several values per "
                                          r"row\); only scalar columns"):
        read(p)


@pytest.mark.parametrize("rows", ["ten", "-1", "2.5", None, True])
def test_bad_row_counts(tmp_path, rows):
    cols = [("x", "float32", [1.0, 2.0]), ("y", "float32", [2.0, 3.0])]
    p = foreign_smlm(tmp_path / "r.smlm", cols, file_extra={"rows": rows})
    with pytest.raises(FormatError, match=r"r\.smlm.*'rows' is .*expected a non-negative whole"):
        read(p)


def test_two_headers_for_one_column(tmp_path):
    cols = [("x", "float32", [1.0]), ("position_x", "float32", [1.0]), ("y", "float32", [2.0])]
    with pytest.raises(FormatError, match="headers 'x' and 'position_x' both mean column 'x'"):
        read(foreign_smlm(tmp_path / "d.smlm", cols))


def test_string_offsets_keep_dtype_and_apply(tmp_path):
    cols = [("x", "float32", [1.0, 2.0]), ("y", "float32", [2.0, 3.0])]
    t = read(foreign_smlm(tmp_path / "o.smlm", cols, file_extra={"offset": {"x": "100",
                                                                            "y": "0"}}))
    assert t.column("x").to_pylist() == [101.0, 102.0]
    assert t.column("y").to_pylist() == [2.0, 3.0]


# --------------------------------------------------------------------------- zip bombs

def _patch_sizes(path, member, new_size):
    """Forge the uncompressed size of ``member`` in the local and central headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for sig, size_off, name_off in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            if data[i + name_off:i + name_off + len(name)] == name:
                struct.pack_into("<I", data, i + size_off, new_size)
            start = i + 4
    path.write_bytes(bytes(data))


def test_zip_bomb_over_budget_is_refused_before_decompressing(tmp_path, monkeypatch):
    n = 2_000_000  # 16 MB of zeros -> ~16 kB compressed
    cols = [("x", "float32", np.zeros(n, np.float32)), ("y", "float32", np.zeros(n, np.float32))]
    p = foreign_smlm(tmp_path / "bomb.smlm", cols)
    assert p.stat().st_size < 200_000
    monkeypatch.setattr(smlmzip, "MAX_TABLE_BYTES", 1 << 20)
    with pytest.raises(FormatError, match=r"bomb\.smlm.*would decompress to 16,000,000 bytes, "
                                          r"more than the 1,048,576-byte budget"):
        read(p)


def test_forged_entry_size_is_refused(tmp_path):
    cols = [("x", "float32", np.arange(1000.0)), ("y", "float32", np.arange(1000.0))]
    p = foreign_smlm(tmp_path / "f.smlm", cols)
    # the manifest still says 1000 rows: the forged size disagrees with it
    _patch_sizes(p, "table-0.bin", 4_000_000_000)
    with pytest.raises(FormatError, match=r"f\.smlm.*declares 4,000,000,000 bytes, expected rows "
                                          r"x record size = 8,000"):
        read(p)
    # forged size *and* rows: DEFLATE cannot produce that ratio
    p2 = foreign_smlm(tmp_path / "g.smlm", cols, file_extra={"rows": "500000000"})
    _patch_sizes(p2, "table-0.bin", 4_000_000_000)
    with pytest.raises(FormatError, match=r"g\.smlm.*beyond what DEFLATE can produce"):
        read(p2)


def test_stored_entry_smaller_than_declared(tmp_path):
    cols = [("x", "float32", np.arange(10.0)), ("y", "float32", np.arange(10.0))]
    p = foreign_smlm(tmp_path / "s.smlm", cols, compression=zipfile.ZIP_STORED,
                     file_extra={"rows": "20"})
    _patch_sizes(p, "table-0.bin", 160)
    with pytest.raises(FormatError, match=r"s\.smlm.*stored entry 'table-0\.bin' declares 160 "
                                          r"bytes but holds 80"):
        read(p)


# --------------------------------------------------------------------------- .npy headers

def _forged_npy(path, shape, payload=b"\0" * 64):
    dtype = np.dtype([("tid", "<i4"), ("tim", "<f8"), ("vld", "?"), ("loc", "<f8", (3,)),
                      ("fnl", "?"), ("itr", "<i4")])
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": shape})
        fh.write(payload)
    return path


def test_npy_header_claiming_huge_shape(tmp_path):
    p = _forged_npy(tmp_path / "huge.npy", (10 ** 11,))
    assert detect_format(p) == "minflux"
    with pytest.raises(FormatError, match=r"huge\.npy.*declares shape \(100000000000,\) of "
                                          r"42-byte records = 4,200,000,000,000 bytes, but the "
                                          r"file holds only 64 bytes"):
        read(p)
    z = tmp_path / "huge.npy.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(p, "huge.npy")
    with pytest.raises(FormatError, match=r"huge\.npy\.zip.*member 'huge\.npy' holds only 64"):
        read(z)


def test_npy_truncated_by_one_record(tmp_path):
    dtype = np.dtype([("tid", "<i4"), ("tim", "<f8"), ("vld", "?"), ("loc", "<f8", (3,)),
                      ("fnl", "?"), ("itr", "<i4")])
    p = _forged_npy(tmp_path / "short.npy", (3,), payload=b"\0" * (2 * dtype.itemsize))
    with pytest.raises(FormatError, match=r"short\.npy.*126 bytes, but the file holds only 84"):
        read(p)


# --------------------------------------------------------------------------- Picasso YAML

def _picasso(path, yaml_text=None):
    locs = np.rec.fromarrays([np.arange(3, dtype="u4"), np.array([1.0, 2.0, 3.0], "f4"),
                              np.array([4.0, 5.0, 6.0], "f4")], names="frame,x,y")
    with h5py.File(path, "w") as f:
        f.create_dataset("locs", data=locs)
    if yaml_text is not None:
        path.with_suffix(".yaml").write_text(yaml_text)
    return path


def billion_laughs(levels=9):
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghijk"[:levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text + "Pixelsize: 100\n"


def test_yaml_billion_laughs_is_refused(tmp_path):
    text = billion_laughs()
    assert len(text) < 500  # expands to 9**9 = 387 million strings
    p = _picasso(tmp_path / "lol.hdf5", text)
    with pytest.raises(FormatError, match=r"lol\.yaml: Picasso YAML sidecar refused: its aliases "
                                          r"expand to more than 100,000 nodes"):
        read(p)


def test_yaml_recursive_alias_is_refused(tmp_path):
    p = _picasso(tmp_path / "rec.hdf5", "a: &a [1, *a]\nPixelsize: 100\n")
    with pytest.raises(FormatError, match=r"rec\.yaml.*recursive alias"):
        read(p)


def test_yaml_small_aliases_still_read(tmp_path):
    text = "cam: &cam {Gain: 1, Sensitivity: 0.5}\nsame: *cam\nPixelsize: 130\n"
    t = read(_picasso(tmp_path / "ok.hdf5", text))
    assert t.column("x").to_pylist() == [130.0, 260.0, 390.0]
    assert metadata(t)["picasso_info"][0]["same"] == {"Gain": 1, "Sensitivity": 0.5}


def test_picasso_writer_leaves_no_sidecar_when_the_target_is_a_directory(tmp_path):
    (tmp_path / "out.hdf5").mkdir()
    t = make_table({"x": [1.0], "y": [2.0]}, pixel_size_nm=100.0)
    with pytest.raises(FormatError, match=r"out\.hdf5.*is a directory"):
        write(t, tmp_path / "out.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hdf5"]
    assert not any((tmp_path / "out.hdf5").iterdir())


def test_picasso_writer_keeps_existing_sidecar_when_writing_fails(tmp_path):
    (tmp_path / "a.yaml").write_text("Pixelsize: 160\n")
    t = make_table({"x": [1.0], "y": [2.0], "label": ["text"]}, pixel_size_nm=100.0)
    with pytest.raises(FormatError, match="column 'label'.*numbers only"):
        write(t, tmp_path / "a.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]
    assert (tmp_path / "a.yaml").read_text() == "Pixelsize: 160\n"


# --------------------------------------------------------------------------- SMAP

def test_smap_mapped_field_of_another_length_is_an_error(tmp_path):
    scipy.io.savemat(tmp_path / "u_sml.mat", {"saveloc": {"loc": {
        "xnm": np.arange(5.0), "ynm": np.arange(5.0), "phot": np.arange(3.0)}}})
    with pytest.raises(FormatError, match=r"u_sml\.mat.*'xnm' has 5 entries but 'phot' has 3"):
        read(tmp_path / "u_sml.mat")


def test_smap_other_field_of_another_length_warns_with_its_name(tmp_path):
    scipy.io.savemat(tmp_path / "w_sml.mat", {"saveloc": {"loc": {
        "xnm": np.arange(5.0), "ynm": np.arange(5.0), "LLrel": np.arange(4.0)}}})
    with pytest.warns(QualityWarning, match=r"w_sml\.mat: dropped saveloc\.loc field\(s\).*"
                                            r"5 localizations: 'LLrel' \(4 entries\)"):
        t = read(tmp_path / "w_sml.mat")
    assert t.column_names == ["x", "y"]
    assert metadata(t)["smap_skipped_fields"] == ["LLrel"]


# --------------------------------------------------------------------------- MINFLUX struct

def struct_data(n=40, *, three_d=True, seed=7, scale=1.0):
    rng = np.random.default_rng(seed)
    pos = np.column_stack([rng.uniform(-8e3, 8e3, n), rng.uniform(-8e3, 8e3, n),
                           rng.uniform(-400, 400, n) if three_d else np.zeros(n)]) * scale
    tid = np.repeat(np.arange(n // 4) * 3 + 11, 4)[:n]
    efo = rng.uniform(2e4, 2e5, n)
    efc = efo * rng.uniform(0.1, 0.9, n)
    efc[3] = np.nan  # no centre-frequency measurement
    return {"t": np.sort(rng.uniform(0, 600, n))[:, None], "id": tid.astype(float)[:, None],
            "pos": pos, "rpos": rng.normal(0, 20, (n, 3)) * scale,
            "dt": rng.uniform(1e-4, 1e-3, n)[:, None], "efo": efo[:, None], "efc": efc[:, None],
            "fbg": rng.uniform(100, 2000, n)[:, None]}


def write_struct_v5(path, data, meta=None):
    scipy.io.savemat(path, {"minflux": {**data, "meta": meta or {"sequence": "Imaging_3D",
                                                                   "pinhole_au": 0.85}}})
    return path


def _h5_char(grp, name, text):
    ds = grp.create_dataset(name, data=np.array([ord(c) for c in text], np.uint16)[:, None])
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    ds.attrs["MATLAB_int_decode"] = np.int32(2)


def write_struct_v73(path, data, meta=None):
    """MATLAB v7.3 layout: 512-byte user block with the MAT header text, one group per
    struct, arrays stored transposed (MATLAB is column-major)."""
    with h5py.File(path, "w", userblock_size=512) as fh:
        grp = fh.create_group("minflux")
        grp.attrs["MATLAB_class"] = np.bytes_("struct")
        for name, value in data.items():
            ds = grp.create_dataset(name, data=np.ascontiguousarray(np.asarray(value).T))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
        m = grp.create_group("meta")
        m.attrs["MATLAB_class"] = np.bytes_("struct")
        for key, value in (meta or {"sequence": "Imaging_3D"}).items():
            if isinstance(value, str):
                _h5_char(m, key, value)
            else:
                ds = m.create_dataset(key, data=np.array([[float(value)]]))
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Dec  4 04:00:00 2026 "
              b"HDF5 schema 1.00 .").ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\0"))
    return path


WRITERS = {"v5": write_struct_v5, "v73": write_struct_v73}


@pytest.mark.parametrize("version", ["v5", "v73"])
@pytest.mark.parametrize("three_d", [True, False], ids=["3D", "2D"])
def test_minflux_struct_read_exactly(tmp_path, version, three_d):
    data = struct_data(three_d=three_d)
    p = WRITERS[version](tmp_path / f"cell_{version}.mat", data)
    assert detect_format(p) == "minflux"
    t = read(p, z_scale=1.0)
    n = len(data["t"])
    assert t.num_rows == n
    np.testing.assert_array_equal(t.column("x").to_numpy(), data["pos"][:, 0])
    np.testing.assert_array_equal(t.column("y").to_numpy(), data["pos"][:, 1])
    np.testing.assert_array_equal(t.column("time_s").to_numpy(), data["t"][:, 0])
    np.testing.assert_array_equal(t.column("track_id").to_numpy(),
                                  data["id"][:, 0].astype(np.int64))
    np.testing.assert_array_equal(t.column("lcx").to_numpy(), data["rpos"][:, 0])
    np.testing.assert_array_equal(t.column("dt").to_numpy(), data["dt"][:, 0])
    np.testing.assert_array_equal(t.column("efo").to_numpy(), data["efo"][:, 0])
    np.testing.assert_array_equal(t.column("fbg").to_numpy(), data["fbg"][:, 0])
    cfr = t.column("cfr").to_numpy()
    expected = data["efc"][:, 0] / data["efo"][:, 0]
    assert np.isnan(cfr[3]) and np.isnan(expected[3])
    np.testing.assert_array_equal(np.delete(cfr, 3), np.delete(expected, 3))
    assert unit_of(t, "x") == "nm" and unit_of(t, "dt") == "s" and unit_of(t, "efo") == "Hz"
    if three_d:
        np.testing.assert_array_equal(t.column("z").to_numpy(), data["pos"][:, 2])
        assert "lcz" in t.column_names
    else:
        assert "z" not in t.column_names and "lcz" not in t.column_names
    meta = metadata(t)
    assert meta["minflux_layout"] == "struct" and meta["minflux_position_unit"] == "nm"
    assert meta["minflux_meta"]["sequence"] == "Imaging_3D"
    assert "frame" not in t.column_names


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_minflux_struct_z_scale_is_applied_and_recorded(tmp_path, version):
    data = struct_data()
    p = WRITERS[version](tmp_path / "z.mat", data)
    t = read(p)
    np.testing.assert_array_equal(t.column("z").to_numpy(), data["pos"][:, 2] * 0.7)
    assert metadata(t)["z_scale"] == 0.7
    with pytest.raises(FormatError, match=r"2D MINFLUX"):
        read(WRITERS[version](tmp_path / "flat.mat", struct_data(three_d=False)),
             require_3d=True)


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_minflux_struct_unit_from_meta(tmp_path, version):
    data = struct_data(scale=1e-3)  # micrometres
    p = WRITERS[version](tmp_path / "um.mat", data, meta={"unit": "um"})
    t = read(p, z_scale=1.0)
    np.testing.assert_allclose(t.column("x").to_numpy(), data["pos"][:, 0] * 1e3, rtol=1e-15)
    np.testing.assert_allclose(t.column("lcy").to_numpy(), data["rpos"][:, 1] * 1e3, rtol=1e-15)
    assert metadata(t)["minflux_position_unit"] == "um"
    with pytest.raises(FormatError, match=r"position_unit='nm' but the file's meta states 'um'"):
        read(p, position_unit="nm")


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_minflux_struct_metres_labelled_nm_are_refused(tmp_path, version):
    data = struct_data(scale=1e-9)  # metres, as in the .npy export, but no unit in meta
    p = WRITERS[version](tmp_path / "m.mat", data)
    with pytest.raises(FormatError, match=r"m\.mat: positions contradict their unit 'nm' \(from "
                                          r"the struct layout's documented unit\)"):
        read(p)
    t = read(p, position_unit="m", z_scale=1.0)
    np.testing.assert_allclose(t.column("x").to_numpy(), data["pos"][:, 0] * 1e9, rtol=1e-15)
    # a stated unit contradicted by the magnitude is refused as well
    p2 = WRITERS[version](tmp_path / "m2.mat", struct_data(), meta={"unit": "m"})
    with pytest.raises(FormatError, match=r"contradict their unit 'm' \(from meta\)"):
        read(p2)


def test_minflux_struct_bad_fields(tmp_path):
    data = struct_data(8)
    data["id"] = data["id"][:5]
    with pytest.raises(FormatError, match=r"'minflux\.id' has 5 entries, expected 8"):
        read(write_struct_v5(tmp_path / "short.mat", data))
    data = struct_data(8)
    del data["pos"]
    with pytest.raises(FormatError, match=r"struct 'minflux' lacks field\(s\) \['pos'\]"):
        read(write_struct_v5(tmp_path / "nopos.mat", data), format="minflux")
    data = struct_data(8)
    data["id"] = data["id"] + 0.5
    with pytest.raises(FormatError, match=r"field 'id' must be int-valued"):
        read(write_struct_v5(tmp_path / "frac.mat", data))
    with pytest.raises(ParameterError, match="position_unit applies only"):
        from smlmspine.io.minflux import read_minflux, write_abberior_npy

        write_abberior_npy({"x": [1.0], "y": [2.0]}, tmp_path / "a.npy")
        read_minflux(tmp_path / "a.npy", position_unit="nm")


# --------------------------------------------------------------------------- HDF5 shapes

def _declared_locs(path, n, *, write_one=False):
    """A Picasso file whose 'locs' declares n records in chunks (mostly never written)."""
    dtype = np.dtype([("frame", "u4"), ("x", "f4"), ("y", "f4")])
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("locs", shape=(n,), dtype=dtype, chunks=(1024,),
                              compression="gzip")
        if write_one:
            ds[:3] = np.array([(0, 1.0, 2.0), (1, 2.0, 3.0), (2, 3.0, 4.0)], dtype=dtype)
    path.with_suffix(".yaml").write_text("Pixelsize: 100\n")
    return path


def test_hdf5_declared_shape_without_data_is_refused(tmp_path):
    p = _declared_locs(tmp_path / "ghost.hdf5", 10 ** 7)
    assert p.stat().st_size < 100_000
    with pytest.raises(FormatError, match=r"ghost\.hdf5.*'locs'.*declares shape \(10000000,\) but "
                                          r"no data is stored"):
        read(p)


def test_hdf5_declared_shape_over_budget_is_refused(tmp_path, monkeypatch):
    p = _declared_locs(tmp_path / "big.hdf5", 10 ** 5, write_one=True)
    monkeypatch.setattr(smlmzip, "MAX_TABLE_BYTES", 1 << 20)
    with pytest.raises(FormatError, match=r"big\.hdf5.*'locs'.*= 1,200,000 bytes, more than the "
                                          r"1,048,576-byte budget"):
        read(p)
    monkeypatch.setattr(smlmzip, "MAX_TABLE_BYTES", None)
    assert read(p).num_rows == 10 ** 5  # within budget it is read (unwritten chunks = fill)


def test_same_entry_listed_many_times_counts_against_one_budget(tmp_path, monkeypatch):
    n = 100_000  # 800 kB per listing
    cols = [("x", "float32", np.zeros(n, np.float32)), ("y", "float32", np.zeros(n, np.float32))]
    p = foreign_smlm(tmp_path / "rep.smlm", cols)
    with zipfile.ZipFile(p) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        data = zf.read("table-0.bin")
    manifest["files"] = manifest["files"] * 50  # 40 MB from one 800 kB entry
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("table-0.bin", data)
    monkeypatch.setattr(smlmzip, "MAX_TABLE_BYTES", 4_000_000)
    with pytest.raises(FormatError, match=r"rep\.smlm.*would decompress to 800,000 bytes, more "
                                          r"than the 0 bytes left of the 4,000,000-byte budget"):
        read(p)
