"""MINFLUX readers (nested/flat layouts, .npy/.mat/.json), writer, and bad input."""

import json
import warnings

import numpy as np
import pyarrow as pa
import pytest
from minflux_samples import flat_array, nested_array

import smlmspine
from smlmspine.errors import FormatError, QualityWarning
from smlmspine.io import detect_format
from smlmspine.io.minflux import (DEFAULT_Z_SCALE, NESTED_ITR_DTYPE, read_minflux,
                                  write_abberior_npy)
from smlmspine.schema import history, make_table, metadata, unit_of, validate


# --------------------------------------------------------------------------- real data

@pytest.mark.shared_data
def test_real_2d_export_values_in_nm(real_minflux):
    raw = np.load(real_minflux["2D"])
    t = smlmspine.read(real_minflux["2D"])
    assert detect_format(real_minflux["2D"]) == "minflux"
    valid = raw[raw["vld"]]
    assert t.num_rows == valid.size == 12580
    assert len(np.unique(t.column("track_id").to_numpy())) == 1250
    assert "z" not in t.column_names and "frame" not in t.column_names
    np.testing.assert_array_equal(t.column("x").to_numpy(), valid["itr"]["loc"][:, -1, 0] * 1e9)
    np.testing.assert_array_equal(t.column("y").to_numpy(), valid["itr"]["loc"][:, -1, 1] * 1e9)
    np.testing.assert_array_equal(t.column("time_s").to_numpy(), valid["tim"])
    np.testing.assert_array_equal(t.column("track_id").to_numpy(), valid["tid"])
    np.testing.assert_array_equal(t.column("efo").to_numpy(), valid["itr"]["efo"][:, -1])
    np.testing.assert_array_equal(t.column("dcr").to_numpy(), valid["itr"]["dcr"][:, -1])
    # 2D sequences measure cfr in every iteration: it comes from the last one
    np.testing.assert_array_equal(t.column("cfr").to_numpy(), valid["itr"]["cfr"][:, -1])
    assert set(t.column("iteration").to_numpy().tolist()) == {4}
    assert unit_of(t, "x") == "nm" and unit_of(t, "efo") == "Hz" and unit_of(t, "cfr") == "1"
    assert metadata(t)["minflux_layout"] == "nested"
    with pytest.raises(FormatError, match="2D MINFLUX"):
        smlmspine.read(real_minflux["2D"], require_3d=True)


@pytest.mark.shared_data
def test_real_3d_export_z_scale_and_cfr_iteration(real_minflux):
    raw = np.load(real_minflux["3D"])
    valid = raw[raw["vld"]]
    t = read_minflux(real_minflux["3D"], require_3d=True)
    assert t.num_rows == valid.size == 5812
    assert len(np.unique(t.column("track_id").to_numpy())) == 527
    loc = valid["itr"]["loc"][:, -1]
    np.testing.assert_array_equal(t.column("x").to_numpy(), loc[:, 0] * 1e9)
    np.testing.assert_allclose(t.column("z").to_numpy(), loc[:, 2] * 1e9 * 0.7, rtol=1e-15)
    # the 3D sequence measures the centre frequency in iteration 6 only
    assert metadata(t)["minflux_cfr_iteration"] == 6
    np.testing.assert_array_equal(t.column("cfr").to_numpy(), valid["itr"]["cfr"][:, 6])
    np.testing.assert_array_equal(t.column("efo").to_numpy(), valid["itr"]["efo"][:, -1])
    step = history(t)[-1]
    assert step["step"] == "io.read_minflux" and step["params"]["z_scale"] == DEFAULT_Z_SCALE
    raw_z = read_minflux(real_minflux["3D"], z_scale=1.0)
    np.testing.assert_allclose(raw_z.column("z").to_numpy(), loc[:, 2] * 1e9, rtol=1e-15)


@pytest.mark.shared_data
def test_real_export_parquet_round_trip(real_minflux, tmp_path):
    t = smlmspine.read(real_minflux["3D"])
    out = smlmspine.write(t, tmp_path / "mfx.parquet")
    back = smlmspine.read(out)
    assert back.column_names == t.column_names
    for name in t.column_names:
        assert back.column(name).equals(t.column(name)), name
    assert back.schema.field("efo").metadata[b"unit"] == b"Hz"


