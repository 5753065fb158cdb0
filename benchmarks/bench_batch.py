"""Benchmark: `smlmspine batch` on Dask against a plain loop, and a resumed batch (issue 18).

Usage::

    python benchmarks/bench_batch.py [--files 20] [--locs 1e5] [--label volume] [--keep DIR]

Simulates ``--files`` dendrites (4 spines on 4 um of shaft, 100 nm drift, labelling
density scaled to about ``--locs`` localizations each, one seed per file), writes them
as Parquet, then times, on the same files and parameters:

1. a plain loop in one process calling :func:`smlmspine.pipeline.run` file after file
   (the work itself, no Dask);
2. a shell-style loop of ``smlmspine run IN -o OUT`` processes (what a user writes
   without batch);
3. ``smlmspine.batch`` with a LocalCluster of 1 worker process, then of 2 (cluster
   start-up, hashing, gathering and the tables included); the Dask overhead is
   batch(1 worker) / loop(1) - 1 (target < 10 %);
4. ``smlmspine batch`` as a process killed (SIGKILL) once half of the files are done,
   then run again: the second call must re-run only the files without a done record.

Prints one line per measurement and the load average (the machine is shared: compare
ratios, not seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _simulate(folder: Path, n_files: int, locs: float, label: str) -> list[Path]:
    from smlmspine import simulate
    from smlmspine.io import write

    folder.mkdir(parents=True, exist_ok=True)
    geometry = simulate.Geometry(n_spines=4, shaft_length_nm=4000.0)
    probe = simulate.dendrite(geometry=geometry, labeling=simulate.Labeling(label=label), rng=0)
    factor = locs / probe.localizations.num_rows
    key = "labeling_density_per_um3" if label == "volume" else "labeling_density_per_um2"
    default = getattr(simulate.Labeling(), key)
    labeling = simulate.Labeling(label=label, **{key: default * factor})
    paths = []
    for i in range(n_files):
        sim = simulate.dendrite(geometry=geometry, labeling=labeling,
                                drift=simulate.SimulatedDrift(drift_nm=100.0), rng=100 + i)
        paths.append(write(sim.localizations, folder / f"cell_{i:03d}.parquet"))
    return paths


def _timed(label: str, fn) -> float:
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    print(f"{label:<44s} {wall:8.1f} s   (load {os.getloadavg()[0]:.1f})", flush=True)
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--locs", type=float, default=1e5)
    ap.add_argument("--label", choices=("volume", "membrane"), default="volume")
    ap.add_argument("--keep", default=None, help="keep inputs and outputs in this folder")
    ap.add_argument("--skip-shell-loop", action="store_true")
    args = ap.parse_args(argv)

    import smlmspine
    from smlmspine.pipeline import run

    config = {"run": {"label": args.label, "workers": 1}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        files = _simulate(root / "data", args.files, args.locs, args.label) \
            if not (root / "data").is_dir() else sorted((root / "data").glob("cell_*.parquet"))
        import pyarrow.parquet as pq

        n = [pq.read_metadata(f).num_rows for f in files]
        print(f"{len(files)} files, {min(n)}-{max(n)} localizations each, label {args.label} "
              f"({time.perf_counter() - t:.1f} s); {os.cpu_count()} cores", flush=True)

        def loop():
            for f in files:
                run(f, root / "loop" / f.stem, label=args.label, workers=1, quiet=True)

        loop_s = _timed("loop of pipeline.run (one process)", loop)
        shell_s = None
        if not args.skip_shell_loop:
            exe = Path(sys.executable).with_name("smlmspine")

            def shell():
                for f in files:
                    subprocess.run([str(exe), "run", str(f), "-o", str(root / "shell" / f.stem),
                                    "--quiet", "--workers", "1", "--label", args.label],
                                   check=True, capture_output=True)

            shell_s = _timed("loop of `smlmspine run` processes", shell)
        walls = {}
        for workers in (1, 2):
            out = root / f"batch{workers}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = {**config, "batch": {"workers": workers}}
            walls[workers] = _timed(f"smlmspine.batch, LocalCluster of {workers} worker(s)",
                                    lambda: smlmspine.batch(files, out, config=cfg,
                                                            progress=False, report=False))
        print(f"Dask overhead, 1 worker vs the loop: {100 * (walls[1] / loop_s - 1):+.1f} %")
        if shell_s:
            print(f"1 worker vs the `smlmspine run` loop: {100 * (walls[1] / shell_s - 1):+.1f} %")
        print(f"speed-up of 2 workers over 1: {walls[1] / walls[2]:.2f}x")

        # resumability: kill a batch process once half of the files are done, run again
        out = root / "resume"
        shutil.rmtree(out, ignore_errors=True)
        exe = Path(sys.executable).with_name("smlmspine")
        cmd = [str(exe), "batch", str(root / "data" / "cell_*.parquet"), "-o", str(out),
               "--label", args.label, "--workers", "2", "--quiet", "--no-report"]
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        half = len(files) // 2
        while proc.poll() is None and len(list(out.glob("*/done.json"))) < half:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its cluster, mid-run
        proc.wait()
        done_before = {p.parent.name for p in out.glob("*/done.json")}
        partial = len(list((out / ".partial").glob("*"))) if (out / ".partial").is_dir() else 0
        print(f"killed: {len(done_before)} of {len(files)} files done, {partial} half-written "
              "folder(s) left", flush=True)
        res = {}
        resume_s = _timed("resumed batch", lambda: res.setdefault(
            "r", smlmspine.batch(files, out, config={"run": {"label": args.label}},
                                 progress=False, report=False)))
        status = {f["run_folder"]: f["status"] for f in res["r"].record["files"]}
        rerun = {k for k, v in status.items() if v == "done"}
        skipped = {k for k, v in status.items() if v == "skipped"}
        ok = skipped == done_before and rerun == set(status) - done_before
        print(f"resumed: {len(rerun)} re-run, {len(skipped)} skipped, "
              f"{sum(v == 'failed' for v in status.values())} failed; only the unfinished "
              f"files re-run: {ok}; .partial left: {(out / '.partial').exists()}")
        summary = {"files": len(files), "locs": n, "loop_s": loop_s, "shell_loop_s": shell_s,
                   "batch_s": walls, "resume_s": resume_s, "resumed_only_unfinished": ok}
        (root / "bench_batch.json").write_text(json.dumps(summary, indent=2))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
