"""Adaptive intersection maximization (AIM) drift estimation, 2D and 3D.

After Ma et al., Sci. Adv. 2024: the drift of a segment is the shift that maximises the
"intersection" of its localizations with a reference set of localizations, searched in
a radius that shrinks as the estimate converges. This implementation:

1. **Tracking pass.** Segments are processed in time order against a *growing*
   reference (the drift-corrected localizations of all earlier segments, kept in a
   log-structured set of KD-trees). The search starts at the previous segment's drift;
   pairs within ``search_radius_nm`` are collected once; the intersection score is the
   Gaussian-weighted pair count, maximised first on a coarse histogram of the pair
   differences and then by fixed-point (mean-shift) iterations whose kernel width
   shrinks to ``kernel_nm``.
2. **Global pass.** Each segment is re-estimated against *all other* corrected segments
   (its own localizations are excluded, so the estimate cannot lock onto itself), which
   removes the random-walk error accumulated by the tracking pass.

3D data are matched in coordinates where z is scaled by ``precision_xy / precision_z``,
so the kernel follows the anisotropic localization precision.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import ParameterError, QualityWarning
from ._segments import Prepared

__all__ = ["aim_segments"]

#: Localizations per segment used by the tracking pass (a random subset beyond).
_MAX_TRACK = 1500
#: Localizations per segment used by the global pass (a random subset beyond).
_MAX_QUERY = 2500
#: A segment is structureless when its excess pair count at the optimum is less than
#: this many Poisson sigmas above the background (or its contrast < ``min_contrast``).
_MIN_Z = 4.0


def _mean_shift(diff: np.ndarray, start: np.ndarray, sigmas, *, tol: float = 1e-3,
                max_iter: int = 30) -> np.ndarray:
    from ._kernels import mean_shift

    return mean_shift(np.ascontiguousarray(diff, dtype=np.float64),
                      np.asarray(start, dtype=np.float64),
                      np.asarray(sigmas, dtype=np.float64), float(tol), int(max_iter))


def _newton(diff: np.ndarray, start: np.ndarray, sigma: float, *, tol: float = 1e-3,
            max_iter: int = 20) -> np.ndarray:
    from ._kernels import newton_peak

    return newton_peak(np.ascontiguousarray(diff, dtype=np.float64),
                       np.asarray(start, dtype=np.float64), float(sigma), float(tol),
                       int(max_iter))


def _coarse_start(diff: np.ndarray, radius: float) -> np.ndarray:
    """Mode of the pair-difference histogram (bins radius/8, smoothed over 3 bins)."""
    from ._kernels import coarse_mode

    return coarse_mode(np.ascontiguousarray(diff, dtype=np.float64), float(radius), 16)


def _stats(diff: np.ndarray, idx: np.ndarray, d: np.ndarray, sigma: float, n_seg: int):
    """Uncertainty (per axis) and the number of matched localizations of an estimate.

    Each segment localization contributes the kernel-weighted mean of its pair
    differences; the estimate's standard error follows from their spread, with the
    effective number of independent localizations (sum w)^2 / sum w^2.
    """
    from ._kernels import kernel_sums

    W, Ssum = kernel_sums(np.ascontiguousarray(diff, dtype=np.float64),
                          np.asarray(idx, dtype=np.int64), np.asarray(d, dtype=np.float64),
                          float(sigma), int(n_seg))
    ok = W > 1e-12
    D = diff.shape[1]
    if ok.sum() < 3:
        return np.full(D, np.inf), 0
    m = Ssum[ok] / W[ok][:, None]
    Wk = W[ok]
    est = (Wk[:, None] * m).sum(axis=0) / Wk.sum()
    var = (Wk[:, None] ** 2 * (m - est) ** 2).sum(axis=0) / Wk.sum() ** 2
    n_eff = Wk.sum() ** 2 / (Wk ** 2).sum()
    # small-sample correction of the spread estimate
    var *= n_eff / max(n_eff - 1.0, 1.0)
    return np.sqrt(var), int(ok.sum())


def _contrast(diff: np.ndarray, d: np.ndarray, sigma: float, radius: float):
    """Pair density at the estimate over the background pair density, and the excess of
    the kernel-weighted pair count over that background in Poisson sigmas.

    The background is the density of pair differences in the shell between half the
    search radius and the search radius (away from the peak).
    """
    from math import gamma, pi

    from ._kernels import peak_and_shell

    D = diff.shape[1]
    if len(diff) == 0:
        return 0.0, 0.0
    wsum, shell = peak_and_shell(diff, np.asarray(d, np.float64), float(sigma), float(radius))
    norm = (2 * pi) ** (D / 2) * sigma ** D
    unit = pi ** (D / 2) / gamma(D / 2 + 1)
    vol = unit * radius ** D * (1 - 0.5 ** D)
    bg = max(shell, 1) / vol * norm  # expected weighted count without structure
    return float(wsum / bg), float((wsum - bg) / np.sqrt(bg))


def aim_segments(prep: Prepared, *, kernel_nm: float | None, search_radius_nm: float | None,
                 max_reference: int, min_per_segment: int, min_contrast: float,
                 rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Per-segment drift ``(S, 3)``, sigma ``(S, 3)`` and a validity mask ``(S,)``.

    Returns also the parameters actually used. The method (tracking pass, global pass,
    uncertainty) is described in ``docs/drift.md``.

    Parameters
    ----------
    prep : Prepared
        Coordinates and segments (:func:`~smlmspine.drift._segments.prepare`).
    kernel_nm : float or None
        Final kernel width in nm; default ``max(sqrt(2) * precision_xy, 3)``.
    search_radius_nm : float or None
        Search radius of the tracking pass in nm (at least twice the kernel); default
        ``max(4 * kernel_nm, 50)``.
    max_reference : int
        Most reference localizations of the global pass (half of it when tracking).
    min_per_segment : int
        Segments with fewer localizations are not estimated (invalid).
    min_contrast : float
        Structure test: segments whose best match is not this many times the mean
        intersection are flagged; when most are, the estimate is refused.
    rng : int or numpy.random.Generator
        Seed of the reference subsampling.

    Returns
    -------
    drift : (S, 3) ndarray of float
        Drift per segment in nm relative to the first valid segment (z NaN in 2D).
    sigma : (S, 3) ndarray of float
        1-sigma uncertainty per segment and axis in nm.
    valid : (S,) ndarray of bool
        Segments estimated.
    used : dict
        The parameters used (defaults resolved), for the model's ``params``.

    Raises
    ------
    ParameterError
        Fewer than two segments with ``min_per_segment`` localizations, invalid
        kernel or radius, or data without structure to match.
    """
    from ._kernels import GridIndex, within

    rng = np.random.default_rng(rng)
    D = prep.ndim
    zscale = prep.precision_xy_nm / prep.precision_z_nm if D == 3 else 1.0
    scale = np.ones(D)
    if D == 3:
        scale[2] = zscale
    pts = prep.xyz * scale
    sig = float(kernel_nm) if kernel_nm is not None else max(np.sqrt(2) * prep.precision_xy_nm, 3.0)
    if not sig > 0:
        raise ParameterError(f"kernel_nm must be > 0, got {kernel_nm}")
    R0 = float(search_radius_nm) if search_radius_nm is not None else max(4.0 * sig, 50.0)
    if R0 < 2 * sig:
        raise ParameterError(f"search_radius_nm ({R0:g}) must be at least twice the kernel "
                             f"width ({sig:g} nm)")
    S = prep.n_segments
    order = np.argsort(prep.seg, kind="stable")
    bounds = np.searchsorted(prep.seg[order], np.arange(S + 1))
    members = [order[bounds[k]:bounds[k + 1]] for k in range(S)]
    valid = np.array([len(m) >= min_per_segment for m in members])
    if valid.sum() < 2:
        raise ParameterError(
            f"AIM: only {int(valid.sum())} of {S} segments have >= {min_per_segment} "
            f"localizations (counts {np.bincount(prep.seg, minlength=S).tolist()[:10]}...); "
            "use longer segments")
    keep_p = min(1.0, max_reference / max(len(pts), 1))
    track_p = min(1.0, max(max_reference // 2, 1) / max(len(pts), 1))
    # ---------------- pass 1: tracking against a growing reference
    d1 = np.zeros((S, D))
    contrast = np.zeros(S)
    zscore = np.zeros(S)
    first = int(np.argmax(valid))
    prev, prev2 = np.zeros(D), None
    sigmas = np.geomspace(R0 / 6, sig, 3)
    bounds = (pts.min(axis=0), pts.max(axis=0))
    ref_parts: list[np.ndarray] = []
    for k in range(S):
        if not valid[k]:
            continue
        idx = members[k]
        if k != first:
            pred = prev if prev2 is None else prev + 0.5 * (prev - prev2)
            sub = idx if len(idx) <= _MAX_TRACK else rng.choice(idx, _MAX_TRACK, replace=False)
            sp = pts[sub] - pred
            ref = np.concatenate(ref_parts)
            ri, qj, diff = GridIndex(ref, R0, bounds=bounds).pairs(sp)
            if len(ri) < 10:
                valid[k] = False
                continue
            start = _coarse_start(diff, R0)
            near = within(diff, start, R0 / 3)
            dk = _mean_shift(near, start, sigmas[:-1], tol=0.05, max_iter=10)
            dk = _newton(near, dk, sig, tol=0.01)
            contrast[k], zscore[k] = _contrast(diff, dk, sig, R0)
            d1[k] = pred + dk
            prev2, prev = prev, d1[k].copy()
        sel = idx[rng.random(len(idx)) < track_p]
        ref_parts.append(pts[sel] - d1[k])
    d1[first] = 0.0
    # ---------------- quality: is there structure to match?
    tested = valid.copy()
    tested[first] = False
    if tested.any():
        flat = tested & ((contrast < min_contrast) | (zscore < _MIN_Z))
        if flat.sum() > 0.5 * tested.sum():
            raise ParameterError(
                f"AIM: the localizations show no structure to match between segments "
                f"(median intersection contrast {np.median(contrast[tested]):.2f}, median "
                f"excess {np.median(zscore[tested]):.1f} sigma; {int(flat.sum())} of "
                f"{int(tested.sum())} segments below contrast {min_contrast:g} or "
                f"{_MIN_Z:g} sigma); "
                "a drift estimate would be noise. Use fiducials (method='fiducial') or "
                "longer segments.")
        if flat.any():
            warnings.warn(f"AIM: {int(flat.sum())} of {int(tested.sum())} segments show no "
                          f"matching structure (contrast < {min_contrast:g} or excess < "
                          f"{_MIN_Z:g} sigma); they are "
                          "interpolated from their neighbours", QualityWarning, stacklevel=3)
            valid &= ~flat
    # ---------------- pass 2: every segment against all other corrected segments
    labels = prep.seg
    corrected = pts - np.where(valid[labels][:, None], d1[labels], 0.0)
    sel = np.flatnonzero((rng.random(len(pts)) < keep_p) & valid[labels])
    ref_pts, ref_lab = corrected[sel], labels[sel]
    R2 = 3.0 * sig
    grid = GridIndex(ref_pts, R2, labels=ref_lab)
    d2 = np.full((S, D), np.nan)
    s2 = np.full((S, D), np.nan)
    todo = np.flatnonzero(valid)
    queries = {}
    for k in todo:  # draw the subsets in a fixed order: results do not depend on threads
        idx = members[k]
        if len(idx) > _MAX_QUERY:
            idx = np.sort(rng.choice(idx, _MAX_QUERY, replace=False))
        queries[k] = idx

    def one(k):
        idx = queries[k]
        sp = corrected[idx]
        _, qj, diff = grid.pairs(sp, skip_label=int(k))
        if len(qj) < 10:
            return k, None, None
        dk = _newton(diff, np.zeros(D), sig, tol=0.01)
        sd, _ = _stats(diff, qj, dk, sig, len(idx))
        return k, dk, sd

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8))) as pool:
        for k, dk, sd in pool.map(one, todo):
            if dk is None:
                valid[k] = False
                continue
            d2[k] = d1[k] + dk
            s2[k] = sd
    if valid.sum() < 2:
        raise ParameterError("AIM: fewer than two segments could be matched; the data are too "
                             "sparse for this segmentation")
    out = np.full((S, 3), np.nan)
    sg = np.full((S, 3), np.nan)
    out[:, :D] = d2 / scale
    sg[:, :D] = s2 / scale
    used = {"kernel_nm": float(sig), "search_radius_nm": float(R0), "max_reference": int(max_reference),
            "min_per_segment": int(min_per_segment), "z_scale": float(zscale),
            "median_contrast": float(np.median(contrast[tested])) if tested.any() else None,
            "min_zscore": float(np.min(zscore[tested])) if tested.any() else None}
    return out, sg, valid, used
