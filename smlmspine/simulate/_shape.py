"""EM-like spine shapes: irregular surfaces, elliptic, bent and beaded necks, lobed heads.

A :class:`SpineShape` is one spine's random realisation of
:class:`smlmspine.simulate.SpineShapeNoise`, drawn before placement (so that the
placement sees the true extent), expressed in the spine's own frame (axis, e1, e2 =
:func:`smlmspine.simulate._geometry._frame_for`). The implicit pieces:

- **neck**: a tube around a centreline ``c(s)``, ``s in [0, 1]``, from the base to the
  neck end: straight along the axis, plus a sideways displacement ``b L s^2`` (a
  quadratic Bezier; tangent along the axis at the base), plus a kink (the centreline
  turns by ``kink_deg`` at ``s = kink_at``). Its cross-section is an ellipse of semi-axes
  ``r(s) sqrt(aspect(s))`` and ``r(s) / sqrt(aspect(s))`` (area ``pi r(s)^2``: the
  equivalent diameter is ``2 r(s)``), turning by ``twist_deg`` along the neck;
  ``r(s) = r0 (1 + bulge (1 + cos(2 pi n s)) / 2)`` has ``n`` minima of radius ``r0`` at
  ``s = (k + 1/2) / n``; the aspect varies between ``(1 + a) / 2`` and ``a``.
- **head**: the design ellipsoid, oriented along the centreline's end tangent, with
  ``lobes`` extra ellipsoids centred on its distal surface (smooth union).
- **surface field**: ``sum_k a cos(k_k . p + phi_k)`` over random wave vectors of length
  ``2 pi / wavelength``, ``a = amplitude sqrt(2 / K)`` (RMS = amplitude), added to the
  solid's implicit function (on a neck its RMS is at most 0.1 x the minor semi-axis).

The implicit functions are distance bounds, not exact distances; the mesher's
Lipschitz bound is raised by the field's gradient bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._implicit import sd_ellipsoid, smooth_min

__all__ = ["NoiseField", "SpineShape", "draw_noise_field", "draw_spine_shape", "sd_neck_tube"]

#: On a neck the surface field's RMS is at most this fraction of the minor semi-axis
#: (its rare 3-sigma excursions then narrow a neck by <= 30 %, never pinch it off).
NECK_FIELD_FRACTION = 0.1

#: Centreline segments of a shaped neck.
N_NECK_SEGMENTS = 16


@dataclass(frozen=True)
class NoiseField:
    """A smooth random field: ``sum_k amp cos(waves_k . p + phases_k)`` (nm)."""

    waves: np.ndarray      # (K, 3), rad / nm
    phases: np.ndarray     # (K,)
    amp: float             # per wave, nm

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return self.amp * np.cos(p @ self.waves.T + self.phases).sum(axis=1)

    @property
    def rms_nm(self) -> float:
        return float(self.amp * np.sqrt(len(self.phases) / 2.0))

    @property
    def gradient_bound(self) -> float:
        """Upper bound of ``|grad f|`` (dimensionless)."""
        return float(self.amp * np.linalg.norm(self.waves, axis=1).sum())


def draw_noise_field(noise, rng) -> NoiseField | None:
    """The surface field of a :class:`SpineShapeNoise` (None when its amplitude is 0)."""
    if noise is None or noise.amplitude_nm <= 0:
        return None
    k = int(noise.n_waves)
    d = rng.normal(size=(k, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    waves = d * (2.0 * np.pi / noise.wavelength_nm)
    phases = rng.uniform(0.0, 2.0 * np.pi, k)
    return NoiseField(waves, phases, float(noise.amplitude_nm * np.sqrt(2.0 / k)))


@dataclass(frozen=True)
class SpineShape:
    """One spine's irregularity, in its local frame (angles in radians)."""

    aspect: float = 1.0
    aspect_phase: float = 0.0
    orient: float = 0.0
    twist: float = 0.0
    bend: float = 0.0           # sideways displacement of the neck end / neck length
    bend_dir: float = 0.0
    kink: float = 0.0
    kink_at: float = 0.5
    kink_dir: float = 0.0
    n_minima: int = 0
    bulge: float = 0.0
    lobes: tuple = ()           # ((polar, azimuth, size factor), ...) relative to the head
    lobe_size: float = 0.5
    field: NoiseField | None = None
    amplitude_nm: float = 0.0

    @property
    def bent(self) -> bool:
        return self.bend > 0 or self.kink > 0

    def radius_factor(self, s: np.ndarray) -> np.ndarray:
        """``r(s) / r0`` along the neck (1 at the minima)."""
        if self.n_minima < 1 or self.bulge <= 0:
            return np.ones_like(s)
        return 1.0 + self.bulge * 0.5 * (1.0 + np.cos(2.0 * np.pi * self.n_minima * s))

    def aspect_at(self, s: np.ndarray) -> np.ndarray:
        if self.aspect <= 1.0:
            return np.ones_like(s)
        return 1.0 + (self.aspect - 1.0) * (0.75 + 0.25 * np.cos(2.0 * np.pi * s + self.aspect_phase))

    def centreline(self, base, frame, length_nm: float, n: int = N_NECK_SEGMENTS):
        """Points ``(n + 1, 3)`` of the neck centreline from ``base`` (s = 0 .. 1)."""
        s = np.linspace(0.0, 1.0, n + 1)
        ax, e1, e2 = frame
        side = np.cos(self.bend_dir) * e1 + np.sin(self.bend_dir) * e2
        pts = base + np.outer(s * length_nm, ax) + np.outer(self.bend * length_nm * s * s, side)
        if self.kink > 0:
            kd = np.cos(self.kink_dir) * e1 + np.sin(self.kink_dir) * e2
            j = s > self.kink_at
            # beyond the kink the remaining straight part turns by `kink` toward kd
            rest = (s[j] - self.kink_at) * length_nm
            turned = np.cos(self.kink) * ax + np.sin(self.kink) * kd
            pts[j] += np.outer(rest, turned - ax)
        return pts

    def lateral_extent(self, length_nm: float) -> float:
        """Largest distance of the neck centreline from the straight axis, nm."""
        return float(length_nm * (self.bend + np.sin(self.kink) * (1.0 - self.kink_at)) + 1e-9)

    def lobe_ellipsoids(self, centre, frame, radii):
        """(centre, frame, semi-axes) of the head lobes."""
        out = []
        u, e1, e2 = frame
        for polar, azim, size in self.lobes:
            d = (np.cos(polar) * u + np.sin(polar) * (np.cos(azim) * e1 + np.sin(azim) * e2))
            # on the head surface along d (ellipsoid radius in that direction)
            q = np.array([d @ u, d @ e1, d @ e2])
            rad = 1.0 / np.sqrt(np.sum((q / radii) ** 2))
            r = radii * self.lobe_size * size
            out.append((centre + 0.75 * rad * d, frame, r))
        return out


