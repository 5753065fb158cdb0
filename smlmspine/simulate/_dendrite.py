"""3D STORM simulation of a dendrite fragment (or any mesh) with ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, QualityWarning
from ..schema import make_table, spec_table, with_history
from ._blinking import PhotophysicsModel, blink
from ._drift import drift_from_table, smooth_drift
from ._geometry import (DEFAULT_CLASSES, SpineParameters, build_geometry, class_sequence,
                        draw_spine_parameters)
from ._labeling import sample_surface, sample_volume
from ._measure import measure_truth_spine
from ._output import close_truth_folder, open_truth_folder, simulation_writer, write_ply, write_truth_tables
from ._settings import (Acquisition, Geometry, Labeling, Meshing, SimulatedDrift, check_group,
                        group_dict)
from ._shape import draw_noise_field, draw_spine_shape
from ._truth import TRUTH_DRIFT, TRUTH_EMITTERS, TRUTH_LOCALIZATIONS, TRUTH_SPINES

__all__ = ["DendriteSimulation", "dendrite", "sample_mesh"]

_XY_MARGIN_NM = 1000.0  # the fragment's bounding box starts here in x and y


@dataclass(frozen=True)
class DendriteSimulation:
    """A simulated 3D STORM acquisition with its ground truth.

    Attributes
    ----------
    localizations : pyarrow.Table
        Canonical table: x, y, z (nm), frame, photons, background, precision_xy,
        precision_z; no truth columns. Rows are sorted by frame.
    truth : pyarrow.Table
        Row-aligned with ``localizations`` (``data_schemas/truth_localizations.json``).
    emitters : pyarrow.Table
        Every placed fluorophore and bead (``data_schemas/truth_emitters.json``).
    spines : pyarrow.Table
        Per spine (``data_schemas/truth_spines.json``); empty for a user mesh.
    drift : pyarrow.Table
        ``frame, dx_nm, dy_nm, dz_nm``: what was added to the true positions.
    mesh : trimesh.Trimesh
        Watertight surface of the whole fragment, nm.
    spine_meshes : dict of int to trimesh.Trimesh
        Each spine cut at its base plane (watertight), by ``spine_id``.
    parameters : dict
        The parameters used (JSON-able).
    """

    localizations: pa.Table
    truth: pa.Table
    emitters: pa.Table
    spines: pa.Table
    drift: pa.Table
    mesh: Any
    spine_meshes: Mapping[int, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Summary: counts and parameters (JSON-able).

        Returns
        -------
        dict
            ``n_localizations``, ``n_emitters`` (fluorophores and beads),
            ``n_background`` and ``n_fiducial_localizations`` (rows of ``localizations``),
            ``n_spines``, ``mesh_is_watertight`` and ``parameters``.
        """
        truth = self.truth
        return {
            "n_localizations": self.localizations.num_rows,
            "n_emitters": self.emitters.num_rows,
            "n_background": int(np.sum(truth.column("is_background").to_numpy(zero_copy_only=False))),
            "n_fiducial_localizations": int(np.sum(truth.column("is_fiducial").to_numpy(zero_copy_only=False))),
            "n_spines": self.spines.num_rows,
            "mesh_is_watertight": bool(self.mesh.is_watertight),
            "parameters": dict(self.parameters),
        }

    @simulation_writer
    def write(self, path, *, format: str | None = None) -> dict:
        """Write the localizations to ``path`` and the truth to ``<stem>.truth/``.

        The truth folder holds ``localizations``, ``emitters``, ``spines`` and ``drift``
        as Parquet, ``mesh.ply`` (whole fragment), ``spine_<id>.ply`` per spine and
        ``parameters.json``; see :func:`smlmspine.simulate.write_simulation`.

        Parameters
        ----------
        path : str or pathlib.Path
            Localization file (format from ``format`` or the extension).
        format : str, optional
            Writer name of :func:`smlmspine.io.write`.

        Returns
        -------
        dict
            ``{"localizations": Path, "truth": Path, "files": [Path, ...]}``.
        """
        from ..io import write

        path, folder = open_truth_folder(path)
        write(self.localizations, path, format=format)
        files = write_truth_tables({"localizations": self.truth, "emitters": self.emitters,
                                    "spines": self.spines, "drift": self.drift}, folder)
        # (units=nm in the smlmspine comment: `smlmspine measure` and `voxelize` read the
        # truth meshes without --units, as they read the meshes `run` and `mesh` write)
        files.append(write_ply(self.mesh, folder / "mesh.ply",
                               comments=["smlmspine simulate: whole fragment units=nm",
                                         "spine_id -1"]))
        for sid, mesh in sorted(self.spine_meshes.items()):
            files.append(write_ply(mesh, folder / f"spine_{sid}.ply",
                                   comments=["smlmspine simulate: spine cut at its base plane "
                                             "units=nm", f"spine_id {sid}"]))
        return close_truth_folder(self.to_dict(), path, folder, files)


