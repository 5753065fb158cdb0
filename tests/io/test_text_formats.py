"""rapidSTORM, Zeiss ZEN, ONI Nanoimager, Nikon N-STORM and generic CSV/TSV readers.

Each sample is written here from the format's documented layout; values are checked
in nm against the numbers written.
"""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.errors import FormatError
from smlmspine.io import detect_format, read, write
from smlmspine.schema import metadata, unit_of

# ------------------------------------------------------------------ rapidSTORM

_FIELD = ('<field identifier="{id}" syntax="floating point with . for decimals and optional '
          'scientific e-notation" semantic="{sem}" unit="{unit}" min="0 m" max="3.3e-05 m" />')


def rs_header(fields, members=None):
    inner = "".join(_FIELD.format(id=i, sem="s", unit=u) for i, u in fields)
    if members is not None:
        inner += ('<localizations insequence="true" repetitions="variable">' +
                  "".join(_FIELD.format(id=i, sem="s", unit=u) for i, u in members) +
                  "</localizations>")
    return f'# <localizations insequence="true" repetitions="variable">{inner}</localizations>'


RS_FIELDS_3D = [("Position-0-0", "nanometer"), ("Position-1-0", "nanometer"),
                ("Position-2-0", "nanometer"), ("ImageNumber-0-0", "frame"),
                ("Amplitude-0-0", "A/D count"), ("FitResidues-0-0", "A/D count"),
                ("LocalBackground-0-0", "A/D count"), ("Position-0-0-uncertainty", "nanometer")]


def test_rapidstorm_3d(tmp_path):
    p = tmp_path / "locs.txt"
    rows = [(5321.25, 1204.5, -120.5, 0, 2200.1, 12.0, 31.5, 9.5),
            (10.0, 20.0, 30.0, 4, 1000.0, 1.0, 2.0, 3.0)]
    p.write_text(rs_header(RS_FIELDS_3D) + "\n" +
                 "\n".join(" ".join(repr(v) for v in r) for r in rows) + "\n")
    assert detect_format(p) == "rapidstorm"
    t = read(p)
    assert t.column("x").to_pylist() == [5321.25, 10.0]
    assert t.column("z").to_pylist() == [-120.5, 30.0]
    assert t.column("frame").to_pylist() == [0, 4]
    assert t.column("precision_xy").to_pylist() == [9.5, 3.0]
    # A/D counts are not photons: kept under their own names with the unit
    assert "photons" not in t.column_names and "background" not in t.column_names
    assert t.column("amplitude").to_pylist() == [2200.1, 1000.0]
    assert unit_of(t, "amplitude") == "A/D count"
    assert t.column("local_background").to_pylist() == [31.5, 2.0]


@pytest.mark.parametrize("unit,factor,pix", [("micrometer", 1000.0, None), ("pixel", 133.0, 133.0)])
def test_rapidstorm_units(tmp_path, unit, factor, pix):
    p = tmp_path / "locs.txt"
    p.write_text(rs_header([("Position-0-0", unit), ("Position-1-0", unit),
                            ("ImageNumber-0-0", "frame")]) + "\n1.5 2.25 1\n")
    t = read(p, pixel_size_nm=pix)
    assert t.column("x").to_pylist() == [1.5 * factor]
    assert t.column("y").to_pylist() == [2.25 * factor]
    if unit == "pixel":
        with pytest.raises(FormatError, match="pixel_size_nm"):
            read(p)


def test_rapidstorm_trailing_space_and_crlf(tmp_path):
    p = tmp_path / "locs.txt"
    p.write_bytes((rs_header(RS_FIELDS_3D[:4]) + "\r\n1.5 2.5 3.5 7 \r\n4.5 5.5 6.5 8 \r\n").encode())
    t = read(p)
    assert t.column_names == ["x", "y", "z", "frame"]
    assert t.column("z").to_pylist() == [3.5, 6.5] and t.column("frame").to_pylist() == [7, 8]


