"""Parameter groups of the 3D STORM simulator (:func:`dendrite`, :func:`sample_mesh`).

Each group is a frozen dataclass with the simulator's defaults; a function takes the
groups it needs (``geometry=``, ``meshing=``, ``labeling=``, ``photophysics=``,
``acquisition=``, ``drift=``) and ``None`` means the defaults. A setting lives in one
group only, so adding one touches that group (and, for the CLI, one option).

Field names are those of the recorded ``parameters`` (``parameters.json`` of a written
simulation), so ``{**group_dict(g) for g in groups}`` is the flat parameter record.

Examples
--------
>>> Acquisition(n_frames=500).n_frames
500
>>> Labeling(label="surface")
Traceback (most recent call last):
...
smlmspine.errors.ParameterError: label must be 'membrane' or 'volume', got 'surface'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

from .._labels import check_label
from .._validate import check_memory, finite
from ..errors import ParameterError
from ._blinking import PhotophysicsModel
from ._geometry import DEFAULT_CLASSES, SPINE_CLASSES, SpineParameters

__all__ = ["Geometry", "Meshing", "Labeling", "Acquisition", "SimulatedDrift", "SpineShapeNoise",
           "PhotophysicsModel", "group_dict", "check_group", "check_dendrite_budget"]

#: Spine arrangements: on a shaft, or cut flat at the base without a shaft.
LAYOUTS = ("shaft", "spines")


@dataclass(frozen=True)
class SpineShapeNoise:
    """EM-like irregularity of the simulated spines (see docs/simulate.md, "EM-like spines").

    All random draws come from the simulation's ``rng``; zeros switch a feature off, and
    ``SpineShapeNoise()`` (all off) gives exactly the smooth spines.

    Parameters
    ----------
    amplitude_nm : float
        RMS normal displacement of the surface by a smooth random field (a sum of
        ``n_waves`` plane waves of wavelength ``wavelength_nm`` in random directions),
        nm. On a neck its RMS is limited to ``0.1 x`` the local minor semi-axis so that
        the field cannot pinch a neck off (the neck minima are set by the neck profile).
    wavelength_nm : float
        Wavelength of the surface field, nm (low frequency: a few hundred nm).
    n_waves : int
        Plane waves in the field.
    neck_aspect_max : float
        Largest aspect ratio (major / minor axis) of the elliptic neck cross-sections,
        >= 1: along every neck the aspect varies between ``(1 + max) / 2`` and ``max``
        (a random phase), with a random orientation and a twist of up to +-90 degrees;
        the section area (equivalent diameter) follows the neck profile.
    neck_curvature : float
        Bend of the neck: largest sideways displacement of the neck end as a fraction
        of the neck length (quadratic Bezier centreline, tangent to the axis at the
        base; 0 = straight); each spine draws a bend in ``[0, neck_curvature]`` in a
        random direction. Branched spines are not bent.
    neck_kink_deg : float
        Largest kink of the neck centreline (a sharp change of direction at a random
        point of the middle half of the neck), degrees.
    n_neck_minima : int
        Local minima of the neck's equivalent diameter along it (0 or 1 = the uniform
        capsule profile); between minima the neck widens by ``neck_bulge``.
    neck_bulge : float
        Relative widening of the neck between its minima (0.3 = 30 % wider).
    head_lobes : int
        Extra ellipsoidal lobes blended onto each head (irregular, multi-lobed heads).
    head_lobe_size : float
        Lobe semi-axes as a fraction of the head radius.
    decimate_vertices : int, optional
        Decimate each spine truth mesh to about this many vertices (quadric
        decimation; EM reconstructions have ~500-2,000), before labeling and measuring.
        Labels and truth are then those of the low-poly mesh.

    Examples
    --------
    >>> SpineShapeNoise(amplitude_nm=15.0, neck_aspect_max=2.0).is_active
    True
    >>> SpineShapeNoise().is_active
    False
    """

    amplitude_nm: float = 0.0
    wavelength_nm: float = 400.0
    n_waves: int = 16
    neck_aspect_max: float = 1.0
    neck_curvature: float = 0.0
    neck_kink_deg: float = 0.0
    n_neck_minima: int = 0
    neck_bulge: float = 0.3
    head_lobes: int = 0
    head_lobe_size: float = 0.5
    decimate_vertices: int | None = None

    def __post_init__(self):
        _finite(self, ("amplitude_nm", "wavelength_nm", "n_waves", "neck_aspect_max",
                       "neck_curvature", "neck_kink_deg", "n_neck_minima", "neck_bulge",
                       "head_lobes", "head_lobe_size", "decimate_vertices"))
        if self.amplitude_nm < 0:
            raise ParameterError(f"amplitude_nm must be >= 0, got {self.amplitude_nm}")
        if not self.wavelength_nm > 0:
            raise ParameterError(f"wavelength_nm must be > 0, got {self.wavelength_nm}")
        if self.amplitude_nm > self.wavelength_nm / 8.0:
            raise ParameterError(f"amplitude_nm={self.amplitude_nm} is too large for "
                                 f"wavelength_nm={self.wavelength_nm} (at most wavelength / 8, "
                                 "or the surface folds over)")
        if int(self.n_waves) < 1:
            raise ParameterError(f"n_waves must be >= 1, got {self.n_waves}")
        if not 1.0 <= self.neck_aspect_max <= 4.0:
            raise ParameterError(f"neck_aspect_max must be in [1, 4], got {self.neck_aspect_max}")
        if not 0.0 <= self.neck_curvature <= 0.5:
            raise ParameterError(f"neck_curvature must be in [0, 0.5], got {self.neck_curvature}")
        if not 0.0 <= self.neck_kink_deg <= 60.0:
            raise ParameterError(f"neck_kink_deg must be in [0, 60], got {self.neck_kink_deg}")
        if not 0 <= int(self.n_neck_minima) <= 5:
            raise ParameterError(f"n_neck_minima must be in 0..5, got {self.n_neck_minima}")
        if not 0.0 <= self.neck_bulge <= 1.0:
            raise ParameterError(f"neck_bulge must be in [0, 1], got {self.neck_bulge}")
        if not 0 <= int(self.head_lobes) <= 4:
            raise ParameterError(f"head_lobes must be in 0..4, got {self.head_lobes}")
        if not 0.1 <= self.head_lobe_size <= 0.8:
            raise ParameterError(f"head_lobe_size must be in [0.1, 0.8], got {self.head_lobe_size}")
        if self.decimate_vertices is not None and int(self.decimate_vertices) < 50:
            raise ParameterError(f"decimate_vertices must be >= 50, got {self.decimate_vertices}")

    @classmethod
    def em_like(cls) -> "SpineShapeNoise":
        """A preset resembling EM reconstructions (docs/simulate.md, "EM-like spines").

        Returns
        -------
        SpineShapeNoise
            ``amplitude_nm=12``, ``wavelength_nm=400``, ``neck_aspect_max=1.8``,
            ``neck_curvature=0.25``, ``neck_kink_deg=20``, ``n_neck_minima=2``,
            ``head_lobes=1``, ``decimate_vertices=1000``, the other fields at their
            defaults.

        Examples
        --------
        >>> SpineShapeNoise.em_like().decimate_vertices
        1000
        """
        return cls(amplitude_nm=12.0, wavelength_nm=400.0, neck_aspect_max=1.8,
                   neck_curvature=0.25, neck_kink_deg=20.0, n_neck_minima=2, head_lobes=1,
                   decimate_vertices=1000)

    @property
    def is_active(self) -> bool:
        """Whether any feature is switched on."""
        return bool(self.amplitude_nm > 0 or self.neck_aspect_max > 1 or self.neck_curvature > 0
                    or self.neck_kink_deg > 0 or self.n_neck_minima > 1 or self.head_lobes > 0
                    or self.decimate_vertices is not None)

    @property
    def bends_neck(self) -> bool:
        """Whether the necks are bent or kinked (``neck_curvature`` or ``neck_kink_deg`` > 0)."""
        return bool(self.neck_curvature > 0 or self.neck_kink_deg > 0)


@dataclass(frozen=True)
class Geometry:
    """Shaft and spines of :func:`smlmspine.simulate.dendrite`.

    Parameters
    ----------
    n_spines : int, optional
        Number of spines; default ``round(spine_density_per_um * shaft length in um)``.
    spine_density_per_um : float
        Spines per um of shaft when ``n_spines`` is not given.
    shaft_radius_nm, shaft_length_nm : float
        Shaft radius (0.3-0.8 um is typical) and length, nm.
    curvature_per_um : float
        Centreline curvature, 1/um (0 = straight; at most a 90 degree bend).
    classes : sequence of str
        Classes to draw from (uniformly, or with ``class_weights``): thin, mushroom,
        stubby, filopodium (the default) and branched (two heads on one trunk).
    class_weights : mapping of str to float, optional
        Relative frequency of each class in ``classes`` (a class not named gets 0);
        default: uniform.
    spines : sequence of SpineParameters or dict, optional
        Explicit per-spine parameters (overrides ``n_spines``/``classes``); a dict may
        give only ``spine_class`` and some fields, the rest is drawn.
    fillet_nm : float
        Width of the smooth blend between spine and shaft, nm.
    max_elevation_deg : float
        Largest angle of a random spine axis out of the xy-plane.
    layout : {"shaft", "spines"}
        ``"shaft"``: spines on a dendritic shaft. ``"spines"``: spine-only data set, each
        spine cut flat at its base plane with no shaft, laid out on a row along x
        (bases at z = 0, axes within ``max_elevation_deg`` of +y), ``spine_gap_nm``
        apart; every fluorophore then belongs to a spine.
    spine_gap_nm : float
        Smallest distance between two spines' bounding capsules, nm.
    shape_noise : SpineShapeNoise, optional
        EM-like irregularity (off by default).
    """

    n_spines: int | None = None
    spine_density_per_um: float = 1.5
    shaft_radius_nm: float = 400.0
    shaft_length_nm: float = 10000.0
    curvature_per_um: float = 0.0
    classes: Sequence[str] = DEFAULT_CLASSES
    class_weights: Mapping[str, float] | None = None
    spines: Sequence[SpineParameters | Mapping[str, Any]] | None = None
    fillet_nm: float = 120.0
    max_elevation_deg: float = 45.0
    layout: str = "shaft"
    spine_gap_nm: float = 50.0
    shape_noise: SpineShapeNoise | None = None

    def __post_init__(self):
        _finite(self, ("n_spines", "spine_density_per_um", "shaft_radius_nm", "shaft_length_nm",
                       "curvature_per_um", "fillet_nm", "max_elevation_deg", "spine_gap_nm"))
        if not (self.shaft_length_nm > 0 and self.shaft_radius_nm > 0):
            raise ParameterError("shaft_length_nm and shaft_radius_nm must be > 0")
        if self.n_spines is not None and int(self.n_spines) < 0:
            raise ParameterError(f"n_spines must be >= 0, got {self.n_spines}")
        if isinstance(self.classes, str):
            raise ParameterError(f"classes must be a sequence of class names, got the string "
                                 f"{self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))
        for c in self.classes:
            if c not in SPINE_CLASSES:
                raise ParameterError(f"unknown spine class {c!r}; choose from {SPINE_CLASSES}")
        if self.spines is not None:
            object.__setattr__(self, "spines", tuple(self.spines))
        if self.layout not in LAYOUTS:
            raise ParameterError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.spine_gap_nm < 0:
            raise ParameterError(f"spine_gap_nm must be >= 0, got {self.spine_gap_nm}")
        if self.shape_noise is not None and not isinstance(self.shape_noise, SpineShapeNoise):
            raise ParameterError(f"shape_noise must be a SpineShapeNoise, got "
                                 f"{type(self.shape_noise).__name__}")


@dataclass(frozen=True)
class Meshing:
    """Lattice steps and decimation of the true meshes.

    Parameters
    ----------
    mesh_step_nm : float
        Lattice step of the fragment mesh, nm.
    spine_mesh_step_nm : float, optional
        Lattice step of the spine meshes; default ``min(mesh_step_nm, neck / 8)``
        (at least 4 nm).
    mesh_max_faces, spine_mesh_max_faces : int, optional
        Decimate the fragment / spine meshes to at most this many triangles (quadric
        decimation, open3d) before labeling and measuring, to keep files small; a
        decimation that would break watertightness is skipped with a QualityWarning.
    """

    mesh_step_nm: float = 25.0
    spine_mesh_step_nm: float | None = None
    mesh_max_faces: int | None = None
    spine_mesh_max_faces: int | None = None

    def __post_init__(self):
        _finite(self, ("mesh_step_nm", "spine_mesh_step_nm", "mesh_max_faces",
                       "spine_mesh_max_faces"))
        if not self.mesh_step_nm > 0 or (self.spine_mesh_step_nm is not None
                                         and not self.spine_mesh_step_nm > 0):
            raise ParameterError("mesh_step_nm and spine_mesh_step_nm must be > 0")


@dataclass(frozen=True)
class Labeling:
    """Where fluorophores are placed.

    Parameters
    ----------
    label : {"membrane", "volume"}
        Fluorophores on the surface (MemBright-like) or inside (cytosolic, actin-like).
    labeling_density_per_um2 : float
        Membrane label: fluorophores placed per um^2 of surface.
    labeling_density_per_um3 : float
        Volume label: fluorophores placed per um^3.
    head_enrichment : float
        Volume label: density factor inside spine heads (1 = uniform).
    """

    label: str = "membrane"
    labeling_density_per_um2: float = 500.0
    labeling_density_per_um3: float = 3000.0
    head_enrichment: float = 1.0

    def __post_init__(self):
        _finite(self, ("labeling_density_per_um2", "labeling_density_per_um3", "head_enrichment"))
        check_label(self.label)
        if self.labeling_density_per_um2 < 0 or self.labeling_density_per_um3 < 0:
            raise ParameterError("labeling_density_per_um2 and labeling_density_per_um3 must be >= 0")
        if self.head_enrichment < 0:
            raise ParameterError(f"head_enrichment must be >= 0, got {self.head_enrichment}")


@dataclass(frozen=True)
class Acquisition:
    """Frames, background localizations and fiducial beads.

    Parameters
    ----------
    n_frames : int
        Camera frames.
    background_rate_per_frame : float
        Mean false localizations per frame (uniform in the box around the sample).
    n_fiducials : int
        Fiducial beads (on in ~98 % of the frames) on the coverslip below the sample.
    fiducial_photons : float
        Median photons of a bead localization.
    """

    n_frames: int = 20000
    background_rate_per_frame: float = 0.1
    n_fiducials: int = 0
    fiducial_photons: float = 50000.0

    def __post_init__(self):
        _finite(self, ("n_frames", "background_rate_per_frame", "n_fiducials",
                       "fiducial_photons"))
        if int(self.n_frames) < 1:
            raise ParameterError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.background_rate_per_frame < 0 or self.n_fiducials < 0:
            raise ParameterError("background_rate_per_frame and n_fiducials must be >= 0")


@dataclass(frozen=True)
class SimulatedDrift:
    """Stage drift added to the localizations.

    The drift to simulate, not an estimate: :class:`smlmspine.drift.DriftModel` is the
    drift estimated from data (and what :func:`smlmspine.drift.correct` applies).

    Parameters
    ----------
    drift_nm : float
        Default smooth drift: largest lateral excursion, nm (0 = none).
    drift_z_nm : float, optional
        Largest axial excursion (default ``drift_nm / 2``).
    table : pyarrow.Table or pandas.DataFrame, optional
        User drift (``frame, dx_nm, dy_nm[, dz_nm]``), interpolated; overrides
        ``drift_nm``.
    """

    drift_nm: float = 150.0
    drift_z_nm: float | None = None
    table: Any = None

    def __post_init__(self):
        _finite(self, ("drift_nm", "drift_z_nm"))
        if self.drift_nm < 0 or (self.drift_z_nm is not None and self.drift_z_nm < 0):
            raise ParameterError("drift_nm and drift_z_nm must be >= 0")


def _finite(group, names) -> None:
    """Refuse NaN and infinite values (the range checks below let NaN through)."""
    for name in names:
        value = getattr(group, name)
        if value is not None and not isinstance(value, bool):
            finite(value, name)


def check_group(value, cls, name: str):
    """``value`` if it is a ``cls``, ``cls()`` for None, else a ParameterError."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise ParameterError(f"{name}= must be a smlmspine.simulate.{cls.__name__}, got "
                             f"{type(value).__name__}")
    return value


