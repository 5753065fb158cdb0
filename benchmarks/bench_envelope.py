"""Benchmark: 3D alpha shapes vs Open3D, and a simulated dendrite -> all spine meshes.

Usage::

    python benchmarks/bench_envelope.py [--sizes 20000 100000] [--dendrite-locs 1000000]
                                        [--label membrane] [--skip-dendrite]

Part 1: filled ball (r = 1 um, uniform, no noise) and noisy sphere surface (r = 1 um,
sigma = 10 nm; also with ``gap_factor=1.5``, which bridges holes of the sampled shell) of
N points; smlmspine.envelope.alpha_shape (auto alpha) and Open3D's
``create_from_point_cloud_alpha_shape`` at the same alpha: time, watertightness, volume
error vs the analytic volume; and the Delaunay tetrahedralization alone (smlmspine's
numba kernel, scipy/Qhull, Open3D's ``TetraMesh.create_from_point_cloud``, also Qhull).
Part 2: a simulated dendrite with about the requested
number of localizations -> isolate_spines + mesh_spines (every spine and the dendrite),
timed per stage, with detection and assignment scores against the truth.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _sphere(n, r, sigma, rng):
    p = rng.normal(size=(n, 3))
    p = r * p / np.linalg.norm(p, axis=1, keepdims=True)
    return p + rng.normal(0, sigma, p.shape)


def _ball(n, r, rng):
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p * r * rng.random(n)[:, None] ** (1 / 3)


def bench_alpha(sizes):
    from smlmspine.envelope import alpha_shape

    try:
        import open3d as o3d
    except ImportError:  # pragma: no cover
        o3d = None
        print("open3d not installed: peer skipped")
    rng = np.random.default_rng(0)
    alpha_shape(_ball(500, 100.0, rng))  # warm-up: imports (scipy.spatial, trimesh)
    r = 1000.0
    vol = 4 / 3 * np.pi * r ** 3
    print("\n== alpha shapes (time s, watertight, volume error vs truth) ==")
    print(f"{'case':<24}{'N':>8} | {'smlmspine':>10} {'wt':>4} {'vol err':>8} | "
          f"{'open3d':>8} {'wt':>4} {'vol err':>8} | {'ratio':>6}")
    for n in sizes:
        sph = _sphere(n, r, 10.0, rng)
        for name, pts, gap in (("ball", _ball(n, r, rng), 0.0), ("sphere sigma=10nm", sph, 0.0),
                               ("sphere, gap_factor 1.5", sph, 1.5)):
            t0 = time.perf_counter()
            env = alpha_shape(pts, gap_factor=gap)
            t_ours = time.perf_counter() - t0
            err = env.volume_nm3 / vol - 1 if env.is_watertight else float("nan")
            line = (f"{name:<24}{n:>8} | {t_ours:>10.3f} {str(env.is_watertight)[0]:>4} "
                    f"{100 * err:>7.1f}% | ")
            if o3d is not None:
                pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
                t0 = time.perf_counter()
                with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                    m = o3d.geometry.TriangleMesh.create_from_point_cloud_alpha_shape(
                        pcd, env.alpha_nm)
                t_o3d = time.perf_counter() - t0
                wt = m.is_watertight()
                try:
                    e3 = m.get_volume() / vol - 1 if wt else float("nan")
                except RuntimeError:
                    e3 = float("nan")
                line += (f"{t_o3d:>8.3f} {str(wt)[0]:>4} {100 * e3:>7.1f}% | "
                         f"{t_o3d / t_ours:>6.2f}")
            print(line + f"   (alpha {env.alpha_nm:.0f} nm)")
    bench_delaunay(sizes, o3d)


def bench_delaunay(sizes, o3d):
    """Delaunay tetrahedralization alone: wall and CPU seconds (best of 3)."""
    from scipy.spatial import Delaunay

    from smlmspine.envelope._delaunay import delaunay

    rng = np.random.default_rng(1)
    delaunay(_ball(100, 1.0, rng))  # compile / load the kernel
    print(f"\n== Delaunay only (best of 3; load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores) ==")
    print(f"{'case':<24}{'N':>8} | {'kernel':>15} | {'qhull':>15} | {'open3d':>15} | tets")
    for n in sizes:
        for name, pts in (("ball", _ball(n, 1000.0, rng)),
                          ("sphere sigma=10nm", _sphere(n, 1000.0, 10.0, rng))):
            q = pts - pts.mean(0)
            runs = {"kernel": lambda: delaunay(q)[0],
                    "qhull": lambda: Delaunay(q, qhull_options="Qbb Qc Q12").simplices}
            if o3d is not None:
                runs["open3d"] = lambda: np.asarray(o3d.geometry.TetraMesh.create_from_point_cloud(
                    o3d.geometry.PointCloud(o3d.utility.Vector3dVector(q)))[0].tetras)
            cells, n_tets = [], []
            for key in ("kernel", "qhull", "open3d"):
                if key not in runs:
                    cells.append(f"{'-':>15}")
                    continue
                best = (np.inf, np.inf)
                for _ in range(3):
                    w0, c0 = time.perf_counter(), time.process_time()
                    tets = runs[key]()
                    best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
                n_tets.append(len(tets))
                cells.append(f"{best[0]:>6.3f} s ({best[1]:.3f})")
            print(f"{name:<24}{n:>8} | " + " | ".join(cells) + f" | {n_tets}")
    print("(wall s, CPU s in brackets)")


def bench_dendrite(n_locs, label, workers=-1):
    from smlmspine import simulate
    from smlmspine.envelope import isolate_spines, mesh_spines

    length = 20000.0
    n_spines = 30
    # about 1.1e5 localizations per 15 um at the default density (membrane)
    base = 110000 / 15000 * length if label == "membrane" else 117000 / 15000 * length
    factor = max(n_locs / base, 0.05)
    kw = ({"labeling_density_per_um2": 500.0 * factor} if label == "membrane"
          else {"labeling_density_per_um3": 3000.0 * factor})
    t0 = time.perf_counter()
    sim = simulate.dendrite(geometry=simulate.Geometry(n_spines=n_spines, shaft_length_nm=length),
                            rng=5, drift=simulate.SimulatedDrift(drift_nm=0),
                            labeling=simulate.Labeling(label=label, **kw))
    t_sim = time.perf_counter() - t0
    n = sim.localizations.num_rows
    print(f"\n== dendrite ({label}): {n} localizations, {n_spines} spines "
          f"(simulated in {t_sim:.1f} s) ==")
    t0 = time.perf_counter()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machine); workers={workers}")
    iso = isolate_spines(sim.localizations, label=label, workers=workers)
    t_iso = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = mesh_spines(sim.localizations, label=label, isolation=iso, workers=workers)
    t_mesh = time.perf_counter() - t0
    pred = iso.table.column("spine_id").to_numpy()
    truth = sim.truth.column("spine_id").to_numpy()
    sizes = np.bincount(truth[truth >= 0])
    matched, tp = set(), 0
    for k in range(int(pred.max()) + 1 if (pred >= 0).any() else 0):
        t = truth[pred == k]
        t = t[t >= 0]
        if t.size:
            b = int(np.bincount(t).argmax())
            ov = int((t == b).sum())
            if ov > 0.5 * (pred == k).sum() and b not in matched:
                matched.add(b)
                tp += ov
    big = set(np.flatnonzero(sizes >= 200).tolist())
    f1 = 2 * tp / (2 * tp + (pred >= 0).sum() - tp + (truth >= 0).sum() - tp)
    wt = sum(res.spines.column("is_watertight").to_pylist())
    print(f"isolation {t_iso:.1f} s; meshes (spines + dendrite) {t_mesh:.1f} s; "
          f"total {t_iso + t_mesh:.1f} s (load average after: {os.getloadavg()[0]:.2f})")
    print(f"spines found {iso.n_spines}/{len(sizes)}; recall(>=200 locs) "
          f"{len(big & matched) / max(len(big), 1):.3f}; precision "
          f"{len(matched) / max(iso.n_spines, 1):.3f}; assignment F1 {f1:.3f}")
    print(f"watertight spine meshes {wt}/{res.spines.num_rows}; dendrite watertight "
          f"{res.dendrite.is_watertight if res.dendrite else None}")
    # volume vs the true spine meshes (matched by nearest base point)
    tb = np.c_[[sim.spines.column(f"base_{c}_nm").to_numpy() for c in "xyz"]].T
    ratios = []
    sp = res.spines.to_pydict()
    for i in range(res.spines.num_rows):
        b = np.array([sp["base_x_nm"][i], sp["base_y_nm"][i], sp["base_z_nm"][i]])
        j = int(np.argmin(np.linalg.norm(tb - b, axis=1)))
        tv = sim.spine_meshes[j].volume * 1e-9
        if np.isfinite(sp["volume_um3"][i]):
            ratios.append(sp["volume_um3"][i] / tv)
    if ratios:
        q = np.percentile(ratios, [10, 50, 90])
        print(f"spine volume / true volume: median {q[1]:.3f} (10-90 %: {q[0]:.3f}-{q[2]:.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--dendrite-locs", type=float, default=1e6)
    ap.add_argument("--label", choices=("membrane", "volume"), default="membrane")
    ap.add_argument("--skip-dendrite", action="store_true")
    ap.add_argument("--workers", type=int, default=-1,
                    help="processes/threads for isolation and spine meshes (-1: all cores)")
    args = ap.parse_args()
    bench_alpha(args.sizes)
    if not args.skip_dendrite:
        bench_dendrite(int(args.dendrite_locs), args.label, args.workers)


if __name__ == "__main__":
    main()