def draw_spine_shape(noise, params, rng) -> SpineShape | None:
    """Draw one spine's :class:`SpineShape` from a :class:`SpineShapeNoise` (None: off)."""
    if noise is None or not noise.is_active:
        return None
    bent = params.spine_class != "branched"   # branches are angled already
    lobes = []
    if params.has_head:
        for _ in range(int(noise.head_lobes)):
            lobes.append((rng.uniform(0.3, 1.2), rng.uniform(0.0, 2 * np.pi), rng.uniform(0.7, 1.0)))
    return SpineShape(
        aspect=float(noise.neck_aspect_max), aspect_phase=float(rng.uniform(0.0, 2 * np.pi)),
        orient=float(rng.uniform(0.0, np.pi)),
        twist=float(rng.uniform(-0.5, 0.5) * np.pi) if noise.neck_aspect_max > 1 else 0.0,
        bend=float(rng.uniform(0.0, noise.neck_curvature)) if bent else 0.0,
        bend_dir=float(rng.uniform(0.0, 2 * np.pi)),
        kink=float(np.deg2rad(rng.uniform(0.0, noise.neck_kink_deg))) if bent else 0.0,
        kink_at=float(rng.uniform(0.3, 0.7)), kink_dir=float(rng.uniform(0.0, 2 * np.pi)),
        # a stubby spine has no neck to constrict
        n_minima=int(noise.n_neck_minima) if noise.n_neck_minima > 1 and params.spine_class != "stubby" else 0,
        bulge=float(noise.neck_bulge), lobes=tuple(lobes), lobe_size=float(noise.head_lobe_size),
        amplitude_nm=float(noise.amplitude_nm))