def dendrite(*, geometry: Geometry | None = None, meshing: Meshing | None = None,
             labeling: Labeling | None = None, photophysics: PhotophysicsModel | None = None,
             acquisition: Acquisition | None = None, drift: SimulatedDrift | None = None,
             rng=None) -> DendriteSimulation:
    """Simulate a 3D STORM acquisition of a dendrite with spines, with ground truth.

    Geometry: a shaft (tube of ``shaft_radius_nm`` around a straight or arc-shaped
    centreline of ``shaft_length_nm`` in the xy-plane at z = 0, shifted so that the
    fragment's x and y start at 1 um) with spines perpendicular to it, blended into the
    shaft with a fillet. Each spine = neck (capsule) + head (ellipsoid), parameters
    drawn from class distributions (:data:`smlmspine.simulate.CLASS_DEFAULTS`) or given.

    The settings come in groups (:mod:`smlmspine.simulate._settings`); ``None`` for a
    group means its defaults.

    Parameters
    ----------
    geometry : Geometry, optional
        Shaft and spines (number, classes, explicit spines, fillet, elevation).
    meshing : Meshing, optional
        Lattice steps and decimation of the true meshes.
    labeling : Labeling, optional
        Membrane or volume label and its density.
    photophysics : PhotophysicsModel, optional
        Detection efficiency, blinking, photons, precision.
    acquisition : Acquisition, optional
        Frames, background localizations, fiducial beads.
    drift : SimulatedDrift, optional
        Smooth random drift or a user drift table.
    rng : int or numpy.random.Generator, optional
        Seed; the same seed gives identical output.

    Returns
    -------
    DendriteSimulation

    Raises
    ------
    ParameterError
        A group of the wrong type, an entry of ``geometry.spines`` that is neither
        :class:`SpineParameters` nor a dict with ``spine_class``, or settings the
        geometry cannot be built with (e.g. spines that do not fit on the shaft).

    Warns
    -----
    QualityWarning
        When decimating a mesh to the requested face count would break it (the finer
        mesh is kept).

    Examples
    --------
    >>> sim = dendrite(geometry=Geometry(n_spines=2, shaft_length_nm=3000.0),
    ...                acquisition=Acquisition(n_frames=2000), rng=1)
    >>> sim.spines.num_rows, sim.mesh.is_watertight
    (2, True)
    >>> sim.localizations.num_rows == sim.truth.num_rows
    True
    """
    rng = np.random.default_rng(rng)
    g = check_group(geometry, Geometry, "geometry")
    msh = check_group(meshing, Meshing, "meshing")
    lab = check_group(labeling, Labeling, "labeling")
    model = check_group(photophysics, PhotophysicsModel, "photophysics")
    acq = check_group(acquisition, Acquisition, "acquisition")
    dm = check_group(drift, SimulatedDrift, "drift")
    # --- spine parameters
    if g.spines is not None:
        params = []
        for i, sp in enumerate(g.spines):
            if isinstance(sp, SpineParameters):
                params.append(sp)
            elif isinstance(sp, Mapping):
                d = dict(sp)
                cls = d.pop("spine_class", None)
                if cls is None:
                    raise ParameterError(f"spines[{i}] needs a 'spine_class'")
                params.append(draw_spine_parameters(cls, rng=rng, **d))
            else:
                raise ParameterError(f"spines[{i}] must be SpineParameters or a dict, "
                                     f"got {type(sp).__name__}")
    else:
        n_spines = g.n_spines
        if n_spines is None:
            n_spines = int(round(g.spine_density_per_um * g.shaft_length_nm / 1000.0))
        cls = class_sequence(g.classes, int(n_spines), rng=rng, weights=g.class_weights)
        params = [draw_spine_parameters(c, rng=rng) for c in cls]
    noise = g.shape_noise
    shapes = field = None
    if noise is not None and noise.is_active:  # (drawn only then: the smooth stream is unchanged)
        field = draw_noise_field(noise, rng)
        shapes = [draw_spine_shape(noise, prm, rng) for prm in params]
    geom = build_geometry(params, shaft_radius_nm=g.shaft_radius_nm,
                          shaft_length_nm=g.shaft_length_nm, curvature_per_um=g.curvature_per_um,
                          fillet_nm=g.fillet_nm, max_elevation_deg=g.max_elevation_deg,
                          min_gap_nm=g.spine_gap_nm, shapes=shapes, field=field,
                          layout=g.layout, rng=rng)
    spine_max_faces = msh.spine_mesh_max_faces
    if noise is not None and noise.decimate_vertices is not None:
        # a closed genus-0 mesh has V = F / 2 + 2 vertices
        target = 2 * (int(noise.decimate_vertices) - 2)
        spine_max_faces = target if spine_max_faces is None else min(spine_max_faces, target)
    # --- meshes (local coordinates, shifted at the end)
    import trimesh

    lo_b, hi_b = geom.bounds()
    offset = np.array([_XY_MARGIN_NM - lo_b[0], _XY_MARGIN_NM - lo_b[1], 0.0])
    if g.layout == "shaft":
        fv, ff = _decimate(*geom.mesh(step_nm=msh.mesh_step_nm), msh.mesh_max_faces)
    spine_local = {}
    for k, sp in enumerate(geom.spines):
        step = msh.spine_mesh_step_nm or max(min(msh.mesh_step_nm, sp.params.neck_diameter_nm / 8.0), 4.0)
        spine_local[sp.spine_id] = (_decimate(*geom.spine_mesh(k, step_nm=step),
                                              spine_max_faces), step)
    if g.layout == "spines":  # the fragment is the (disjoint) spines themselves
        fv, ff = _concatenate([vf for vf, _ in spine_local.values()])
    # --- fluorophores (from the truth meshes when those differ from the implicit solid)
    from_meshes = g.layout == "spines" or (noise is not None and noise.decimate_vertices is not None)
    if lab.label == "membrane":
        pts, sid = _membrane_emitters(geom, fv, ff, spine_local, lab.labeling_density_per_um2, rng)
    elif not from_meshes:
        pts, sid = _volume_emitters(geom, lab.labeling_density_per_um3, lab.head_enrichment, rng)
    else:
        pts, sid = _volume_emitters_meshes(geom, spine_local, lab.labeling_density_per_um3,
                                           lab.head_enrichment, rng)
    pts = pts + offset
    # --- spine truth table
    spine_meshes = {}
    rows = {name: [] for name in TRUTH_SPINES}
    for k, sp in enumerate(geom.spines):
        (v, f), _step = spine_local[sp.spine_id]
        v = v + offset
        mesh = trimesh.Trimesh(v, f, process=False)
        spine_meshes[sp.spine_id] = mesh
        base = sp.base + offset
        if sp.shape is not None and sp.shape.bent:
            # sections perpendicular to the true (bent) centreline
            m = measure_truth_spine(v, f, base_nm=base, axis=sp.axis,
                                    centreline_nm=np.vstack(_centreline(sp)) + offset)
        else:
            m = measure_truth_spine(v, f, base_nm=base, axis=sp.axis)
        vals = dict(spine_id=sp.spine_id, spine_class=sp.params.spine_class,
                    base_x_nm=base[0], base_y_nm=base[1], base_z_nm=base[2],
                    axis_x=sp.axis[0], axis_y=sp.axis[1], axis_z=sp.axis[2],
                    position_nm=sp.position_nm,
                    design_neck_diameter_nm=sp.params.neck_diameter_nm,
                    design_neck_length_nm=sp.params.neck_length_nm,
                    design_head_diameter_nm=sp.params.head_diameter_nm if sp.params.has_head else 0.0,
                    design_head_length_nm=sp.params.head_length_nm if sp.params.has_head else 0.0,
                    n_emitters=int(np.sum(sid == sp.spine_id)), **m.to_dict())
        for name in TRUTH_SPINES:
            rows[name].append(vals[name])
    spines_table = spec_table(TRUTH_SPINES, {k: pa.array(v, type=TRUTH_SPINES[k].type)
                                             for k, v in rows.items()})
    frag = trimesh.Trimesh(fv + offset, ff, process=False)
    parameters = dict(
        kind="dendrite", n_spines=len(geom.spines), spine_density_per_um=g.spine_density_per_um,
        shaft_radius_nm=g.shaft_radius_nm, shaft_length_nm=g.shaft_length_nm,
        curvature_per_um=g.curvature_per_um, classes=list(g.classes), fillet_nm=g.fillet_nm,
        max_elevation_deg=g.max_elevation_deg, **group_dict(lab), **group_dict(msh),
        offset_nm=offset.tolist())
    if g.layout != "shaft" or noise is not None:
        parameters.update(layout=g.layout, spine_gap_nm=g.spine_gap_nm,
                          shape_noise=None if noise is None else group_dict(noise))
    return _acquire(pts, sid, mesh=frag, spine_meshes=spine_meshes, spines_table=spines_table,
                    model=model, acquisition=acq, drift=dm, parameters=parameters, rng=rng)


