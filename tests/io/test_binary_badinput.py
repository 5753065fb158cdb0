"""Bad input for the binary formats: every case is a FormatError naming the file."""

import os
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlmspine.errors import FormatError
from smlmspine.io import read, write
from smlmspine.schema import make_table

from test_binary_decode import write_decode
from test_binary_picasso import make_locs, write_picasso_file
from test_binary_smap import loc_fields, write_v5, write_v73
from test_binary_smlm import sample, write_smlm_file

EXTS = [".hdf5", ".h5", ".mat", "_sml.mat", ".smlm", ".parquet", ".arrow", ".feather"]
MAGICS = {"hdf5": b"\x89HDF\r\n\x1a\n", "mat5": b"MATLAB 5.0 MAT-file, Platform: x",
          "mat73": b"MATLAB 7.3 MAT-file, Platform: x", "zip": b"PK\x03\x04",
          "parquet": b"PAR1", "arrow": b"ARROW1\x00\x00"}


def _garbage(n=3000, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("ext", EXTS)
def test_empty_file(tmp_path, ext):
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    with pytest.raises(FormatError, match=rf"empty{ext}: the file is empty"):
        read(p)


@pytest.mark.parametrize("ext", EXTS)
def test_binary_garbage_with_known_extension(tmp_path, ext):
    p = tmp_path / f"garbage{ext}"
    p.write_bytes(_garbage())
    with pytest.raises(FormatError, match=rf"garbage{ext}"):
        read(p)


@pytest.mark.parametrize("fmt", ["picasso", "decode", "smap", "smlm", "parquet", "arrow"])
def test_garbage_read_with_explicit_format(tmp_path, fmt):
    p = tmp_path / "garbage.bin"
    p.write_bytes(_garbage())
    with pytest.raises(FormatError, match=r"garbage\.bin"):
        read(p, format=fmt)


@pytest.mark.parametrize("magic", sorted(MAGICS))
def test_right_magic_then_garbage(tmp_path, magic):
    p = tmp_path / f"fake_{magic}.dat"
    p.write_bytes(MAGICS[magic] + _garbage(5000))
    with pytest.raises(FormatError, match=rf"fake_{magic}\.dat"):
        read(p)


def test_unknown_format(tmp_path):
    p = tmp_path / "what.xyz"
    p.write_bytes(b"\x00\x01\x02\x03" * 100)
    with pytest.raises(FormatError, match=r"what\.xyz: unknown format"):
        read(p)


def test_missing_path_directory_and_broken_link(tmp_path):
    with pytest.raises(FormatError, match=r"nope\.hdf5: no such file"):
        read(tmp_path / "nope.hdf5")
    with pytest.raises(FormatError, match="is a directory"):
        read(tmp_path)
    link = tmp_path / "link.hdf5"
    link.symlink_to(tmp_path / "gone.hdf5")
    with pytest.raises(FormatError, match=r"link\.hdf5: no such file"):
        read(link)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    p = write_picasso_file(tmp_path / "locked.hdf5", make_locs(3), [{"Pixelsize": 100}])
    p.chmod(0)
    try:
        with pytest.raises(FormatError, match=r"locked\.hdf5: cannot be read"):
            read(p)
    finally:
        p.chmod(0o644)


def test_unreadable_paths(tmp_path):
    long_name = tmp_path / ("a" * 300 + ".hdf5")  # ENAMETOOLONG from the OS
    with pytest.raises(FormatError, match=r"a\.hdf5: cannot be read: File name too long"):
        read(long_name)
    mem = "/proc/self/mem"  # exists, but reading it from offset 0 fails even for root
    if os.path.exists(mem):
        with pytest.raises(FormatError, match=r"/proc/self/mem: cannot be read"):
            read(mem)


def _truncate(p, keep=0.5):
    data = p.read_bytes()
    p.write_bytes(data[:int(len(data) * keep)])
    return p


def test_truncated_files(tmp_path):
    cases = {
        "picasso": write_picasso_file(tmp_path / "p.hdf5", make_locs(20000), [{"Pixelsize": 100}]),
        "smap73": tmp_path / "s73_sml.mat", "smap5": tmp_path / "s5_sml.mat",
        "decode": tmp_path / "d.h5",
        "smlm": write_smlm_file(tmp_path / "z.smlm", sample(20000)),
        "parquet": write(make_table({"x": np.arange(20000.0), "y": np.arange(20000.0)}),
                         tmp_path / "t.parquet"),
    }
    write_v73(cases["smap73"], loc_fields(20000))
    write_v5(cases["smap5"], loc_fields(20000))
    write_decode(cases["decode"], n=20000)
    for name, p in cases.items():
        assert read(p).num_rows == 20000, name
        _truncate(p)
        with pytest.raises(FormatError, match=p.name.replace(".", r"\.") +
                           ".*(truncated or damaged|not a readable)"):
            read(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coordinates(tmp_path, bad):
    locs = make_locs(5)
    locs["x"][2] = bad
    p = write_picasso_file(tmp_path / "nan.hdf5", locs, [{"Pixelsize": 100}])
    with pytest.raises(FormatError, match=r"nan\.hdf5.*'x' holds 1 non-finite"):
        read(p)
    loc = loc_fields(5)
    loc["ynm"][0] = bad
    write_v5(tmp_path / "nan_sml.mat", loc)
    with pytest.raises(FormatError, match=r"nan_sml\.mat.*'y' holds 1 non-finite"):
        read(tmp_path / "nan_sml.mat")
    cols = sample(5)
    cols[1] = ("x", "float32", np.array([1, 2, bad, 4, 5]))
    p = write_smlm_file(tmp_path / "nan.smlm", cols)
    with pytest.raises(FormatError, match=r"nan\.smlm.*'x' holds 1 non-finite"):
        read(p)
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f.create_group("meta").attrs.update({"xy_unit": "nm", "px_size": [100.0, 100.0]})
        f.create_group("data").create_dataset("xyz", data=np.array([[1.0, 2.0, bad]]))
    with pytest.raises(FormatError, match=r"nan\.h5.*'z' holds 1 non-finite"):
        read(tmp_path / "nan.h5")


def test_pixel_units_without_pixel_size(tmp_path):
    p = write_picasso_file(tmp_path / "px.hdf5", make_locs(3))
    with pytest.raises(FormatError, match=r"px\.hdf5.*pixel size is unknown"):
        read(p)
    write_decode(tmp_path / "px.h5", px_size=None)
    with pytest.raises(FormatError, match=r"px\.h5.*px_size is missing"):
        read(tmp_path / "px.h5")
    with pytest.raises(FormatError, match=r"a\.hdf5.*no pixel size"):
        write(make_table({"x": [1.0], "y": [1.0]}), tmp_path / "a.hdf5")


def test_missing_coordinates_everywhere(tmp_path):
    with h5py.File(tmp_path / "nolocs.hdf5", "w") as f:
        f.create_dataset("other", data=np.ones(3))
    with pytest.raises(FormatError, match=r"nolocs\.hdf5.*no 'locs' dataset"):
        read(tmp_path / "nolocs.hdf5", format="picasso")
    with pytest.raises(FormatError, match=r"nolocs\.hdf5.*no 'data' group"):
        read(tmp_path / "nolocs.hdf5", format="decode")
    with pytest.raises(FormatError, match=r"nolocs\.hdf5.*no variable 'saveloc'"):
        read(tmp_path / "nolocs.hdf5", format="smap")
    scipy.io.savemat(tmp_path / "noloc_sml.mat", {"saveloc": {"file": {"name": "a"}}})
    with pytest.raises(FormatError, match="'saveloc' has no 'loc' struct"):
        read(tmp_path / "noloc_sml.mat")


def test_picasso_locs_not_a_table(tmp_path):
    with h5py.File(tmp_path / "flat.hdf5", "w") as f:
        f.create_dataset("locs", data=np.ones((3, 2)))
    with pytest.raises(FormatError, match=r"flat\.hdf5.*not a compound"):
        read(tmp_path / "flat.hdf5", pixel_size_nm=100)


def test_smlm_missing_table_file(tmp_path):
    p = write_smlm_file(tmp_path / "a.smlm", sample(3))
    with zipfile.ZipFile(p) as zf:
        manifest = zf.read("manifest.json")
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("manifest.json", manifest)
    with pytest.raises(FormatError, match=r"a\.smlm.*not in the archive"):
        read(p)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(magic=st.sampled_from(sorted(MAGICS)), body=st.binary(max_size=600),
       ext=st.sampled_from(EXTS))
def test_fuzz_only_format_errors(tmp_path, magic, body, ext):
    p = tmp_path / f"fuzz{ext}"
    p.write_bytes(MAGICS[magic] + body)
    try:
        table = read(p)
    except FormatError as exc:
        assert p.name in str(exc)
        assert "could not be read as" not in str(exc)  # a clear message, not the safety net
    else:  # anything accepted must be a valid canonical table
        assert {"x", "y"} <= set(table.column_names)


_KEYS = ["format_version", "formats", "files", "name", "type", "format", "mode", "headers",
         "dtype", "shape", "units", "rows", "offset", "columns", "smlm-table(binary)", "x", "y"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), c, max_size=6),
    max_leaves=30)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=_json, body=st.binary(max_size=64))
def test_fuzz_smlm_manifest(tmp_path, manifest, body):
    import json

    p = tmp_path / "fuzz.smlm"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("table0.bin", body)
    try:
        read(p)
    except FormatError as exc:
        assert "fuzz.smlm" in str(exc) and "could not be read as" not in str(exc)
