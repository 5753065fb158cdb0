"""Negative frames are refused in one place, the registry's read path (issue #15).

Frames count from 0 (rapidSTORM, Picasso, SMAP) or 1 (ThunderSTORM, ZEN). The text readers
name the line of the first negative frame (tests/io/test_text_wild.py); every other reader
inherits the registry's check, which names the file, the column and the first table row.
"""

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import scipy.io
import yaml

from smlmspine.errors import FormatError
from smlmspine.io import _registry, read, write
from smlmspine.schema import first_negative_frame, make_table

FRAMES = np.array([0, 1, 2, 5, 9, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, -3, 22, -1])
N = FRAMES.size  # first negative at row 17, two negative rows
MESSAGE = (r"frame must be >= 0 \(frames count from 0 or 1\); found -3 at row 17 "
           r"\(rows count from 0; 2 negative rows\)")


def _xy(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2e4, N), rng.uniform(0, 2e4, N)


def _parquet(path):
    x, y = _xy()
    pq.write_table(make_table({"x": x, "y": y, "frame": FRAMES}), path)
    return path, "frame"


def _arrow(path):
    x, y = _xy()
    feather.write_feather(make_table({"x": x, "y": y, "frame": FRAMES}), path)
    return path, "frame"


def _foreign_parquet(path):
    x, y = _xy()
    nm = {"unit": "nm"}
    schema = pa.schema([pa.field("x", pa.float64(), metadata=nm),
                        pa.field("y", pa.float64(), metadata=nm),
                        pa.field("frame", pa.int32())])
    pq.write_table(pa.table([x, y, FRAMES.astype(np.int32)], schema=schema), path)
    return path, "frame"


def _picasso(path):
    x, y = _xy()
    locs = np.zeros(N, dtype=[("frame", "<i4"), ("x", "<f4"), ("y", "<f4"),
                              ("photons", "<f4")])
    locs["frame"], locs["x"], locs["y"], locs["photons"] = FRAMES, x / 100, y / 100, 1000.0
    with h5py.File(path, "w") as f:
        f.create_dataset("locs", data=locs)
    path.with_suffix(".yaml").write_text(yaml.safe_dump({"Pixelsize": 100.0}))
    return path, "frame"


def _smap(path):
    x, y = _xy()
    loc = {"xnm": x, "ynm": y, "frame": FRAMES.astype(float), "phot": np.full(N, 900.0)}
    scipy.io.savemat(path, {"saveloc": {"loc": {k: v.reshape(-1, 1) for k, v in loc.items()}}})
    return path, "frame"


def _smap_v73(path):
    from test_binary_smap import write_v73

    x, y = _xy()
    write_v73(path, {"xnm": x, "ynm": y, "frame": FRAMES.astype(float),
                     "phot": np.full(N, 900.0)})
    return path, "frame"


def _decode(path):
    from test_binary_decode import write_decode

    write_decode(path, n=N)
    with h5py.File(path, "r+") as f:
        f["data/frame_ix"][...] = FRAMES
    return path, "frame_ix"


def _smlm(path):
    import json
    import zipfile

    x, y = _xy()
    rec = np.empty(N, dtype=[("frame", "<i4"), ("x", "<f4"), ("y", "<f4")])
    rec["frame"], rec["x"], rec["y"] = FRAMES, x, y
    fmt = {"name": "smlm-table(binary)", "type": "table", "mode": "binary", "extension": ".bin",
           "columns": 3, "headers": ["frame", "x", "y"], "dtype": ["int32", "float32", "float32"],
           "shape": [1, 1, 1], "units": ["frame", "nm", "nm"]}
    manifest = {"format_version": "0.2", "formats": {"smlm-table(binary)": fmt}, "name": "t",
                "files": [{"name": "t.bin", "type": "table", "format": "smlm-table(binary)",
                           "channel": "default", "rows": N, "offset": {}}]}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("t.bin", rec.tobytes())
        zf.writestr("manifest.json", json.dumps(manifest))
    return path, "frame"


@pytest.mark.parametrize("make,name", [(_parquet, "a.parquet"), (_arrow, "a.arrow"),
                                       (_foreign_parquet, "f.parquet"), (_picasso, "p.hdf5"),
                                       (_smap, "s_sml.mat"), (_smap_v73, "s73_sml.mat"),
                                       (_decode, "d.h5"), (_smlm, "a.smlm")])
def test_binary_readers_refuse_negative_frames(tmp_path, make, name):
    path, column = make(tmp_path / name)
    with pytest.raises(FormatError, match=MESSAGE) as exc:
        read(path)
    assert str(exc.value).startswith(f"{path}, column '{column}': ")
    assert exc.value.path == path and exc.value.column == column


def test_every_reader_inherits_the_check(tmp_path, monkeypatch):
    """A reader registered without any frame check of its own still refuses them."""
    x, y = _xy()

    def read_dummy(path, *, pixel_size_nm=None):
        return make_table({"x": x, "y": y, "frame": FRAMES}, original_names={"frame": "Frame#"})

    monkeypatch.setitem(_registry._READERS, "dummy", _registry.Reader(
        "dummy", (".dum",), read_dummy, lambda p, h: False, "test reader"))
    p = tmp_path / "a.dum"
    p.write_text("anything")
    with pytest.raises(FormatError, match=MESSAGE) as exc:
        read(p, format="dummy")
    assert exc.value.column == "Frame#"  # the name in the file


def test_frames_from_zero_are_accepted(tmp_path):
    x, y = _xy()
    frames = np.abs(FRAMES)
    p = write(make_table({"x": x, "y": y, "frame": frames}), tmp_path / "ok.parquet")
    np.testing.assert_array_equal(read(p).column("frame").to_numpy(), frames)


@pytest.mark.parametrize("ext", [".parquet", ".arrow", ".smlm", ".csv", ".hdf5"])
def test_writers_refuse_negative_frames(tmp_path, ext):
    """Never write a file the readers would refuse; nothing is left behind."""
    x, y = _xy()
    t = make_table({"x": x, "y": y, "frame": FRAMES})
    with pytest.raises(FormatError, match=MESSAGE):
        write(t, tmp_path / f"o{ext}", pixel_size_nm=100.0) if ext == ".hdf5" else \
            write(t, tmp_path / f"o{ext}")
    assert list(tmp_path.iterdir()) == []


def test_first_negative_frame():
    t = make_table({"x": [0.0] * 4, "y": [0.0] * 4, "frame": [3, 0, -7, -7]})
    assert first_negative_frame(t) == (2, -7, 2)
    assert first_negative_frame(make_table({"x": [0.0], "y": [0.0]})) is None
    empty = make_table({"x": np.zeros(0), "y": np.zeros(0), "frame": np.zeros(0, np.int64)})
    assert first_negative_frame(empty) is None
