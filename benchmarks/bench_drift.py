"""Drift correction benchmark: smlmspine AIM/RCC vs Picasso AIM/RCC on the same data.

One simulated 3D dendrite acquisition (``smlmspine.simulate.dendrite``, ~10^6
localizations, smooth 3D drift of ~200 nm) is corrected in 3D and in 2D (z dropped) by

- smlmspine ``estimate_drift(method="aim")`` and ``method="rcc"`` (this environment);
- Picasso ``picasso.aim.aim`` and ``picasso.postprocess.undrift`` (RCC, 2D only),
  run with the Python of a separate environment (``--picasso-python``, default
  ``/work/peers-picasso/bin/python``); skipped with a note when it is absent.

Each run is a separate process, so the peak resident memory (``ru_maxrss``) is that of
the method (plus the interpreter and libraries). The residual is the RMS of
(estimated - true) drift over all frames after removing the mean offset (an absolute
offset is not observable). Prints a table and the ratios against Picasso.

Usage: ``python benchmarks/bench_drift.py [--length-um 10] [--blinks 40] [--quick]``
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

PIXEL_NM = 130.0

_OURS = r"""
import json, resource, sys, time
import numpy as np
from smlmspine.schema import make_table
from smlmspine.drift import estimate_drift
d = np.load(sys.argv[1])
method, dims = sys.argv[2], int(sys.argv[3])
cols = {"x": d["x"], "y": d["y"], "frame": d["frame"], "precision_xy": d["pxy"]}
if dims == 3:
    cols.update(z=d["z"], precision_z=d["pz"])
t = make_table(cols)
estimate_drift(make_table({k: v[:20000] for k, v in cols.items()}), method=method,
               segment_frames=50)  # compile numba kernels outside the timing
t0 = time.perf_counter()
m = estimate_drift(t, method=method)
dt = time.perf_counter() - t0
est = m.at(d["truth_frame"])
print(json.dumps({"time_s": dt, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "drift": est[:, :dims].tolist()}))
"""

_PICASSO = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
d = np.load(sys.argv[1])
method, dims, px = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
n = d["x"].size
locs = pd.DataFrame({"frame": d["frame"].astype(np.uint32), "x": (d["x"] / px).astype(np.float32),
                     "y": (d["y"] / px).astype(np.float32), "photons": d["photons"].astype(np.float32),
                     "sx": np.ones(n, np.float32), "sy": np.ones(n, np.float32),
                     "bg": np.full(n, 10, np.float32), "lpx": (d["pxy"] / px).astype(np.float32),
                     "lpy": (d["pxy"] / px).astype(np.float32)})
if dims == 3:
    locs["z"] = d["z"].astype(np.float32)
info = [{"Width": int(np.ceil(d["x"].max() / px)) + 2, "Height": int(np.ceil(d["y"].max() / px)) + 2,
         "Frames": int(d["frame"].max()) + 1, "Pixelsize": px}]
from picasso import aim, postprocess
t0 = time.perf_counter()
if method == "aim":
    _, _, drift = aim.aim(locs, info, segmentation=100, intersect_d=20 / px, roi_r=60 / px)
    cols = [drift["x"].to_numpy() * px, drift["y"].to_numpy() * px]
    if dims == 3:
        cols.append(drift["z"].to_numpy())
else:
    drift, _ = postprocess.undrift(locs, info, segmentation=1000, display=False)
    cols = [drift["x"].to_numpy() * px, drift["y"].to_numpy() * px]
dt = time.perf_counter() - t0
est = np.column_stack(cols)[d["truth_frame"]]
print(json.dumps({"time_s": dt, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "drift": est.tolist()}))
"""


