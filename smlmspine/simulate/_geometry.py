"""Dendrite geometry: a (curved) shaft with spines, as one implicit solid.

The shaft is a tube of constant radius around a straight line or a circular arc in the
xy-plane (flat end caps). A spine is a neck (capsule) plus a head (ellipsoid) blended
with a smooth minimum, attached perpendicular to the shaft at a base point on its
surface and blended into the shaft with a fillet (smooth union). Meshes come from
:func:`smlmspine.simulate._implicit.mesh_implicit`.

Spine region (used for ``spine_id`` and for the per-spine mesh): the part of the solid
beyond the base plane (the plane through the base point perpendicular to the spine
axis, tangent to the shaft) and within ``cut_radius_nm`` of the spine axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from .._columns import SPINE_CLASSES
from ..errors import ParameterError
from ._implicit import mesh_implicit, sd_capsule, sd_ellipsoid, smooth_min
from ._shape import NECK_FIELD_FRACTION, NoiseField, SpineShape, sd_head, sd_neck_tube

__all__ = ["SpineParameters", "SPINE_CLASSES", "DEFAULT_CLASSES", "CLASS_DEFAULTS", "draw_spine_parameters",
           "Shaft", "PlacedSpine", "DendriteGeometry", "build_geometry", "class_sequence"]

#: Classes drawn by default (branched spines are opt-in: ``classes=(..., "branched")``).
DEFAULT_CLASSES = ("thin", "mushroom", "stubby", "filopodium")
#: Branched spines: angle of each branch to the trunk axis, degrees.
BRANCH_ANGLE_DEG = 35.0

#: Class distributions: parameter -> (median, coefficient of variation) of a log-normal.
#: Sizes from the literature (Harris & Stevens 1989; Harris et al. 1992; Arellano et al.
#: 2007; Tønnesen et al. 2014), chosen so that every class satisfies the published
#: rule criteria it is scored with (Rodriguez et al. 2008, NeuronStudio: a head when the
#: head/neck diameter ratio > 1.1; mushroom when that head is >= 0.35 um, thin below;
#: headless spines thin when length/width > 2.5, stubby otherwise):
#:
#: - thin: neck ~100 nm wide and ~0.8 um long, small head ~0.28 um (< 0.35 um, clipped
#:   to ``_CLASS_BOUNDS``); head/neck ~2.8;
#: - mushroom: neck ~200 nm, head ~0.8 um (volume ~0.27 um^3);
#: - stubby: no constriction and no separate head: a short wide protrusion (capsule of
#:   ~0.5 um width and ~0.3 um + its cap length), length/width ~1.1 < 2.5;
#: - filopodium: long (~1.8 um), thin (~120 nm), headless;
#: - branched: two thin-like heads on a shared trunk (Harris et al. 1992: ~2 %).
CLASS_DEFAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "thin": {"neck_diameter_nm": (100.0, 0.25), "neck_length_nm": (800.0, 0.3),
             "head_diameter_nm": (280.0, 0.1), "head_length_nm": (340.0, 0.15)},
    "mushroom": {"neck_diameter_nm": (200.0, 0.2), "neck_length_nm": (500.0, 0.3),
                 "head_diameter_nm": (800.0, 0.12), "head_length_nm": (800.0, 0.12)},
    "stubby": {"neck_diameter_nm": (500.0, 0.15), "neck_length_nm": (300.0, 0.3),
               "head_diameter_nm": (0.0, 0.0), "head_length_nm": (0.0, 0.0)},
    "filopodium": {"neck_diameter_nm": (120.0, 0.2), "neck_length_nm": (1800.0, 0.2),
                   "head_diameter_nm": (0.0, 0.0), "head_length_nm": (0.0, 0.0)},
    "branched": {"neck_diameter_nm": (120.0, 0.2), "neck_length_nm": (900.0, 0.2),
                 "head_diameter_nm": (450.0, 0.2), "head_length_nm": (450.0, 0.2)},
}
_BOUNDS = {"neck_diameter_nm": (50.0, 700.0), "neck_length_nm": (0.0, 2500.0),
           "head_diameter_nm": (200.0, 1500.0), "head_length_nm": (200.0, 1500.0)}
#: Per-class bounds that keep a drawn spine inside its class's rule criteria.
_CLASS_BOUNDS = {("thin", "head_diameter_nm"): (200.0, 330.0),
                 ("thin", "neck_diameter_nm"): (50.0, 180.0),
                 ("mushroom", "head_diameter_nm"): (450.0, 1500.0),
                 ("mushroom", "neck_diameter_nm"): (80.0, 400.0),
                 ("stubby", "neck_diameter_nm"): (350.0, 700.0),
                 ("stubby", "neck_length_nm"): (0.0, 600.0),
                 ("filopodium", "neck_diameter_nm"): (60.0, 200.0),
                 ("filopodium", "neck_length_nm"): (1200.0, 2500.0),
                 ("branched", "neck_diameter_nm"): (60.0, 200.0)}


@dataclass(frozen=True, slots=True)
class SpineParameters:
    """Design parameters of one spine (the measured values are in the truth table).

    Parameters
    ----------
    spine_class : {"thin", "mushroom", "stubby", "filopodium", "branched"}
    neck_diameter_nm, neck_length_nm : float
        Neck (capsule) diameter and length from the shaft surface to the head, nm. A
        branched spine's trunk is half of the neck length; two branches of the other
        half diverge at +-35 degrees along the shaft, each ending in a head.
    head_diameter_nm, head_length_nm : float
        Head ellipsoid: diameter across and extent along the spine axis, nm;
        0 for a headless spine (filopodium).
    position_nm : float, optional
        Arc length along the shaft of the base point; random if omitted.
    azimuth_deg : float, optional
        Direction around the shaft: 0 = in-plane normal, 90 = +z, 180 = other side.
        Random (within ``max_elevation_deg`` of the xy-plane) if omitted.

    Raises
    ------
    ParameterError
        An unknown class, a neck diameter <= 0, or a negative length or head size.
    """

    spine_class: str
    neck_diameter_nm: float
    neck_length_nm: float
    head_diameter_nm: float
    head_length_nm: float
    position_nm: float | None = None
    azimuth_deg: float | None = None

    def __post_init__(self):
        if self.spine_class not in SPINE_CLASSES:
            raise ParameterError(f"spine_class must be one of {SPINE_CLASSES}, "
                                 f"got {self.spine_class!r}")
        if not self.neck_diameter_nm > 0:
            raise ParameterError(f"neck_diameter_nm must be > 0, got {self.neck_diameter_nm}")
        if self.neck_length_nm < 0 or self.head_diameter_nm < 0 or self.head_length_nm < 0:
            raise ParameterError("neck_length_nm, head_diameter_nm and head_length_nm must be >= 0")

    @property
    def has_head(self) -> bool:
        """Whether the spine has a head: a head wider than the neck and of positive length."""
        return self.head_diameter_nm > self.neck_diameter_nm and self.head_length_nm > 0


def draw_spine_parameters(spine_class: str, *, rng=None, **overrides) -> SpineParameters:
    """Draw one spine's parameters from its class distribution (:data:`CLASS_DEFAULTS`).

    Each dimension with a positive median is log-normal with that median and
    coefficient of variation, clipped to the class's bounds (which keep the spine
    inside its class's rule criteria); a zero median gives 0 (no head). A spine with a
    head gets a neck at most 0.85 times the head diameter. Overrides are applied last.

    Parameters
    ----------
    spine_class : {"thin", "mushroom", "stubby", "filopodium", "branched"}
        The class whose distribution is drawn from.
    rng : int or numpy.random.Generator, optional
        Seed or generator.
    **overrides
        Fields of :class:`SpineParameters` to set instead of drawing (e.g.
        ``neck_length_nm=800.0``, ``position_nm=1500.0``, ``azimuth_deg=90.0``).

    Returns
    -------
    SpineParameters
        ``position_nm`` and ``azimuth_deg`` are None (chosen when the dendrite is built)
        unless given as overrides.

    Raises
    ------
    ParameterError
        An unknown spine class or invalid overridden values.
    TypeError
        An override that is not a field of :class:`SpineParameters`.

    Examples
    --------
    >>> p = draw_spine_parameters("mushroom", rng=0)
    >>> 150 < p.neck_diameter_nm < 300 and p.head_diameter_nm > 500
    True
    """
    if spine_class not in CLASS_DEFAULTS:
        raise ParameterError(f"unknown spine class {spine_class!r}; choose from {SPINE_CLASSES}")
    rng = np.random.default_rng(rng)
    values = {}
    for name, (median, cv) in CLASS_DEFAULTS[spine_class].items():
        if median <= 0:
            values[name] = 0.0
            continue
        v = median * np.exp(rng.normal(0.0, np.sqrt(np.log1p(cv * cv))))
        lo, hi = _CLASS_BOUNDS.get((spine_class, name), _BOUNDS[name])
        values[name] = float(np.clip(v, lo, hi))
    if values["head_diameter_nm"] > 0:
        values["neck_diameter_nm"] = min(values["neck_diameter_nm"], 0.85 * values["head_diameter_nm"])
    values.update(overrides)
    return SpineParameters(spine_class=spine_class, **values)


@dataclass(frozen=True)
class Shaft:
    """Tube of radius ``radius_nm`` around a centreline of length ``length_nm``.

    The centreline starts at the origin heading +x and bends toward +y with
    ``curvature_per_nm`` (0 = straight); z = 0 is its plane.
    """

    radius_nm: float
    length_nm: float
    curvature_per_nm: float = 0.0

    def frame(self, s):
        """Centre point, tangent and in-plane normal (toward +y side) at arc lengths ``s``."""
        s = np.atleast_1d(np.asarray(s, float))
        k = self.curvature_per_nm
        if k == 0:
            c = np.stack([s, np.zeros_like(s), np.zeros_like(s)], -1)
            t = np.tile([1.0, 0.0, 0.0], (len(s), 1))
        else:
            a = k * s
            c = np.stack([np.sin(a) / k, (1 - np.cos(a)) / k, np.zeros_like(s)], -1)
            t = np.stack([np.cos(a), np.sin(a), np.zeros_like(s)], -1)
        n = np.stack([-t[:, 1], t[:, 0], np.zeros_like(s)], -1)
        return c, t, n

    def sdf(self, p: np.ndarray) -> np.ndarray:
        k = self.curvature_per_nm
        if k == 0:
            tube = np.sqrt(p[:, 1] ** 2 + p[:, 2] ** 2) - self.radius_nm
        else:
            rc = 1.0 / k
            dp = np.sqrt(p[:, 0] ** 2 + (p[:, 1] - rc) ** 2) - abs(rc)
            tube = np.sqrt(dp ** 2 + p[:, 2] ** 2) - self.radius_nm
        (c0, c1), (t0, t1) = self.frame([0.0, self.length_nm])[:2]
        g0 = -((p - c0) @ t0)
        g1 = (p - c1) @ t1
        return np.maximum(tube, np.maximum(g0, g1))


@dataclass(frozen=True)
class PlacedSpine:
    """A spine placed on the shaft: base point, axis and its implicit pieces (nm)."""

    spine_id: int
    params: SpineParameters
    base: np.ndarray
    axis: np.ndarray
    fillet_nm: float
    position_nm: float
    azimuth_deg: float
    branch_dir: np.ndarray = field(default_factory=lambda: np.zeros(3))
    shape: SpineShape | None = None

    @property
    def neck_radius_nm(self) -> float:
        return 0.5 * self.params.neck_diameter_nm

    @property
    def is_branched(self) -> bool:
        return self.params.spine_class == "branched"

    def _branches(self):
        """(start, end, direction) of the neck segments beyond the trunk."""
        nl = self.params.neck_length_nm
        if self.shape is not None and self.shape.bent and not self.is_branched:
            pts = self.neck_points()
            u = pts[-1] - pts[-2]
            return [(self.base, pts[-1], u / np.linalg.norm(u))]
        if not self.is_branched:
            return [(self.base, self.base + self.axis * nl, self.axis)]
        j = self.base + self.axis * (0.5 * nl)
        a = np.deg2rad(BRANCH_ANGLE_DEG)
        out = []
        for sign in (1.0, -1.0):
            u = np.cos(a) * self.axis + sign * np.sin(a) * self.branch_dir
            out.append((j, j + u * (0.5 * nl), u))
        return out

    def heads(self):
        """(centre, frame (3, 3), semi-axes (3,)) of each head ellipsoid (none without)."""
        p = self.params
        if not p.has_head:
            return []
        radii = np.array([0.5 * p.head_length_nm, 0.5 * p.head_diameter_nm,
                          0.5 * p.head_diameter_nm])
        return [(end + u * (0.45 * p.head_length_nm), _frame_for(u), radii)
                for _, end, u in self._branches()]

    def neck_points(self) -> np.ndarray:
        """Neck centreline from the base to the neck end, ``(K, 3)`` nm (shaped spines)."""
        nl = max(self.params.neck_length_nm, 1.0)
        if self.shape is None:
            return self.base + np.outer(np.linspace(0.0, 1.0, 2) * nl, self.axis)
        return self.shape.centreline(self.base, self._frame(), nl)

    @property
    def head_center(self) -> np.ndarray:
        return self.heads()[0][0]

    @property
    def tip_distance_nm(self) -> float:
        """Design distance base -> tip along the axis (before blending)."""
        p = self.params
        reach = 0.95 * p.head_length_nm if p.has_head else self.neck_radius_nm
        if self.shape is not None:
            reach += self._shape_margin()
        return max(float((end + u * reach - self.base) @ self.axis) for _, end, u in self._branches())

    def _shape_margin(self) -> float:
        """How far a shaped spine may reach beyond the smooth one's outline, nm."""
        sh, p = self.shape, self.params
        m = 4.0 * sh.amplitude_nm
        if sh.lobes and p.has_head:
            # lobes are centred at 0.75 of the head radius (semi-axes <= lobe_size x radius)
            m += max(0.0, 0.75 + sh.lobe_size - 1.0) * 0.5 * max(p.head_diameter_nm, p.head_length_nm)
        return m

    def skeleton(self) -> np.ndarray:
        """Segments ``(S, 2, 3)`` of a shaped spine's centreline tree, base to tips, nm."""
        p = self.params
        reach = 0.95 * p.head_length_nm if p.has_head else self.neck_radius_nm
        if self.is_branched:
            j = self.base + self.axis * (0.5 * p.neck_length_nm)
            segs = [(self.base, j)]
            for a, end, u in self._branches():
                segs += [(a, end), (end, end + u * reach)]
            return np.array(segs)
        pts = self.neck_points()
        u = pts[-1] - pts[-2]
        chain = np.vstack([pts, pts[-1] + u / np.linalg.norm(u) * reach])
        return np.stack([chain[:-1], chain[1:]], axis=1)

    @property
    def skeleton_radius_nm(self) -> float:
        """Distance from :meth:`skeleton` that holds a shaped spine (incl. fillet), nm."""
        p, sh = self.params, self.shape
        head_r = 0.5 * max(p.head_diameter_nm, p.head_length_nm) if p.has_head else 0.0
        neck_r = self.neck_radius_nm * (1.0 + (sh.bulge if sh.n_minima else 0.0)) * np.sqrt(sh.aspect)
        return max(head_r, neck_r + self.fillet_nm) + self._shape_margin() + 60.0

    def skeleton_distance(self, p: np.ndarray) -> np.ndarray:
        """Distance of points to :meth:`skeleton`, nm."""
        best = np.full(len(p), np.inf)
        for a, b in self.skeleton():
            ab = b - a
            t = np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
            d = p - a - t[:, None] * ab
            best = np.minimum(best, np.einsum("ij,ij->i", d, d))
        return np.sqrt(best)

    @property
    def cut_radius_nm(self) -> float:
        """Radius around the axis that holds the whole spine (incl. fillet)."""
        p = self.params
        r = max(0.5 * p.head_diameter_nm if p.has_head else 0.0, self.neck_radius_nm + self.fillet_nm)
        if self.shape is not None:
            # the skeleton's largest distance from the straight axis + its radius
            q = self.skeleton().reshape(-1, 3) - self.base
            t = q @ self.axis
            lateral = np.sqrt(np.maximum(np.einsum("ij,ij->i", q, q) - t * t, 0.0)).max()
            return float(lateral + self.skeleton_radius_nm)
        if self.is_branched:
            lateral = np.sin(np.deg2rad(BRANCH_ANGLE_DEG)) * (0.5 * p.neck_length_nm + 0.95 * p.head_length_nm)
            r = max(r, lateral + 0.5 * p.head_diameter_nm)
        return r + 60.0

    def _frame(self) -> np.ndarray:
        return _frame_for(self.axis)

    def sdf(self, p: np.ndarray, *, inside_shaft_nm: float) -> np.ndarray:
        """The spine alone (necks + heads), starting ``inside_shaft_nm`` below the base."""
        if self.shape is not None:
            return self._sdf_shaped(p, inside_shaft_nm=inside_shaft_nm)
        prm = self.params
        r = self.neck_radius_nm
        k = 0.5 * r
        start = self.base - self.axis * inside_shaft_nm
        if self.is_branched:
            j = self.base + self.axis * (0.5 * prm.neck_length_nm)
            f = sd_capsule(p, start, j, r)
            for a, b, _ in self._branches():
                f = smooth_min(f, sd_capsule(p, a, b, r), k)
        else:
            f = sd_capsule(p, start, self.base + self.axis * prm.neck_length_nm, r)
        for c, frame, radii in self.heads():
            # |p - c| - r_max bounds the head's value from below; where that bound
            # already exceeds f + k the smooth minimum is f, so the (costly) ellipsoid
            # is only evaluated elsewhere. The result is identical.
            bound = np.sqrt(np.einsum("ij,ij->i", p - c, p - c)) - radii.max()
            near = np.flatnonzero(bound < f + k)
            head = bound
            if near.size:
                head[near] = sd_ellipsoid(p[near], c, frame, radii)
            f = smooth_min(f, head, k)
        return f

    def _sdf_shaped(self, p: np.ndarray, *, inside_shaft_nm: float) -> np.ndarray:
        """:meth:`sdf` of an EM-like spine (see :mod:`smlmspine.simulate._shape`)."""
        prm, sh = self.params, self.shape
        r = self.neck_radius_nm
        k = 0.5 * r
        fv = sh.field(p) if sh.field is not None else None
        start = self.base - self.axis * inside_shaft_nm
        if self.is_branched:
            j = self.base + self.axis * (0.5 * prm.neck_length_nm)
            f = sd_capsule(p, start, j, r)
            for a, b, _ in self._branches():
                f = smooth_min(f, sd_capsule(p, a, b, r), k)
            if fv is not None:
                f = f + min(1.0, NECK_FIELD_FRACTION * r / max(sh.amplitude_nm, 1e-12)) * fv
        else:
            nl = max(prm.neck_length_nm, 1.0)
            neck = self.neck_points()
            pts = np.vstack([start, neck])
            s_nodes = np.r_[-inside_shaft_nm / nl, np.linspace(0.0, 1.0, len(neck))]
            f = sd_neck_tube(p, sh, pts, self._frame()[1], r, s_nodes=s_nodes, field_values=fv)
        for c, frame, radii in self.heads():
            head = sd_head(p, sh, c, frame, radii)
            if fv is not None:
                head = head + fv
            f = smooth_min(f, head, k)
        return f

    def region(self, p: np.ndarray, *, margin_nm: float = 0.0) -> np.ndarray:
        """Mask of points in this spine's region (beyond the base plane, near the axis)."""
        s0, e0, r0 = self.segment()
        out = np.zeros(len(p), dtype=bool)
        box = _in_box(p, np.minimum(s0, e0) - r0 - margin_nm, np.maximum(s0, e0) + r0 + margin_nm)
        d = p[box] - self.base
        t = d @ self.axis
        if self.shape is not None:
            near = self.skeleton_distance(p[box]) < self.skeleton_radius_nm + margin_nm
            out[box[(t > 0) & near]] = True
            return out
        radial = np.sqrt(np.maximum(np.einsum("ij,ij->i", d, d) - t * t, 0.0))
        out[box[(t > 0) & (radial < self.cut_radius_nm + margin_nm)]] = True
        return out

    def segment(self):
        """Bounding capsule (start, end, radius) for overlap checks."""
        return self.base, self.base + self.axis * (self.tip_distance_nm + 20.0), self.cut_radius_nm


