"""Benchmark: the mesh-check and repair kernels of the envelope, before and after (issue 19).

Usage::

    python benchmarks/bench_meshcheck.py [--sizes 40,60,90] [--repeat 5] [--before REV]
                                         [--meshes DIR] [--json FILE]

Times, on the same meshes and in the same run, each kernel as it was at git revision
``--before`` (default 627e903, before the speed work of issue 19; its
``envelope/_selfintersect.py`` is loaded from git into a temporary module) and as it is
now:

1. ``self_intersections`` (exact test; the result cache is cleared before every "after"
   call, so the kernel itself is timed), and that both give the same answer;
2. ``largest_body`` against trimesh's ``split`` + volume/area pick (the previous code);
3. the surface voxels of ``voxel_remesh`` against trimesh's ``voxelized(pitch)``
   (pitch 1/80 of the extent, as ``repair_mesh``), and that the grids are equal;
4. a repeated ``check_mesh`` on the same mesh (the cached case).

Meshes: marching-cubes surfaces of noisy blobs (fixed seeds, ``--sizes`` grid sizes, 5 nm
voxels, coordinates rounded to float32 as written meshes), a second small blob beside
each for ``largest_body``, plus every ``*.npz`` (arrays ``v``, ``f``) in ``--meshes``.
Prints the best of ``--repeat`` runs per kernel and the load average: the machine is
shared, compare the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _blob(n: int, seed: int, pitch: float = 5.0):
    from scipy import ndimage
    from skimage.measure import marching_cubes

    rng = np.random.default_rng(seed)
    g = np.indices((n, n, n)).astype(float) - n / 2
    noise = ndimage.gaussian_filter(rng.normal(size=(n, n, n)), 4) * 60
    vals = np.sqrt((g ** 2).sum(0)) - n / 3 + noise
    vals[0], vals[-1], vals[:, 0], vals[:, -1], vals[:, :, 0], vals[:, :, -1] = (1.0,) * 6
    v, f, _, _ = marching_cubes(vals, 0.0, spacing=(pitch,) * 3, allow_degenerate=False)
    v = v.astype(float) + rng.uniform(-1e-3, 1e-3, v.shape) * pitch
    return v.astype(np.float32).astype(np.float64), f.astype(np.int64)


def _old_selfintersect(rev: str, tmp: Path):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:smlmspine/envelope/_selfintersect.py"],
                         check=True, capture_output=True, text=True).stdout
    path = tmp / "_selfintersect_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("_selfintersect_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_selfintersect_before"] = mod
    spec.loader.exec_module(mod)
    return mod


def _old_largest_body(mesh):
    bodies = mesh.split(only_watertight=False)
    if len(bodies) <= 1:
        return mesh
    sizes = [abs(b.volume) if b.is_watertight else b.area for b in bodies]
    return bodies[int(np.argmax(sizes))]


def _best(fn, repeat: int) -> float:
    fn()  # compile / warm
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="40,60,90")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", default="627e903")
    ap.add_argument("--meshes", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import trimesh

    from smlmspine.envelope import _repair, _selfintersect

    meshes = [(f"blob{n}", *_blob(int(n), 0)) for n in args.sizes.split(",")]
    if args.meshes:
        for p in sorted(Path(args.meshes).glob("*.npz")):
            d = np.load(p)
            meshes.append((p.stem, np.asarray(d["v"], float), np.asarray(d["f"], np.int64)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = _old_selfintersect(args.before, Path(tmp))
        for name, v, f in meshes:
            a = old.self_intersections(v, f)
            _selfintersect._CACHE.clear()
            b = _selfintersect.self_intersections(v, f)
            same = all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2])) and a[2] == b[2]
            t_old = _best(lambda: old.self_intersections(v, f), args.repeat)

            def new():
                _selfintersect._CACHE.clear()
                _selfintersect.self_intersections(v, f)

            t_new = _best(new, args.repeat)
            rows.append({"kernel": "self_intersections", "mesh": name, "faces": len(f),
                         "before_s": t_old, "after_s": t_new, "same": bool(same)})
            _repair._CHECKS.clear()
            _selfintersect._CACHE.clear()
            t0 = time.perf_counter()
            _repair.check_mesh(v, f)
            t1 = time.perf_counter()
            _repair.check_mesh(v, f)
            t2 = time.perf_counter()
            rows.append({"kernel": "check_mesh (repeat)", "mesh": name, "faces": len(f),
                         "before_s": t1 - t0, "after_s": t2 - t1, "same": True})
            m = trimesh.Trimesh(v, f, process=False)
            ext = float(np.ptp(v, axis=0).max())
            pitch = ext / 80.0

            def old_vox():
                vg = m.voxelized(pitch)
                return np.asarray(vg.matrix, bool), np.asarray(vg.translation, float)

            def new_vox():
                return _repair._surface_voxels(m, pitch)

            (ga, ca), (gb, cb) = old_vox(), new_vox()
            same = ga.shape == gb.shape and np.array_equal(ga, gb) and np.array_equal(ca, cb)
            rows.append({"kernel": "surface voxels (pitch extent/80)", "mesh": name,
                         "faces": len(f), "before_s": _best(old_vox, min(args.repeat, 3)),
                         "after_s": _best(new_vox, min(args.repeat, 3)), "same": bool(same)})
            small = trimesh.creation.icosphere(2, radius=0.1 * ext)
            small.apply_translation(v.max(0) + 0.2 * ext)
            two = trimesh.util.concatenate([m, small])
            a, b = _old_largest_body(two.copy()), _repair.largest_body(two.copy())
            same = (np.array_equal(np.asarray(a.vertices), np.asarray(b.vertices))
                    and np.array_equal(np.asarray(a.faces), np.asarray(b.faces)))
            rows.append({"kernel": "largest_body", "mesh": name, "faces": len(two.faces),
                         "before_s": _best(lambda: _old_largest_body(two.copy()), args.repeat),
                         "after_s": _best(lambda: _repair.largest_body(two.copy()), args.repeat),
                         "same": bool(same)})
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(f"{'kernel':34s} {'mesh':28s} {'faces':>7s} {'before':>9s} {'after':>9s} {'x':>6s} same")
    for r in rows:
        print(f"{r['kernel']:34s} {r['mesh'][:28]:28s} {r['faces']:7d} {1e3 * r['before_s']:7.1f}ms "
              f"{1e3 * r['after_s']:7.1f}ms {r['before_s'] / max(r['after_s'], 1e-9):6.1f} {r['same']}")
    print("load average:", " ".join(load))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "loadavg": load}, indent=1))
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
