"""The .smlm ZIP format (manifest.json + packed binary records), written from the specification."""

import json
import zipfile

import numpy as np
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read
from smlmspine.schema import metadata, unit_of


def write_smlm_file(path, columns, *, units=None, offset=None, files=None, mode="binary",
                    manifest_extra=None, truncate=0):
    """columns: list of (header, dtype, values) for one table (or files=[...] of such lists)."""
    tables = files or [(columns, "default")]
    headers = [h for h, _, _ in tables[0][0]]
    dtypes = [dt for _, dt, _ in tables[0][0]]
    fmt = {"name": "smlm-table(binary)", "type": "table", "mode": mode, "extension": ".bin",
           "columns": len(headers), "headers": headers, "dtype": dtypes,
           "shape": [1] * len(headers),
           "units": units or ["nm" if h in "xyz" else ("frame" if h == "frame" else "1")
                              for h in headers]}
    manifest = {"format_version": "0.2", "formats": {"smlm-table(binary)": fmt}, "files": [],
                "name": "test", **(manifest_extra or {})}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, (cols, channel) in enumerate(tables):
            rec = np.empty(len(cols[0][2]), dtype=[(h, "<" + np.dtype(dt).str[1:]) for h, dt, _ in cols])
            for h, _, v in cols:
                rec[h] = v
            data = rec.tobytes()
            if truncate:
                data = data[:-truncate]
            zf.writestr(f"table{i}.bin", data)
            manifest["files"].append({"name": f"table{i}.bin", "type": "table",
                                      "format": "smlm-table(binary)", "channel": channel,
                                      "rows": len(rec), "offset": offset or {}})
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def sample(n=25, seed=3, z=True):
    rng = np.random.default_rng(seed)
    cols = [("frame", "uint32", np.arange(n)), ("x", "float32", rng.uniform(0, 1e4, n)),
            ("y", "float32", rng.uniform(0, 1e4, n))]
    if z:
        cols.append(("z", "float32", rng.uniform(-300, 300, n)))
    cols += [("intensity", "float32", rng.uniform(100, 1000, n)),
             ("x_precision", "float32", rng.uniform(5, 15, n))]
    return cols


@pytest.mark.parametrize("z", [False, True], ids=["2D", "3D"])
def test_values(tmp_path, z):
    cols = sample(z=z)
    p = write_smlm_file(tmp_path / "a.smlm", cols)
    assert detect_format(p) == "smlm"
    t = read(p)
    vals = {h: v for h, _, v in cols}
    np.testing.assert_array_equal(t.column("x").to_numpy(), vals["x"].astype("f4"))
    np.testing.assert_array_equal(t.column("frame").to_numpy(), vals["frame"])
    np.testing.assert_array_equal(t.column("photons").to_numpy(), vals["intensity"].astype("f4"))
    np.testing.assert_array_equal(t.column("x_precision").to_numpy(), vals["x_precision"].astype("f4"))
    assert unit_of(t, "x_precision") == "nm"
    assert ("z" in t.column_names) == z


def test_units_and_offsets(tmp_path):
    cols = [("x", "float64", np.array([1.0, 2.0])), ("y", "float64", np.array([0.5, 0.25])),
            ("time", "float32", np.array([10.0, 20.0]))]
    p = write_smlm_file(tmp_path / "a.smlm", cols, units=["um", "um", "ms"],
                        offset={"x": 3.0})
    t = read(p)
    assert t.column("x").to_pylist() == [4000.0, 5000.0]
    assert t.column("y").to_pylist() == [500.0, 250.0]
    assert t.column("time_s").to_pylist() == pytest.approx([0.01, 0.02])
    p2 = write_smlm_file(tmp_path / "b.smlm", cols, units=["pixel", "pixel", "ms"])
    with pytest.raises(FormatError, match=r"b\.smlm.*unit 'pixel', not a length unit"):
        read(p2)


def test_multichannel_files_concatenated(tmp_path):
    a = [("x", "float32", np.array([1.0, 2.0])), ("y", "float32", np.array([1.0, 2.0]))]
    b = [("x", "float32", np.array([3.0])), ("y", "float32", np.array([4.0]))]
    p = write_smlm_file(tmp_path / "m.smlm", None, files=[(a, "alexa647"), (b, "cf568")])
    t = read(p)
    assert t.column("x").to_pylist() == [1.0, 2.0, 3.0]
    assert t.column("channel").to_pylist() == [0, 0, 1]
    assert metadata(t)["smlm_channels"] == ["alexa647", "cf568"]


def test_bad_archives(tmp_path):
    p = write_smlm_file(tmp_path / "t.smlm", sample(), truncate=3)
    with pytest.raises(FormatError, match=r"t\.smlm.*bytes, expected rows x record size"):
        read(p)
    p = write_smlm_file(tmp_path / "text.smlm", sample(), mode="text")
    with pytest.raises(FormatError, match="only binary tables"):
        read(p)
    p = tmp_path / "nomanifest.smlm"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("table.bin", b"\x00" * 8)
    with pytest.raises(FormatError, match="nomanifest.smlm"):
        read(p)
    with pytest.raises(FormatError, match="no manifest.json"):
        read(p, format="smlm")
    p = tmp_path / "badjson.smlm"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("manifest.json", "{not json")
    with pytest.raises(FormatError, match="badjson.smlm.*not valid UTF-8 JSON"):
        read(p)
    p = write_smlm_file(tmp_path / "noy.smlm", [("x", "float32", np.ones(2))])
    with pytest.raises(FormatError, match=r"noy\.smlm.*'y' is missing"):
        read(p)


def test_writer_refuses_header_clash(tmp_path):
    from smlmspine.io import write
    from smlmspine.schema import make_table

    t = make_table({"x": [1.0], "y": [2.0], "photons": [3.0], "intensity": [4.0]})
    with pytest.raises(FormatError, match="both be the .smlm header 'intensity'"):
        write(t, tmp_path / "a.smlm")
    assert list(tmp_path.iterdir()) == []