def sample_mesh(mesh, *, labeling: Labeling | None = None,
                photophysics: PhotophysicsModel | None = None,
                acquisition: Acquisition | None = None, drift: SimulatedDrift | None = None,
                spine_meshes: Mapping[int, Any] | None = None, spine_tolerance_nm: float = 5.0,
                rng=None) -> DendriteSimulation:
    """Label any surface mesh (e.g. an EM reconstruction) with the STORM model.

    Parameters
    ----------
    mesh : trimesh.Trimesh or str or Path
        The surface in nm (a path is loaded with trimesh: PLY, OBJ, OFF, STL). Volume
        labeling needs a watertight mesh.
    labeling : Labeling, optional
        Membrane or volume label and its density (``head_enrichment`` is not used: a
        user mesh has no known heads).
    photophysics : PhotophysicsModel, optional
        Detection efficiency, blinking, photons, precision.
    acquisition : Acquisition, optional
        Frames, background localizations, fiducial beads.
    drift : SimulatedDrift, optional
        Smooth random drift or a user drift table.
    spine_meshes : mapping of int to trimesh.Trimesh (or path), optional
        Segmented spines (e.g. from the same EM reconstruction), by spine id: an
        emitter inside one, or within ``spine_tolerance_nm`` of its surface, gets its
        ``spine_id``. Without them ``spine_id`` is -1 everywhere.
    spine_tolerance_nm : float
        Largest distance in nm outside a spine mesh's surface at which an emitter still
        gets that spine's id (the first spine by id wins).
    rng : int or numpy.random.Generator, optional
        Seed; the same seed gives identical output.

    Returns
    -------
    DendriteSimulation
        ``spines`` has one row per given spine mesh with its volume (when watertight)
        and emitter count; class and shape measurements, which need a base point and
        axis, are empty / NaN.

    Raises
    ------
    ParameterError
        A group of the wrong type, a mesh without faces, or volume labeling of a mesh
        that is not watertight.
    FormatError
        A mesh path that does not exist or holds no triangle mesh.

    Examples
    --------
    >>> import trimesh
    >>> sphere = trimesh.creation.icosphere(subdivisions=3, radius=500.0)
    >>> sim = sample_mesh(sphere, acquisition=Acquisition(n_frames=1000), rng=0)
    >>> sim.emitters.num_rows > 1000
    True
    """
    import trimesh

    rng = np.random.default_rng(rng)
    lab = check_group(labeling, Labeling, "labeling")
    model = check_group(photophysics, PhotophysicsModel, "photophysics")
    acq = check_group(acquisition, Acquisition, "acquisition")
    dm = check_group(drift, SimulatedDrift, "drift")
    if not isinstance(mesh, trimesh.Trimesh):
        mesh = _load_mesh(mesh)
    v = np.asarray(mesh.vertices, float)
    f = np.asarray(mesh.faces, np.int64)
    if len(f) == 0:
        raise ParameterError("the mesh has no faces")
    if lab.label == "membrane":
        pts = sample_surface(v, f, density_per_um2=lab.labeling_density_per_um2, rng=rng)[0]
    else:
        if not mesh.is_watertight:
            raise ParameterError("volume labeling needs a watertight mesh; this one is not "
                                 "(use label='membrane' or repair the mesh)")
        inside = _mesh_inside(mesh)
        pts = sample_volume(inside, v.min(0), v.max(0),
                            density_per_um3=lab.labeling_density_per_um3, rng=rng)
    sid = np.full(len(pts), -1, dtype=np.int64)
    loaded = {}
    for k, sm in sorted((spine_meshes or {}).items()):
        sm = sm if isinstance(sm, trimesh.Trimesh) else _load_mesh(sm)
        loaded[int(k)] = sm
        if len(pts):
            d = _signed_distance(sm)(pts)
            sid[(d <= spine_tolerance_nm) & (sid < 0)] = int(k)
    rows = {name: [] for name in TRUTH_SPINES}
    for k, sm in loaded.items():
        vals = {name: float("nan") for name in TRUTH_SPINES}
        vals.update(spine_id=k, spine_class="", n_emitters=int(np.sum(sid == k)),
                    volume_um3=float(sm.volume) * 1e-9 if sm.is_watertight else float("nan"))
        for name in TRUTH_SPINES:
            rows[name].append(vals[name])
    empty = spec_table(TRUTH_SPINES, {k: pa.array(v, type=TRUTH_SPINES[k].type)
                                      for k, v in rows.items()})
    parameters = dict(kind="mesh", label=lab.label,
                      labeling_density_per_um2=lab.labeling_density_per_um2,
                      labeling_density_per_um3=lab.labeling_density_per_um3)
    return _acquire(pts, sid, mesh=mesh, spine_meshes=loaded, spines_table=empty, model=model,
                    acquisition=acq, drift=dm, parameters=parameters, rng=rng)


