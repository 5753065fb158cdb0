"""Make docs/figures/emlike_spines.png: smooth vs EM-like simulated spines (truth meshes).

Run from the repository root: ``python docs/figures/make_emlike_figure.py`` (about a minute).
The same seed and spine designs give the top row (smooth solids of revolution) and the
bottom row (``SpineShapeNoise.em_like()``: irregular surface, elliptic/bent/beaded
necks, lobed heads, 1,000-vertex truth meshes), spine-only layout.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from smlmspine.simulate import (Acquisition, Geometry, Labeling, SpineParameters,  # noqa: E402
                                SpineShapeNoise, dendrite)

OUT = Path(__file__).resolve().parent / "emlike_spines.png"
SPINES = [SpineParameters("thin", 100.0, 900.0, 300.0, 340.0),
          SpineParameters("mushroom", 200.0, 500.0, 800.0, 800.0),
          SpineParameters("filopodium", 120.0, 1600.0, 0.0, 0.0),
          SpineParameters("branched", 120.0, 900.0, 450.0, 450.0)]


def _simulate(noise):
    return dendrite(geometry=Geometry(spines=SPINES, layout="spines", spine_gap_nm=300.0,
                                      shape_noise=noise, max_elevation_deg=0.0),
                    labeling=Labeling(labeling_density_per_um2=0.0),
                    acquisition=Acquisition(n_frames=1, background_rate_per_frame=0.0), rng=7)


def main() -> None:
    sims = [("smooth (default)", _simulate(None)),
            ("EM-like: SpineShapeNoise.em_like()", _simulate(SpineShapeNoise.em_like()))]
    fig = plt.figure(figsize=(10, 5.6))
    for r, (title, sim) in enumerate(sims):
        rows = sim.spines.to_pylist()
        for c, row in enumerate(rows):
            ax = fig.add_subplot(2, len(rows), r * len(rows) + c + 1, projection="3d")
            mesh = sim.spine_meshes[row["spine_id"]]
            v = mesh.vertices - [row["base_x_nm"], row["base_y_nm"], row["base_z_nm"]]
            ax.plot_trisurf(v[:, 0], v[:, 1], v[:, 2], triangles=mesh.faces, color="0.75",
                            edgecolor="0.35", linewidth=0.1, shade=True)
            lim = max(np.ptp(v, axis=0)) / 2
            mid = (v.max(0) + v.min(0)) / 2
            for setter, m in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), mid):
                setter(m - lim, m + lim)
            ax.view_init(elev=20, azim=-60)
            ax.set_axis_off()
            ax.set_title(f"{row['spine_class']}: neck {row['neck_min_diameter_nm']:.0f} nm\n"
                         f"{len(mesh.vertices)} vertices", fontsize=8)
        fig.text(0.01, 0.94 - 0.5 * r, title, fontsize=10, weight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
