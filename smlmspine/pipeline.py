"""The stages composed: localizations -> drift -> merge -> spines -> meshes -> features.

:func:`run` is what ``smlmspine run IN -o OUTDIR`` does. Every parameter, the input's
provenance and each stage's summary go to ``OUTDIR/run.json``; the outputs are those of
``smlmspine mesh`` (``spine_<id>.ply``, ``dendrite.ply``, ``spines.parquet``, now with
the morphology features and classes) plus the corrected, merged localization table with
``spine_id`` and the drift table and plot.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import FormatError, ParameterError
from .schema import coordinates, jsonable, with_history

__all__ = ["run", "RunResult", "spine_features", "DRIFT_METHODS"]

DRIFT_METHODS = ("aim", "rcc", "fiducial", "none")


@dataclass(frozen=True, eq=False)
class RunResult:
    """What :func:`run` produced.

    Attributes
    ----------
    outdir : Path
    localizations : pyarrow.Table
        Drift-corrected, merged localizations with ``spine_id``.
    spines : pyarrow.Table
        One row per spine: envelope columns + morphology features + class.
    summary : dict
        The content of ``run.json``.
    """

    outdir: Path
    localizations: pa.Table
    spines: pa.Table
    summary: dict = field(default_factory=dict)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def spine_features(meshes, *, label: str = "membrane", precision_nm=None, step_nm: float = 10.0,
                   rules=None, progress: bool = False) -> pa.Table:
    """Morphology of every spine envelope of a :class:`~smlmspine.envelope.SpineMeshes`.

    Each spine is measured from its base point (from the isolation) with
    :func:`smlmspine.morphology.measure_spine`, its neck diameter is also fitted to its
    localizations (:func:`~smlmspine.morphology.neck_fit_for_spine`), and it is classified
    with the rules. Returns ``meshes.spines`` extended with the feature columns
    (:data:`smlmspine.morphology.SPINE_MESH_FEATURE_COLUMNS`, ``data_schemas/spine_mesh_features.json``); spines whose mesh is
    not watertight or cannot be measured get NaN features and the reason. The base plane
    is the isolation's (base point and axis); ``volume_um3`` and ``surface_area_um2`` are
    replaced by the morphology's (the spine distal of its base section, no closing cap);
    impossible values become NaN (``quality``, ``quality_reason``, ``trustworthy``;
    :func:`smlmspine.morphology.check_plausibility`).
    """
    from .morphology import (ClassRules, SPINE_MESH_FEATURE_COLUMNS, check_plausibility,
                             classify_rules, measure_spine, neck_fit_for_spine, quality_columns)
    from .schema import spec_table

    rules = rules or ClassRules()
    base_rows = meshes.spines.to_pylist()
    p = coordinates(meshes.isolation.table, dims=3)
    sid = meshes.isolation.table.column("spine_id").to_numpy()
    sigma = None
    if precision_nm is not None:
        sigma = float(np.atleast_1d(precision_nm)[0])
    extra = [k for k in SPINE_MESH_FEATURE_COLUMNS if k not in meshes.spines.column_names]
    rows = []
    it = base_rows
    if progress:
        from tqdm import tqdm

        it = tqdm(base_rows, desc="measuring spines", unit="spine")
    for row in it:
        k = row["spine_id"]
        env = meshes.envelopes[k]
        feats: dict[str, Any] = {name: np.nan for name in extra}
        feats.update(n_tips=-1, spine_class="", neck_fit_diameter_nm=np.nan,
                     neck_fit_diameter_err_nm=np.nan)
        reason = row.get("reason", "")
        feats.update(quality_columns([], measured=False), volume_um3=np.nan, surface_area_um2=np.nan)
        if env.is_watertight:
            base = [row["base_x_nm"], row["base_y_nm"], row["base_z_nm"]]
            normal = [row.get("axis_x", np.nan), row.get("axis_y", np.nan), row.get("axis_z", np.nan)]
            if not np.all(np.isfinite(normal)) or not np.any(normal):
                normal = None
            try:
                # the base plane of the isolation (shaft surface or base-most localizations)
                m = measure_spine(env.mesh, base_point_nm=base, base_normal=normal, step_nm=step_nm)
            except ParameterError as exc:
                reason = f"not measurable: {exc}"
            else:
                d = m.to_dict()
                feats.update({name: d[name] for name in extra if name in d})
                # volume and area of the spine proper (no closing cap; docs/morphology.md)
                feats.update(volume_um3=d["volume_um3"], surface_area_um2=d["surface_area_um2"])
                fit = neck_fit_for_spine(p[sid == k], m, label=label, sigma_nm=sigma)
                if fit is not None:
                    feats.update(neck_fit_diameter_nm=fit.diameter_nm,
                                 neck_fit_diameter_err_nm=fit.diameter_err_nm)
                # impossible values -> NaN (with the reason) before they feed the class;
                # the point-based neck fit (NaN when the localizations show no neck)
                # feeds the head test (ClassRules)
                conv = fit.converged if fit is not None else None
                checked, _ = check_plausibility({**d, **feats}, precision_nm=sigma,
                                                neck_fit_converged=conv)
                cls = classify_rules(checked, rules)
                checked, why = check_plausibility({**d, **feats, "spine_class": cls},
                                                  precision_nm=sigma, neck_fit_converged=conv)
                feats.update({name: checked[name] for name in feats if name in checked})
                feats.update(spine_class=cls, **quality_columns(why))
        if reason and feats["quality"] == "not_measured":
            feats["quality_reason"] = reason
        rows.append({**row, **feats, "reason": reason})
    cols = {name: [r[name] for r in rows] for name in SPINE_MESH_FEATURE_COLUMNS}
    if not rows:
        cols = {name: pa.array([], type=spec.type) for name, spec in SPINE_MESH_FEATURE_COLUMNS.items()}
    return spec_table(SPINE_MESH_FEATURE_COLUMNS, cols,
                      metadata={"source_step": "pipeline.spine_features", "step_nm": step_nm,
                                "label": label})


def run(source: str | Path | pa.Table, outdir: str | Path, *, label: str = "membrane",
        drift: str = "aim", segment_frames: int | None = None, merge: bool = True,
        method: str = "auto", alpha_nm="auto", mesh_format: str = "ply", step_nm: float = 10.0,
        neck_surface: bool = True, workers: int = 1, pixel_size_nm: float | None = None, quiet: bool = False, **read_options) -> RunResult:
    """Read -> (drift) -> merge -> isolate spines -> meshes -> features -> classes.

    Parameters
    ----------
    source : path or pyarrow.Table
        A localization file (any format) or table, 3D, in nm.
    outdir : path
        Output folder (created; existing files of the same names are replaced).
    label : {"membrane", "volume"}
        What was labelled.
    drift : {"aim", "rcc", "fiducial", "none"}
        Drift estimation method; ``"none"`` skips the stage. Without ``frame`` or
        ``time_s`` the stage is skipped and ``run.json`` says so.
    merge : bool
        Merge blinks (STORM) or average traces (MINFLUX) before isolating spines.
    method, alpha_nm : see :func:`smlmspine.envelope.reconstruct`.
    mesh_format : {"ply", "obj", "stl", "glb"}
    step_nm : float
        Cross-section spacing of the morphology.
    neck_surface : bool
        Refit the necks of membrane envelopes to the localizations (see
        :func:`smlmspine.envelope.mesh_spines`).
    workers : int
        Processes for the spine envelopes (see :func:`smlmspine.envelope.mesh_spines`;
        1 = none, -1 = all cores; a calling script then needs the
        ``if __name__ == "__main__":`` guard). The result does not depend on it.

    Returns
    -------
    RunResult
    """
    from . import envelope
    from ._labels import check_label
    from .io import atomic_output, read, write
    from .schema import metadata

    if drift not in DRIFT_METHODS:
        raise ParameterError(f"drift must be one of {DRIFT_METHODS}, got {drift!r}")
    check_label(label)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise FormatError("output path exists and is not a folder", path=outdir)
    params = {"label": label, "drift": drift, "segment_frames": segment_frames, "merge": merge,
              "method": method, "alpha_nm": alpha_nm, "mesh_format": mesh_format,
              "step_nm": step_nm, "neck_surface": bool(neck_surface), "workers": int(workers), "pixel_size_nm": pixel_size_nm, "read_options": read_options}
    t0 = time.perf_counter()
    stages: dict[str, Any] = {}
    if isinstance(source, pa.Table):
        table = source
        src = metadata(table).get("source")
    else:
        table = read(source, pixel_size_nm=pixel_size_nm, **read_options)
        src = str(source)
    if "z" not in table.column_names:
        raise ParameterError("spine envelopes need 3D localizations; the input has no z column")
    stages["read"] = {"source": src, "format": metadata(table).get("format"),
                      "n_localizations": table.num_rows}
    _log(f"read {table.num_rows} localizations from {src}", quiet)

    drift_model = None
    has_time = "frame" in table.column_names or "time_s" in table.column_names
    if drift != "none" and has_time:
        from .drift import correct

        t = time.perf_counter()
        res = correct(table, method=drift, segment_frames=segment_frames)
        table, drift_model = res.table, res.model
        stages["drift"] = {**res.model.to_dict(), "seconds": time.perf_counter() - t}
        _log(f"drift ({drift}): corrected", quiet)
    else:
        stages["drift"] = {"skipped": "drift='none'" if drift == "none" else
                           "no frame or time_s column"}

    if merge and ("frame" in table.column_names or "track_id" in table.column_names):
        from .merge import merge_blinks

        n_before = table.num_rows
        t = time.perf_counter()
        table = merge_blinks(table)
        stages["merge"] = {"n_before": n_before, "n_after": table.num_rows,
                           "seconds": time.perf_counter() - t}
        _log(f"merged {n_before} localizations into {table.num_rows}", quiet)
    else:
        stages["merge"] = {"skipped": "merge=False" if not merge else "no frame or track_id column"}

    t = time.perf_counter()
    import warnings

    from .errors import QualityWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        meshes = envelope.mesh_spines(table, label=label, method=method, alpha_nm=alpha_nm,
                                      neck_surface=neck_surface, workers=workers,
                                      progress=not quiet)
    run_warnings = []
    for w in caught:
        if issubclass(w.category, QualityWarning):
            run_warnings.append(str(w.message))
        # re-issued to the caller (the CLI prints each as one line on stderr)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    dendrite = dict(meshes.isolation.dendrite)
    stages["mesh"] = {"n_spines": meshes.spines.num_rows,
                      "n_watertight": int(np.sum(meshes.spines.column("is_watertight").to_numpy(
                          zero_copy_only=False))) if meshes.spines.num_rows else 0,
                      "seconds": time.perf_counter() - t, "parameters": meshes.parameters}
    _log(f"dendrite score {dendrite.get('dendrite_score', float('nan')):.2f}"
         + ("" if dendrite.get("looks_like_dendrite", True) else
            " (the data do not look like a dendrite fragment)"), quiet)
    _log(f"isolated {meshes.spines.num_rows} spines and reconstructed their envelopes", quiet)

    t = time.perf_counter()
    precision = meshes.parameters.get("precision_nm")
    spines = spine_features(meshes, label=label, precision_nm=precision, step_nm=step_nm,
                            progress=not quiet)
    stages["morphology"] = {"seconds": time.perf_counter() - t}

    outdir.mkdir(parents=True, exist_ok=True)
    spines = envelope.write_meshes(replace(meshes, spines=spines), outdir, file_format=mesh_format)
    localizations = with_history(meshes.isolation.table, "pipeline.run", params)
    write(localizations, outdir / "localizations.parquet")
    if drift_model is not None:
        drift_model.write_csv(outdir / "drift.csv")
        drift_model.plot(outdir / "drift.png")
    classes: dict[str, int] = {}
    for c in spines.column("spine_class").to_pylist():
        if c:
            classes[c] = classes.get(c, 0) + 1
    neck = spines.column("neck_min_diameter_nm").to_numpy(zero_copy_only=False)
    summary = {
        "smlmspine_version": _version(), "parameters": params, "stages": stages,
        "n_spines": spines.num_rows, "classes": classes,
        # how dendrite-like the data are (score, components, raw measurements; see
        # docs/envelope.md) and every QualityWarning of the isolation/meshing
        "dendrite": dendrite, "warnings": run_warnings,
        "median_neck_min_diameter_nm": float(np.nanmedian(neck)) if np.isfinite(neck).any() else None,
        "outputs": sorted(p.name for p in outdir.iterdir() if not p.name.startswith(".")) + ["run.json"],
        "seconds": time.perf_counter() - t0,
    }
    with atomic_output(outdir / "run.json") as tmp:
        Path(tmp).write_text(json.dumps(jsonable(summary), indent=2))
    return RunResult(outdir, localizations, spines, summary)


def _version() -> str:
    from . import __version__

    return __version__
