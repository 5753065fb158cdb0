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

from ._columns import require_z
from ._profile import peak_rss_mb
from .config import DRIFT_METHODS
from .errors import FormatError, ParameterError
from .schema import jsonable, with_history

__all__ = ["run", "RunResult", "DRIFT_METHODS", "reduce_large", "LargeResult", "estimate_size",
           "mesh_spine_tiles", "TiledSpines"]


def __getattr__(name):
    # the large-file path (smlmspine._large) and the spine stages by region
    # (smlmspine._tiles), without importing them with the pipeline
    if name in ("reduce_large", "LargeResult", "estimate_size"):
        from . import _large

        return getattr(_large, name)
    if name in ("mesh_spine_tiles", "TiledSpines"):
        from . import _tiles

        return getattr(_tiles, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    chunk_rows : int, optional
        (A keyword taken from ``**read_options``.) Read, drift-correct and merge the
        file in frame windows of about this many localizations
        (:func:`smlmspine.pipeline.reduce_large`; Parquet and Arrow IPC files only). Default: done so when 5 x the file's in-memory size, estimated from
        its metadata, exceeds the memory budget (``SMLMSPINE_MEMORY_BUDGET_GB``, see
        :mod:`smlmspine._validate`), with 2 000 000 per window. The merged table is the
        same as in memory (the drift is estimated from a sample of at most 4 000 000
        localizations). When 5 x the merged table's size still exceeds the budget but
        2 x does not, the spine stages run tile by tile
        (:func:`smlmspine.pipeline.mesh_spine_tiles`). ``run.json`` says so under
        ``stages.large``.
    config : mapping, optional
        The configuration (:mod:`smlmspine.config`) this call was made from, recorded in
        ``run.json`` under ``"config"`` (with its ``"parameters_hash"``) so the result
        can be reproduced with ``smlmspine run --config``; default: the configuration of
        these parameters (:func:`smlmspine.config.config_from_run`). A caller that reads
        the file itself (the CLI) passes the reader options here.
    read_seconds : float, optional
        (A keyword taken from ``**read_options``, as ``chunk_rows``.) Seconds the caller
        spent reading ``source`` when it passes a table it read itself (the CLI),
        recorded as ``stages.read.seconds`` in ``run.json``; without it a table's
        reading is not timed (``null``).
    **read_options
        Reader-specific options passed to :func:`smlmspine.io.read` (e.g. ``format=``,
        ``mapping=`` for the generic CSV reader); ignored for a table. ``chunk_rows``
        (above) is taken out first.

    Returns
    -------
    RunResult
        The output folder, the corrected and merged localizations with ``spine_id``,
        the per-spine table as written to ``OUTDIR/spines.parquet``
        (``data_schemas/spine_mesh_features.json``) and the ``run.json`` summary.

    Raises
    ------
    ParameterError
        An unknown ``drift`` or ``label``, or 2D localizations (no ``z``); a file whose
        drift-corrected, merged localizations take more than half the memory budget (the
        spine stages hold them whole, even tiled; the merged table is left in
        ``OUTDIR/localizations_merged.parquet`` with a ``run.json``).
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
    # how the file is read, not a result parameter (16 keywords would be one too many)
    chunk_rows = read_options.pop("chunk_rows", None)
    read_seconds = read_options.pop("read_seconds", None)
    params = {"label": label, "drift": drift, "segment_frames": segment_frames, "merge": merge,
              "method": method, "alpha_nm": alpha_nm, "mesh_format": mesh_format,
              "step_nm": step_nm, "neck_surface": bool(neck_surface), "workers": int(workers),
              "pixel_size_nm": pixel_size_nm, "read_options": read_options,
              "chunk_rows": chunk_rows}
    from .config import check_config, config_from_run, parameters_hash

    effective = (check_config(config, source="config") if config is not None
                 else config_from_run(params))
    t0 = time.perf_counter()
    # the envelope stage's worker pool: its fork server imports the envelope modules and
    # loads their kernels (~2 s) on the other core while this process reads and corrects
    from .envelope._export import _start_pool_server

    _start_pool_server(workers)
    stages: dict[str, Any] = {}
    large = None if isinstance(source, pa.Table) else _large_plan(source, chunk_rows,
                                                                     read_options)
    t_read = None   # a table given in memory: its reading was not timed here
    if isinstance(source, pa.Table):
        if read_seconds is not None:
            t_read = float(read_seconds)
        table = source
        src = metadata(table).get("source")
    elif large is not None:
        table, drift_model, stages = _reduce(source, outdir, large, drift=drift,
                                             segment_frames=segment_frames, merge=merge,
                                             quiet=quiet, read_options=read_options,
                                             summary={"smlmspine_version": _version(),
                                                      "parameters": params, "config": effective,
                                                      "parameters_hash": parameters_hash(effective)})
        src = str(source)
    else:
        t_read = time.perf_counter()
        table = read(source, pixel_size_nm=pixel_size_nm, **read_options)
        t_read = time.perf_counter() - t_read
        src = str(source)
    if large is None:
        table, drift_model = _drift_and_merge(table, src, stages, drift=drift,
                                              segment_frames=segment_frames, merge=merge,
                                              quiet=quiet)
        stages["read"]["seconds"] = t_read   # reading (and unit checks), before drift
    # drift.png drawn by an idle helper while the spines are meshed (inside the CLI's
    # smlmspine._background.helpers; None elsewhere: drawn below, as before)
    drift_png = None
    if drift_model is not None:
        from . import _background
        from .drift._plot import render_model

        drift_png = _background.submit(render_model, drift_model)

    t = time.perf_counter()
    import warnings

    from .errors import QualityWarning

    n_tiles = stages.get("large", {}).get("n_tiles", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        if n_tiles > 1:   # docs/batch.md, "Spine stages by region"
            meshes, spines = _tiled(table, n_tiles, label=label, method=method,
                                    alpha_nm=alpha_nm, neck_surface=neck_surface,
                                    step_nm=step_nm, workers=workers, quiet=quiet)
        else:
            meshes = envelope.mesh_spines(table, label=label, method=method,
                                          alpha_nm=alpha_nm, neck_surface=neck_surface,
                                          workers=workers, progress=not quiet)
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
                      "seconds": time.perf_counter() - t, "parameters": meshes.parameters,
                      "peak_rss_mb": peak_rss_mb()}
    _log(f"dendrite score {dendrite.get('dendrite_score', float('nan')):.2f}"
         + ("" if dendrite.get("looks_like_dendrite", True) else
            " (the data do not look like a dendrite fragment)"), quiet)
    _log(f"isolated {meshes.spines.num_rows} spines and reconstructed their envelopes", quiet)

    from .morphology import spine_features

    t = time.perf_counter()
    precision = meshes.parameters.get("precision_nm")
    if n_tiles == 1:
        spines = spine_features(meshes, label=label, precision_nm=precision, step_nm=step_nm,
                                progress=not quiet, workers=workers)
        stages["morphology"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
    else:
        stages["morphology"] = {"seconds": None, "note": "timed with the mesh stage (tiles)"}

    t = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    spines = envelope.write_meshes(replace(meshes, spines=spines), outdir, file_format=mesh_format)
    localizations = with_history(meshes.isolation.table, "pipeline.run", params)
    write(localizations, outdir / "localizations.parquet")
    if drift_model is not None:
        from . import _background
        from .drift._plot import write_image

        drift_model.write_csv(outdir / "drift.csv")
        png = _background.result(drift_png)
        if png is None:
            drift_model.plot(outdir / "drift.png")
        else:
            write_image(png, outdir / "drift.png")
    # meshes, localizations, drift table and plot (run.json itself comes last)
    stages["write"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
    from .voxel import write_overview

    t = time.perf_counter()
    try:   # a picture of the data; a cloud too large to draw at 20 nm is not a failed run
        write_overview(localizations, outdir)
        stages["overview"] = {"file": "overview.ome.tif", "seconds": time.perf_counter() - t,
                              "peak_rss_mb": peak_rss_mb()}
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


def _drift_and_merge(table, src, stages, *, drift, segment_frames, merge, quiet):
    """The in-memory read summary, drift and merge stages; returns (table, drift model)."""
    from .schema import metadata

    require_z(table.column_names)
    stages["read"] = {"source": src, "format": metadata(table).get("format"),
                      "n_localizations": table.num_rows, "peak_rss_mb": peak_rss_mb()}
    _log(f"read {table.num_rows} localizations from {src}", quiet)

    drift_model = None
    has_time = "frame" in table.column_names or "time_s" in table.column_names
    if drift != "none" and has_time:
        from .drift import correct

        t = time.perf_counter()
        res = correct(table, method=drift, segment_frames=segment_frames)
        table, drift_model = res.table, res.model
        stages["drift"] = {**res.model.to_dict(), "seconds": time.perf_counter() - t,
                           "peak_rss_mb": peak_rss_mb()}
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
                           "seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}
        _log(f"merged {n_before} localizations into {table.num_rows}", quiet)
    else:
        stages["merge"] = {"skipped": "merge=False" if not merge else "no frame or track_id column"}
    return table, drift_model


def _tiled(table, n_tiles, *, label, method, alpha_nm, neck_surface, step_nm, workers, quiet):
    """The spine stages tile by tile (:func:`smlmspine._tiles.mesh_spine_tiles`), as a
    :class:`~smlmspine.envelope.SpineMeshes` (no dendrite mesh) and the spine table."""
    from types import SimpleNamespace

    from ._tiles import mesh_spine_tiles
    from .envelope import SpineMeshes

    tiled = mesh_spine_tiles(table, n_tiles=n_tiles, label=label, method=method,
                             alpha_nm=alpha_nm, neck_surface=neck_surface, step_nm=step_nm,
                             workers=workers, progress=not quiet)
    spines = tiled.spines.drop_columns(["tile"]) if tiled.spines.num_rows else tiled.spines
    isolation = SimpleNamespace(table=tiled.localizations,
                                dendrite={"tiles": tiled.tiles, "n_tiles": n_tiles})
    parameters = {**tiled.parameters, "tiles": tiled.tiles}
    return SpineMeshes(tiled.envelopes, None, isolation, spines, parameters), spines


def _damaged_large_file(path: Path) -> None:
    """Raise the FormatError of a file that starts as Parquet/Arrow IPC but cannot be opened
    as one (truncated, damaged footer); return for any other file."""
    from ._large import _Source

    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return
    if head[:4] == b"PAR1" or head == b"ARROW1":
        _Source(path)


def _large_plan(source, chunk_rows, read_options) -> dict | None:
    """Whether (and why) ``source`` takes the large-file path; None when it does not."""
    from ._validate import integer, memory_budget_bytes

    if chunk_rows is not None:
        chunk_rows = integer(chunk_rows, "chunk_rows", minimum=1)
    fmt = read_options.get("format")
    if fmt is not None and fmt not in ("parquet", "arrow"):
        if chunk_rows is not None:
            raise ParameterError(f"chunk_rows: the large-file path reads Parquet or Arrow IPC "
                                 f"files, not format {fmt!r}; convert the file first")
        return None
    from ._large import DEFAULT_CHUNK_ROWS, IN_MEMORY_FACTOR, estimate_size

    size = estimate_size(source)
    budget = memory_budget_bytes()
    if size is None:
        if chunk_rows is not None:
            _damaged_large_file(Path(source))
            raise ParameterError(f"chunk_rows: {Path(source).name} is not a Parquet or Arrow "
                                 "IPC file; the large-file path reads only those (convert it "
                                 "first: smlmspine convert IN OUT.parquet)")
        return None
    need = IN_MEMORY_FACTOR * size.bytes
    if chunk_rows is None and need <= budget:
        return None
    return {"chunk_rows": chunk_rows or DEFAULT_CHUNK_ROWS,
            "reason": ("chunk_rows given" if chunk_rows is not None else
                       f"estimated {need / 1e9:.3g} GB for the in-memory stages "
                       f"({IN_MEMORY_FACTOR} x the table's {size.bytes / 1e9:.3g} GB) > memory "
                       f"budget {budget / 1e9:.3g} GB"),
            "estimated_bytes": size.bytes, "memory_budget_bytes": budget,
            "coordinate_unit": read_options.get("coordinate_unit")}


def _reduce(source, outdir: Path, plan: dict, *, drift, segment_frames, merge, quiet,
            read_options, summary):
    """The large-file path: read -> drift -> merge in chunks, then the merged table in
    memory when it fits the budget; returns (table, drift model, stages)."""
    import pyarrow.parquet as pq

    from ._large import IN_MEMORY_FACTOR, _row_bytes, _Source, reduce_large

    src = _Source(Path(source))
    src.check(plan["coordinate_unit"])          # the reader's column and unit checks
    require_z(src.schema.names)
    unknown = sorted(set(read_options) - {"format", "coordinate_unit"})
    if unknown:
        raise ParameterError(f"reader option(s) {unknown} do not apply to the large-file path "
                             "(Parquet/Arrow IPC)")
    outdir.mkdir(parents=True, exist_ok=True)
    reduced = outdir / "localizations_merged.parquet"
    res = reduce_large(source, reduced, drift=drift, segment_frames=segment_frames,
                       merge=merge, chunk_rows=plan["chunk_rows"],
                       coordinate_unit=plan["coordinate_unit"], quiet=quiet)
    stages = dict(res.stages)
    stages["large"] = {**stages["large"], "reason": plan["reason"],
                       "estimated_bytes": plan["estimated_bytes"],
                       "memory_budget_bytes": plan["memory_budget_bytes"]}
    pf = pq.ParquetFile(reduced)
    n = pf.metadata.num_rows
    merged_bytes = n * _row_bytes(pf.schema_arrow)
    stages["large"]["merged_bytes"] = merged_bytes
    need = IN_MEMORY_FACTOR * merged_bytes
    budget = plan["memory_budget_bytes"]
    if budget >= need:
        stages["large"]["n_tiles"] = 1
    elif budget >= 2 * merged_bytes:
        # the table fits, its spine stages do not: tiles along the dendrite, each with
        # 1/n of the table plus its margins (2x: the margins and the table held meanwhile)
        stages["large"]["n_tiles"] = int(np.ceil(2 * need / budget))
    else:
        from .io import atomic_output

        stages["mesh"] = {"skipped": "the merged localizations exceed the memory budget"}
        if res.model is not None:
            res.model.write_csv(outdir / "drift.csv")
        with atomic_output(outdir / "run.json") as tmp:
            Path(tmp).write_text(json.dumps(jsonable({**summary, "stages": stages}), indent=2))
        raise ParameterError(
            f"{Path(source).name}: after drift and merge {n} localizations remain "
            f"({merged_bytes / 1e9:.2f} GB; held whole for the spine stages, even tiled, "
            f"with half the budget left to the tiles), more than the memory budget "
            f"({plan['memory_budget_bytes'] / 1e9:g} GB, SMLMSPINE_MEMORY_BUDGET_GB): write "
            "them alone with smlmspine.pipeline.reduce_large and crop a region, or raise "
            "SMLMSPINE_MEMORY_BUDGET_GB")
    table = pq.read_table(reduced)
    reduced.unlink()
    _log(f"large-file path ({stages['large']['reason']}): {n} localizations after drift "
         "and merge", quiet)
    return table, res.model, stages


def _version() -> str:
    from . import __version__

    return __version__
