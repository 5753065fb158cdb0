"""`smlmspine formats`, `info`, `convert`, --version and --help, run in-process."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "io"))

from smlmspine import __version__  # noqa: E402
from smlmspine.cli import build_parser, main  # noqa: E402
from smlmspine.io import read, write, writers  # noqa: E402
from smlmspine.schema import make_table  # noqa: E402

from test_binary_picasso import MOVIE_INFO, make_locs, write_picasso_file  # noqa: E402

PX = 130.0


@pytest.fixture
def picasso_file(tmp_path):
    locs = make_locs(40, three_d=True)
    return write_picasso_file(tmp_path / "in_locs.hdf5", locs, [MOVIE_INFO, {"Pixelsize": PX}]), locs


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc, out, err, *, match):
    assert rc == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]


def test_version_and_help(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.strip() == f"smlmspine {__version__}"
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "formats" in out and "convert" in out
    rc, _, err = run(capsys)
    assert rc == 2 and "usage" in err


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(action.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_help_on_every_subcommand(capsys, command):
    rc, out, err = run(capsys, command, "--help")
    assert rc == 0, err
    assert out.startswith("usage: smlmspine " + command.split()[0])


def test_formats(capsys):
    rc, out, _ = run(capsys, "formats")
    assert rc == 0
    for token in ("picasso", "decode", "smap", "smlm", ".hdf5", "_sml.mat", "Writers"):
        assert token in out
    rc, out, _ = run(capsys, "formats", "--json")
    doc = json.loads(out)
    assert {"picasso", "decode", "smap", "smlm", "parquet", "arrow"} <= set(doc["readers"])
    assert {"picasso", "smlm", "parquet", "arrow"} <= set(doc["writers"])
    assert ".hdf5" in doc["writers"]["picasso"]["extensions"]


def test_info_text(capsys, picasso_file):
    path, _ = picasso_file
    rc, out, _ = run(capsys, "info", path)
    assert rc == 0
    assert "picasso" in out and "40" in out and "3D" in out
    assert "z bounds (nm)" in out and "lpx" in out


def test_info_json(capsys, picasso_file):
    path, locs = picasso_file
    rc, out, err = run(capsys, "info", path, "--json")
    assert rc == 0, err
    doc = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert isinstance(doc, dict)
    assert doc["format"] == "picasso" and doc["n_localizations"] == 40 and doc["ndim"] == 3
    cols = {c["name"]: c for c in doc["columns"]}
    assert cols["x"]["unit"] == "nm" and cols["frame"]["unit"] == "frame"
    assert cols["background"]["original_name"] == "bg"
    assert doc["frame_range"] == [int(locs["frame"].min()), int(locs["frame"].max())]
    assert doc["bounds_nm"]["x"] == pytest.approx([float(locs["x"].min()) * PX,
                                                   float(locs["x"].max()) * PX])
    assert doc["bounds_nm"]["z"] == pytest.approx([float(locs["z"].min()), float(locs["z"].max())])
    assert doc["time_range_s"] is None and doc["pixel_size_nm"] == PX


def test_info_needs_pixel_size(capsys, tmp_path):
    p = write_picasso_file(tmp_path / "nopx.hdf5", make_locs(5))
    rc, out, err = run(capsys, "info", p)
    assert_user_error(rc, out, err, match="nopx.hdf5")
    assert "--pixel-size-nm" in err
    rc, out, err = run(capsys, "info", p, "--pixel-size-nm", "100", "--json")
    assert rc == 0 and json.loads(out)["pixel_size_nm"] == 100.0


CONVERT_TARGETS = [".parquet", ".arrow", ".feather", ".hdf5", ".smlm", ".csv"]


@pytest.mark.parametrize("ext", CONVERT_TARGETS)
def test_convert(capsys, tmp_path, picasso_file, ext):
    if ext == ".csv" and not any(".csv" in w.extensions for w in writers().values()):
        pytest.skip("no CSV writer registered yet")
    path, locs = picasso_file
    out_path = tmp_path / f"out{ext}"
    rc, out, err = run(capsys, "convert", path, out_path)
    assert rc == 0, err
    assert f"wrote 40 localizations to {out_path}" in out
    back = read(out_path)
    np.testing.assert_array_equal(back.column("x").to_numpy(), locs["x"].astype(float) * PX)
    np.testing.assert_array_equal(back.column("z").to_numpy(), locs["z"].astype(float))
    np.testing.assert_array_equal(back.column("frame").to_numpy(), locs["frame"])


def test_convert_nm_to_picasso_needs_pixel_size(capsys, tmp_path):
    src = write(make_table({"x": [100.0, 250.0], "y": [50.0, 75.0]}), tmp_path / "nm.parquet")
    rc, out, err = run(capsys, "convert", src, tmp_path / "o.hdf5")
    assert_user_error(rc, out, err, match="o.hdf5")
    assert "--out-pixel-size-nm" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nm.parquet"]
    rc, out, err = run(capsys, "convert", src, tmp_path / "o.hdf5", "--out-pixel-size-nm", "50")
    assert rc == 0, err
    assert read(tmp_path / "o.hdf5").column("x").to_pylist() == [100.0, 250.0]
    rc, out, err = run(capsys, "convert", src, tmp_path / "o.arrow", "--out-pixel-size-nm", "50")
    assert_user_error(rc, out, err, match="takes no pixel size")


@pytest.mark.parametrize("case", ["missing", "garbage", "directory", "bad_out_ext", "empty",
                                  "bad_format", "missing_out_dir"])
def test_convert_bad_input(capsys, tmp_path, picasso_file, case):
    path, _ = picasso_file
    src, dst, extra = path, tmp_path / "out.parquet", []
    if case == "missing":
        src = tmp_path / "nope.hdf5"
    elif case == "garbage":
        src = tmp_path / "garbage.hdf5"
        src.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    elif case == "directory":
        src = tmp_path
    elif case == "empty":
        src = tmp_path / "empty.smlm"
        src.write_bytes(b"")
    elif case == "bad_out_ext":
        dst = tmp_path / "out.xyz"
    elif case == "bad_format":
        extra = ["--format", "decode"]
    elif case == "missing_out_dir":
        dst = tmp_path / "no" / "out.parquet"
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = run(capsys, "convert", src, dst, *extra)
    assert_user_error(rc, out, err, match="smlmspine convert: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial output
    rc, out, err = run(capsys, "info", src, *extra)
    if case in ("bad_out_ext", "missing_out_dir"):
        assert rc == 0
    else:
        assert_user_error(rc, out, err, match="smlmspine info: error:")


def test_usage_error_exit_code(capsys):
    rc, _, err = run(capsys, "convert")
    assert rc == 2 and "usage" in err
