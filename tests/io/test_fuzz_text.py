"""Fuzzing of the text readers: random bytes and mutated valid files.

The reader functions are called directly (not through :func:`smlmspine.read`, whose
safety net would turn any exception into a FormatError): only a
:class:`~smlmspine.errors.SmlmSpineError` may come out, and whatever is returned must
be a valid canonical table with finite coordinates.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlmspine.errors import QualityWarning, SmlmSpineError
from smlmspine.io import detect_format
from smlmspine.io.generic import read_generic
from smlmspine.io.nstorm import read_nstorm
from smlmspine.io.oni import read_oni
from smlmspine.io.rapidstorm import read_rapidstorm
from smlmspine.io.thunderstorm import read_thunderstorm
from smlmspine.io.zeiss import read_zeiss
from smlmspine.schema import validate

READERS = {
    "thunderstorm": read_thunderstorm, "rapidstorm": read_rapidstorm, "zeiss": read_zeiss,
    "oni": read_oni, "nstorm": read_nstorm, "csv": read_generic,
}

_RS = ('# <localizations insequence="true" repetitions="variable">'
       '<field identifier="Position-0-0" unit="nanometer" />'
       '<field identifier="Position-1-0" unit="nanometer" />'
       '<field identifier="ImageNumber-0-0" unit="frame" /></localizations>')
_RS_TRACK = ('# <localizations insequence="true" repetitions="variable">'
             '<field identifier="Position-0-0" unit="nanometer" />'
             '<field identifier="Position-1-0" unit="nanometer" />'
             '<localizations insequence="true" repetitions="variable">'
             '<field identifier="Position-0-0" unit="nanometer" />'
             '<field identifier="Position-1-0" unit="nanometer" /></localizations></localizations>')

VALID = {
    "thunderstorm": b'"id","frame","x [nm]","y [nm]","z [nm]","intensity [photon]"\n'
                    b'1.0,1.0,10.5,20.5,-3.0,900.0\n2.0,2.0,11.5,21.5,4.0,800.0\n',
    "rapidstorm": (_RS + "\n10.5 20.5 0\n11.5 21.5 1\n").encode(),
    "rapidstorm_track": (_RS_TRACK + "\n10 20 2 9 19 11 21\n5 6 1 5 6\n").encode(),
    "zeiss": b"Index\tFirst Frame\tPosition X [nm]\tPosition Y [nm]\tNumber Photons\n"
             b"1\t1\t10.5\t20.5\t300\n2\t2\t11.5\t21.5\t400\n\x00meta\x01",
    "oni": b"Channel,Frame,X (nm),Y (nm),X (pix),Y (pix),Photons\n0,1,10.5,20.5,0.1,0.2,300\n"
           b"1,2,11.5,21.5,0.1,0.2,400\n",
    "nstorm": b"Channel Name\tX\tY\tXc\tYc\tFrame\tPhotons\n647\t10\t20\t10.5\t20.5\t1\t300\n"
              b"488\t11\t21\t11.5\t21.5\t2\t400\n",
    "csv": b"x (nm);y (nm);frame;label\n10.5;20.5;1;a\n11.5;21.5;2;b\n",
}


def _reader_for(key):
    return READERS["rapidstorm" if key.startswith("rapidstorm") else key]


def _check(reader, path, **kw):
    import warnings

    try:
        with warnings.catch_warnings():
            # a mutated file may lose its final line break: warned about, not an error
            warnings.simplefilter("ignore", QualityWarning)
            table = reader(path, **kw)
    except SmlmSpineError:
        return None
    validate(table)
    x = table.column("x").to_numpy()
    assert np.all(np.isfinite(x))
    return table


@pytest.mark.parametrize("key", list(VALID))
def test_valid_samples(tmp_path, key):
    p = tmp_path / "f.txt"
    p.write_bytes(VALID[key])
    table = _check(_reader_for(key), p)
    assert table is not None and table.num_rows == (3 if key == "rapidstorm_track" else 2)
    assert detect_format(p) == ("rapidstorm" if key.startswith("rapidstorm") else key)


_FUZZ = settings(max_examples=60, deadline=2000, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@_FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "f.csv"
    p.write_bytes(data)
    for reader in READERS.values():
        _check(reader, p)
    try:
        detect_format(p)
    except SmlmSpineError:
        pass


_mutation = st.tuples(st.sampled_from(["replace", "insert", "delete", "dup_line", "cut"]),
                      st.floats(0, 1), st.binary(min_size=1, max_size=4))


def _mutate(data: bytes, ops) -> bytes:
    for op, where, payload in ops:
        i = int(where * len(data)) if data else 0
        if op == "replace" and data:
            data = data[:i] + payload + data[i + len(payload):]
        elif op == "insert":
            data = data[:i] + payload + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + len(payload):]
        elif op == "dup_line":
            lines = data.split(b"\n")
            k = min(int(where * len(lines)), len(lines) - 1)
            lines.insert(k, lines[k])
            data = b"\n".join(lines)
        elif op == "cut":
            data = data[:i]
    return data


@_FUZZ
@given(key=st.sampled_from(list(VALID)), ops=st.lists(_mutation, min_size=1, max_size=4),
       text_payload=st.sampled_from([b",", b";", b"\t", b" ", b"\n", b'"', b"nan", b"-", b"e",
                                     b"1e999", b"\x00", b"\xff", b"<", b"/>", b"\r"]))
def test_mutated_valid_files(tmp_path_factory, key, ops, text_payload):
    ops = ops + [("insert", ops[0][1], text_payload)]
    data = _mutate(VALID[key], ops)
    p = tmp_path_factory.mktemp("fz") / "f.txt"
    p.write_bytes(data)
    _check(_reader_for(key), p)
    _check(_reader_for(key), p, pixel_size_nm=100.0)
    try:
        detect_format(p)
    except SmlmSpineError:
        pass


@settings(max_examples=30, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6),
       mapping_keys=st.lists(st.sampled_from(["x", "y", "z", "frame", "photons", "bogus"]),
                             max_size=3, unique=True))
def test_generic_random_headers_and_mappings(tmp_path_factory, header, mapping_keys):
    p = tmp_path_factory.mktemp("fz") / "f.csv"
    line = ",".join(h.replace("\n", " ").replace("\r", " ") for h in header)
    p.write_text(line + "\n" + ",".join("1.5" for _ in header) + "\n", encoding="utf-8")
    mapping = {k: header[i % len(header)] for i, k in enumerate(mapping_keys)} or None
    _check(read_generic, p, mapping=mapping, coordinate_unit="nm")
