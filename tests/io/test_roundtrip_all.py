"""Every registered writer -> reader pair returns the table it was given (issue #15).

Random tables (hypothesis, fixed-size budget): float64 and float32 inputs, 2D and 3D,
extra columns of several types. The same columns come back, in the same order, with the
same Arrow types, units and values: bit for bit where the format stores nm (Parquet,
Arrow, .smlm), within float64 rounding of ``v / p * p`` where it stores camera pixels
(Picasso x/y and other pixel fields), and of ``v / 1e9 * 1e9`` where it stores metres
(MINFLUX ``.npy``). Two documented exceptions: ThunderSTORM CSV cannot carry types
(float32/int32 come back float64/int64, bit for bit once cast back;
docs/formats/text.md), and MINFLUX ``.npy`` returns the layout's ``iteration`` and
``vld`` too (docs/formats/minflux.md).
"""

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlmspine.io import read, write, writers
from smlmspine.schema import make_table

#: writer name -> extension; a new writer must be added here (checked below).
EXTENSIONS = {"parquet": ".parquet", "arrow": ".arrow", "smlm": ".smlm", "picasso": ".hdf5",
              "csv": ".csv", "minflux": ".npy"}
#: two float64 roundings (divide, multiply): |b - a| <= 2 eps |a|
ROUNDING = 2 * np.finfo(np.float64).eps
PIXEL_SIZE_NM = 107.0

_EXTRA_NAMES = ["score", "quality_a", "n_photons_fit", "sigma_fit", "cell_label", "snr"]
_EXTRA_TYPES = ["float64", "float32", "int64", "int32"]


def test_every_writer_is_covered():
    assert set(EXTENSIONS) == set(writers())


def _values(draw, n, lo, hi, dtype):
    return np.asarray(draw(st.lists(st.floats(lo, hi, allow_nan=False, width=32), min_size=n,
                                    max_size=n)), dtype=dtype)


@st.composite
def tables(draw, *, minflux=False):
    n = draw(st.integers(1, 25))
    in_dtype = draw(st.sampled_from([np.float64, np.float32]))
    cols = {"x": _values(draw, n, -5e4, 5e4, in_dtype), "y": _values(draw, n, -5e4, 5e4, in_dtype)}
    if draw(st.booleans()):
        z = _values(draw, n, -800, 800, in_dtype)
        z[0] = draw(st.floats(1.0, 800.0, width=32))  # a 3D acquisition: some z != 0
        cols["z"] = z
    units = {}
    if minflux:
        cols["time_s"] = np.sort(_values(draw, n, 0, 3600, np.float64))
        cols["track_id"] = np.sort(np.asarray(draw(st.lists(st.integers(0, 50), min_size=n,
                                                            max_size=n)), dtype=np.int64))
        return make_table(cols)
    if draw(st.booleans()):
        cols["frame"] = np.asarray(draw(st.lists(st.integers(0, 10 ** 6), min_size=n,
                                                 max_size=n)), dtype=np.int64)
    if draw(st.booleans()):
        cols["photons"] = _values(draw, n, 0, 1e5, in_dtype)
    if draw(st.booleans()):
        cols["precision_xy"] = _values(draw, n, 0.5, 50, in_dtype)
    for name in draw(st.lists(st.sampled_from(_EXTRA_NAMES), max_size=3, unique=True)):
        kind = draw(st.sampled_from(_EXTRA_TYPES))
        if kind.startswith("float"):
            cols[name] = _values(draw, n, -1e6, 1e6, kind)
            units[name] = draw(st.sampled_from(["nm", "photon", "a.u."]))
        else:
            cols[name] = np.asarray(draw(st.lists(st.integers(-10 ** 6, 10 ** 6), min_size=n,
                                                  max_size=n)), dtype=kind)
    return make_table(cols, units=units)


def _unit(field):
    return (field.metadata or {}).get(b"unit")