def _decimate(v, f, max_faces):
    """Quadric decimation to ``max_faces`` triangles, kept only if still watertight."""
    if max_faces is None or len(f) <= max_faces:
        return v, f
    if max_faces < 4:
        raise ParameterError(f"mesh_max_faces / spine_mesh_max_faces must be >= 4, got {max_faces}")
    import warnings

    import open3d as o3d
    import trimesh

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v),
                                  o3d.utility.Vector3iVector(f.astype(np.int32)))
    m = m.simplify_quadric_decimation(int(max_faces))
    v2 = np.asarray(m.vertices, float)
    f2 = np.asarray(m.triangles, np.int64)
    t = trimesh.Trimesh(v2, f2, process=False)
    if not (t.is_watertight and t.is_winding_consistent and t.volume > 0):
        warnings.warn(f"decimating a mesh to {max_faces} faces would break it; kept the "
                      f"{len(f)}-face mesh", QualityWarning, stacklevel=3)
        return v, f
    return v2, f2


def _load_mesh(path):
    from pathlib import Path

    import trimesh

    from ..errors import FormatError

    path = Path(path)
    if not path.exists():
        raise FormatError("no such mesh file", path=path)
    try:
        loaded = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:
        raise FormatError(f"cannot be read as a mesh (PLY, OBJ, OFF, STL): {exc}", path=path) from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise FormatError("holds no triangle mesh", path=path)
    return loaded


