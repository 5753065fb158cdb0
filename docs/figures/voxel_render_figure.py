"""Figure for docs/voxel.md: a simulated 3D STORM dendrite rendered three ways.

A dendrite fragment with six spines (membrane label, seed 3) from smlmspine.simulate is
rendered with smlmspine.voxel.render as (a) a histogram at 20 nm pixels, (b) each
localization's Gaussian (its own precision) integrated over 10 nm pixels, (c) the same
coloured by z; (d) the x-z maximum projection of a 3D render at 20 nm voxels (each
localization's lateral and axial precision). The sums printed under the panels are the
image sums (the number of localizations in the image). Run:
python docs/figures/voxel_render_figure.py (writes voxel_render.png beside it).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from smlmspine.simulate import Geometry, dendrite  # noqa: E402
from smlmspine.voxel import render  # noqa: E402


def main():
    sim = dendrite(geometry=Geometry(n_spines=6, shaft_length_nm=5000), rng=3)
    t = sim.localizations
    hist = render(t, voxel_nm=20.0)
    gauss = render(t, voxel_nm=10.0, method="gaussian")
    rgb = render(t, voxel_nm=10.0, method="gaussian", color_by="z")
    vol = render(t, voxel_nm=20.0, dims=3, method="gaussian")   # a 3D render
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), constrained_layout=True)

    def show(ax, img, title, data=None):
        d = img.data if data is None else data
        (y0, x0), (vy, vx) = img.origin_nm[-2:], img.voxel_nm[-2:]
        ny, nx = img.spatial_shape[-2:]
        extent = [(x0 - vx / 2) / 1000, (x0 + (nx - 0.5) * vx) / 1000,
                  (y0 + (ny - 0.5) * vy) / 1000, (y0 - vy / 2) / 1000]
        if d.ndim == 2:
            hi = np.percentile(d[d > 0], 99.5) if (d > 0).any() else 1.0
            ax.imshow(d, cmap="magma", vmin=0, vmax=hi, extent=extent, interpolation="nearest")
        else:
            ax.imshow(d, extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")

    show(axes[0, 0], hist, f"histogram, 20 nm pixels (sum {hist.data.sum():.0f} of "
                           f"{t.num_rows} localizations)")
    show(axes[0, 1], gauss, f"Gaussian (own precision) integrated over 10 nm pixels "
                            f"(sum {gauss.data.sum(dtype=np.float64):.1f})")
    c = rgb.data / np.percentile(rgb.data.sum(axis=-1), 99.5)
    lo, hi = rgb.metadata["color_by"]["range"]
    show(axes[1, 0], rgb, f"coloured by z ({lo:.0f} to {hi:.0f} nm, turbo)",
         data=np.clip(c, 0, 1))
    # x-z maximum projection of the 3D render over the whole fragment
    xz = np.asarray(vol.data).max(axis=1)
    oz, _, ox = vol.origin_nm
    vz, _, vx = vol.voxel_nm
    nz, _, nx = vol.spatial_shape
    ax = axes[1, 1]
    ax.imshow(xz, cmap="magma", aspect="auto", interpolation="nearest",
              vmax=np.percentile(xz[xz > 0], 99.5),
              extent=[(ox - vx / 2) / 1000, (ox + (nx - 0.5) * vx) / 1000,
                      (oz - vz / 2) / 1000, (oz + (nz - 0.5) * vz) / 1000], origin="lower")
    ax.set_title(f"3D render, {nz}x{vol.spatial_shape[1]}x{nx} voxels of 20 nm: x-z "
                 f"maximum projection", fontsize=9)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("z (µm)")
    out = Path(__file__).with_name("voxel_render.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
