"""Model-based neck surface: place a membrane spine's neck where its localizations say.

A spine envelope fitted vertex by vertex to a sparse, blurred membrane is noisy at the
scale of its neck: on simulated 3D STORM spines (MemBright-like density, sigma_xy 12,
sigma_z 33 nm) about three fluorophores label each 25 nm of a 100 nm neck, the fitted
surface wobbles by +-15 % along it and the narrowest section of the mesh came out 35 %
too narrow (the minimum of a noisy profile; the far wall of a neck thinner than the
axial blur also pulls the fit inward). :func:`fit_neck_surface` replaces the neck part
of the surface by the maximum-likelihood tube of the blurred-ring model
(:func:`~smlmspine.morphology._ringfit.fit_ring`), fitted to the localizations in
windows of about ``window_nm`` along the centreline.

Procedure (all lengths along the mesh centreline from the base):

1. Cross-section profile of the mesh (:func:`section_profile`), smoothed over
   ``smooth_profile_nm``; head = widest smoothed section of the distal half, neck
   region = from the first section at most ``head_neck_threshold`` x the median
   smoothed section of the neck wide (the base, when it does not flare) to the
   head-neck boundary (first section distal of the smoothed minimum wider than
   ``head_neck_threshold`` x that minimum; the head when there is none). When the
   mesh's region is shorter than ``min_neck_nm`` (an envelope that bridged the whole
   corner between a short neck and a wide head is a cone without a neck), the same
   rules are applied to the localizations' own profile (twice their median distance
   from the centreline, per section); spines whose neck region is still shorter are
   left as they are.
2. The region minus ``end_margin_nm`` at the head end is cut into
   ``max(1, round(length / window_nm))`` equal windows, plus windows shifted by half a
   window between them (a short constriction falls whole into one); in each the localizations
   within the slab are fitted with the blurred-ring model (anisotropic precision,
   free centre and axis tilt, uniform background). A fit is kept when its radius lies within
   ``[0.25, 2.5]`` x the mesh's median radius there and the ring holds >= 50 % of
   the slab's points; its radius is replaced by the equivalent radius ``sqrt(a b)`` of
   an ellipse fit (:func:`~smlmspine.morphology._ringfit.fit_ellipse_ring`) when that
   fits better by more than ``ELLIPSE_MIN_DNLL``, is smaller and has an aspect below
   the fit's bound (an elliptic neck whose short axis lies along the axial blur: the
   circle sat on the long axis; an aspect at the bound is not measured,
   :func:`_window_radius`). Beyond the
   region, windows towards the tip extend it while
   their ring, and that of their distal half, is at most ``head_neck_threshold`` x
   the narrowest fit (a window reaching into the flare of a head fits a ring of about
   the neck's width over its whole length, not over its distal half).
3. The window radii are shrunk towards their mean by how much of their spread the
   fits' own noise explains (:func:`shrink_radii`): one radius for a smooth tube, the
   profile of an irregular neck with several constrictions.
4. The mesh is subdivided (1 -> 4 triangles, at most once) until 90 % of the edges of
   the neck region are shorter than 1/16 of the smallest fitted circumference; radius and
   centre are interpolated linearly between window centres (constant beyond), and every
   vertex whose nearest centreline point lies in the neck region
   (and within 2.5 mesh radii of the centreline) is moved radially to that radius;
   nearer than ``FULL_MOVE_MARGIN_NM`` to either end of the region, or everywhere when
   a window is wider than ``FULL_MOVE_MAX_NECK_HEAD`` x the head (a stubby spine's
   dome), and wherever its normal faces inward (the inner sheet of a fold), a vertex
   moves by how radial its normal is (the disc closing a base, a head's underside move
   less);
   beyond the head end of the region the move fades out linearly over ``ramp_nm`` and
   only moves vertices outward; proximal of the region (a flared base) vertices are
   moved outward onto the tube, and pulled in only onto the ring fits of the flare
   itself (windows of ``flare_window_nm``), never inside the tube: an envelope that
   bridged the corner between a thin neck and the shaft made the flare too wide, a real
   flare keeps its width.

5. A head beyond the region (not refitted to the tip in step 2) whose smoothed mesh
   diameter is at most ``HEAD_REFIT_MAX_NM`` (a filopodium's tip bulb, not the head of
   a thin spine) is cut into windows of ``HEAD_WINDOW_NM`` up to half its diameter
   before the tip; the windows at least ``HEAD_WINDOW_MIN_SHARE`` x as wide as the head
   are ring-fitted as in step 2, and when the median of (ring radius - the mesh's
   median radius there) is negative, every vertex beyond the region where the smoothed
   mesh is at least that share of the head wide (fading in over ``ramp_nm`` and over the
   0.1 of the head's width below that share, with the same weight on radial normals)
   moves in by it, never out and never inside the last fitted neck radius.
   Simulated EM-like filopodia (sigma 12/12/30 nm): tip-bulb diameters +8-14 % -> -4 to
   +2 % (median, recorded refit inputs of 40 spines on a shaft and 12 cut from it).

The result is a closed mesh with the same topology; the neck sections are close to
circles of the fitted radius.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["NeckSurfaceFit", "fit_neck_surface"]


@dataclass(frozen=True)
class NeckSurfaceFit:
    """What :func:`fit_neck_surface` did (lengths in nm).

    Attributes
    ----------
    applied : bool
        Whether the neck of the mesh was moved (False: the input mesh was returned).
    reason : str
        Why nothing was applied (``""`` when ``applied``): ``"no profile: ..."``,
        ``"too few cross-sections"``, ``"no neck region"``, ``"no accepted ring fit"``
        or ``"no vertex in the neck region"``.
    s_start_nm, s_end_nm : float
        Neck region along the mesh centreline, arc length from the base (nm). When
        applied, ``s_end_nm`` is the mesh's head-neck boundary (the fit windows stop
        ``end_margin_nm`` before it) or the end of the last window accepted towards the
        tip (step 2); NaN
        when the profile failed before the region was found.
    windows : list of tuple
        One ``(s_centre_nm, diameter_nm, n_points)`` per accepted ring fit: the
        window centre along the centreline (nm), the fitted ring diameter (nm) and
        the number of localizations in the window's slab. Empty when not applied.
    head_shift_nm : float
        How far (nm, <= 0) the sides of a thin head were moved in (step 5); 0 when not.
    head_diameter_nm : float
        The head's diameter on the smoothed mesh profile (step 1; NaN when not applied).
    """

    applied: bool
    reason: str
    s_start_nm: float = float("nan")
    s_end_nm: float = float("nan")
    windows: list = field(default_factory=list)   # (s_centre, diameter, n_points) per kept fit
    head_shift_nm: float = 0.0
    head_diameter_nm: float = float("nan")

    @property
    def is_neck(self) -> bool:
        """Whether the refitted part is a neck: applied, and every window at most
        ``FULL_MOVE_MAX_NECK_HEAD`` x the head wide (not a stubby spine's dome).

        Examples
        --------
        >>> NeckSurfaceFit(True, "", 0.0, 300.0, [(150.0, 120.0, 40)], 0.0, 600.0).is_neck
        True
        >>> NeckSurfaceFit(True, "", 0.0, 300.0, [(150.0, 500.0, 40)], 0.0, 600.0).is_neck
        False
        """
        return bool(self.applied and self.windows and _narrower_than_head(
            max(w[1] for w in self.windows), self.head_diameter_nm))

    def to_dict(self) -> dict:
        """The record as a dict of plain values (JSON-compatible).

        Returns
        -------
        dict
            ``applied``, ``reason``, ``s_start_nm``, ``s_end_nm`` (nm), ``windows``
            as a list of ``[s_centre_nm, diameter_nm, n_points]`` lists,
            ``head_shift_nm`` and ``head_diameter_nm``.

        Examples
        --------
        >>> NeckSurfaceFit(True, "", 0.0, 640.0, [(150.0, 121.3, 40)]).to_dict()["windows"]
        [[150.0, 121.3, 40]]
        """
        return {"applied": self.applied, "reason": self.reason, "s_start_nm": self.s_start_nm,
                "s_end_nm": self.s_end_nm,
                "windows": [[float(a), float(b), int(c)] for a, b, c in self.windows],
                "head_shift_nm": float(self.head_shift_nm),
                "head_diameter_nm": float(self.head_diameter_nm)}

    @classmethod
    def from_dict(cls, d: dict) -> "NeckSurfaceFit":
        """The record back from :meth:`to_dict` (``parameters["neck_surface"]`` of an
        envelope); ``head_diameter_nm`` NaN when the dict has none (records written
        before it existed).

        Parameters
        ----------
        d : dict
            A dict of :meth:`to_dict`'s keys.

        Returns
        -------
        NeckSurfaceFit

        Examples
        --------
        >>> fit = NeckSurfaceFit(True, "", 0.0, 300.0, [(150.0, 120.0, 40)], 0.0, 600.0)
        >>> NeckSurfaceFit.from_dict(fit.to_dict()) == fit
        True
        """
        return cls(bool(d["applied"]), str(d["reason"]), float(d["s_start_nm"]),
                   float(d["s_end_nm"]), [tuple(w) for w in d["windows"]],
                   float(d["head_shift_nm"]), float(d.get("head_diameter_nm", float("nan"))))


def _smooth(values: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or values.size < 2:
        return values
    k = np.ones(n) / n
    return np.convolve(np.pad(values, (n // 2, n - 1 - n // 2), mode="edge"), k, mode="valid")


def _region(ds, i_neck, i_end, threshold):
    """First and last section of the neck region of a smoothed diameter profile.

    A base that flares out of the shaft (sections from the base on wider than
    ``threshold`` x the median section up to the head-neck boundary; not the minimum,
    which a single narrow spot of the shell fit can make) is not neck: the region starts
    where the flare ends (pulled onto the neck tube, the flare of simulated spines on a
    shaft was lost: MINFLUX-like thin spines -5 % of volume).
    """
    ref = float(np.median(ds[: i_end + 1]))
    flare = np.flatnonzero(ds[: i_neck + 1] <= threshold * ref)
    return min(int(flare[0]) if flare.size else 0, i_neck), i_end


#: Localizations per section needed for the localizations' own diameter profile
#: (:func:`_points_profile`); sections with fewer are interpolated.
MIN_POINTS_PER_SECTION = 8


def _points_profile(pts, c, s, step_nm):
    """Twice the median distance of the localizations from the centreline, per section
    (each localization counts at its nearest centreline point; None when fewer than
    half the sections hold MIN_POINTS_PER_SECTION of them)."""
    from scipy.spatial import cKDTree

    if len(c) < 3 or len(pts) < MIN_POINTS_PER_SECTION:
        return None
    tan = np.gradient(c, axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    _, idx = cKDTree(c).query(pts)
    rel = pts - c[idx]
    along = np.einsum("ij,ij->i", rel, tan[idx])
    # only the localizations in the slab of their section (not those beyond the
    # ends of the centreline)
    ok = np.abs(along) <= step_nm
    radial = np.linalg.norm(rel - along[:, None] * tan[idx], axis=1)
    out = np.full(len(c), np.nan)
    count = np.bincount(idx[ok], minlength=len(c))
    for i in np.flatnonzero(count >= MIN_POINTS_PER_SECTION):
        out[i] = 2.0 * float(np.median(radial[ok & (idx == i)]))
    good = np.isfinite(out)
    if good.sum() < max(3, len(c) // 2):
        return None
    return np.interp(s, s[good], out[good])


#: A window's ring is refitted as an ellipse (:func:`~._ringfit.fit_ellipse_ring`) and its
#: equivalent radius used when the negative log-likelihood drops by more than this
#: (twice it is chi-square with 2 degrees of freedom for a circular section: 4.6 is
#: p = 0.01); None: circles only.
ELLIPSE_MIN_DNLL = 4.6


def _window_radius(r_circle: float, ellipse) -> float:
    """The radius a neck window reports: its circle's, or the equivalent radius of its
    ellipse refit (``ellipse``: ``(r_nm, aspect, delta_nll)`` of
    :func:`~._ringfit.fit_ellipse_ring`, or None) when that fits better by more than
    ELLIPSE_MIN_DNLL, is smaller, and its aspect is not at the fit's bound
    (:data:`~._ringfit.MAX_ASPECT`).

    An aspect at the bound is not a measured shape: the bound, not the localizations,
    holds the short axis. It comes from few fluorophores: 400 windows of a circular
    72 nm neck, 14 fluorophores of ~3 localizations each (sigma 9.9 / 24 nm), gave 19
    ellipses better by more than 4.6 (4.8 %, where 1 % is expected of independent
    localizations), 14 of them at aspect 3 with equivalent radii of 20-33 nm for 36.
    On the validation sets' neck refits (2026-12-05) such windows made thin idealised
    necks read up to 33 % narrow (a 72 nm neck: windows 53-65 nm).

    Examples
    --------
    >>> _window_radius(36.0, (30.0, 2.0, 6.0)), _window_radius(36.0, (24.8, 3.0, 5.6))
    (30.0, 36.0)
    >>> _window_radius(36.0, (30.0, 2.0, 3.0)), _window_radius(36.0, None)
    (36.0, 36.0)
    """
    from ._ringfit import MAX_ASPECT

    if ellipse is None or ELLIPSE_MIN_DNLL is None:
        return r_circle
    r_e, aspect, dnll = ellipse
    if dnll > ELLIPSE_MIN_DNLL and r_e < r_circle and aspect < MAX_ASPECT * (1.0 - 1e-9):
        return r_e
    return r_circle


#: A head whose smoothed mesh diameter is at most this (nm) is corrected too (step 5):
#: the envelope of a thin tube sits outside its membrane (simulated EM-like filopodia,
#: sigma 12/12/30 nm: tip bulbs +8-14 % in diameter), the heads of thin spines
#: (>= 250 nm) not. None: heads are left as they are.
HEAD_REFIT_MAX_NM = 240.0
#: Length (nm) of the head's ring-fit windows (step 5).
HEAD_WINDOW_NM = 80.0
#: Only head windows whose mesh diameter is at least this share of the head's take part
#: in step 5: the windows at the neck's end still hold the neck's own bias (thin spines:
#: -22 nm read on a 263 nm head).
HEAD_WINDOW_MIN_SHARE = 0.8


#: Vertices of the neck region farther than this (nm) from both its ends move the whole
#: way onto the fitted tube when its normal faces outward (away from the centreline:
#: surfaces facing inward, as the inner sheet of a fold, stay as the normal weight
#: has them); nearer an end, a vertex moves by how radial its normal is
#: (:func:`_radial`: the disc closing a base, a head's underside). Everywhere before
#: 2026-12-05, that weight also held back the flanks of a lumpy envelope's bulges in the
#: middle of a neck, whose normals point along the axis: a bulky envelope (413 nm over a
#: 132 nm EM-like mushroom neck) pulled in onto 153 nm windows read 174 nm. Replayed on
#: the recorded refit inputs of 12 validation simulations (margins of 20, 40, 60, 80 and
#: 120 nm tried; with FULL_MOVE_MAX_NECK_HEAD), neck minimum median / 90th percentile
#: |error| per validation set's pair of simulations: EM-like on a shaft 104-105
#: 4.3/26.1 -> 4.1/20.7 %, 103-104 5.7/23.2 -> 5.0/22.4 %, 102-103 5.9/20.4 -> 4.6/20.4 %,
#: 101-102 3.8/19.7 -> 3.1/19.7 %; idealised 105-106 7.0/20.4 -> 6.5/17.6 %, 1-2
#: 3.5/11.4 -> 3.5/11.3 %; EM-like spine-only 6.6/19.2 -> 6.8/18.4 %; MINFLUX-like
#: 1.7/5.7 % unchanged; heads within 0.2 points, lengths within 0.7. Moving the
#: inward-facing vertices too (end to end, 2026-12-05 20:42): an EM-like mushroom neck
#: of 262 nm (simulation 102, windows 272-313 nm) read 183 nm: 421 vertices near the
#: base, inside the tube (0.65 x its radius) with normals facing inward, had been
#: pushed out onto it, and the level set of that surface pinched the neck.
FULL_MOVE_MARGIN_NM = 60.0
#: ... but only when every fitted window's diameter is at most this share of the head's
#: (the smoothed mesh profile's widest section of the distal half): the "neck region" of
#: a stubby spine is its dome, about as wide as its head, whose sections a 150 nm window
#: averages; pulled in whole, one head read 300 nm for 395 (end to end, EM-like on a
#: shaft ``--seed 104``: stubby head 90th percentile |error| 12.7 -> 16.5 %, one spine
#: flagged, its point-based neck fit now wider than the mesh's head; idealised
#: ``--seed 105``: flagged 7.5 -> 12.5 %). Replayed, with this gate every stubby
#: spine's head, length and volume are as before (a share of 0.8 let some move).
FULL_MOVE_MAX_NECK_HEAD = 0.6


def _narrower_than_head(widest_nm: float, head_diameter_nm: float) -> bool:
    """Whether a refitted part whose widest window is ``widest_nm`` across is a neck:
    at most ``FULL_MOVE_MAX_NECK_HEAD`` x the head (the refit's whole-way move and
    :attr:`NeckSurfaceFit.is_neck` decide by it)."""
    return widest_nm <= FULL_MOVE_MAX_NECK_HEAD * head_diameter_nm


#: Vertices wanted around the refitted neck: a ring of n vertices on a circle encloses
#: n sin(2 pi / n) / (2 pi) of its area (16: 97.4 %, diameter -1.3 %; the 4-6 edges of
#: a coarse alpha surface around a thin MINFLUX neck lost 10-25 % of the diameter).
VERTICES_PER_RING = 16
#: At most this many 1 -> 4 subdivisions (two made the centreline of some mushroom
#: spines start sideways through the head: 100 simulated STORM spines, 90th percentile
#: neck error 24 % with one, 28 % with two).
MAX_SUBDIVISIONS = 1


def _fine_enough(mesh, tree, s, s_lo, s_hi, edge_nm):
    """The mesh, subdivided (each triangle into 4, at most MAX_SUBDIVISIONS times) until
    the edges of its neck region [s_lo, s_hi] are mostly (90 %) shorter than ``edge_nm``
    (``tree``: k-d tree of the centreline points, arc lengths ``s``)."""
    import trimesh

    _, j = tree.query(np.asarray(mesh.vertices))
    near = (s[j] >= s_lo - 50.0) & (s[j] <= s_hi)
    e = np.asarray(mesh.edges_unique)
    sel = near[e[:, 0]] | near[e[:, 1]]
    if not sel.any():
        return mesh
    v = np.asarray(mesh.vertices)
    long = float(np.percentile(np.linalg.norm(v[e[sel, 0]] - v[e[sel, 1]], axis=1), 90))
    n = int(np.clip(np.ceil(np.log2(max(long / max(edge_nm, 1e-9), 1.0))), 0, MAX_SUBDIVISIONS))
    if n == 0:
        return mesh
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    for _ in range(n):
        v, f = trimesh.remesh.subdivide(v, f)
    return trimesh.Trimesh(v, f, process=False)


def _radial(v, cen, tang, normals):
    """``(rel, |rel|, w, outward)``: each vertex's offset from its centreline point
    ``cen`` across the unit tangent ``tang``, its length, a weight from 0 to 1 by how
    radial the vertex normal is (0 below 0.3 of the way, 1 above 0.7: the disc closing a
    base, a head's underside or a tip move less or not at all), and whether the normal
    faces away from the centreline at all."""
    rel = v - cen
    rel -= np.einsum("ij,ij->i", rel, tang)[:, None] * tang
    rn = np.linalg.norm(rel, axis=1)
    radial = np.einsum("ij,ij->i", normals, rel) / np.maximum(rn, 1e-12)
    return rel, rn, np.clip((radial - 0.3) / 0.4, 0.0, 1.0), radial > 0.0


def fit_neck_surface(mesh, points_nm, base_point_nm, *, precision_nm, base_axis=None,
                     window_nm: float = 150.0, smooth_profile_nm: float = 100.0,
                     head_neck_threshold: float = 1.2, min_neck_nm: float = 80.0,
                     end_margin_nm: float = 40.0, ramp_nm: float = 40.0, step_nm: float = 10.0,
                     near_base: str = "parallel", flare_window_nm: float = 80.0):
    """Refit the neck of a membrane spine mesh to its localizations.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Closed spine surface (nm), e.g. from :func:`smlmspine.envelope.reconstruct`.
    points_nm : (N, 3) array
        The spine's localizations (nm).
    base_point_nm : (3,) array
        Where the spine meets the shaft.
    precision_nm : float or (float, float)
        Localization precision (1 sigma), isotropic or ``(lateral, axial)``.
    base_axis : (3,) array, optional
        Spine axis at the base (helps the centreline).
    window_nm : float
        Target length of the fit windows along the neck (nm).
    smooth_profile_nm : float
        Length (nm) of the moving average of the section diameters used to find the
        head and the neck region.
    head_neck_threshold : float
        The neck region ends at the first section distal of the smoothed minimum
        wider than this factor x that minimum (dimensionless); beyond the region,
        further windows towards the tip are kept while their ring diameter stays
        below this factor x the narrowest fitted one.
    min_neck_nm : float
        Neck regions shorter than this (nm) are left as they are.
    end_margin_nm : float
        Length (nm) at the head end of the neck region left out of the fit windows.
    ramp_nm : float
        Length (nm) over which the vertex moves fade out beyond both ends of the
        neck region.
    step_nm : float
        Spacing (nm) of the cross-sections along the centreline
        (:func:`section_profile`).
    near_base : {"parallel", "skip"}
        Sections within one base radius of the base (:func:`section_profile`), from
        which the neck region is found: parallel to the base plane (default) or left
        out. Left out (before 2026-12-04), the short wide neck of a mushroom under a
        wide base flare had no neck region (simulated EM-like mushrooms, 1,000
        fluorophores/um^2, sigma 12/12/30 nm: necks 374-522 nm for 198-303; 40 EM-like
        spines on a shaft, neck minimum median / 90th percentile absolute error 4.8/24.9 % ->
        5.7/19.7 %).
    flare_window_nm : float
        Length (nm) of the ring-fit windows over a flared base (proximal of the neck
        region); where a fit lies inside the mesh, the flare is pulled in onto it (never
        inside the neck tube). 0 leaves the flare as it is (only pushed out onto the
        tube, the behaviour before this option). Added for envelopes that bridge the
        corner between a thin neck and the shaft: 40 simulated EM-like spines on a shaft
        (1,000 fluorophores/um^2, sigma 12/12/30 nm, validate_morphology ``--seed 2``),
        median volume ratio of thin spines 1.12 -> 1.10, filopodia 1.14 -> 1.03.

    Returns
    -------
    (trimesh.Trimesh, NeckSurfaceFit)
        The refitted mesh (the input mesh, unchanged, when nothing was applied) and a
        record of the fit. Failures of the geometry (no centreline, no neck) are not
        raised: they leave the mesh as it is, with the ``reason`` in the record.

    Raises
    ------
    ParameterError
        ``near_base`` is neither ``"parallel"`` nor ``"skip"``, or ``flare_window_nm``
        is not a finite number >= 0.
    """
    from scipy.spatial import cKDTree

    from ._measure import head_neck_indices
    from ._ringfit import fit_ellipse_ring, fit_ring, section_basis
    from ._sections import section_profile

    if near_base not in ("parallel", "skip"):
        # (section_profile would refuse it, but its failures are caught below as geometry)
        from ..errors import ParameterError

        raise ParameterError(f"near_base must be 'parallel' or 'skip', got {near_base!r}")
    from .._validate import non_negative

    flare_window_nm = non_negative(flare_window_nm, "flare_window_nm", unit="nm")
    sig = np.atleast_1d(np.asarray(precision_nm, float))
    sxy, sz = float(sig[0]), float(sig[-1])
    pts = np.asarray(points_nm, float)
    base = np.asarray(base_point_nm, float)
    try:
        prof = section_profile(mesh, base, base_axis, step_nm=step_nm, near_base=near_base)
    except ImportError:  # a missing dependency (rtree, shapely) is not a geometric failure
        raise
    except Exception as exc:  # noqa: BLE001 - any geometric failure leaves the mesh as is
        return mesh, NeckSurfaceFit(False, f"no profile: {exc}")
    s, d = prof["s_nm"], prof["diameter_nm"]
    if s.size < 5:
        return mesh, NeckSurfaceFit(False, "too few cross-sections")
    c = np.c_[prof["x_nm"], prof["y_nm"], prof["z_nm"]]
    ds = _smooth(d, max(1, int(round(smooth_profile_nm / step_nm))))
    i_head, i_neck, i_end = head_neck_indices(s, ds, float(prof["length_nm"]),
                                              head_neck_threshold)
    if i_end is None:
        i_end = i_head
    # (a flared base is not neck: see _region)
    i_start, i_end = _region(ds, i_neck, i_end, head_neck_threshold)
    s0, s1 = float(s[i_start]), float(s[i_end]) - end_margin_nm
    if s1 - s0 < min_neck_nm:
        # the envelope can bridge the whole corner between a short neck and a wide head
        # (a cone from the base to the head's rim: sparse MINFLUX-like mushrooms, whose
        # automatic alpha must close the gaps of the head's shell), so its profile
        # has no neck: find the region on the localizations' own profile instead
        dp = _points_profile(pts, c, s, step_nm)
        if dp is not None:
            dp = _smooth(dp, max(1, int(round(smooth_profile_nm / step_nm))))
            _, p_neck, p_end = head_neck_indices(s, dp, float(prof["length_nm"]),
                                                 head_neck_threshold)
            if p_end is not None:
                p_start, p_end = _region(dp, p_neck, p_end, head_neck_threshold)
                if float(s[p_end]) - end_margin_nm - float(s[p_start]) >= min_neck_nm:
                    i_start, i_end = p_start, p_end
                    s0, s1 = float(s[i_start]), float(s[i_end]) - end_margin_nm
    if s1 - s0 < min_neck_nm:
        return mesh, NeckSurfaceFit(False, "no neck region", s0, s1)

    def ring(a, b):
        """The accepted ring fit of the window [a, b] of the centreline, or None."""
        w = (s >= a) & (s <= b)
        if w.sum() < 2:
            return None
        cc = c[w]
        cen = cc.mean(axis=0)
        _, _, vt = np.linalg.svd(cc - cen, full_matrices=False)
        ax = vt[0] if np.dot(vt[0], cc[-1] - cc[0]) >= 0 else -vt[0]
        r_mesh = float(np.median(d[w])) / 2
        u, v = section_basis(ax)
        rel = pts - cen
        t = rel @ ax
        t_lo, t_hi = float((cc[0] - cen) @ ax), float((cc[-1] - cen) @ ax)
        sel = (t >= min(t_lo, t_hi) - step_nm / 2) & (t <= max(t_lo, t_hi) + step_nm / 2)
        uv = np.c_[rel[sel] @ u, rel[sel] @ v]
        r_max = max(1.5 * r_mesh, r_mesh + 4.0 * max(sxy, sz), 100.0)
        sv = float(np.sqrt(sxy ** 2 * (1.0 - v[2] ** 2) + sz ** 2 * v[2] ** 2))
        out = fit_ring(uv, sigma_u_nm=sxy, sigma_v_nm=sv, r_max_nm=r_max, radius0_nm=r_mesh,
                       t_nm=t[sel], with_error=True, _return_x=True)
        if out is None:
            return None
        r_fit, cu, cv, frac, err, _ = out
        if frac < 0.5:    # (the ring's share of the slab: the ellipse refit keeps it)
            return None
        if ELLIPSE_MIN_DNLL is not None:
            # an elliptic neck (EM: aspect up to ~2) whose short axis lies along the
            # blur of the axial precision fits a circle about its long axis
            # (not when the ellipse's aspect is at its bound: see _window_radius)
            r_fit = _window_radius(r_fit, fit_ellipse_ring(
                uv, sigma_u_nm=sxy, sigma_v_nm=sv, r_max_nm=r_max, circle=out, t_nm=t[sel]))
        if not 0.25 * r_mesh <= r_fit <= 2.5 * r_mesh:
            return None
        return (0.5 * (a + b), r_fit, cen + cu * u + cv * v, int(len(uv)), err, r_mesh)

    n_win = max(1, int(round((s1 - s0) / window_nm)))
    edges = np.linspace(s0, s1, n_win + 1)
    # windows overlapping by half: a constriction shorter than a window falls into one
    # of them whole, not split between two (each then half neck, half wider tube)
    half = 0.5 * (edges[1] - edges[0])
    wins = sorted([(a, b) for a, b in zip(edges[:-1], edges[1:])]
                  + [(a + half, b + half) for a, b in zip(edges[:-2], edges[1:-1])])
    to_tip = False
    s_end = float(s[i_end])    # the region's end: the mesh's head-neck boundary
    kept = [k for k in (ring(a, b) for a, b in wins) if k is not None]
    if kept:
        # the head-neck boundary of the mesh profile can be the shell fit's own outward
        # bias on a thin tube (simulated filopodia: +20-40 % beyond the refitted part):
        # carry on window by window towards the tip while the localizations still say
        # "neck" (ring diameter within head_neck_threshold x the narrowest fit)
        r_min = min(k[1] for k in kept)
        s_tip = float(s[-1]) - max(end_margin_nm, r_min)
        while s1 < s_tip - 1.0:
            # (a last piece shorter than half a window joins the window before it)
            b = s_tip if s_tip - s1 < 1.5 * window_nm else s1 + window_nm
            k = ring(s1, b)
            if k is None or k[1] > head_neck_threshold * r_min:
                break
            # a window reaching into the flare of a head can still fit a ring of
            # about the neck's width (the mean over the window): its distal half must
            # say "neck" too, or the head's underside gets pulled onto the neck tube
            # (MINFLUX-like thin spines: heads 5-40 nm inside the truth, volume -4-10 %)
            kd = ring(0.5 * (s1 + b), b)
            if kd is None or kd[1] > head_neck_threshold * r_min:
                break
            kept.append(k)
            s1 = s_end = b     # (the evidence ends with the window: no margin beyond it)
        to_tip = s1 >= s_tip - 1.0
    if not kept:
        return mesh, NeckSurfaceFit(False, "no accepted ring fit", s0, s1)
    kept.sort(key=lambda k: k[0])
    ks = np.array([k[0] for k in kept])
    kr = shrink_radii(np.array([k[1] for k in kept]), np.array([k[4] for k in kept]))
    # (step 5) a thin head beyond the region: its sides are moved in by the median
    # offset of the mesh from the ring fits of the windows about as wide as the head
    head_shift = 0.0
    if (not to_tip and HEAD_REFIT_MAX_NM is not None
            and float(ds[i_head]) <= HEAD_REFIT_MAX_NM):
        s_h1 = float(s[-1]) - max(end_margin_nm, 0.5 * float(ds[i_head]))
        n_h = int(round((s_h1 - s_end) / HEAD_WINDOW_NM))
        if n_h >= 1:
            he = np.linspace(s_end, s_h1, n_h + 1)
            hk = [k for k in (ring(a, b) for a, b in zip(he[:-1], he[1:]))
                  if k is not None and 2.0 * k[5] >= HEAD_WINDOW_MIN_SHARE * float(ds[i_head])]
            if hk:
                head_shift = min(0.0, float(np.median([k[1] - k[5] for k in hk])))
    # a base flare (proximal of s0): ring fits in windows of flare_window_nm; where the
    # localizations put the membrane inside the mesh, the flare is pulled in onto them
    # (about the mesh centreline: the fitted centres of these short windows scattered
    # by 40-80 nm on simulated EM-like thin spines, and a neck read 27 % too narrow)
    flare = []
    if flare_window_nm > 0 and s0 - float(s[0]) >= flare_window_nm:
        n_f = max(1, int(round((s0 - float(s[0])) / flare_window_nm)))
        fe = np.linspace(float(s[0]), s0, n_f + 1)
        for a, b in zip(fe[:-1], fe[1:]):
            k = ring(a, b)
            if k is not None and k[1] >= kr[0]:   # (a flare ring inside the tube: noise)
                flare.append(k)
    fs = np.array([k[0] for k in flare])
    fr = np.array([k[1] for k in flare])
    # fitted centre offset from the mesh centreline, interpolated along s
    c_at = np.array([c[int(np.argmin(np.abs(s - k[0])))] for k in kept])
    koff = np.array([k[2] for k in kept]) - c_at
    tree = cKDTree(c)
    mesh = _fine_enough(mesh, tree, s, float(s[0]), s_end + ramp_nm,
                        2.0 * np.pi * float(kr.min()) / VERTICES_PER_RING)
    v_ = np.array(mesh.vertices, dtype=float)   # a copy: the input mesh is not to be moved
    # nearest centreline point of each vertex (dense centreline at step_nm)
    dist, j = tree.query(v_)
    sv_ = s[j]
    r_loc = np.interp(sv_, s, d) / 2
    inside = dist < 2.5 * np.maximum(r_loc, 1.0)
    # weight 1 over the whole neck region, falling to 0 over ramp_nm beyond both ends
    # (from the first section: proximal of a flare's end vertices narrower than the
    # tube are still pushed out onto it, below)
    wgt = np.clip(1.0 + np.minimum(sv_ - float(s[0]), s_end - sv_) / max(ramp_nm, 1e-9),
                  0.0, 1.0)
    wgt[~inside] = 0.0
    if not (wgt > 0).any():
        return mesh, NeckSurfaceFit(False, "no vertex in the neck region", s0, s1)
    idx = np.flatnonzero(wgt > 0)
    normals = np.asarray(mesh.vertex_normals)
    tang = np.gradient(c, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-12)
    cen_v = c[j[idx]] + np.c_[[np.interp(sv_[idx], ks, koff[:, k]) for k in range(3)]].T
    rel, rn, w_normal, outward = _radial(v_[idx], cen_v, tang[j[idx]], normals[idx])
    # inside the region, away from both its ends, there is no base disc nor head
    # underside: a vertex whose normal faces outward moves fully, however oblique its
    # normal (FULL_MOVE_MARGIN_NM); only on a neck clearly narrower than the head
    # (FULL_MOVE_MAX_NECK_HEAD); inward-facing vertices keep the normal weight
    if _narrower_than_head(2.0 * float(kr.max()), float(ds[i_head])):
        mid = (sv_[idx] >= s0 + FULL_MOVE_MARGIN_NM) & (sv_[idx] <= s_end - FULL_MOVE_MARGIN_NM)
        w_normal = np.where(mid & outward, 1.0, w_normal)
    target = np.interp(sv_[idx], ks, kr)
    # beyond the region's ends (the flaring base, the head) vertices are only pushed out
    # onto the tube, never pulled in: pulling the underside of a head in folded it
    # (a neck refitted up to the rounded tip of a headless spine is pulled in over the
    # tip's ramp too: no head there to fold)
    # (a base flare, proximal of s0, is likewise pushed out onto the tube; it is pulled in
    # only onto its own ring fits, below)
    ok = (rn > 1e-9) & (((wgt[idx] >= 1.0) & (sv_[idx] >= s0)) | (target > rn)
                        | (to_tip & (sv_[idx] > s_end)))
    if fs.size:
        # flare vertices within the fitted flare windows: onto the flare ring where it
        # lies inside them (never inside the neck tube), else as before
        fl = (sv_[idx] < s0) & (sv_[idx] >= fs[0] - 0.5 * flare_window_nm) & (rn > 1e-9)
        ft = np.maximum(np.interp(sv_[idx], np.r_[fs, ks[:1]], np.r_[fr, kr[:1]]), target)
        pull = fl & (ft < rn)
        target = np.where(pull, ft, target)
        ok |= pull
    new = v_[idx].copy()
    new[ok] = v_[idx][ok] + (target[ok] / rn[ok] - 1.0)[:, None] * rel[ok]
    # only the tube moves: vertices whose surface normal is far from radial (the disc
    # closing the base, a head's underside) fade out. Pushed onto the ring, the base
    # cap folded over itself (sample spine: 9 -> 1271 self-intersecting faces)
    w_idx = wgt[idx] * w_normal
    v_[idx] = (1.0 - w_idx[:, None]) * v_[idx] + w_idx[:, None] * new
    if head_shift < 0.0:
        hw = np.clip((sv_ - s_end) / max(ramp_nm, 1e-9), 0.0, 1.0)
        # only where the mesh is about as wide as the head (where the shift was
        # measured), fading out from HEAD_WINDOW_MIN_SHARE to 0.1 below it (recorded
        # refit inputs of 3 spine-only filopodia: volume 0.964 moved along the whole
        # distal part, 0.990 so; end to end the sets' filopodia volumes came out the
        # same either way, 0.93-0.96, from 0.98-1.03 without the step)
        r_h = 0.5 * float(ds[i_head])
        r_s = 0.5 * np.interp(sv_, s, ds)
        hw *= np.clip((r_s - (HEAD_WINDOW_MIN_SHARE - 0.1) * r_h) / (0.1 * r_h), 0.0, 1.0)
        hw[~inside] = 0.0
        hi = np.flatnonzero(hw > 0)
        if hi.size:
            rel, rn, w_normal, _ = _radial(v_[hi], c[j[hi]], tang[j[hi]], normals[hi])
            w_h = hw[hi] * w_normal
            # (never inside the neck tube where the region ends: the tip of a filopodium
            # refitted short of it is no narrower than its neck; simulated ones read
            # 21-28 % narrow necks without this floor)
            step_ = np.minimum(0.0, np.maximum(head_shift, float(kr[-1]) - rn)) * w_h
            v_[hi] += (step_ / np.maximum(rn, 1e-12))[:, None] * rel
    out_mesh = mesh.copy()
    out_mesh.vertices = v_
    return out_mesh, NeckSurfaceFit(True, "", s0, s_end,
                                    [(k[0], 2 * r, k[3]) for k, r in zip(kept, kr)],
                                    head_shift, float(ds[i_head]))


#: The standard errors of the window fits (BFGS inverse Hessian, as if every
#: localization were independent) times this factor are taken as their noise: the
#: blinks of one fluorophore are not independent samples of the membrane (~3
#: localizations each in the validation sets, ~sqrt(3) more noise than the fit says).
#: Chosen on simulated sets, 150 nm windows, neck minimum median / 90th percentile
#: |error|: smooth STORM spines (20) 1.0: 7.5/19.8 %, 2.0: 4.6/16.7 %; EM-like
#: spines cut from their dendrite (12) 1.0: 12.3/20.5 %, 2.0: 14.2/23.7 %.
NOISE_INFLATION = 1.5


def shrink_radii(r: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Window radii shrunk towards their common mean by how much of their spread the
    fits' own noise explains (empirical Bayes).

    The spread of the radii along a neck is its real variation (an irregular neck with
    several constrictions) plus each fit's noise (``se``). With ``tau2`` the variance
    left after the noise, each radius moves to ``m + tau2 / (tau2 + se^2) (r - m)``
    (``m``: the precision-weighted mean): a smooth tube (``tau2 = 0``) becomes one
    radius, the mean of the windows, as one long window would give; a neck whose windows
    differ far beyond their errors keeps its profile. Windows without an error estimate
    count as noisy as the noisiest one.

    Parameters
    ----------
    r : numpy.ndarray
        Fitted radii (nm), one per window.
    se : numpy.ndarray
        Their standard errors (nm; NaN where unknown).

    Returns
    -------
    numpy.ndarray
        The shrunk radii (nm); ``r`` unchanged for fewer than three windows.

    Examples
    --------
    >>> shrink_radii(np.array([50.0, 54.0, 46.0]), np.array([6.0, 6.0, 6.0]))
    array([50., 50., 50.])
    >>> shrink_radii(np.array([40.0, 70.0, 40.0]), np.array([2.0, 2.0, 2.0])).round(1)  # x 1.5
    array([40.4, 69.1, 40.4])
    """
    r = np.asarray(r, float)
    if r.size < 3:
        return r
    se = NOISE_INFLATION * np.asarray(se, float)
    fin = np.isfinite(se) & (se > 0)
    se = np.where(fin, se, se[fin].max() if fin.any() else np.inf)
    if not np.isfinite(se).all():
        return np.full_like(r, r.mean())
    v = se ** 2
    tau2 = 0.0
    for _ in range(20):   # fixed point of the method-of-moments estimate of tau2
        w = 1.0 / (tau2 + v)
        m = float(np.sum(w * r) / np.sum(w))
        tau2_new = max(0.0, float(np.sum(w * ((r - m) ** 2 - v)) / np.sum(w)))
        if abs(tau2_new - tau2) < 1e-6 * (1.0 + tau2):
            break
        tau2 = tau2_new
    w = 1.0 / (tau2 + v)
    m = float(np.sum(w * r) / np.sum(w))
    return m + tau2 / (tau2 + v) * (r - m)
