"""Benchmark: the level-set rebuild (envelope/_levelset.py rebuild_surface) per call.

Usage::

    python benchmarks/bench_levelset.py [--spines 8] [--seed 5] [--inputs calls.pkl]

Simulates a dendrite (membrane label, 3D STORM precision, ``--spines`` spines), meshes
it with ``mesh_spines`` and records every surface the pipeline hands to
``rebuild_surface`` (folded shell fits, hollow envelopes); or loads such calls from
``--inputs`` (a pickle of dicts with ``v``, ``f``, ``precision_nm``, ``fill_axis``).
Then times ``rebuild_surface`` on each recorded surface with both decimation engines
(``engine="qem"``, the package's quadric edge collapse, the default; ``"open3d"``,
Open3D's ``simplify_quadric_decimation``) in the same run, and the steps of the
rebuild (sign by crossing parity, band distance, marching cubes, decimation, checks).
It reports the validity of every result (exact self-intersection test and Open3D's),
the volume change from the input and the faces written.

Measured (2026-12-04, the shared 2-core machine, load average 5-8 while measuring, so
absolute times are ~3x a quiet machine's; every ratio is from one run). Inputs: the 45
``rebuild_surface`` calls of ``smlmspine mesh`` on the first half (x < 21 um, 31 spines)
of the issue-19 dendrite (``simulate dendrite --seed 5 --shaft-length-nm 40000
--labeling-density-per-um2 1000``), recorded and replayed with ``--inputs``:

- the code before (Open3D ``compute_occupancy`` with 3 rays per grid point, trimesh's
  split for the largest body, the exact check of the full marching-cubes surface,
  Open3D decimation) against the new sign kernel + union-find body test + deferred
  check, still with Open3D decimation: 303.9 s -> 163.3 s (6.75 -> 3.63 s per call,
  1.86x; load 5-7); output meshes identical in 44 of 45 calls; in the other one a
  single grid point (of ~1e6 inside) differs, where Open3D's 3-ray vote was wrong;
- this script, ``engine="open3d"`` against ``engine="qem"`` (the default): 104.3 s ->
  57.8 s (2.32 -> 1.28 s per call, 1.80x; load 6.1-7.7); all 90 results valid (exact
  self-intersection test and Open3D's); the same face counts in 43 calls, in 2 Open3D's
  decimation to the target failed the check and its 2x-target step was kept (12964 and
  10430 faces) where the QEM's passed at the target (6482, 5214); volume changes from
  the input within 0.04 percentage point of each other.

Together ~3.4x per call (6.75 -> ~2.0 s, chaining the two ratios). End to end,
``smlmspine mesh`` of the same half dendrite ``--workers 1 --profile`` (one snapshot of
the package, only envelope/_levelset.py swapped; cold numba caches for both; load
6.3-7.2): mesh stage 504.6 s -> 295.8 s wall, level-set steps of the neck refit 158.4
-> 73.6 s (24 calls) and of the hollow fill 12.5 -> 3.9 s (3 calls), peak RSS 1576 ->
1157 MB; spines.parquet: 31/31 watertight in both, volumes within 0.32 %, median
feature changes <= 0.1 % (open angle 5.5 %), but two spines' neck/head split flips
(spine 24: neck 109 -> 417 nm; spine 13: head 681 -> 290 nm, mushroom -> thin). The sign itself now takes
0.01-0.09 s per call (Open3D's occupancy was ~0.4 s).
"""

from __future__ import annotations

import argparse
import os
import pickle
import time

import numpy as np


def record_calls(n_spines, seed):
    """rebuild_surface inputs of a simulated dendrite's mesh_spines run."""
    import smlmspine.envelope._levelset as L
    from smlmspine import simulate
    from smlmspine.envelope import isolate_spines, mesh_spines

    sim = simulate.dendrite(
        geometry=simulate.Geometry(n_spines=n_spines, shaft_length_nm=2500.0 * n_spines),
        rng=seed, drift=simulate.SimulatedDrift(drift_nm=0),
        labeling=simulate.Labeling(label="membrane"))
    calls = []
    orig = L.rebuild_surface

    def spy(vertices, faces, *, precision_nm, fill_axis=None, **kw):
        calls.append({"v": np.array(vertices, float), "f": np.array(faces, np.int64),
                      "precision_nm": precision_nm,
                      "fill_axis": None if fill_axis is None else np.array(fill_axis, float)})
        return orig(vertices, faces, precision_nm=precision_nm, fill_axis=fill_axis, **kw)

    L.rebuild_surface = spy
    try:
        iso = isolate_spines(sim.localizations, label="membrane", workers=1)
        mesh_spines(sim.localizations, label="membrane", isolation=iso, workers=1,
                    dendrite=False)
    finally:
        L.rebuild_surface = orig
    return calls