def _run(python, code, args, timeout):
    t0 = time.perf_counter()
    try:
        out = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length-um", type=float, default=10.0)
    ap.add_argument("--blinks", type=float, default=40.0, help="blinks per fluorophore")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--drift-nm", type=float, default=200.0)
    ap.add_argument("--quick", action="store_true", help="~10^5 localizations")
    ap.add_argument("--picasso-python", default="/work/peers-picasso/bin/python")
    ap.add_argument("--timeout", type=int, default=480, help="seconds per peer run")
    ap.add_argument("--methods", default="aim,rcc")
    args = ap.parse_args(argv)
    if args.quick:
        args.length_um, args.blinks = 5.0, 8.0
    from smlmspine.simulate import Acquisition, SimulatedDrift, Geometry, PhotophysicsModel, dendrite

    t0 = time.perf_counter()
    sim = dendrite(geometry=Geometry(shaft_length_nm=args.length_um * 1000),
                   acquisition=Acquisition(n_frames=args.frames),
                   photophysics=PhotophysicsModel(blinks_per_fluorophore=args.blinks),
                   drift=SimulatedDrift(drift_nm=args.drift_nm), rng=2024)
    loc = sim.localizations
    print(f"simulated {loc.num_rows} localizations, {args.frames} frames in "
          f"{time.perf_counter() - t0:.0f} s")
    truth = np.column_stack([sim.drift.column(c).to_numpy() for c in ("dx_nm", "dy_nm", "dz_nm")])
    tf = sim.drift.column("frame").to_numpy()
    print("true drift span (nm): " + ", ".join(
        f"{a} {s:.0f}" for a, s in zip("xyz", truth.max(0) - truth.min(0))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, x=loc.column("x").to_numpy(), y=loc.column("y").to_numpy(),
                 z=loc.column("z").to_numpy(), frame=loc.column("frame").to_numpy(),
                 photons=loc.column("photons").to_numpy(),
                 pxy=loc.column("precision_xy").to_numpy(), pz=loc.column("precision_z").to_numpy(),
                 truth_frame=tf)
        have_picasso = Path(args.picasso_python).exists()
        if not have_picasso:
            print(f"note: Picasso environment {args.picasso_python} not found; peers skipped")
        rows = []
        for dims in (3, 2):
            for method in args.methods.split(","):
                runs = [("smlmspine", sys.executable, _OURS, [path, method, dims])]
                if have_picasso and not (method == "rcc" and dims == 3):
                    runs.append(("picasso", args.picasso_python, _PICASSO,
                                 [path, method, dims, PIXEL_NM]))
                for tool, py, code, a in runs:
                    env_note = ""
                    res = _run(py, code, a, args.timeout)
                    if "error" in res:
                        print(f"{tool} {method} {dims}D: {res['error']}")
                        rows.append((tool, method, dims, None, None, None))
                        continue
                    est = np.asarray(res["drift"])
                    r = est - truth[:, :dims]
                    r -= r.mean(axis=0)
                    rms = np.sqrt((r ** 2).mean(axis=0))
                    rows.append((tool, method, dims, res["time_s"], res["maxrss_mb"], rms))
                    print(f"{tool:9s} {method} {dims}D: {res['time_s']:7.1f} s, peak RSS "
                          f"{res['maxrss_mb']:6.0f} MB, residual RMS (nm) "
                          + " ".join(f"{a}={v:.2f}" for a, v in zip("xyz", rms)) + env_note,
                          flush=True)
    print("\nSummary (time s | peak MB | lateral RMS nm | axial RMS nm):")
    for tool, method, dims, t, mem, rms in rows:
        if t is None:
            print(f"  {tool:9s} {method:4s} {dims}D  failed")
            continue
        lat = float(np.sqrt(np.mean(rms[:2] ** 2)))
        ax = f"{rms[2]:.2f}" if dims == 3 else "-"
        print(f"  {tool:9s} {method:4s} {dims}D  {t:7.1f} | {mem:6.0f} | {lat:6.2f} | {ax}")
    ours = {(m, d): (t, rms) for tool, m, d, t, _, rms in rows if tool == "smlmspine" and t}
    peers = {(m, d): (t, rms) for tool, m, d, t, _, rms in rows if tool == "picasso" and t}
    for dims in (3, 2):
        pa = peers.get(("aim", dims))
        best_peer = min((np.sqrt(np.mean(r[:2] ** 2)) for (m, d), (_, r) in peers.items()
                         if d == dims), default=None)
        for method in ("aim", "rcc"):
            o = ours.get((method, dims))
            if o is None:
                continue
            lat = np.sqrt(np.mean(o[1][:2] ** 2))
            msg = f"  {dims}D smlmspine {method}:"
            if pa:
                msg += f" time / Picasso AIM = {o[0] / pa[0]:.2f};"
            if best_peer:
                msg += f" lateral residual / Picasso best = {lat / best_peer:.2f}"
            print(msg)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
