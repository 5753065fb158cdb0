"""Benchmark: reading a large 3D ThunderSTORM CSV.

Generates a ThunderSTORM-style 3D CSV (quoted header, values written as doubles the way
ThunderSTORM does, ids/frames as ``1.0``) with 10^6 and/or 10^7 localizations, then
times and measures the peak memory of, each in a fresh subprocess:

* ``smlmspine.read(path)`` (format detection + canonical table),
* ``pyarrow.csv.read_csv(path)`` (the floor: the same parser, no schema work),
* ``pandas.read_csv(path)`` (C engine),
* locan's ``load_thunderstorm_file(path)`` when locan is importable by the Python given
  with ``--locan-python`` (default ``/work/peers-locan/bin/python``); otherwise a note
  says it was skipped.

Peak memory is the process's ``ru_maxrss``; the figure compared with the table size is
the peak minus the RSS measured right before the read (imports excluded). CPU time
(user + system, all threads) is printed beside the wall time: on a loaded machine it is
the steadier figure, and wall / CPU shows how much the multithreaded parsers gained.

Targets (issue 2): time <= 1.3x the pyarrow floor, >= 4x faster than locan, peak memory
<= 2.5x the final table's size.

Usage::

    python benchmarks/bench_io.py                      # 10^6 and 10^7 rows
    python benchmarks/bench_io.py --sizes 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = ['id', 'frame', 'x [nm]', 'y [nm]', 'z [nm]', 'sigma1 [nm]', 'sigma2 [nm]',
          'intensity [photon]', 'offset [photon]', 'bkgstd [photon]', 'uncertainty_xy [nm]',
          'uncertainty_z [nm]']
DEFAULT_LOCAN = "/work/peers-locan/bin/python"


def generate(path: Path, n: int, *, seed: int = 0, chunk: int = 1_000_000) -> None:
    """Write a ThunderSTORM-like 3D CSV with ``n`` rows (pyarrow writer, shortest float repr)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        fh.write((",".join(f'"{h}"' for h in HEADER) + "\n").encode())
        opts = pcsv.WriteOptions(include_header=False, quoting_style="none")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            ids = np.arange(start + 1, start + m + 1)
            frames = np.sort(rng.integers(1, 20001, m))

            def as_double_text(v):
                return pc.binary_join_element_wise(pc.cast(pa.array(v), pa.string()), ".0", "")

            cols = [as_double_text(ids), as_double_text(frames),
                    np.round(rng.uniform(0, 40000, m), 3), np.round(rng.uniform(0, 40000, m), 3),
                    np.round(rng.uniform(-600, 600, m), 3), np.round(rng.uniform(80, 200, m), 3),
                    np.round(rng.uniform(80, 200, m), 3), np.round(rng.uniform(100, 1e4, m), 3),
                    np.round(rng.uniform(0, 50, m), 3), np.round(rng.uniform(0, 10, m), 3),
                    np.round(rng.uniform(2, 30, m), 3), np.round(rng.uniform(5, 60, m), 3)]
            t = pa.table([pa.array(c) if not isinstance(c, pa.Array) else c for c in cols],
                         names=[f"c{i}" for i in range(len(cols))])
            pcsv.write_csv(t, fh, write_options=opts)


# ----------------------------------------------------------------------- workers

def _rss_now_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker(method: str, path: str) -> None:
    """Run one read in this (fresh) process and print one JSON line."""
    if method == "smlmspine":
        import smlmspine
        import smlmspine.io.thunderstorm  # noqa: F401  (registry loaded before timing)
        smlmspine.io._registry._load()
        fn = smlmspine.read
    elif method == "pyarrow":
        import pyarrow.csv as pcsv
        fn = pcsv.read_csv
    elif method == "pandas":
        import pandas as pd
        fn = pd.read_csv
    elif method == "locan":
        from locan import load_thunderstorm_file
        fn = load_thunderstorm_file
    else:
        raise SystemExit(f"unknown method {method}")
    before = _rss_now_kb()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = fn(path)
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    peak = r1.ru_maxrss
    if method in ("smlmspine", "pyarrow"):
        rows, nbytes = out.num_rows, out.nbytes
    elif method == "pandas":
        rows, nbytes = len(out), int(out.memory_usage(deep=True).sum())
    else:
        df = out.data
        rows, nbytes = len(df), int(df.memory_usage(deep=True).sum())
    print(json.dumps({"method": method, "time_s": elapsed, "cpu_s": cpu, "peak_kb": peak,
                      "before_kb": before,
                      "rows": rows, "nbytes": nbytes}))