@dataclass(frozen=True)
class DendriteGeometry:
    """Shaft + placed spines, in local coordinates (add ``offset_nm`` for output)."""

    shaft: Shaft
    spines: tuple[PlacedSpine, ...]
    fillet_nm: float
    offset_nm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    #: "shaft" (spines on the shaft) or "spines" (spines cut at the base, no shaft)
    layout: str = "shaft"
    #: surface field of EM-like shapes (also on the shaft), or None
    field: NoiseField | None = None

    @property
    def inside_shaft_nm(self) -> float:
        if self.layout == "spines":
            return 100.0
        return min(0.5 * self.shaft.radius_nm, 150.0)

    @property
    def lipschitz(self) -> float:
        """Bound on |grad sdf| for the mesher."""
        # half the field's worst-case gradient (reached only when all its waves align);
        # a band too narrow leaves the mesh open, and the mesher then retries wider
        return 1.5 + (0.5 * self.field.gradient_bound if self.field is not None else 0.0)

    def shaft_sdf(self, p: np.ndarray) -> np.ndarray:
        """The shaft (with the surface field), or "far outside" without a shaft."""
        if self.layout == "spines":
            return np.full(len(p), 1e9)
        f = self.shaft.sdf(p)
        if self.field is not None:
            f = f + self.field(p)
        return f

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Implicit function of the whole fragment (negative inside), nm."""
        if self.layout == "spines":
            f = np.full(len(p), 1e9)
            for k, sp in enumerate(self.spines):
                start, end, r = sp.segment()
                near = _near_segment(p, start - sp.axis * self.inside_shaft_nm, end, r + 100.0)
                if near.any():
                    f[near] = np.minimum(f[near], self.spine_sdf(k, p[near]))
            return f
        f = self.shaft_sdf(p) if self.field is not None else self.shaft.sdf(p)
        for sp in self.spines:
            start, end, r = sp.segment()
            near = _near_segment(p, start - sp.axis * self.inside_shaft_nm, end,
                                 r + 2 * self.fillet_nm + 100.0)
            if near.any():
                q = p[near]
                f[near] = smooth_min(f[near], sp.sdf(q, inside_shaft_nm=self.inside_shaft_nm),
                                     self.fillet_nm)
        return f

    def spine_sdf(self, k: int, p: np.ndarray) -> np.ndarray:
        """Implicit function of spine ``k``'s region: the fragment cut at the base plane."""
        sp = self.spines[k]
        if self.layout == "spines":
            f = sp.sdf(p, inside_shaft_nm=self.inside_shaft_nm)
        else:
            f = smooth_min(self.shaft.sdf(p) if self.field is None else self.shaft_sdf(p),
                           sp.sdf(p, inside_shaft_nm=self.inside_shaft_nm), self.fillet_nm)
        d = p - sp.base
        t = d @ sp.axis
        if sp.shape is not None:
            return np.maximum(f, np.maximum(-t, sp.skeleton_distance(p) - sp.skeleton_radius_nm))
        radial = np.sqrt(np.maximum(np.einsum("ij,ij->i", d, d) - t * t, 0.0))
        return np.maximum(f, np.maximum(-t, radial - sp.cut_radius_nm))

    def spine_ids(self, p: np.ndarray) -> np.ndarray:
        """Spine id of each point (``-1`` = shaft), by the spine regions."""
        out = np.full(len(p), -1, dtype=np.int64)
        for sp in self.spines:
            out[sp.region(p)] = sp.spine_id
        return out

    def bounds(self, pad_nm: float = 0.0):
        """Local bounding box (lo, hi) of the solid, padded."""
        s = np.linspace(0.0, self.shaft.length_nm, 64)
        c = self.shaft.frame(s)[0]
        r = self.shaft.radius_nm
        pts = [c - r, c + r] if self.layout == "shaft" else []
        for sp in self.spines:
            start, end, rr = sp.segment()
            pts += [np.array([end - rr, end + rr, start - rr, start + rr])]
        pts = np.concatenate([np.atleast_2d(x) for x in pts])
        return pts.min(0) - pad_nm, pts.max(0) + pad_nm

    def mesh(self, *, step_nm: float):
        """Watertight mesh of the whole fragment (local coordinates)."""
        lo, hi = self.bounds(pad_nm=2 * step_nm + self.fillet_nm)
        if self.field is None:
            return mesh_implicit(self.sdf, lo, hi, step_nm=step_nm)
        return mesh_implicit(self.sdf, lo, hi, step_nm=step_nm, lipschitz=self.lipschitz)

    def spine_mesh(self, k: int, *, step_nm: float):
        """Watertight mesh of spine ``k``'s region (closed by a flat cap at the base)."""
        sp = self.spines[k]
        start, end, r = sp.segment()
        lo = np.minimum(start, end) - r - 2 * step_nm
        hi = np.maximum(start, end) + r + 2 * step_nm
        lo = np.minimum(lo, sp.base - 2 * step_nm - 40.0)
        if self.field is None and sp.shape is None:
            return mesh_implicit(lambda p: self.spine_sdf(k, p), lo, hi, step_nm=step_nm)
        return mesh_implicit(lambda p: self.spine_sdf(k, p), lo, hi, step_nm=step_nm,
                             lipschitz=self.lipschitz)