def test_rapidstorm_track_file(tmp_path):
    p = tmp_path / "tracks.txt"
    outer = [("Position-0-0", "nanometer"), ("Position-1-0", "nanometer"),
             ("ImageNumber-0-0", "frame"), ("Amplitude-0-0", "A/D count")]
    members = [("Position-0-0", "nanometer"), ("Position-1-0", "nanometer"),
               ("ImageNumber-0-0", "frame"), ("Amplitude-0-0", "A/D count")]
    lines = [rs_header(outer, members),
             "100 200 3 500 2 99 199 3 250 101 201 4 250",
             "50 60 7 100 1 50 60 7 100",
             "1 2 9 10 3 1 2 9 3 1 2 10 3 1 2 11 4"]
    p.write_text("\n".join(lines) + "\n")
    t = read(p)
    assert t.num_rows == 6
    assert t.column("track_id").to_pylist() == [0, 0, 1, 2, 2, 2]
    assert t.column("x").to_pylist() == [99.0, 101.0, 50.0, 1.0, 1.0, 1.0]
    assert t.column("frame").to_pylist() == [3, 4, 7, 9, 10, 11]
    c = read(p, format="rapidstorm", tracks="centers")
    assert c.column("x").to_pylist() == [100.0, 50.0, 1.0]
    assert c.column("n_localizations").to_pylist() == [2, 1, 3]
    assert c.column("track_id").to_pylist() == [0, 1, 2]


def test_rapidstorm_track_bad_count(tmp_path):
    p = tmp_path / "tracks.txt"
    f = [("Position-0-0", "nanometer"), ("Position-1-0", "nanometer")]
    p.write_text(rs_header(f, f) + "\n1 2 1 1 2\n1 2 2 1 2\n")
    with pytest.raises(FormatError, match="line 3") as exc:
        read(p)
    assert exc.value.line == 3


@pytest.mark.parametrize("count", ["nan", "inf", "-1", "1.5"])
def test_rapidstorm_track_bad_count_values(tmp_path, count):
    from smlmspine.io.rapidstorm import read_rapidstorm

    p = tmp_path / "tracks.txt"
    f = [("Position-0-0", "nanometer"), ("Position-1-0", "nanometer")]
    p.write_text(rs_header(f, f) + f"\n1 2 {count} 1 2\n")
    with pytest.raises(FormatError, match="line 2"):
        read_rapidstorm(p)


def test_rapidstorm_header_without_x(tmp_path):
    p = tmp_path / "locs.txt"
    p.write_text(rs_header([("Position-1-0", "nanometer")]) + "\n1\n")
    with pytest.raises(FormatError, match="Position-0-0"):
        read(p)


def test_rapidstorm_rejects_entities(tmp_path):
    p = tmp_path / "locs.txt"
    p.write_text('# <localizations><!DOCTYPE x [<!ENTITY a "b">]></localizations>\n1 2\n')
    with pytest.raises(FormatError):
        read(p, format="rapidstorm")


# ------------------------------------------------------------------ Zeiss ZEN

ZEISS_HEADER = ["Index", "First Frame", "Number Frames", "Frames Missing", "Position X [nm]",
                "Position Y [nm]", "Position Z [nm]", "Precision [nm]", "Number Photons",
                "Background variance", "Chi square", "PSF half width [nm]", "Channel", "Z Slice"]


def write_zeiss(path, rows, *, trailer=True, header=ZEISS_HEADER):
    text = "\t".join(header) + "\n" + "\n".join("\t".join(str(v) for v in r) for r in rows) + "\n"
    data = text.encode("latin-1")
    if trailer:
        data += b"\x00\x00VoxelSizeX\t0.1\nImage\t\xb5m stuff\x00\x01\x02"
    path.write_bytes(data)
    return path