def _signed_distance(mesh):
    """``f(points) -> signed distance`` to a closed mesh (negative inside), via open3d."""
    import open3d as o3d

    from .._raycast import ray_scene

    scene = ray_scene(mesh.vertices, mesh.faces)

    def dist(p):
        q = o3d.core.Tensor(np.asarray(p, np.float32))
        return scene.compute_signed_distance(q).numpy().astype(float)

    return dist


def _mesh_inside(mesh):
    import open3d as o3d

    from .._raycast import ray_scene

    scene = ray_scene(mesh.vertices, mesh.faces)

    def inside(p):
        occ = scene.compute_occupancy(o3d.core.Tensor(p.astype(np.float32)))
        return occ.numpy() > 0.5

    return inside


def _membrane_emitters(geom, fv, ff, spine_local, density, rng):
    """Shaft part from the fragment mesh, spines from their (finer) meshes."""
    if geom.layout == "spines":
        all_pts, all_sid = [np.empty((0, 3))], [np.empty(0, dtype=np.int64)]
        return _spine_surface_emitters(geom, spine_local, density, rng, all_pts, all_sid)
    cen = fv[ff].mean(1)
    tri = fv[ff]
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-300)
    keep = geom.spine_ids(cen) < 0
    # the shaft's flat end caps are cuts of the field of view, not membrane
    (c0, c1), (t0, t1) = geom.shaft.frame([0.0, geom.shaft.length_nm])[:2]
    for c, t in ((c0, t0), (c1, t1)):
        on_cap = (np.abs((cen - c) @ t) < 30.0) & (np.abs(nrm @ t) > 0.9)
        keep &= ~on_cap
    pts, _, _ = sample_surface(fv, ff, density_per_um2=density, rng=rng, face_mask=keep)
    all_pts = [pts]
    all_sid = [np.full(len(pts), -1, dtype=np.int64)]
    return _spine_surface_emitters(geom, spine_local, density, rng, all_pts, all_sid)


