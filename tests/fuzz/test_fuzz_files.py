"""Hostile files through ``smlmspine info`` and ``smlmspine.io.read`` (issue #15).

Small valid files of every reader format (tests/fuzz/corpus.py) are truncated,
bit-flipped, re-encoded, given huge declared sizes, zip-bombed, YAML-alias-bombed,
emptied, retyped and filled with NaN/inf/negative values. Each case runs in a worker
process (restarted after a hang or crash) with a 20 s limit and an address-space cap of
2 GiB above its start-up size (tests/fuzz/harness.py). Asserted per
case: no traceback (only the SmlmSpineError family: one stderr line, exit 2, or a
successful read), no hang, no raw reader exception rephrased by ``read``'s safety net,
peak memory under 1 GiB above the worker's baseline, finite coordinates and non-negative frames in
whatever still reads, the seed's exact values when a value-preserving mutation (a
truncation, another text encoding or line ending) still reads, and nothing left behind
in the folder. The default run uses one bit flip and one overwrite per seed; ``-m slow``
runs 25 of each and 4 GiB (4095 MiB) zip bombs.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from corpus import cases, write_seeds
from harness import Worker, run_case

SEEDS = ["parquet", "arrow", "smlm", "thunderstorm_csv", "picasso_hdf5", "minflux_m2205npy",
         "minflux_m2205json", "minflux_m2205mat", "minflux_m2410npy", "minflux_npyzip", "decode_h5",
         "smap_v5", "smap_v73", "rapidstorm_txt", "zeiss_txt", "oni_csv", "nstorm_txt", "misc"]
TIMEOUT_S = 20.0
MAX_EXTRA_RSS_MB = 1024.0

# Open findings: (group, regex on the problem line, reason). A group whose only problems
# match these is an expected failure; the listed deterministic cases must still fail
# (strict: once a reader is fixed, its entry has to go).
KNOWN: list[tuple[str, str, str]] = []
# Deterministic cases of these findings: they must keep failing until the reader is fixed.
KNOWN_CASES: dict[str, str] = {}


def _reference(seeds, folder):
    from smlmspine.io import read

    ref = {}
    for s in seeds:
        t = read(folder / s.filename)
        ref[s.name] = {c: t.column(c).to_numpy().tolist() for c in ("x", "y", "z") if c in t.column_names}
    return ref


def _corpus(tmp_path_factory, *, n_flips, heavy_bytes, n_meta_flips):
    folder = tmp_path_factory.mktemp("seeds")
    seeds = write_seeds(folder)
    assert [s.name for s in seeds] + ["misc"] == SEEDS
    return cases(seeds, rng=np.random.default_rng(15), n_flips=n_flips, heavy_bytes=heavy_bytes,
                 n_meta_flips=n_meta_flips), _reference(seeds, folder)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return _corpus(tmp_path_factory, n_flips=1, heavy_bytes=1 << 30, n_meta_flips=12)


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory):
    return _corpus(tmp_path_factory, n_flips=25, heavy_bytes=4095 << 20, n_meta_flips=150)


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def check_case(case, reference, folder, worker=None) -> list[str]:
    """Run one case (in ``worker``, else in a forked child); return what went wrong."""
    path = case.write(folder)
    before = sorted(p.name for p in folder.iterdir())
    res = worker.run(path, timeout_s=TIMEOUT_S) if worker else run_case(path, timeout_s=TIMEOUT_S)
    problems = []
    outcome = res["outcome"]
    if outcome not in ("ok", "error"):
        problems.append(f"{outcome}: {res.get('detail', '')}")
    if res.get("extra_rss_mb", 0) > MAX_EXTRA_RSS_MB:
        problems.append(f"peak memory {res['extra_rss_mb']:.0f} MB above the baseline")
    after = sorted(p.name for p in folder.iterdir())
    if after != before:
        problems.append(f"left behind / removed: {sorted(set(after) ^ set(before))}")
    if outcome == "ok":
        if res.get("nonfinite"):
            problems.append(f"read with {res['nonfinite']} non-finite coordinates")
        if res.get("negative_frames"):
            problems.append(f"read with {res['negative_frames']} negative frames")
        ref = reference.get(case.seed.name)
        if case.same_values and ref:
            for col, want in ref.items():
                got = res["values"].get(col)
                if got is None:
                    problems.append(f"column {col} lost")
                    continue
                n = len(got)
                if n > len(want) or got != want[:n]:
                    bad = [i for i in range(min(n, len(want))) if got[i] != want[i]]
                    last_row_warned = bad == [n - 1] and "QualityWarning" in res.get("warnings", [])
                    if n > len(want) or not last_row_warned:
                        problems.append(f"values of {col} changed silently (rows {bad[:5]} of {n}, "
                                        f"seed has {len(want)})")
    return [f"{case.name}: {p}" for p in problems]


def _run_group(group, corpus, tmp_path, worker):
    all_cases, reference = corpus
    mine = [c for c in all_cases if c.seed.name == group]
    assert mine, group
    problems = []
    for i, case in enumerate(mine):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        problems += check_case(case, reference, folder, worker)
    known = [p for p in problems if any(g == group and re.search(rx, p) for g, rx, _ in KNOWN)]
    new = [p for p in problems if p not in known]
    assert not new, f"{len(new)} of {len(mine)} cases:\n" + "\n".join(new)
    failed = {p.split(": ", 1)[0] for p in problems}
    fixed = [name for name in KNOWN_CASES if name.split(":")[0] == group
             and any(c.name == name for c in mine) and name not in failed]
    assert not fixed, f"known failures now pass (remove them from KNOWN_CASES): {fixed}"
    if known:
        reasons = sorted({r for g, rx, r in KNOWN if g == group and any(re.search(rx, p) for p in known)})
        pytest.xfail(f"{len(known)} of {len(mine)} cases hit known reader issues: " + "; ".join(reasons))


@pytest.mark.parametrize("group", SEEDS)
def test_hostile_files(group, small_corpus, tmp_path, worker):
    _run_group(group, small_corpus, tmp_path, worker)


@pytest.mark.slow
@pytest.mark.parametrize("group", SEEDS)
def test_hostile_files_big_corpus(group, big_corpus, tmp_path, worker):
    _run_group(group, big_corpus, tmp_path, worker)


def test_checker_catches_what_it_should(small_corpus, tmp_path, monkeypatch):
    """The checks can fail: a silently changed value and a traceback are reported."""
    from corpus import Case, Seed

    _, reference = small_corpus
    seed = Seed("thunderstorm_csv", "locs.csv", b"", text=True)
    x = reference["thunderstorm_csv"]["x"]
    y = reference["thunderstorm_csv"]["y"]
    z = reference["thunderstorm_csv"]["z"]

    def changed(folder):
        p = folder / "locs.csv"
        p.write_text('"x [nm]","y [nm]","z [nm]"\n' + "".join(
            f"{a + (i == 1)!r},{b!r},{c!r}\n" for i, (a, b, c) in enumerate(zip(x, y, z))))
        return p

    (tmp_path / "a").mkdir()
    got = check_case(Case("changed", seed, changed, same_values=True), reference, tmp_path / "a")
    assert len(got) == 1 and "values of x changed silently (rows [1]" in got[0]

    def directory(folder):   # `info` on a directory name: an error, fine
        (folder / "d.csv").mkdir()
        return folder / "d.csv"

    (tmp_path / "b").mkdir()
    assert check_case(Case("dir", seed, directory), reference, tmp_path / "b") == []

    def boom(path):
        raise KeyError("bug")

    import smlmspine.io._registry as registry

    monkeypatch.setattr(registry, "detect_format", boom)   # the forked child inherits it
    (tmp_path / "c").mkdir()
    got = check_case(Case("boom", seed, changed), reference, tmp_path / "c")
    assert len(got) == 1 and "traceback: main: KeyError" in got[0]


def test_hdf5_float_type_read_as_longdouble_is_refused(tmp_path):
    """A non-IEEE 8-byte float member (what one flipped bit in a Picasso file's type
    message gave) reads as a 16-byte longdouble in h5py; reading it corrupted libhdf5's
    heap (segfault later in the process). Refused before reading, in a forked child."""
    import h5py

    p = tmp_path / "locs.hdf5"
    with h5py.File(p, "w") as f:
        odd = h5py.h5t.IEEE_F64LE.copy()
        odd.set_ebias(1000)
        ct = h5py.h5t.create(h5py.h5t.COMPOUND, 20)
        ct.insert(b"x", 0, odd)
        ct.insert(b"y", 8, h5py.h5t.IEEE_F64LE)
        ct.insert(b"frame", 16, h5py.h5t.STD_U32LE)
        dsid = h5py.h5d.create(f.id, b"locs", ct, h5py.h5s.create_simple((4,)))
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.zeros(4, dtype=[("x", "<u8"), ("y", "<f8"), ("frame", "<u4")]))
    (tmp_path / "locs.yaml").write_text("Pixelsize: 100\n")
    assert h5py.File(p, "r")["locs"].dtype["x"].itemsize == 16
    res = run_case(p, timeout_s=TIMEOUT_S)
    assert res["outcome"] == "error", res
    assert "damaged type" in res["stderr"] and "locs.x" in res["stderr"]


def test_big_endian_hdf5_values_are_read(tmp_path):
    """HDF5 stores either byte order (one flipped bit in a type message swaps it); Arrow
    takes native order only: big-endian coordinates are read with their values."""
    import h5py

    from smlmspine.io import read

    xyz = np.array([[1.5, 2.5, -30.0], [4.0, 8.0, 16.0]])
    p = tmp_path / "emitters.h5"
    with h5py.File(p, "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        g = f.create_group("data")
        g.create_dataset("xyz", data=xyz.astype(">f8"))
        g.create_dataset("frame_ix", data=np.array([3, 4], dtype=">i8"))
    t = read(p)
    np.testing.assert_array_equal(t.column("x").to_numpy(), xyz[:, 0])
    np.testing.assert_array_equal(t.column("z").to_numpy(), xyz[:, 2])
    assert t.column("frame").to_pylist() == [3, 4]


def test_mat5_unknown_data_type_is_refused_before_scipy(tmp_path):
    """A MAT v5 element tag with data type code 41 (one flipped bit of miDOUBLE = 9) made
    scipy's reader dereference a wild pointer (segfault). Refused by the tag walk first."""
    import scipy.io

    p = tmp_path / "cell_sml.mat"
    loc = {"xnm": np.arange(5.0).reshape(-1, 1), "ynm": np.arange(5.0).reshape(-1, 1),
           "frame": np.arange(5.0).reshape(-1, 1)}
    scipy.io.savemat(p, {"saveloc": {"loc": loc}})
    data = bytearray(p.read_bytes())
    at = data.index(b"\x09\x00\x00\x00\x28\x00\x00\x00", 128)   # miDOUBLE, 40 bytes: 5 values
    data[at] = 0x29
    p.write_bytes(bytes(data))
    res = run_case(p, timeout_s=TIMEOUT_S)
    assert res["outcome"] == "error", res
    assert "unknown data type code 41" in res["stderr"]


def test_mat5_struct_with_huge_dimensions_is_refused(tmp_path):
    """A 1 x 1 'saveloc' struct whose dimension reads 2^30 + 1 after one flipped bit: scipy
    would build 10^9 struct elements (minutes); refused from the variable headers."""
    import scipy.io

    p = tmp_path / "cell_sml.mat"
    scipy.io.savemat(p, {"saveloc": {"loc": {"xnm": np.arange(3.0), "ynm": np.arange(3.0)}}})
    data = bytearray(p.read_bytes())
    at = data.index(b"\x05\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00", 128)
    data[at + 15] = 0x40          # dims (1, 1) -> (1, 2^30 + 1)
    p.write_bytes(bytes(data))
    res = run_case(p, timeout_s=TIMEOUT_S)
    assert res["outcome"] == "error", res
    assert "struct array of shape (1, 1073741825)" in res["stderr"] and res["seconds"] < 10
