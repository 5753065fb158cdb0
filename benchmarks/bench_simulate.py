"""Timing of the ground-truth simulator (smlmspine.simulate).

Prints wall and CPU seconds for the geometry (meshing, measurements) and for the
acquisition (labeling, blinking, noise, drift, tables) at growing numbers of
localizations, and MINFLUX traces. ``--large`` adds the 10^7-localization run the
issue asks for (needs ~2.5 GB of memory).

Peers: locan (``locan.simulate_Thomas`` / ``make_uniform``-style point generators) has no
dendrite geometry or blinking model; if it is importable, its uniform point simulation of
the same number of points is timed for scale, otherwise a note is printed.

Run: ``python benchmarks/bench_simulate.py [--large]``
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="include 10^7 localizations")
    args = ap.parse_args(argv)
    import open3d  # noqa: F401  (import cost excluded from the timings)
    import trimesh  # noqa: F401

    from smlmspine.simulate import Acquisition, Labeling, MinfluxSample, dendrite, minflux_traces

    print("smlmspine.simulate.dendrite (10 um shaft, 15 spines, membrane label)")
    print(f"{'density/um2':>12} {'n_frames':>9} {'localizations':>14} {'wall s':>8} {'cpu s':>8} "
          f"{'cpu us/loc':>10}")
    # geometry only (no fluorophores) to separate meshing from the acquisition
    _, wg, cg = _timed(lambda: dendrite(rng=1, labeling=Labeling(labeling_density_per_um2=0.0),
                                        acquisition=Acquisition(n_frames=1)))
    print(f"{'geometry':>12} {'':>9} {'0':>14} {wg:8.2f} {cg:8.2f}")
    runs = [(500.0, 20000), (5000.0, 50000), (50000.0, 100000)]
    if args.large:
        runs.append((80000.0, 100000))
    for dens, nf in runs:
        sim, w, c = _timed(lambda: dendrite(rng=1, labeling=Labeling(labeling_density_per_um2=dens),
                                            acquisition=Acquisition(n_frames=nf)))
        n = sim.localizations.num_rows
        print(f"{dens:12.0f} {nf:9d} {n:14d} {w:8.2f} {c:8.2f} {1e6 * max(c - cg, 0.0) / n:8.3f}")
        del sim
    print("\nsmlmspine.simulate.minflux_traces (3D)")
    for ne in (1000, 50000):
        sim, w, c = _timed(lambda: minflux_traces(sample=MinfluxSample(n_emitters=ne), rng=1))
        print(f"  {ne} emitters -> {sim.localizations.num_rows} localizations: {w:.2f} s wall, {c:.2f} s cpu")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory {peak:.0f} MB")
    try:
        import locan  # noqa: F401
    except ImportError:
        print("peer locan not installed: skipped (it has no dendrite/blinking model to compare anyway)")
    else:  # pragma: no cover - depends on the peer being present
        n = 1_000_000
        _, w, _ = _timed(lambda: locan.simulate_uniform(n_samples=n, region=((0, 10000),) * 3, seed=1))
        print(f"peer locan.simulate_uniform, {n} points: {w:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
