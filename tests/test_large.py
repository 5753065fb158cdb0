"""The large-file path: read -> drift -> merge in chunks equals the in-memory stages."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import main
from smlmspine.drift import correct
from smlmspine.errors import ParameterError
from smlmspine.io import read
from smlmspine.merge import merge_blinks
from smlmspine.pipeline import estimate_size, reduce_large, run
from smlmspine.schema import make_table
from smlmspine.simulate import Acquisition, Geometry, SimulatedDrift, dendrite


@pytest.fixture(scope="module")
def sim_table():
    # 3 spines on 3 um of shaft, membrane label, 120 nm drift: ~2e4 localizations
    sim = dendrite(geometry=Geometry(n_spines=3, shaft_length_nm=3000.0),
                   acquisition=Acquisition(n_frames=6000), drift=SimulatedDrift(drift_nm=120.0),
                   rng=11)
    return sim.localizations


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Equal columns and values (NaN equal to NaN), metadata aside."""
    if a.column_names != b.column_names or a.num_rows != b.num_rows:
        return False
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        if x.type != y.type:
            return False
        if pa.types.is_floating(x.type):
            if not np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True):
                return False
        elif not x.equals(y):
            return False
    return True


def test_chunked_drift_and_merge_equal_the_in_memory_stages(sim_table, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(sim_table, src, row_group_size=2000)
    expected = merge_blinks(correct(read(src), method="aim").table)
    res = reduce_large(src, tmp_path / "out.parquet", drift="aim", chunk_rows=1500)
    got = pq.read_table(res.path)
    large = res.stages["large"]
    assert large["windows"] > 5 and large["units"] == -(-sim_table.num_rows // 2000)
    assert large["frames_sorted"] and large["order_exact"]
    assert res.stages["drift"]["sample_rows"] == sim_table.num_rows
    assert res.stages["merge"] == {**res.stages["merge"], "n_before": sim_table.num_rows,
                                   "n_after": expected.num_rows}
    assert expected.num_rows < 0.9 * sim_table.num_rows   # blinks were merged
    assert _same(got, expected)
    # units and history kept
    assert got.schema.field("x").metadata[b"unit"] == b"nm"
    steps = [s["step"] for s in json.loads(got.schema.metadata[b"smlmspine.history"])]
    assert steps[-2:] == ["drift.apply", "merge.blinks"]


def test_unsorted_file_and_arrow_input(sim_table, tmp_path):
    rng = np.random.default_rng(3)
    shuffled = sim_table.take(pa.array(rng.permutation(sim_table.num_rows)))
    expected = merge_blinks(shuffled)
    src = tmp_path / "in.arrow"
    feather.write_feather(shuffled, src, chunksize=3000, compression="uncompressed")
    res = reduce_large(src, tmp_path / "out.parquet", drift="none", chunk_rows=2000)
    assert not res.stages["large"]["frames_sorted"]
    assert res.stages["large"]["format"] == "arrow"
    assert "skipped" in res.stages["drift"]
    assert _same(pq.read_table(res.path), expected)


def test_bursts_longer_than_a_window_are_carried(tmp_path):
    # an emitter on in all but every 7th frame (a bead: one burst over all windows, dark
    # frames on some window ends) among short blinks with a dark frame inside
    rng = np.random.default_rng(0)
    n_frames = 400
    bead_f = np.flatnonzero(np.arange(n_frames) % 7 != 6)
    blink_f = np.repeat(rng.integers(0, n_frames - 3, 300), 3) + np.tile([0, 2, 3], 300)
    f = np.concatenate([bead_f, blink_f])
    pos = np.concatenate([np.zeros((len(bead_f), 2)),
                          np.repeat(rng.uniform(500, 5000, (300, 2)), 3, axis=0)])
    pos = pos + rng.normal(0, 5, pos.shape)
    order = np.argsort(f, kind="stable")
    t = make_table({"x": pos[order, 0], "y": pos[order, 1], "z": np.zeros(len(f)),
                    "frame": f[order], "precision_xy": np.full(len(f), 5.0),
                    "photons": rng.uniform(500, 3000, len(f))})
    expected = merge_blinks(t)
    src = tmp_path / "bead.parquet"
    pq.write_table(t, src, row_group_size=100)
    res = reduce_large(src, tmp_path / "out.parquet", drift="none", chunk_rows=50)
    got = pq.read_table(res.path)
    assert res.stages["large"]["max_carry_rows"] >= n_frames - 60   # the bead travels
    assert expected.column("n_merged").to_numpy().max() == len(bead_f)
    key = [("first_frame", "ascending"), ("x", "ascending")]
    assert _same(got.sort_by(key), expected.sort_by(key))
    if res.stages["large"]["order_exact"]:
        assert _same(got, expected)


def test_foreign_units_converted_per_row_group(sim_table, tmp_path):
    um = {c: pa.array(sim_table.column(c).to_numpy() / 1e3) for c in ("x", "y", "z")}
    foreign = pa.table({**um, "frame": sim_table.column("frame"),
                        "precision_xy": pa.array(sim_table.column("precision_xy").to_numpy() / 1e3)})
    src = tmp_path / "foreign.parquet"
    pq.write_table(foreign, src, row_group_size=5000)
    expected = merge_blinks(read(src, coordinate_unit="um"))
    res = reduce_large(src, tmp_path / "out.parquet", drift="none", chunk_rows=4000,
                       coordinate_unit="um")
    assert _same(pq.read_table(res.path), expected)
    with pytest.raises(Exception, match="no unit"):
        reduce_large(src, tmp_path / "out2.parquet", drift="none")
    assert not (tmp_path / "out2.parquet").exists()


def test_resaved_foreign_columns_refused_with_the_readers_message(sim_table, tmp_path, capsys):
    # a table re-saved by another tool with ThunderSTORM-style names ("x [nm]"): the chunked
    # path says what the in-memory reader says, before anything is written
    names = {"x": "x [nm]", "y": "y [nm]", "z": "z [nm]"}
    foreign = pa.table({names.get(c, c): sim_table.column(c) for c in ("x", "y", "z", "frame")})
    src = tmp_path / "resaved.parquet"
    pq.write_table(foreign, src, row_group_size=5000)
    with pytest.raises(Exception) as whole:
        read(src)
    assert "missing coordinate column(s) ['x', 'y']" in str(whole.value)
    rc = main(["run", str(src), "-o", str(tmp_path / "o"), "--chunk-rows", "4000", "--quiet",
               "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing coordinate column(s) ['x', 'y']" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    with pytest.raises(Exception, match=r"missing coordinate column"):
        reduce_large(src, tmp_path / "out.parquet", drift="none", chunk_rows=4000)
    assert not (tmp_path / "out.parquet").exists()
    # truncated: named as a damaged Parquet file, not as another format
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    rc = main(["run", str(cut), "-o", str(tmp_path / "o2"), "--chunk-rows", "4000", "--quiet",
               "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a readable Parquet/Arrow file" in err and "cut.parquet" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o2").exists()


def test_size_estimate_and_refusals(sim_table, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(sim_table, src, row_group_size=4000)
    e = estimate_size(src)
    assert e.rows == sim_table.num_rows and e.units == 5 and e.format == "parquet"
    assert e.bytes == sim_table.num_rows * 8 * sim_table.num_columns   # 8 float64/int64 columns
    csv = tmp_path / "in.csv"
    csv.write_text("x,y\n1,2\n")
    assert estimate_size(csv) is None
    with pytest.raises(ParameterError, match="Parquet or Arrow"):
        run(csv, tmp_path / "o", chunk_rows=1000, quiet=True)
    mf = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0], "z": [0.0, 0.0], "track_id": [1, 1]})
    pq.write_table(mf, tmp_path / "mf.parquet")
    with pytest.raises(ParameterError, match="MINFLUX"):
        reduce_large(tmp_path / "mf.parquet", tmp_path / "o.parquet")


def test_run_takes_the_large_path_over_the_budget_and_refuses_what_still_does_not_fit(
        sim_table, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.parquet"
    pq.write_table(sim_table, src, row_group_size=4000)
    # 1.2 MB in memory (x5: 6 MB); a 2 MB budget sends it to the chunked path, whose merged
    # table (~1.1 MB, x5) still exceeds it for the spine stages: refused, the merged table kept
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "0.002")
    out = tmp_path / "o"
    assert main(["run", str(src), "-o", str(out), "--quiet", "--drift", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "memory budget" in err[0] and "reduce_large" in err[0]
    assert not out.exists()   # the command leaves nothing behind
    with pytest.raises(ParameterError, match="memory budget"):
        run(src, out, drift="none", quiet=True)
    merged = pq.read_table(out / "localizations_merged.parquet")   # the function keeps it
    assert _same(merged, merge_blinks(sim_table))
    record = json.loads((out / "run.json").read_text())
    reason = record["stages"]["large"]["reason"]
    assert reason.startswith("estimated 0.00") and "GB for the in-memory stages" in reason
    assert reason.endswith("> memory budget 0.002 GB")
    assert record["stages"]["mesh"]["skipped"]
    # a file that is not Parquet/Arrow with --chunk-rows: one line, exit 2
    csv = tmp_path / "in.csv"
    csv.write_text("x,y,z,frame\n1,2,3,0\n")
    assert main(["run", str(csv), "-o", str(tmp_path / "c"), "--chunk-rows", "10"]) == 2
    assert "Parquet or Arrow" in capsys.readouterr().err


@pytest.mark.slow
def test_run_with_chunk_rows_gives_the_in_memory_result_and_tiles_when_over_budget(
        sim_table, tmp_path, monkeypatch):
    src = tmp_path / "in.parquet"
    pq.write_table(sim_table, src, row_group_size=4000)
    a = run(src, tmp_path / "a", quiet=True)
    b = run(src, tmp_path / "b", quiet=True, chunk_rows=3000)
    assert "large" not in a.summary["stages"]
    assert b.summary["stages"]["large"]["reason"] == "chunk_rows given"
    assert b.summary["stages"]["large"]["n_tiles"] == 1
    assert a.spines.num_rows == b.spines.num_rows > 0
    assert _same(a.localizations, b.localizations)
    assert _same(a.spines, b.spines)
    assert not (tmp_path / "b" / "localizations_merged.parquet").exists()
    # a budget the merged table fits (x2) but its spine stages (x5) do not: 3 tiles
    merged_bytes = b.summary["stages"]["large"]["merged_bytes"]
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", str(4 * merged_bytes / 1e9))
    c = run(src, tmp_path / "c", quiet=True)
    assert c.summary["stages"]["large"]["n_tiles"] == 3
    assert c.spines.column_names == a.spines.column_names   # the documented table
    assert c.spines.num_rows == a.spines.num_rows           # each spine once
    ids = c.spines.column("spine_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert set(c.localizations.column("spine_id").to_pylist()) - {-1} == set(ids)
    assert {f"spine_{k}.ply" for k in ids} <= {f.name for f in (tmp_path / "c").iterdir()}


def test_batch_passes_chunk_rows_to_each_file(tmp_path, capsys):
    from smlmspine._batch import _process_file
    from smlmspine.config import check_config
    from smlmspine.simulate import Labeling

    # the batch task of one file (what a Dask worker runs), with chunk_rows
    sim = dendrite(geometry=Geometry(spines=[{"spine_class": "mushroom", "position_nm": 1000.0}],
                                     shaft_length_nm=2000.0), labeling=Labeling(label="volume"),
                   acquisition=Acquisition(n_frames=800), rng=12)
    src = tmp_path / "cell.parquet"
    pq.write_table(sim.localizations, src, row_group_size=3000)
    config = check_config({"run": {"label": "volume", "drift": "none"}})
    job = {"source": str(src), "run_folder": "cell", "path": str(src)}
    out = _process_file(job, str(tmp_path / "b"), config, False, chunk_rows=2000)
    assert out["status"] == "done", out.get("traceback")
    record = json.loads((tmp_path / "b" / "cell" / "run.json").read_text())
    assert record["stages"]["large"]["reason"] == "chunk_rows given"
    assert record["stages"]["large"]["chunk_rows"] == 2000
    # the option is checked before anything runs
    assert main(["batch", str(src), "-o", str(tmp_path / "c"), "--chunk-rows", "0"]) == 2
    assert "--chunk-rows" in capsys.readouterr().err