def test_zeiss_3d_with_metadata_trailer(tmp_path):
    rows = [(1, 1, 1, 0, 5321.2, 1204.9, -120.5, 9.2, 2200, 12.3, 1.1, 250.0, 1, 0),
            (2, 3, 2, 1, 11.5, 12.5, 13.5, 8.0, 900, 2.5, 0.9, 240.0, 2, 0)]
    p = write_zeiss(tmp_path / "elyra.txt", rows)
    assert detect_format(p) == "zeiss"
    t = read(p)
    assert t.num_rows == 2
    assert t.column("x").to_pylist() == [5321.2, 11.5]
    assert t.column("z").to_pylist() == [-120.5, 13.5]
    assert t.column("frame").to_pylist() == [1, 3]
    assert t.column("precision_xy").to_pylist() == [9.2, 8.0]
    assert t.column("photons").to_pylist() == [2200.0, 900.0]
    assert t.column("channel").to_pylist() == [1, 2]
    assert "background" not in t.column_names  # a variance, kept as such
    assert t.column("background_variance").to_pylist() == [12.3, 2.5]
    assert unit_of(t, "psf_half_width") == "nm"
    assert t.column("number_frames").to_pylist() == [1, 2]


def test_zeiss_2d_without_trailer(tmp_path):
    header = [h for h in ZEISS_HEADER if h != "Position Z [nm]"]
    rows = [(1, 1, 1, 0, 5.0, 6.0, 9.2, 2200, 12.3, 1.1, 250.0, 1, 0)]
    t = read(write_zeiss(tmp_path / "e.txt", rows, trailer=False, header=header))
    assert "z" not in t.column_names and t.column("y").to_pylist() == [6.0]


def test_zeiss_header_only_with_trailer(tmp_path):
    p = write_zeiss(tmp_path / "e.txt", [], trailer=True)
    with pytest.raises(FormatError, match="no localizations"):
        read(p)


# ------------------------------------------------------------------ ONI

ONI_HEADER = ["Channel", "Frame", "X (nm)", "Y (nm)", "Z (nm)", "X precision (nm)",
              "Y precision (nm)", "X (pix)", "Y (pix)", "Z (pix)", "Photons", "Background",
              "PSF Sigma X (pix)", "PSF Sigma Y (pix)"]


def test_oni_3d(tmp_path):
    p = tmp_path / "oni.csv"
    p.write_text(",".join(ONI_HEADER) + "\n"
                 "0,12,5321.2,1204.9,-120.5,9.1,9.3,45.6,10.3,-1.03,2200,12.3,1.2,1.3\n"
                 "1,13,1.5,2.5,3.5,4.0,4.1,0.01,0.02,0.03,100,1.0,1.1,1.2\n")
    assert detect_format(p) == "oni"
    t = read(p)
    assert t.column("x").to_pylist() == [5321.2, 1.5]
    assert t.column("z").to_pylist() == [-120.5, 3.5]
    assert t.column("precision_xy").to_pylist() == [9.1, 4.0]
    assert t.column("channel").to_pylist() == [0, 1]
    assert t.column("frame").to_pylist() == [12, 13]
    assert t.column("photons").to_pylist() == [2200.0, 100.0]
    assert t.column("background").to_pylist() == [12.3, 1.0]
    assert t.column("x_pix").to_pylist() == [45.6, 0.01] and unit_of(t, "x_pix") == "pix"
    assert unit_of(t, "y_precision") == "nm"


def test_oni_pixels_only(tmp_path):
    p = tmp_path / "oni.csv"
    p.write_text("Channel,Frame,X (pix),Y (pix),Photons\n0,1,10.5,20.25,300\n")
    t = read(p, pixel_size_nm=117.0)
    assert t.column("x").to_pylist() == [10.5 * 117.0]
    with pytest.raises(FormatError, match="pixel_size_nm"):
        read(p)


# ------------------------------------------------------------------ N-STORM

NSTORM_HEADER = ["Channel Name", "X", "Y", "Xc", "Yc", "Height", "Area", "Width", "Phi", "Ax",
                 "BG", "I", "Frame", "Length", "Link", "Valid", "Z", "Zc", "Photons",
                 "Lateral Localization Accuracy", "Xw", "Yw", "Xwc", "Ywc"]


