"""Benchmark: spine meshes to a label volume (smlmspine.voxel.mesh_to_labels), and spine grids.

The truth meshes of a simulated dendrite (``--spines`` spines, default 20, on a shaft of
0.84 um per spine; seed 11) are labelled at ``--voxel-nm`` (default 10 nm):

* ``mesh_to_labels``: the spines alone, and the spines with the whole dendrite mesh;
  wall and CPU (process) time, best of ``--repeats``; the label volume's size;
* accuracy of each spine's labelled volume (voxels x voxel volume) against the mesh's
  enclosed volume, for ``mesh_to_labels`` (inside test exact at voxel centres) and two
  peers in the same run: trimesh's surface voxelization filled
  (``mesh.voxelized(pitch).fill()``: every voxel the surface touches is inside) and
  Open3D's ``RaycastingScene.compute_occupancy`` at the same voxel centres;
* ``spine_grids`` of the same spines (64^3, mask + sdf, 2048 points): wall time.

Usage::

    python benchmarks/bench_voxel_labels.py
    python benchmarks/bench_voxel_labels.py --spines 20 --voxel-nm 10 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def simulated_meshes(n_spines: int = 20, seed: int = 11):
    """Truth spine meshes and the dendrite mesh of a simulated fragment."""
    from smlmspine.simulate import Acquisition, Geometry, dendrite

    sim = dendrite(geometry=Geometry(n_spines=n_spines, shaft_length_nm=840.0 * n_spines),
                   acquisition=Acquisition(n_frames=100, background_rate_per_frame=0.0),
                   rng=seed)
    return dict(sim.spine_meshes), sim.mesh


def timed(fn, repeats: int):
    """Best wall and CPU time of ``repeats`` calls, and the last result."""
    best_wall = best_cpu = float("inf")
    out = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def bench_mesh_to_labels(spines: dict, dendrite=None, *, voxel_nm: float = 10.0,
                         repeats: int = 1) -> dict:
    """Time mesh_to_labels of ``spines`` (and ``dendrite``) at ``voxel_nm``."""
    from smlmspine.voxel import mesh_to_labels

    meshes = dict(spines)
    if dendrite is not None:
        meshes["dendrite"] = dendrite
    wall, cpu, img = timed(lambda: mesh_to_labels(meshes, voxel_nm=voxel_nm), repeats)
    return {"wall_s": wall, "cpu_s": cpu, "shape": img.data.shape,
            "voxels": int(np.prod(img.data.shape)), "image": img,
            "faces": int(sum(len(m.faces) for m in meshes.values()))}


def volume_errors(spines: dict, img, voxel_nm: float) -> dict:
    """Relative volume error per spine of ours and the two peers (median, max |err|)."""
    from smlmspine._raycast import ray_scene

    v3 = voxel_nm ** 3
    ours, filled, o3d = [], [], []
    zz, yy, xx = (img.origin_nm[k] + np.arange(img.data.shape[k]) * img.voxel_nm[k]
                  for k in range(3))
    for k, m in spines.items():
        true = m.volume
        ours.append(np.count_nonzero(img.data == k + 1) * v3 / true - 1)
        filled.append(m.voxelized(pitch=voxel_nm).fill().filled_count * v3 / true - 1)
        # Open3D's occupancy at the voxel centres of the spine's bounding box
        lo, hi = m.bounds
        sel = [np.flatnonzero((c >= lo[i] - voxel_nm) & (c <= hi[i] + voxel_nm))
               for c, i in ((xx, 0), (yy, 1), (zz, 2))]
        gx, gy, gz = np.meshgrid(xx[sel[0]], yy[sel[1]], zz[sel[2]], indexing="ij")
        pts = np.c_[gx.ravel(), gy.ravel(), gz.ravel()].astype(np.float32)
        occ = ray_scene(m.vertices, m.faces).compute_occupancy(pts).numpy()
        o3d.append(float(occ.sum()) * v3 / true - 1)

    def summary(e):
        e = np.abs(np.asarray(e))
        return {"median_abs_rel_err": float(np.median(e)), "max_abs_rel_err": float(e.max())}

    return {"mesh_to_labels": summary(ours), "trimesh voxelized().fill()": summary(filled),
            "open3d compute_occupancy": summary(o3d)}


def bench_spine_grids(spines: dict, *, size: int = 64, repeats: int = 1) -> dict:
    """Time spine_grids (mask + sdf, 2048 points) of ``spines``."""
    from smlmspine.voxel import spine_grids

    wall, cpu, g = timed(lambda: spine_grids(spines, size=size, channels=("mask", "sdf")),
                         repeats)
    return {"wall_s": wall, "cpu_s": cpu, "n": len(g.spine_ids)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spines", type=int, default=20)
    ap.add_argument("--voxel-nm", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    spines, dend = simulated_meshes(args.spines)
    print(f"simulated {len(spines)} spines ({time.perf_counter() - t0:.1f} s)")
    r = bench_mesh_to_labels(spines, voxel_nm=args.voxel_nm, repeats=args.repeats)
    print(f"mesh_to_labels, {len(spines)} spines ({r['faces']} faces) at {args.voxel_nm:g} nm: "
          f"{r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU; volume {r['shape']} "
          f"({r['voxels']:.3g} voxels)")
    errs = volume_errors(spines, r["image"], args.voxel_nm)
    for name, e in errs.items():
        print(f"  volume error per spine, {name}: median {100 * e['median_abs_rel_err']:.2f} %,"
              f" max {100 * e['max_abs_rel_err']:.2f} %")
    r = bench_mesh_to_labels(spines, dend, voxel_nm=args.voxel_nm, repeats=args.repeats)
    print(f"mesh_to_labels, {len(spines)} spines + dendrite ({r['faces']} faces) at "
          f"{args.voxel_nm:g} nm: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU; volume "
          f"{r['shape']} ({r['voxels']:.3g} voxels)")
    g = bench_spine_grids(spines, repeats=args.repeats)
    print(f"spine_grids, {g['n']} spines, 64^3 mask + sdf: {g['wall_s']:.2f} s wall, "
          f"{g['cpu_s']:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
