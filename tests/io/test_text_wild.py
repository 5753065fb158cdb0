"""Text files from the wild: re-saved dialects, quoted line breaks in large files,
truncation, negative frames, empty tables, and the unknown-format message.

Every fixture is written here; the expected values are those the rows were built from.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import smlmspine.io._text as text
from smlmspine.cli import main
from smlmspine.errors import FormatError, QualityWarning
from smlmspine.io import detect_format, read, write
from smlmspine.schema import make_table

ROWS = [(1, 10.5, 20.25, 150.0, 1000.0), (2, 11.5, 21.75, 151.5, 1100.0),
        (3, -12.125, 0.5, 149.0, 900.5)]
NAMES = ["id", "frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]"]


def _check_rows(t, rows=ROWS):
    assert t.column("frame").to_pylist() == [r[0] for r in rows]
    assert t.column("x").to_pylist() == [r[1] for r in rows]
    assert t.column("y").to_pylist() == [r[2] for r in rows]
    assert t.column("photons").to_pylist() == [r[4] for r in rows]


def _data_lines(delim, quote_numbers=False):
    out = []
    for i, (f, x, y, s, a) in enumerate(ROWS):
        vals = [f"{i + 1}.0", f"{f}.0", repr(x), repr(y), repr(s), repr(a)]
        if quote_numbers:
            vals = [f'"{v}"' for v in vals]
        out.append(delim.join(vals))
    return out


def _header(delim, style):
    if style == "bare":
        return delim.join(NAMES)
    if style == "per_field":
        return delim.join(f'"{n}"' for n in NAMES)
    # the whole header as one quoted field, inner quotes doubled (spreadsheet re-save)
    inner = delim.join(f'"{n}"' if i else n for i, n in enumerate(NAMES))
    return '"' + inner.replace('"', '""') + '"'


def test_header_quoted_as_one_field_exact(tmp_path, capsys):
    """The layout of the issue: `info` used to say 'unknown format'."""
    p = tmp_path / "resaved.csv"
    p.write_text('"id,""frame"",""x [nm]"",""y [nm]"",""sigma [nm]"",""intensity [photon]"""\n'
                 + "\n".join(_data_lines(",")) + "\n")
    assert detect_format(p) == "thunderstorm"
    t = read(p)
    _check_rows(t)
    assert t.column("sigma").to_pylist() == [r[3] for r in ROWS]
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "thunderstorm" in out and "localizations:   3" in out


@pytest.mark.parametrize("delim,style,bom,crlf,quote_numbers", [
    combo for combo in itertools.product([",", ";", "\t"], ["bare", "per_field", "whole"],
                                         [False, True], [False, True], [False, True])])
def test_thunderstorm_dialects(tmp_path, delim, style, bom, crlf, quote_numbers):
    eol = "\r\n" if crlf else "\n"
    body = eol.join([_header(delim, style)] + _data_lines(delim, quote_numbers)) + eol
    p = tmp_path / "locs.csv"
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode())
    assert detect_format(p) == "thunderstorm"
    t = read(p)
    _check_rows(t)
    assert t.column("precision_xy" if False else "sigma").to_pylist() == [r[3] for r in ROWS]


def test_dialect_detection_is_content_based(tmp_path):
    """The same ';'-separated content is read alike whatever the file is called."""
    body = "\n".join([_header(";", "whole")] + _data_lines(";")) + "\n"
    for name in ("a.csv", "a.txt", "a.tsv", "noext"):
        p = tmp_path / name
        p.write_text(body)
        assert detect_format(p) == "thunderstorm", name
        _check_rows(read(p))