def run_one(method: str, path: Path, python: str, timeout: float) -> dict | None:
    cmd = [python, os.path.abspath(__file__), "--worker", method, str(path)]
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  {method}: timed out after {timeout:.0f} s")
        return None
    if res.returncode != 0:
        print(f"  {method}: failed: {res.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def locan_available(python: str) -> bool:
    if not Path(python).exists():
        return False
    res = subprocess.run([python, "-c", "from locan import load_thunderstorm_file"],
                         capture_output=True, text=True)
    return res.returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=lambda s: int(float(s)), nargs="+",
                    default=[1_000_000, 10_000_000], help="row counts (default 1e6 1e7)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per method (best kept)")
    ap.add_argument("--dir", default=None, help="folder for the generated files (default: temp)")
    ap.add_argument("--locan-python", default=DEFAULT_LOCAN,
                    help="python of a venv with locan (skipped when absent)")
    ap.add_argument("--skip", nargs="*", default=[], help="methods to skip")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-run timeout in seconds")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0

    has_locan = locan_available(args.locan_python)
    if not has_locan:
        print(f"note: locan not importable with {args.locan_python}: locan skipped")
    methods = [m for m in ("smlmspine", "pyarrow", "pandas", "locan")
               if m not in args.skip and (m != "locan" or has_locan)]
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="bench_io_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; files in {workdir}")
    try:
        for n in args.sizes:
            path = workdir / f"thunderstorm_3d_{n}.csv"
            t0 = time.perf_counter()
            generate(path, n)
            size_mb = path.stat().st_size / 1e6
            print(f"\n== {n:,} rows: {size_mb:,.0f} MB CSV (generated in "
                  f"{time.perf_counter() - t0:.1f} s)")
            with open(path, "rb") as fh:  # warm the page cache for every method alike
                while fh.read(1 << 24):
                    pass
            results = {}
            for m in methods:
                py = args.locan_python if m == "locan" else sys.executable
                runs = [r for r in (run_one(m, path, py, args.timeout)
                                    for _ in range(args.repeats)) if r]
                if not runs:
                    continue
                best = min(runs, key=lambda r: r["time_s"])
                best["peak_kb"] = max(r["peak_kb"] for r in runs)
                results[m] = best
                delta_mb = (best["peak_kb"] - best["before_kb"]) / 1024
                print(f"  {m:<10} {best['time_s']:8.2f} s wall {best['cpu_s']:8.2f} s CPU"
                      f"   peak RSS {best['peak_kb'] / 1024:8.0f} MB"
                      f"  (+{delta_mb:.0f} MB during the read)   rows {best['rows']:,}"
                      f"   result {best['nbytes'] / 1e6:,.0f} MB")
            s = results.get("smlmspine")
            if not s:
                continue
            print("  ratios:")
            if "pyarrow" in results:
                r = s["time_s"] / results["pyarrow"]["time_s"]
                print(f"    smlmspine / pyarrow floor time : {r:.2f}x   (target <= 1.3x: "
                      f"{'met' if r <= 1.3 else 'NOT met'})")
            if "pandas" in results:
                print(f"    pandas / smlmspine time        : "
                      f"{results['pandas']['time_s'] / s['time_s']:.2f}x faster")
            if "pyarrow" in results:
                r = s["cpu_s"] / results["pyarrow"]["cpu_s"]
                print(f"    smlmspine / pyarrow CPU time   : {r:.2f}x")
            if "locan" in results:
                r = results["locan"]["time_s"] / s["time_s"]
                print(f"    locan / smlmspine time         : {r:.2f}x faster   (target >= 4x: "
                      f"{'met' if r >= 4 else 'NOT met'})")
                r = results["locan"]["cpu_s"] / s["cpu_s"]
                print(f"    locan / smlmspine CPU time     : {r:.2f}x")
            else:
                print("    locan: skipped (not installed or failed)")
            mem = (s["peak_kb"] - s["before_kb"]) * 1024 / s["nbytes"]
            absolute = s["peak_kb"] * 1024 / s["nbytes"]
            print(f"    smlmspine peak memory / table  : {mem:.2f}x during the read "
                  f"({absolute:.2f}x counting the interpreter)   (target <= 2.5x: "
                  f"{'met' if mem <= 2.5 else 'NOT met'})")
            path.unlink()
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
