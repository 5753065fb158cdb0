"""The format registry: detection by content, overrides, options, atomic writes."""

import numpy as np
import pyarrow as pa
import pytest

from smlmspine.errors import FormatError, SchemaError
from smlmspine.io import _registry, atomic_output, detect_format, read, readers, write, writers
from smlmspine.schema import history, make_table, metadata

from test_binary_picasso import make_locs, write_picasso_file


def small():
    return make_table({"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0], "frame": [0, 1, 2]},
                      pixel_size_nm=100.0)


def test_binary_formats_registered():
    rs, ws = readers(), writers()
    for name, ext in [("picasso", ".hdf5"), ("decode", ".h5"), ("smap", "_sml.mat"),
                      ("smlm", ".smlm"), ("parquet", ".parquet"), ("arrow", ".feather")]:
        assert ext in rs[name].extensions, name
        assert rs[name].description
    for name, ext in [("picasso", ".hdf5"), ("smlm", ".smlm"), ("parquet", ".parquet"),
                      ("arrow", ".arrow")]:
        assert ext in ws[name].extensions, name
    assert "pixel_size_nm" in ws["picasso"].options
    prios = [r.priority for r in rs.values()]
    assert prios == sorted(prios)


def test_content_beats_extension(tmp_path):
    p = write_picasso_file(tmp_path / "locs.parquet", make_locs(4), [{"Pixelsize": 100}])
    # the sidecar is named after the stem, whatever the extension
    assert detect_format(p) == "picasso"
    q = write(small(), tmp_path / "t.parquet")
    renamed = q.rename(tmp_path / "t.hdf5")
    assert detect_format(renamed) == "parquet"
    assert read(renamed).num_rows == 3


def test_format_override(tmp_path):
    p = write(small(), tmp_path / "t.parquet")
    assert read(p, format="parquet").num_rows == 3
    with pytest.raises(FormatError, match=r"t\.parquet.*HDF5"):
        read(p, format="picasso")
    with pytest.raises(FormatError, match=r"unknown format 'nope'; known: .*picasso"):
        read(p, format="nope")
    with pytest.raises(FormatError, match=r"does not take option\(s\) \['mapping'\]"):
        read(p, mapping={"x": "a"})


def test_write_errors(tmp_path):
    t = small()
    with pytest.raises(FormatError, match=r"out\.xyz.*extension '\.xyz'"):
        write(t, tmp_path / "out.xyz")
    with pytest.raises(FormatError, match="no writer 'nope'"):
        write(t, tmp_path / "out.parquet", format="nope")
    with pytest.raises(FormatError, match=r"writer 'parquet' does not take option\(s\) \['pixel_size_nm'\]"):
        write(t, tmp_path / "out.parquet", pixel_size_nm=100.0)
    with pytest.raises(FormatError, match="output folder .* does not exist"):
        write(t, tmp_path / "missing" / "out.parquet")
    with pytest.raises(SchemaError, match="'x' is missing"):
        write(pa.table({"y": [1.0]}), tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_failing_writer_leaves_nothing(tmp_path, monkeypatch):
    def broken(table, path, *, final_path=None):
        path.write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(_registry._WRITERS, "broken",
                        _registry.Writer("broken", (".brk",), broken, "test"))
    with pytest.raises(FormatError, match=r"out\.brk: could not be written as broken: "
                                          "RuntimeError: disk on fire"):
        write(small(), tmp_path / "out.brk")
    assert list(tmp_path.iterdir()) == []
    # an existing file is not clobbered by a failed write
    (tmp_path / "out.brk").write_bytes(b"old")
    with pytest.raises(FormatError):
        write(small(), tmp_path / "out.brk")
    assert (tmp_path / "out.brk").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.brk"]


def test_atomic_output_on_error(tmp_path):
    with pytest.raises(ValueError):
        with atomic_output(tmp_path / "a.txt") as tmp:
            tmp.write_text("partial")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_write_records_history_and_returns_path(tmp_path):
    out = write(small(), tmp_path / "t.arrow")
    assert out == tmp_path / "t.arrow"
    t = read(out)
    assert history(t)[-1]["step"] == "io.write"
    assert history(t)[-1]["params"]["format"] == "arrow"
    assert metadata(t)["pixel_size_nm"] == 100.0


def test_read_does_not_mutate_and_validates(tmp_path):
    t = small()
    before = t.schema.metadata.copy()
    write(t, tmp_path / "t.parquet")
    assert t.schema.metadata == before
    bad = make_table({"x": [1.0, np.nan], "y": [0.0, 0.0]})
    write(bad, tmp_path / "nan.parquet")  # writing keeps what it is given...
    with pytest.raises(FormatError, match=r"nan\.parquet.*non-finite"):
        read(tmp_path / "nan.parquet")  # ...reading refuses NaN coordinates
