"""Parquet and Arrow IPC / Feather: lossless storage and foreign files with units."""

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read, write
from smlmspine.schema import make_table, metadata, unit_of, with_history


def rich_table():
    t = make_table({"x": [1.5, -2.25, 1e9], "y": [0.0, 3.0, -1e-9], "z": [10.0, 20.0, 30.0],
                    "frame": [0, 5, 2 ** 40], "photons": [100.0, 200.0, 300.0],
                    "cluster_id": [-1, 0, 1], "Sigma [nm]": [1.0, 2.0, 3.0],
                    "label": ["a", "b", "c"], "flag": [True, False, True]},
                   units={"Sigma [nm]": "nm"}, source="in.csv", format="thunderstorm",
                   pixel_size_nm=None)
    return with_history(t, "test.step", {"eps_nm": 40.0})


@pytest.mark.parametrize("ext,fmt", [(".parquet", "parquet"), (".pq", "parquet"),
                                     (".arrow", "arrow"), (".feather", "arrow"), (".ipc", "arrow")])
def test_lossless_round_trip(tmp_path, ext, fmt):
    t = rich_table()
    p = write(t, tmp_path / f"t{ext}")
    assert detect_format(p) == fmt
    back = read(p)
    assert back.schema.remove_metadata() == t.schema.remove_metadata()  # names, types, field metadata
    for f in t.schema:
        assert back.schema.field(f.name).metadata == f.metadata
    assert back.select(t.column_names).equals(t)
    meta = metadata(back)
    assert meta["source"] == "in.csv" and meta["format"] == "thunderstorm"
    assert [h["step"] for h in meta["history"]] == ["test.step", "io.write"]
    assert unit_of(back, "sigma") == "nm"


def test_foreign_parquet_needs_units(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [3.0, 4.0], "intensity": [5.0, 6.0]}),
                   tmp_path / "f.parquet")
    with pytest.raises(FormatError, match=r"f\.parquet.*'x'.*no unit.*coordinate_unit"):
        read(tmp_path / "f.parquet")
    t = read(tmp_path / "f.parquet", coordinate_unit="um")
    assert t.column("x").to_pylist() == [1000.0, 2000.0]
    assert unit_of(t, "x") == "nm" and metadata(t)["format"] == "parquet"
    with pytest.raises(FormatError, match="unit 'parsec'.*not a length unit"):
        read(tmp_path / "f.parquet", coordinate_unit="parsec")


def test_foreign_units_in_field_metadata(tmp_path):
    schema = pa.schema([pa.field("x", pa.float32(), metadata={"unit": "um"}),
                        pa.field("y", pa.float32(), metadata={"unit": "um"}),
                        pa.field("precision_xy", pa.float64(), metadata={"unit": "nm"}),
                        pa.field("bright", pa.float64(), metadata={"unit": "photon"})])
    tbl = pa.table([pa.array([1.0, 2.0], pa.float32()), pa.array([0.5, 0.25], pa.float32()),
                    pa.array([7.0, 8.0]), pa.array([1.0, 2.0])], schema=schema)
    with ipc.new_file(str(tmp_path / "f.arrow"), tbl.schema) as w:
        w.write_table(tbl)
    t = read(tmp_path / "f.arrow")
    assert t.column("x").type == pa.float64()  # never downcast; float32 input upcast
    assert t.column("y").to_pylist() == [500.0, 250.0]
    assert t.column("precision_xy").to_pylist() == [7.0, 8.0]
    assert unit_of(t, "bright") == "photon"


def test_foreign_missing_coordinates_and_stream_format(tmp_path):
    pq.write_table(pa.table({"a": [1.0]}), tmp_path / "nox.parquet")
    with pytest.raises(FormatError, match=r"nox\.parquet: missing coordinate column\(s\) \['x', 'y'\]"):
        read(tmp_path / "nox.parquet")
    t = rich_table().drop(["label"])
    with ipc.new_stream(str(tmp_path / "s.arrows"), t.schema) as w:
        w.write_table(t)
    assert detect_format(tmp_path / "s.arrows") == "arrow"
    assert read(tmp_path / "s.arrows").equals(t)


def test_nan_extra_columns_survive(tmp_path):
    t = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0], "q": [np.nan, np.inf]})
    back = read(write(t, tmp_path / "n.parquet"))
    assert np.isnan(back.column("q")[0].as_py()) and back.column("q")[1].as_py() == np.inf
