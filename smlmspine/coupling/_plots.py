"""Figure of a coupling analysis (matplotlib, Agg backend; imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_coupling"]


def plot_coupling(result, path, *, ripley=None, title: str | None = None) -> Path:
    """Write a PNG: ring z-scores with the threshold, and cross H(r) with its envelope.

    Parameters
    ----------
    result : SodaResult
    path : str or Path
        Output PNG.
    ripley : RipleyResult, optional
        Cross K/L/H (with envelopes from :func:`cross_k_envelope`) for the second panel.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io._registry import atomic_output

    path = Path(path)
    e = result.r_edges_nm
    mid = 0.5 * (e[:-1] + e[1:])
    n_panels = 2 if ripley is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 4.0), squeeze=False)
    ax = axes[0, 0]
    colors = np.where(result.in_window, "tab:red", "tab:gray")
    ax.bar(mid, result.z_score, width=(e[1] - e[0]) * 0.9, color=colors, label="ring z-score")
    ax.plot(mid, result.statistic, "k.", ms=4, label="(C - E) / sd")
    ax.axhline(result.threshold, color="tab:blue", ls="--",
               label=f"threshold {result.threshold:.2f}")
    ax.set_xlabel("distance (nm)")
    ax.set_ylabel("ring statistic")
    ax.set_title(f"SODA: index pre {result.coupling_index_pre:.2f}, post "
                 f"{result.coupling_index_post:.2f}")
    ax.legend(fontsize=8)
    if ripley is not None:
        ax = axes[0, 1]
        r = ripley.radii_nm
        if ripley.h_low_nm is not None:
            ax.fill_between(r, ripley.h_low_nm, ripley.h_high_nm, color="0.85",
                            label=f"{ripley.null} envelope ({ripley.n_simulations} sim.)")
            ax.plot(r, ripley.h_mean_nm, color="0.5", lw=1)
        ax.plot(r, ripley.h_nm, "tab:red", label="H(r) = L(r) - r")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("r (nm)")
        ax.set_ylabel("cross H (nm)")
        ax.set_title(f"cross Ripley ({ripley.correction} correction)")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
