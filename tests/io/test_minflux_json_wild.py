"""MINFLUX JSON exports parsed within the memory budget (issue #15).

A 512 MiB JSON file was parsed whole with no budget and died with a MemoryError
traceback under the fuzz harness's 2 GiB cap. The reader now estimates what
``json.load`` will hold from one pass over the bytes (objects, lists, values) and
refuses beyond the budget before parsing, with the estimate in the message.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from smlmspine.errors import FormatError
from smlmspine.io import read
from smlmspine.io._minflux_layouts import json_memory_estimate


@pytest.fixture()
def export(tmp_path):
    from smlmspine.io.minflux import write_abberior_npy
    from smlmspine.simulate import MinfluxSample, minflux_traces

    sim = minflux_traces(sample=MinfluxSample(n_emitters=5), ndim=3, rng=4)
    return write_abberior_npy(sim.localizations, tmp_path / "m.json", ndim=3,
                              n_iterations=sim.n_iterations), sim


def _peak_of_json_load(path) -> int:
    tracemalloc.start()
    try:
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_estimate_is_not_below_what_json_load_takes(export, tmp_path):
    path, _ = export
    est, counts = json_memory_estimate(path, chunk=4096)   # small chunks: counts add up
    assert counts == json_memory_estimate(path)[1]
    assert est >= _peak_of_json_load(path)
    assert est <= 3 * _peak_of_json_load(path)
    # hostile shapes: a million empty objects or lists (the worst bytes-to-objects ratio)
    for name, text in (("objs.json", "[" + ",".join(["{}"] * 200_000) + "]"),
                       ("lists.json", "[" + ",".join(["[]"] * 200_000) + "]"),
                       ("ints.json", json.dumps([[1] * 10] * 20_000))):
        p = tmp_path / name
        p.write_text(text)
        assert json_memory_estimate(p)[0] >= _peak_of_json_load(p), name


def test_json_over_the_budget_is_refused_before_parsing(export, monkeypatch):
    path, sim = export
    # within the default budget
    assert read(path, keep_invalid=True).num_rows == sim.localizations.num_rows
    size = path.stat().st_size
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", str(size / 1e9))   # less than 2x the text
    with pytest.raises(FormatError, match=r"parsing this .* MB JSON file \(\d+ objects, \d+ "
                                          r"lists, \d+ separators\) would need about .* over the "
                                          r"memory budget"):
        read(path)


def test_huge_json_with_garbage_tail_is_one_line(export, tmp_path, capsys, monkeypatch):
    """The fuzz case (seed + a very long line of digits), scaled down with the budget."""
    from smlmspine.cli import main

    path, _ = export
    big = tmp_path / "big.json"
    big.write_bytes(path.read_bytes() + b"1" * (4 << 20) + b"\n")
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "0.005")
    rc = main(["info", str(big)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"{big}: parsing this " in err and "MB JSON file" in err
    assert "over the memory budget of 5 MB" in err


def test_memory_error_anywhere_is_one_line_naming_the_file(export, capsys, monkeypatch):
    """A MemoryError the budgets did not foresee is one line, not a traceback."""
    import smlmspine.io._minflux_layouts as layouts
    from smlmspine.cli import main

    path, _ = export

    def no_memory(p):
        raise MemoryError("Unable to allocate 7.28 TiB for an array")

    monkeypatch.setattr(layouts, "_load_json", no_memory)
    rc = main(["info", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"smlmspine info: error: out of memory on {path} (Unable to allocate")
