"""smlmspine.batch / `smlmspine batch`: manifest and glob, metadata, failure isolation,
resumability, --force, against the simulator's truth (one mushroom spine per file)."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from smlmspine import ParameterError, batch
from smlmspine._batch import DONE_RECORD, PARTIAL, file_sha256, resolve_inputs
from smlmspine.cli import main
from smlmspine.config import parameters_hash

from .conftest import CONFIG


def _status(res) -> dict:
    return {f["run_folder"]: f["status"] for f in res.record["files"]}


def test_manifest_batch_tables_carry_metadata_and_match_truth(first_batch, batch_data):
    out, res = first_batch
    root, sims = batch_data
    assert _status(res) == {"cell_a": "done", "cell_b": "done", "garbage": "failed"}
    # spines.parquet: one row per spine of the good files, manifest columns, source
    spines = pq.read_table(out / "spines.parquet")
    assert spines.equals(res.spines)
    assert spines.column_names[:4] == ["source", "run_folder", "condition", "animal"]
    rows = sorted(spines.to_pylist(), key=lambda r: r["run_folder"])
    assert [(r["source"], r["run_folder"], r["condition"], r["animal"]) for r in rows] == [
        ("ctrl/cell_a.parquet", "cell_a", "ctrl", 1), ("ttx/cell_b.parquet", "cell_b", "ttx", 2)]
    for r in rows:  # the truth: one mushroom spine, 600 nm head, 200 nm neck
        truth = sims[r["run_folder"]].spines.to_pylist()[0]
        assert r["spine_class"] == "mushroom"
        assert r["head_diameter_nm"] == pytest.approx(truth["head_diameter_nm"], rel=0.15)
        assert (out / r["run_folder"] / f"spine_{r['spine_id']}.ply").is_file()
    assert spines.schema.field("head_diameter_nm").metadata[b"unit"] == b"nm"
    # localizations_summary.parquet: one row per file, counts from the files themselves
    summary = pq.read_table(out / "localizations_summary.parquet").to_pylist()
    assert [s["run_folder"] for s in summary] == ["cell_a", "cell_b", "garbage"]
    assert [s["condition"] for s in summary] == ["ctrl", "ttx", "ttx"]
    for s, name in zip(summary[:2], ("cell_a", "cell_b")):
        assert s["status"] == "done" and s["n_spines"] == 1
        assert s["n_localizations"] == sims[name].localizations.num_rows
        assert 0 < s["n_merged"] < s["n_localizations"]
        assert s["drift_method"] == "aim" and s["drift_max_abs_dx_nm"] < 60
        folder = "ctrl" if name == "cell_a" else "ttx"
        assert s["input_sha256"] == file_sha256(root / folder / f"{name}.parquet")
    assert summary[2]["status"] == "failed" and summary[2]["n_localizations"] is None
    # failures.csv and batch.json
    failures = pacsv.read_csv(out / "failures.csv").to_pylist()
    assert len(failures) == 1 and failures[0]["source"] == "ttx/garbage.parquet"
    assert failures[0]["error_type"] == "FormatError" and "garbage.parquet" in failures[0]["error"]
    assert failures[0]["stage"] == "io"  # failed reading, in smlmspine.io
    record = json.loads((out / "batch.json").read_text())
    assert record["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    assert record["config"]["run"]["label"] == "volume"
    assert record["parameters_hash"] == parameters_hash(CONFIG)
    assert record["metadata_columns"] == ["condition", "animal"]
    assert record["versions"]["dask"] and record["scheduler"]["n_workers"] == 2
    # each file's folder: run.json with the effective configuration, done record last
    run_json = json.loads((out / "cell_a" / "run.json").read_text())
    assert run_json["config"]["run"]["label"] == "volume"
    done = json.loads((out / "cell_a" / DONE_RECORD).read_text())
    assert done["parameters_hash"] == record["parameters_hash"] == run_json["parameters_hash"]
    assert not (out / PARTIAL).exists() and not (out / "garbage").exists()


def test_glob_skips_files_done_with_same_input_and_parameters(batch_copy, batch_data,
                                                                dask_client):
    root, _ = batch_data
    before = {p: p.stat().st_mtime_ns for p in batch_copy.glob("cell_*/*")}
    res = batch(str(root / "**" / "cell_*.parquet"), batch_copy, config=CONFIG,
                client=dask_client, progress=False, report=False)
    assert _status(res) == {"cell_a": "skipped", "cell_b": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in batch_copy.glob("cell_*/*")} == before
    # no manifest: no metadata columns, sources are the glob's matches
    assert res.spines.column_names[:3] == ["source", "run_folder", "spine_id"]
    assert sorted(res.spines.column("source").to_pylist()) == sorted(
        str(p) for p in root.rglob("cell_*.parquet"))
    assert res.spines.num_rows == 2 and res.n_failed == 0


def test_resume_reruns_interrupted_and_changed_files_only(batch_copy, batch_data, dask_client):
    root, _ = batch_data
    # cell_a interrupted: its done record missing, a half-written temporary folder left
    (batch_copy / "cell_a" / DONE_RECORD).unlink()
    (batch_copy / "cell_a" / "spines.parquet").write_bytes(b"half")
    leftover = batch_copy / PARTIAL / "cell_a.0123456789ab"
    leftover.mkdir(parents=True)
    (leftover / "localizations.parquet").write_bytes(b"half")
    res = batch(root / "manifest.csv", batch_copy, config=CONFIG, client=dask_client,
                progress=False, report=False)
    assert _status(res) == {"cell_a": "done", "cell_b": "skipped", "garbage": "failed"}
    assert not (batch_copy / PARTIAL).exists()
    assert json.loads((batch_copy / "cell_a" / DONE_RECORD).read_text())["input_sha256"] == \
        file_sha256(root / "ctrl" / "cell_a.parquet")
    assert pq.read_table(batch_copy / "cell_a" / "spines.parquet").num_rows == 1
    assert res.spines.num_rows == 2
    # other parameters: everything re-runs (here the one file listed)
    changed = {"run": {"label": "volume", "step_nm": 12.0}}
    res = batch([root / "ttx" / "cell_b.parquet"], batch_copy, config=changed,
                client=dask_client, progress=False, report=False)
    assert _status(res) == {"cell_b": "done"}
    assert json.loads((batch_copy / "cell_b" / "run.json").read_text())[
        "parameters"]["step_nm"] == 12.0


def test_force_reruns_done_files(batch_copy, batch_data, dask_client):
    root, _ = batch_data
    old = (batch_copy / "cell_a" / DONE_RECORD).read_text()
    res = batch([root / "ctrl" / "cell_a.parquet"], batch_copy, config=CONFIG,
                client=dask_client, force=True, progress=False, report=False)
    assert _status(res) == {"cell_a": "done"}
    new = json.loads((batch_copy / "cell_a" / DONE_RECORD).read_text())
    assert new["finished"] >= json.loads(old)["finished"]
    assert new["input_sha256"] == json.loads(old)["input_sha256"]
    assert res.spines.num_rows == 1 and res.spines.column("spine_class")[0].as_py() == "mushroom"


def test_cli_failure_isolation_exit_1_and_report(batch_copy, batch_data, capsys):
    root, _ = batch_data
    config = batch_copy.parent / "run.toml"
    config.write_text('[run]\nlabel = "volume"\n')
    code = main(["batch", str(root / "manifest.csv"), "-o", str(batch_copy), "--config",
                 str(config), "--workers", "1", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 of 3 files failed" in captured.err and "Traceback" not in captured.err
    assert "2 skipped" in captured.out
    failures = pacsv.read_csv(batch_copy / "failures.csv").to_pylist()
    assert [f["run_folder"] for f in failures] == ["garbage"]
    html = (batch_copy / "report.html").read_text()
    assert "garbage.parquet" in html and "<html" in html.lower()


def test_cli_on_an_existing_scheduler_all_ok_exit_0(batch_copy, batch_data, dask_client,
                                                     capsys):
    root, _ = batch_data
    address = dask_client.scheduler.address
    code = main(["batch", str(root / "ctrl" / "*.parquet"), "-o", str(batch_copy), "--label",
                 "volume", "--scheduler", address, "--quiet", "--no-report"])
    assert code == 0, capsys.readouterr().err
    assert "1 files: 0 done, 1 skipped" in capsys.readouterr().out
    assert pacsv.read_csv(batch_copy / "failures.csv").num_rows == 0
    record = json.loads((batch_copy / "batch.json").read_text())
    assert record["scheduler"]["address"] == address
    assert record["config"]["batch"]["scheduler"] == address
    assert dask_client.status == "running"  # the cluster given is left as it was


@pytest.mark.parametrize("make_args, message", [
    (lambda root, tmp: [str(root / "nothing" / "*.csv")], "matches no file"),
    (lambda root, tmp: [str(_manifest(tmp, "file,condition\nctrl/cell_a.parquet,ctrl\n"))],
     "no 'path' column"),
    (lambda root, tmp: [str(_manifest(tmp, "path,spine_id\nctrl/cell_a.parquet,3\n"))],
     "result columns"),
    (lambda root, tmp: [str(root / "manifest.csv"), "--config",
                        str(_write(tmp / "bad.toml", "[run]\nalfa_nm = 80\n"))],
     "bad.toml: unknown key 'run.alfa_nm'"),
    (lambda root, tmp: [str(root / "manifest.csv"), "--config",
                        str(_write(tmp / "bad.toml", "[runn]\nlabel = 'volume'\n"))],
     "unknown section [runn]"),
    (lambda root, tmp: [str(root / "manifest.csv"), "--config",
                        str(_write(tmp / "bad.toml", "[run]\nstep_nm = 'ten'\n"))],
     "run.step_nm must be a number"),
])
def test_cli_user_errors_exit_2_before_anything_ran(batch_data, tmp_path, capsys, make_args,
                                                    message):
    root, _ = batch_data
    out = tmp_path / "out"
    code = main(["batch", *make_args(root, tmp_path), "-o", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def _write(path, text):
    path.write_text(text)
    return path


def _manifest(folder, text):
    return _write(folder / "manifest.csv", text)


def test_resolve_inputs_names_and_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for p in ("a/cell.csv", "b/cell.csv", "b/other.csv.gz", "b/batch.csv"):
        (tmp_path / p).write_text("x")
    manifest = _manifest(tmp_path, "path,dose\na/cell.csv,1.5\nb/cell.csv,2.5\n"
                                   "b/other.csv.gz,3\nb/batch.csv,4\n")
    files, meta, _ = resolve_inputs(manifest)
    names = [f["run_folder"] for f in files]
    assert names[0].startswith("cell-") and names[1].startswith("cell-") and names[0] != names[1]
    assert names[2:] == ["other", "batch"]  # compression suffix dropped; 'batch' is no output
    assert [f["path"] for f in files] == [str((tmp_path / p).resolve()) for p in
                                         ("a/cell.csv", "b/cell.csv", "b/other.csv.gz",
                                          "b/batch.csv")]
    assert meta.column_names == ["dose"] and meta.column("dose").type == pa.float64()
    # stable names from one call to the next; a file listed twice is refused
    assert [f["run_folder"] for f in resolve_inputs(manifest)[0]] == names
    with pytest.raises(ParameterError, match="listed twice"):
        resolve_inputs([tmp_path / "a/cell.csv", tmp_path / "a" / ".." / "a" / "cell.csv"])
    files, meta, _ = resolve_inputs(str(tmp_path / "**" / "*.csv"))
    assert meta is None and {"batch", "manifest"} <= {f["run_folder"] for f in files}


def test_one_batch_per_folder_at_a_time(batch_copy, batch_data):
    """A second batch on a folder another one is writing is refused before it runs."""
    import fcntl

    from smlmspine._batch import LOCK

    root, _ = batch_data
    with open(batch_copy / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = sorted(p.name for p in batch_copy.iterdir())
        with pytest.raises(ParameterError, match="another smlmspine batch is writing"):
            batch(root / "manifest.csv", batch_copy, config=CONFIG, progress=False)
        assert sorted(p.name for p in batch_copy.iterdir()) == before