def _spine_surface_emitters(geom, spine_local, density, rng, all_pts, all_sid):
    """Membrane fluorophores on each spine mesh, without its flat base cap."""
    for sp in geom.spines:
        (v, f), step = spine_local[sp.spine_id]
        c = v[f].mean(1)
        on_base = ((c - sp.base) @ sp.axis) < 0.5 * step
        if sp.shape is not None or geom.layout == "spines":
            # the cap is the plane t = 0 exactly; decimated side faces can be large
            tri = v[f]
            nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-300)
            on_base = (np.abs((c - sp.base) @ sp.axis) < 1.0) & (nrm @ sp.axis < -0.99)
        p, _, _ = sample_surface(v, f, density_per_um2=density, rng=rng, face_mask=~on_base)
        all_pts.append(p)
        all_sid.append(np.full(len(p), sp.spine_id, dtype=np.int64))
    return np.concatenate(all_pts), np.concatenate(all_sid)


def _volume_emitters(geom, density, head_enrichment, rng):
    lo, hi = geom.bounds(pad_nm=geom.fillet_nm)
    pts = sample_volume(lambda p: geom.sdf(p) < 0, lo, hi, density_per_um3=density, rng=rng)
    extra = []
    if head_enrichment < 0:
        raise ParameterError(f"head_enrichment must be >= 0, got {head_enrichment}")
    if head_enrichment != 1.0:
        from ._implicit import sd_ellipsoid

        if head_enrichment < 1.0:
            # thin out the heads
            sid = geom.spine_ids(pts)
            drop = np.zeros(len(pts), bool)
            for sp in geom.spines:
                for c, fr, r in sp.heads():
                    inh = (sid == sp.spine_id) & (sd_ellipsoid(pts, c, fr, r) < 0)
                    drop |= inh & (rng.random(len(pts)) > head_enrichment)
            pts = pts[~drop]
        else:
            for sp in geom.spines:
                for c, fr, r in sp.heads():
                    rr = r.max()

                    def inside(p, c=c, r=r, fr=fr):
                        return (sd_ellipsoid(p, c, fr, r) < 0) & (geom.sdf(p) < 0)

                    extra.append(sample_volume(inside, c - rr, c + rr, rng=rng,
                                               density_per_um3=density * (head_enrichment - 1.0)))
    if extra:
        pts = np.concatenate([pts] + extra)
    return pts, geom.spine_ids(pts)


