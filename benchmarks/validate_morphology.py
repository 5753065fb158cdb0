"""Validate spine morphology end to end against the simulator's ground truth.

Simulates membrane-labelled 3D STORM dendrites (sigma_xy ~12 nm, sigma_z ~30-35 nm,
MemBright-like density) with spines of every class, runs the default pipeline
(`smlmspine.pipeline.run`: drift, merge, isolation, shell envelopes, morphology), matches
detected spines to true ones by their base points, and prints:

- neck minimum diameter error |measured - true| / true (median, 90th percentile) for the
  mesh-based `neck_min_diameter_nm`, for the point-based `neck_fit_diameter_nm`, and for the
  naive alpha shape (the raw alpha hull of the same spine points, no bias correction);
- head diameter error (median);
- rule-based class agreement with the simulated classes;
- the same with MINFLUX-like precision (sigma ~3 nm) unless --no-minflux.

Usage: python benchmarks/validate_morphology.py [--spines 100] [--seed 1] [--no-minflux]
       [--only-minflux] [--branched]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np


def _match(found, truth, max_nm=400.0):
    fb = np.c_[found["base_x_nm"], found["base_y_nm"], found["base_z_nm"]]
    tb = np.c_[truth["base_x_nm"], truth["base_y_nm"], truth["base_z_nm"]]
    pairs, used = [], set()
    if len(fb) == 0:
        return pairs
    d = np.linalg.norm(fb[:, None, :] - tb[None, :, :], axis=2)
    for i, j in sorted(np.ndindex(d.shape), key=lambda ij: d[ij]):
        if d[i, j] > max_nm:
            break
        if i in {p[0] for p in pairs} or j in used:
            continue
        pairs.append((i, j))
        used.add(j)
    return pairs


def _naive_alpha_neck(points, base, axis, step_nm):
    """Neck minimum of the raw alpha hull of a spine's localizations (no bias correction)."""
    from smlmspine.envelope import reconstruct
    from smlmspine.errors import ParameterError
    from smlmspine.morphology import measure_spine

    try:
        env = reconstruct(points, label="membrane", method="alpha", correct_bias=False, smooth=0)
        if not env.is_watertight:
            return np.nan
        return measure_spine(env.mesh, base_point_nm=base, step_nm=step_nm).neck_min_diameter_nm
    except ParameterError:
        return np.nan


def run_case(name, *, n_spines, seed, precision_xy_nm, axial_factor, density, naive=True,
             classes=None):
    from smlmspine.pipeline import run
    from smlmspine.schema import coordinates
    from smlmspine.simulate import dendrite

    per = 20
    rows = []
    n_true = n_found = 0
    t0 = time.perf_counter()
    k = 0
    while n_true < n_spines:
        sim = dendrite(n_spines=per, shaft_length_nm=per / 1.2 * 1000.0, label="membrane",
                       labeling_density_per_um2=density, precision_xy_nm=precision_xy_nm,
                       axial_factor=axial_factor, rng=seed + k,
                       **({"classes": classes} if classes else {}))
        k += 1
        with tempfile.TemporaryDirectory() as tmp:
            res = run(sim.localizations, tmp, quiet=True)
        found = res.spines.to_pydict()
        truth = sim.spines.to_pydict()
        n_true += len(truth["spine_id"])
        n_found += len(found["spine_id"])
        pts = coordinates(res.localizations, dims=3)
        sid = res.localizations.column("spine_id").to_numpy()
        for i, j in _match(found, truth):
            row = {"class_true": truth["spine_class"][j], "class_found": found["spine_class"][i],
                   "neck_true": truth["neck_min_diameter_nm"][j],
                   "neck_mesh": found["neck_min_diameter_nm"][i],
                   "neck_fit": found["neck_fit_diameter_nm"][i],
                   "head_true": truth["head_diameter_nm"][j],
                   "head_mesh": found["head_diameter_nm"][i]}
            if naive:
                base = [found["base_x_nm"][i], found["base_y_nm"][i], found["base_z_nm"][i]]
                axis = [found["axis_x"][i], found["axis_y"][i], found["axis_z"][i]]
                row["neck_naive"] = _naive_alpha_neck(pts[sid == found["spine_id"][i]], base, axis, 10.0)
            rows.append(row)
    secs = time.perf_counter() - t0
    _report(name, rows, n_true, n_found, secs)
    return rows


def _err(rows, key, ref="neck_true", classes=None):
    e = np.array([abs(r[key] - r[ref]) / r[ref] for r in rows
                  if (classes is None or r["class_true"] in classes)
                  and np.isfinite(r.get(key, np.nan)) and r[ref] > 0])
    return e


def _report(name, rows, n_true, n_found, secs):
    print(f"\n== {name}: {n_true} true spines, {n_found} detected, {len(rows)} matched "
          f"({secs:.0f} s)")
    necked = ("thin", "mushroom", "branched")
    for key, label in (("neck_mesh", "mesh neck minimum (default pipeline)"),
                       ("neck_fit", "point-based neck fit"),
                       ("neck_naive", "naive alpha shape")):
        for cls, tag in ((None, "all classes"), (necked, "spines with a neck")):
            e = _err(rows, key, classes=cls)
            if e.size:
                print(f"  {label:<38} {tag:<19} n={e.size:3d}  median |err| {100 * np.median(e):5.1f} %"
                      f"  90th pct {100 * np.percentile(e, 90):5.1f} %")
    e = _err(rows, "head_mesh", ref="head_true", classes=("thin", "mushroom", "stubby", "branched"))
    if e.size:
        print(f"  head diameter (spines with a head)          n={e.size:3d}  median |err| "
              f"{100 * np.median(e):5.1f} %  90th pct {100 * np.percentile(e, 90):5.1f} %")
    agree = np.mean([r["class_true"] == r["class_found"] for r in rows]) if rows else float("nan")
    print(f"  rule-based class agreement with truth: {100 * agree:.1f} %")
    per = []
    for cls in sorted({r["class_true"] for r in rows}):
        sel = [r["class_true"] == r["class_found"] for r in rows if r["class_true"] == cls]
        per.append(f"{cls} {sum(sel)}/{len(sel)}")
    print("  per class: " + ", ".join(per))
    confusion = {}
    for r in rows:
        confusion[(r["class_true"], r["class_found"])] = confusion.get((r["class_true"], r["class_found"]), 0) + 1
    print("  confusion (true -> found): " + ", ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(confusion.items())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spines", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-minflux", action="store_true")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--only-minflux", action="store_true")
    ap.add_argument("--branched", action="store_true",
                    help="also simulate branched spines (not among the simulator's default classes)")
    args = ap.parse_args(argv)
    classes = ("thin", "mushroom", "stubby", "filopodium", "branched") if args.branched else None
    if not args.only_minflux:
        run_case("3D STORM, membrane label, sigma_xy 12 nm, sigma_z 33 nm", n_spines=args.spines,
                 seed=args.seed, precision_xy_nm=12.0, axial_factor=2.75, density=500.0,
                 naive=not args.no_naive, classes=classes)
    if not args.no_minflux:
        run_case("MINFLUX-like, membrane label, sigma 3 nm", n_spines=args.spines, seed=args.seed + 100,
                 precision_xy_nm=3.0, axial_factor=1.0, density=500.0, naive=not args.no_naive,
                 classes=classes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
