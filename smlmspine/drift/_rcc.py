"""Redundant cross-correlation (RCC) drift estimation (Wang et al., Opt. Express 2014).

Each segment is rendered as a Gaussian-blurred histogram; every pair of segments is
cross-correlated by FFT; the correlation peak (sub-pixel: least-squares fit of a 2D
Gaussian, i.e. a quadratic to the log-correlation, on the 5x5 pixels around the
maximum) gives the pair's relative shift. The redundant shifts ``r_ij = d_j - d_i`` are
solved for the segment drifts by least squares; the pair with the largest residual is
rejected while it exceeds the threshold, as long as every segment stays connected.

3D data use three projections: xy gives dx, dy; xz and yz give dz (and again dx, dy);
each axis is solved from all equations that measure it. This keeps memory at 2D image
sizes while using the anisotropic axial precision in the rendering.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ParameterError, QualityWarning
from ._segments import Prepared

__all__ = ["rcc_segments"]

#: Most pixels of one rendered projection (the pixel grows beyond it).
_MAX_PIXELS = 4_000_000


def _render(pts2: np.ndarray, lo: np.ndarray, px: float, shape, blur_px) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    ij = np.floor((pts2 - lo) / px).astype(np.int64)
    ok = np.all((ij >= 0) & (ij < np.asarray(shape)), axis=1)
    img = np.zeros(shape, np.float32)
    np.add.at(img, (ij[ok, 0], ij[ok, 1]), 1.0)
    return gaussian_filter(img, blur_px, mode="constant", truncate=3.0)


def _subpixel_peak(win: np.ndarray, k0: int, k1: int) -> tuple[float, float]:
    """Fit log(c) = a + b x + c y + d x^2 + e y^2 + f xy on the 5x5 pixels around (k0, k1)."""
    h = 2
    n0, n1 = win.shape
    if k0 < h or k1 < h or k0 >= n0 - h or k1 >= n1 - h:
        return float(k0), float(k1)
    patch = win[k0 - h:k0 + h + 1, k1 - h:k1 + h + 1].astype(float)
    peak = patch[h, h]
    if not peak > 0:
        return float(k0), float(k1)
    vals = np.log(np.maximum(patch, peak * 1e-3))
    g0, g1 = np.mgrid[-h:h + 1, -h:h + 1]
    x, y = g0.ravel().astype(float), g1.ravel().astype(float)
    wts = np.maximum(patch.ravel(), 0) / peak  # trust the bright pixels most
    A = np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y]) * wts[:, None]
    coef, *_ = np.linalg.lstsq(A, vals.ravel() * wts, rcond=None)
    _, b, c, d, e, f = coef
    det = 4 * d * e - f * f
    if not (d < 0 and e < 0 and det > 0):
        return float(k0), float(k1)
    ox = (-2 * e * b + f * c) / det
    oy = (-2 * d * c + f * b) / det
    if abs(ox) > 1.5 or abs(oy) > 1.5:
        return float(k0), float(k1)
    return k0 + ox, k1 + oy


def _pair_shifts(imgs, px, max_shift_px):
    """Shift (in nm) of image j relative to image i for all pairs, and their contrast."""
    from scipy import fft

    shape = imgs[0].shape
    spectra = [fft.rfft2(im, workers=-1) for im in imgs]
    m = max_shift_px
    out = {}
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            cc = fft.irfft2(spectra[j] * np.conj(spectra[i]), s=shape, workers=-1)
            # wrap to a window of shifts -m..m around zero
            win = np.roll(cc, (m, m), axis=(0, 1))[:2 * m + 1, :2 * m + 1]
            k = np.unravel_index(int(np.argmax(win)), win.shape)
            mean = float(win.mean())
            contrast = float(win[k]) / mean if mean > 0 else 0.0
            p0, p1 = _subpixel_peak(win, int(k[0]), int(k[1]))
            out[(i, j)] = (np.array([(p0 - m) * px, (p1 - m) * px]), contrast)
    return out


def _solve(n: int, eqs: list[tuple[int, int, float]], first: int):
    """Least squares d_j - d_i = r with d_first = 0; return d (n,), residuals, A."""
    A = np.zeros((len(eqs), n))
    r = np.empty(len(eqs))
    for row, (i, j, val) in enumerate(eqs):
        A[row, j] += 1.0
        A[row, i] -= 1.0
        r[row] = val
    keep = np.ones(n, bool)
    keep[first] = False
    sol, *_ = np.linalg.lstsq(A[:, keep], r, rcond=None)
    d = np.zeros(n)
    d[keep] = sol
    return d, r - A @ d, A[:, keep]


def _connected(n: int, pairs) -> bool:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not pairs:
        return n <= 1
    i, j = np.array(list(pairs)).T
    g = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return connected_components(g, directed=False)[0] == 1


def rcc_segments(prep: Prepared, *, pixel_nm: float | None, blur_nm: float | None,
                 max_shift_nm: float, rejection_nm: float | None, min_per_segment: int,
                 min_contrast: float):
    """Per-segment drift ``(S, 3)``, sigma ``(S, 3)``, validity ``(S,)`` and parameters.

    Redundant cross-correlation of every pair of segment images, solved by least
    squares with rejection of inconsistent pairs (``docs/drift.md``).

    Parameters
    ----------
    prep : Prepared
        Coordinates and segments (:func:`~smlmspine.drift._segments.prepare`).
    pixel_nm : float or None
        Histogram pixel in nm; default ``max(precision_xy, 5)`` (grown when an image
        would exceed 4 Mpixel).
    blur_nm : float or None
        Gaussian blur of the images in nm (lateral; z scaled by the precision ratio);
        default the median lateral precision.
    max_shift_nm : float
        Largest shift between two segments searched, in nm.
    rejection_nm : float or None
        Pair residuals above ``max(3 robust sigma, rejection_nm)`` are rejected; default
        half a pixel.
    min_per_segment : int
        Segments with fewer localizations are not estimated (invalid).
    min_contrast : float
        Least peak-over-mean correlation of a pair; when the median is lower the
        estimate is refused.

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
        Fewer than two segments with ``min_per_segment`` localizations, invalid pixel or
        shift, or no structure to correlate.
    """
    D = prep.ndim
    S = prep.n_segments
    valid = prep.seg_counts >= min_per_segment
    if valid.sum() < 2:
        raise ParameterError(
            f"RCC: only {int(valid.sum())} of {S} segments have >= {min_per_segment} "
            "localizations; use longer segments (or method='aim', which needs fewer)")
    vidx = np.flatnonzero(valid)
    n = len(vidx)
    pts = prep.xyz
    lo_all, hi_all = pts.min(axis=0), pts.max(axis=0)
    px = float(pixel_nm) if pixel_nm is not None else max(prep.precision_xy_nm, 5.0)
    if not px > 0:
        raise ParameterError(f"pixel_nm must be > 0, got {pixel_nm}")
    if not max_shift_nm > 0:
        raise ParameterError(f"max_shift_nm must be > 0, got {max_shift_nm}")
    blur_xy = float(blur_nm) if blur_nm is not None else prep.precision_xy_nm
    blur = np.array([blur_xy, blur_xy, blur_xy * prep.precision_z_nm / prep.precision_xy_nm])
    projections = [(0, 1)] + ([(0, 2), (1, 2)] if D == 3 else [])
    eqs: dict[int, list] = {a: [] for a in range(D)}  # axis -> list of (i, j, shift, key)
    contrasts = []
    for proj in projections:
        ext = (hi_all - lo_all)[list(proj)]
        while True:
            m = int(np.ceil(max_shift_nm / px))
            shape = tuple(int(np.ceil(e / px)) + 2 * m + 2 for e in ext)
            if shape[0] * shape[1] <= _MAX_PIXELS:
                break
            px *= 1.25
        lo = lo_all[list(proj)] - (m + 1) * px
        imgs = [_render(pts[prep.seg == s][:, list(proj)], lo, px, shape,
                        blur[list(proj)] / px) for s in vidx]
        for (i, j), (shift, cst) in _pair_shifts(imgs, px, m).items():
            contrasts.append(cst)
            if cst < min_contrast:
                continue
            for a, axis in enumerate(proj):
                eqs[axis].append((i, j, float(shift[a]), (proj, i, j)))
    contrasts = np.asarray(contrasts)
    if np.median(contrasts) < min_contrast:
        raise ParameterError(
            f"RCC: the segment images show no common structure (median correlation peak "
            f"over mean correlation {np.median(contrasts):.1f} < {min_contrast:g}); a drift estimate "
            "would be noise. Use fiducials (method='fiducial') or longer segments.")
    # ---- redundant least squares with rejection of inconsistent pairs
    keys = sorted({e[3] for a in eqs for e in eqs[a]})
    active = set(keys)
    n_total = len(keys)
    while True:
        sol, res_by_key = {}, {}
        for a in range(D):
            rows = [e for e in eqs[a] if e[3] in active]
            d, res, _ = _solve(n, [(i, j, v) for i, j, v, _ in rows], 0)
            sol[a] = d
            for e, rr in zip(rows, res):
                res_by_key[e[3]] = res_by_key.get(e[3], 0.0) + rr * rr
        if not res_by_key:
            break
        kk = list(res_by_key)
        err = np.sqrt(np.array([res_by_key[k] for k in kk]))
        robust = 1.4826 * np.median(np.abs(err))
        thr = max(3.0 * robust, float(rejection_nm) if rejection_nm is not None else 0.5 * px)
        worst = int(np.argmax(err))
        if err[worst] <= thr:
            break
        trial = active - {kk[worst]}
        if not all(_connected(n, [(k[1], k[2]) for k in trial if k[0] == proj])
                   for proj in projections):
            break
        active = trial
    rejected = n_total - len(active)
    if rejected > 0.25 * n_total:
        warnings.warn(f"RCC: {rejected} of {n_total} pair shifts were inconsistent and "
                      "rejected; the drift estimate is less reliable (structure may change "
                      "between segments, or segments are too sparse)", QualityWarning,
                      stacklevel=3)
    out = np.full((S, 3), np.nan)
    sg = np.full((S, 3), np.nan)
    for a in range(D):
        rows = [e for e in eqs[a] if e[3] in active]
        d, res, A = _solve(n, [(i, j, v) for i, j, v, _ in rows], 0)
        dof = max(len(rows) - (n - 1), 1)
        s2 = float(res @ res) / dof
        s2 = max(s2, (0.05 * px) ** 2)  # floor: sub-pixel fits are not better than 1/20 px
        cov = np.linalg.pinv(A.T @ A) * s2
        sd = np.zeros(n)
        sd[1:] = np.sqrt(np.clip(np.diag(cov), 0, None))
        sd[0] = np.sqrt(s2 / max(len(rows) / n, 1.0))
        out[vidx, a] = d
        sg[vidx, a] = sd
    used = {"pixel_nm": float(px), "blur_nm": float(blur_xy), "max_shift_nm": float(max_shift_nm),
            "min_per_segment": int(min_per_segment), "pairs": int(n_total),
            "pairs_rejected": int(rejected),
            "median_peak_contrast": float(np.median(contrasts))}
    return out, sg, valid, used
