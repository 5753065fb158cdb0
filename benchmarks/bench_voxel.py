"""Benchmark: rendering localizations to images (smlmspine.voxel.render) against Picasso.

2D renders of N localizations spread over 20 x 20 µm (precision 5-15 nm) at 10 nm pixels
(a 2000 x 2000 image), in one process, interleaved, best of ``--repeats`` after a warm-up
(numba compilation and caches excluded on both sides):

* ``histogram``: smlmspine ``render(method="histogram")`` vs Picasso
  ``picasso.render.render(..., blur_method=None)``;
* ``gaussian``: smlmspine ``render(method="gaussian")`` (each localization's precision,
  integrated over the pixels) vs Picasso ``render(..., blur_method="gaussian")`` (its
  individual-precision blur, sampled at pixel centres).

Picasso gets camera-pixel coordinates (100 nm camera pixels, ``disp_px_size=10``), the
same field and pixel size. Wall and CPU (process) time are printed with the ratio
Picasso / smlmspine (> 1: smlmspine faster) and each image's sum (smlmspine's equals N).

``--large``: the 3D render of the issue, 10^7 localizations over 20 x 20 x 2 µm at 10 nm
voxels (2000 x 2000 x 200 = 8e8 voxels, 3.2 GB as float32) rendered block by block into
an OME-Zarr store (``render(..., out=...)``) in a fresh subprocess, with its wall time and
peak resident memory (``VmHWM``; Linux). Picasso has no chunked 3D render to compare.

Usage::

    python benchmarks/bench_voxel.py                        # 10^6 and 10^7
    python benchmarks/bench_voxel.py --sizes 1000000 --repeats 5
    python benchmarks/bench_voxel.py --large                # + the 8e8-voxel 3D render
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELD_NM = 20000.0
PIXEL_NM = 10.0
CAMERA_NM = 100.0


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, FIELD_NM, n)
    y = rng.uniform(0, FIELD_NM, n)
    p = rng.uniform(5.0, 15.0, n)
    return x, y, p


def ours(x, y, p):
    from smlmspine.schema import make_table
    from smlmspine.voxel import render

    t = make_table({"x": x, "y": y, "precision_xy": p})
    roi = (0.0, 0.0, FIELD_NM, FIELD_NM)
    return {"histogram": lambda: render(t, voxel_nm=PIXEL_NM, roi_nm=roi).data,
            "gaussian": lambda: render(t, voxel_nm=PIXEL_NM, roi_nm=roi,
                                       method="gaussian").data}


def picasso(x, y, p):
    try:
        import pandas as pd
        import picasso.render as pr
    except Exception as exc:  # noqa: BLE001 - any import failure: no peer, said so
        return None, f"{type(exc).__name__}: {exc}"
    locs = pd.DataFrame({"x": x / CAMERA_NM, "y": y / CAMERA_NM, "lpx": p / CAMERA_NM,
                         "lpy": p / CAMERA_NM})
    side = int(FIELD_NM / CAMERA_NM)
    info = [{"Width": side, "Height": side, "Pixelsize": CAMERA_NM}]
    return {"histogram": lambda: pr.render(locs, info, disp_px_size=PIXEL_NM)[1],
            "gaussian": lambda: pr.render(locs, info, disp_px_size=PIXEL_NM,
                                          blur_method="gaussian")[1]}, None


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def run_2d(sizes, repeats):
    x, y, p = data(1000, seed=1)                   # warm-up: compile both sides
    for f in ours(x, y, p).values():
        f()
    peer, why = picasso(x, y, p)
    if peer is not None:
        for f in peer.values():
            f()
    else:
        print(f"Picasso not available ({why}); smlmspine alone")
    rows = []
    for n in sizes:
        x, y, p = data(n)
        sides = {"smlmspine": ours(x, y, p)}
        if peer is not None:
            sides["picasso"] = picasso(x, y, p)[0]
        for method in ("histogram", "gaussian"):
            best = {}
            for _ in range(repeats):
                for name, fns in sides.items():
                    w, c, img = timed(fns[method])
                    b = best.setdefault(name, [np.inf, np.inf, 0.0])
                    b[0], b[1] = min(b[0], w), min(b[1], c)
                    b[2] = float(np.asarray(img, dtype=np.float64).sum())
                    del img
            row = {"n": n, "method": method, **{f"{k}_wall_s": v[0] for k, v in best.items()},
                   **{f"{k}_cpu_s": v[1] for k, v in best.items()},
                   **{f"{k}_sum": v[2] for k, v in best.items()}}
            rows.append(row)
            line = (f"N={n:>9,d} {method:9s} smlmspine wall {best['smlmspine'][0]:7.3f} s "
                    f"cpu {best['smlmspine'][1]:7.3f} s sum {best['smlmspine'][2]:.0f}")
            if "picasso" in best:
                line += (f" | Picasso wall {best['picasso'][0]:7.3f} s cpu "
                         f"{best['picasso'][1]:7.3f} s sum {best['picasso'][2]:.0f}"
                         f" | ratio (Picasso/ours) wall "
                         f"{best['picasso'][0] / best['smlmspine'][0]:.2f} cpu "
                         f"{best['picasso'][1] / best['smlmspine'][1]:.2f}")
            print(line, flush=True)
    return rows


def normalisation(n=100000):
    """Image sums at sigma below a pixel (2 and 5 nm at 10 nm pixels), field padded so no
    Gaussian is cut: smlmspine's integrated kernel keeps every localization's weight;
    centre sampling (Picasso) does not."""
    rng = np.random.default_rng(2)
    x = rng.uniform(2000, 18000, n)
    y = rng.uniform(2000, 18000, n)
    rows = []
    for s in (2.0, 5.0, 10.0):
        p = np.full(n, s)
        ours_sum = float(ours(x, y, p)["gaussian"]().sum(dtype=np.float64))
        peer, _ = picasso(x, y, p)
        peer_sum = float(peer["gaussian"]().sum(dtype=np.float64)) if peer else float("nan")
        # one localization at a time (200 random sub-pixel positions): the spread of what
        # a single localization adds to the image
        one = [], []
        for k in range(200):
            xi, yi, pi = x[k:k + 1] - 1500, y[k:k + 1] - 1500, p[:1]
            one[0].append(float(ours(xi % 400 + 100, yi % 400 + 100, pi)["gaussian"]().sum()))
            if peer:
                one[1].append(float(picasso(xi % 400 + 100, yi % 400 + 100, pi)[0]["gaussian"]()
                                    .sum()))
        rng_o = (min(one[0]), max(one[0]))
        rng_p = (min(one[1]), max(one[1])) if one[1] else (float("nan"),) * 2
        rows.append({"sigma_nm": s, "n": n, "smlmspine_sum": ours_sum, "picasso_sum": peer_sum,
                     "smlmspine_single_range": rng_o, "picasso_single_range": rng_p})
        print(f"sigma {s:4.1f} nm (10 nm pixels), N={n}: image sum smlmspine {ours_sum:.1f} "
              f"({ours_sum / n:.6f} N), Picasso {peer_sum:.1f} ({peer_sum / n:.4f} N); one "
              f"localization adds {rng_o[0]:.4f}-{rng_o[1]:.4f} (smlmspine), "
              f"{rng_p[0]:.4f}-{rng_p[1]:.4f} (Picasso)", flush=True)
    return rows


_LARGE = r"""
import json, sys, time, tempfile, shutil
sys.path.insert(0, {root!r})
import numpy as np
def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))
from smlmspine.schema import make_table
from smlmspine.voxel import render
rng = np.random.default_rng(0)
n = {n}
t = make_table({{"x": rng.uniform(0, 20000, n), "y": rng.uniform(0, 20000, n),
                "z": rng.uniform(0, 2000, n), "precision_xy": rng.uniform(5, 15, n),
                "precision_z": rng.uniform(10, 30, n)}})
