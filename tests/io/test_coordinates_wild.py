"""Physically impossible coordinates in files from the wild (issue #15).

A coordinate of -1e300 nm in a text file used to be read as such (finite, so valid).
The registry's read path refuses |x|, |y|, |z| above 1e9 nm (1 m) for every format, the
ones the package also writes included, with one line naming the file, the column, the row
and the value; ``write`` refuses such a table before writing anything.
"""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import read, write
from smlmspine.io import _registry
from smlmspine.io._registry import MAX_COORDINATE_NM
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


def _ts_csv(path, xs):
    """A ThunderSTORM CSV as ThunderSTORM writes it (written here, by hand)."""
    rows = "".join(f"{i + 1},{i},{x!r},{10.0 * i!r},120.5,1500.0\n" for i, x in enumerate(xs))
    path.write_text('"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]"\n' + rows)
    return path


def test_thunderstorm_csv_with_an_impossible_coordinate_is_refused(tmp_path):
    """A format the package also writes: no longer exempt."""
    p = _ts_csv(tmp_path / "ts.csv", [10.0, 20.0, -1e300, 40.0, 2e9])
    with pytest.raises(FormatError) as err:
        read(p)
    msg = str(err.value)
    assert msg == (f"{p}, column 'x [nm]': |x| must be at most 1e+09 nm (1 m: larger is a "
                   "damaged value or a wrong unit); found -1e+300 at row 2 (rows count from 0; "
                   "2 such rows)")
    assert "\n" not in msg


def test_thunderstorm_csv_within_one_metre_reads_exactly(tmp_path):
    xs = [MAX_COORDINATE_NM, -MAX_COORDINATE_NM, 0.1 + 0.2, -5e-324]
    t = read(_ts_csv(tmp_path / "ts.csv", xs))
    assert t.column("x").to_pylist() == xs


def test_cli_refuses_a_thunderstorm_csv_in_one_line(tmp_path, capsys):
    from smlmspine.cli import main

    p = _ts_csv(tmp_path / "ts.csv", [1.0, -1e300])
    out = tmp_path / "out.parquet"
    before = sorted(tmp_path.iterdir())
    rc = main(["convert", str(p), str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(p) in err and "column 'x [nm]'" in err and "found -1e+300 at row 1" in err
    assert sorted(tmp_path.iterdir()) == before  # nothing written
    rc = main(["info", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "|x| must be at most 1e+09 nm" in err


def _write_unchecked(monkeypatch, table, path, **options):
    """Write ``table`` with the package's writer, its coordinate check switched off (the
    writer refuses such a table), to make the file a damaged or foreign one would be."""
    real = _registry._refuse_impossible_coordinates

    def reading_only(table, path, *, in_file=True):
        if in_file:
            real(table, path, in_file=in_file)

    with monkeypatch.context() as m:
        m.setattr(_registry, "_refuse_impossible_coordinates", reading_only)
        return write(table, path, **options)


@pytest.mark.parametrize("ext,options,column", [
    (".parquet", {}, "y"), (".arrow", {}, "y"), (".smlm", {}, "y"),
    (".csv", {}, "y [nm]"), (".hdf5", {"pixel_size_nm": 100.0}, "y"),
    (".npy", {}, "itr.loc[1]"),
])
def test_every_written_format_refuses_on_reading(tmp_path, monkeypatch, ext, options, column):
    """Parquet, Arrow, .smlm, ThunderSTORM CSV, Picasso and MINFLUX files holding a
    coordinate beyond 1 m (here y = 3e20 nm at row 1) are refused by ``read``."""
    cols = {"x": [1.0, 2.0, 3.0], "y": [0.0, 3e20, 5.0], "frame": [0, 1, 2]}
    if ext == ".npy":  # MINFLUX: time and trace id instead of frames
        cols = {"x": cols["x"], "y": cols["y"], "time_s": [0.0, 0.1, 0.2], "track_id": [0, 0, 1]}
    t = make_table(cols)
    p = _write_unchecked(monkeypatch, t, tmp_path / f"a{ext}", **options)
    with pytest.raises(FormatError) as err:
        read(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}, column '{column}': |y| must be at most 1e+09 nm"), msg
    assert "at row 1 (rows count from 0; 1 such row)" in msg
    assert f"found {3e20:g}" in msg or "found 3e+20" in msg


@pytest.mark.parametrize("ext,options", [(".parquet", {}), (".arrow", {}), (".smlm", {}),
                                         (".csv", {}), (".hdf5", {"pixel_size_nm": 100.0}),
                                         (".npy", {})])
def test_write_refuses_before_writing(tmp_path, ext, options):
    """The writers never produce a file the readers refuse: one error naming the output,
    the column and the row, and nothing left in the folder."""
    t = make_table({"x": [1.0, -1e300], "y": [0.0, 0.0]})
    out = tmp_path / f"a{ext}"
    with pytest.raises(FormatError) as err:
        write(t, out, **options)
    assert str(err.value).startswith(f"{out}, column 'x': |x| must be at most 1e+09 nm")
    assert "found -1e+300 at row 1" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", [".parquet", ".arrow", ".smlm", ".csv"])
def test_the_limit_round_trips_exactly(tmp_path, ext):
    t = make_table({"x": [1.0, -MAX_COORDINATE_NM], "y": [MAX_COORDINATE_NM, 5e-324]})
    back = read(write(t, tmp_path / f"a{ext}"))
    assert back.column("x").to_pylist() == [1.0, -1e9]
    assert back.column("y").to_pylist() == [1e9, 5e-324]