def test_generic_header_quoted_as_one_field(tmp_path):
    p = tmp_path / "custom.txt"
    p.write_text('"X_pos;""Y_pos"";""t"""\n1.5;2.5;7\n3;4;8\n')
    assert detect_format(p) == "csv"
    t = read(p, mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"}, coordinate_unit="um")
    assert t.column("x").to_pylist() == [1500.0, 3000.0]
    assert t.column("frame").to_pylist() == [7, 8]


@pytest.mark.parametrize("fmt,header,rows", [
    ("zeiss", "First Frame,Position X [nm],Position Y [nm],Number Photons",
     ["1,10.5,20.5,300", "2,11.5,21.5,400"]),
    ("oni", "Channel;Frame;X (nm);Y (nm);Photons", ["0;1;10.5;20.5;300", "0;2;11.5;21.5;400"]),
    ("nstorm", '"Channel Name,""Xc"",""Yc"",""Frame"""', ["647,10.5,20.5,1", "647,11.5,21.5,2"]),
])
def test_vendor_exports_resaved_with_other_delimiters(tmp_path, fmt, header, rows):
    p = tmp_path / "export.txt"
    p.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join([header] + rows) + "\r\n").encode())
    assert detect_format(p) == fmt
    t = read(p)
    assert t.column("x").to_pylist() == [10.5, 11.5]
    assert t.column("frame").to_pylist() == [1, 2]


_RS = ('# <localizations insequence="true" repetitions="variable">'
       '<field identifier="Position-0-0" unit="nanometer" />'
       '<field identifier="Position-1-0" unit="nanometer" />'
       '<field identifier="ImageNumber-0-0" unit="frame" /></localizations>')


@pytest.mark.parametrize("delim", [" ", "\t", ",", ";"])
@pytest.mark.parametrize("quote_numbers", [False, True])
def test_rapidstorm_bom_crlf_and_resaved_delimiters(tmp_path, delim, quote_numbers):
    rows = [("12.5", "40", "3"), ("7", "8.25", "4")]
    q = '"' if quote_numbers else ""
    lines = [_RS] + [delim.join(f"{q}{v}{q}" for v in r) for r in rows]
    p = tmp_path / "rs.txt"
    p.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    assert detect_format(p) == "rapidstorm"
    t = read(p)
    assert t.column("x").to_pylist() == [12.5, 7.0]
    assert t.column("y").to_pylist() == [40.0, 8.25]
    assert t.column("frame").to_pylist() == [3, 4]


def test_decimal_comma_is_an_error_with_a_hint(tmp_path):
    p = tmp_path / "de.csv"
    p.write_text('"frame";"x [nm]";"y [nm]"\n1;10,5;20,5\n')
    with pytest.raises(FormatError, match=r"line 2, column 'x \[nm\]'.*'10,5'.*decimal comma"):
        read(p)


# ---------------------------------------------------------------- quoted line breaks