# --------------------------------------------------------------------------- nested layout

def _nested_sample():
    nan = np.nan
    p = np.array([
        # trace 5: full first localization, then a relocalization (early iterations NaN)
        [[1e-6, 2e-6, 0], [1.1e-6, 2.1e-6, 1e-8], [1.2e-6, 2.2e-6, 2e-8], [1.25e-6, 2.25e-6, 3e-8]],
        [[nan] * 3, [nan] * 3, [1.3e-6, 2.3e-6, 4e-8], [1.35e-6, 2.35e-6, 5e-8]],
        # invalid attempt that stopped after iteration 2
        [[nan] * 3, [1.4e-6, 2.4e-6, 6e-8], [1.45e-6, 2.45e-6, 7e-8], [nan] * 3],
        # invalid attempt without any position
        [[nan] * 3] * 4,
        # trace 9
        [[5e-6, 6e-6, 0], [5.1e-6, 6.1e-6, -1e-8], [5.2e-6, 6.2e-6, -2e-8], [5.3e-6, 6.3e-6, -3e-8]],
    ])
    return nested_array(p, tid=[5, 5, 5, 6, 9], tim=[0.1, 0.2, 0.3, 0.4, 0.5],
                        vld=[True, True, False, False, True])


def test_nested_layout_drops_invalid_and_maps_fields(tmp_path):
    path = tmp_path / "nested.npy"
    np.save(path, _nested_sample())
    t = smlmspine.read(path)
    validate(t)
    assert t.column("track_id").to_pylist() == [5, 5, 9]
    np.testing.assert_allclose(t.column("x").to_numpy(), [1250.0, 1350.0, 5300.0])
    np.testing.assert_allclose(t.column("z").to_numpy(), np.array([30.0, 50.0, -30.0]) * 0.7)
    np.testing.assert_allclose(t.column("time_s").to_numpy(), [0.1, 0.2, 0.5])
    assert t.column("iteration").to_pylist() == [3, 3, 3]
    # efo/eco of the final iteration (index 3): 4e4 + row, 40 + row
    np.testing.assert_allclose(t.column("efo").to_numpy(), [40000.0, 40001.0, 40004.0])
    np.testing.assert_allclose(t.column("eco").to_numpy(), [40.0, 41.0, 44.0])
    # cfr from iteration 1, the only one that varies
    np.testing.assert_allclose(t.column("cfr").to_numpy(), [0.1, 0.2, 0.5])
    assert t.column("vld").to_pylist() == [True, True, True]


def test_nested_keep_invalid_uses_last_finite_iteration(tmp_path):
    path = tmp_path / "nested.npy"
    np.save(path, _nested_sample())
    with pytest.warns(QualityWarning, match="1 localization attempt"):
        t = smlmspine.read(path, keep_invalid=True)
    assert t.column("vld").to_pylist() == [True, True, False, True]
    assert t.column("iteration").to_pylist() == [3, 3, 2, 3]
    np.testing.assert_allclose(t.column("x").to_numpy(), [1250.0, 1350.0, 1450.0, 5300.0])
    assert history(t)[-1]["params"]["keep_invalid"] is True


def test_older_export_with_fewer_fields(tmp_path):
    old_itr = np.dtype([("itr", "<i4"), ("loc", "<f8", (3,)), ("efo", "<f8"), ("cfr", "<f8"),
                        ("dcr", "<f8")])
    p = np.zeros((3, 2, 3))
    p[:, :, 0] = [[1e-6, 1.1e-6], [2e-6, 2.1e-6], [3e-6, 3.1e-6]]
    a = nested_array(p, tid=[1, 1, 2], tim=[0.0, 1.0, 2.0], vld=[True, True, True], n_itr=2,
                     itr_dtype=old_itr, top_fields=(("tim", "<f8"), ("tid", "<i4"), ("vld", "?")))
    path = tmp_path / "old.npy"
    np.save(path, a)
    t = smlmspine.read(path)
    assert "z" not in t.column_names  # every z is 0: 2D
    np.testing.assert_allclose(t.column("x").to_numpy(), [1100.0, 2100.0, 3100.0])
    assert {"efo", "cfr", "dcr"} <= set(t.column_names)
    assert "eco" not in t.column_names and "fbg" not in t.column_names


