"""Regenerate the README sample: a small 3D membrane-labelled dendrite with spines.

Writes ``examples/data/sample_dendrite.csv`` (ThunderSTORM-compatible CSV, nm) and its
ground truth in ``examples/data/sample_dendrite.truth/`` (Parquet tables, PLY meshes,
parameters.json). Equivalent to::

    smlmspine simulate dendrite examples/data/sample_dendrite.csv --seed 2024 \\
        --n-spines 8 --shaft-length-nm 6000 --labeling-density-per-um2 600 \\
        --drift-nm 150 --n-frames 15000 --mesh-step-nm 40 --mesh-max-faces 30000 \\
        --spine-mesh-max-faces 6000

except that, to keep the bundled files small (~8 MB), the localization values are
rounded (coordinates to 0.1 nm, photons to 1, the rest to 0.01) before writing. Run
from the repository root: ``python examples/make_sample_data.py``; the same seed always
gives the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dataclasses import replace

import numpy as np

from smlmspine.schema import with_columns
from smlmspine.simulate import (Acquisition, SimulatedDrift, Geometry, Labeling, Meshing, dendrite,
                                write_simulation)

OUT = Path(__file__).resolve().parent / "data" / "sample_dendrite.csv"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sim = dendrite(geometry=Geometry(n_spines=8, shaft_length_nm=6000.0),
                   labeling=Labeling(labeling_density_per_um2=600.0),
                   drift=SimulatedDrift(drift_nm=150.0), acquisition=Acquisition(n_frames=15000),
                   meshing=Meshing(mesh_step_nm=40.0, mesh_max_faces=30000,
                                   spine_mesh_max_faces=6000), rng=2024)
    locs = sim.localizations
    digits = {"x": 1, "y": 1, "z": 1, "photons": 0, "background": 2, "precision_xy": 2,
              "precision_z": 2}
    sim = replace(sim, localizations=with_columns(
        locs, {c: np.round(locs.column(c).to_numpy(), d) for c, d in digits.items()}))
    written = write_simulation(sim, OUT)
    info = sim.to_dict()
    print(f"{info['n_localizations']} localizations, {info['n_spines']} spines "
          f"({', '.join(sim.spines.column('spine_class').to_pylist())})")
    total = 0
    for p in [written["localizations"], *written["files"]]:
        size = Path(p).stat().st_size
        total += size
        print(f"  {Path(p).relative_to(OUT.parent)}  {size / 1e6:.2f} MB")
    print(f"total {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