def _concatenate(meshes):
    """One (vertices, faces) of several disjoint meshes."""
    vs, fs, n = [], [], 0
    for v, f in meshes:
        vs.append(v)
        fs.append(f + n)
        n += len(v)
    if not vs:
        return np.empty((0, 3)), np.empty((0, 3), dtype=np.int64)
    return np.concatenate(vs), np.concatenate(fs)


def _volume_emitters_meshes(geom, spine_local, density, head_enrichment, rng):
    """Volume label when the spine truth meshes are low-poly or cut without a shaft.

    The shaft part (if any) comes from the implicit solid outside the spine regions,
    each spine from the inside of its own (decimated) truth mesh; ``head_enrichment`` as
    in :func:`_volume_emitters`, with the head ellipsoids clipped to the spine mesh.
    """
    import trimesh

    from ._implicit import sd_ellipsoid

    all_pts, all_sid = [], []
    if geom.layout == "shaft":
        lo, hi = geom.bounds(pad_nm=geom.fillet_nm)
        p = sample_volume(lambda q: (geom.sdf(q) < 0) & (geom.spine_ids(q) < 0), lo, hi,
                          density_per_um3=density, rng=rng)
        all_pts.append(p)
        all_sid.append(np.full(len(p), -1, dtype=np.int64))
    for sp in geom.spines:
        (v, f), _ = spine_local[sp.spine_id]
        inside = _mesh_inside(trimesh.Trimesh(v, f, process=False))
        p = sample_volume(inside, v.min(0), v.max(0), density_per_um3=density, rng=rng)
        for c, fr, r in sp.heads():
            if head_enrichment < 1.0:
                inh = sd_ellipsoid(p, c, fr, r) < 0
                p = p[~(inh & (rng.random(len(p)) > head_enrichment))]
            elif head_enrichment > 1.0:
                rr = r.max()

                def in_head(q, c=c, r=r, fr=fr, inside=inside):
                    return (sd_ellipsoid(q, c, fr, r) < 0) & inside(q)

                p = np.concatenate([p, sample_volume(in_head, c - rr, c + rr, rng=rng,
                                                     density_per_um3=density * (head_enrichment - 1.0))])
        all_pts.append(p)
        all_sid.append(np.full(len(p), sp.spine_id, dtype=np.int64))
    if not all_pts:
        return np.empty((0, 3)), np.empty(0, dtype=np.int64)
    return np.concatenate(all_pts), np.concatenate(all_sid)


def _centreline(sp):
    """True centreline of a bent spine: the neck polyline, then straight along the head."""
    pts = sp.neck_points()
    u = pts[-1] - pts[-2]
    u = u / np.linalg.norm(u)
    far = 2.0 * (sp.params.head_length_nm + sp.params.neck_length_nm + 500.0)
    return [pts, (pts[-1] + u * far)[None, :]]


