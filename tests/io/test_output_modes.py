"""Written files get the permissions a plain ``open()`` would give them (0o666 masked
by the umask), not the 0o600 of the temporary file they are written to."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from smlmspine.cli import main
from smlmspine.io import atomic_output, write
from smlmspine.io._registry import current_umask
from smlmspine.schema import make_table


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _plain_open_mode(tmp_path):
    p = tmp_path / "plain.txt"
    with open(p, "w") as fh:
        fh.write("x")
    mode = _mode(p)
    p.unlink()
    return mode


def _table():
    return make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0, 1],
                       "photons": [100.0, 200.0]})


def test_current_umask_reads_without_changing(umask):
    assert current_umask() == umask
    assert current_umask() == umask          # reading did not change it
    assert os.umask(umask) == umask


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".arrow"])
def test_io_write_gives_umask_mode(tmp_path, umask, ext):
    out = write(_table(), tmp_path / f"locs{ext}")
    assert _mode(out) == 0o666 & ~umask == _plain_open_mode(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]   # no temporary left


def test_picasso_writer_and_sidecar_get_umask_mode(tmp_path, umask):
    out = write(_table(), tmp_path / "locs.hdf5", pixel_size_nm=100.0)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2  # the HDF5 file and its YAML sidecar
    for f in files:
        assert _mode(f) == 0o666 & ~umask, f.name
    assert out in files


def test_cli_convert_gives_umask_mode(tmp_path, umask, capsys):
    src = write(_table(), tmp_path / "in.parquet")
    for ext in (".csv", ".parquet"):
        dst = tmp_path / f"out{ext}"
        assert main(["convert", str(src), str(dst)]) == 0, capsys.readouterr().err
        assert _mode(dst) == 0o666 & ~umask
        assert main(["info", str(dst)]) == 0
    capsys.readouterr()


def test_atomic_output_when_the_writer_replaces_the_temporary(tmp_path, umask):
    """A writer that deletes and recreates its output path still ends with umask mode."""
    target = tmp_path / "a.bin"
    with atomic_output(target) as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"ok")
        os.close(fd)
    assert target.read_bytes() == b"ok" and _mode(target) == 0o666 & ~umask


def test_atomic_output_failure_leaves_nothing(tmp_path, umask):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "b.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_current_umask_is_thread_safe_without_proc(monkeypatch, umask):
    """Without /proc the umask is swapped under a lock; concurrent readers all see it
    and the process umask is unchanged afterwards."""
    import builtins

    real_open = builtins.open

    def no_proc(path, *a, **k):
        if str(path) == "/proc/self/status":
            raise OSError("no /proc")
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_proc)
    seen = []
    threads = [threading.Thread(target=lambda: seen.extend(current_umask() for _ in range(200)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == {umask} and len(seen) == 800
    monkeypatch.undo()
    assert current_umask() == umask
