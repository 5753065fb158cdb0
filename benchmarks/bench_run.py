"""Benchmark: a simulated 10^6-localization dendrite through `smlmspine run` (issue #8 target <= 90 s).

Usage::

    python benchmarks/bench_run.py [--locs 1000000] [--workers -1] [--keep DIR]

Simulates a membrane-labelled 3D STORM dendrite (30 spines on 20 um of shaft, drift
150 nm, labelling density scaled to about the requested number of localizations), writes
it as Parquet, then times the command line ``smlmspine run IN -o OUT`` end to end (a new
process: imports, numba cache loads, reading, drift, merging, isolation, meshes, neck
refits, features, writing) and prints the stage times from ``run.json``, the load average
and the number of spines found against the truth.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locs", type=float, default=1e6)
    ap.add_argument("--workers", type=int, default=-1)
    ap.add_argument("--keep", default=None, help="keep the input and output in this folder")
    args = ap.parse_args(argv)

    from smlmspine import simulate
    from smlmspine.io import write

    length, n_spines = 20000.0, 30
    base = 110000 / 15000 * length          # localizations at 500 /um^2 (membrane)
    factor = max(args.locs / base, 0.05)
    t0 = time.perf_counter()
    sim = simulate.dendrite(geometry=simulate.Geometry(n_spines=n_spines, shaft_length_nm=length),
                            rng=5, labeling=simulate.Labeling(labeling_density_per_um2=500.0 * factor,
                                                              label="membrane"))
    n = sim.localizations.num_rows
    print(f"simulated {n} localizations, {n_spines} spines in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        src = folder / "dendrite.parquet"
        write(sim.localizations, src)
        out = folder / "run"
        exe = Path(sys.executable).with_name("smlmspine")
        cmd = [str(exe), "run", str(src), "-o", str(out), "--quiet",
               "--workers", str(args.workers)]
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        print("$ " + " ".join(cmd))
        w0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - w0
        if proc.returncode:
            print(proc.stdout, proc.stderr)
            return proc.returncode
        print(proc.stdout.strip())
        run = json.loads((out / "run.json").read_text())
        print(f"\n`smlmspine run` wall time: {wall:.1f} s (target <= 90 s); load average after: "
              f"{os.getloadavg()[0]:.2f}")
        stages = run.get("stages", {})
        for name, st in stages.items():
            if isinstance(st, dict) and "seconds" in st:
                print(f"  {name:<12} {st['seconds']:7.1f} s")
        found = run.get("n_spines")
        print(f"spines found: {found} of {n_spines} simulated; run.json total {run.get('seconds', float('nan')):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
