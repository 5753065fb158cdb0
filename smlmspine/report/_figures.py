"""The report's figures as PNG bytes (matplotlib ``Figure`` on the Agg canvas, no pyplot).

Every figure is deterministic: fixed sizes and resolution, no random jitter without a
fixed seed, and no timestamp or software tag in the PNG.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["CLASS_COLORS", "class_color", "png", "drift_figure", "overview_figure",
           "spine_thumbnail", "feature_figure", "coupling_figure", "decimate"]

#: Colour of each spine class (thumbnails, strip plots).
CLASS_COLORS = {"thin": "#1f77b4", "mushroom": "#d62728", "stubby": "#2ca02c",
                "filopodium": "#9467bd", "branched": "#ff7f0e"}
_OTHER = "#7f7f7f"
_FLAGGED = "#000000"


def class_color(name) -> str:
    """Hex colour of a spine class (grey for an unknown or empty class)."""
    return CLASS_COLORS.get(name or "", _OTHER)


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100)


def png(fig, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, without metadata that would change between runs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def drift_figure(traces: list[tuple[str, dict]]) -> bytes:
    """dx, dy, dz (nm) against frame (or time) for one or more runs.

    ``traces``: ``(label, arrays of drift.csv)``; one run shows its uncertainty band.
    """
    fig = _figure(9.0, 3.2)
    axes = fig.subplots(1, 3, sharex=True)
    single = len(traces) == 1
    for k, (comp, ax) in enumerate(zip("xyz", axes)):
        for i, (label, d) in enumerate(traces):
            t = d["frame"] if "frame" in d and np.isfinite(d["frame"]).any() else d["time_s"]
            v = d.get(f"d{comp}_nm")
            if v is None:
                continue
            color = "C0" if single else f"C{i % 10}"
            ax.plot(t, v, color=color, lw=1.0, label=label or None)
            s = d.get(f"sigma_{comp}_nm")
            if single and s is not None and np.isfinite(s).any():
                ax.fill_between(t, v - 2 * s, v + 2 * s, color=color, alpha=0.25, lw=0,
                                label="± 2 σ")
        ax.set_title(f"d{comp}")
        ax.set_xlabel("frame" if traces and "frame" in traces[0][1] else "time (s)")
        ax.axhline(0, color="0.6", lw=0.5)
        if k == 0:
            ax.set_ylabel("drift (nm)")
    handles, labels = axes[0].get_legend_handles_labels()
    if labels and len(labels) <= 12:
        axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return png(fig)


def overview_figure(counts: np.ndarray, extent: tuple, *, spots=None, title: str = "",
                    size_in: float = 7.5) -> bytes:
    """A 2D localization histogram (square-root grey scale) with spine ids at their bases.

    ``spots``: ``(x_nm, y_nm, label, colour)`` tuples drawn over the image.
    """
    x0, x1, y0, y1 = extent
    aspect = (y1 - y0) / max(x1 - x0, 1e-9)
    w = size_in
    h = min(max(w * aspect, 1.8), 1.4 * size_in) + 0.6
    fig = _figure(w, h)
    ax = fig.subplots()
    img = np.sqrt(counts.astype(float))
    vmax = np.percentile(img[img > 0], 99.5) if (img > 0).any() else 1.0
    ax.imshow(img, origin="lower", extent=(x0 / 1000, x1 / 1000, y0 / 1000, y1 / 1000),
              cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
    for x, y, label, color in spots or ():
        if np.isfinite(x) and np.isfinite(y):
            ax.plot(x / 1000, y / 1000, "o", ms=5, mfc="none", mec=color, mew=1.5)
            ax.annotate(label, (x / 1000, y / 1000), xytext=(4, 4), textcoords="offset points",
                        color="white", fontsize=7, fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.15", "fc": color, "ec": "none",
                              "alpha": 0.85})
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return png(fig)


def decimate(vertices: np.ndarray, faces: np.ndarray, max_faces: int):
    """Fewer faces for drawing: vertices clustered on a grid until ``max_faces`` remain.

    Returns ``(vertices, faces)``; the input when it is already small enough.

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.icosphere(subdivisions=4)
    >>> v, f = decimate(m.vertices, m.faces, 500)
    >>> len(f) <= 500 < len(m.faces)
    True
    """
    v = np.asarray(vertices, dtype=float)
    f = np.asarray(faces, dtype=np.int64)
    if len(f) <= max_faces:
        return v, f
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    cell = math.sqrt(2.0 * max(area, 1e-12) / max_faces)
    lo = v.min(axis=0)
    for _ in range(40):
        keys = np.floor((v - lo) / cell).astype(np.int64)
        _, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        n = int(inv.max()) + 1
        nv = np.zeros((n, 3))
        np.add.at(nv, inv, v)
        nv /= np.bincount(inv, minlength=n)[:, None]
        nf = inv[f]
        keep = (nf[:, 0] != nf[:, 1]) & (nf[:, 1] != nf[:, 2]) & (nf[:, 0] != nf[:, 2])
        nf = nf[keep]
        if len(nf) <= max_faces:
            return nv, nf
        cell *= 1.25
    return nv, nf


def _frame(axis: np.ndarray):
    """(right, up, towards-viewer) unit vectors with ``up`` along the spine axis, the
    viewer on the optical (z) axis side where possible."""
    up = axis / np.linalg.norm(axis)
    for ref in (np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])):
        d = ref - up * (ref @ up)
        if np.linalg.norm(d) > 0.3:
            break
    d /= np.linalg.norm(d)
    right = np.cross(up, d)
    return right, up, d


def spine_thumbnail(vertices, faces, *, color: str, base=None, axis=None,
                    max_faces: int = 2500, size_in: float = 2.0, scale_nm: float = 500.0) -> bytes:
    """A shaded orthographic render of one spine mesh, base at the bottom, axis up.

    Faces are drawn back to front (painter's order) with Lambert shading in the class
    colour; a scale bar of ``scale_nm`` sits in the corner.
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb

    v, f = decimate(vertices, faces, max_faces)
    centre = v.mean(axis=0)
    ax_vec = None if axis is None else np.asarray(axis, dtype=float)
    if ax_vec is None or not np.all(np.isfinite(ax_vec)) or np.linalg.norm(ax_vec) < 1e-9:
        # principal direction of the vertices, pointing away from the base when known
        _, _, vt = np.linalg.svd(v - centre, full_matrices=False)
        ax_vec = vt[0]
        if base is not None and np.all(np.isfinite(base)) and (centre - base) @ ax_vec < 0:
            ax_vec = -ax_vec
    right, up, toward = _frame(ax_vec)
    p = v - centre
    sx, sy, depth = p @ right, p @ up, p @ toward
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = toward + 0.6 * up + 0.4 * right
    light /= np.linalg.norm(light)
    shade = 0.3 + 0.7 * np.abs(n @ light)
    order = np.argsort(depth[f].mean(axis=1), kind="stable")
    rgb = np.asarray(to_rgb(color))
    colors = np.clip(shade[order, None] * rgb[None, :] + (1 - shade[order, None]) * 0.08, 0, 1)
    polys = np.stack([sx[f[order]], sy[f[order]]], axis=-1)
    fig = _figure(size_in, size_in)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.add_collection(PolyCollection(polys, facecolors=colors, edgecolors="none",
                                     antialiased=False))
    half = 0.55 * max(np.ptp(sx), np.ptp(sy), 1.0)
    cx, cy = 0.5 * (sx.max() + sx.min()), 0.5 * (sy.max() + sy.min())
    ax.set_xlim(cx - half, cx + half)
    ax.set_ylim(cy - half, cy + half)
    ax.set_aspect("equal")
    ax.axis("off")
    bar = scale_nm if scale_nm < 1.6 * half else 100.0
    bx, by = cx - 0.95 * half, cy - 0.95 * half
    ax.plot([bx, bx + bar], [by, by], color="k", lw=2)
    ax.text(bx, by + 0.04 * half, f"{bar:.0f} nm", fontsize=7, va="bottom")
    return png(fig, dpi=80)


def feature_figure(groups: list[str], features: list[tuple[str, str]], values: dict,
                   trusted: dict, *, colors: dict | None = None, point_colors: dict | None = None,
                   title: str = "") -> bytes:
    """Box plots (trustworthy spines) with every spine as a dot, one panel per feature.

    ``values[feature][group]`` and ``trusted[group]`` are aligned arrays; dots take the
    group's colour (``colors``) or their own (``point_colors[group]``, aligned); flagged
    spines (not trustworthy) are black crosses outside the boxes; NaN values are counted
    in the tick label.
    """
    n = len(features)
    cols = min(3, n)
    rows = int(math.ceil(n / cols))
    fig = _figure(3.3 * cols, 2.7 * rows + (0.3 if title else 0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    rng = np.random.default_rng(0)
    for ax, (feat, label) in zip(axes, features):
        data, ticks = [], []
        for gi, g in enumerate(groups):
            v = np.asarray(values[feat][g], dtype=float)
            t = np.asarray(trusted[g], dtype=bool)
            fin = np.isfinite(v)
            good = v[fin & t]
            data.append(good)
            jitter = rng.uniform(-0.15, 0.15, size=v.size)
            sel = fin & t
            if point_colors is not None:
                pc = np.asarray(point_colors[g], dtype=object)[sel]
                ax.scatter(gi + 1 + jitter[sel], v[sel], s=12, c=list(pc), alpha=0.85,
                           linewidths=0)
            else:
                color = (colors or {}).get(g, "C0")
                ax.plot(gi + 1 + jitter[sel], v[sel], "o", ms=3.5, color=color, alpha=0.8)
            if (fin & ~t).any():
                ax.plot(gi + 1 + jitter[fin & ~t], v[fin & ~t], "x", ms=5, color=_FLAGGED,
                        mew=1.2)
            nan = int((~fin).sum())
            ticks.append(f"{g}\nn={int(fin.sum())}" + (f", {nan} NaN" if nan else ""))
        nonempty = [i for i, d in enumerate(data) if d.size]
        if not any(np.isfinite(np.asarray(values[feat][g], dtype=float)).any() for g in groups):
            ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center",
                    va="center", color="0.4", fontsize=8)
            ax.set_yticks([])
        if nonempty:
            ax.boxplot([data[i] for i in nonempty], positions=[i + 1 for i in nonempty],
                       widths=0.5, showfliers=False,
                       medianprops={"color": "k"}, boxprops={"color": "0.3"},
                       whiskerprops={"color": "0.3"}, capprops={"color": "0.3"})
        ax.set_xticks(range(1, len(groups) + 1), ticks, fontsize=7)
        ax.set_xlim(0.4, len(groups) + 0.6)
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png(fig)


def coupling_figure(summary: dict, rings: dict, *, title: str = "") -> bytes:
    """SODA ring z-scores with the threshold (coupled rings red) and cross H(r) = L(r) - r
    from the rings' cross-K increments."""
    r0, r1 = np.asarray(rings["r_inner_nm"], float), np.asarray(rings["r_outer_nm"], float)
    mid = 0.5 * (r0 + r1)
    z = np.asarray(rings["z_score"], float)
    win = np.asarray(rings["in_window"], bool)
    fig = _figure(9.0, 3.3)
    a, b = fig.subplots(1, 2)
    a.bar(mid, np.nan_to_num(z), width=0.9 * (r1 - r0), color=np.where(win, "tab:red", "tab:gray"))
    thr = summary.get("threshold")
    if thr is not None:
        a.axhline(thr, color="tab:blue", ls="--", lw=1, label=f"threshold {thr:.2f}")
        a.legend(fontsize=7)
    a.set_xlabel("distance (nm)")
    a.set_ylabel("ring z-score")
    a.set_title("SODA rings (red: coupled)", fontsize=9)
    k = np.cumsum(np.nan_to_num(np.asarray(rings["delta_k"], float)))
    ndim = int(summary.get("ndim") or 2)
    if ndim == 3:
        lr = np.cbrt(3.0 * k / (4.0 * np.pi))
    else:
        lr = np.sqrt(k / np.pi)
    b.plot(r1, lr - r1, color="tab:red", label="H(r) = L(r) - r")
    b.axhline(0, color="k", lw=0.5, label="complete spatial randomness")
    b.set_xlabel("r (nm)")
    b.set_ylabel("cross H (nm)")
    b.set_title(f"cross Ripley from the rings ({ndim}D)", fontsize=9)
    b.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png(fig)
