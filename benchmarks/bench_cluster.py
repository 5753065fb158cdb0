"""Benchmark: smlmspine DBSCAN/HDBSCAN against scikit-learn (and locan when installed).

Data: 3D localizations, half in Gaussian clusters (50 per cluster, sigma 20/20/40 nm)
on a jittered 400 nm lattice, half uniform background in a slab 800 nm thick whose
area grows with N (constant density). Every method runs in its own subprocess on the same saved data, under an
address-space limit (``--mem-limit-gb``, default 12) and a wall-clock limit
(``--timeout-s``); peak memory is the subprocess's maxrss, reported in total and above
the baseline after loading the data (imports, data and JIT warm-up included in the
baseline). Ratios are printed against scikit-learn measured in the same run.

Usage::

    python benchmarks/bench_cluster.py --sizes 1e7 --per-cluster 500 \
        --methods smlmspine_dbscan sklearn_dbscan           # dense clusters
    python benchmarks/bench_cluster.py                      # 10^6 and 10^7
    python benchmarks/bench_cluster.py --sizes 200000       # quick
    python benchmarks/bench_cluster.py --methods smlmspine_dbscan sklearn_dbscan

locan is run with ``--locan-python`` (default ``/work/peers-locan/bin/python``) when that
interpreter exists and imports locan; otherwise it is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EPS_NM = 40.0
MIN_SAMPLES = 5
MIN_CLUSTER_SIZE = 25
PER_CLUSTER = 50

METHODS = ("smlmspine_dbscan", "sklearn_dbscan", "locan_dbscan",
           "smlmspine_hdbscan", "sklearn_hdbscan")


def make_data(n: int, seed: int = 0, per_cluster: int = PER_CLUSTER
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 3)`` coordinates in nm and true cluster labels (-1 background).

    Half of the points are in Gaussian clusters of ``per_cluster`` (sigma 20 nm lateral,
    40 nm axial)
    centred on a jittered square lattice of pitch 400 nm, at a random depth in a slab
    800 nm thick; the other half is uniform background over the same slab.
    """
    rng = np.random.default_rng(seed)
    n_clusters = n // 2 // per_cluster
    side = int(np.ceil(np.sqrt(n_clusters)))
    pitch = 400.0
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1)
    centres = np.empty((n_clusters, 3))
    centres[:, :2] = (grid.reshape(-1, 2)[:n_clusters] + 0.5) * pitch \
        + rng.uniform(-0.15, 0.15, (n_clusters, 2)) * pitch
    centres[:, 2] = rng.uniform(100.0, 700.0, n_clusters)
    clustered = np.repeat(centres, per_cluster, axis=0) + rng.normal(
        0, [20.0, 20.0, 40.0], (n_clusters * per_cluster, 3))
    hi = np.array([side * pitch, side * pitch, 800.0])
    background = rng.uniform(0, 1, (n - clustered.shape[0], 3)) * hi
    truth = np.concatenate([np.repeat(np.arange(n_clusters), per_cluster),
                            np.full(background.shape[0], -1)])
    return np.concatenate([clustered, background]), truth


