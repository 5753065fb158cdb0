"""Spine measurements on a closed mesh, with explicit definitions.

Definitions (also in ``docs/simulate.md``), the same as those of
:func:`smlmspine.morphology.measure_spine` (``docs/morphology.md``) but evaluated on the
straight design axis, without smoothing; ``t`` is the distance from the base point
along the unit spine axis, the mesh is the spine cut at the base plane ``t = 0``:

- profile ``A(t)``: area of the cross-section of the mesh with the plane at ``t``
  (perpendicular to the axis); equivalent diameter ``d(t) = 2 sqrt(A(t) / pi)``,
  sampled at ``t_j = (j + 1/2) dt``;
- ``length_nm``: largest ``t`` of the mesh (base to tip along the axis);
- ``head_diameter_nm``: the largest ``d(t)`` in the distal half ``t >= length / 2`` (at
  ``t_head``; a flared base is not a head);
- ``neck_min_diameter_nm``: the smallest ``d(t)`` over ``0 <= t <= t_head`` (at ``t_neck``);
- ``neck_length_nm``: the head-neck boundary is the first ``t >= t_neck`` where ``d(t)``
  exceeds ``head_neck_threshold`` (1.2) x the neck minimum (linearly interpolated); the
  neck runs from the base to there (0 when there is no such ``t`` or it is the first
  sample);
- ``head_volume_um3``: volume beyond the boundary (the whole volume without one);
- ``volume_um3``: enclosed volume of the mesh.

For a spine without a distinct head (head/neck ratio below the threshold) the head and
neck fields describe the widest and the narrowest sections, nothing more.

Bent spines (EM-like shapes with a curved or kinked neck) are measured along their true
centreline instead of the straight axis (``centreline_nm``): ``t`` is the arc length along
it, each section is the loop of the mesh, in the plane perpendicular to the centreline
(tangent averaged over +-10 nm), that encloses the centreline point (as in
:func:`smlmspine.morphology.measure_spine`), and the length is the largest arc-length
coordinate (of the closest centreline point) of a mesh vertex.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["TruthSpineMeasurement", "cross_section_areas", "measure_truth_spine"]


@dataclass(frozen=True, slots=True)
class TruthSpineMeasurement:
    """Ground-truth measurements of one simulated spine (see the module docstring).

    Not :class:`smlmspine.morphology.SpineMeasurement`: fewer fields, measured along the
    design axis (or true centreline) without smoothing.

    Attributes
    ----------
    length_nm : float
        Base to the farthest point along the axis, nm.
    neck_min_diameter_nm : float
        Smallest equivalent diameter between the base and the head, nm.
    neck_length_nm : float
        Base to the head-neck boundary, nm (0 without one).
    head_diameter_nm : float
        Largest equivalent diameter in the distal half, nm.
    head_volume_um3 : float
        Volume beyond the head-neck boundary, um^3.
    volume_um3 : float
        Enclosed volume, um^3.
    """

    length_nm: float
    neck_min_diameter_nm: float
    neck_length_nm: float
    head_diameter_nm: float
    head_volume_um3: float
    volume_um3: float

    def to_dict(self) -> dict:
        """The fields as a dict.

        Returns
        -------
        dict
        """
        return asdict(self)


def cross_section_areas(vertices: np.ndarray, faces: np.ndarray, origin, normal,
                        heights) -> np.ndarray:
    """Areas of the cross-sections of a closed, outward-oriented mesh with parallel planes.

    Parameters
    ----------
    vertices : (V, 3) ndarray of float
        nm.
    faces : (F, 3) ndarray of int
    origin, normal : (3,) array-like
        The planes are ``(p - origin) . normal = h`` (``normal`` is normalised).
    heights : (H,) array-like
        nm.

    Returns
    -------
    (H,) ndarray
        Areas in nm^2 (holes subtract; several pieces add up).

    Examples
    --------
    >>> import trimesh
    >>> box = trimesh.creation.box(extents=[2.0, 3.0, 4.0])
    >>> cross_section_areas(box.vertices, box.faces, [0, 0, 0], [0, 0, 1], [0.5]).round(6)
    array([6.])
    """
    v = np.asarray(vertices, float)
    fa = np.asarray(faces, np.int64)
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    hs = np.asarray(heights, float)
    order = np.argsort(hs)
    hs_sorted = hs[order]
    u = np.cross(n, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(n, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(n, u)
    rel = v - np.asarray(origin, float)
    s = rel @ n
    p2 = np.stack([rel @ u, rel @ w], -1)
    S = s[fa]
    tri = v[fa]
    tn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    d3 = np.cross(n, tn)
    d2 = np.stack([d3 @ u, d3 @ w], -1)
    i0 = np.searchsorted(hs_sorted, S.min(1), "left")
    i1 = np.searchsorted(hs_sorted, S.max(1), "left")
    cnt = np.maximum(i1 - i0, 0)
    fid = np.repeat(np.arange(len(fa)), cnt)
    start = np.repeat(i0, cnt)
    offs = np.arange(len(fid)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    hid = start + offs
    h = hs_sorted[hid]
    Sv = S[fid] - h[:, None]
    above = Sv > 0
    P = p2[fa[fid]]
    pts = []
    cross_e = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        c = above[:, a] != above[:, b]
        den = Sv[:, a] - Sv[:, b]
        t = np.where(c, Sv[:, a] / np.where(den == 0, 1.0, den), 0.0)
        pts.append(P[:, a] + t[:, None] * (P[:, b] - P[:, a]))
        cross_e.append(c)
    c01, c12, c20 = cross_e
    p = np.where((~c01)[:, None], pts[1], pts[0])
    q = np.where((~c01)[:, None], pts[2], np.where((~c12)[:, None], pts[2], pts[1]))
    seg = q - p
    sign = np.sign(np.einsum("ij,ij->i", seg, d2[fid]))
    contrib = 0.5 * sign * (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0])
    area_sorted = np.bincount(hid, weights=contrib, minlength=len(hs))
    out = np.empty(len(hs))
    out[order] = area_sorted
    return np.abs(out)


def measure_truth_spine(vertices: np.ndarray, faces: np.ndarray, *, base_nm, axis,
                        step_nm: float = 5.0, head_neck_threshold: float = 1.2,
                        centreline_nm=None) -> TruthSpineMeasurement:
    """Measure a spine mesh (closed, cut at its base plane) with the module's definitions.

    Parameters
    ----------
    vertices : (V, 3) ndarray of float
        nm.
    faces : (F, 3) ndarray of int
        Closed, outward oriented.
    base_nm : (3,) array-like
        Base point on the shaft surface, nm.
    axis : (3,) array-like
        Spine axis pointing from the base to the tip.
    step_nm : float
        Profile sampling step along the axis, nm.
    head_neck_threshold : float
        Head-neck boundary factor (see the module docstring).
    centreline_nm : (K, 3) array-like, optional
        True centreline from the base point (first row) to beyond the tip, nm; the
        sections are then perpendicular to it (bent spines).

    Returns
    -------
    TruthSpineMeasurement

    Raises
    ------
    ValueError
        With ``centreline_nm``: no cross-section of the mesh encloses the centreline.

    Examples
    --------
    >>> import trimesh
    >>> cyl = trimesh.creation.cylinder(radius=50.0, height=400.0, sections=256)
    >>> m = measure_truth_spine(cyl.vertices, cyl.faces, base_nm=[0, 0, -200], axis=[0, 0, 1])
    >>> round(m.length_nm), round(m.neck_min_diameter_nm)
    (400, 100)
    """
    v = np.asarray(vertices, float)
    fa = np.asarray(faces, np.int64)
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    base = np.asarray(base_nm, float)
    if centreline_nm is not None:
        length, ts, dt, area = _profile_along(v, fa, np.asarray(centreline_nm, float), step_nm)
        ok = np.isfinite(area)
        if not ok.any():
            raise ValueError("no cross-section of the spine mesh encloses its centreline")
        # a plane that misses the loop around the centreline (none expected inside the
        # solid) takes its neighbours' area
        area = np.interp(ts, ts[ok], area[ok])
    else:
        t_v = (v - base) @ a
        length = float(t_v.max())
        n = max(int(np.ceil(length / step_nm)), 4)
        dt = length / n
        ts = (np.arange(n) + 0.5) * dt
        area = cross_section_areas(v, fa, base, a, ts)
    n = len(ts)
    d = 2.0 * np.sqrt(area / np.pi)
    # The head is the widest section of the distal half: a flared base is not a head.
    half = n // 2
    j_head = half + int(np.argmax(d[half:]))
    head_d = float(d[j_head])
    j_neck = int(np.argmin(d[: j_head + 1]))
    neck_min = float(d[j_neck])
    thr = head_neck_threshold * neck_min
    over = np.flatnonzero(d[j_neck: j_head + 1] > thr)
    boundary = int(over[0]) + j_neck if over.size else 0
    if boundary == 0:
        t_b = 0.0
        head_vol = float("nan")
    else:
        d0, d1 = d[boundary - 1], d[boundary]
        frac = float(np.clip((thr - d0) / (d1 - d0), 0.0, 1.0)) if d1 > d0 else 1.0
        t_b = float(ts[boundary - 1] + frac * dt)
        head_vol = _volume_beyond(area, ts, dt, t_b, length)
    # enclosed volume (divergence theorem)
    tri = v[fa]
    vol = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
    vol = abs(vol)
    if boundary == 0:
        head_vol = vol
    return TruthSpineMeasurement(length_nm=length, neck_min_diameter_nm=neck_min, neck_length_nm=t_b,
                            head_diameter_nm=head_d, head_volume_um3=head_vol * 1e-9,
                            volume_um3=vol * 1e-9)


def _profile_along(v, fa, line, step_nm):
    """Length, sample arc lengths, step and section areas along a polyline centreline."""
    import trimesh

    from ..morphology._sections import _cross_sections, _mesh_arrays

    seg = np.diff(line, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    cum = np.r_[0.0, np.cumsum(seg_len)]
    # arc-length coordinate of every vertex (its closest centreline point)
    best = np.full(len(v), np.inf)
    s_v = np.zeros(len(v))
    for j in range(len(seg)):
        u = np.clip((v - line[j]) @ seg[j] / max(seg_len[j] ** 2, 1e-12), 0.0, 1.0)
        dd = v - line[j] - u[:, None] * seg[j]
        d2 = np.einsum("ij,ij->i", dd, dd)
        better = d2 < best
        best[better] = d2[better]
        s_v[better] = cum[j] + u[better] * seg_len[j]
    length = float(s_v.max())
    n = max(int(np.ceil(length / step_nm)), 4)
    dt = length / n
    ts = (np.arange(n) + 0.5) * dt

    def at(s):
        s = np.clip(s, 0.0, cum[-1])
        j = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
        return line[j] + ((s - cum[j]) / np.maximum(seg_len[j], 1e-12))[:, None] * seg[j]

    origins = at(ts)
    normals = at(ts + 10.0) - at(ts - 10.0)
    secs = _cross_sections(_mesh_arrays(trimesh.Trimesh(v, fa, process=False)), origins, normals)
    area = np.array([np.nan if sec is None else sec["area_nm2"] for sec in secs])
    return length, ts, dt, area


def _volume_beyond(area, ts, dt, t_b, length):
    """Integral of the section areas from ``t_b`` to the tip (midpoint rule)."""
    lo = ts - 0.5 * dt
    hi = ts + 0.5 * dt
    w = np.clip(np.minimum(hi, length) - np.maximum(lo, t_b), 0.0, None)
    return float((area * w).sum())