# --------------------------------------------------------------------------- flat layout

def test_flat_layout_groups_iterations(tmp_path):
    groups = [
        (3, True, [(0, (1e-6, 1e-6, 0.0), 0.0), (1, (1.1e-6, 1.2e-6, 2e-8), 0.4),
                   (2, (1.2e-6, 1.3e-6, 4e-8), 0.0)]),
        (3, True, [(1, (1.4e-6, 1.5e-6, 5e-8), 0.6), (2, (1.5e-6, 1.6e-6, 6e-8), 0.0)]),
        (3, False, [(0, (np.nan,) * 3, 0.0), (1, (np.nan,) * 3, 0.0)]),
        (8, True, [(0, (4e-6, 4e-6, 0.0), 0.0), (1, (4.1e-6, 4.1e-6, 1e-8), 0.2),
                   (2, (4.2e-6, 4.2e-6, 1e-8), 0.0)]),
    ]
    a = flat_array(groups)
    path = tmp_path / "flat.npy"
    np.save(path, a)
    t = read_minflux(path, z_scale=1.0)
    assert metadata(t)["minflux_layout"] == "flat"
    assert t.column("track_id").to_pylist() == [3, 3, 8]
    np.testing.assert_allclose(t.column("x").to_numpy(), [1200.0, 1500.0, 4200.0])
    np.testing.assert_allclose(t.column("z").to_numpy(), [40.0, 60.0, 10.0])
    assert t.column("iteration").to_pylist() == [2, 2, 2]
    np.testing.assert_allclose(t.column("cfr").to_numpy(), [0.4, 0.6, 0.2], rtol=1e-6)
    # dcr is stored as (dcr, 1 - dcr): the first component; rows 2, 4, 9
    np.testing.assert_allclose(t.column("dcr").to_numpy(), [0.27, 0.29, 0.34], rtol=1e-6)
    np.testing.assert_allclose(t.column("efo").to_numpy(), [3000.0, 5000.0, 10000.0])
    np.testing.assert_allclose(t.column("time_s").to_numpy(), [1.0, 2.0, 4.5])


# --------------------------------------------------------------------------- writer