def _frame_for(a: np.ndarray) -> np.ndarray:
    """Rows: ``a`` and two unit vectors completing a right-handed frame."""
    u = np.cross(a, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(a, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    return np.stack([a, u, np.cross(a, u)])


def _in_box(p, lo, hi):
    """Indices of the points inside the axis-aligned box [lo, hi]."""
    idx = np.flatnonzero((p[:, 0] >= lo[0]) & (p[:, 0] <= hi[0]))
    q = p[idx]
    return idx[(q[:, 1] >= lo[1]) & (q[:, 1] <= hi[1]) & (q[:, 2] >= lo[2]) & (q[:, 2] <= hi[2])]


def _near_segment(p, a, b, radius):
    lo = np.minimum(a, b) - radius
    hi = np.maximum(a, b) + radius
    box = _in_box(p, lo, hi)
    out = np.zeros(len(p), dtype=bool)
    q = p[box]
    ab = b - a
    t = np.clip((q - a) @ ab / max(float(ab @ ab), 1e-300), 0.0, 1.0)
    d = q - a - t[:, None] * ab
    out[box[np.einsum("ij,ij->i", d, d) < radius * radius]] = True
    return out


def _segment_distance(a0, a1, b0, b1) -> float:
    s = np.linspace(0.0, 1.0, 25)
    pa = a0 + s[:, None] * (a1 - a0)
    pb = b0 + s[:, None] * (b1 - b0)
    return float(np.min(np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=-1)))


def build_geometry(params: list[SpineParameters], *, shaft_radius_nm: float, shaft_length_nm: float,
                   curvature_per_um: float = 0.0, fillet_nm: float = 120.0,
                   max_elevation_deg: float = 45.0, min_gap_nm: float = 50.0,
                   rng=None, max_tries: int = 300, max_restarts: int = 5,
                   shapes=None, field=None, layout: str = "shaft") -> DendriteGeometry:
    """Place spines on a shaft without overlap (rejection sampling), or in a row.

    ``shapes`` (one :class:`SpineShape` or None per spine) and ``field`` make EM-like
    spines; ``layout="spines"`` lays the spines out on a row along x, ``min_gap_nm``
    apart, with no shaft (each cut flat at its base plane).
    """
    rng = np.random.default_rng(rng)
    if shapes is not None:
        params = [_Shaped(p, sh) for p, sh in zip(params, shapes)]
    if layout == "spines":
        return _place_row(params, fillet_nm=fillet_nm, max_elevation_deg=max_elevation_deg,
                          min_gap_nm=min_gap_nm, field=field, rng=rng)
    if shaft_radius_nm <= 0 or shaft_length_nm <= 0:
        raise ParameterError("shaft_radius_nm and shaft_length_nm must be > 0")
    kappa = curvature_per_um / 1000.0
    if abs(kappa) * shaft_length_nm > np.pi / 2:
        raise ParameterError(f"curvature_per_um={curvature_per_um} bends the {shaft_length_nm} nm "
                             "shaft by more than 90 degrees; use a smaller curvature")
    if kappa != 0 and abs(1 / kappa) < 4 * shaft_radius_nm:
        raise ParameterError("curvature radius must be at least 4 shaft radii")
    shaft = Shaft(float(shaft_radius_nm), float(shaft_length_nm), float(kappa))
    last_error = None
    for _attempt in range(max_restarts):
        try:
            placed = _place_all(shaft, params, fillet_nm, max_elevation_deg, min_gap_nm, rng,
                                max_tries, field)
        except _PackingError as exc:
            last_error = exc
            continue
        placed.sort(key=lambda sp: sp.position_nm)
        placed = [replace(sp, spine_id=i) for i, sp in enumerate(placed)]
        return DendriteGeometry(shaft, tuple(placed), float(fillet_nm), field=field)
    raise ParameterError(
        f"could not place {len(params)} spines on a {shaft_length_nm / 1000:.1f} um "
        "shaft without overlap; use fewer spines (n_spines / spine_density_per_um), "
        "a longer shaft (shaft_length_nm) or a larger max_elevation_deg") from last_error


class _PackingError(Exception):
    pass


class _Shaped:
    """A SpineParameters with the spine's shape attached (for the placement only)."""

    def __init__(self, params, shape):
        self.params, self.shape = params, shape

    def __getattr__(self, name):
        return getattr(self.params, name)


def _unwrap(prm):
    return (prm.params, prm.shape) if isinstance(prm, _Shaped) else (prm, None)


def _place_row(params, *, fillet_nm, max_elevation_deg, min_gap_nm, field, rng):
    """Spine-only layout: bases on the x axis, axes in the yz-plane around +y."""
    placed = []
    x_prev, r_prev = 0.0, None
    for sid, prm in enumerate(params):
        prm, shape = _unwrap(prm)
        if shape is not None and field is not None:
            shape = replace(shape, field=field)
        el = np.deg2rad(float(prm.azimuth_deg) if prm.azimuth_deg is not None
                        else rng.uniform(-max_elevation_deg, max_elevation_deg))
        axis = np.array([0.0, np.cos(el), np.sin(el)])
        sp = PlacedSpine(sid, prm, np.zeros(3), axis, float(fillet_nm), 0.0, float(np.rad2deg(el)),
                         np.array([1.0, 0.0, 0.0]), shape)
        r = sp.cut_radius_nm
        x = 0.0 if r_prev is None else x_prev + r_prev + r + min_gap_nm
        placed.append(replace(sp, base=np.array([x, 0.0, 0.0]), position_nm=float(x)))
        x_prev, r_prev = x, r
    shaft = Shaft(1.0, max(x_prev, 1.0))
    return DendriteGeometry(shaft, tuple(placed), float(fillet_nm), layout="spines", field=field)


def _place_all(shaft, params, fillet_nm, max_elevation_deg, min_gap_nm, rng, max_tries, field=None):
    shaft_length_nm = shaft.length_nm
    # biggest spines first (easier packing); ids follow the position along the shaft
    order = sorted(range(len(params)), key=lambda i: -_size(params[i], fillet_nm))
    placed: list[PlacedSpine] = []
    for sid in order:
        prm = params[sid]
        for _ in range(max_tries):
            cand = _place(shaft, sid, prm, fillet_nm, max_elevation_deg, rng, field)
            s0, e0, r0 = cand.segment()
            end_margin = r0 + 100.0
            if not end_margin <= cand.position_nm <= shaft_length_nm - end_margin:
                if prm.position_nm is not None:
                    raise ParameterError(f"spine {sid}: position_nm={prm.position_nm} is too close "
                                         f"to the shaft ends (need {end_margin:.0f} nm)")
                continue
            ok = True
            for other in placed:
                s1, e1, r1 = other.segment()
                if cand.shape is not None or other.shape is not None:
                    if _bounding_gap(cand, s0, e0, r0, other, s1, e1, r1) < min_gap_nm:
                        ok = False
                        break
                elif _segment_distance(s0, e0, s1, e1) < r0 + r1 + min_gap_nm:
                    ok = False
                    break
            if ok:
                placed.append(cand)
                break
            if prm.position_nm is not None and prm.azimuth_deg is not None:
                raise ParameterError(f"spine {sid} at position_nm={prm.position_nm}, "
                                     f"azimuth_deg={prm.azimuth_deg} overlaps another spine")
        else:
            raise _PackingError(f"spine {sid} found no free place")
    return placed


def _bounding_gap(a, s0, e0, r0, b, s1, e1, r1) -> float:
    """Gap between the bounding volumes of two spines (skeletons for shaped ones)."""
    def pieces(sp, s, e, r):
        if sp.shape is None:
            return np.array([[s, e]]), r
        return sp.skeleton(), sp.skeleton_radius_nm

    sa, ra = pieces(a, s0, e0, r0)
    sb, rb = pieces(b, s1, e1, r1)
    pa, pb = _sample_segments(sa), _sample_segments(sb)
    # coarse test first: bounding spheres of the two point sets
    ca, cb = pa.mean(0), pb.mean(0)
    far = (np.linalg.norm(ca - cb) - np.linalg.norm(pa - ca, axis=1).max()
           - np.linalg.norm(pb - cb, axis=1).max())
    if far > ra + rb + 1000.0:
        return far - ra - rb
    d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.min())) - ra - rb - _SAMPLE_NM / 2