def test_nstorm(tmp_path):
    p = tmp_path / "nstorm.txt"
    rows = [["647", 5321.2, 1204.9, 5318.0, 1203.1, 900, 12000, 300, 0.1, 1.05, 120, 12000,
             12, 1, -1, 1, -120.5, -118.0, 2200, 9.2, 5321.2, 1204.9, 5318.0, 1203.1],
            ["Z Rejected", 10, 20, 11, 21, 900, 12000, 300, 0.1, 1.05, 120, 12000,
             13, 1, -1, 0, 5, 6, 300, 20.5, 10, 20, 11, 21],
            ["488", 1, 2, 3, 4, 900, 12000, 300, 0.1, 1.05, 120, 12000,
             14, 1, -1, 1, 7, 8, 400, 10.0, 1, 2, 3, 4]]
    p.write_text("\t".join(NSTORM_HEADER) + "\n" +
                 "\n".join("\t".join(str(v) for v in r) for r in rows) + "\n")
    assert detect_format(p) == "nstorm"
    t = read(p)
    assert t.column("x").to_pylist() == [5318.0, 11.0, 3.0]   # drift corrected
    assert t.column("y").to_pylist() == [1203.1, 21.0, 4.0]
    assert t.column("z").to_pylist() == [-118.0, 6.0, 8.0]
    assert t.column("x_raw").to_pylist() == [5321.2, 10.0, 1.0]
    assert t.column("z_raw").to_pylist() == [-120.5, 5.0, 7.0]
    assert unit_of(t, "x_raw") == "nm"
    assert t.column("frame").to_pylist() == [12, 13, 14]
    assert t.column("photons").to_pylist() == [2200.0, 300.0, 400.0]
    assert t.column("precision_xy").to_pylist() == [9.2, 20.5, 10.0]
    assert t.column("channel_name").to_pylist() == ["647", "Z Rejected", "488"]
    assert t.column("channel").to_pylist() == [1, 2, 0]     # sorted names: 488, 647, Z Rejected


# ------------------------------------------------------------------ generic CSV/TSV


