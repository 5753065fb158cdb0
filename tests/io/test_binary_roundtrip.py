"""read -> write -> read gives the same table, for every writer and every binary source.

Lossless writers (Parquet, Arrow/Feather, .smlm) must reproduce every column bit for bit,
with types, units and original names. Picasso stores x/y in pixels: a table that came
from a Picasso file comes back bit for bit; one that came in nm comes back within
float64 rounding of the px<->nm conversion (x / p * p).
"""

import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlmspine.errors import FormatError
from smlmspine.io import read, write, writers
from smlmspine.io._registry import MAX_COORDINATE_NM
from smlmspine.schema import COLUMNS, make_table

from test_binary_decode import write_decode
from test_binary_picasso import MOVIE_INFO, make_locs, write_picasso_file
from test_binary_smap import loc_fields, write_v73
from test_binary_smlm import sample, write_smlm_file


def field_meta(f):
    return {k: v for k, v in (f.metadata or {}).items()}


def assert_same_table(a: pa.Table, b: pa.Table, *, rtol=0.0):
    assert a.column_names == b.column_names
    assert a.num_rows == b.num_rows
    for fa, fb in zip(a.schema, b.schema):
        assert fa.type == fb.type, fa.name
        assert field_meta(fa) == field_meta(fb), fa.name
        va = a.column(fa.name).to_numpy(zero_copy_only=False)
        vb = b.column(fb.name).to_numpy(zero_copy_only=False)
        if rtol and va.dtype.kind == "f":
            np.testing.assert_allclose(vb, va, rtol=rtol, atol=0, err_msg=fa.name)
        else:
            np.testing.assert_array_equal(va, vb, err_msg=fa.name)


def _source(kind, tmp_path):
    if kind == "picasso2d":
        return write_picasso_file(tmp_path / "src.hdf5", make_locs(40),
                                  [MOVIE_INFO, {"Pixelsize": 130.0}])
    if kind == "picasso3d_group":
        locs = make_locs(40, three_d=True)
        from numpy.lib import recfunctions as rfn
        locs = rfn.append_fields(locs, "group", np.arange(40) % 3, dtypes="i4", usemask=False)
        return write_picasso_file(tmp_path / "src.hdf5", locs, [MOVIE_INFO, {"Pixelsize": 107.0}])
    if kind == "decode":
        write_decode(tmp_path / "src.h5", px_size=(100.0, 100.0))
        return tmp_path / "src.h5"
    if kind == "smap":
        write_v73(tmp_path / "src_sml.mat", loc_fields())
        return tmp_path / "src_sml.mat"
    if kind == "smlm":
        return write_smlm_file(tmp_path / "src.smlm", sample())
    raise AssertionError(kind)


SOURCES = ["picasso2d", "picasso3d_group", "decode", "smap", "smlm"]
TARGETS = [("parquet", ".parquet"), ("arrow", ".arrow"), ("arrow", ".feather"),
           ("smlm", ".smlm"), ("picasso", ".hdf5"), ("csv", ".csv")]


@pytest.mark.parametrize("writer,ext", TARGETS, ids=[e for _, e in TARGETS])
@pytest.mark.parametrize("source", SOURCES)
def test_read_write_read(tmp_path, source, writer, ext):
    if writer not in writers():
        pytest.skip(f"no {writer!r} writer registered yet")
    t1 = read(_source(source, tmp_path))
    # a .smlm table has no pixel size: Picasso needs one
    opts = {"pixel_size_nm": 100.0} if (writer, source) == ("picasso", "smlm") else {}
    out = write(t1, tmp_path / f"out{ext}", **opts)
    assert out.is_file()
    t2 = read(out)
    if writer == "picasso" and not source.startswith("picasso"):
        # px formats: nm -> px -> nm is exact only up to float64 rounding; the rest is kept
        common = [c for c in t1.column_names if c in t2.column_names]
        assert set(t1.column_names) - {"precision_xy"} <= set(common)
        assert_same_table(t1.select(common), t2.select(common), rtol=4 * np.finfo(float).eps)
        return
    if writer == "csv":
        # text keeps every value (a float32 column may come back as float64 holding the
        # same float32 value); types/metadata are the CSV writer's own tests' business
        assert t1.column_names == t2.column_names
        for name in t1.column_names:
            va = t1.column(name).to_numpy(zero_copy_only=False)
            vb = np.asarray(t2.column(name).to_numpy(zero_copy_only=False), dtype=va.dtype)
            np.testing.assert_array_equal(va, vb, err_msg=name)
        return
    assert_same_table(t1, t2)
    # written twice: identical again (the writers are deterministic on their own output)
    out2 = write(t2, tmp_path / f"again{ext}")
    assert_same_table(t2, read(out2))


