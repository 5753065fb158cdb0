"""ThunderSTORM CSV reader and the ThunderSTORM-compatible CSV writer.

Sample files are written here from ThunderSTORM's documented export layout (one
comma-separated header line, units in brackets, values written as doubles).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read, write
from smlmspine.io._registry import MAX_COORDINATE_NM
from smlmspine.schema import COLUMNS, make_table, metadata, unit_of

HEADER_3D = ['id', 'frame', 'x [nm]', 'y [nm]', 'z [nm]', 'sigma1 [nm]', 'sigma2 [nm]',
             'intensity [photon]', 'offset [photon]', 'bkgstd [photon]', 'uncertainty_xy [nm]',
             'uncertainty_z [nm]', 'chi2']


def _rows(n, rng, *, ndim=3):
    rng = np.random.default_rng(rng)
    data = {
        "id": np.arange(1, n + 1, dtype=float),
        "frame": rng.integers(1, 500, n).astype(float),
        "x": rng.uniform(0, 40000, n), "y": rng.uniform(0, 40000, n),
        "z": rng.uniform(-600, 600, n),
        "sigma1": rng.uniform(80, 200, n), "sigma2": rng.uniform(80, 200, n),
        "intensity": rng.uniform(100, 1e4, n), "offset": rng.uniform(0, 50, n),
        "bkgstd": rng.uniform(0, 10, n), "unc_xy": rng.uniform(2, 30, n),
        "unc_z": rng.uniform(5, 60, n), "chi2": rng.uniform(0, 5, n),
    }
    if ndim == 2:
        for k in ("z", "sigma2", "unc_z"):
            data.pop(k)
    return data


def write_ts(path, data, header, *, quoted=True, fmt=repr):
    q = (lambda s: f'"{s}"') if quoted else (lambda s: s)
    lines = [",".join(q(h) for h in header)]
    cols = list(data.values())
    for i in range(len(cols[0])):
        lines.append(",".join(fmt(float(c[i])) for c in cols))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("quoted", [True, False])
def test_3d_nm_values(tmp_path, quoted):
    data = _rows(50, 0)
    p = write_ts(tmp_path / "locs.csv", data, HEADER_3D, quoted=quoted)
    assert detect_format(p) == "thunderstorm"
    t = read(p)
    np.testing.assert_array_equal(t.column("x").to_numpy(), data["x"])
    np.testing.assert_array_equal(t.column("z").to_numpy(), data["z"])
    np.testing.assert_array_equal(t.column("frame").to_numpy(), data["frame"].astype(np.int64))
    np.testing.assert_array_equal(t.column("photons").to_numpy(), data["intensity"])
    np.testing.assert_array_equal(t.column("background").to_numpy(), data["offset"])
    np.testing.assert_array_equal(t.column("precision_xy").to_numpy(), data["unc_xy"])
    np.testing.assert_array_equal(t.column("precision_z").to_numpy(), data["unc_z"])
    assert t.schema.field("frame").type == pa.int64()
    # every other column kept, with its unit and original name
    for name, unit in (("sigma1", "nm"), ("sigma2", "nm"), ("bkgstd", "photon")):
        assert unit_of(t, name) == unit
    assert t.schema.field("sigma1").metadata[b"original_name"] == b"sigma1 [nm]"
    np.testing.assert_array_equal(t.column("chi2").to_numpy(), data["chi2"])
    assert metadata(t)["format"] == "thunderstorm"
    assert metadata(t)["pixel_size_nm"] is None


def test_2d_uncertainty_header(tmp_path):
    data = _rows(20, 1, ndim=2)
    header = ['id', 'frame', 'x [nm]', 'y [nm]', 'sigma [nm]', 'intensity [photon]',
              'offset [photon]', 'bkgstd [photon]', 'uncertainty [nm]', 'chi2']
    t = read(write_ts(tmp_path / "a.csv", data, header))
    assert "z" not in t.column_names
    np.testing.assert_array_equal(t.column("precision_xy").to_numpy(), data["unc_xy"])
    assert t.schema.field("precision_xy").metadata[b"original_name"] == b"uncertainty [nm]"


@pytest.mark.parametrize("unit,factor", [("px", 107.5), ("um", 1000.0), ("µm", 1000.0)])
def test_pixel_and_micrometre_headers(tmp_path, unit, factor):
    data = {"frame": np.array([1.0, 2.0]), "x": np.array([10.25, 3.0]),
            "y": np.array([0.5, 7.0]), "unc": np.array([0.1, 0.2])}
    header = ["frame", f"x [{unit}]", f"y [{unit}]", f"uncertainty [{unit}]"]
    p = write_ts(tmp_path / "a.csv", data, header)
    t = read(p, pixel_size_nm=107.5 if unit == "px" else None)
    np.testing.assert_allclose(t.column("x").to_numpy(), data["x"] * factor, rtol=1e-15)
    np.testing.assert_allclose(t.column("precision_xy").to_numpy(), data["unc"] * factor,
                               rtol=1e-15)
    assert metadata(t)["pixel_size_nm"] == (107.5 if unit == "px" else None)


def test_pixels_without_pixel_size_is_an_error(tmp_path):
    p = write_ts(tmp_path / "a.csv", {"x": [1.0], "y": [2.0]}, ["x [px]", "y [px]"])
    with pytest.raises(FormatError, match=r"a\.csv.*pixel.*pixel_size_nm") as exc:
        read(p)
    assert exc.value.column == "x [px]"


def test_adu_intensity_is_not_photons(tmp_path):
    p = write_ts(tmp_path / "a.csv", {"x": [1.0], "y": [2.0], "i": [300.0]},
                 ["x [nm]", "y [nm]", "intensity [ADU]"])
    t = read(p)
    assert "photons" not in t.column_names
    assert unit_of(t, "intensity") == "ADU"


def test_crlf_and_bom(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b'\xef\xbb\xbf"x [nm]","y [nm]","frame"\r\n1.5,2.5,3.0\r\n4.5,5.5,6.0\r\n')
    assert detect_format(p) == "thunderstorm"
    t = read(p)
    assert t.column("x").to_pylist() == [1.5, 4.5]
    assert t.column("frame").to_pylist() == [3, 6]


def test_mapping_overrides(tmp_path):
    p = write_ts(tmp_path / "a.csv", {"x": [1.0], "y": [2.0], "f": [9.0]},
                 ["x [nm]", "y [nm]", "slice"])
    t = read(p, mapping={"frame": "slice"})
    assert t.column("frame").to_pylist() == [9]


# ------------------------------------------------------------------ the CSV writer


def test_writer_headers_are_thunderstorm(tmp_path):
    t = make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "z": [5.0, 6.0], "frame": [1, 2],
                    "photons": [100.0, 200.0], "background": [1.0, 2.0],
                    "precision_xy": [5.0, 6.0], "precision_z": [9.0, 10.0],
                    "sigma": [150.0, 160.0]}, units={"sigma": "nm"})
    out = write(t, tmp_path / "o.csv")
    header = out.read_text().splitlines()[0]
    assert header == ('"x [nm]","y [nm]","z [nm]","frame","intensity [photon]",'
                      '"offset [photon]","uncertainty_xy [nm]","uncertainty_z [nm]",'
                      '"sigma [nm]"')
    assert detect_format(out) == "thunderstorm"


def _table_equal_values(a, b):
    assert a.column_names == b.column_names
    for name in a.column_names:
        fa, fb = a.schema.field(name), b.schema.field(name)
        assert fa.type == fb.type, name
        assert unit_of(a, name) == unit_of(b, name), name
        assert a.column(name).to_pylist() == b.column(name).to_pylist() or np.array_equal(
            a.column(name).to_numpy(), b.column(name).to_numpy(), equal_nan=True), name


def test_roundtrip_read_write_read(tmp_path):
    data = _rows(200, 3)
    p = write_ts(tmp_path / "in.csv", data, HEADER_3D)
    t1 = read(p)
    t2 = read(write(t1, tmp_path / "out.csv"))
    _table_equal_values(t1, t2)
    # and through the lossless writers
    for ext in (".parquet", ".arrow"):
        t3 = read(write(t1, tmp_path / f"out{ext}"))
        _table_equal_values(t1, t3)


def test_roundtrip_all_canonical_and_odd_extras(tmp_path):
    t = make_table({
        "x": [0.1 + 0.2, -1e-300, 1e9], "y": [1 / 3, -1e9, 5e-324], "z": [0.0, -0.0, 7.0],
        "frame": [0, 1, 2**40], "time_s": [0.0, 0.05, 1e5], "photons": [1.0, math.nan, 3.0],
        "background": [None, 1.0, 2.0], "precision_xy": [1.0, 2.0, 3.0],
        "precision_z": [3.0, 4.0, 5.0], "channel": [0, 1, 1], "track_id": [-1, 5, 5],
        "cluster_id": [-1, 0, 0], "spine_id": [2, -1, 2],
        "label": ["a,b", 'quote"d', None], "flag": [True, False, True],
        "count": np.array([1, 2, 3], dtype=np.int64), "ratio [x]": [1.0, 2.0, 3.0],
    }, units={"ratio [x]": "1"})
    t2 = read(write(t, tmp_path / "o.csv"))
    _table_equal_values(t, t2)


#: Coordinates: any float a localization can have, |value| <= 1 m (beyond it read and write
#: refuse the table, tests/io/test_coordinates_wild.py).
coordinate = st.floats(min_value=-MAX_COORDINATE_NM, max_value=MAX_COORDINATE_NM, width=64)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(xs=st.lists(st.tuples(coordinate, coordinate, st.integers(0, 2**53),
                             st.floats(width=64) | st.none()), min_size=1, max_size=30))
def test_roundtrip_property(tmp_path_factory, xs):
    d = tmp_path_factory.mktemp("rt")
    t = make_table({"x": [r[0] for r in xs], "y": [r[1] for r in xs],
                    "frame": [r[2] for r in xs], "photons": [r[3] for r in xs]})
    back = read(write(t, d / "o.csv"))
    np.testing.assert_array_equal(back.column("x").to_numpy(), t.column("x").to_numpy())
    np.testing.assert_array_equal(back.column("y").to_numpy(), t.column("y").to_numpy())
    assert back.column("frame").to_pylist() == t.column("frame").to_pylist()
    a, b = t.column("photons").to_pylist(), back.column("photons").to_pylist()
    assert [None if v is None else ("nan" if v != v else v) for v in a] == \
        [None if v is None else ("nan" if v != v else v) for v in b]
    for ext in (".parquet", ".arrow"):
        again = read(write(back, d / f"o{ext}"))
        _table_equal_values(back, again)


def test_writer_refuses_nested_columns(tmp_path):
    t = make_table({"x": [1.0], "y": [2.0]})
    t = t.append_column("lst", pa.array([[1, 2]]))
    with pytest.raises(FormatError, match="lst.*cannot be written to CSV"):
        write(t, tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_output_is_plain_csv(tmp_path):
    """pyarrow itself (and any CSV tool) reads the written file with the same values."""
    t = make_table({"x": [1.25, 2.5], "y": [3.0, 4.0], "frame": [7, 8]})
    back = pcsv.read_csv(write(t, tmp_path / "o.csv"))
    assert back.column_names == ["x [nm]", "y [nm]", "frame"]
    assert back.column("x [nm]").to_pylist() == [1.25, 2.5]


def test_columns_canonical_registry_fully_mapped():
    from smlmspine.io.thunderstorm import CSV_HEADERS, THUNDERSTORM_CANDIDATES

    assert set(CSV_HEADERS) == set(COLUMNS) == set(THUNDERSTORM_CANDIDATES)
    for name, header in CSV_HEADERS.items():
        assert header.split(" [")[0] == THUNDERSTORM_CANDIDATES[name][0]


def test_writer_quotes_only_when_needed(tmp_path):
    t = make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "id": [1.0, 2.0], "name": ["a b", None]})
    out = write(t, tmp_path / "plain.csv")
    assert out.read_text().splitlines() == ['"x [nm]","y [nm]","id","name"', "1,3,1.0,a b",
                                            "2,4,2.0,"]
    _table_equal_values(t, read(out))
    t2 = make_table({"x": [1.0], "y": [3.0], "id": [1.0], "name": ['say "hi", then go']})
    out2 = write(t2, tmp_path / "quoted.csv")
    assert out2.read_text().splitlines()[1] == '1,3,"1.0","say ""hi"", then go"'
    _table_equal_values(t2, read(out2))