def _transport_frames(pts: np.ndarray, e1: np.ndarray):
    """Unit tangents and parallel-transported normals of a polyline's segments."""
    d = np.diff(pts, axis=0)
    t = d / np.linalg.norm(d, axis=1, keepdims=True)
    n1 = np.empty_like(t)
    cur = e1 - (e1 @ t[0]) * t[0]
    cur /= np.linalg.norm(cur)
    for i in range(len(t)):
        cur = cur - (cur @ t[i]) * t[i]
        cur /= np.linalg.norm(cur)
        n1[i] = cur
    return t, n1, np.cross(t, n1)


def sd_neck_tube(p: np.ndarray, shape: SpineShape, pts: np.ndarray, e1: np.ndarray,
                 r0: float, *, s_nodes: np.ndarray, field_values=None) -> np.ndarray:
    """Implicit function of an elliptic, varying tube around the polyline ``pts``.

    ``s_nodes`` is the neck parameter of each point (0 at the base, 1 at the neck end,
    < 0 inside the shaft); the end caps are half-ellipsoids. ``field_values`` (the surface
    field at ``p``) are added, scaled to an RMS of at most ``NECK_FIELD_FRACTION`` x the
    local minor semi-axis.
    """
    t, n1, n2 = _transport_frames(pts, e1)
    seg = np.diff(pts, axis=0)
    L2 = np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-12)
    m = len(seg)
    best = np.full(len(p), np.inf)
    jbest = np.zeros(len(p), dtype=np.int64)
    ubest = np.zeros(len(p))
    for j in range(m):
        ap = p - pts[j]
        u = np.clip(ap @ seg[j] / L2[j], 0.0, 1.0)
        dd = ap - u[:, None] * seg[j]
        d2 = np.einsum("ij,ij->i", dd, dd)
        better = d2 < best
        best[better] = d2[better]
        jbest[better] = j
        ubest[better] = u[better]
    # neck parameter s of the closest point
    s_nodes = np.asarray(s_nodes, float)
    s = s_nodes[jbest] + ubest * (s_nodes[jbest + 1] - s_nodes[jbest])
    s_neck = np.clip(s, 0.0, 1.0)
    foot = pts[jbest] + ubest[:, None] * seg[jbest]
    q = p - foot
    tj = t[jbest]
    axial = np.einsum("ij,ij->i", q, tj)
    # only beyond the two ends is the offset not perpendicular to the segment
    axial = np.where(((jbest == 0) & (ubest <= 0.0)) | ((jbest == m - 1) & (ubest >= 1.0)),
                     axial, 0.0)
    ang = shape.orient + shape.twist * s_neck
    c, sn = np.cos(ang), np.sin(ang)
    a1 = c[:, None] * n1[jbest] + sn[:, None] * n2[jbest]
    a2 = -sn[:, None] * n1[jbest] + c[:, None] * n2[jbest]
    x = np.einsum("ij,ij->i", q, a1)
    y = np.einsum("ij,ij->i", q, a2)
    rr = r0 * shape.radius_factor(s_neck)
    asp = np.sqrt(shape.aspect_at(s_neck))
    ru, rw = rr * asp, rr / asp
    rc = rw
    k0 = np.sqrt((x / ru) ** 2 + (y / rw) ** 2 + (axial / rc) ** 2)
    k1 = np.sqrt((x / ru ** 2) ** 2 + (y / rw ** 2) ** 2 + (axial / rc ** 2) ** 2)
    f = np.where(k1 > 0, k0 * (k0 - 1.0) / np.maximum(k1, 1e-300), -rw)
    if field_values is not None:
        w = np.minimum(1.0, NECK_FIELD_FRACTION * rw / max(shape.amplitude_nm, 1e-12))
        f = f + w * field_values
    return f


def sd_head(p: np.ndarray, shape: SpineShape, centre, frame, radii) -> np.ndarray:
    """The head ellipsoid with its lobes (smooth union), without the surface field."""
    f = sd_ellipsoid(p, centre, frame, radii)
    for c, fr, r in shape.lobe_ellipsoids(centre, frame, radii):
        f = smooth_min(f, sd_ellipsoid(p, c, fr, r), 0.3 * float(r.min()))
    return f
