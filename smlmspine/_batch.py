"""Many files through the pipeline on Dask: ``smlmspine.batch`` and ``smlmspine batch``.

:func:`batch` runs :func:`smlmspine.pipeline.run` on every file of a glob or a manifest,
one file per Dask task, into ``OUTDIR/<file stem>/``, and gathers the results into
``OUTDIR/spines.parquet`` (``data_schemas/batch_spines.json``),
``OUTDIR/localizations_summary.parquet`` (``data_schemas/localizations_summary.json``),
``OUTDIR/failures.csv`` (``data_schemas/failures.json``) and ``OUTDIR/batch.json``.

- Failure isolation: a file that fails (unreadable, no spines, a crash in a stage) is
  recorded with its error and never stops the others.
- Resumable: each file runs into a temporary folder (``OUTDIR/.partial/``) that gets a
  ``done.json`` record (input SHA-256 + parameters hash) last and is then renamed into
  place in one step; a file whose folder holds a matching record is skipped
  (``force=True`` re-runs it). An interrupted batch continues where it stopped;
  leftovers of ``.partial`` are removed.
- Survives the loss of a worker: a task whose worker died is re-run up to ``retries``
  times (the scheduler's ``allowed-failures``), then recorded as failed.

This module is private: the function is public as ``smlmspine.batch`` (a package
attribute cannot be both a module and a function, so the implementation module has a
private name).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .errors import FormatError, ParameterError
from .schema import ColumnSpec

__all__ = ["batch", "BatchResult", "resolve_inputs", "file_sha256", "FAILURE_COLUMNS",
           "SUMMARY_COLUMNS", "batch_spine_columns", "DONE_RECORD"]

#: Name of the per-file record written last (inside each file's output folder).
DONE_RECORD = "done.json"
#: Folder (inside OUTDIR) of per-file outputs being written.
PARTIAL = ".partial"
#: Names in OUTDIR that a file's output folder must not take.
_RESERVED = {"batch.json", "failures.csv", "spines.parquet", "localizations_summary.parquet",
             "report.html", PARTIAL}
#: Extensions of manifest tables (anything else is a glob or a file name).
MANIFEST_EXTENSIONS = (".csv", ".tsv", ".parquet")
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip")


def _spec(name, type_, unit, description):
    return name, ColumnSpec(name, type_, unit, description)


_IDENTITY = dict([
    _spec("source", pa.string(), "1", "input file as listed (glob match or manifest path)"),
    _spec("run_folder", pa.string(), "1", "the file's output folder, relative to OUTDIR"),
])

#: ``OUTDIR/failures.csv``: one row per file that failed (``data_schemas/failures.json``).
FAILURE_COLUMNS = {
    **_IDENTITY,
    **dict([
        _spec("stage", pa.string(), "1",
              "where it failed: the smlmspine module (io: reading or writing, drift, merge, "
              "envelope: spine isolation and meshes, morphology, ...), pipeline (its own "
              "checks, e.g. no z column), input (the file could not be opened) or worker "
              "(the worker process died every time)"),
        _spec("error_type", pa.string(), "1",
              "exception class (FormatError, ParameterError, KilledWorker, ...)"),
        _spec("error", pa.string(), "1", "the error message, on one line"),
    ]),
}

#: ``OUTDIR/localizations_summary.parquet``: one row per file
#: (``data_schemas/localizations_summary.json``); the manifest's metadata columns follow
#: ``run_folder``.
SUMMARY_COLUMNS = {
    **_IDENTITY,
    **dict([
        _spec("status", pa.string(), "1",
              "done (run by this call), skipped (done earlier, same input and parameters) "
              "or failed"),
        _spec("input_sha256", pa.string(), "1", "SHA-256 of the input file (empty if unread)"),
        _spec("n_localizations", pa.int64(), "1", "localizations read"),
        _spec("n_merged", pa.int64(), "1",
              "localizations after merging blinks / averaging traces (= read if not merged)"),
        _spec("drift_method", pa.string(), "1", "drift method used; empty if skipped"),
        _spec("drift_max_abs_dx_nm", pa.float64(), "nm", "largest |x drift| corrected"),
        _spec("drift_max_abs_dy_nm", pa.float64(), "nm", "largest |y drift| corrected"),
        _spec("drift_max_abs_dz_nm", pa.float64(), "nm", "largest |z drift| corrected"),
        _spec("n_spines", pa.int64(), "1", "spines isolated and measured"),
        _spec("n_watertight", pa.int64(), "1", "spines with a watertight envelope"),
        _spec("dendrite_score", pa.float64(), "1",
              "how dendrite-like the data are, 0-1 (docs/envelope.md)"),
        _spec("median_neck_min_diameter_nm", pa.float64(), "nm",
              "median minimum neck diameter of the file's spines"),
        _spec("seconds", pa.float64(), "s", "wall time of the file's pipeline run"),
        _spec("seconds_drift", pa.float64(), "s", "wall time of the drift stage"),
        _spec("seconds_merge", pa.float64(), "s", "wall time of the merge stage"),
        _spec("seconds_mesh", pa.float64(), "s", "wall time of isolation and envelopes"),
        _spec("seconds_morphology", pa.float64(), "s", "wall time of the morphology"),
    ]),
}


def batch_spine_columns() -> dict[str, ColumnSpec]:
    """Columns of ``OUTDIR/spines.parquet`` (``data_schemas/batch_spines.json``).

    Returns
    -------
    dict of str to ColumnSpec
        ``source``, ``run_folder``, then every column of a run's spines table
        (:data:`smlmspine.morphology.SPINE_MESH_FEATURE_COLUMNS`); the manifest's
        metadata columns are inserted after ``run_folder``.

    Examples
    --------
    >>> list(batch_spine_columns())[:3]
    ['source', 'run_folder', 'spine_id']
    """
    from .morphology import SPINE_MESH_FEATURE_COLUMNS

    return {**_IDENTITY, **SPINE_MESH_FEATURE_COLUMNS}


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What :func:`smlmspine.batch` produced.

    Attributes
    ----------
    outdir : Path
        The batch folder.
    spines : pyarrow.Table
        Every spine of every file done (``OUTDIR/spines.parquet``).
    summary : pyarrow.Table
        One row per file (``OUTDIR/localizations_summary.parquet``).
    failures : pyarrow.Table
        One row per failed file (``OUTDIR/failures.csv``).
    record : dict
        The content of ``OUTDIR/batch.json`` (versions, configuration, per-file status).
    """

    outdir: Path
    spines: pa.Table
    summary: pa.Table
    failures: pa.Table
    record: dict = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Number of files that failed.

        Returns
        -------
        int
            Rows of ``failures``.
        """
        return self.failures.num_rows


# ----------------------------------------------------------------------------- inputs

def file_sha256(path, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (memory stays at ``chunk_bytes``).

    Parameters
    ----------
    path : str or Path
        The file.
    chunk_bytes : int
        Bytes read at a time.

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _COMPRESSION:
        name = name.removesuffix(suffix)
    return Path(name).stem or name


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def resolve_inputs(inputs) -> tuple[list[dict], pa.Table | None, str]:
    """The files of a batch, each with its output folder name and metadata row.

    Parameters
    ----------
    inputs : str, Path, list of paths, or pyarrow.Table
        A glob (``data/**/*.csv``; ``**`` descends folders), a manifest table file
        (``.csv``, ``.tsv``, ``.parquet``) with a ``path`` column (relative paths are
        relative to the manifest's folder) and any metadata columns, a list of files, or a
        manifest as a table (relative paths relative to the current folder).

    Returns
    -------
    files : list of dict
        ``{"path": absolute path, "source": as listed, "run_folder": name, "row": i}``
        in input order (a glob's matches sorted); equal stems get ``-<8 hex digits>`` of
        their path's hash, so names are stable from one call to the next.
    manifest : pyarrow.Table or None
        The metadata columns (one row per file), or ``None`` without a manifest.
    description : str
        What ``inputs`` was (recorded in ``batch.json``).

    Raises
    ------
    ParameterError
        A glob that matches no file, a manifest without a ``path`` column, with an empty
        or repeated path, or with a column named like a result column.
    FormatError
        A manifest that cannot be read.
    """
    manifest = None
    base = Path.cwd()
    if isinstance(inputs, pa.Table):
        manifest, description = inputs, "manifest table"
    elif isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ParameterError("no input files given (an empty list)")
        listed = [str(p) for p in inputs]
        description = f"{len(listed)} files"
    else:
        text = str(inputs)
        path = Path(text)
        if path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file() and not _has_magic(text):
            manifest, base = _read_manifest(path), path.resolve().parent
            description = f"manifest {text}"
        else:
            listed = _glob(text)
            description = f"glob {text}"
    if manifest is not None:
        listed = _manifest_paths(manifest, description)
        manifest = manifest.drop_columns(["path"])
        clash = sorted(set(manifest.column_names) & (set(batch_spine_columns()) | set(SUMMARY_COLUMNS)))
        if clash:
            raise ParameterError(f"{description}: metadata column(s) {clash} have the names of "
                                 "result columns; rename them")
    files, seen = [], {}
    for i, source in enumerate(listed):
        p = Path(source).expanduser()
        absolute = (p if p.is_absolute() else base / p).resolve()
        if absolute in seen:
            raise ParameterError(f"{description}: {source!r} is listed twice (rows {seen[absolute]} "
                                 f"and {i}); each file once")
        seen[absolute] = i
        files.append({"path": str(absolute), "source": str(source), "row": i})
    stems = [_stem(Path(f["path"])) for f in files]
    for f, stem in zip(files, stems):
        if stems.count(stem) > 1 or stem in _RESERVED or stem.startswith("."):
            digest = hashlib.sha256(f["path"].encode()).hexdigest()[:8]
            stem = f"{stem.lstrip('.') or 'file'}-{digest}"
        f["run_folder"] = stem
    return files, manifest, description


def _glob(text: str) -> list[str]:
    import glob

    if not _has_magic(text):
        if Path(text).is_file():
            return [text]
        raise ParameterError(f"input {text!r}: no such file, and not a glob pattern "
                             "(e.g. 'data/**/*.csv') nor a manifest (.csv/.tsv/.parquet "
                             "with a 'path' column)")
    matches = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
    if not matches:
        raise ParameterError(f"glob {text!r} matches no file")
    return matches


def _read_manifest(path: Path) -> pa.Table:
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pacsv

        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=pacsv.ConvertOptions(
                                  column_types={"path": pa.string()}))
    except (OSError, pa.ArrowException) as exc:
        raise FormatError(f"cannot read the manifest: {' '.join(str(exc).split())}",
                          path=path) from None


def _manifest_paths(manifest: pa.Table, description: str) -> list[str]:
    if "path" not in manifest.column_names:
        raise ParameterError(f"{description}: no 'path' column (found "
                             f"{', '.join(manifest.column_names) or 'none'}); a manifest lists "
                             "one input file per row in 'path'")
    if manifest.num_rows == 0:
        raise ParameterError(f"{description}: no rows")
    paths = manifest.column("path").cast(pa.string()).to_pylist()
    empty = [i for i, p in enumerate(paths) if not p or not p.strip()]
    if empty:
        raise ParameterError(f"{description}: empty 'path' in row(s) {empty[:5]}")
    return paths


# ----------------------------------------------------------------------------- one file

def _read_done(folder: Path) -> dict | None:
    try:
        return json.loads((folder / DONE_RECORD).read_text())
    except (OSError, ValueError):
        return None


def _process_file(job: dict, outdir: str, config: dict, force: bool,
                  chunk_rows: int | None = None) -> dict:
    """The Dask task of one file: skip it, or run it into a temporary folder renamed into
    place with its done record; any exception becomes a ``failed`` record."""
    import warnings

    from .config import parameters_hash, run_arguments
    from .errors import QualityWarning

    t0 = time.perf_counter()
    outdir = Path(outdir)
    final = outdir / job["run_folder"]
    out = {"source": job["source"], "run_folder": job["run_folder"], "input_sha256": "",
           "warnings": [], "worker_pid": os.getpid()}
    tmp = None
    try:
        checksum = file_sha256(job["path"])
        out["input_sha256"] = checksum
        phash = parameters_hash(config)
        done = _read_done(final)
        if (not force and done is not None and done.get("input_sha256") == checksum
                and done.get("parameters_hash") == phash and (final / "run.json").is_file()):
            return {**out, "status": "skipped", "seconds": time.perf_counter() - t0}
        tmp = outdir / PARTIAL / f"{job['run_folder']}.{uuid.uuid4().hex[:12]}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        from .pipeline import run

        kwargs = run_arguments(config)
        if chunk_rows is None:  # the configuration's [read] chunk_rows, unless given
            chunk_rows = kwargs.get("chunk_rows")
        kwargs.pop("chunk_rows", None)
        kwargs["workers"] = 1  # parallel across files; a Dask worker process is daemonic
        cfg = {**config, "run": {**config["run"], "workers": 1}}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", QualityWarning)
            run(job["path"], tmp, quiet=True, config=cfg, chunk_rows=chunk_rows, **kwargs)
        out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, QualityWarning)]
        record = {"input_sha256": checksum, "parameters_hash": phash, "source": job["path"],
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / DONE_RECORD).write_text(json.dumps(record, indent=2))  # written last
        _replace_folder(tmp, final)
        tmp = None
        return {**out, "status": "done", "seconds": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - failure isolation: every error is recorded
        return {**out, "status": "failed", "stage": _failed_stage(exc),
                "error_type": type(exc).__name__,
                "error": " ".join(str(exc).split()) or type(exc).__name__,
                "traceback": traceback.format_exc(limit=20),
                "seconds": time.perf_counter() - t0}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _failed_stage(exc: BaseException) -> str:
    """The first smlmspine module below the pipeline in the exception's traceback."""
    import traceback as tb_module

    own = {"smlmspine._batch": "input", "smlmspine.pipeline": "pipeline"}
    stage = "input"
    for frame, _ in tb_module.walk_tb(exc.__traceback__):
        module = frame.f_globals.get("__name__", "")
        if module in own:
            stage = own[module]
        elif module.startswith("smlmspine."):
            return module.split(".")[1].lstrip("_") or stage
    return stage


def _replace_folder(tmp: Path, final: Path) -> None:
    """Put the finished ``tmp`` at ``final``: each rename is atomic; between the two, no
    folder is at ``final`` (the file then simply counts as not done)."""
    old = None
    if final.exists():
        old = tmp.with_name(tmp.name + ".old")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- the batch

def batch(inputs, outdir, *, config=None, client=None, force: bool = False,
          progress: bool = True, report: bool = True,
          chunk_rows: int | None = None) -> BatchResult:
    """Run :func:`smlmspine.pipeline.run` on many files on a Dask cluster.

    Parameters
    ----------
    inputs : str, Path, list of paths, or pyarrow.Table
        A glob (``"data/**/*.csv"``), a manifest table file (CSV, TSV, Parquet) with a
        ``path`` column and metadata columns carried into every result row, a list of
        files, or a manifest table (relative paths relative to the current folder).
    outdir : str or Path
        The batch folder (created): ``<file stem>/`` per file, ``spines.parquet``,
        ``localizations_summary.parquet``, ``failures.csv``, ``batch.json`` and
        ``report.html``.
    config : mapping, str or Path, optional
        A configuration (:mod:`smlmspine.config`) or a TOML file holding one; default:
        the defaults. ``[batch] workers``/``retries``/``scheduler`` size the cluster
        made when ``client`` is None.
    client : dask.distributed.Client, optional
        An existing client (any cluster); default: a ``LocalCluster`` of processes
        (one thread each) sized to the machine, or ``Client(scheduler)`` when the
        configuration names one. Input files and ``outdir`` must be reachable by the
        workers under the same paths.
    force : bool
        Re-run files already done with the same input and parameters.
    progress : bool
        A progress bar over files (and the dashboard link) on stderr.
    report : bool
        Write ``OUTDIR/report.html`` (:func:`smlmspine.report.write_report`).
    chunk_rows : int, optional
        Read, drift-correct and merge every Parquet/Arrow input in frame windows of
        about this many localizations (see :func:`smlmspine.pipeline.run`; no result
        changes, so not part of the parameters hash). Default: only the files whose
        estimated in-memory size exceeds the memory budget.

    Returns
    -------
    BatchResult
        The tables as written, the failures and the ``batch.json`` record.

    Raises
    ------
    ParameterError
        Before anything ran: inputs that name no file, a bad manifest, a bad
        configuration, an unreachable scheduler, another batch writing ``outdir``.
    FormatError
        ``outdir`` exists and is not a folder; an unreadable manifest or configuration.
    """
    from .config import check_config, load_config

    t0 = time.perf_counter()
    if config is None:
        config = check_config({})
    elif isinstance(config, (str, Path)):
        config = load_config(config)
    else:
        config = check_config(config)
    files, manifest, description = resolve_inputs(inputs)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise FormatError("output path exists and is not a folder", path=outdir)
    created = not outdir.exists()
    outdir.mkdir(parents=True, exist_ok=True)
    with _exclusive(outdir):
        try:
            results, scheduler = _distribute(client, files, outdir, config, force, progress,
                                             chunk_rows)
        except BaseException:
            if created and not any(p.name != LOCK for p in outdir.iterdir()):
                shutil.rmtree(outdir, ignore_errors=True)  # refused before anything ran
            raise
        return _finish(outdir, files, manifest, results, scheduler, config, t0,
                       description=description, force=force, report=report)


#: Lock file held (``fcntl.flock``) while a batch writes its folder.
LOCK = ".batch.lock"


@contextmanager
def _exclusive(outdir: Path):
    """One batch per folder at a time (where ``fcntl`` exists: POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(outdir / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ParameterError(f"{outdir}: another smlmspine batch is writing this folder; "
                                 "wait for it to finish or choose another output folder") from None
        yield


def _distribute(client, files, outdir: Path, config, force, progress, chunk_rows=None):
    """Run every file's task on the client (a local cluster made when None)."""
    own = client is None
    cluster = None
    if own:
        client, cluster = _make_client(config["batch"], n_files=len(files))
    try:
        shutil.rmtree(outdir / PARTIAL, ignore_errors=True)  # leftovers of an interrupted batch
        if progress:
            link = _dashboard_link(client, local=cluster is not None)
            if link:
                print(f"smlmspine batch: dashboard {link}", file=sys.stderr, flush=True)
        results = _run_all(client, files, outdir, config, force, progress,
                           config["batch"]["retries"], chunk_rows)
        scheduler = _scheduler_info(client)
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    shutil.rmtree(outdir / PARTIAL, ignore_errors=True)
    return results, scheduler


def _finish(outdir, files, manifest, results, scheduler, config, t0, *, description, force,
            report) -> BatchResult:
    """The tables, batch.json and the report from the files' results."""
    from .config import parameters_hash

    meta_names = manifest.column_names if manifest is not None else []
    spines = _gather_spines(files, results, outdir, manifest)
    summary = _summary_table(files, results, outdir, manifest)
    failures = _failures_table(files, results)
    record = {
        "smlmspine_version": _package_version("smlmspine"), "versions": _versions(),
        "inputs": description, "config": config, "parameters_hash": parameters_hash(config),
        "force": bool(force), "scheduler": scheduler, "metadata_columns": meta_names,
        "n_files": len(files),
        "counts": {s: sum(r["status"] == s for r in results) for s in ("done", "skipped", "failed")},
        "n_spines": spines.num_rows, "seconds": time.perf_counter() - t0,
        "files": [{k: r.get(k) for k in ("source", "run_folder", "status", "input_sha256",
                                          "seconds", "stage", "error_type", "error", "warnings",
                                          "traceback") if r.get(k) not in (None, [])}
                  for r in results],
        "outputs": ["spines.parquet", "localizations_summary.parquet", "failures.csv",
                    "batch.json"] + (["report.html"] if report else []),
    }
    _write_outputs(outdir, spines, summary, failures, record)
    if report:
        from .report import write_report

        write_report(outdir, kind="batch")
    return BatchResult(outdir, spines, summary, failures, record)


def _make_client(settings: dict, *, n_files: int):
    import logging

    import dask
    from dask.distributed import Client, LocalCluster

    if settings["scheduler"]:
        try:
            return Client(settings["scheduler"], timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise ParameterError(f"scheduler {settings['scheduler']!r}: cannot connect "
                                 f"({' '.join(str(exc).split())})") from None
    n = min(settings["workers"] or os.cpu_count() or 1, max(n_files, 1))  # no idle workers
    dashboard = ":0"  # a free port (several clusters may run on one machine)
    with dask.config.set({"distributed.scheduler.allowed-failures": settings["retries"]}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=dashboard, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def _dashboard_link(client, *, local: bool) -> str | None:
    """The dashboard's address when there is one (a local one needs bokeh)."""
    import importlib.util

    if local and importlib.util.find_spec("bokeh") is None:
        return None
    try:
        info = client.scheduler_info()
        if "dashboard" not in (info.get("services") or {}):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a link is a convenience
        return None


def _scheduler_info(client) -> dict:
    try:
        info = client.scheduler_info()
        return {"address": info.get("address"), "n_workers": len(info.get("workers") or {}),
                "threads": sum(w.get("nthreads", 0) for w in (info.get("workers") or {}).values())}
    except Exception:  # noqa: BLE001
        return {}


def _run_all(client, files, outdir, config, force, progress, retries,
             chunk_rows=None) -> list[dict]:
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    futures = client.map(_process_file, files, outdir=str(outdir.resolve()), config=config,
                         force=bool(force), chunk_rows=chunk_rows, retries=retries,
                         pure=False,
                         key=[f"smlmspine-{f['run_folder']}-{uuid.uuid4().hex[:8]}" for f in files])
    index = {fut.key: i for i, fut in enumerate(futures)}
    results: list[dict | None] = [None] * len(files)
    bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not progress,
               desc="smlmspine batch")
    try:
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after the retries
                results[i] = {"source": files[i]["source"], "run_folder": files[i]["run_folder"],
                              "status": "failed", "stage": "worker",
                              "error_type": type(exc).__name__,
                              "error": " ".join(str(exc).split()) or type(exc).__name__,
                              "input_sha256": ""}
            bar.update(1)
            if results[i]["status"] == "failed":
                bar.set_postfix_str(f"{sum(r is not None and r['status'] == 'failed' for r in results)} failed")
    finally:
        bar.close()
        for fut in futures:
            fut.release()
    return results


# ----------------------------------------------------------------------------- tables

def _metadata_columns(manifest, row: int, n: int) -> dict:
    if manifest is None:
        return {}
    return {name: pa.array([manifest.column(name)[row].as_py()] * n, type=manifest.column(name).type)
            for name in manifest.column_names}


def _with_identity(table: pa.Table, f: dict, manifest, registry_names) -> pa.Table:
    n = table.num_rows
    cols = {"source": pa.array([f["source"]] * n, pa.string()),
            "run_folder": pa.array([f["run_folder"]] * n, pa.string()),
            **_metadata_columns(manifest, f["row"], n)}
    for name in registry_names:
        if name not in cols:
            cols[name] = table.column(name)
    return pa.table(cols)


def _gather_spines(files, results, outdir: Path, manifest) -> pa.Table:
    import pyarrow.parquet as pq

    from .schema import spec_table

    registry = batch_spine_columns()
    features = [n for n in registry if n not in _IDENTITY]
    parts = []
    for f, r in zip(files, results):
        if r["status"] in ("done", "skipped"):
            t = pq.read_table(outdir / f["run_folder"] / "spines.parquet")
            parts.append(_with_identity(t.select(features), f, manifest, registry))
    if parts:
        return _typed(pa.concat_tables(parts), registry)
    empty = spec_table(registry, {n: [] for n in registry})
    meta = ({n: pa.array([], manifest.column(n).type) for n in manifest.column_names}
            if manifest is not None else {})
    return _typed(pa.table({"source": empty.column("source"),
                            "run_folder": empty.column("run_folder"), **meta,
                            **{n: empty.column(n) for n in features}}), registry)


def _typed(table: pa.Table, registry) -> pa.Table:
    """Units and descriptions of the registry's columns in the field metadata."""
    fields = []
    for f in table.schema:
        spec = registry.get(f.name)
        if spec is None:
            fields.append(f.with_metadata({"description": "manifest metadata column"}))
        else:
            fields.append(pa.field(f.name, spec.type, metadata={"unit": spec.unit,
                                                                "description": spec.description}))
    return table.cast(pa.schema(fields))


def _summary_row(r: dict, run_json: dict | None) -> dict:
    nan = float("nan")
    row = {"status": r["status"], "input_sha256": r.get("input_sha256") or "",
           "n_localizations": None, "n_merged": None, "drift_method": "",
           "drift_max_abs_dx_nm": nan, "drift_max_abs_dy_nm": nan, "drift_max_abs_dz_nm": nan,
           "n_spines": None, "n_watertight": None, "dendrite_score": nan,
           "median_neck_min_diameter_nm": nan, "seconds": nan, "seconds_drift": nan,
           "seconds_merge": nan, "seconds_mesh": nan, "seconds_morphology": nan}
    if not run_json:
        return row
    stages = run_json.get("stages") or {}
    n = (stages.get("read") or {}).get("n_localizations")
    merge = stages.get("merge") or {}
    drift = stages.get("drift") or {}
    mesh = stages.get("mesh") or {}

    def num(value):
        return nan if value is None else float(value)

    row.update({
        "n_localizations": n, "n_merged": merge.get("n_after", n),
        "drift_method": drift.get("method", ""),
        "drift_max_abs_dx_nm": num(drift.get("max_abs_dx_nm")),
        "drift_max_abs_dy_nm": num(drift.get("max_abs_dy_nm")),
        "drift_max_abs_dz_nm": num(drift.get("max_abs_dz_nm")),
        "n_spines": run_json.get("n_spines"), "n_watertight": mesh.get("n_watertight"),
        "dendrite_score": num((run_json.get("dendrite") or {}).get("dendrite_score")),
        "median_neck_min_diameter_nm": num(run_json.get("median_neck_min_diameter_nm")),
        "seconds": num(run_json.get("seconds")),
        "seconds_drift": num(drift.get("seconds")), "seconds_merge": num(merge.get("seconds")),
        "seconds_mesh": num(mesh.get("seconds")),
        "seconds_morphology": num((stages.get("morphology") or {}).get("seconds")),
    })
    return row


def _summary_table(files, results, outdir: Path, manifest) -> pa.Table:
    from .schema import spec_table

    rows = []
    for f, r in zip(files, results):
        run_json = None
        if r["status"] in ("done", "skipped"):
            try:
                run_json = json.loads((outdir / f["run_folder"] / "run.json").read_text())
            except (OSError, ValueError):
                run_json = None
        rows.append({"source": f["source"], "run_folder": f["run_folder"],
                     **_summary_row(r, run_json)})
    table = spec_table(SUMMARY_COLUMNS, {n: [row[n] for row in rows] for n in SUMMARY_COLUMNS})
    if manifest is None:
        return table
    out = table.select(["source", "run_folder"])
    for name in manifest.column_names:
        out = out.append_column(name, manifest.column(name).combine_chunks().take(
            pa.array([f["row"] for f in files])))
    for name in list(SUMMARY_COLUMNS)[2:]:
        out = out.append_column(table.schema.field(name), table.column(name))
    return out


def _failures_table(files, results) -> pa.Table:
    from .schema import spec_table

    failed = [r for r in results if r["status"] == "failed"]
    return spec_table(FAILURE_COLUMNS, {
        "source": [r["source"] for r in failed], "run_folder": [r["run_folder"] for r in failed],
        "stage": [r.get("stage", "") for r in failed],
        "error_type": [r.get("error_type", "") for r in failed],
        "error": [r.get("error", "") for r in failed]})


def _write_outputs(outdir: Path, spines, summary, failures, record) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from .io import atomic_output
    from .schema import jsonable

    with atomic_output(outdir / "spines.parquet") as tmp:
        pq.write_table(spines, tmp)
    with atomic_output(outdir / "localizations_summary.parquet") as tmp:
        pq.write_table(summary, tmp)
    with atomic_output(outdir / "failures.csv") as tmp:
        pacsv.write_csv(failures, tmp)
    with atomic_output(outdir / "batch.json") as tmp:  # written last
        Path(tmp).write_text(json.dumps(jsonable(record), indent=2))


def _package_version(name: str) -> str | None:
    if name == "smlmspine":
        from . import __version__

        return __version__
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions() -> dict:
    import platform

    names = ("numpy", "scipy", "pyarrow", "open3d", "trimesh", "scikit-image", "numba", "dask",
             "distributed")
    return {"python": platform.python_version(), "platform": platform.platform(),
            **{n: _package_version(n) for n in names}}