def group_dict(group) -> dict:
    """The fields of a parameter group as a flat dict (shallow)."""
    return {f.name: getattr(group, f.name) for f in fields(group)}


# Costs of the 3D STORM simulator for check_dendrite_budget, fitted on measured peaks
# (docs/reliability.md, "Resource budgets"): the whole-fragment mesher evaluates the
# implicit function of every spine on a coarse lattice (4 x mesh_step_nm) over the
# fragment's bounding box, ~20 B per lattice point and spine; every localization (with
# its truth row and the temporaries of the acquisition) ~250 B; each frame ~80 B.
_SPINE_REACH_NM = 2400.0     # farthest a drawn spine (neck + head) reaches out of the shaft
_SPINE_AREA_NM2 = 4e6        # membrane area of one spine (generous: 1 um head + neck)
_SPINE_VOLUME_NM3 = 1e9      # volume of one spine (generous)
_BYTES_PER_LATTICE_SPINE = 20.0
_BYTES_PER_LOCALIZATION = 250.0
_BYTES_PER_FRAME = 80.0


def _spine_count(g: Geometry) -> float:
    if g.spines is not None:
        return float(len(g.spines))
    if g.n_spines is not None:
        return float(g.n_spines)
    return float(round(g.spine_density_per_um * g.shaft_length_nm / 1000.0))