render(t[:1000], voxel_nm=10.0, dims=3, method={method!r}, roi_nm=(0, 0, 200, 200, 0, 200),
       out=tempfile.mkdtemp() + "/warm.ome.zarr")
table_mb = status("VmRSS:") / 1024
d = tempfile.mkdtemp(dir={tmp!r})
t0 = time.perf_counter(); c0 = time.process_time()
img = render(t, voxel_nm=10.0, dims=3, method={method!r},
             roi_nm=(0, 0, 20000, 20000, 0, 2000), out=d + "/big.ome.zarr")
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = status("VmHWM:") / 1024          # before the check below reads the store back
total = float(sum(img.data[z].sum(dtype=np.float64) for z in range(img.data.shape[0])))
import os
disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
shutil.rmtree(d)
print(json.dumps({{"shape": list(img.data.shape), "wall_s": wall, "cpu_s": cpu,
                  "peak_rss_mb": peak, "rss_before_mb": table_mb,
                  "sum": total, "disk_gb": disk / 1e9}}))
"""


def run_large(n, method, tmp):
    code = _LARGE.format(root=str(ROOT), n=n, method=method, tmp=tmp)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SMLMSPINE_MEMORY_BUDGET_GB": "2", "PATH": "/usr/bin:/bin"})
    if out.returncode:
        print(out.stderr[-2000:])
        raise SystemExit(1)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"3D {method} N={n:,d} into OME-Zarr: shape {r['shape']} "
          f"({np.prod(r['shape']):.2e} voxels) wall {r['wall_s']:.1f} s cpu "
          f"{r['cpu_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB (of which "
          f"{r['rss_before_mb']:.0f} MB table + interpreter before the render), sum "
          f"{r['sum']:.0f}, {r['disk_gb']:.2f} GB on disk", flush=True)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10 ** 6, 10 ** 7])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large", action="store_true", help="also the 8e8-voxel 3D render")
    ap.add_argument("--large-only", action="store_true")
    ap.add_argument("--large-n", type=int, default=10 ** 7)
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    result = {}
    if not args.large_only:
        result["2d"] = run_2d(args.sizes, args.repeats)
        result["normalisation"] = normalisation()
    if args.large or args.large_only:
        with tempfile.TemporaryDirectory() as tmp:
            result["3d"] = [run_large(args.large_n, m, tmp) for m in ("histogram", "gaussian")]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
