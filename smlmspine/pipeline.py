"""The stages composed: localizations -> drift -> merge -> spines -> meshes -> features.

:func:`run` is what ``smlmspine run IN -o OUTDIR`` does. Every parameter, the input's
provenance and each stage's summary go to ``OUTDIR/run.json``; the outputs are those of
``smlmspine mesh`` (``spine_<id>.ply``, ``dendrite.ply``, ``spines.parquet``, now with
the morphology features and classes) plus the corrected, merged localization table with
``spine_id``, the drift table and plot and a 2D overview image (``overview.ome.tif``,
20 nm pixels, :func:`smlmspine.voxel.write_overview`). ``smlmspine run`` adds
``report.html`` (:func:`smlmspine.report.write_report`).
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

from .config import DRIFT_METHODS
from .errors import FormatError, ParameterError
from .schema import jsonable, with_history

__all__ = ["run", "RunResult", "DRIFT_METHODS"]


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


def run(source: str | Path | pa.Table, outdir: str | Path, *, label: str = "membrane",
        drift: str = "aim", segment_frames: int | None = None, merge: bool = True,
        method: str = "auto", alpha_nm="auto", mesh_format: str = "ply", step_nm: float = 10.0,
        neck_surface: bool = True, workers: int = 1, pixel_size_nm: float | None = None,
        quiet: bool = False, config=None, **read_options) -> RunResult:
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
    segment_frames : int, optional
        Segment length of the drift estimate, in frames (see
        :func:`smlmspine.drift.estimate_drift`); default: the method's own choice.
    merge : bool
        Merge blinks (STORM) or average traces (MINFLUX) before isolating spines.
    method : {"auto", "alpha", "shell", "poisson", "voxel"}
        Surface reconstruction of each spine (see :func:`smlmspine.envelope.reconstruct`).
    alpha_nm : float or "auto"
        Alpha radius, nm, or ``"auto"`` (see :func:`smlmspine.envelope.reconstruct`).
    mesh_format : {"ply", "obj", "stl", "glb"}
        File format of ``spine_<id>.<ext>`` and ``dendrite.<ext>`` (coordinates in nm).
    step_nm : float
        Cross-section spacing of the morphology, nm.
    neck_surface : bool
        Refit the necks of membrane envelopes to the localizations (see
        :func:`smlmspine.envelope.mesh_spines`).
    workers : int
        Processes for the spine envelopes (see :func:`smlmspine.envelope.mesh_spines`;
        1 = none, -1 = all cores; a calling script then needs the
        ``if __name__ == "__main__":`` guard). The result does not depend on it.
    pixel_size_nm : float, optional
        Pixel size, nm, for a ``source`` file in pixel units that does not store one
        (see :func:`smlmspine.io.read`); never guessed. Ignored for a table.
    quiet : bool
        No progress lines or bars on stderr.
    config : mapping, optional
        The configuration (:mod:`smlmspine.config`) this call was made from, recorded in
        ``run.json`` under ``"config"`` (with its ``"parameters_hash"``) so the result
        can be reproduced with ``smlmspine run --config``; default: the configuration of
        these parameters (:func:`smlmspine.config.config_from_run`). A caller that reads
        the file itself (the CLI) passes the reader options here.
    **read_options
        Reader-specific options passed to :func:`smlmspine.io.read` (e.g. ``format=``,
        ``mapping=`` for the generic CSV reader); ignored for a table.

    Returns
    -------
    RunResult
        The output folder, the corrected and merged localizations with ``spine_id``,
        the per-spine table as written to ``OUTDIR/spines.parquet``
        (``data_schemas/spine_mesh_features.json``) and the ``run.json`` summary.

    Raises
    ------
    ParameterError
        An unknown ``drift`` or ``label``, or 2D localizations (no ``z``).
    FormatError
        ``outdir`` exists and is not a folder, or ``source`` cannot be read.
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
    from .config import check_config, config_from_run, parameters_hash

    effective = (check_config(config, source="config") if config is not None
                 else config_from_run(params))
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

    from .morphology import spine_features

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
    from .voxel import write_overview

    try:   # a picture of the data; a cloud too large to draw at 20 nm is not a failed run
        write_overview(localizations, outdir)
        stages["overview"] = {"file": "overview.ome.tif"}
    except ParameterError as exc:
        stages["overview"] = {"skipped": str(exc)}
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
        "config": effective, "parameters_hash": parameters_hash(effective),
    }
    with atomic_output(outdir / "run.json") as tmp:
        Path(tmp).write_text(json.dumps(jsonable(summary), indent=2))
    return RunResult(outdir, localizations, spines, summary)


def _version() -> str:
    from . import __version__

    return __version__