def check_dendrite_budget(geometry: Geometry | None = None, meshing: Meshing | None = None,
                          labeling: Labeling | None = None,
                          photophysics: PhotophysicsModel | None = None,
                          acquisition: Acquisition | None = None, *, mesh_area_nm2=None,
                          mesh_volume_nm3=None, name=lambda field: field) -> float:
    """Estimate the memory of a 3D STORM simulation and refuse it beyond the budget.

    Called before anything is drawn (:func:`smlmspine._validate.check_memory`): the
    estimate grows with the number of spines (``n_spines`` or density x shaft length),
    the shaft length, ``mesh_step_nm``, the labeling density, blinks and ``n_frames``.
    ``mesh_area_nm2`` / ``mesh_volume_nm3`` replace the generated geometry for
    :func:`sample_mesh`. ``name`` maps a field name to what the message calls it (the
    CLI passes its option names). Returns the estimate in bytes.

    Examples
    --------
    >>> check_dendrite_budget() < 1e9
    True
    >>> check_dendrite_budget(Geometry(n_spines=10**9))
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: n_spines=1000000000 on a 10000 nm shaft (meshed at mesh_step_nm=25): 1e+09 spines x 3e+05 lattice points would need about 7.77e+06 GB, over the memory budget of 1 GB (raise it with SMLMSPINE_MEMORY_BUDGET_GB=...)
    """
    msh = meshing or Meshing()
    lab = labeling or Labeling()
    model = photophysics or PhotophysicsModel()
    acq = acquisition or Acquisition()
    n_frames = float(acq.n_frames)
    terms = []  # (bytes, description)
    if mesh_area_nm2 is None:
        g = geometry or Geometry()
        n_sp = _spine_count(g)
        r, length = float(g.shaft_radius_nm), float(g.shaft_length_nm)
        step = float(msh.mesh_step_nm)
        pad = 2 * step + float(g.fillet_nm)
        reach = _SPINE_REACH_NM + pad
        if g.layout == "spines":
            box = (n_sp * (1000.0 + float(g.spine_gap_nm)) + 2 * pad) * (2 * reach) ** 2
        else:
            box = ((length + 2 * pad + 1000.0) * (2 * (r + reach))
                   * (2 * (r + reach * math.sin(math.radians(float(g.max_elevation_deg))))))
        lattice = box / (4.0 * step) ** 3
        spines_opt = (f"{name('n_spines')}={int(n_sp)}" if g.n_spines is not None or g.spines
                      else f"{name('spine_density_per_um')}={g.spine_density_per_um:g}")
        terms.append((lattice * max(n_sp, 1.0) * _BYTES_PER_LATTICE_SPINE,
                      f"{spines_opt} on a {length:g} nm shaft (meshed at "
                      f"{name('mesh_step_nm')}={step:g}): {n_sp:.2g} spines x {lattice:.2g} "
                      "lattice points"))
        area = 2 * math.pi * r * length + n_sp * _SPINE_AREA_NM2
        volume = math.pi * r * r * length + n_sp * _SPINE_VOLUME_NM3
        where = f"{length:g} nm shaft with {n_sp:.2g} spines"
    else:
        area, volume = float(mesh_area_nm2), float(mesh_volume_nm3 or 0.0)
        where = f"{area / 1e6:.3g} um^2 mesh"
    if lab.label == "membrane":
        n_em = area / 1e6 * float(lab.labeling_density_per_um2)
        density = f"{name('labeling_density_per_um2')}={lab.labeling_density_per_um2:g}"
    else:
        n_em = volume / 1e9 * float(lab.labeling_density_per_um3) * max(lab.head_enrichment, 1.0)
        density = f"{name('labeling_density_per_um3')}={lab.labeling_density_per_um3:g}"
    per_em = (float(model.labeling_efficiency) * float(model.blinks_per_fluorophore)
              * float(model.frames_per_blink))
    n_loc = (n_em * per_em + float(acq.n_fiducials) * n_frames
             + float(acq.background_rate_per_frame) * n_frames)
    terms.append((n_loc * _BYTES_PER_LOCALIZATION,
                  f"{density} x {name('blinks_per_fluorophore')}="
                  f"{model.blinks_per_fluorophore:g} on a {where}, {name('n_fiducials')}="
                  f"{acq.n_fiducials} and {name('background_rate_per_frame')}="
                  f"{acq.background_rate_per_frame:g} over {name('n_frames')}={acq.n_frames}: "
                  f"{n_loc:.2g} localizations"))
    terms.append((n_frames * _BYTES_PER_FRAME, f"{name('n_frames')}={acq.n_frames}: drift and "
                  f"frame arrays of {n_frames:.2g} frames"))
    total = sum(b for b, _ in terms)
    worst = max(terms, key=lambda t: t[0] if math.isfinite(t[0]) else math.inf)
    check_memory(total, what=worst[1])
    return total
