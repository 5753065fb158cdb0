"""The parallel chunked CSV path gives exactly the streaming path's table and errors."""

import numpy as np
import pytest

import smlmspine.io._text as text
from smlmspine import read
from smlmspine.errors import FormatError


def _write(path, n=5000, bad_row=None):
    rng = np.random.default_rng(0)
    lines = ['"id","frame","x [nm]","y [nm]","z [nm]","intensity [photon]"']
    for i in range(n):
        x = "abc" if i == bad_row else f"{rng.uniform(0, 4e4):.6f}"
        lines.append(f"{i},{i // 10},{x},{rng.uniform(0, 4e4):.6f},{rng.normal(0, 300):.6f},"
                     f"{rng.uniform(100, 5000):.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parallel_chunks_equal_streaming(tmp_path, monkeypatch):
    p = _write(tmp_path / "locs.csv")
    streamed = read(p)
    monkeypatch.setattr(text, "_CHUNK_BYTES", 4096)   # ~100 chunks on the thread pool
    chunked = read(p)
    assert chunked.num_rows == streamed.num_rows == 5000
    for name in streamed.column_names:
        assert chunked.column(name).to_pylist() == streamed.column(name).to_pylist(), name


def test_parallel_chunks_report_the_bad_line(tmp_path, monkeypatch):
    p = _write(tmp_path / "bad.csv", bad_row=4321)
    monkeypatch.setattr(text, "_CHUNK_BYTES", 4096)
    with pytest.raises(FormatError, match=r"bad\.csv, line 4323, column 'x \[nm\]'"):
        read(p)