# --- property test: random tables with odd column names survive every lossless writer ----

_names = st.text(min_size=1, max_size=10).filter(lambda s: s not in COLUMNS and s.strip())
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
#: Coordinates: any float a localization can have, |value| <= 1 m (io.MAX_COORDINATE_NM;
#: beyond it read and write refuse the table, tests/io/test_coordinates_wild.py).
# (up to the limit itself: a pixel format gave 1e9 nm back as 1e9 nm + 1 ulp, which the
# reader accepts — what a writer accepted, its reader accepts)
_coordinate = st.floats(min_value=-MAX_COORDINATE_NM, max_value=MAX_COORDINATE_NM, width=64)
_ints = st.integers(min_value=-(2 ** 53) + 1, max_value=2 ** 53 - 1)


@st.composite
def tables(draw):
    n = draw(st.integers(0, 12))
    cols = {"x": draw(st.lists(_coordinate, min_size=n, max_size=n)),
            "y": draw(st.lists(_coordinate, min_size=n, max_size=n))}
    if draw(st.booleans()):
        cols["z"] = draw(st.lists(_coordinate, min_size=n, max_size=n))
    if draw(st.booleans()):
        cols["frame"] = draw(st.lists(st.integers(0, 2 ** 40), min_size=n, max_size=n))
    units = {}
    for name in draw(st.lists(_names, max_size=4, unique=True)):
        if draw(st.booleans()):
            cols[name] = np.array(draw(st.lists(_finite, min_size=n, max_size=n)), dtype=float)
            units[name] = draw(st.sampled_from(["nm", "photon", "a.u.", "µs"]))
        else:
            cols[name] = np.array(draw(st.lists(_ints, min_size=n, max_size=n)), dtype=np.int64)
    return make_table({k: (np.asarray(v, dtype=float) if k in ("x", "y", "z") else v)
                       for k, v in cols.items()}, units=units)


@pytest.mark.parametrize("ext", [".parquet", ".arrow", ".smlm"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables())
def test_property_lossless_round_trip(tmp_path, ext, table):
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    out = write(table, tmp_path / f"prop{ext}")
    back = read(out)
    assert_same_table(table, back)


def test_picasso_refuses_coordinates_too_large_for_its_pixels(tmp_path):
    """Within 1 m but not storable in pixels of 1e-300 nm (1e9 nm is 1e309 px, beyond
    float64): refused at write time, nothing left behind."""
    table = make_table({"x": [1.0, MAX_COORDINATE_NM], "y": [0.0, 0.0]})
    with np.errstate(over="ignore"), pytest.raises(FormatError) as err:
        write(table, tmp_path / "p.hdf5", pixel_size_nm=1e-300)
    assert "column 'x' holds 1 value(s) too large to store in pixels of 1e-300 nm" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables(), px=st.floats(1.0, 500.0))
def test_property_picasso_round_trip(tmp_path, table, px):
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    t1 = read(write(table, tmp_path / "p.hdf5", pixel_size_nm=px))
    # nm -> px -> nm within rounding, all columns kept with their units and names
    assert set(table.column_names) <= set(t1.column_names)
    for name in table.column_names:
        a = table.column(name).to_numpy(zero_copy_only=False)
        b = t1.column(name).to_numpy(zero_copy_only=False)
        if name in ("x", "y"):
            # relative float64 rounding; subnormal nm values (< 1e-300 nm) only absolutely
            np.testing.assert_allclose(b, a, rtol=4 * np.finfo(float).eps, atol=1e-300)
        else:
            np.testing.assert_array_equal(a, b)
        assert field_meta(table.schema.field(name)).get(b"unit") == \
            field_meta(t1.schema.field(name)).get(b"unit")
    # and a Picasso-written file then round-trips bit for bit
    t2 = read(write(t1, tmp_path / "q.hdf5"))
    assert_same_table(t1, t2)
    assert math.isclose(px, float(__import__("smlmspine").schema.metadata(t2)["pixel_size_nm"]))


def test_limit_survives_a_pixel_round_trip(tmp_path):
    """1e9 nm at px = 159 nm is written, and read back (1 ulp over) without a refusal."""
    t = make_table({"x": [0.0, 1.0], "y": [MAX_COORDINATE_NM, 1.0], "frame": [0, 1]})
    out = write(t, tmp_path / "lim.hdf5", pixel_size_nm=159.0)
    back = read(out)
    assert back.column("y").to_pylist()[0] == pytest.approx(MAX_COORDINATE_NM, rel=1e-15)