def _quoted_newline_file(path, n_rows):
    """ThunderSTORM CSV whose text column holds line breaks, commas and quotes.

    Returns the expected x values and notes (row i: x = i / 4, note = 'row i' + line
    break + 'b, "c"').
    """
    block = 10_000
    lines = []
    for i in range(block):
        lines.append(f'{i // 50},{i / 4!r},{(i % 97) * 1.5!r},"row {i}\nb, ""c"""\n')
    text_block = "".join(lines)
    with open(path, "w", newline="") as fh:
        fh.write('"frame","x [nm]","y [nm]","note"\n')
        for _ in range(n_rows // block):
            fh.write(text_block)
    reps = n_rows // block
    x = np.tile(np.arange(block) / 4, reps)
    notes = [f'row {i}\nb, "c"' for i in range(block)] * reps
    return x, notes


def test_quoted_line_breaks_across_chunks_small(tmp_path, monkeypatch):
    """With a chunk size of 4 KiB the newline-aligned parallel chunker would cut inside
    the quoted values; a file holding quotes is streamed with pyarrow's quote-aware
    chunker instead (also with 4 KiB blocks)."""
    p = tmp_path / "notes.csv"
    x, notes = _quoted_newline_file(p, 20_000)
    monkeypatch.setattr(text, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(text, "_BLOCK_BYTES", 4096)
    t = read(p)
    assert t.num_rows == 20_000
    np.testing.assert_array_equal(t.column("x").to_numpy(), x)
    assert t.column("note").to_pylist() == notes


def test_quoted_line_breaks_in_a_real_file_over_32_mb(tmp_path):
    """A >32 MB file (the size above which the parallel chunker runs) with line breaks
    inside quoted values reads exactly (it used to fail: 'truncated row')."""
    p = tmp_path / "big.csv"
    x, notes = _quoted_newline_file(p, 1_200_000)
    assert p.stat().st_size > 2 * text._CHUNK_BYTES
    t = read(p)
    assert t.num_rows == 1_200_000
    np.testing.assert_array_equal(t.column("x").to_numpy(), x)
    got = t.column("note")
    assert got[0].as_py() == notes[0] and got[-1].as_py() == notes[-1]
    assert got.to_pylist()[::9973] == notes[::9973]


def test_unquoted_large_file_still_uses_parallel_chunks(tmp_path, monkeypatch):
    p = tmp_path / "plain.csv"
    p.write_text('"frame","x [nm]","y [nm]"\n' +
                 "".join(f"{i},{i * 0.5!r},{i * 0.25!r}\n" for i in range(5000)))
    calls = []
    real = text._parallel_csv
    monkeypatch.setattr(text, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(text, "_parallel_csv", lambda *a, **k: calls.append(1) or real(*a, **k))
    t = read(p)
    assert calls and t.column("x").to_pylist() == [i * 0.5 for i in range(5000)]


def test_bad_value_after_multiline_records_names_its_line(tmp_path):
    p = tmp_path / "bad.csv"
    rows = [f'{i},{i}.5,1.0,"a\nb"' for i in range(5)] + ['5,oops,1.0,"c"']
    p.write_text('"frame","x [nm]","y [nm]","note"\n' + "\n".join(rows) + "\n")
    # header line 1, five records of two lines each (lines 2..11), the bad one on line 12
    with pytest.raises(FormatError, match=r"bad\.csv, line 12, column 'x \[nm\]'.*'oops'"):
        read(p)


def test_nonfinite_after_multiline_records_names_its_line(tmp_path):
    p = tmp_path / "nan.csv"
    rows = [f'{i},{i}.5,1.0,"a\nb"' for i in range(3)] + ['3,nan,1.0,"c"']
    p.write_text('"frame","x [nm]","y [nm]","note"\n' + "\n".join(rows) + "\n")
    with pytest.raises(FormatError, match=r"line 8, column 'x \[nm\]': coordinate x is not"):
        read(p)


# ---------------------------------------------------------------- unknown format

def test_unknown_format_names_the_layouts_tried(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello world\nthis is not a table\n")
    with pytest.raises(FormatError) as exc:
        detect_format(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: unknown format")
    assert "first line: 'hello world'" in msg
    from smlmspine.io import readers

    for name, r in readers().items():
        assert f"{name} ({r.description})" in msg, name
    assert "\n" not in msg


def test_unknown_format_binary_says_binary(tmp_path):
    p = tmp_path / "blob.csv"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FormatError, match=r"unknown format: .*\(binary content\); layouts tried"):
        detect_format(p)


# ---------------------------------------------------------------- truncation

@pytest.mark.parametrize("fmt,head,rows,cut_row", [
    ("thunderstorm", '"frame","x [nm]","y [nm]"', ["1,10.5,20.5", "2,11.5,21.5"], "3,12"),
    ("csv", "x (nm);y (nm);frame", ["10.5;20.5;1", "11.5;21.5;2"], "12.5;2"),
    ("rapidstorm", _RS, ["10.5 20.5 1", "11.5 21.5 2"], "12.5 2"),
])
def test_last_line_missing_a_field_is_an_error(tmp_path, fmt, head, rows, cut_row):
    p = tmp_path / "cut.txt"
    p.write_text("\n".join([head] + rows + [cut_row]))  # cut: no final line break
    with pytest.raises(FormatError, match="truncated row") as exc:
        read(p, format=fmt)
    assert exc.value.line == 4


@pytest.mark.parametrize("fmt,head,rows,cut_row,last", [
    ("thunderstorm", '"frame","x [nm]","y [nm]"', ["1,10.5,20.5", "2,11.5,21.5"], "3,12.5,2", "2"),
    ("zeiss", "First Frame\tPosition X [nm]\tPosition Y [nm]", ["1\t10.5\t20.5"], "2\t11.5\t21",
     "21"),
    ("rapidstorm", _RS, ["10.5 20.5 1", "11.5 21.5 2"], "12.5 22.5 3", "3"),
])
def test_last_line_without_line_break_warns_naming_the_line(tmp_path, fmt, head, rows, cut_row,
                                                            last):
    p = tmp_path / "cut.txt"
    p.write_text("\n".join([head] + rows + [cut_row]))
    n_line = len(rows) + 2
    with pytest.warns(QualityWarning, match=rf"cut\.txt, line {n_line}: the file does not end "
                                            rf"with a line break.*last value '{last}'"):
        t = read(p, format=fmt)
    assert t.num_rows == len(rows) + 1          # the rows are read, the user is told


def test_zeiss_trailer_after_complete_rows_does_not_warn(tmp_path):
    p = tmp_path / "z.txt"
    p.write_bytes(b"First Frame\tPosition X [nm]\tPosition Y [nm]\n1\t10.5\t20.5\n"
                  b"\x00Meta=1")
    assert read(p).num_rows == 1   # filterwarnings=error: any warning would fail here


def test_rapidstorm_track_file_without_final_line_break_warns(tmp_path):
    hdr = ('# <localizations insequence="true" repetitions="variable">'
           '<field identifier="Position-0-0" unit="nanometer" />'
           '<field identifier="Position-1-0" unit="nanometer" />'
           '<localizations insequence="true" repetitions="variable">'
           '<field identifier="Position-0-0" unit="nanometer" />'
           '<field identifier="Position-1-0" unit="nanometer" />'
           '<field identifier="ImageNumber-0-0" unit="frame" /></localizations></localizations>')
    p = tmp_path / "tracks.txt"
    p.write_text(hdr + "\n10 20 1 9 19 4\n5 6 1 5 6 7")
    with pytest.warns(QualityWarning, match="line 3: the file does not end"):
        t = read(p)
    assert t.column("frame").to_pylist() == [4, 7]


# ---------------------------------------------------------------- negative frames

@pytest.mark.parametrize("fmt,head,rows,column", [
    ("thunderstorm", '"frame","x [nm]","y [nm]"', ["1,10.5,20.5", "-2,11.5,21.5"], "frame"),
    ("thunderstorm", '"frame","x [nm]","y [nm]"', ["1.0,10.5,20.5", "-2.0,11.5,21.5"], "frame"),
    ("csv", "x (nm);y (nm);frame", ["10.5;20.5;1", "11.5;21.5;-2"], "frame"),
    ("zeiss", "First Frame\tPosition X [nm]\tPosition Y [nm]", ["1\t10.5\t20.5",
                                                                 "-2\t11.5\t21.5"], "First Frame"),
    ("rapidstorm", _RS, ["10.5 20.5 1", "11.5 21.5 -2"], "ImageNumber-0-0"),
])
def test_negative_frame_is_a_format_error(tmp_path, fmt, head, rows, column):
    p = tmp_path / "neg.txt"
    p.write_text("\n".join([head] + rows) + "\n")
    with pytest.raises(FormatError, match=r"frame must be >= 0.*found -2") as exc:
        read(p, format=fmt)
    assert exc.value.line == 3 and exc.value.column == column


def test_negative_frame_in_a_track_file_names_the_track_line(tmp_path):
    hdr = ('# <localizations><field identifier="Position-0-0" unit="nanometer" />'
           '<localizations><field identifier="Position-0-0" unit="nanometer" />'
           '<field identifier="Position-1-0" unit="nanometer" />'
           '<field identifier="ImageNumber-0-0" unit="frame" /></localizations></localizations>')
    p = tmp_path / "tracks.txt"
    p.write_text(hdr + "\n10 1 9 19 4\n5 2 5 6 7 5 6 -1\n")
    with pytest.raises(FormatError, match="frame must be >= 0") as exc:
        read(p)
    assert exc.value.line == 3


def test_csv_writer_refuses_negative_frames(tmp_path):
    t = make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0, -1]})
    with pytest.raises(FormatError, match=r"frame must be >= 0.*found -1 at row 1"):
        write(t, tmp_path / "o.csv")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- empty tables

@pytest.mark.parametrize("body", [
    '"frame","x [nm]","y [nm]"\n',
    '"frame","x [nm]","y [nm]"\r\n\r\n\r\n',
    '"frame,""x [nm]"",""y [nm]"""\n',
    "\ufeffframe;x [nm];y [nm]\n",
])
def test_info_on_header_only_is_one_clear_line(tmp_path, capsys, body):
    p = tmp_path / "empty.csv"
    p.write_bytes(body.encode())
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no localizations: the file has a header but no data rows" in err


def test_info_on_a_table_without_rows(tmp_path, capsys):
    """A valid empty table (Parquet) gives a summary, not a traceback."""
    t = make_table({"x": [1.0], "y": [2.0], "frame": [1]}).slice(0, 0)
    p = write(t, tmp_path / "empty.parquet")
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "localizations:   0" in out and "x bounds (nm):   none" in out
    assert main(["info", "--json", str(p)]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["n_localizations"] == 0 and doc["bounds_nm"] == {"x": None, "y": None}
    assert doc["frame_range"] is None
    assert os.path.getsize(p) > 0


def test_unclosed_quote_is_an_error_not_lost_rows(tmp_path):
    """pyarrow reads everything after an unclosed quote as one value (rows 4.. would
    vanish into the note of row 3); the reader refuses the file naming the line."""
    p = tmp_path / "open.csv"
    p.write_text('"frame","x [nm]","y [nm]","note"\n1,1.5,2.5,"ok"\n2,3.5,4.5,"a, ""b"""\n'
                 '3,5.5,6.5,"never closed\n4,7.5,8.5,"x"\n5,9.5,10.5,y\n')
    with pytest.raises(FormatError, match=r"open\.csv, line 4: a quoted value is never closed"):
        read(p)


def test_text_with_quotes_commas_and_line_breaks_round_trips(tmp_path):
    notes = ['plain', 'a, "quoted" b', 'two\nlines', '', 'end"']
    t = make_table({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [0.5] * 5, "frame": [0, 1, 2, 3, 4],
                    "note": notes})
    back = read(write(t, tmp_path / "o.csv"))
    assert back.column("note").to_pylist() == [n if n else None for n in notes]
    assert back.column("x").to_pylist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_utf16_export_is_named_as_such(tmp_path):
    p = tmp_path / "unicode.txt"
    p.write_bytes('frame\tx [nm]\ty [nm]\n1\t10.5\t20.5\n'.encode("utf-16"))
    with pytest.raises(FormatError, match=r"unknown format: .*\(UTF-16 text: save it as UTF-8\)"):
        read(p)
    with pytest.raises(FormatError, match=r"line 1: UTF-16 text .*save it as UTF-8"):
        read(p, format="thunderstorm")
    p.write_bytes('frame\tx [nm]\ty [nm]\n1\t10.5\t20.5\n'.encode("utf-8"))
    assert read(p).column("x").to_pylist() == [10.5]