@pytest.mark.parametrize("delim", [",", ";", "\t"])
def test_generic_mapping_and_delimiters(tmp_path, delim):
    p = tmp_path / "custom.txt"
    p.write_text(delim.join(["X_pos", "Y_pos", "t", "note"]) + "\n" +
                 delim.join(["1.5", "2.5", "7", "a"]) + "\n" +
                 delim.join(["3.5", "4.5", "8", "b"]) + "\n")
    assert detect_format(p) == "csv"
    t = read(p, mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"}, coordinate_unit="um")
    assert t.column("x").to_pylist() == [1500.0, 3500.0]
    assert t.column("frame").to_pylist() == [7, 8]
    assert t.column("note").to_pylist() == ["a", "b"]
    assert metadata(t)["column_mapping"] == {"x": "X_pos", "y": "Y_pos", "frame": "t"}


def test_generic_unit_from_header_and_required_otherwise(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("px_x (nm);px_y (nm)\n1;2\n")
    t = read(p, format="csv", mapping={"x": "px_x (nm)", "y": "px_y (nm)"})
    assert t.column("x").to_pylist() == [1.0]
    q = tmp_path / "d.csv"
    q.write_text("a;b\n1;2\n")
    with pytest.raises(FormatError, match="coordinate_unit"):
        read(q, mapping={"x": "a", "y": "b"})
    t = read(q, mapping={"x": "a", "y": "b"}, coordinate_unit="px", pixel_size_nm=100.0)
    assert t.column("y").to_pylist() == [200.0]


def test_generic_canonical_names_without_mapping(tmp_path):
    p = tmp_path / "c.tsv"
    p.write_text("x [nm]\ty [nm]\tframe\tphotons\n1\t2\t3\t4\n")
    t = read(p, format="csv")
    assert t.column("photons").to_pylist() == [4.0] and t.column("frame").to_pylist() == [3]


def test_generic_unit_as_header_suffix(tmp_path):
    """``x_nm``/``xnm``/``Z_um``: the unit stated as a suffix is used, never guessed."""
    p = tmp_path / "pandas.csv"
    p.write_text("x_nm,Y_NM,zum,frame,precision_xy_nm,sigma_nm\n1.5,2,0.25,3,9,12\n")
    t = read(p)
    assert detect_format(p) == "csv"
    assert t.column("x").to_pylist() == [1.5] and t.column("y").to_pylist() == [2.0]
    assert t.column("z").to_pylist() == [250.0]          # um -> nm
    assert t.column("precision_xy").to_pylist() == [9.0]
    assert t.column("sigma_nm").to_pylist() == [12]       # not a canonical length: kept
    assert t.schema.field("x").metadata[b"unit"] == b"nm"
    assert metadata(t)["column_mapping"]["z"] == "zum"
    # pixels as a suffix still need the pixel size
    q = tmp_path / "px.csv"
    q.write_text("x_px;y_px;frame\n1.5;2;3\n")
    with pytest.raises(FormatError, match="pixel_size_nm"):
        read(q)
    assert read(q, pixel_size_nm=100.0).column("x").to_pylist() == [150.0]
    # a bare "x" is still the x column and needs its unit; "x_nm" beside it is kept
    r = tmp_path / "both.csv"
    r.write_text("x,x_nm,y\n1.5,3,2\n")
    with pytest.raises(FormatError, match="coordinate_unit"):
        read(r)
    t = read(r, coordinate_unit="um")
    assert t.column("x").to_pylist() == [1500.0] and t.column("x_nm").to_pylist() == [3]
    # "m" alone is not taken as a suffix unit ("xm", "ym" are names, not metres)
    m = tmp_path / "m.csv"
    m.write_text("xm,ym\n1,2\n")
    with pytest.raises(FormatError, match="no column for"):
        read(m)


def test_generic_mapping_keeps_the_other_canonical_names(tmp_path):
    """Mapping x and y must not demote "frame" and "spine_id" to "*_source" columns."""
    p = tmp_path / "labels.csv"
    p.write_text("X_pos,Y_pos,z,frame,spine_id,t\n1.5,2,3,7,4,9\n")
    t = read(p, mapping={"x": "X_pos", "y": "Y_pos"}, coordinate_unit="nm")
    assert t.column("frame").to_pylist() == [7] and t.column("spine_id").to_pylist() == [4]
    assert t.column("z").to_pylist() == [3.0] and "frame_source" not in t.column_names
    # a mapped target wins over the column of its canonical name, which is kept aside
    t = read(p, mapping={"x": "X_pos", "y": "Y_pos", "frame": "t"}, coordinate_unit="nm")
    assert t.column("frame").to_pylist() == [9] and t.column("frame_source").to_pylist() == [7]


def test_generic_bad_mapping(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("a;b\n1;2\n")
    with pytest.raises(FormatError, match=r"no such column.*\['a', 'b'\]"):
        read(p, mapping={"x": "A", "y": "b"}, coordinate_unit="nm")
    with pytest.raises(FormatError, match="not a canonical column"):  # registry wraps ParameterError
        read(p, mapping={"xpos": "a", "y": "b"}, coordinate_unit="nm")
    with pytest.raises(FormatError, match="length unit"):
        read(p, mapping={"x": "a", "y": "b"}, coordinate_unit="furlong")
    with pytest.raises(FormatError, match="mapping="):
        read(p, coordinate_unit="nm")


def test_generic_int_column_widened_when_later_rows_are_float(tmp_path):
    p = tmp_path / "c.csv"
    n = 120_000   # beyond the 1 MiB type-inference sample
    lines = ["x,y,score,label"] + [f"{i}.5,{i}.25,{i},{i}" for i in range(n)] + ["1.0,2.0,3.5,abc"]
    p.write_text("\n".join(lines) + "\n")
    t = read(p, coordinate_unit="nm")
    assert t.num_rows == n + 1
    assert str(t.column("score").type) == "double"
    assert t.column("score")[-1].as_py() == 3.5 and t.column("score")[7].as_py() == 7.0
    assert str(t.column("label").type) == "string"
    assert t.column("label")[-1].as_py() == "abc" and t.column("label")[7].as_py() == "7"
    # a number that does not fit a canonical integer column is an error with its line
    p.write_text("\n".join(lines[:-1] + ["1.0,2.0,3,4", "1,2,3,4"]).replace("label", "frame")
                 + "\n")
    t = read(p, coordinate_unit="nm")
    assert t.column("frame")[-1].as_py() == 4
    p.write_text("\n".join(lines[:-1] + ["1.0,2.0,3,4.5"]).replace("label", "frame") + "\n")
    with pytest.raises(FormatError, match="whole number, found 4.5") as exc:
        read(p, coordinate_unit="nm")
    assert exc.value.line == n + 2


def test_cli_map_passes_mapping(tmp_path, capsys):
    from smlmspine.cli import main

    p = tmp_path / "c.csv"
    p.write_text("X_pos,Y_pos,t\n1.5,2.5,7\n")
    out = tmp_path / "o.parquet"
    # a header without units cannot be converted unless the unit is given
    assert main(["convert", str(p), str(out), "--map", "x=X_pos,y=Y_pos,frame=t"]) == 2
    assert "coordinate_unit" in capsys.readouterr().err
    assert not out.exists()
    assert main(["convert", str(p), str(out), "--map", "x=X_pos,y=Y_pos,frame=t",
                 "--coordinate-unit", "um"]) == 0
    assert read(out).column("x").to_pylist() == [1500.0]
    q = tmp_path / "d.csv"
    q.write_text("X_pos [nm],Y_pos [nm],t\n1.5,2.5,7\n")
    assert main(["convert", str(q), str(out), "--map", "x=X_pos [nm],y=Y_pos [nm],frame=t"]) == 0
    t = read(out)
    assert t.column("x").to_pylist() == [1.5] and t.column("frame").to_pylist() == [7]


def test_text_tables_roundtrip_through_csv_writer(tmp_path):
    """Tables from every text reader survive write(.csv) -> read (ThunderSTORM headers)."""
    p = write_zeiss(tmp_path / "elyra.txt",
                    [(1, 1, 1, 0, 5.5, 6.5, 7.5, 9.2, 2200, 12.3, 1.1, 250.0, 1, 0)])
    t = read(p)
    back = read(write(t, tmp_path / "o.csv"))
    assert back.column_names == t.column_names, (back.column_names, t.column_names,
                                                 (tmp_path / "o.csv").read_text())
    for c in t.column_names:
        assert back.column(c).to_pylist() == t.column(c).to_pylist(), c


def test_module_exports_resolve():
    import importlib

    for name in ("_text", "thunderstorm", "rapidstorm", "zeiss", "oni", "nstorm", "generic"):
        mod = importlib.import_module(f"smlmspine.io.{name}")
        assert [n for n in mod.__all__ if not hasattr(mod, n)] == []


@pytest.mark.slow
def test_large_csv_reads_in_bounded_memory(tmp_path):
    """2x10^6 rows of 3D ThunderSTORM CSV: peak RSS growth during the read stays
    within 2.5x the final table (measured in a fresh process)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_io.py"
    path = tmp_path / "big.csv"
    sys.path.insert(0, str(bench.parent))
    try:
        from bench_io import generate
    finally:
        sys.path.remove(str(bench.parent))
    generate(path, 2_000_000)
    res = subprocess.run([sys.executable, str(bench), "--worker", "smlmspine", str(path)],
                         capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rows"] == 2_000_000
    assert (out["peak_kb"] - out["before_kb"]) * 1024 <= 2.5 * out["nbytes"]