def _steps(c):
    """Seconds of the steps of one rebuild (engine qem)."""
    import smlmspine.envelope._levelset as L
    from smlmspine.envelope._levelset import grid_inside

    v, f = c["v"], c["f"]
    pitch = L.levelset_pitch(c["precision_nm"])
    t = {}
    t0 = time.perf_counter()
    field = L._signed_field(v, f, pitch_nm=pitch, max_points=L.LEVELSET_MAX_POINTS,
                            fill_axis=c["fill_axis"])
    t["field"] = time.perf_counter() - t0
    n = field.vals.shape
    t0 = time.perf_counter()
    local = (v - 0.5 * (v.min(0) + v.max(0))) @ field.rot.T
    grid_inside(local, f, origin=field.lo, pitch_nm=field.pitch, shape=n)
    t["sign"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lv, lf, _ = L._extract(field, check=False)
    t["cubes"] = time.perf_counter() - t0
    return t, len(lf), int(np.prod(n))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spines", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--inputs", help="pickle of recorded rebuild_surface calls")
    ap.add_argument("--save-inputs", help="write the recorded calls to this pickle")
    a = ap.parse_args(argv)

    import trimesh

    from smlmspine.envelope._levelset import rebuild_surface
    from smlmspine.envelope._repair import validate_envelope

    if a.inputs:
        with open(a.inputs, "rb") as fh:
            calls = pickle.load(fh)
    else:
        calls = record_calls(a.spines, a.seed)
        if a.save_inputs:
            with open(a.save_inputs, "wb") as fh:
                pickle.dump(calls, fh)
    if not calls:
        print("no surface needed a rebuild")
        return 0
    # warm-up: numba kernels (cached at first use), imports
    rebuild_surface(calls[0]["v"], calls[0]["f"], precision_nm=calls[0]["precision_nm"])
    print(f"{len(calls)} rebuilds; load average {os.getloadavg()[0]:.2f} (2-core machine)")
    print(f"{'#':>3} {'faces in':>8} {'grid pts':>9} {'cubes':>7} | {'field':>6} {'sign':>6} "
          f"{'mc':>5} | {'qem s':>6} {'faces':>6} {'ok':>3} {'dvol%':>6} | "
          f"{'o3d s':>6} {'faces':>6} {'ok':>3} {'dvol%':>6}")
    tot = {"qem": 0.0, "open3d": 0.0}
    bad = {"qem": 0, "open3d": 0}
    for i, c in enumerate(calls):
        st, n_cubes, n_pts = _steps(c)
        vol0 = trimesh.Trimesh(c["v"], c["f"], process=False).volume
        line = (f"{i:>3} {len(c['f']):>8} {n_pts:>9} {n_cubes:>7} | {st['field']:>6.2f} "
                f"{st['sign']:>6.2f} {st['cubes']:>5.2f} |")
        for eng in ("qem", "open3d"):
            t0 = time.perf_counter()
            v, f, _, _ = rebuild_surface(c["v"], c["f"], precision_nm=c["precision_nm"],
                                         fill_axis=c["fill_axis"], engine=eng)
            dt = time.perf_counter() - t0
            tot[eng] += dt
            why = validate_envelope(v, f) if len(f) else "empty"
            bad[eng] += bool(why)
            dvol = 100 * (trimesh.Trimesh(v, f, process=False).volume / vol0 - 1) if len(f) else np.nan
            line += f" {dt:>6.2f} {len(f):>6} {'y' if not why else 'N':>3} {dvol:>6.2f} |"
        print(line.rstrip("|"), flush=True)
    print(f"total rebuild_surface: qem {tot['qem']:.1f} s, open3d {tot['open3d']:.1f} s "
          f"(ratio {tot['open3d'] / tot['qem']:.2f}); per call {tot['qem'] / len(calls):.2f} / "
          f"{tot['open3d'] / len(calls):.2f} s; invalid results {bad['qem']} / {bad['open3d']}; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
