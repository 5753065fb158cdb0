"""Make docs/figures/base_definition.png: the base plane and the neck minimum of a spine
cut flat at its base, closed by a rounded cap, and joined to a shaft.

The three spines are the analytic shapes of tests/morphology/test_base_invariance.py
(cylinder neck 150 nm, sphere head 500 nm; here the neck has a 126 nm waist), meshed by
marching cubes and measured with smlmspine.morphology.measure_spine: the base plane
(base point and normal), the cap skipped, the profile, the neck minimum and the
head-neck boundary are what the code returns. Each panel shows the mesh's section
through the spine axis (x = 0), the base plane and the measured sections.

Usage: python docs/figures/make_base_figure.py  (writes base_definition.png next to it)
"""

from pathlib import Path

import numpy as np


def _inside(closure, x, y, z):
    r_neck = 75.0 - 12.0 * np.exp(-((z - 250.0) / 60.0) ** 2)
    zc = 500.0 + np.sqrt(250.0 ** 2 - 75.0 ** 2)
    spine = np.minimum(np.maximum(np.hypot(x, y) - r_neck, z - zc),
                       np.sqrt(x ** 2 + y ** 2 + (z - zc) ** 2) - 250.0)
    if closure == "cut flat":
        return np.maximum(spine, -z)
    if closure == "closed by a cap":
        return np.minimum(np.maximum(spine, -z), np.sqrt(x ** 2 + y ** 2 + z ** 2) - 75.0)
    shaft = np.maximum(np.hypot(y, z + 250.0) - 250.0, np.abs(x) - 400.0)
    return np.minimum(np.maximum(spine, -z - 250.0), shaft)


def _mesh(closure, voxel=8.0):
    import trimesh
    from skimage.measure import marching_cubes

    lo = np.array([-410.3 if closure == "on a shaft" else -270.3, -270.7,
                   -510.4 if closure == "on a shaft" else -90.4])
    hi = np.array([410.0 if closure == "on a shaft" else 270.0, 270.0, 1010.0])
    ax = [np.arange(a, b + voxel, voxel) for a, b in zip(lo, hi)]
    v, f, _, _ = marching_cubes(_inside(closure, *np.meshgrid(*ax, indexing="ij")), 0.0,
                                spacing=(voxel,) * 3)
    mesh = trimesh.Trimesh(v + lo, f[:, ::-1], process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def main() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smlmspine.morphology import measure_spine

    cases = [("cut flat", {}), ("closed by a cap", {}),
             ("on a shaft", {"base_point_nm": [0, 0, 0], "base_normal": [0, 0, 1]})]
    fig, axes = plt.subplots(1, 3, figsize=(10, 6.0), sharey=True)
    for ax, (closure, kw) in zip(axes, cases):
        mesh = _mesh(closure)
        m = measure_spine(mesh, step_nm=10.0, **kw)
        sec = mesh.section(plane_origin=[0, 0, 0], plane_normal=[1, 0, 0])
        for ent in sec.entities:
            p = sec.vertices[ent.points]
            ax.plot(p[:, 1], p[:, 2], color="0.3", lw=1)
        base_z = m.base_z_nm
        ax.axhline(base_z, color="tab:red", lw=1.5, ls="--")
        ax.text(-390, base_z + 12, f"base plane\nbase area {m.base_area_nm2 / 1e3:.1f}·10³ nm²",
                color="tab:red", fontsize=7.5, va="bottom")
        if m.cap_length_nm > 0:
            ax.axhspan(base_z - m.cap_length_nm, base_z, color="tab:red", alpha=0.12)
            ax.text(95, base_z - m.cap_length_nm / 2, f"cap {m.cap_length_nm:.0f} nm\n(excluded)",
                    color="tab:red", fontsize=7.5, va="center")
        prof = m.profile
        i = int(np.argmin(np.abs(prof["diameter_nm"] - m.neck_min_diameter_nm)))
        zmin = prof["z_nm"][i]
        r = m.neck_min_diameter_nm / 2
        ax.annotate("", xy=(-r, zmin), xytext=(r, zmin),
                    arrowprops=dict(arrowstyle="<->", color="tab:blue", lw=1.5))
        ax.text(r + 15, zmin, f"neck min {m.neck_min_diameter_nm:.0f} nm", color="tab:blue",
                fontsize=8, va="center")
        ax.plot([0, 0], [base_z, base_z + m.neck_length_nm], color="tab:green", lw=3, alpha=0.6)
        ax.text(-r - 15, base_z + 0.75 * m.neck_length_nm, f"neck length\n{m.neck_length_nm:.0f} nm",
                color="tab:green", fontsize=8, ha="right", va="center")
        ax.plot(prof["y_nm"], prof["z_nm"], color="tab:orange", lw=0.8)
        ax.set_title(f"{closure}\nlength {m.length_nm:.0f} nm", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-420, 420)
        ax.set_ylim(-520 if closure == "on a shaft" else -120, 1030)
        ax.set_xlabel("y (nm)")
    axes[0].set_ylabel("z (nm)")
    fig.suptitle("Base plane, closing cap and neck minimum (smlmspine.morphology.measure_spine)",
                 fontsize=10)
    fig.tight_layout()
    out = Path(__file__).resolve().parent / "base_definition.png"
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
