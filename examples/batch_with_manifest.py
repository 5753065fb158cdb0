"""A small study: several files listed in a manifest with their conditions, one batch on Dask.

    python examples/batch_with_manifest.py OUTDIR
    python examples/batch_with_manifest.py OUTDIR --cells 3 --workers 2 --bad-file

Simulates ``--cells`` dendrites per condition (``smlmspine.simulate.dendrite``, seeded):
``control`` dendrites carry mostly thin spines, ``potentiated`` ones mostly mushroom
spines (larger heads). Each acquisition goes to ``OUTDIR/data/<condition>_<cell>.csv``,
listed in ``OUTDIR/manifest.csv`` with its ``condition``, ``animal`` and ``cell``
columns; ``OUTDIR/run.toml`` holds the parameters (``smlmspine run --print-config``
prints every one). Then :func:`smlmspine.batch` runs the pipeline on every file on a
local Dask cluster (``--workers`` processes) into ``OUTDIR/batch/``: one run folder per
file, the tidy ``spines.parquet`` with the manifest's columns on every row,
``localizations_summary.parquet``, ``failures.csv``, ``batch.json`` and ``report.html``
(features by class and by condition). ``--bad-file`` adds a file without coordinates to
the manifest: it fails alone and is listed in ``failures.csv``; the others go on.

The same from the command line: ``smlmspine batch OUTDIR/manifest.csv -o OUTDIR/batch
--config OUTDIR/run.toml``. Running the script again skips the files already done
(same input, same parameters).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

#: Spine-class mix of the simulated dendrites of each condition.
CONDITIONS = {"control": {"thin": 0.7, "mushroom": 0.15, "stubby": 0.15},
              "potentiated": {"thin": 0.15, "mushroom": 0.7, "stubby": 0.15}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, help="output folder (created)")
    p.add_argument("--cells", type=int, default=2, help="dendrites per condition (default 2)")
    p.add_argument("--n-spines", type=int, default=3, help="spines per dendrite (default 3)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    p.add_argument("--seed", type=int, default=1, help="first simulation seed (default 1)")
    p.add_argument("--bad-file", action="store_true",
                   help="add a file without coordinates to show failure isolation")
    p.add_argument("--full", action="store_true",
                   help="the default envelopes and neck refit (slower) instead of alpha "
                        "envelopes of a volume label")
    return p.parse_args(argv)


def simulate_study(data: Path, *, cells: int, n_spines: int, seed: int, label: str) -> list[dict]:
    """One file per (condition, cell); returns the manifest rows."""
    from smlmspine.io import write
    from smlmspine.simulate import Acquisition, Geometry, Labeling, SimulatedDrift, dendrite

    data.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, (condition, weights) in enumerate(CONDITIONS.items()):
        for cell in range(cells):
            sim = dendrite(geometry=Geometry(n_spines=n_spines, classes=tuple(weights),
                                             class_weights=weights,
                                             shaft_length_nm=max(4000.0, 1800.0 * n_spines)),
                           labeling=Labeling(label=label), acquisition=Acquisition(n_frames=2000),
                           drift=SimulatedDrift(drift_nm=100.0), rng=seed + 100 * c + cell)
            path = data / f"{condition}_{cell}.csv"
            write(sim.localizations, path)
            rows.append({"path": f"data/{path.name}", "condition": condition,
                         "animal": f"m{cell % 2 + 1}", "cell": cell})
    return rows


def main(argv=None) -> int:
    import numpy as np
    import pyarrow.compute as pc

    import smlmspine
    from smlmspine.config import check_config, to_toml

    args = parse_args(argv)
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    label = "membrane" if args.full else "volume"
    rows = simulate_study(out / "data", cells=args.cells, n_spines=args.n_spines,
                          seed=args.seed, label=label)
    if args.bad_file:
        (out / "data" / "broken.csv").write_text("frame,intensity\n1,100\n2,120\n")
        rows.append({"path": "data/broken.csv", "condition": "control", "animal": "m1",
                     "cell": 99})
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "condition", "animal", "cell"])
        writer.writeheader()
        writer.writerows(rows)
    run = {"label": label, "workers": 1}
    if not args.full:
        run.update(method="alpha", neck_surface=False)
    config = check_config({"run": run, "batch": {"workers": args.workers}})
    (out / "run.toml").write_text(to_toml(config))
    print(f"{len(rows)} files in {out / 'manifest.csv'}; parameters in {out / 'run.toml'}")

    res = smlmspine.batch(out / "manifest.csv", out / "batch", config=out / "run.toml",
                          progress=False)

    counts = res.record.get("counts", {})
    print(f"files: {', '.join(f'{k} {v}' for k, v in counts.items())}; "
          f"{res.spines.num_rows} spines in {res.outdir / 'spines.parquet'}")
    for row in res.failures.to_pylist():
        print(f"failed: {row['source']}: {row['error']}")
    spines = res.spines.filter(pc.field("trustworthy"))
    print(f"{'condition':>12} {'spines':>6} {'mushroom':>8} {'median head nm':>14}")
    for condition in CONDITIONS:
        sel = spines.filter(pc.equal(spines.column("condition"), condition))
        heads = sel.column("head_diameter_nm").to_numpy(zero_copy_only=False)
        n_mush = sum(c == "mushroom" for c in sel.column("spine_class").to_pylist())
        median = float(np.nanmedian(heads)) if np.isfinite(heads).any() else float("nan")
        print(f"{condition:>12} {sel.num_rows:>6} {n_mush:>8} {median:>14.0f}")
    print(f"report: {res.outdir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
