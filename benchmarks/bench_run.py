"""Benchmark: `smlmspine run` on the 588k-localization dendrite of issue #19, against a naive peer.

Usage::

    python benchmarks/bench_run.py [--input FILE] [--density 1000] [--workers -1] [--keep DIR]

Without ``--input`` it simulates the dendrite of issue #19 (``smlmspine simulate dendrite
--seed 5 --shaft-length-nm 40000 --labeling-density-per-um2 1000``: 588 096
localizations, 60 spines; ``--density`` scales it). It then times, in the same run:

1. the command line ``smlmspine run IN -o OUT --quiet --no-report`` end to end (a new
   process: imports, numba cache loads, reading, drift, merging, isolation, envelopes,
   neck refits, features, writing), and prints the stage times, the envelope stage's
   per-step breakdown (``run.json`` ``stages.mesh.parameters.profile``, the table of
   ``--profile``), peak memory and the load average;
2. the naive peer: one Open3D alpha shape (alpha = 60 nm, no checks, no repair) per
   spine over the same spines' localizations (``OUT/localizations.parquet``,
   ``spine_id >= 0``), Open3D imported before the clock starts;

and prints the ratio (issue #19 targets: run <= 20 s on 2 cores, ratio <= 7). Timings on
a shared machine are noisy: the ratio of two measurements made one after the other is
the figure to compare.
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


def _smlmspine() -> str:
    return str(Path(sys.executable).with_name("smlmspine"))


def naive_alpha_seconds(localizations: Path, *, alpha_nm: float = 60.0) -> tuple[float, int, int]:
    """Seconds of one Open3D alpha shape per spine (``spine_id >= 0``); (s, spines, points)."""
    import numpy as np
    import open3d as o3d
    import pyarrow.parquet as pq

    t = pq.read_table(localizations, columns=["x", "y", "z", "spine_id"])
    p = np.c_[t.column("x").to_numpy(), t.column("y").to_numpy(), t.column("z").to_numpy()]
    sid = t.column("spine_id").to_numpy()
    ids = np.unique(sid[sid >= 0])
    groups = [p[sid == k] for k in ids]
    t0 = time.perf_counter()
    for q in groups:
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(q))
        o3d.geometry.TriangleMesh.create_from_point_cloud_alpha_shape(pcd, alpha_nm)
    return time.perf_counter() - t0, len(ids), int(sum(len(q) for q in groups))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=None, help="localization file (default: simulate)")
    ap.add_argument("--density", type=float, default=1000.0,
                    help="labelling density of the simulation, per um^2 (default 1000)")
    ap.add_argument("--workers", type=int, default=-1)
    ap.add_argument("--keep", default=None, help="keep the input and output in this folder")
    args = ap.parse_args(argv)

    from smlmspine._profile import format_run_profile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.input:
            src = Path(args.input)
        else:
            src = folder / "dendrite.parquet"
            cmd = [_smlmspine(), "simulate", "dendrite", "--seed", "5",
                   "--shaft-length-nm", "40000", "--labeling-density-per-um2",
                   f"{args.density:g}", str(src)]
            env = dict(os.environ)
            env.setdefault("SMLMSPINE_MEMORY_BUDGET_GB", "8")
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            print(f"simulated {src} in {time.perf_counter() - t0:.1f} s")
        out = folder / "run"
        cmd = [_smlmspine(), "run", str(src), "-o", str(out), "--quiet", "--no-report",
               "--workers", str(args.workers)]
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        print("$ " + " ".join(cmd))
        w0 = time.perf_counter()
        with open(folder / "run.log", "w+") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - w0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                log.seek(0)
                print(log.read())
                return proc.returncode
        # largest resident set of the run's process and of its descendants waited for
        rss_run = usage.ru_maxrss / 1024.0
        run = json.loads((out / "run.json").read_text())
        stages = run.get("stages", {})
        print(format_run_profile(stages, (stages.get("mesh") or {}).get("parameters", {})
                                 .get("profile")))
        # the pool's workers are children of its fork server, which wait4 does not see
        # while the run lives: their peaks come from the profile
        prof_rss = ((stages.get("mesh") or {}).get("parameters", {}).get("profile") or {}) \
            .get("peak_rss_mb") or {}
        peaks = [rss_run] + [float(v) for v in prof_rss.values() if v is not None]
        print(f"peak RSS of `smlmspine run`: {max(peaks):.0f} MB in one process (main "
              f"{rss_run:.0f} MB, envelope jobs {prof_rss.get('jobs')} MB); "
              f"load average after: {os.getloadavg()[0]:.2f}")
        naive, n_sp, n_pts = naive_alpha_seconds(out / "localizations.parquet")
        print(f"\nspines found: {run.get('n_spines')}; localizations: "
              f"{stages.get('read', {}).get('n_localizations')}")
        print(f"`smlmspine run` wall time: {wall:.1f} s (issue #19 target <= 20 s on 2 cores)")
        print(f"naive Open3D alpha shapes (alpha 60 nm) of the same {n_sp} spines "
              f"({n_pts} localizations): {naive:.2f} s")
        print(f"ratio run / naive: {wall / naive:.1f} (target <= 7); load average: "
              f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
