"""CLI reading: ``--position-unit`` for the MINFLUX MATLAB struct export, and the format
``smlmspine info`` reports (issue #15)."""

import json

import numpy as np
import pytest
from test_binary_wild import struct_data, write_struct_v5, write_struct_v73

from smlmspine.cli import main
from smlmspine.io import read, write
from smlmspine.io.minflux import write_abberior_npy
from smlmspine.schema import make_table


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc, out, err, match):
    assert rc == 2 and "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], err


@pytest.mark.parametrize("writer", [write_struct_v5, write_struct_v73], ids=["v5", "v73"])
def test_position_unit_flag_reads_a_struct_in_metres(capsys, tmp_path, writer):
    data = struct_data(scale=1e-9)  # metres, with no unit in meta
    p = writer(tmp_path / "m.mat", data)
    rc, out, err = run(capsys, "info", p)
    one_line_error(rc, out, err, "positions contradict their unit 'nm'")
    rc, out, err = run(capsys, "info", p, "--position-unit", "m", "--z-scale", "1", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    x_nm = data["pos"][:, 0] * 1e9
    assert doc["bounds_nm"]["x"] == pytest.approx([x_nm.min(), x_nm.max()], rel=1e-15)
    out_path = tmp_path / "m.parquet"
    rc, _, err = run(capsys, "convert", p, out_path, "--position-unit", "m")
    assert rc == 0, err
    t = read(out_path)
    np.testing.assert_allclose(t.column("x").to_numpy(), x_nm, rtol=1e-15)
    np.testing.assert_allclose(t.column("z").to_numpy(), data["pos"][:, 2] * 1e9 * 0.7,
                               rtol=1e-15)


def test_position_unit_conflicting_with_meta_or_other_formats(capsys, tmp_path):
    p = write_struct_v5(tmp_path / "um.mat", struct_data(scale=1e-3), meta={"unit": "um"})
    rc, out, err = run(capsys, "info", p, "--position-unit", "nm")
    one_line_error(rc, out, err, "position_unit='nm' but the file's meta states 'um'")
    rc, out, err = run(capsys, "info", p, "--position-unit", "km")
    assert rc == 2 and "invalid choice: 'km'" in err
    npy = write_abberior_npy({"x": [1.0], "y": [2.0]}, tmp_path / "a.npy")
    rc, out, err = run(capsys, "info", npy, "--position-unit", "m")
    one_line_error(rc, out, err, "position_unit applies only to the MATLAB struct export")
    csv = write(make_table({"x": [1.0], "y": [2.0]}), tmp_path / "a.csv")
    rc, out, err = run(capsys, "info", csv, "--position-unit", "m")
    one_line_error(rc, out, err, "--position-unit does not apply to")


def test_info_names_the_file_format(capsys, tmp_path):
    t = make_table({"x": [1.0, 5.0], "y": [2.0, 3.0], "frame": [0, 4]})  # no format recorded
    p = write(t, tmp_path / "mem.parquet")
    rc, out, err = run(capsys, "info", p)
    assert rc == 0, err
    assert "format:          parquet\n" in out and "converted from" not in out
    rc, out, _ = run(capsys, "info", p, "--json")
    doc = json.loads(out)
    assert doc["format"] == "parquet" and doc["converted_from"] is None
    assert doc["source"] == str(p)
    # a Parquet file converted from ThunderSTORM CSV: the file is Parquet, the origin kept
    csv = write(t, tmp_path / "in.csv")
    conv = tmp_path / "conv.parquet"
    assert run(capsys, "convert", csv, conv)[0] == 0
    rc, out, _ = run(capsys, "info", conv)
    assert "format:          parquet\n" in out
    assert f"converted from:  thunderstorm ({csv})" in out
    doc = json.loads(run(capsys, "info", conv, "--json")[1])
    assert doc["format"] == "parquet"
    assert doc["converted_from"] == {"format": "thunderstorm", "source": str(csv)}
