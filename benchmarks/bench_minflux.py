"""Read + filter + trace-average N MINFLUX localizations: smlmspine vs pyMINFLUX.

Generates an Abberior ``.npy`` export (nested m2205 layout, 2D, 5 iterations) with
:func:`smlmspine.io.minflux.write_abberior_npy`, then times on the same file:

* smlmspine: ``read_minflux`` -> ``filter_quality(efo >= 1e4, cfr <= 0.8)`` ->
  ``filter_trace_length(4)`` -> ``average_traces``;
* pyMINFLUX (if installed in its own environment, default ``/work/peers-pyminflux``;
  override with ``PYMINFLUX_PYTHON``): ``MinFluxReader`` -> ``MinFluxProcessor`` with
  ``min_trace_length=4`` -> ``filter_by_1d_range`` on efo and cfr -> per-trace statistics
  (``filtered_dataframe_stats``), run in a subprocess (its import time is excluded, as
  are smlmspine's library imports).

Prints the timings, the ratio pyMINFLUX / smlmspine, and the agreement of the two
results (trace count, largest difference of the per-trace mean positions in nm). When the
real exports in ``../shared/data/minflux`` are present, also compares both readers on
them column by column.
When pyMINFLUX is absent the peer is skipped with a note.

Finally times :func:`smlmspine.minflux.average_traces` alone on ``--average-rows``
(default 10^7) rows against a pandas groupby computing the same statistics.

Usage: ``python benchmarks/bench_minflux.py [--n 1000000] [--average-rows 10000000]
[--workdir DIR] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

EFO_MIN, CFR_MAX, MIN_LEN = 1e4, 0.8, 4

_PEER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    t0 = time.perf_counter()
    from pyminflux.reader import MinFluxReader
    from pyminflux.processor import MinFluxProcessor
    t_import = time.perf_counter() - t0
    path, out = sys.argv[1], sys.argv[2]
    efo_min, cfr_max, min_len = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    c0 = time.process_time()
    t0 = time.perf_counter()
    reader = MinFluxReader(path, z_scaling_factor=0.7)
    df = reader.processed_dataframe
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    proc = MinFluxProcessor(reader, min_trace_length=min_len)
    proc.filter_by_1d_range("efo", (efo_min, np.inf))
    proc.filter_by_1d_range("cfr", (-np.inf, cfr_max))
    n_kept = len(proc.filtered_dataframe)
    t_filter = time.perf_counter() - t1
    t2 = time.perf_counter()
    stats = proc.filtered_dataframe_stats
    t_avg = time.perf_counter() - t2
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    np.savez(out, tid=stats["tid"].to_numpy(), mx=stats["mx"].to_numpy(),
             my=stats["my"].to_numpy(), n=stats["n"].to_numpy())
    print(json.dumps({"import_s": t_import, "read_s": t_read, "filter_s": t_filter,
                      "average_s": t_avg, "total_s": total, "cpu_s": cpu, "n_read": int(len(df)),
                      "n_kept": int(n_kept), "n_traces": int(len(stats)),
                      "version": __import__("pyminflux").__version__}))
""")


