"""The scripts in examples/ run as a user would run them (subprocess, small simulated data)
and give what they promise, so they never rot."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script, *args, cwd):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin",
                               "HOME": str(cwd), "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_run_one_file(tmp_path):
    out = tmp_path / "one"
    stdout = _run("run_one_file.py", out, "--quick", "--label", "volume", "--n-spines", "2",
                  "--seed", "1", cwd=tmp_path)
    run_dir = out / "run"
    assert (out / "input.csv").is_file()
    spines = pq.read_table(run_dir / "spines.parquet")
    assert spines.num_rows == 2
    assert {f"spine_{i}.ply" for i in spines.column("spine_id").to_pylist()} <= \
        {p.name for p in run_dir.iterdir()}
    # the printed comparison with the simulator's truth: right classes, heads within 15 %
    rows = re.findall(r"^\s+(\d+)\s+(\w+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", stdout, re.M)
    assert len(rows) == 2
    for _, cls, true_cls, _, _, head, true_head in rows:
        assert cls == true_cls
        assert abs(int(head) - int(true_head)) <= 0.15 * int(true_head)
    html = (run_dir / "report.html").read_text()
    assert f"report: {run_dir / 'report.html'}" in stdout
    for sid in ("summary", "drift", "overview", "gallery", "features", "coupling", "failures",
                "parameters"):
        assert f'<section id="{sid}">' in html
    assert html.count('class="thumb" alt="spine') == 2


def test_coupling_two_channels(tmp_path):
    out = tmp_path / "cpl"
    stdout = _run("coupling_two_channels.py", out, "--n-objects", "200",
                  "--coupled-fraction", "0.4", "--seed", "2", cwd=tmp_path)
    s = json.loads((out / "coupling" / "summary.json").read_text())
    truth = s["truth"]
    assert truth["coupled_fraction_post"] == pytest.approx(0.4)
    # SODA on the cluster centroids recovers the simulated coupling
    assert s["coupling_index_post"] == pytest.approx(truth["coupled_fraction_post"], abs=0.1)
    assert s["coupling_index_pre"] == pytest.approx(truth["coupled_fraction_pre"], abs=0.1)
    assert s["mean_coupling_distance_weighted_nm"] == pytest.approx(
        truth["mean_coupling_distance_nm"], abs=15.0)
    assert s["coupled"] is True and s["p_value"] < 1e-3
    assert pq.read_metadata(out / "coupling" / "rings.parquet").num_rows == 15
    assert (out / "coupling" / "coupling.png").read_bytes()[:4] == b"\x89PNG"
    assert "coupling index post" in stdout


@pytest.mark.slow
def test_batch_with_manifest(tmp_path):
    """~30 s: two simulated files (one per condition) and a broken one through smlmspine.batch
    on a local Dask cluster; the broken file fails alone."""
    out = tmp_path / "study"
    stdout = _run("batch_with_manifest.py", out, "--cells", "1", "--n-spines", "2",
                  "--workers", "1", "--bad-file", cwd=tmp_path)
    batch = out / "batch"
    record = json.loads((batch / "batch.json").read_text())
    assert record["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    assert record["metadata_columns"] == ["condition", "animal", "cell"]
    spines = pq.read_table(batch / "spines.parquet")
    assert set(spines.column("condition").to_pylist()) == {"control", "potentiated"}
    assert spines.num_rows >= 3
    fails = (batch / "failures.csv").read_text()
    assert "data/broken.csv" in fails and "no column for ['x', 'y']" in fails
    html = (batch / "report.html").read_text()
    assert 'alt="features by condition"' in html and "1 file(s) failed" in html
    assert "failed: data/broken.csv" in stdout and f"report: {batch / 'report.html'}" in stdout
    # run again: every file already done is skipped (same input, same parameters)
    again = _run("batch_with_manifest.py", out, "--cells", "1", "--n-spines", "2",
                 "--workers", "1", cwd=tmp_path)
    assert "done 0, skipped 2, failed 0" in again
