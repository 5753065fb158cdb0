"""The bad-input catalogue for every text reader: each case is a FormatError that
names the file and, where it applies, the line and the column."""

from __future__ import annotations

import pytest

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read

_RS = ('# <localizations insequence="true" repetitions="variable">'
       '<field identifier="Position-0-0" unit="{u}" /><field identifier="Position-1-0" unit="{u}" />'
       '<field identifier="ImageNumber-0-0" unit="frame" /></localizations>')

# format -> (file name, delimiter, header line, column order, pixel-unit header line)
FORMATS = {
    "thunderstorm": ("ts.csv", ",", '"frame","x [nm]","y [nm]"', ("frame", "x", "y"),
                     '"frame","x [px]","y [px]"'),
    "rapidstorm": ("rs.txt", " ", _RS.format(u="nanometer"), ("x", "y", "frame"),
                   _RS.format(u="pixel")),
    "zeiss": ("zeiss.txt", "\t", "First Frame\tPosition X [nm]\tPosition Y [nm]",
              ("frame", "x", "y"), "First Frame\tPosition X [px]\tPosition Y [px]"),
    "oni": ("oni.csv", ",", "Channel,Frame,X (nm),Y (nm)", ("channel", "frame", "x", "y"),
            "Channel,Frame,X (pix),Y (pix)"),
    "nstorm": ("nstorm.txt", "\t", "Channel Name\tXc\tYc\tFrame", ("channel", "x", "y", "frame"),
               None),
    # units in parentheses and no Channel/Photons column: no dedicated sniffer claims it
    # (a ';'-separated 'x [nm]' header is ThunderSTORM's, whatever the delimiter)
    "csv": ("generic.csv", ";", "x (nm);y (nm);frame", ("x", "y", "frame"),
            "x (px);y (px);frame"),
}
TEXT_FORMATS = list(FORMATS)


def sample(tmp_path, fmt, rows, *, header=None, delimiter=None):
    name, delim, head, order, _ = FORMATS[fmt]
    delim = delimiter or delim
    lines = [head if header is None else header]
    for r in rows:
        lines.append(delim.join(str(r.get(c, "1")) for c in order) if isinstance(r, dict) else r)
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


GOOD = [{"frame": 1, "x": 10.5, "y": 20.5, "channel": 0},
        {"frame": 2, "x": 11.5, "y": 21.5, "channel": 0}]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_valid_sample_reads(tmp_path, fmt):
    p = sample(tmp_path, fmt, GOOD)
    assert detect_format(p) == fmt
    t = read(p)
    assert t.column("x").to_pylist() == [10.5, 11.5]
    assert t.column("frame").to_pylist() == [1, 2]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_empty_file(tmp_path, fmt):
    p = tmp_path / FORMATS[fmt][0]
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="empty") as exc:
        read(p, format=fmt)
    assert exc.value.path == p
    with pytest.raises(FormatError, match="empty"):
        read(p)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_header_only(tmp_path, fmt):
    p = sample(tmp_path, fmt, [])
    with pytest.raises(FormatError, match="header but no data rows") as exc:
        read(p, format=fmt)
    assert exc.value.path == p and exc.value.line == 2


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_truncated_row(tmp_path, fmt):
    delim = FORMATS[fmt][1]
    p = sample(tmp_path, fmt, GOOD + [delim.join(["3", "12.5"])] + GOOD)
    with pytest.raises(FormatError, match="truncated row") as exc:
        read(p, format=fmt)
    assert exc.value.line == 4 and str(p) in str(exc.value)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_overlong_row(tmp_path, fmt):
    delim = FORMATS[fmt][1]
    order = FORMATS[fmt][3]
    p = sample(tmp_path, fmt, GOOD + [delim.join(["1"] * (len(order) + 2))])
    with pytest.raises(FormatError, match="too many fields") as exc:
        read(p, format=fmt)
    assert exc.value.line == 4


@pytest.mark.parametrize("fmt", ["thunderstorm", "zeiss", "oni", "nstorm", "csv"])
def test_wrong_delimiter(tmp_path, fmt):
    """A delimiter outside ',', ';', tab (those are all read, see test_text_wild.py)."""
    name, delim, head, order, _ = FORMATS[fmt]
    wrong = "|"
    p = sample(tmp_path, fmt, GOOD, header=head.replace(delim, wrong), delimiter=wrong)
    with pytest.raises(FormatError) as exc:
        read(p, format=fmt)
    assert exc.value.line == 1 and str(p) in str(exc.value)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_missing_coordinate_column(tmp_path, fmt):
    name, delim, head, order, _ = FORMATS[fmt]
    if fmt == "rapidstorm":
        header = head.replace('<field identifier="Position-1-0" unit="nanometer" />', "")
        rows = ["10.5 1", "11.5 2"]
    else:
        ycol = {"thunderstorm": '"y [nm]"', "zeiss": "Position Y [nm]", "oni": "Y (nm)",
                "nstorm": "Yc", "csv": "y (nm)"}[fmt]
        header = head.replace(ycol, "other")
        rows = GOOD
    p = sample(tmp_path, fmt, rows, header=header)
    with pytest.raises(FormatError, match=r"(?i)missing|no column|Position-1-0") as exc:
        read(p, format=fmt)
    assert exc.value.path == p


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", ""])
def test_nonfinite_coordinate(tmp_path, fmt, bad):
    if fmt == "rapidstorm" and bad == "":
        pytest.skip("an empty field cannot be written in a space-separated file")
    rows = GOOD + [{"frame": 3, "x": 1.0, "y": bad, "channel": 0}] + GOOD
    p = sample(tmp_path, fmt, rows)
    with pytest.raises(FormatError, match="not finite") as exc:
        read(p, format=fmt)
    assert exc.value.line == 4
    assert exc.value.column is not None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_non_numeric_coordinate(tmp_path, fmt):
    rows = GOOD + [{"frame": 3, "x": "12.x", "y": 1.0, "channel": 0}]
    p = sample(tmp_path, fmt, rows)
    with pytest.raises(FormatError, match="12.x") as exc:
        read(p, format=fmt)
    assert exc.value.line == 4 and exc.value.column is not None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_non_integer_frame(tmp_path, fmt):
    rows = GOOD + [{"frame": 2.5, "x": 1.0, "y": 1.0, "channel": 0}]
    with pytest.raises(FormatError, match="whole number, found 2.5") as exc:
        read(sample(tmp_path, fmt, rows), format=fmt)
    assert exc.value.line == 4 and exc.value.column is not None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_binary_garbage_with_text_extension(tmp_path, fmt):
    p = tmp_path / FORMATS[fmt][0]
    p.write_bytes(bytes(range(256)) * 8 + b"\x00\xff\xfe garbage")
    with pytest.raises(FormatError, match="binary|unknown format|UTF-8|no localizations") as exc:
        read(p, format=fmt)
    assert exc.value.path == p
    with pytest.raises(FormatError, match="unknown format"):
        read(p)