def generate(path: Path, n: int, rng: int = 0) -> dict:
    """Write an n-localization 2D nested export; traces of 1..20 localizations."""
    from smlmspine.io.minflux import write_abberior_npy

    rng = np.random.default_rng(rng)
    counts = rng.integers(1, 21, n // 5 + 10)
    counts = counts[:np.searchsorted(np.cumsum(counts), n) + 1]
    counts[-1] -= counts.sum() - n
    tid = np.repeat(np.arange(counts.size) + 1, counts)
    centres = rng.uniform(0, 40_000, (counts.size, 2))
    pos = np.repeat(centres, counts, axis=0) + rng.normal(0, 3.0, (n, 2))
    cols = {"x": pos[:, 0], "y": pos[:, 1], "time_s": np.arange(n) * 1e-3, "track_id": tid,
            "efo": rng.uniform(2e3, 2e5, n), "cfr": rng.uniform(0.0, 1.2, n),
            "dcr": rng.uniform(0.1, 0.9, n), "eco": rng.integers(20, 400, n).astype(float),
            "vld": rng.random(n) > 0.05}
    write_abberior_npy(cols, path, ndim=2, n_iterations=5)
    return cols


def run_smlmspine(path: Path) -> dict:
    import pandas  # noqa: F401  (pyarrow imports it lazily; library imports are not timed)

    from smlmspine.io.minflux import read_minflux
    from smlmspine.minflux import average_traces, filter_quality, filter_trace_length

    c0 = time.process_time()
    t0 = time.perf_counter()
    table = read_minflux(path)
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    kept = filter_trace_length(filter_quality(table, efo_range=(EFO_MIN, None),
                                              cfr_range=(None, CFR_MAX)),
                               min_localizations=MIN_LEN)
    t_filter = time.perf_counter() - t1
    t2 = time.perf_counter()
    avg = average_traces(kept)
    t_avg = time.perf_counter() - t2
    return {"read_s": t_read, "filter_s": t_filter, "average_s": t_avg,
            "total_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "n_read": table.num_rows,
            "n_kept": kept.num_rows, "n_traces": avg.num_rows, "table": avg}


_PEER_READ_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from pyminflux.reader import MinFluxReader
    df = MinFluxReader(sys.argv[1], z_scaling_factor=0.7).processed_dataframe
    np.savez(sys.argv[2], **{c: df[c].to_numpy() for c in
                             ("tid", "tim", "x", "y", "z", "efo", "cfr", "eco", "dcr", "fbg")})
""")


def compare_real(workdir: Path) -> None:
    """Column-by-column comparison with pyMINFLUX on the real exports in ../shared/data."""
    import zipfile

    from smlmspine.io.minflux import read_minflux

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "minflux"
    python = os.environ.get("PYMINFLUX_PYTHON", "/work/peers-pyminflux/bin/python")
    zips = sorted(shared.glob("*.npy.zip"))
    if not zips or not Path(python).exists():
        print(f"note: real-data comparison skipped (data in {shared}: {len(zips)} files; "
              f"pyMINFLUX: {Path(python).exists()})")
        return
    script = workdir / "peer_read.py"
    script.write_text(_PEER_READ_SCRIPT)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            member = [m for m in zf.namelist() if m.endswith(".npy")][0]
            zf.extract(member, workdir)
        npy = workdir / member
        out = workdir / (npy.stem + "_peer.npz")
        proc = subprocess.run([python, str(script), str(npy), str(out)], capture_output=True,
                              text=True, env=env, timeout=600)
        if proc.returncode != 0:
            print(f"note: pyMINFLUX failed on {npy.name}: {proc.stderr.strip()[-400:]}")
            continue
        peer = np.load(out)
        ours = read_minflux(npy)
        diffs = []
        for col, pcol in (("track_id", "tid"), ("time_s", "tim"), ("x", "x"), ("y", "y"),
                          ("z", "z"), ("efo", "efo"), ("cfr", "cfr"), ("eco", "eco"),
                          ("dcr", "dcr"), ("fbg", "fbg")):
            b = peer[pcol].astype(float)
            if col not in ours.column_names:  # 2D: pyMINFLUX keeps z = 0
                diffs.append(f"{col} absent (peer max |z| {np.abs(b).max():g})")
                continue
            a = ours.column(col).to_numpy().astype(float)
            diffs.append(f"{col} {np.nanmax(np.abs(a - b)):.2g}" if a.size == b.size else
                         f"{col} COUNT {a.size} vs {b.size}")
        print(f"real {npy.name}: {ours.num_rows} localizations (pyMINFLUX {peer['x'].size}); "
              f"max |difference|: " + ", ".join(diffs))


def run_pyminflux(path: Path, workdir: Path) -> dict | None:
    python = os.environ.get("PYMINFLUX_PYTHON", "/work/peers-pyminflux/bin/python")
    if not Path(python).exists():
        print(f"note: pyMINFLUX skipped ({python} not found; install pyminflux in its own venv "
              "and set PYMINFLUX_PYTHON)")
        return None
    script = workdir / "peer_pyminflux.py"
    script.write_text(_PEER_SCRIPT)
    out = workdir / "peer_stats.npz"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([python, str(script), str(path), str(out), str(EFO_MIN), str(CFR_MAX),
                           str(MIN_LEN)], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        print(f"note: pyMINFLUX failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
        return None
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    res = json.loads(line)
    res["stats"] = dict(np.load(out))
    return res


def bench_average(n_rows: int) -> None:
    """average_traces on n_rows (sorted and shuffled track ids) vs a pandas groupby."""
    from smlmspine.minflux import average_traces
    from smlmspine.schema import make_table

    rng = np.random.default_rng(1)
    tid = np.sort(rng.integers(0, n_rows // 10, n_rows))
    table = make_table({"x": rng.normal(0, 1e4, n_rows), "y": rng.normal(0, 1e4, n_rows),
                        "z": rng.normal(0, 300, n_rows), "time_s": np.arange(n_rows) * 1e-4,
                        "track_id": tid})
    shuffled = table.take(rng.permutation(n_rows))
    for label, tab in (("sorted", table), ("shuffled", shuffled)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = average_traces(tab)
        print(f"average_traces {n_rows} rows ({label} ids) -> {out.num_rows} traces: "
              f"{time.perf_counter() - t0:.2f} s wall / {time.process_time() - c0:.2f} s CPU")
    for label, tab in (("sorted", table), ("shuffled", shuffled)):
        df = tab.to_pandas()
        c0, t0 = time.process_time(), time.perf_counter()
        df.groupby("track_id").agg({"x": ["mean", "std", "count"], "y": ["mean", "std"],
                                    "z": ["mean", "std"], "time_s": ["mean", "min", "max"]})
        print(f"pandas groupby (same statistics, {label} ids): "
              f"{time.perf_counter() - t0:.2f} s wall / {time.process_time() - c0:.2f} s CPU")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="localizations (default 10^6)")
    ap.add_argument("--workdir", default=None, help="folder for the generated file")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--average-rows", type=int, default=10_000_000,
                    help="rows for the average_traces scaling run (0: skip; default 10^7)")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_minflux_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"minflux_{args.n}.npy"
    try:
        compare_real(workdir)
        t0 = time.perf_counter()
        generate(path, args.n)
        print(f"generated {args.n} localizations (2D, 5 iterations, nested m2205 layout): "
              f"{path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        ours = run_smlmspine(path)
        print(f"smlmspine : read {ours['read_s']:.2f} s, filter {ours['filter_s']:.2f} s, "
              f"average {ours['average_s']:.2f} s, total {ours['total_s']:.2f} s wall / "
              f"{ours['cpu_s']:.2f} s CPU "
              f"({ours['n_read']} valid -> {ours['n_kept']} kept -> {ours['n_traces']} traces)")
        peer = run_pyminflux(path, workdir)
        if peer is not None:
            print(f"pyMINFLUX {peer['version']}: read {peer['read_s']:.2f} s, filter "
                  f"{peer['filter_s']:.2f} s, per-trace stats {peer['average_s']:.2f} s, total "
                  f"{peer['total_s']:.2f} s wall / {peer['cpu_s']:.2f} s CPU (+ import "
                  f"{peer['import_s']:.1f} s) "
                  f"({peer['n_read']} valid -> {peer['n_kept']} kept -> {peer['n_traces']} traces)")
            print(f"ratio pyMINFLUX / smlmspine: read {peer['read_s'] / ours['read_s']:.2f}x, "
                  f"total {peer['total_s'] / ours['total_s']:.2f}x wall, "
                  f"{peer['cpu_s'] / ours['cpu_s']:.2f}x CPU")
            avg = ours["table"]
            s = peer["stats"]
            tid = avg.column("track_id").to_numpy()
            common, ia, ib = np.intersect1d(tid, s["tid"].astype(np.int64), return_indices=True)
            dx = np.abs(avg.column("x").to_numpy()[ia] - s["mx"][ib])
            dy = np.abs(avg.column("y").to_numpy()[ia] - s["my"][ib])
            same_n = np.array_equal(avg.column("n_localizations").to_numpy()[ia], s["n"][ib])
            print(f"agreement: {len(common)} common traces of {len(tid)} / {len(s['tid'])}; "
                  f"max |mean difference| x {dx.max():.2e} nm, y {dy.max():.2e} nm; "
                  f"counts identical: {same_n}")
        if args.average_rows:
            bench_average(args.average_rows)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
