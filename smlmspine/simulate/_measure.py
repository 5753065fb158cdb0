"""Spine measurements on a closed mesh, with explicit definitions.

Definitions (also in ``docs/simulate.md``); ``t`` is the distance from the base point
along the unit spine axis, the mesh is the spine cut at the base plane ``t = 0``:

- profile ``A(t)``: area of the cross-section of the mesh with the plane at ``t``
  (perpendicular to the axis); equivalent diameter ``d(t) = 2 sqrt(A(t) / pi)``,
  sampled at ``t_j = (j + 1/2) dt``;
- ``length_nm``: largest ``t`` of the mesh (base to tip along the axis);
- ``head_diameter_nm``: the largest ``d(t)`` over ``t >= length / 4`` (at ``t_head``);
- ``neck_min_diameter_nm``: the smallest ``d(t)`` over ``0 <= t <= t_head``;
- ``neck_length_nm``: the head starts at the last ``t <= t_head`` where ``d(t)`` is at
  most halfway between the neck minimum and the head diameter; the neck runs from the
  base to there (0 when no such ``t``);
- ``head_volume_um3``: volume beyond the head start (integral of ``A``);
- ``volume_um3``: enclosed volume of the mesh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SpineMeasurement", "cross_section_areas", "measure_spine"]


@dataclass(frozen=True, slots=True)
class SpineMeasurement:
    """Measurements of one spine (see the module docstring for the definitions)."""

    length_nm: float
    neck_min_diameter_nm: float
    neck_length_nm: float
    head_diameter_nm: float
    head_volume_um3: float
    volume_um3: float

    def to_dict(self) -> dict:
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


def measure_spine(vertices: np.ndarray, faces: np.ndarray, *, base_nm, axis,
                  step_nm: float = 5.0) -> SpineMeasurement:
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

    Returns
    -------
    SpineMeasurement

    Examples
    --------
    >>> import trimesh
    >>> cyl = trimesh.creation.cylinder(radius=50.0, height=400.0, sections=256)
    >>> m = measure_spine(cyl.vertices, cyl.faces, base_nm=[0, 0, -200], axis=[0, 0, 1])
    >>> round(m.length_nm), round(m.neck_min_diameter_nm)
    (400, 100)
    """
    v = np.asarray(vertices, float)
    fa = np.asarray(faces, np.int64)
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    base = np.asarray(base_nm, float)
    t_v = (v - base) @ a
    length = float(t_v.max())
    n = max(int(np.ceil(length / step_nm)), 4)
    dt = length / n
    ts = (np.arange(n) + 0.5) * dt
    area = cross_section_areas(v, fa, base, a, ts)
    d = 2.0 * np.sqrt(area / np.pi)
    distal = ts >= 0.25 * length
    j_head = int(np.flatnonzero(distal)[np.argmax(d[distal])])
    head_d = float(d[j_head])
    neck_min = float(d[: j_head + 1].min())
    half = 0.5 * (neck_min + head_d)
    below = np.flatnonzero(d[: j_head + 1] <= half)
    t_hs = float(ts[below[-1]] + 0.5 * dt) if below.size else 0.0
    head_vol = float(area[ts >= t_hs].sum() * dt)
    # enclosed volume (divergence theorem)
    tri = v[fa]
    vol = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
    return SpineMeasurement(length_nm=length, neck_min_diameter_nm=neck_min, neck_length_nm=t_hs,
                            head_diameter_nm=head_d, head_volume_um3=head_vol * 1e-9,
                            volume_um3=abs(vol) * 1e-9)