#: Spacing of the points that stand for skeleton segments in the overlap test, nm.
_SAMPLE_NM = 20.0


def _sample_segments(segs) -> np.ndarray:
    """Points every <= ``_SAMPLE_NM`` along segments ``(S, 2, 3)``."""
    out = []
    for a, b in segs:
        n = max(int(np.ceil(np.linalg.norm(b - a) / _SAMPLE_NM)), 1)
        out.append(a + np.linspace(0.0, 1.0, n + 1)[:, None] * (b - a))
    return np.concatenate(out)


def _size(prm: SpineParameters, fillet_nm: float) -> float:
    r = max(0.5 * prm.head_diameter_nm if prm.has_head else 0.0,
            0.5 * prm.neck_diameter_nm + fillet_nm)
    return r * (prm.neck_length_nm + prm.head_length_nm + 1.0)


def _place(shaft, sid, prm, fillet_nm, max_elev_deg, rng, field=None):
    prm, shape = _unwrap(prm)
    if shape is not None and field is not None:
        shape = replace(shape, field=field)
    L = shaft.length_nm
    s = prm.position_nm if prm.position_nm is not None else rng.uniform(0.0, L)
    if prm.azimuth_deg is not None:
        az = float(prm.azimuth_deg)
    else:
        side = 0.0 if rng.random() < 0.5 else 180.0
        elev = rng.uniform(-max_elev_deg, max_elev_deg)
        az = side + (elev if side == 0.0 else -elev)
    c, t, n = (x[0] for x in shaft.frame(s))
    a = np.deg2rad(az)
    axis = np.cos(a) * n + np.sin(a) * np.array([0.0, 0.0, 1.0])
    axis /= np.linalg.norm(axis)
    base = c + shaft.radius_nm * axis
    return PlacedSpine(sid, prm, base, axis, float(fillet_nm), float(s), float(az), t.copy(), shape)


def class_sequence(classes, n: int, *, rng, weights: Mapping[str, float] | None = None) -> list[str]:
    """Draw ``n`` spine classes from ``classes`` (uniformly or with ``weights``)."""
    classes = list(classes)
    for c in classes:
        if c not in SPINE_CLASSES:
            raise ParameterError(f"unknown spine class {c!r}; choose from {SPINE_CLASSES}")
    if not classes:
        raise ParameterError("classes must name at least one spine class")
    p = None
    if weights:
        p = np.array([float(weights.get(c, 0.0)) for c in classes])
        if p.sum() <= 0:
            raise ParameterError("class weights must not all be zero")
        p = p / p.sum()
    idx = rng.choice(len(classes), size=n, p=p)
    return [classes[i] for i in idx]
