"""Timings of the coupling statistics, against astropy / pointpats where they run.

Run: ``.venv/bin/python benchmarks/bench_coupling.py [--quick]``.

Prints: SODA (analytic null) on 10^4 + 10^4 and 10^5 + 10^5 centroids (2D, plus 10^4 in
3D); cross Ripley K of 10^6 + 10^6 localizations, 16 radii, isotropic correction; and a
univariate Ripley K comparison on the same input with astropy's ``RipleysKEstimator``
(mode "ripley") and pointpats' ``k`` when they import from the peer environment
``/work/peers-coupling`` (skipped with a note otherwise). Targets (issue 9, 2 cores):
SODA 10^4 <= 5 s, 10^5 <= 60 s, cross K 10^6 <= 60 s.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
import warnings

import numpy as np


def _peer_path():
    for p in glob.glob("/work/peers-coupling/lib/python3*/site-packages"):
        if p not in sys.path:
            sys.path.append(p)


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def bench_soda(n, ndim, rng):
    from smlmspine.coupling import BoxRegion, soda
    from smlmspine.simulate.synapses import SynapsePopulations, synapses

    side = np.sqrt(n / 1e-6) if ndim == 2 else (n / 2e-9) ** (1 / 3)  # 1 object/um^2, 2/um^3
    sim = synapses(populations=SynapsePopulations(n_pre=n, n_post=n, coupled_fraction=0.3,
                                                  distance_mean_nm=100, distance_sd_nm=30),
                   region=BoxRegion(np.zeros(ndim), np.full(ndim, side)),
                   rng=rng)
    box = BoxRegion(np.zeros(ndim), np.full(ndim, side))
    res, t = timed(soda, sim.pre_objects, sim.post_objects, region=box, r_max_nm=500, ring_nm=20)
    print(f"SODA {ndim}D {n}+{n} objects, r_max 500 nm, 25 rings: {t:7.2f} s  "
          f"(index post {res.coupling_index_post:.3f}, truth 0.300; distance "
          f"{res.mean_coupling_distance_weighted_nm:.1f} nm, truth {sim.mean_coupling_distance_nm:.1f})")
    return t


def bench_cross_k(n, rng):
    from smlmspine.coupling import BoxRegion, cross_k

    side = 50000.0
    box = BoxRegion([0, 0], [side, side])
    a, b = box.sample(n, rng), box.sample(n, rng)
    radii = np.linspace(10, 160, 16)
    cross_k(a[:1000], b[:1000], radii_nm=radii, region=box)  # compile
    res, t = timed(cross_k, a, b, radii_nm=radii, region=box, correction="isotropic")
    err = np.max(np.abs(res.k_nm_d / (np.pi * radii ** 2) - 1))
    print(f"cross K 2D {n}+{n} localizations, 16 radii, isotropic: {t:7.2f} s  "
          f"(max |K/pi r^2 - 1| = {err:.4f} under CSR)")
    return t


def bench_univariate(n, rng):
    from smlmspine.coupling import BoxRegion, cross_k

    side = 10000.0
    box = BoxRegion([0, 0], [side, side])
    p = box.sample(n, rng)
    radii = np.linspace(50, 800, 16)
    res, t_ours = timed(cross_k, p, p, radii_nm=radii, region=box, correction="isotropic")
    # remove the n self-pairs at distance 0 (weight 1) and renormalise to n (n - 1)
    k_ours = (res.k_nm_d * n * n / box.measure - n) * box.measure / (n * (n - 1))
    print(f"univariate K, {n} points, 16 radii, isotropic: smlmspine {t_ours:.3f} s")
    _peer_path()
    try:
        from astropy.stats import RipleysKEstimator
    except ImportError as exc:
        print(f"  astropy: not available ({exc}); skipped")
    else:
        est = RipleysKEstimator(area=side * side, x_min=0, x_max=side, y_min=0, y_max=side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k_ast, t_ast = timed(est, data=p, radii=radii, mode="ripley")
        rel = np.max(np.abs(k_ast / k_ours - 1))
        print(f"  astropy RipleysKEstimator(mode='ripley'): {t_ast:.3f} s, ratio astropy/smlmspine "
              f"= {t_ast / t_ours:.1f}x; max relative difference of K {rel:.2e}")
    try:
        import pointpats
        from pointpats import distance_statistics as ds
    except ImportError as exc:
        print(f"  pointpats: not available ({exc}); skipped")
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                (sup, k_pp), t_pp = timed(ds.k, p, support=radii)
            rel = np.max(np.abs(np.asarray(k_pp) / k_ours - 1))
            print(f"  pointpats {pointpats.__version__} k (no edge correction): {t_pp:.3f} s, ratio "
                  f"pointpats/smlmspine = {t_pp / t_ours:.1f}x; max relative difference of K vs our "
                  f"isotropic {rel:.2e} (expected: pointpats has no edge correction)")
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"  pointpats: failed on this input ({type(exc).__name__}: {exc}); skipped")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("warm-up runs (include numba compilation when the cache is cold):")
    bench_soda(2000, 2, rng)
    bench_soda(2000, 3, rng)
    print("timed runs:")
    t1 = bench_soda(10_000, 2, rng)
    t3 = bench_soda(10_000, 3, rng)
    if not args.quick:
        t2 = bench_soda(100_000, 2, rng)
        tk = bench_cross_k(1_000_000, rng)
    else:
        t2 = tk = float("nan")
        bench_cross_k(100_000, rng)
    bench_univariate(5000, rng)
    print(f"targets: SODA 1e4 {t1:.1f} s (<= 5), 3D 1e4 {t3:.1f} s, SODA 1e5 {t2:.1f} s (<= 60), "
          f"cross K 1e6 {tk:.1f} s (<= 60)")


if __name__ == "__main__":
    main()
