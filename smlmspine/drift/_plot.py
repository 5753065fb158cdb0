"""Plot of a :class:`DriftModel` (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_model", "render_model", "write_image"]


def plot_model(model, path: Path, *, title: str | None = None) -> Path:
    """Drift curves per axis with 1-sigma bands and the raw segment estimates.

    Parameters
    ----------
    model : DriftModel
        The model to plot (one panel per axis).
    path : pathlib.Path
        Image file, written atomically (format from the extension).
    title : str, optional
        Figure title; default names the method and the number of segments.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    return write_image(render_model(model, path.suffix.lstrip(".") or "png", title=title), path)


def write_image(data: bytes, path: Path) -> Path:
    """Write the bytes of :func:`render_model` to ``path`` atomically; returns ``path``."""
    from ..io._registry import atomic_output

    path = Path(path)
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return path


def render_model(model, fmt: str = "png", *, title: str | None = None) -> bytes:
    """The image of :func:`plot_model` as bytes of format ``fmt`` (drawn anywhere, e.g.
    by a helper process: :mod:`smlmspine._background`)."""
    import io

    from matplotlib.figure import Figure

    axes = ["x", "y"] + (["z"] if model.ndim == 3 else [])
    fig = Figure(figsize=(7, 2.2 * len(axes) + 0.6), constrained_layout=True)
    t = model.t.astype(float)
    for k, name in enumerate(axes):
        ax = fig.add_subplot(len(axes), 1, k + 1)
        d = getattr(model, f"d{name}_nm")
        s = getattr(model, f"sigma_{name}_nm")
        ax.plot(t, d, color="C%d" % k, lw=1.2, label=f"d{name}")
        if np.any(np.isfinite(s)):
            ax.fill_between(t, d - s, d + s, color="C%d" % k, alpha=0.3, lw=0,
                            label="1 sigma")
        if len(model.segment_t):
            seg = model.segment_d_nm[:, k]
            # Segment estimates are relative: align them to the curve robustly.
            off = float(np.nanmedian(np.interp(model.segment_t, t, d) - seg))
            ax.plot(model.segment_t, seg + off, ".", ms=3, color="k", label="segments")
        ax.set_ylabel(f"d{name} (nm)")
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(loc="best", fontsize=7)
            ax.set_title(title or f"drift ({model.method})")
    ax.set_xlabel("frame" if model.axis == "frame" else "time (s)")
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format=fmt)
    return buf.getvalue()