def _acquire(pts, sid, *, mesh, spine_meshes, spines_table, model, acquisition, drift,
             parameters, rng) -> DendriteSimulation:
    """Emitters -> blinking localizations with noise, drift, background and beads.

    Only the emitter index and frame of each localization are drawn before sorting by
    frame; the i.i.d. quantities (photons, noise) are drawn in the final row order, which
    keeps 10^7 localizations fast and light (one 1D array per column).
    """
    n_frames = int(acquisition.n_frames)
    n_fiducials = int(acquisition.n_fiducials)
    background_rate_per_frame = acquisition.background_rate_per_frame
    fiducial_photons = acquisition.fiducial_photons
    pts = np.asarray(pts, float).reshape(-1, 3)
    n_em = len(pts)
    # drift
    if drift.table is not None:
        dr = drift_from_table(drift.table, n_frames)
    else:
        dr = smooth_drift(n_frames, drift_nm=drift.drift_nm, drift_z_nm=drift.drift_z_nm, rng=rng)
    # fluorophores, then beads (below the fragment, on in ~98 % of the frames)
    em_idx, frame = blink(n_em, n_frames=n_frames, model=model, rng=rng)
    lo = np.asarray(mesh.bounds[0], float)
    hi = np.asarray(mesh.bounds[1], float)
    pad = 500.0
    bead_pos = np.column_stack([rng.uniform(lo[0] - pad, hi[0] + pad, n_fiducials),
                                rng.uniform(lo[1] - pad, hi[1] + pad, n_fiducials),
                                np.full(n_fiducials, lo[2] - 100.0)])
    bead_frames = np.tile(np.arange(n_frames, dtype=np.int64), n_fiducials)
    bead_em = np.repeat(np.arange(n_fiducials, dtype=np.int64) + n_em, n_frames)
    on = rng.random(len(bead_frames)) < 0.98
    n_bg = int(rng.poisson(background_rate_per_frame * n_frames))
    bg_frame = rng.integers(0, n_frames, n_bg)
    emitter = np.concatenate([em_idx, bead_em[on], np.full(n_bg, -1, dtype=np.int64)])
    frames = np.concatenate([frame, bead_frames[on], bg_frame]).astype(np.int64)
    del em_idx, frame, bead_frames, bead_em, on, bg_frame
    n_loc = np.bincount(emitter[emitter >= 0], minlength=n_em + n_fiducials).astype(np.int64)
    key = frames.astype(np.uint16 if n_frames <= 65536 else np.uint32)
    order = np.argsort(key, kind="stable")
    del key
    emitter = emitter[order]
    frames = frames[order]
    del order
    n = len(emitter)
    is_bg = emitter < 0
    # emitter table with a sentinel row for background (index -1)
    em_all = np.concatenate([pts, bead_pos, np.full((1, 3), np.nan)])
    em_sid = np.concatenate([sid, np.full(n_fiducials + 1, -1, dtype=np.int64)])
    is_fid = emitter >= n_em
    photons, background = model.draw_photons(n, rng)
    if n_fiducials:
        photons[is_fid] *= fiducial_photons / model.photons_median
    sxy, sz = model.precision(photons, background)
    box_lo, box_size = lo - pad, hi - lo + 2 * pad
    bg_pos = box_lo + rng.random((int(is_bg.sum()), 3)) * box_size
    obs, true = {}, {}
    for k, name in enumerate("xyz"):
        t = em_all[:, k][emitter]
        o = rng.standard_normal(n)
        o *= sxy if k < 2 else sz
        o += t
        o += dr[:, k][frames]
        o[is_bg] = bg_pos[:, k]
        obs[name], true[name] = o, t
    locs = make_table({"x": obs["x"], "y": obs["y"], "z": obs["z"], "frame": frames,
                       "photons": photons, "background": background, "precision_xy": sxy,
                       "precision_z": sz}, format="simulation")
    params = {**parameters, **_model_params(model), "n_frames": n_frames,
              "background_rate_per_frame": background_rate_per_frame, "drift_nm": drift.drift_nm,
              "drift_z_nm": drift.drift_z_nm, "user_drift": drift.table is not None,
              "n_fiducials": n_fiducials, "fiducial_photons": fiducial_photons}
    locs = with_history(locs, "simulate." + str(parameters.get("kind", "dendrite")), params)
    truth = spec_table(TRUTH_LOCALIZATIONS, {
        "emitter_id": emitter, "x_true": true["x"], "y_true": true["y"], "z_true": true["z"],
        "spine_id": em_sid[emitter], "is_background": is_bg, "is_fiducial": is_fid})
    em_all = em_all[:-1]
    emitters = spec_table(TRUTH_EMITTERS, {
        "emitter_id": np.arange(len(em_all), dtype=np.int64), "x_nm": em_all[:, 0],
        "y_nm": em_all[:, 1], "z_nm": em_all[:, 2], "spine_id": em_sid[:-1],
        "is_fiducial": np.arange(len(em_all)) >= n_em, "n_localizations": n_loc})
    drift_table = spec_table(TRUTH_DRIFT, {"frame": np.arange(n_frames, dtype=np.int64),
                                           "dx_nm": dr[:, 0], "dy_nm": dr[:, 1], "dz_nm": dr[:, 2]})
    return DendriteSimulation(locs, truth, emitters, spines_table, drift_table, mesh,
                              dict(spine_meshes), params)


def _model_params(model: PhotophysicsModel) -> dict:
    return {name: getattr(model, name) for name in model.__slots__}