@pytest.mark.parametrize("version", ["m2205", "m2410"])
@pytest.mark.parametrize("ext", [".npy", ".json", ".mat"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_writer_round_trip_every_layout(tmp_path, version, ext, ndim):
    rng = np.random.default_rng(0)
    n = 12
    cols = {"x": rng.uniform(-5e3, 5e3, n), "y": rng.uniform(0, 1e4, n),
            "time_s": np.sort(rng.uniform(0, 10, n)), "track_id": np.repeat([4, 7, 9], 4),
            "efo": rng.uniform(1e4, 1e5, n), "cfr": rng.uniform(0, 1, n),
            "dcr": rng.uniform(0, 1, n)}
    if ndim == 3:
        cols["z"] = rng.uniform(-300, 300, n)
    table = make_table(cols)
    path = write_abberior_npy(table, tmp_path / f"sim{ext}", ndim=ndim, n_iterations=3,
                              version=version)
    assert detect_format(path) == "minflux"
    back = smlmspine.read(path)
    for name in ("x", "y", "z") if ndim == 3 else ("x", "y"):
        np.testing.assert_allclose(back.column(name).to_numpy(), cols[name], rtol=1e-12, atol=1e-9)
    assert ("z" in back.column_names) == (ndim == 3)
    np.testing.assert_allclose(back.column("time_s").to_numpy(), cols["time_s"])
    assert back.column("track_id").to_pylist() == cols["track_id"].tolist()
    # the flat layout stores efo/cfr/dcr as float32
    rtol = 1e-12 if version == "m2205" else 1e-6
    for name in ("efo", "cfr", "dcr"):
        np.testing.assert_allclose(back.column(name).to_numpy(), cols[name], rtol=rtol)


def test_registry_writer_and_parquet_round_trip(tmp_path):
    t = make_table({"x": [10.0, 20.0], "y": [1.0, 2.0], "z": [3.5, -7.0], "time_s": [0.0, 1.0],
                    "track_id": [1, 2]})
    p = smlmspine.write(t, tmp_path / "w.npy", n_iterations=2)
    back = smlmspine.read(p)
    np.testing.assert_allclose(back.column("z").to_numpy(), [3.5, -7.0])
    pq = smlmspine.write(back, tmp_path / "w.parquet")
    again = smlmspine.read(pq)
    assert again.column_names == back.column_names
    assert again.to_pandas().equals(back.to_pandas())  # NaN-aware comparison
    assert history(again)[-2]["step"] == "io.read_minflux"


# --------------------------------------------------------------------------- bad input

def _save(tmp_path, arr, name="bad.npy"):
    path = tmp_path / name
    np.save(path, arr)
    return path


def test_bad_input_errors(tmp_path):
    good = _nested_sample()
    # missing top-level field
    no_vld = np.zeros(2, dtype=[("itr", NESTED_ITR_DTYPE, (2,)), ("tid", "<i4"), ("tim", "<f8")])
    with pytest.raises(FormatError, match="missing top-level field 'vld'"):
        read_minflux(_save(tmp_path, no_vld))
    # wrong dtype: fractional track ids
    bad_tid = np.zeros(2, dtype=[("itr", NESTED_ITR_DTYPE, (2,)), ("tid", "<f8"), ("tim", "<f8"),
                                 ("vld", "?")])
    bad_tid["tid"] = [0.5, 1.5]
    bad_tid["vld"] = True
    with pytest.raises(FormatError, match="'tid' must be int-valued"):
        read_minflux(_save(tmp_path, bad_tid))
    # wrong dtype: positions as text
    bad_loc = np.zeros(1, dtype=[("itr", [("loc", "U8", (3,))], (2,)), ("tid", "<i4"),
                                 ("tim", "<f8"), ("vld", "?")])
    with pytest.raises(FormatError, match="itr.loc"):
        read_minflux(_save(tmp_path, bad_loc))
    # empty array
    with pytest.raises(FormatError, match="no valid localizations"):
        read_minflux(_save(tmp_path, good[:0]))
    # all invalid
    all_bad = good.copy()
    all_bad["vld"] = False
    with pytest.raises(FormatError, match="keep_invalid=True"):
        read_minflux(_save(tmp_path, all_bad))
    # flat records without fnl
    no_fnl = np.zeros(2, dtype=[("tid", "<u4"), ("tim", "<f8"), ("vld", "?"), ("itr", "<i4"),
                                ("loc", "<f8", (3,))])
    with pytest.raises(FormatError, match="without 'fnl'"):
        read_minflux(_save(tmp_path, no_fnl))
    # a plain array is not MINFLUX: the registry does not recognise it, the reader says why
    plain = _save(tmp_path, np.zeros((3, 3)), "plain.npy")
    with pytest.raises(FormatError, match="unknown format"):
        smlmspine.read(plain)
    with pytest.raises(FormatError, match="structured array"):
        smlmspine.read(plain, format="minflux")


def test_bad_json_and_mat(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('[{"tid": 1, "tim": 0.1, "vld": true, "itr": [{"loc": [1e-6, 0, 0]}]}, {"tid": 2}]')
    with pytest.raises(FormatError, match="missing field 'tim'"):
        read_minflux(p)
    p.write_text("[]")
    with pytest.raises(FormatError, match="no MINFLUX records"):
        read_minflux(p)
    p.write_text('{"tid": [1, 2"')
    with pytest.raises(FormatError, match="not valid JSON"):
        read_minflux(p)
    m = tmp_path / "bad.mat"
    m.write_bytes(b"MATLAB 5.0 MAT-file, but truncated")
    with pytest.raises(FormatError, match=str(m.name)):
        read_minflux(m)


def test_json_nulls_read_as_nan(tmp_path):
    recs = [{"tid": 1, "tim": 0.5, "vld": True,
             "itr": [{"itr": 0, "loc": [None, None, None], "efo": None},
                     {"itr": 1, "loc": [2e-6, 3e-6, 0.0], "efo": 5e4}]}]
    p = tmp_path / "nulls.json"
    p.write_text(json.dumps(recs))
    t = read_minflux(p)
    assert t.column("x").to_pylist() == [2000.0] and t.column("efo").to_pylist() == [5e4]


def test_z_scale_parameter_is_validated(tmp_path):
    path = _save(tmp_path, _nested_sample())
    with pytest.raises(smlmspine.ParameterError, match="z_scale"):
        read_minflux(path, z_scale=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = read_minflux(path, z_scale=0.5)
    np.testing.assert_allclose(t.column("z").to_numpy(), [15.0, 25.0, -15.0])
    assert pa.types.is_float64(t.schema.field("z").type)


@pytest.mark.shared_data
def test_real_zipped_export_read_directly(real_minflux):
    from minflux_samples import SHARED

    zipped = SHARED / "3D_ValidOnly.npy.zip"
    assert detect_format(zipped) == "minflux"
    direct = smlmspine.read(zipped)
    unzipped = smlmspine.read(real_minflux["3D"])
    for name in ("x", "y", "z", "time_s", "track_id", "cfr"):
        assert direct.column(name).equals(unzipped.column(name)), name


def test_zip_with_several_exports_is_refused(tmp_path):
    import zipfile

    np.save(tmp_path / "a.npy", _nested_sample())
    z = tmp_path / "two.npy.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(tmp_path / "a.npy", "a.npy")
        zf.write(tmp_path / "a.npy", "b.npy")
    with pytest.raises(FormatError, match="exactly one .npy"):
        read_minflux(z)


def test_flat_keep_invalid_and_tracking_cfr(tmp_path):
    groups = [
        # trace 1: cfr measured (iteration 1) only in its first localization (tracking)
        (1, True, [(0, (1e-6, 1e-6, 0.0), 0.0), (1, (1.1e-6, 1e-6, 0.0), 0.35),
                   (2, (1.2e-6, 1e-6, 0.0), 0.0)]),
        (1, True, [(2, (1.3e-6, 1e-6, 0.0), 0.0)]),
        (1, True, [(2, (1.4e-6, 1e-6, 0.0), 0.0)]),
        # invalid attempt that reached iteration 1 only
        (2, False, [(0, (2e-6, 2e-6, 0.0), 0.0), (1, (2.1e-6, 2e-6, 0.0), 0.9)]),
        (4, True, [(0, (3e-6, 3e-6, 0.0), 0.0), (1, (3.1e-6, 3e-6, 0.0), 0.55),
                   (2, (3.2e-6, 3e-6, 0.0), 0.0)]),
    ]
    path = tmp_path / "track.npy"
    np.save(path, flat_array(groups))
    t = read_minflux(path)
    assert "z" not in t.column_names
    assert t.column("track_id").to_pylist() == [1, 1, 1, 4]
    np.testing.assert_allclose(t.column("x").to_numpy(), [1200.0, 1300.0, 1400.0, 3200.0])
    # later localizations of trace 1 inherit the trace's cfr; trace 4 has its own
    np.testing.assert_allclose(t.column("cfr").to_numpy(), [0.35, 0.35, 0.35, 0.55], rtol=1e-6)
    k = read_minflux(path, keep_invalid=True)
    assert k.column("vld").to_pylist() == [True, True, True, False, True]
    assert k.column("iteration").to_pylist() == [2, 2, 2, 1, 2]
    np.testing.assert_allclose(k.column("x").to_numpy()[3], 2100.0)
    assert k.column("bot").to_pylist() == [False] * 5  # flat_array leaves bot/eot unset


@pytest.mark.parametrize("version", ["m2205", "m2410"])
def test_single_record_mat_keeps_vector_fields(tmp_path, version):
    t = make_table({"x": [12.0], "y": [-4.0], "z": [21.0], "time_s": [0.25], "track_id": [3]})
    path = write_abberior_npy(t, tmp_path / "one.mat", n_iterations=1, version=version)
    back = read_minflux(path)
    np.testing.assert_allclose([back.column(c)[0].as_py() for c in ("x", "y", "z")],
                               [12.0, -4.0, 21.0])


def test_registry_writer_refuses_camera_tables(tmp_path):
    storm = make_table({"x": [1.0], "y": [2.0], "frame": [0], "photons": [500.0]})
    with pytest.raises(FormatError, match="needs column"):
        smlmspine.write(storm, tmp_path / "storm.npy")
    assert not (tmp_path / "storm.npy").exists()