def assert_round_trip(a: pa.Table, b: pa.Table, *, inexact=(), rtol=0.0):
    assert b.column_names == a.column_names
    assert b.num_rows == a.num_rows
    for fa in a.schema:
        fb = b.schema.field(fa.name)
        assert fb.type == fa.type, (fa.name, fa.type, fb.type)
        assert _unit(fb) == _unit(fa), fa.name
        va = a.column(fa.name).to_numpy(zero_copy_only=False)
        vb = b.column(fa.name).to_numpy(zero_copy_only=False)
        if fa.name in inexact:
            np.testing.assert_allclose(vb, va, rtol=rtol, atol=0, err_msg=fa.name)
        else:
            np.testing.assert_array_equal(vb, va, err_msg=fa.name)
            if va.dtype.kind == "f":  # bit for bit: -0.0 keeps its sign
                np.testing.assert_array_equal(np.signbit(vb), np.signbit(va), err_msg=fa.name)


_SETTINGS = settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("writer", ["parquet", "arrow", "smlm"])
@_SETTINGS
@given(table=tables())
def test_nm_formats_bit_exact(tmp_path, writer, table):
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    back = read(write(table, d / f"t{EXTENSIONS[writer]}"))
    assert_round_trip(table, back)


def _widened(table: pa.Table) -> pa.Table:
    """The table with float32 -> float64 and int32 -> int64 (what a text file can say)."""
    fields = []
    for f in table.schema:
        t = pa.float64() if pa.types.is_floating(f.type) else \
            pa.int64() if pa.types.is_integer(f.type) else f.type
        fields.append(f.with_type(t))
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


@_SETTINGS
@given(table=tables())
def test_csv_values_bit_exact(tmp_path, table):
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    back = read(write(table, d / "t.csv"))
    # CSV has no types: narrow types come back widened (float32 written in its shortest
    # float32 form, so the widened value is that text, not float64(float32 value)) ...
    assert [f.type for f in back.schema] == [f.type for f in _widened(table).schema]
    # ... and cast back to the written type every value is the one written
    assert_round_trip(table, back.cast(pa.schema([f.with_type(table.schema.field(f.name).type)
                                                  for f in back.schema],
                                                 metadata=back.schema.metadata)))


def test_csv_returns_canonical_types_with_the_values_written(tmp_path):
    """CSV cannot carry column types (decision, docs/formats/text.md): a float32 column
    comes back float64 holding the float32 value's shortest decimal text, an int32 column
    int64; cast back to the type written, every value is bit-identical."""
    f32 = np.array([0.1, 1 / 3, -0.0, 3.0e38, 1.0e-45, 16777216.0, -2.5], np.float32)
    i32 = np.array([0, -1, 2 ** 31 - 1, -2 ** 31, 7, 8, 9], np.int32)
    t = make_table({"x": np.arange(7.0), "y": np.ones(7), "score": f32, "cell_label": i32},
                   units={"score": "a.u."})
    p = write(t, tmp_path / "t.csv")
    rows = [line.split(",") for line in p.read_text().splitlines()[1:]]
    assert [r[2] for r in rows] == ["0.1", "0.33333334", "-0", "3e+38", "1e-45",
                                    "16777216", "-2.5"]
    assert [r[3] for r in rows] == ["0", "-1", "2147483647", "-2147483648", "7", "8", "9"]
    back = read(p)
    assert back.schema.field("score").type == pa.float64()
    assert back.schema.field("cell_label").type == pa.int64()
    np.testing.assert_array_equal(back.column("score").to_numpy(),
                                  [float(v) for v in ("0.1", "0.33333334", "-0", "3e+38",
                                                      "1e-45", "16777216", "-2.5")])
    score = back.column("score").to_numpy().astype(np.float32)
    assert score.view(np.uint32).tolist() == f32.view(np.uint32).tolist()
    assert back.column("cell_label").to_numpy().astype(np.int32).tolist() == i32.tolist()


