"""One localization file end to end: drift, blink merging, spines, meshes, features, report.

    python examples/run_one_file.py OUTDIR                     # a small simulated dendrite
    python examples/run_one_file.py OUTDIR --input locs.csv    # your own 3D file
    python examples/run_one_file.py OUTDIR --quick --label volume

Without ``--input`` a small 3D STORM acquisition of a dendrite with ``--n-spines`` spines is
simulated (``smlmspine.simulate.dendrite``, seeded) and written to ``OUTDIR/input.csv``
(ThunderSTORM CSV, nm). The pipeline (:func:`smlmspine.pipeline.run`, what ``smlmspine run``
does) writes ``OUTDIR/run/`` (``spines.parquet``, ``spine_<id>.ply``, ``run.json``, ...) and
:func:`smlmspine.report.write_report` adds ``OUTDIR/run/report.html``. For a simulated input
each spine found is compared with the simulator's truth.

``--quick`` uses alpha-shape envelopes without the neck refit: seconds instead of a minute,
good for a first look (and for the test that keeps this example working).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, help="output folder (created)")
    p.add_argument("--input", type=Path, default=None,
                   help="a 3D localization file (any format smlmspine reads); default: simulate")
    p.add_argument("--label", choices=("membrane", "volume"), default="membrane",
                   help="what was labelled (default membrane)")
    p.add_argument("--n-spines", type=int, default=3, help="simulated spines (default 3)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="alpha envelopes, no neck refit (fast first look)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes for the envelopes (default 1; -1 = all cores)")
    return p.parse_args(argv)


def simulate_input(path: Path, *, label: str, n_spines: int, seed: int):
    """A small simulated dendrite written to ``path``; returns the simulation (its truth)."""
    from smlmspine.io import write
    from smlmspine.simulate import Acquisition, Geometry, Labeling, SimulatedDrift, dendrite

    length = max(4000.0, 1800.0 * n_spines)
    sim = dendrite(geometry=Geometry(n_spines=n_spines, shaft_length_nm=length),
                   labeling=Labeling(label=label), acquisition=Acquisition(n_frames=3000),
                   drift=SimulatedDrift(drift_nm=100.0), rng=seed)
    write(sim.localizations, path)
    return sim


def compare_with_truth(found, truth) -> list[str]:
    """One line per spine found: its nearest true spine (by base point) and both numbers."""
    import numpy as np

    t = truth.to_pydict()
    tb = np.c_[t["base_x_nm"], t["base_y_nm"], t["base_z_nm"]]
    lines = [f"{'spine':>5} {'class':>10} {'true class':>10} {'neck nm':>8} {'true':>6} "
             f"{'head nm':>8} {'true':>6}"]
    for row in found.to_pylist():
        b = np.array([row["base_x_nm"], row["base_y_nm"], row["base_z_nm"]])
        j = int(np.argmin(np.linalg.norm(tb - b, axis=1)))
        lines.append(f"{row['spine_id']:>5} {row['spine_class'] or '-':>10} "
                     f"{t['spine_class'][j]:>10} {row['neck_min_diameter_nm']:>8.0f} "
                     f"{t['neck_min_diameter_nm'][j]:>6.0f} {row['head_diameter_nm']:>8.0f} "
                     f"{t['head_diameter_nm'][j]:>6.0f}")
    return lines


def main(argv=None) -> int:
    from smlmspine.errors import QualityWarning
    from smlmspine.pipeline import run
    from smlmspine.report import write_report

    args = parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    sim = None
    source = args.input
    if source is None:
        source = args.outdir / "input.csv"
        sim = simulate_input(source, label=args.label, n_spines=args.n_spines, seed=args.seed)
        print(f"simulated {sim.localizations.num_rows} localizations of a dendrite with "
              f"{sim.spines.num_rows} spines -> {source}")
    options = {"method": "alpha", "neck_surface": False} if args.quick else {}
    with warnings.catch_warnings(record=True) as caught:
        # data-quality warnings (e.g. a drift segment without structure) are printed, not raised
        warnings.simplefilter("always", QualityWarning)
        res = run(source, args.outdir / "run", label=args.label, workers=args.workers,
                  quiet=True, **options)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    s = res.summary
    print(f"{s['n_spines']} spines: "
          + (", ".join(f"{k} {v}" for k, v in sorted(s["classes"].items())) or "none classified"))
    if sim is not None and res.spines.num_rows:
        print("\n".join(compare_with_truth(res.spines, sim.spines)))
    report = write_report(res.outdir)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
