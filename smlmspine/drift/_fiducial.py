"""Fiducial (bead) drift estimation: detect or take long-lived emitters, average their tracks.

Detection: localizations are binned on a coarse grid (cell ``radius_nm``); a fiducial is
a 3x3-cell block that holds a localization in at least ``min_presence`` of the frames,
about one per frame (not a dense structure), and is a local maximum of that presence.
Each candidate is tracked frame by frame (nearest localization within
``track_radius_nm`` of the running position, updated every few frames), giving one
trajectory per fiducial. Trajectories are aligned on their median offsets and averaged
with weights ``1 / jitter^2`` (jitter from the frame-to-frame differences); a fiducial
whose track disagrees with the others by more than 5 times the expected scatter is
dropped. The per-frame average is smoothed by the same spline as the other methods.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, QualityWarning, SchemaError
from ..schema import coordinates, validate
from ._model import DriftModel, smooth_segments

__all__ = ["estimate_fiducial"]


def _detect(xy, frame_idx, n_frames, cell, min_presence):
    lo = xy.min(axis=0)
    ij = np.floor((xy - lo) / cell).astype(np.int64)
    nx, ny = ij.max(axis=0) + 1
    key = ij[:, 0] * ny + ij[:, 1]
    uniq = np.unique(key * n_frames + frame_idx) // n_frames  # one entry per (cell, frame)
    frames_in = np.bincount(uniq, minlength=nx * ny).reshape(nx, ny).astype(float)
    locs_in = np.bincount(key, minlength=nx * ny).reshape(nx, ny).astype(float)
    from scipy.ndimage import maximum_filter, uniform_filter

    pres = uniform_filter(frames_in, 3, mode="constant") * 9
    dens = uniform_filter(locs_in, 3, mode="constant") * 9
    peak = (pres == maximum_filter(pres, 3, mode="constant")) & (pres >= min_presence * n_frames)
    peak &= dens <= 1.5 * np.maximum(pres, 1)
    cand = np.argwhere(peak)
    order = np.argsort(-pres[peak])
    out = []
    for ci, cj in cand[order]:
        m = (np.abs(ij[:, 0] - ci) <= 1) & (np.abs(ij[:, 1] - cj) <= 1)
        out.append(np.median(xy[m], axis=0))
    return out


def _track_kernel(pts, bounds, n_frames, start, radius, update):
    D = pts.shape[1]
    traj = np.full((n_frames, D), np.nan)
    pos = start.copy()
    buf = np.empty((update, D))
    nbuf = 0
    r2 = radius * radius
    for f in range(n_frames):
        a, b = bounds[f], bounds[f + 1]
        best, bestd = -1, r2
        for i in range(a, b):
            d2 = (pts[i, 0] - pos[0]) ** 2 + (pts[i, 1] - pos[1]) ** 2
            if d2 <= bestd:
                bestd, best = d2, i
        if best >= 0:
            for k in range(D):
                traj[f, k] = pts[best, k]
                buf[nbuf, k] = pts[best, k]
            nbuf += 1
        if nbuf == update:
            for k in range(D):
                pos[k] = np.median(buf[:, k])
            nbuf = 0
    return traj


_TRACK = None


def _track(pts, fidx, n_frames, start, radius, update=5):
    """Per-frame position (n_frames, D) of the emitter starting at ``start`` (NaN if absent).

    Each frame takes the localization nearest (in xy) to the running position within
    ``radius``; the running position is the median of the last ``update`` picks.
    """
    global _TRACK
    if _TRACK is None:
        from numba import njit

        _TRACK = njit(cache=True)(_track_kernel)
    order = np.argsort(fidx, kind="stable")
    pts = np.ascontiguousarray(pts[order], dtype=np.float64)
    bounds = np.searchsorted(fidx[order], np.arange(n_frames + 1)).astype(np.int64)
    return _TRACK(pts, bounds, int(n_frames), np.asarray(start, np.float64), float(radius),
                  int(update))


def estimate_fiducial(table: pa.Table, *, dims=None, smoothing=1.0, segment_frames=None,
                      segment_seconds=None, fiducials=None, radius_nm: float = 200.0,
                      track_radius_nm: float | None = None, min_presence: float = 0.5,
                      max_fiducials: int = 20) -> DriftModel:
    """Drift from fiducials; see the module docs. Returns a per-frame :class:`DriftModel`.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with ``x``, ``y`` (``z``) in nm and ``frame``.
    dims : {2, 3}, optional
        2 estimates x/y only; default 3 when the table has ``z``.
    smoothing : float or None
        Spline smoothing of the per-frame average (see :func:`smooth_segments`).
    segment_frames : int, optional
        Accepted for the common signature and ignored: fiducials are tracked per frame.
    segment_seconds : float, optional
        Refused (:class:`ParameterError`): bin MINFLUX beads into frames first.
    fiducials : (B, 2) or (B, 3) array-like, optional
        Approximate fiducial positions in nm; default: detected.
    radius_nm : float
        Grid cell size of the detection in nm (3x3 cells are searched).
    track_radius_nm : float, optional
        Tracking radius in nm around the running median position; default
        ``max(5 * precision_xy, 50)``.
    min_presence : float
        Fraction of the frames, in (0, 1], a detected fiducial must be present in.
    max_fiducials : int
        Most fiducials detected and tracked.

    Returns
    -------
    DriftModel
        On the ``frame`` axis, every frame sampled; ``params["fiducials_nm"]`` holds the
        fiducial positions used.

    Raises
    ------
    SchemaError
        No ``frame`` column (or the table fails validation).
    ParameterError
        ``segment_seconds`` given, ``min_presence`` out of range, fewer than 10 frames,
        badly shaped ``fiducials``, no fiducial found, or fiducials seen in too few
        frames.

    Warns
    -----
    QualityWarning
        A fiducial moved differently from the others (dropped), or only one fiducial
        could be tracked.
    """
    validate(table)
    if segment_seconds is not None:
        raise ParameterError("method='fiducial' works per frame; segment_seconds does not apply "
                             "(bin MINFLUX beads into frames first)")
    if "frame" not in table.column_names:
        raise SchemaError(f"method='fiducial' needs a 'frame' column; found {table.column_names}")
    if not 0 < min_presence <= 1:
        raise ParameterError(f"min_presence must be in (0, 1], got {min_presence}")
    D = 3 if ("z" in table.column_names and dims != 2) else 2
    pts = coordinates(table, dims=D)
    frame = table.column("frame").to_numpy()
    f0 = int(frame.min())
    fidx = (frame - f0).astype(np.int64)
    n_frames = int(fidx.max()) + 1
    if n_frames < 10:
        raise ParameterError(f"method='fiducial' needs at least 10 frames, got {n_frames}")
    prec = None
    if "precision_xy" in table.column_names:
        v = np.asarray(table.column("precision_xy").to_numpy(zero_copy_only=False), float)
        v = v[np.isfinite(v) & (v > 0)]
        prec = float(np.median(v)) if v.size else None
    tr = float(track_radius_nm) if track_radius_nm is not None else max(5 * (prec or 10.0), 50.0)
    # ---- candidates: given positions or detected
    if fiducials is not None:
        fid = np.atleast_2d(np.asarray(fiducials, float))
        if fid.shape[1] not in (2, 3):
            raise ParameterError(f"'fiducials' must have shape (B, 2 or 3), got {fid.shape}")
        centres = list(fid[:, :2])
    else:
        centres = _detect(pts[:, :2], fidx, n_frames, radius_nm, min_presence)[:max_fiducials]
    reach = 1.5 * radius_nm + 1000.0  # the track may wander this far (drift)
    trajs = []
    for c in centres:
        sub = np.flatnonzero(np.sum((pts[:, :2] - c) ** 2, axis=1) <= reach ** 2)
        if len(sub) < 10:
            continue
        early = sub[fidx[sub] < fidx[sub].min() + max(n_frames // 50, 5)]
        near = early[np.sum((pts[early, :2] - c) ** 2, axis=1) <= (1.5 * radius_nm) ** 2]
        if len(near) == 0:
            continue
        p0 = np.median(pts[near], axis=0)
        traj = _track(pts[sub], fidx[sub], n_frames, p0, tr)
        if np.mean(np.isfinite(traj[:, 0])) < min_presence:
            continue
        # the same fiducial found from two neighbouring cells: keep the first
        dup = False
        for other in trajs:
            both = np.isfinite(traj[:, 0]) & np.isfinite(other[:, 0])
            if both.any() and np.median(np.hypot(*(traj[both, :2] - other[both, :2]).T)) < tr:
                dup = True
                break
        if not dup:
            trajs.append(traj)
    if not trajs:
        raise ParameterError(
            f"no fiducials found: no emitter is present in >= {min_presence:.0%} of the "
            f"{n_frames} frames with about one localization per frame (cell {radius_nm:g} nm). "
            "Give their positions with fiducials=, or use method='aim'/'rcc'")
    T = np.stack(trajs)  # (B, F, D)
    # jitter per fiducial from frame-to-frame differences (drift is smooth)
    jit = np.array([np.nanmedian(np.abs(np.diff(t[:, 0]))) * 1.4826 / np.sqrt(2) for t in T])
    jit = np.maximum(np.nan_to_num(jit, nan=np.inf), 1e-3)
    keep = np.ones(len(T), bool)
    for _ in range(3):
        w = np.where(keep, 1.0 / jit ** 2, 0.0)
        off = np.nanmedian(T, axis=1)                       # (B, D)
        rel = T - off[:, None, :]
        ww = np.where(np.isfinite(rel[..., 0]), w[:, None], 0.0)   # (B, F)
        cons = np.nansum(np.nan_to_num(rel) * ww[..., None], axis=0) / np.maximum(
            ww.sum(axis=0), 1e-300)[:, None]
        dev = np.array([np.sqrt(np.nanmean((rel[b, :, :2] - cons[:, :2]) ** 2)) for b in range(len(T))])
        expected = np.sqrt(jit ** 2 + np.median(jit[keep]) ** 2 / max(keep.sum(), 1))
        bad = keep & (dev > 5 * expected) & (keep.sum() > 2)
        if not bad.any():
            break
        keep &= ~bad
    if keep.sum() < len(T):
        warnings.warn(f"{int((~keep).sum())} of {len(T)} fiducial(s) moved differently from the "
                      "others and were dropped", QualityWarning, stacklevel=3)
    if keep.sum() == 1:
        warnings.warn("only one fiducial: its drift cannot be cross-checked", QualityWarning,
                      stacklevel=3)
    have = ww.sum(axis=0) > 0
    if have.mean() < 0.5:
        raise ParameterError(f"fiducials are visible in only {have.mean():.0%} of the frames")
    sig = 1.0 / np.sqrt(ww[:, have].sum(axis=0))
    frames_have = np.flatnonzero(have) + f0
    seg_d = np.full((int(have.sum()), 3), np.nan)
    seg_s = np.full((int(have.sum()), 3), np.nan)
    seg_d[:, :D] = cons[have]
    for k in range(D):
        seg_s[:, k] = sig * (1.0 if k < 2 else np.nanmedian(np.abs(np.diff(T[keep][:, :, k], axis=1)))
                             / max(np.nanmedian(np.abs(np.diff(T[keep][:, :, 0], axis=1))), 1e-9))
    positions = [[float(v) for v in o] for o in off[keep]]
    params = {"method": "fiducial", "n_fiducials": int(keep.sum()), "fiducials_nm": positions,
              "radius_nm": float(radius_nm), "track_radius_nm": tr,
              "min_presence": float(min_presence), "jitter_nm": [float(j) for j in jit[keep]],
              "ndim": D, "smoothing": smoothing}
    return smooth_segments("frame", frames_have, seg_d, seg_s,
                           np.arange(f0, f0 + n_frames), ndim=D, smoothing=smoothing,
                           method="fiducial", params=params)
