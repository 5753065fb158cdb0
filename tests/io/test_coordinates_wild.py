"""Physically impossible coordinates in files from the wild (issue #15).

A coordinate of -1e300 nm in a text file used to be read as such (finite, so valid).
The registry's read path refuses |x|, |y|, |z| above 1e9 nm (1 m) for the formats the
package only reads, with one line naming the file, the column, the row and the value;
the formats it also writes keep any finite value (exact round trips).
"""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import read, write
from smlmspine.io._registry import MAX_COORDINATE_NM, WRITTEN_FORMATS
from smlmspine.schema import make_table


def _csv(path, xs, ys):
    path.write_text("X_pos,Y_pos,t\n" + "".join(f"{x!r},{y!r},{i}\n"
                                                for i, (x, y) in enumerate(zip(xs, ys))))
    return path


@pytest.mark.parametrize("value", [-1e300, 1e300, 2e9, -1.0000001e9])
def test_generic_csv_with_an_impossible_coordinate_is_refused(tmp_path, value):
    p = _csv(tmp_path / "a.csv", [10.0, 20.0, value, 40.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(FormatError) as err:
        read(p, format="csv", mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"},
             coordinate_unit="nm")
    msg = str(err.value)
    assert msg.startswith(f"{p}, column 'X_pos': |x| must be at most 1e+09 nm")
    assert f"found {value:g} at row 2" in msg and "1 such row" in msg


def test_the_limit_itself_is_accepted(tmp_path):
    p = _csv(tmp_path / "a.csv", [MAX_COORDINATE_NM, -MAX_COORDINATE_NM], [0.0, 5.0])
    t = read(p, format="csv", mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"},
             coordinate_unit="nm")
    assert t.column("x").to_pylist() == [1e9, -1e9]


def test_unit_conversion_is_checked_after_scaling(tmp_path):
    """2e6 um is 2e9 nm: refused (the check is on the table in nm)."""
    p = _csv(tmp_path / "a.csv", [1.0, 2e6], [0.0, 0.0])
    with pytest.raises(FormatError, match=r"found 2e\+09 at row 1"):
        read(p, format="csv", mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"},
             coordinate_unit="um")


def test_decode_z_beyond_one_metre_is_refused(tmp_path):
    import h5py

    p = tmp_path / "emitters.h5"
    with h5py.File(p, "w") as f:
        f.create_group("meta").attrs["xy_unit"] = "nm"
        f.create_group("data").create_dataset(
            "xyz", data=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, -7e12], [1.0, 1.0, -8e12]]))
    with pytest.raises(FormatError, match=r"\|z\| must be at most .* found -7e\+12 at row 1 "
                                          r"\(rows count from 0; 2 such rows\)"):
        read(p)


def test_cli_refusal_is_one_line(tmp_path, capsys):
    from smlmspine.cli import main

    p = _csv(tmp_path / "a.csv", [1.0, -1e300], [0.0, 0.0])
    rc = main(["info", str(p), "--format", "csv", "--map", "x=X_pos,y=Y_pos,frame=t",
               "--coordinate-unit", "nm"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "|x| must be at most" in err


@pytest.mark.parametrize("ext", [".parquet", ".arrow", ".smlm", ".csv"])
def test_formats_the_package_writes_keep_any_finite_value(tmp_path, ext):
    """Exempt (WRITTEN_FORMATS): a writer -> reader round trip is exact for any finite
    table, as the round-trip property tests require."""
    t = make_table({"x": [1.0, -1e300], "y": [0.0, 3e20]})
    back = read(write(t, tmp_path / f"a{ext}"))
    assert back.column("x").to_pylist() == [1.0, -1e300]
    assert "thunderstorm" in WRITTEN_FORMATS and "csv" not in WRITTEN_FORMATS
