"""From a localization table to one checked envelope per spine, a dendrite envelope, files.

:func:`mesh_spines` isolates the spines (or uses given labels), closes open membrane
shells at their cut (spine base plane; dendrite ends) with a disc of points, reconstructs
every spine and the whole dendrite, and builds the per-spine table
(:data:`SPINE_MESH_COLUMNS`, ``data_schemas/spine_meshes.json``). :func:`write_meshes`
writes ``spine_<id>.<ext>``, ``dendrite.<ext>`` and ``spines.parquet``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .._columns import SPINE_MESH_COLUMNS
from .._profile import StepTimes, peak_rss_mb, step
from ..errors import FormatError, ParameterError
from ..schema import ColumnSpec, coordinates, spec_table

__all__ = ["mesh_spines", "SpineMeshes", "write_meshes", "export_mesh", "spine_mesh_table",
           "SPINE_MESH_COLUMNS", "MESH_FORMATS"]

MESH_FORMATS = ("ply", "obj", "stl", "glb")

@dataclass(frozen=True, eq=False)
class SpineMeshes:
    """Result of :func:`mesh_spines`.

    Attributes
    ----------
    envelopes : dict of int to Envelope
        One per spine, by ``spine_id``.
    dendrite : Envelope or None
        The whole fragment (shaft + spines).
    isolation : IsolatedSpines
        The isolation used (labelled table, base points, axes, centreline).
    spines : pyarrow.Table
        Per-spine table (:data:`SPINE_MESH_COLUMNS`), ``mesh_file`` empty until written.
    parameters : dict
    """

    envelopes: Mapping[int, Any]
    dendrite: Any
    isolation: Any
    spines: pa.Table
    parameters: dict = field(default_factory=dict)


#: Jitter of the dendrite's end-cap discs (:func:`_end_caps`), as fractions of their grid
#: step: in the plane, along the normal. A square grid in a plane is degenerate for
#: Delaunay (four points on a circle, many on a sphere); the package's kernel then gives
#: up and Qhull tetrahedralizes the whole dendrite (README sample: 1.06 s against the
#: kernel's 0.15 s without the discs). The jitter puts the discs in general position.
#: Not used for a spine's base disc: the spine's measurements depend on that one (a
#: jittered base disc moved the neck 90th percentiles, docs/performance.md).
END_CAP_JITTER = (0.05, 0.02)


def _cap_disc(points: np.ndarray, origin: np.ndarray, normal: np.ndarray, *, band_nm: float,
              spacing_nm: float, jitter=None) -> np.ndarray:
    """Points filling the opening of a membrane shell at the plane (origin, normal).

    The shell points within ``band_nm`` of the plane give the opening's outline (their
    projected convex hull); the disc is filled on a square grid of ``spacing_nm``.
    ``jitter``: ``(in plane, along the normal)`` fractions of the step by which the
    grid points are moved at random (fixed seed), or None.
    """
    from matplotlib.path import Path as MplPath
    from scipy.spatial import ConvexHull, QhullError

    rel = points - origin
    t = rel @ normal
    near = rel[np.abs(t) < band_nm]
    if len(near) < 8:
        return np.empty((0, 3))
    u = np.cross(normal, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(normal, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(normal, u)
    q = np.c_[near @ u, near @ w]
    try:
        hull = ConvexHull(q)
    except QhullError:
        return np.empty((0, 3))
    poly = q[hull.vertices]
    lo, hi = poly.min(0), poly.max(0)
    step = max(float(spacing_nm), 1e-6)
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0] + step, step), np.arange(lo[1], hi[1] + step, step))
    g = np.c_[gx.ravel(), gy.ravel()]
    # shrink the outline slightly: the disc must close the opening, not stick out of it
    c = poly.mean(0)
    inside = MplPath(c + 0.9 * (poly - c)).contains_points(g)
    g = g[inside]
    h = np.zeros(len(g))
    if jitter is not None and len(g):
        rng = np.random.default_rng(0)
        g = g + rng.uniform(-1.0, 1.0, g.shape) * (jitter[0] * step)
        h = rng.uniform(-1.0, 1.0, len(g)) * (jitter[1] * step)
    return origin + g[:, :1] * u + g[:, 1:] * w + h[:, None] * normal


#: Default of ``dendrite_max_points``: the dendrite mesh is context (display, the shaft
#: of the label volumes); its surface is remeshed on a voxel grid of ~500 nm anyway.
#: On the 588 096-localization, 40 um dendrite of issue #19: 150 000 points 28.0 s, 41 812
#: faces, 125.5 um^3; 50 000 points 15.3 s, 41 920 faces, 133.5 um^3 (load ~7).
DENDRITE_MAX_POINTS = 50_000

#: Most Taubin iterations accepted (each one is a pass over every mesh; a bound on work).
MAX_SMOOTH_ITERATIONS = 1000


def mesh_spines(table: pa.Table, *, label: str = "membrane", method: str = "auto",
                alpha_nm="auto", spine_labels: str | None = None, smooth: int = 10,
                precision_nm=None, dendrite: bool = True, dendrite_max_points: int = DENDRITE_MAX_POINTS,
                spine_max_points: int = 20_000, neck_surface: bool = True,
                progress: bool = False, isolation=None, workers: int = 1,
                **isolate_options) -> SpineMeshes:
    """Isolate spines and reconstruct a checked closed envelope for each, plus the dendrite.

    Parameters
    ----------
    table : pyarrow.Table
        3D localization table of one dendrite fragment (nm).
    label, method, alpha_nm, smooth : see :func:`reconstruct`
    spine_labels : str, optional
        Column with given spine labels (see :func:`isolate_spines`).
    precision_nm : float or (float, float), optional
        Localization precision; default: the median ``precision_xy`` / ``precision_z`` of
        the table (estimated from the data when the table has none).
    dendrite : bool
        Also reconstruct the whole fragment (default True).
    dendrite_max_points : int
        The dendrite envelope uses at most this many localizations (a fixed-seed random
        subset), which bounds its time; default :data:`DENDRITE_MAX_POINTS` (50 000).
        Nothing measured per spine depends on the dendrite mesh (it is written as
        ``dendrite.<ext>`` for display and the label volumes).
    spine_max_points : int
        A spine with more localizations is reconstructed from a fixed-seed random subset
        of this many (default 20 000: one Delaunay of 2x10^4 points). Membrane spines
        are also thinned to a point spacing of about the largest precision (see
        docs/envelope.md: denser sampling made the surfaces of thin, filopodial and
        stubby spines fold).
    neck_surface : bool
        Membrane spines (with a known precision): replace the neck part of each
        envelope by the maximum-likelihood tube of a blurred membrane ring fitted to
        the localizations in ~150 nm windows along the centreline
        (:func:`smlmspine.morphology.fit_neck_surface`, docs/morphology.md). Default
        True; the spine table's ``note`` says where it was applied.
    progress : bool
        tqdm progress bar over spines on stderr.
    isolation : IsolatedSpines, optional
        A precomputed isolation (skips :func:`isolate_spines`).
    workers : int
        Processes for the spine envelopes and the dendrite (1 = none, the default; -1 =
        all cores), at most one per job. The jobs (every spine and the dendrite) start
        biggest first (by number of points). Workers are forked from a server that
        imports :data:`WORKER_MODULES` once, started before the isolation so that the
        imports overlap it. Worker processes import the calling script again, so a
        script needs the ``if __name__ == "__main__":`` guard (without it the pool
        fails and the meshes are made in this process, with a RuntimeWarning). The
        result does not depend on it. Also passed to :func:`isolate_spines` (threads).
    **isolate_options
        Passed to :func:`isolate_spines` (``margin_nm``, ``eps_nm``, ...).

    Returns
    -------
    SpineMeshes
        ``parameters["profile"]`` holds where the time went (docs/performance.md):
        ``steps`` (:meth:`smlmspine._profile.StepTimes.to_dict`, summed over spines and
        workers: ``isolation``, ``spine/thin``, ``spine/base cap``,
        ``spine/reconstruct``, ``spine/hollow fill/...``, ``spine/neck refit/...``,
        ``dendrite/reconstruct``), ``wall_seconds``, ``workers``, ``spine_seconds`` and
        ``spine_points`` by spine id and ``peak_rss_mb`` (this process, the largest
        of the job processes).
    """
    from .._validate import integer, positive
    from .._validate import workers as _workers
    from ._isolate import _precision, isolate_spines

    smooth = integer(smooth, "smooth", minimum=0, maximum=MAX_SMOOTH_ITERATIONS)
    workers = _workers(workers)
    if not (isinstance(alpha_nm, str) and alpha_nm == "auto"):
        alpha_nm = positive(alpha_nm, "alpha_nm", unit="nm (or 'auto')")
    for name, val in (("dendrite_max_points", dendrite_max_points),
                      ("spine_max_points", spine_max_points)):
        if int(val) < 100:
            raise ParameterError(f"{name} must be >= 100, got {val!r}")
    t_start = time.perf_counter()
    main_times = StepTimes()
    pool_start = _start_pool_server(workers) if isolation is None else None
    with main_times.recording():
        with step("isolation"):
            iso = isolation if isolation is not None else isolate_spines(
                table, label=label, spine_labels=spine_labels, workers=workers,
                **isolate_options)
    if precision_nm is None:
        have = any(c in table.column_names for c in ("precision_xy", "precision_z"))
        precision_nm = _precision(table) if have else None
    p = coordinates(iso.table, dims=3)
    sid = iso.table.column("spine_id").to_numpy()
    rows: list[dict] = []
    envs: dict[int, Any] = {}
    spines = iso.spines.to_pydict()
    ids = spines["spine_id"]
    order = np.argsort(sid, kind="stable")     # each spine's rows in table order
    lo = np.searchsorted(sid[order], np.asarray(ids, sid.dtype), side="left")
    hi = np.searchsorted(sid[order], np.asarray(ids, sid.dtype), side="right")
    jobs = []
    for i in range(len(ids)):
        q = p[order[lo[i]:hi[i]]]
        base = np.array([spines["base_x_nm"][i], spines["base_y_nm"][i], spines["base_z_nm"][i]])
        axis = np.array([spines["axis_x"][i], spines["axis_y"][i], spines["axis_z"][i]])
        jobs.append((int(ids[i]), q, base, axis))
    opts = {"label": label, "method": method, "alpha_nm": alpha_nm,
            "precision_nm": precision_nm, "smooth": smooth,
            "spine_max_points": int(spine_max_points), "neck_surface": bool(neck_surface)}
    pd_ = None
    caps_of = None   # the shaft's centreline: the dendrite job closes its cut ends
    if dendrite:
        with main_times.recording(), step("dendrite points"):
            keep = ~iso.is_background
            pd_ = p[keep]
            if len(pd_) > dendrite_max_points:
                pick = np.random.default_rng(0).choice(len(pd_), int(dendrite_max_points),
                                                       replace=False)
                pd_ = pd_[np.sort(pick)]
            if label == "membrane" and iso.centreline is not None and len(pd_) >= 5:
                caps_of = iso.centreline
    dopts = {k: v for k, v in opts.items() if k not in ("spine_max_points", "neck_surface")}
    # every job (the spines and the dendrite), biggest first: the time of a job grows
    # with its number of points, and a pool finishes soonest when the long jobs start
    # first (the short ones fill the gaps at the end)
    tasks = _task_order([len(job[1]) for job in jobs], None if pd_ is None else len(pd_))
    n_workers = _n_workers(workers, len(tasks))
    t_jobs = time.perf_counter()
    results: dict[tuple, tuple] = {}
    if n_workers > 1:
        # one process per core: Qhull and the surface fit hold the GIL for much of their
        # time. Every spine's result depends on its own points only (fixed seeds), so
        # the output does not depend on the worker count.
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            import os

            from .._parentwatch import exit_with
            from .._workers import abandon

            ctx = _pool_context()
            try:
                _ensure_server(ctx)
            except (OSError, RuntimeError):   # the pool's first start will say why
                pass
            with ProcessPoolExecutor(n_workers, mp_context=ctx,
                                     initializer=exit_with, initargs=(os.getpid(),)) as ex:
                try:
                    futs = {(kind, i): (ex.submit(_run_job, "dendrite", (pd_, caps_of), dopts)
                                        if kind == "dendrite" else
                                        ex.submit(_run_job, "spine", jobs[i], opts))
                            for kind, i, _ in tasks}
                    from concurrent.futures import as_completed

                    spine_futs = [futs[("spine", i)] for i in range(len(jobs))]
                    for f in _progress_iter(as_completed(spine_futs), progress, len(spine_futs)):
                        f.result()
                    results = {key: f.result() for key, f in futs.items()}
                except KeyboardInterrupt:   # Ctrl-C, SIGTERM: not every queued spine first
                    abandon(ex)
                    raise
        except (BrokenProcessPool, OSError) as exc:
            # e.g. a calling script without an ``if __name__ == "__main__":`` guard
            import warnings

            warnings.warn(f"spine meshes: process pool failed ({exc!r}); meshing in this "
                          "process (workers=1 avoids the pool)", RuntimeWarning, stacklevel=2)
            n_workers = 1
    if n_workers <= 1:
        spine_tasks = [t for t in tasks if t[0] == "spine"]
        for _, i, _ in _progress_iter(spine_tasks, progress):
            results[("spine", i)] = _run_job("spine", jobs[i], opts)
        if pd_ is not None:
            results[("dendrite", -1)] = _run_job("dendrite", (pd_, caps_of), dopts)
    jobs_wall = time.perf_counter() - t_jobs
    done = [results[("spine", i)][0] for i in range(len(jobs))]
    dend = results[("dendrite", -1)][0] if pd_ is not None else None
    profile = _profile_summary(main_times, jobs, results, n_workers=n_workers,
                               jobs_wall=jobs_wall, wall=time.perf_counter() - t_start,
                               pool_start=pool_start)
    conf_of = dict(zip(ids, spines.get("detection_confidence", [np.nan] * len(ids))))
    for (k, q, base, axis), env in zip(jobs, done):
        envs[k] = env
        rows.append({**_row(k, len(q), base, axis, env),
                     "detection_confidence": float(conf_of.get(k, np.nan))})
    params = {"label": label, "method": method, "alpha_nm": alpha_nm, "smooth": int(smooth),
              "precision_nm": precision_nm, "dendrite": bool(dendrite),
              "dendrite_max_points": int(dendrite_max_points),
              "spine_max_points": int(spine_max_points), "neck_surface": bool(neck_surface),
              "isolation": dict(iso.parameters), "profile": profile}
    return SpineMeshes(envs, dend, iso, spine_mesh_table(rows), params)


def _n_workers(workers, n_jobs: int) -> int:
    """Processes for ``n_jobs`` jobs: ``workers`` (-1 = all cores), at most one per job
    (:func:`smlmspine._workers.n_workers`).

    Worker processes are forked from a server that has imported the envelope modules
    once (:func:`_start_pool_server`): a worker starts in milliseconds, so any number
    of jobs above one is worth a pool.
    """
    from .._workers import n_workers

    return n_workers(workers, n_jobs)


#: What a worker process needs, imported once by the fork server before the workers
#: are forked from it (:func:`_start_pool_server`), which also loads their numba
#: kernels from the on-disk caches (:mod:`._workerinit`). Only these: the morphology
#: features, readers, writers and plots are not imported in workers.
WORKER_MODULES = ("smlmspine._forkserver",   # first: the server ignores Ctrl-C from here
                  "numpy", "scipy.spatial", "trimesh", "smlmspine._open3d",
                  "smlmspine.envelope._export", "smlmspine.envelope._reconstruct",
                  "smlmspine.envelope._alpha", "smlmspine.envelope._alpha_kernels",
                  "smlmspine.envelope._delaunay", "smlmspine.envelope._levelset",
                  "smlmspine.envelope._repair", "smlmspine.envelope._selfintersect",
                  "smlmspine.envelope._winding",
                  "smlmspine.morphology._necksurface", "smlmspine.morphology._bfgs",
                  # last: loads the compiled kernels of the modules above from their caches
                  "smlmspine.envelope._workerinit")


def _task_order(spine_sizes, dendrite_size=None):
    """The jobs of the envelope stage, biggest first: ``(kind, index, n_points)`` with
    kind ``"spine"`` (index into the spines) or ``"dendrite"`` (index -1); ties in
    spine order, the dendrite before a spine of its size.

    >>> _task_order([10, 300, 20], 250)
    [('spine', 1, 300), ('dendrite', -1, 250), ('spine', 2, 20), ('spine', 0, 10)]
    """
    tasks = [("spine", i, int(n)) for i, n in enumerate(spine_sizes)]
    if dendrite_size is not None:
        tasks.append(("dendrite", -1, int(dendrite_size)))
    return sorted(tasks, key=lambda t: (-t[2], t[0] == "spine", t[1]))


def _pool_context():
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_MODULES))
        return ctx
    return mp.get_context("spawn")


def _ensure_server(ctx) -> None:
    """Start the fork server of ``ctx`` (when it has one) now, in this thread, deaf to
    Ctrl-C from its first instruction (:func:`smlmspine._forkserver.start`); a pool
    would otherwise start it on first use, from whichever thread submits."""
    if ctx.get_start_method() == "forkserver":
        from .._forkserver import start

        start()


def _start_pool_server(workers):
    """Start the fork server of the worker pool now (it imports :data:`WORKER_MODULES`
    in its own process while this one isolates the spines); returns the seconds spent
    here, or None without a pool."""
    if _n_workers(workers, 2) <= 1:
        return None
    t = time.perf_counter()
    ctx = _pool_context()
    try:
        _ensure_server(ctx)
    except (OSError, RuntimeError):   # the pool will say why (and fall back)
        return None
    return time.perf_counter() - t


def _run_job(kind, args, opts):
    """One job of the envelope stage (a spine or the dendrite), timed.

    Returns ``(envelope, step times as a dict, peak RSS of this process in MB)``.
    """
    times = StepTimes()
    with times.recording():
        if kind == "dendrite":
            with step("dendrite"):
                env = _mesh_dendrite(*args, **opts)
        else:
            with step("spine"):
                env = _mesh_one(*args, **opts)
    return env, times.to_dict(), peak_rss_mb(children=False)


def _profile_summary(main_times, jobs, results, *, n_workers, jobs_wall, wall, pool_start):
    """``parameters["profile"]`` of :func:`mesh_spines` (see docs/performance.md)."""
    per_job = [StepTimes.from_dict(r[1]) for r in results.values()]
    total = StepTimes.merged([main_times, *per_job])
    spine_s = {int(jobs[i][0]): round(float(results[("spine", i)][1]["spine"]["seconds"]), 4)
               for i in range(len(jobs))}
    rss = [r[2] for r in results.values()]
    out = {"wall_seconds": round(wall, 4), "jobs_wall_seconds": round(jobs_wall, 4),
           "workers": int(n_workers), "steps": total.to_dict(),
           "spine_seconds": spine_s,
           "spine_points": {int(j[0]): int(len(j[1])) for j in jobs},
           "peak_rss_mb": {"main": round(peak_rss_mb(children=False), 1),
                           "jobs": round(max(rss), 1) if rss else None}}
    if pool_start is not None:
        out["pool_server_start_seconds"] = round(pool_start, 4)
    return out


def _progress_iter(items, progress, total=None):
    if progress:
        from tqdm import tqdm

        return tqdm(items, desc="spine meshes", unit="spine", total=total)
    return items


def _mesh_dendrite(pts, centreline=None, *, label, method, alpha_nm, precision_nm, smooth):
    """The dendrite's envelope; with the shaft's ``centreline``, its two cut ends are
    first closed with discs of points (:func:`_end_caps`; here in the job rather than
    before the jobs start, where it held up the spines' by ~0.15 s)."""
    from ._reconstruct import reconstruct

    if centreline is not None:
        with step("end caps"):
            from ._alpha import point_spacing_nm

            sp_d = point_spacing_nm(pts, precision_nm)
            pts = np.r_[pts, _end_caps(pts, centreline, sp_d, precision_nm)]
    try:
        with step("reconstruct"):
            return reconstruct(pts, label=label, method=method, alpha_nm=alpha_nm,
                               precision_nm=precision_nm, smooth=smooth)
    except ParameterError as exc:
        return _failed(f"reconstruction impossible: {exc}", label, method, len(pts))


def _mesh_one(k, q, base, axis, *, label, method, alpha_nm, precision_nm, smooth,
              spine_max_points, neck_surface=False):
    """The envelope of one spine from its localizations (in a worker process or not)."""
    from ._alpha import point_spacing_nm
    from ._reconstruct import reconstruct

    with step("thin"):
        q = _thin(k, q, label=label, precision_nm=precision_nm,
                  spine_max_points=spine_max_points)
    pts = q
    if label == "membrane" and len(q) >= 4:
        with step("base cap"):
            sp = point_spacing_nm(q, precision_nm) if len(q) >= 5 else 20.0
            band = 2.0 * sp + (max(precision_nm) if precision_nm else 2.0 * sp)
            q = _drop_skirt(q, base, axis, spacing_nm=sp, band_nm=band,
                            precision_nm=precision_nm)
            cap = _cap_disc(q, base, axis, band_nm=band, spacing_nm=0.6 * sp)
            pts = np.r_[q, cap]
    try:
        with step("reconstruct"):
            env = reconstruct(pts, label=label, method=method, alpha_nm=alpha_nm,
                              precision_nm=precision_nm, smooth=smooth)
    except ParameterError as exc:
        return _failed(f"reconstruction impossible: {exc}", label, method, len(q))
    if label == "membrane" and env.is_watertight:
        with step("hollow fill"):
            env = _fill_hollow(env, base, axis, precision_nm)
    if neck_surface and label == "membrane" and precision_nm and env.is_watertight:
        with step("neck refit"):
            env = _with_neck_surface(env, q, base, axis, precision_nm)
    if label == "membrane" and precision_nm and env.is_watertight:
        with step("recentre"):
            env = _recentred(env, q, base, axis, precision_nm)
    return env


def _recentred(env, q, base, axis, precision_nm):
    """The envelope moved onto the median depth of its localizations, region by region
    (:func:`~smlmspine.envelope._recentre.recentre`); the record in
    ``parameters["recentre"]``."""
    from dataclasses import replace

    from ._recentre import recentre

    # a refitted neck is the neck refit's (its ring fits model the far wall's
    # localizations, and a window in the flare under a head must not read wider): only
    # the part beyond it moves. A refitted stubby dome (windows as wide as the head) moves.
    ns = env.parameters.get("neck_surface") or {}
    keep = None
    if ns.get("applied"):
        from ..morphology._necksurface import NeckSurfaceFit

        fit = NeckSurfaceFit.from_dict(ns)
        if fit.is_neck:
            keep = float(fit.s_end_nm)
    mesh, rec = recentre(env.mesh, q, base, axis, precision_nm, keep_below_nm=keep)
    params = dict(env.parameters, recentre=rec)
    if not rec["applied"]:
        return replace(env, parameters=params)
    note = (env.note + "; " if env.note else "") + (
        f"recentred on its localizations (median {rec['median_shift_nm']:+.0f} nm inward, "
        f"volume {100 * rec['volume_change']:+.1f} %)")
    return replace(env, mesh=mesh, parameters=params, note=note)


def _thin(k, q, *, label, precision_nm, spine_max_points):
    """A spine's localizations thinned for its envelope (see :func:`mesh_spines`)."""
    from ._alpha import point_spacing_nm

    n_q = len(q)
    n_use = min(n_q, int(spine_max_points))
    if label == "membrane" and precision_nm and n_q >= 300:
        # thin the membrane to a point spacing of about the largest precision: denser,
        # the automatic alpha (2.5 spacings) gets small against the blur of the shell and
        # the fitted surfaces of thin, filopodial and stubby spines fold. Spacing of a
        # sampled surface ~ n^(-1/2).
        sp0 = point_spacing_nm(q[:: max(1, n_q // 5000)], precision_nm) * np.sqrt(
            min(1.0, 5000 / n_q))
        target = float(np.max(precision_nm))
        if sp0 < target:
            n_use = min(n_use, max(300, int(n_q * (sp0 / target) ** 2)))
    if n_use < n_q:
        pick = np.random.default_rng(k).choice(n_q, n_use, replace=False)
        q = q[np.sort(pick)]
    return q


#: A membrane spine envelope is hollow when at least this many of HOLLOW_SECTIONS
#: cross-sections along its axis have holes (each > HOLLOW_MIN_HOLE of the section).
HOLLOW_SECTIONS = 9
HOLLOW_MIN_SECTIONS = 2
HOLLOW_MIN_HOLE = 0.05


def _hollow_sections(mesh, base, axis) -> int:
    """Cross-sections (of HOLLOW_SECTIONS, perpendicular to the axis) with empty holes
    (a hole around another part of the section, as a head's rim around its neck, is
    not counted)."""
    h = (np.asarray(mesh.vertices) - base) @ axis
    n = 0
    for t in np.linspace(h.min(), h.max(), HOLLOW_SECTIONS + 2)[1:-1]:
        try:
            sec = mesh.section(plane_origin=base + t * axis, plane_normal=axis)
            if sec is None:
                continue
            polys = sec.to_2D()[0].polygons_full
            for poly in polys:
                holes = [type(poly)(i) for i in poly.interiors]
                area = sum(abs(h.area) for h in holes)
                # a hole holding another part of the section is not a hollow: the rim of
                # a head overhanging its neck (a bell) rings the neck's section
                if area > HOLLOW_MIN_HOLE * abs(poly.area + area) and not any(
                        o is not poly and o.representative_point().within(h)
                        for h in holes for o in polys):
                    n += 1
                    break
        except ImportError:  # a missing dependency (rtree, shapely) is not a geometry
            raise
        except Exception:  # noqa: BLE001 - a section trimesh cannot close counts as none
            continue
    return n


def _fill_hollow(env, base, axis, precision_nm):
    """The envelope with the holes of its cross-sections filled, when it is hollow.

    A sparsely labelled membrane around a wide spine (stubby spines, spines cut at the
    base) gives an alpha solid that is only the membrane's wall; the surface fit then
    makes both sides of that wall, and the "spine" is a cup or a hollow shell (simulated
    stubby spines: 0.38-0.85 of the true volume). Spines have no holes in their
    cross-sections along the axis: where two or more of nine have holes, the surface is
    rebuilt as the level set of its outer surface with every section filled
    (:func:`~smlmspine.envelope._levelset.levelset_remesh` with ``fill_axis``).
    """
    from dataclasses import replace

    import trimesh

    from ._levelset import rebuild_surface
    from ._repair import mesh_volume, validate_envelope

    with step("sections"):
        n_hollow = _hollow_sections(env.mesh, base, axis)
    params = dict(env.parameters, hollow_sections=int(n_hollow))
    if n_hollow < HOLLOW_MIN_SECTIONS:
        return replace(env, parameters=params)
    with step("level set"):
        v, f, pitch, _ = rebuild_surface(env.mesh.vertices, env.mesh.faces,
                                         precision_nm=precision_nm, fill_axis=axis)
    if not len(f):
        return replace(env, parameters=params)
    with step("validate"):
        why = validate_envelope(v, f)
    filled = trimesh.Trimesh(v, f, process=False)
    vol0 = mesh_volume(env.mesh)
    gain = mesh_volume(filled) / vol0 - 1.0 if vol0 > 0 else float("nan")
    params["hollow_fill"] = {"pitch_nm": pitch, "volume_gain": float(gain), "refused": why}
    if why:
        return replace(env, parameters=params)
    note = (env.note + "; " if env.note else "") + (
        f"hollow membrane envelope ({n_hollow} of {HOLLOW_SECTIONS} sections with holes): "
        f"sections filled along the spine axis, volume {100 * gain:+.0f} %")
    return replace(env, mesh=filled, parameters=params, note=note)


def _with_neck_surface(env, q, base, axis, precision_nm):
    """The envelope with its neck refitted to the localizations (see mesh_spines).

    The refit moves vertices of the (possibly subdivided) shell surface; where the moves
    make the surface intersect itself they are shortened
    (:func:`~smlmspine.envelope._selfintersect.untangle`, exact test then Open3D's;
    refused beyond the bounds of :data:`~smlmspine.envelope._reconstruct.REPAIR_MAX_VOLUME_CHANGE`
    and ``REPAIR_MAX_SHIFT_SIGMA``). A refit that stays invalid is dropped: the shell
    surface is kept and the parameters say why.
    """
    from dataclasses import replace

    import trimesh

    from ..morphology._necksurface import fit_neck_surface
    from ._reconstruct import _gate, _levelset
    from ._repair import check_mesh, validate_envelope
    from ._selfintersect import open3d_self_intersections, untangle

    with step("fit"):
        mesh, fit = fit_neck_surface(env.mesh, q, base, precision_nm=precision_nm,
                                     base_axis=axis)
    params = dict(env.parameters, neck_surface=fit.to_dict())
    if not fit.applied:
        return replace(env, parameters=params)
    # the surface the refit moved: the shell surface, subdivided as the refit did
    v0, f0 = np.asarray(env.mesh.vertices, float), np.asarray(env.mesh.faces)
    while len(f0) < len(mesh.faces):
        v0, f0 = trimesh.remesh.subdivide(v0, f0)
    with step("validate"):
        reason = validate_envelope(mesh.vertices, mesh.faces)
    how = ""
    if reason and not check_mesh(mesh.vertices, mesh.faces, self_intersection=False):
        # folded: rebuild the refitted surface as a level set (cannot self-intersect)
        with step("level set"):
            rebuilt, why = _levelset(mesh, params, float(np.max(precision_nm)))
        if rebuilt is not None:
            mesh, reason, how = rebuilt, "", f"; rebuilt as a level set: {why}"
    if reason and len(v0) == len(mesh.vertices) and np.array_equal(f0, mesh.faces):
        faces = np.asarray(mesh.faces)
        with step("untangle"):
            r = untangle(v0, mesh.vertices, faces,
                         extra_bad=lambda x: open3d_self_intersections(x, faces))
        if r.n_reverted:
            rec = r.to_dict()
            reason = _gate(r, float(np.max(precision_nm)))
            if reason:
                rec["refused"] = reason
            params["untangle"] = dict(params.get("untangle", {}), neck_refit=rec)
            mesh = trimesh.Trimesh(r.vertices, faces, process=False)
        if not reason:
            with step("validate"):
                reason = validate_envelope(mesh.vertices, mesh.faces)
    if reason:   # never pass on a broken mesh: keep the shell surface and say why
        params["neck_surface"]["applied"] = False
        params["neck_surface"]["reason"] = f"refitted neck not valid ({reason})"
        return replace(env, parameters=params)
    note = (env.note + "; " if env.note else "") + (
        f"neck refitted to the localizations over {fit.s_start_nm:.0f}-{fit.s_end_nm:.0f} nm"
        + how)
    return replace(env, mesh=mesh, parameters=params, note=note)


#: Lowest height above the base plane at which the spine's own outline is taken by
#: :func:`_drop_skirt` (nm): at MINFLUX precision 2.5 sigma is ~7 nm, below the shaft
#: membrane's rise within a spine's footprint; the outline then took in a 430-530 nm
#: strip of shaft membrane along the shaft, and the disc closing the base made a fin
#: (simulated MINFLUX-like mushroom necks +50-60 %).
SKIRT_MIN_NM = 20.0


def _drop_skirt(q, base, axis, *, spacing_nm, band_nm, precision_nm):
    """Remove the shaft membrane around a spine's base from its localizations.

    Along the shaft the shaft surface lies in the base plane, so the spine's cylinder
    holds a noisy layer of shaft membrane just above its base plane, wider than the
    spine (a "skirt"). Capped with the disc, it made a thin pancake that the surface
    fit folded (stubby spine volumes 0.05-0.5 of the truth). The spine's own outline
    is taken just above that layer (``t0 = max(2.5 sigma, SKIRT_MIN_NM)`` along the axis: per 15-degree
    sector around the axis, the median distance of the points in
    ``[t0, t0 + band]``); below ``t0`` only points inside that outline (grown by one
    spacing + 2 sigma) are kept.
    """
    if precision_nm:
        sxy, sz = (precision_nm if np.ndim(precision_nm) else (precision_nm, precision_nm))
        sig = float(np.sqrt(sxy ** 2 * (1 - axis[2] ** 2) + sz ** 2 * axis[2] ** 2))
    else:
        sig = spacing_nm
    t0 = max(2.5 * sig, SKIRT_MIN_NM)
    rel = q - base
    t = rel @ axis
    above = (t >= t0) & (t < t0 + band_nm)
    low = t < t0
    if above.sum() < 8 or not low.any():
        return q
    u = np.cross(axis, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(axis, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    xy = np.c_[rel @ u, rel @ w]
    # outline: per angular sector around the axis, the median distance of the points
    # just above t0 (the spine's wall; the noise tail of the shaft layer is a minority)
    n_sec = 24
    rho = np.hypot(xy[:, 0], xy[:, 1])
    sec = np.minimum(((np.arctan2(xy[:, 1], xy[:, 0]) + np.pi) / (2 * np.pi) * n_sec)
                     .astype(np.int64), n_sec - 1)
    out = np.full(n_sec, np.nan)
    for s_ in range(n_sec):
        r_s = rho[above & (sec == s_)]
        if r_s.size >= 3:
            out[s_] = np.median(r_s)
    if np.isnan(out).all():
        return q
    out = np.where(np.isnan(out), np.nanmedian(out), out)
    keep = ~low
    keep[low] = rho[low] < out[sec[low]] + spacing_nm + 2.0 * sig
    return q[keep]


def _end_caps(p, curve, spacing, precision_nm):
    """Discs closing the two ends of a membrane-labelled shaft (open where it was cut)."""
    out = []
    for end, sign in ((0, -1.0), (-1, 1.0)):
        c = curve.points_nm[end]
        t = curve.tangents[end] * sign
        reach = float(np.max((p - c) @ t))
        origin = c + reach * t
        band = 2.0 * spacing + (max(precision_nm) if precision_nm else 2.0 * spacing)
        rel = p - origin
        near_axis = np.linalg.norm(rel - np.outer(rel @ t, t), axis=1) < 1.2 * curve.radius_nm[end]
        disc = _cap_disc(p[near_axis], origin - 0.5 * band * t, t, band_nm=band,
                         spacing_nm=0.6 * spacing, jitter=END_CAP_JITTER)
        out.append(disc)
    return np.concatenate(out) if out else np.empty((0, 3))


def _failed(reason, label, method, n):
    import trimesh

    from ._result import Envelope

    return Envelope(mesh=trimesh.Trimesh(), is_watertight=False, reason=reason, method=method,
                    label=label, alpha_nm=float("nan"), held_fraction=0.0, n_points=int(n))


def _row(k, n, base, axis, env) -> dict:
    return {"spine_id": k, "n_localizations": n,
            "base_x_nm": float(base[0]), "base_y_nm": float(base[1]), "base_z_nm": float(base[2]),
            "axis_x": float(axis[0]), "axis_y": float(axis[1]), "axis_z": float(axis[2]),
            "is_watertight": bool(env.is_watertight), "reason": env.reason,
            "method": env.method, "alpha_nm": float(env.alpha_nm),
            "volume_um3": env.volume_nm3 * 1e-9 if env.is_watertight else float("nan"),
            "surface_area_um2": float(env.mesh.area) * 1e-6 if len(env.mesh.faces) else float("nan"),
            "mesh_file": ""}


def spine_mesh_table(rows: list[Mapping[str, Any]], *,
                     registry: Mapping[str, ColumnSpec] = SPINE_MESH_COLUMNS) -> pa.Table:
    """Build the per-spine table from row dicts, in increasing ``spine_id``.

    Parameters
    ----------
    rows : list of mapping of str to value
        One mapping per spine, holding a value for every column of ``registry`` (keys
        not in ``registry`` are ignored); lengths in nm, volumes in um^3, areas in um^2
        as the registry says.
    registry : mapping of str to ColumnSpec
        The table's columns (default :data:`SPINE_MESH_COLUMNS`); the morphology stage
        passes it extended with its features (each row must then give them).

    Returns
    -------
    pyarrow.Table
        One row per spine in increasing ``spine_id``, the columns of ``registry`` in
        its order with their ``unit`` and ``description`` field metadata, and
        ``source_step`` = ``"envelope.mesh_spines"`` in the table metadata.

    Raises
    ------
    KeyError
        A row lacks a column of ``registry``.
    SchemaError
        A value cannot be stored with its column's type.

    Examples
    --------
    >>> spine_mesh_table([]).num_rows
    0
    """
    rows = sorted(rows, key=lambda r: r["spine_id"])
    cols = {name: [r[name] for r in rows] for name in registry}
    if not rows:
        cols = {name: pa.array([], type=spec.type) for name, spec in registry.items()}
    return spec_table(registry, cols, metadata={"source_step": "envelope.mesh_spines"})


def export_mesh(mesh, path: str | Path, *, spine_id: int | None = None,
                file_format: str | None = None) -> Path:
    """Write one mesh (nm coordinates) as PLY, OBJ, STL or GLB, atomically.

    PLY and OBJ carry a header comment ``smlmspine spine_id=<id> units=nm`` (``smlmspine
    dendrite units=nm`` without ``spine_id``). The file is written under a temporary
    name and renamed: on a failure nothing is left at ``path``.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The mesh, coordinates in nm (written as they are; PLY, STL and GLB store them as
        float32).
    path : str or pathlib.Path
        Output file; its folder must exist.
    spine_id : int, optional
        Spine label for the header comment; None (default): the dendrite.
    file_format : {"ply", "obj", "stl", "glb"}, optional
        Format (any case); default: the extension of ``path``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FormatError
        The format (given, or from the extension) is not one of :data:`MESH_FORMATS`.
    OSError
        The file cannot be written (missing folder, no permission, full disk).

    Examples
    --------
    >>> import tempfile, trimesh
    >>> box = trimesh.creation.box((200.0, 100.0, 100.0))
    >>> out = export_mesh(box, Path(tempfile.mkdtemp()) / "spine_3.ply", spine_id=3)
    >>> [ln for ln in out.read_bytes().split(b"\\n")[:4] if ln.startswith(b"comment")]
    [b'comment smlmspine spine_id=3 units=nm']
    """
    from ..io import atomic_output

    path = Path(path)
    fmt = (file_format or path.suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        raise FormatError(f"mesh format must be one of {', '.join(MESH_FORMATS)}, got "
                          f"{fmt!r}", path=path)
    tag = "smlmspine " + (f"spine_id={spine_id} " if spine_id is not None else "dendrite ") \
        + "units=nm"
    if fmt == "obj":
        data = mesh.export(file_type="obj", header=tag, include_normals=False)
        data = data.encode() if isinstance(data, str) else data
    else:
        data = mesh.export(file_type=fmt)
        if fmt == "ply":
            head, sep, rest = data.partition(b"end_header\n")
            lines = [ln for ln in head.split(b"\n") if ln and not ln.startswith(b"comment")]
            lines.insert(2, b"comment " + tag.encode())
            data = b"\n".join(lines) + b"\n" + sep + rest
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return path


def write_meshes(result: SpineMeshes, outdir: str | Path, *, file_format: str = "ply") -> pa.Table:
    """Write ``spine_<id>.<ext>``, ``dendrite.<ext>`` and ``spines.parquet`` to ``outdir``.

    Meshes that are not watertight are written too (their row says why), never silently;
    a spine without a mesh (no faces) gets no file and an empty ``mesh_file``. All or
    nothing: on a failure (a full disk) the files written are removed, a folder it
    created is removed and files it replaced are restored
    (:class:`smlmspine._outputs.Outputs`).

    Parameters
    ----------
    result : SpineMeshes
        The result of :func:`mesh_spines` (meshes in nm).
    outdir : str or pathlib.Path
        Output folder; created with its missing parents when it does not exist.
    file_format : {"ply", "obj", "stl", "glb"}
        Mesh format (default ``"ply"``; see :func:`export_mesh`).

    Returns
    -------
    pyarrow.Table
        The per-spine table as written to ``spines.parquet``: ``result.spines`` with
        ``mesh_file`` filled in (the file name in ``outdir``, empty when none was
        written).

    Raises
    ------
    ParameterError
        ``file_format`` is not one of :data:`MESH_FORMATS`.
    FormatError
        ``outdir`` is a file, cannot be created or is not writable, or a file cannot be
        written (the outputs are then rolled back).
    """
    from .._outputs import Outputs

    if file_format not in MESH_FORMATS:
        raise ParameterError(f"file_format must be one of {MESH_FORMATS}, got {file_format!r}")
    with Outputs() as transaction:
        return _write_meshes(result, transaction.folder(outdir, option="outdir", parents=True),
                             file_format)


def _write_meshes(result: SpineMeshes, outdir: Path, file_format: str) -> pa.Table:
    import pyarrow.parquet as pq

    from ..io import atomic_output

    files = []
    for k in result.spines.column("spine_id").to_pylist():
        env = result.envelopes[k]
        name = f"spine_{k}.{file_format}"
        if len(env.mesh.faces):
            export_mesh(env.mesh, outdir / name, spine_id=k, file_format=file_format)
            files.append(name)
        else:
            files.append("")
    if result.dendrite is not None and len(result.dendrite.mesh.faces):
        export_mesh(result.dendrite.mesh, outdir / f"dendrite.{file_format}",
                    file_format=file_format)
    tbl = result.spines
    idx = tbl.schema.get_field_index("mesh_file")
    tbl = tbl.set_column(idx, tbl.schema.field(idx), pa.array(files, pa.string()))
    with atomic_output(outdir / "spines.parquet") as tmp:
        pq.write_table(tbl, tmp)
    return tbl