@pytest.mark.parametrize("fmt", [f for f in TEXT_FORMATS if FORMATS[f][4]])
def test_pixel_units_without_pixel_size(tmp_path, fmt):
    p = sample(tmp_path, fmt, GOOD, header=FORMATS[fmt][4])
    with pytest.raises(FormatError, match="pixel_size_nm") as exc:
        read(p, format=fmt)
    assert exc.value.column is not None and str(p) in str(exc.value)
    t = read(p, format=fmt, pixel_size_nm=100.0)
    assert t.column("x").to_pylist() == [1050.0, 1150.0]


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan")])
def test_bad_pixel_size(tmp_path, bad):
    p = sample(tmp_path, "thunderstorm", GOOD, header=FORMATS["thunderstorm"][4])
    with pytest.raises(FormatError, match="pixel_size_nm must be"):
        read(p, pixel_size_nm=bad)


def test_unreadable_path(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        read(tmp_path / "missing.csv", format="thunderstorm")
    with pytest.raises(FormatError, match="directory"):
        read(tmp_path, format="csv")


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from smlmspine.cli import main

    p = sample(tmp_path, "thunderstorm", GOOD + ["3,1.0"])
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 4" in err and "Traceback" not in err


def test_sniffers_are_exclusive(tmp_path):
    """Every sample is claimed by exactly one dedicated text sniffer (whatever the
    registration order), and the CSV writer's output is claimed by ThunderSTORM's."""
    from smlmspine.io import nstorm, oni, rapidstorm, thunderstorm, write, zeiss
    from smlmspine.schema import make_table

    mods = {"thunderstorm": thunderstorm, "rapidstorm": rapidstorm, "zeiss": zeiss,
            "oni": oni, "nstorm": nstorm}
    paths = {fmt: sample(tmp_path, fmt, GOOD) for fmt in mods}
    out = write(make_table({"x": [1.0], "y": [2.0], "frame": [1], "channel": [0],
                            "photons": [3.0]}), tmp_path / "written.csv")
    paths["thunderstorm-written"] = out
    for fmt, p in paths.items():
        head = p.read_bytes()
        claims = [name for name, m in mods.items() if m._sniff(p, head)]
        assert claims == [fmt.split("-")[0]], (fmt, claims)


@pytest.mark.parametrize("content", ['{"x": 1, "y": 2}\n', '[1, 2, 3]\n', '<a b="1,2"/>\n',
                                     "just one column\nof words\n"])
def test_generic_sniffer_rejects_non_tables(tmp_path, content):
    p = tmp_path / "thing.txt"
    p.write_text(content)
    with pytest.raises(FormatError, match="unknown format"):
        detect_format(p)


def test_generic_csv_with_a_bad_row_among_its_first_lines_names_the_row(tmp_path):
    # the generic sniffer needs the header and the first rows to agree; one short row
    # among them (a hand-edited or spliced file) made it "unknown format"
    p = tmp_path / "edited.csv"
    p.write_text("x,y,z,frame\n1.5,2.5,3.5,1\n4.5,5.5,6.5,2\n7.5,8.5\n10.5,11.5,12.5,4\n"
                 "13.5,14.5,15.5,5\n")
    assert detect_format(p) == "csv"
    with pytest.raises(FormatError, match="truncated row") as exc:
        read(p, coordinate_unit="nm")
    assert "line 4" in str(exc.value) and "edited.csv" in str(exc.value)
    long_row = tmp_path / "long.csv"
    long_row.write_text("x;y;frame\n1;2;1\n3;4;5;6\n7;8;2\n9;10;3\n")
    with pytest.raises(FormatError, match="too many fields") as exc:
        read(long_row, coordinate_unit="nm")
    assert "line 3" in str(exc.value)


def test_text_that_is_not_a_table_stays_unknown(tmp_path):
    # prose with commas, and a table whose rows mostly disagree with its header
    prose = tmp_path / "notes.csv"
    prose.write_text("Acquired on the N-STORM, 3D, 20 ms per frame.\nDrift: corrected, "
                     "beads.\nSee the lab book, page 12, for the buffer.\nNothing else.\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y,z\n1,2\n3,4,5\n")
    for p in (prose, bad):
        with pytest.raises(FormatError, match="unknown format"):
            read(p, coordinate_unit="nm")