# --------------------------------------------------------------------------- worker
def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(method: str, data: str, labels_out: str, mem_limit_gb: float) -> None:
    import resource

    limit = int(mem_limit_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Each method gets its input in its own form, loaded before the baseline is taken:
    # an (N, 3) array for scikit-learn and locan, a table (zero-copy columns) for smlmspine.
    if method.startswith("smlmspine"):
        import pyarrow as pa

        from smlmspine import cluster

        def table(a):
            if isinstance(a, pa.Table):
                return a
            return pa.table({"x": a[:, 0].copy(), "y": a[:, 1].copy(), "z": a[:, 2].copy()})

        stem = data[:-len(".npy")]
        xyz = pa.table({c: np.load(f"{stem}_{c}.npy") for c in "xyz"})
        small = np.column_stack([xyz.column(c).to_numpy()[:2000] for c in "xyz"])

        if method == "smlmspine_dbscan":
            def run(a):
                return cluster.dbscan(table(a), eps_nm=EPS_NM, min_samples=MIN_SAMPLES,
                                      border="lowest").column("cluster_id").to_numpy()
        else:
            def run(a):
                return cluster.hdbscan(table(a), min_cluster_size=MIN_CLUSTER_SIZE,
                                       min_samples=MIN_SAMPLES).column("cluster_id").to_numpy()
    else:
        xyz = np.load(data)
        small = xyz[:2000].copy()
    if method.startswith("smlmspine"):
        pass  # run() is defined above
    elif method == "sklearn_dbscan":
        from sklearn.cluster import DBSCAN

        def run(a):
            return DBSCAN(eps=EPS_NM, min_samples=MIN_SAMPLES).fit(a).labels_
    elif method == "sklearn_hdbscan":
        from sklearn.cluster import HDBSCAN

        def run(a):
            return HDBSCAN(min_cluster_size=MIN_CLUSTER_SIZE, min_samples=MIN_SAMPLES).fit(a).labels_
    elif method == "locan_dbscan":
        import locan
        import pandas as pd

        def run(a):
            locdata = locan.LocData.from_dataframe(
                pd.DataFrame({"position_x": a[:, 0], "position_y": a[:, 1], "position_z": a[:, 2]}))
            noise, collection = locan.cluster_dbscan(locdata, eps=EPS_NM,
                                                     min_samples=MIN_SAMPLES)
            return np.asarray([len(collection)])
    else:
        raise SystemExit(f"unknown method {method}")
    t0 = time.perf_counter()
    run(small)  # imports, JIT compilation (cached on disk after the first run)
    warm_s = time.perf_counter() - t0
    base = _maxrss_mb()
    t0 = time.perf_counter()
    labels = run(xyz)
    elapsed = time.perf_counter() - t0
    if labels.shape[0] == len(xyz):
        np.save(labels_out, np.asarray(labels, dtype=np.int64))
    print(json.dumps({"time_s": elapsed, "warmup_s": warm_s, "peak_mb": _maxrss_mb(),
                      "baseline_mb": base}))


# --------------------------------------------------------------------------- driver
def _run_case(method: str, data: Path, workdir: Path, args) -> dict:
    python = sys.executable
    if method == "locan_dbscan":
        python = args.locan_python
        if not Path(python).exists():
            return {"skipped": f"locan interpreter {python} not found"}
        probe = subprocess.run([python, "-c", "import locan"], capture_output=True, text=True)
        if probe.returncode:
            return {"skipped": "locan not importable: " + probe.stderr.strip().splitlines()[-1]}
    labels_out = workdir / f"labels_{method}.npy"
    cmd = [python, os.path.abspath(__file__), "--worker", method, "--data", str(data),
           "--labels-out", str(labels_out), "--mem-limit-gb", str(args.mem_limit_gb)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    timeout = args.hdbscan_timeout_s if "hdbscan" in method else args.timeout_s
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout:.0f} s"}
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        if "MemoryError" in proc.stderr or "Unable to allocate" in proc.stderr \
                or proc.returncode in (-9, 137) or "bad_alloc" in proc.stderr:
            return {"failed": f"out of memory under the {args.mem_limit_gb:g} GB limit ({tail[:120]})"}
        return {"failed": f"exit {proc.returncode}: {tail[:200]}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    out["labels"] = labels_out if labels_out.exists() else None
    return out


def _fmt(res: dict) -> str:
    if "skipped" in res:
        return f"skipped ({res['skipped']})"
    if "failed" in res:
        return f"FAILED: {res['failed']}"
    return (f"{res['time_s']:8.2f} s   peak {res['peak_mb']:8.0f} MB   above baseline "
            f"{res['peak_mb'] - res['baseline_mb']:8.0f} MB   (warm-up {res['warmup_s']:.1f} s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--per-cluster", type=int, default=PER_CLUSTER,
                   help="localizations per cluster (e.g. 500 for dense, many-blink clusters)")
    p.add_argument("--hdbscan-timeout-s", type=float, default=300.0,
                   help="wall-clock limit of the HDBSCAN cases")
    p.add_argument("--mem-limit-gb", type=float, default=12.0)
    p.add_argument("--locan-python", default="/work/peers-locan/bin/python")
    p.add_argument("--skip-hdbscan-above", type=float, default=2e6,
                   help="do not run HDBSCAN on more points than this (it would hit the timeout)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--labels-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.data, args.labels_out, args.mem_limit_gb)
        return 0
    from sklearn.metrics import adjusted_rand_score

    print(f"bench_cluster: eps {EPS_NM} nm, min_samples {MIN_SAMPLES}, HDBSCAN min_cluster_size "
          f"{MIN_CLUSTER_SIZE}; memory limit {args.mem_limit_gb:g} GB, timeout "
          f"{args.timeout_s:.0f} s per case; {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        tmp = Path(tmp)
        timed_out: dict[str, int] = {}
        for size in args.sizes:
            n = int(size)
            xyz, truth = make_data(n, per_cluster=args.per_cluster)
            data = tmp / f"xyz_{n}.npy"
            np.save(data, xyz)
            for k, c in enumerate("xyz"):
                np.save(tmp / f"xyz_{n}_{c}.npy", np.ascontiguousarray(xyz[:, k]))
            del xyz
            k = n // 2 // args.per_cluster
            print(f"\nN = {n:,} 3D localizations ({k:,} clusters of {args.per_cluster} + "
                  f"{n - k * args.per_cluster:,} background)")
            results = {}
            for method in args.methods:
                if method in timed_out:
                    results[method] = {"skipped": f"timed out at N = {timed_out[method]:,}"}
                elif "hdbscan" in method and n > args.skip_hdbscan_above:
                    results[method] = {"skipped": f"N > --skip-hdbscan-above "
                                                  f"{args.skip_hdbscan_above:.0e}"}
                else:
                    results[method] = _run_case(method, data, tmp, args)
                    if "timed out" in results[method].get("failed", ""):
                        timed_out[method] = n
                print(f"  {method:<18} {_fmt(results[method])}", flush=True)
            ok = {m: r for m, r in results.items() if "time_s" in r}
            for ours, ref in (("smlmspine_dbscan", "sklearn_dbscan"),
                              ("smlmspine_dbscan", "locan_dbscan"),
                              ("smlmspine_hdbscan", "sklearn_hdbscan")):
                if ours in ok and ref in ok:
                    a, b = ok[ours], ok[ref]
                    print(f"  {ours} vs {ref}: {b['time_s'] / a['time_s']:.1f}x faster, peak "
                          f"memory {a['peak_mb'] / b['peak_mb']:.2f}x, above-baseline memory "
                          f"{(a['peak_mb'] - a['baseline_mb']) / max(b['peak_mb'] - b['baseline_mb'], 1):.2f}x")
                    la, lb = a.get("labels"), b.get("labels")
                    if la is not None and lb is not None:
                        x, y = np.load(la), np.load(lb)
                        same = "identical" if np.array_equal(x, y) else \
                            f"ARI {adjusted_rand_score(y, x):.4f}"
                        print(f"    labels vs {ref}: {same}")
            for m, r in ok.items():
                if r.get("labels") is not None:
                    lab = np.load(r["labels"])
                    both = (truth >= 0) & (lab >= 0)
                    print(f"  {m}: {lab.max() + 1:,} clusters (truth {truth.max() + 1:,}), "
                          f"noise fraction {np.mean(lab < 0):.3f}; true cluster members "
                          f"clustered {np.mean(lab[truth >= 0] >= 0):.3f}, ARI vs truth on "
                          f"those {adjusted_rand_score(truth[both], lab[both]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
