"""Damaged HDF5 / MAT v5 files that hang libhdf5 or crash scipy (issue #15).

Found by the exhaustive single-bit scans of docs/reliability.md: one flipped bit in the
DECODE seed's metadata makes libhdf5 loop forever reading a variable-length attribute
(bytes 2072, 2073, 2096), one in the MINFLUX ``.mat`` seed makes scipy's MAT reader
segfault (byte 297). The tests first show the library really hangs / crashes on these
bytes (in a child process of their own), then that the package refuses each file with
one line (``<file>: damaged HDF5 file: ...``) because it probes HDF5/MAT files in a
child process with a time limit before touching them (smlmspine/io/_registry.py,
probe_structure; the child is smlmspine/io/_hdf5.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corpus import write_seeds

#: (byte, bit) of the DECODE seed whose flip makes libhdf5 loop (each checked > 40 s by hand)
HDF5_LOOPS = [(2072, 1), (2073, 0), (2096, 3)]
#: (byte, bit) of the MINFLUX .mat seed whose flip makes scipy segfault
MAT_CRASH = (297, 3)
SHARED_MINFLUX = Path(__file__).resolve().parents[3] / "shared" / "data" / "minflux"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe_seeds")
    return {s.name: s for s in write_seeds(folder)}


def _flipped(seed, folder: Path, pos: int, bit: int) -> Path:
    data = bytearray(seed.data)
    data[pos] ^= 1 << bit
    path = folder / seed.filename
    path.write_bytes(bytes(data))
    for name, content in seed.sidecars.items():
        (folder / name).write_bytes(content)
    return path


def _library_call(kind: str, path: Path, timeout: float):
    """What the readers' libraries do with the file, in a child process without the probe
    (SMLMSPINE_PROBE_CHILD=1 is how the probe's own child runs)."""
    env = {**os.environ, "SMLMSPINE_PROBE_CHILD": "1"}
    return subprocess.run([sys.executable, "-m", "smlmspine.io._hdf5", kind, str(path)],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


def _info(capsys, path):
    from smlmspine.cli import main

    rc = main(["info", str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("pos,bit", HDF5_LOOPS)
def test_libhdf5_loop_is_refused_with_one_line(seeds, tmp_path, capsys, monkeypatch, pos, bit):
    path = _flipped(seeds["decode_h5"], tmp_path, pos, bit)
    # the bug: libhdf5 does not come back from this file (killed after 6 s here)
    with pytest.raises(subprocess.TimeoutExpired):
        _library_call("hdf5", path, timeout=6)
    monkeypatch.setenv("SMLMSPINE_PROBE_TIMEOUT_S", "3")
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = _info(capsys, path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"{path}: damaged HDF5 file: the HDF5 library did not finish reading its metadata "
            "within 3 s") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_scipy_segfault_is_refused_with_one_line(seeds, tmp_path, capsys):
    path = _flipped(seeds["minflux_m2205mat"], tmp_path, *MAT_CRASH)
    # the bug: scipy's reader kills the process that reads this file
    assert _library_call("mat5", path, timeout=60).returncode == -11
    rc, out, err = _info(capsys, path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"{path}: damaged MAT v5 file: scipy's MAT reader crashed reading its variables "
            "(SIGSEGV") in err


def test_api_read_refuses_too(seeds, tmp_path, monkeypatch):
    from smlmspine.errors import FormatError
    from smlmspine.io import read
    from smlmspine.io.decode import read_decode

    monkeypatch.setenv("SMLMSPINE_PROBE_TIMEOUT_S", "2")
    path = _flipped(seeds["decode_h5"], tmp_path, *HDF5_LOOPS[0])
    with pytest.raises(FormatError, match="damaged HDF5 file"):
        read(path, format="decode")
    # a reader called directly opens the file through open_hdf5: probed as well
    with pytest.raises(FormatError, match="damaged HDF5 file"):
        read_decode(path)


@pytest.mark.parametrize("name", ["decode_h5", "picasso_hdf5", "smap_v5", "smap_v73",
                                  "minflux_m2205mat"])
def test_valid_files_read_the_same_with_and_without_the_probe(seeds, tmp_path, monkeypatch,
                                                               name):
    """The probe changes nothing for a sound file: same table, and one probe per file."""
    import smlmspine.io._registry as h5

    from smlmspine.io import read

    seed = seeds[name]
    (tmp_path / "a").mkdir()
    path = _flipped(seed, tmp_path / "a", 0, 0)
    path.write_bytes(seed.data)           # unflipped
    calls = []
    real_run = subprocess.run

    def counting_run(cmd, *args, **kwargs):
        if "smlmspine.io._hdf5" in cmd:     # probes only (libraries run `uname` etc.)
            calls.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    h5._PROBED.clear()
    probed = read(path)
    assert len(calls) == 1 and calls[0][-3:-1] == [h5.probe_kind(seed.data[:4096]), str(path)]
    read(path)                              # remembered: not probed again
    assert len(calls) == 1
    monkeypatch.setenv("SMLMSPINE_PROBE_TIMEOUT_S", "0")   # probe off
    h5._PROBED.clear()
    plain = read(path)
    assert len(calls) == 1
    assert probed.equals(plain)


def test_probe_timeout_must_be_a_number(seeds, tmp_path, monkeypatch):
    import smlmspine.io._registry as h5

    from smlmspine.errors import FormatError
    from smlmspine.io import read

    path = tmp_path / seeds["decode_h5"].filename
    path.write_bytes(seeds["decode_h5"].data)
    h5._PROBED.clear()
    monkeypatch.setenv("SMLMSPINE_PROBE_TIMEOUT_S", "soon")
    with pytest.raises(FormatError, match="SMLMSPINE_PROBE_TIMEOUT_S must be a number of seconds"):
        read(path)


@pytest.mark.shared_data
@pytest.mark.parametrize("sample", ["2D_ValidOnly.npy.zip", "3D_ValidOnly.npy.zip"])
def test_vendor_minflux_sample_as_mat_reads_the_same_through_the_probe(tmp_path, sample):
    """The Abberior samples in ../shared/data (read from there, not copied), re-exported as
    MAT v5 by the package's writer: probed and read, the table equals the .npy one."""
    src = SHARED_MINFLUX / sample
    if not src.is_file():
        pytest.skip(f"{src} not present")
    import smlmspine.io._registry as h5

    from smlmspine.io import read
    from smlmspine.io.minflux import write_abberior_npy

    t = read(src)
    ndim = 3 if sample.startswith("3D") else 2
    mat = write_abberior_npy(t, tmp_path / "sample.mat", ndim=ndim)
    h5._PROBED.clear()
    back = read(mat)
    assert back.num_rows == t.num_rows
    for col in ("x", "y"):
        np.testing.assert_allclose(back.column(col).to_numpy(), t.column(col).to_numpy(),
                                   rtol=1e-12, atol=1e-9)


def test_a_file_this_process_wrote_is_not_probed_until_it_changes(tmp_path, monkeypatch):
    from smlmspine.io import read, write
    from smlmspine.schema import make_table

    calls = []
    real_run = subprocess.run
    def counting_run(cmd, *args, **kwargs):
        if "smlmspine.io._hdf5" in cmd:     # probes only (libraries run `uname` etc.)
            calls.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    t = make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0, 1]})
    p = write(t, tmp_path / "locs.hdf5", pixel_size_nm=100.0)
    read(p)
    assert calls == []                      # written by h5py in this process: trusted
    data = p.read_bytes()
    p.unlink()
    p.write_bytes(data)                     # same bytes, but a file someone else wrote
    read(p)
    assert len(calls) == 1 and calls[0][-3] == "hdf5"
