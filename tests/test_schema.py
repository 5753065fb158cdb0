"""The canonical table: construction, no downcasting, immutability, validation, light import."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from smlmspine.errors import SchemaError
from smlmspine.schema import (COLUMNS, column_specs, coordinates, history, make_table, metadata,
                              ndim, sanitize_name, spec_table, unit_of, validate, with_columns,
                              with_history)


def test_canonical_types_and_units():
    t = make_table({"x": [1, 2], "y": np.array([1.0, 2.0], dtype=np.float32), "z": [0.5, 1.5],
                    "frame": [0.0, 3.0], "channel": np.array([0, 1], dtype=np.int8)})
    for name in t.column_names:
        assert t.schema.field(name).type == COLUMNS[name].type
        assert unit_of(t, name) == COLUMNS[name].unit
    assert t.column("frame").to_pylist() == [0, 3]
    assert t.column_names == ["x", "y", "z", "frame", "channel"]  # canonical order


def test_no_downcast():
    big = np.array([2 ** 62, -(2 ** 62)], dtype=np.int64)
    t = make_table({"x": [0.1 + 1e-17, 1e300], "y": [0.0, 0.0], "counts": big,
                    "w": np.array([1.0000000000000002, 3.0])})
    assert t.column("x").to_pylist() == [0.1 + 1e-17, 1e300]
    assert t.schema.field("counts").type == pa.int64() and t.column("counts").to_pylist() == big.tolist()
    assert t.schema.field("w").type == pa.float64()
    assert t.column("w")[0].as_py() == 1.0000000000000002
    f32 = make_table({"x": np.array([0.1], dtype=np.float32), "y": [0.0], "v": np.array([0.1], np.float32)})
    assert f32.schema.field("x").type == pa.float64()  # coordinates upcast, value exact
    assert f32.column("x")[0].as_py() == float(np.float32(0.1))
    assert f32.schema.field("v").type == pa.float32()  # extras keep their type


@pytest.mark.parametrize("values,match", [
    ([0.5, 1.0], "must hold integers, found non-integer"),
    ([np.nan, 1.0], "must hold integers, found NaN"),
    (np.array([2 ** 63], dtype=np.uint64), "cannot be stored as int64"),
])
def test_integer_columns_refuse_lossy_values(values, match):
    with pytest.raises(SchemaError, match=match):
        make_table({"x": [0.0] * len(values), "y": [0.0] * len(values), "frame": values})


def test_extras_sanitized_with_original_names_and_units():
    t = make_table({"x": [0.0], "y": [0.0], "uncertainty_xy [nm]": [5.0], "X": [1.0],
                    "1st frame": [2], "µ": [3.0], "empty": [None]},
                   units={"uncertainty_xy [nm]": "nm"})
    assert t.column_names == ["x", "y", "uncertainty_xy", "x_2", "_1st_frame", "column", "empty"]
    f = t.schema.field("x_2")
    assert f.metadata[b"original_name"] == b"X"
    assert unit_of(t, "uncertainty_xy") == "nm" and unit_of(t, "x_2") is None
    assert t.schema.field("column").metadata[b"original_name"] == "µ".encode()
    assert t.schema.field("empty").type == pa.float64()


def test_lengths_and_metadata():
    with pytest.raises(SchemaError, match="different lengths"):
        make_table({"x": [0.0, 1.0], "y": [0.0]})
    t = make_table({"x": [0.0], "y": [0.0]}, source="a.csv", format="csv",
                   pixel_size_nm=[100, 110], extra_metadata={"k": {"a": 1}})
    m = metadata(t)
    assert m["schema_version"] == "1" and m["source"] == "a.csv" and m["format"] == "csv"
    assert m["pixel_size_nm"] == [100.0, 110.0] and m["k"] == {"a": 1} and m["history"] == []
    assert metadata(make_table({"x": [0.0], "y": [0.0]}))["pixel_size_nm"] is None


@pytest.mark.parametrize("name,expected", [
    ("uncertainty_xy [nm]", "uncertainty_xy"), ("Position X (nm)", "position_x"),
    ("  ", "column"), ("a--b..c", "a_b_c"), ("9lives", "_9lives"), ("CamelCase", "camelcase"),
    ("intensity [photon]", "intensity"), ("[nm]", "column"),
])
def test_sanitize_name(name, expected):
    assert sanitize_name(name) == expected


def test_sanitize_name_clashes():
    assert sanitize_name("a", taken=["a", "a_2"]) == "a_3"
    assert sanitize_name("X", taken=COLUMNS) == "x_2"


def test_with_columns_and_with_history_do_not_mutate():
    t = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0]}, format="csv")
    schema_before, meta_before = t.schema, dict(t.schema.metadata)
    t2 = with_columns(t, {"cluster_id": np.array([0.0, -1.0]), "score": [0.5, 0.7]},
                      units={"score": "1"})
    assert t2.schema.field("cluster_id").type == pa.int64()
    assert t2.column("cluster_id").to_pylist() == [0, -1] and unit_of(t2, "score") == "1"
    t3 = with_columns(t2, {"x": [5.0, 6.0]})
    assert t3.column("x").to_pylist() == [5.0, 6.0] and t3.column_names == t2.column_names
    assert metadata(t3)["format"] == "csv"
    with pytest.raises(SchemaError, match="has 3 values, the table has 2 rows"):
        with_columns(t, {"score": [1.0, 2.0, 3.0]})
    t4 = with_history(t, "drift.correct", {"bin_frames": np.int64(500), "shift": np.zeros(2)},
                      pixel_size_nm=100.0)
    assert history(t4)[-1] == {"step": "drift.correct", "params": {"bin_frames": 500,
                                                                  "shift": [0.0, 0.0]},
                               "version": history(t4)[-1]["version"]}
    assert metadata(t4)["pixel_size_nm"] == 100.0
    assert len(history(with_history(t4, "b"))) == 2
    assert t.schema.equals(schema_before) and dict(t.schema.metadata) == meta_before
    assert t.column("x").to_pylist() == [0.0, 1.0] and history(t) == []


def test_validate():
    t = make_table({"x": [0.0], "y": [0.0]})
    assert validate(t) is t
    with pytest.raises(SchemaError, match="expected a pyarrow.Table, got dict"):
        validate({"x": [0.0]})
    with pytest.raises(SchemaError, match="column 'y' is missing"):
        validate(pa.table({"x": [0.0]}))
    with pytest.raises(SchemaError, match=r"duplicate column names \['x'\]"):
        validate(pa.Table.from_arrays([pa.array([0.0])] * 3, names=["x", "x", "y"]))
    with pytest.raises(SchemaError, match="column 'x' must be double, found float"):
        validate(pa.table({"x": pa.array([0.0], pa.float32()), "y": [0.0]}))
    with pytest.raises(SchemaError, match="column 'x' must have unit 'nm', found None"):
        validate(pa.table({"x": [0.0], "y": [0.0]}))
    bad = make_table({"x": [0.0, np.inf], "y": [0.0, np.nan]})
    with pytest.raises(SchemaError, match="column 'x' holds 1 non-finite"):
        validate(bad)
    assert validate(bad, require_finite=False) is bad
    broken = t.replace_schema_metadata({**t.schema.metadata, b"smlmspine.history": b"{}"})
    with pytest.raises(SchemaError, match="not a JSON list"):
        validate(broken)
    nulls = make_table({"x": pa.array([0.0, None]), "y": [0.0, 0.0]})
    with pytest.raises(SchemaError, match="non-finite or missing"):
        validate(nulls)


def test_coordinates_and_ndim():
    t2 = make_table({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    t3 = make_table({"x": [1.0], "y": [2.0], "z": [3.0]})
    assert ndim(t2) == 2 and ndim(t3) == 3
    c = coordinates(t2)
    assert c.shape == (2, 2) and c.dtype == np.float64 and c.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert coordinates(t3, dims=2).tolist() == [[1.0, 2.0]]
    assert coordinates(t3).tolist() == [[1.0, 2.0, 3.0]]
    with pytest.raises(SchemaError, match="no 'z' column"):
        coordinates(t2, dims=3)
    with pytest.raises(SchemaError, match="dims must be 2 or 3"):
        coordinates(t2, dims=4)
    empty = make_table({"x": np.empty(0), "y": np.empty(0), "z": np.empty(0)})
    assert coordinates(empty).shape == (0, 3)


def test_spec_table():
    reg = column_specs(("cluster_id", pa.int64(), "1", "cluster label"),
                       ("area_nm2", pa.float64(), "nm^2", "area"))
    t = spec_table(reg, {"cluster_id": [1, 2], "area_nm2": [3, 4]}, metadata={"eps_nm": 40.0})
    assert t.schema.field("area_nm2").type == pa.float64() and unit_of(t, "area_nm2") == "nm^2"
    assert json.loads(t.schema.metadata[b"smlmspine.eps_nm"]) == 40.0
    with pytest.raises(SchemaError, match=r"missing \['area_nm2'\], extra \['other'\]"):
        spec_table(reg, {"cluster_id": [1], "other": [2]})


def _imported_after(code):
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(m for m in ('open3d', 'numba', 'matplotlib')"
                          " if m in sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_smlmspine_stays_light():
    assert _imported_after("import smlmspine, smlmspine.schema, smlmspine.errors") == []


def test_reading_does_not_import_heavy_stacks(tmp_path):
    code = ("import smlmspine, pathlib\n"
            "from smlmspine.io import readers, write, read\n"
            "from smlmspine.schema import make_table\n"
            "readers()\n"
            f"p = pathlib.Path({str(tmp_path)!r}) / 't.parquet'\n"
            "read(write(make_table({'x': [0.0], 'y': [0.0]}), p))\n")
    assert _imported_after(code) == []
