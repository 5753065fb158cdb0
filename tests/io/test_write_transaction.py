"""A Picasso write is a two-file transaction (issue #15): the .hdf5 and its .yaml sidecar
are both written to temporary files and renamed at the end; if a rename fails, neither new
file stays and a pre-existing pair is left exactly as it was."""

import os

import numpy as np
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import _registry, read, write
from smlmspine.schema import make_table


def _table(seed, n=20):
    rng = np.random.default_rng(seed)
    return make_table({"x": rng.uniform(0, 2e4, n), "y": rng.uniform(0, 2e4, n),
                       "frame": np.arange(n), "photons": rng.uniform(500, 5000, n)})


def _fail_on_call(monkeypatch, k):
    real = os.replace
    calls = []

    def replace(src, dst, *args, **kwargs):
        calls.append((os.fspath(src), os.fspath(dst)))
        if len(calls) == k:
            raise OSError(28, "No space left on device (test)")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
@pytest.mark.parametrize("k", [1, 2])
def test_failed_rename_leaves_no_new_file_and_old_pair_untouched(tmp_path, monkeypatch,
                                                                 existing, k):
    h5, yml = tmp_path / "locs.hdf5", tmp_path / "locs.yaml"
    if existing:
        write(_table(1), h5, pixel_size_nm=100.0)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = _fail_on_call(monkeypatch, k)
    with pytest.raises(FormatError, match=r"locs\.hdf5: could not be written as picasso: "
                                          r"OSError.*No space left"):
        write(_table(2), h5, pixel_size_nm=107.0)
    monkeypatch.undo()
    # the sidecar is renamed first, the main file last
    assert calls[0][1] == str(yml)
    if k == 2:
        assert calls[1][1] == str(h5)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no temporary, backup or new file; old bytes unchanged
    if existing:
        t = read(h5)
        np.testing.assert_allclose(t.column("x").to_numpy(), _table(1).column("x").to_numpy(),
                                   rtol=1e-6)


def test_successful_overwrite_replaces_both_and_leaves_nothing_else(tmp_path):
    h5 = tmp_path / "locs.hdf5"
    write(_table(1), h5, pixel_size_nm=100.0)
    write(_table(2), h5, pixel_size_nm=107.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locs.hdf5", "locs.yaml"]
    assert "Pixelsize: 107.0" in (tmp_path / "locs.yaml").read_text()
    np.testing.assert_allclose(read(h5).column("x").to_numpy(),
                               _table(2).column("x").to_numpy(), rtol=1e-6)


def test_writer_failure_before_commit_removes_both_temporaries(tmp_path, monkeypatch):
    yml = tmp_path / "locs.yaml"
    yml.write_text("Pixelsize: 50\n")
    import yaml

    def boom(*a, **k):
        raise RuntimeError("disk gone (test)")

    monkeypatch.setattr(yaml, "safe_dump_all", boom)
    with pytest.raises(FormatError, match="RuntimeError: disk gone"):
        write(_table(3), tmp_path / "locs.hdf5", pixel_size_nm=100.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locs.yaml"]
    assert yml.read_text() == "Pixelsize: 50\n"


def test_commit_files_restores_a_previous_file(tmp_path, monkeypatch):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    ta, tb = _registry.temporary_beside(a), _registry.temporary_beside(b)
    ta.write_text("new a")
    tb.write_text("new b")
    _fail_on_call(monkeypatch, 2)
    with pytest.raises(OSError, match="No space"):
        _registry.commit_files([(ta, a), (tb, b)])
    monkeypatch.undo()
    assert a.read_text() == "old a" and not b.exists()
    # the first temporary became a.txt and was taken back; the caller removes the other
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.txt", tb.name])


def test_unwritable_folder_is_one_format_error(tmp_path, monkeypatch):
    """The temporary file is created inside the error handling: a refused mkstemp is a
    FormatError naming the target, not a traceback (tests run as root, so the refusal is
    simulated)."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied (test)")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(FormatError, match=r"locs\.parquet: could not be written as parquet: "
                                          r"PermissionError"):
        write(_table(4), tmp_path / "locs.parquet")
    assert list(tmp_path.iterdir()) == []