def test_float32_shortest_text_survives_the_float64_detour():
    """The reader parses a float32 column's text as float64; the cast back to float32
    must not round twice. Checked on 200 000 random float32 bit patterns (all finite
    classes: normal, subnormal, signed zero) written by the same pyarrow CSV writer."""
    import io

    import pyarrow.csv as pcsv

    rng = np.random.default_rng(15)
    v = rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    v = np.concatenate([v[np.isfinite(v)], np.array([-0.0, 1.4e-45, 3.4028235e38], np.float32)])
    buf = io.BytesIO()
    pcsv.write_csv(pa.table({"a": v}), buf, write_options=pcsv.WriteOptions(include_header=False))
    text = buf.getvalue().split()
    # shortest form: at most 9 significant digits (float64 text would need up to 17)
    digits = [t.lstrip(b"-").split(b"e")[0].replace(b".", b"").strip(b"0") for t in text]
    assert max(len(d) for d in digits) <= 9
    back = np.array(text, dtype=np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.uint32), v.view(np.uint32))


@_SETTINGS
@given(table=tables())
def test_picasso_within_pixel_rounding(tmp_path, table):
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    back = read(write(table, d / "t.hdf5", pixel_size_nm=PIXEL_SIZE_NM))
    assert_round_trip(table, back, inexact=("x", "y", "precision_xy"), rtol=ROUNDING)
    assert sorted(p.name for p in d.iterdir()) == ["t.hdf5", "t.yaml"]


@_SETTINGS
@given(table=tables(minflux=True))
def test_minflux_npy_within_metre_rounding(tmp_path, table):
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    back = read(write(table, d / "t.npy"))
    # the layout always carries the iteration index and the valid flag: the reader
    # returns them (iteration = n_iterations - 1, vld true); nothing else is added
    assert back.column_names == table.column_names + ["iteration", "vld"]
    assert back.column("iteration").to_pylist() == [4] * table.num_rows
    assert all(back.column("vld").to_pylist())
    assert_round_trip(table, back.drop_columns(["iteration", "vld"]), inexact=("x", "y", "z"),
                      rtol=ROUNDING)


def test_minflux_quality_columns_round_trip_and_others_refused(tmp_path):
    from smlmspine.errors import FormatError

    rng = np.random.default_rng(5)
    n = 12
    t = make_table({"x": rng.uniform(-1e4, 1e4, n), "y": rng.uniform(-1e4, 1e4, n),
                    "z": rng.uniform(-500, 500, n), "time_s": np.arange(n) * 0.01,
                    "track_id": np.repeat([2, 5, 9], 4), "efo": rng.uniform(1e4, 1e5, n),
                    "efc": rng.uniform(1e3, 1e4, n), "cfr": rng.uniform(0.1, 0.9, n),
                    "fbg": rng.uniform(100, 900, n), "lnc_x": rng.uniform(-1e4, 1e4, n)})
    back = read(write(t, tmp_path / "q.npy"))
    for name in ("efo", "efc", "cfr", "fbg", "time_s", "track_id"):
        np.testing.assert_array_equal(back.column(name).to_numpy(), t.column(name).to_numpy(),
                                      err_msg=name)
    np.testing.assert_allclose(back.column("lnc_x").to_numpy(), t.column("lnc_x").to_numpy(),
                               rtol=ROUNDING)
    assert set(back.column_names) == set(t.column_names) | {"iteration", "vld", "lnc_y",
                                                            "lnc_z"}
    # the other components of a vector written from one are zeros (docs/formats/minflux.md)
    assert back.column("lnc_y").to_pylist() == [0.0] * n
    assert back.column("lnc_z").to_pylist() == [0.0] * n
    with pytest.raises(FormatError, match=r"s\.npy: a MINFLUX \.npy cannot store column\(s\) "
                                          r"\['score'\]"):
        write(t.append_column("score", pa.array(np.ones(n))), tmp_path / "s.npy")
    assert not (tmp_path / "s.npy").exists()


def test_csv_integral_float_column_keeps_negative_zero(tmp_path):
    """An all-integer float column is written as ``1.0`` (so it reads back as floats);
    -0.0 is written ``-0.0``, not ``0.0`` (the int64 detour used to drop the sign)."""
    t = make_table({"x": [1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0],
                    "score": np.array([-0.0, 0.0, -4.0], np.float32)})
    p = write(t, tmp_path / "z.csv")
    assert [line.split(",")[2] for line in p.read_text().splitlines()[1:]] == \
        ["-0.0", "0.0", "-4.0"]
    back = read(p).column("score").to_numpy()
    assert np.signbit(back).tolist() == [True, False, True]
