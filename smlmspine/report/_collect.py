"""What a run or batch folder holds, read for the report (every optional piece may be absent)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError, ParameterError

__all__ = ["KINDS", "Folder", "collect", "read_drift", "histogram_xy", "spine_rows",
           "coupling_outputs", "read_coupling", "mesh_path", "Missing"]

KINDS = ("auto", "run", "batch")

#: Columns of a spines table that are per-spine results (anything else in a batch table,
#: apart from ``source``, is a manifest metadata column).
_RESULT_HINTS = ("_nm", "_um", "_deg", "_nm2", "_um2", "_um3")


class Missing(Exception):
    """An optional input of a section is absent; the message says which and why."""


@dataclass(frozen=True)
class Folder:
    """A run or batch output folder as read for the report.

    Attributes
    ----------
    path : Path
    kind : {"run", "batch"}
    info : dict
        ``run.json`` or ``batch.json``.
    spines : pyarrow.Table or None
        ``spines.parquet`` (None when absent).
    spines_error : str
        Why ``spines`` is None ("" when it was read).
    runs : tuple of (str, Path)
        The run folders (label, path): the folder itself for a run, the per-file
        subfolders holding a ``run.json`` for a batch.
    metadata_columns : tuple of str
        Manifest metadata columns of a batch spines table.
    """

    path: Path
    kind: str
    info: dict
    spines: object = None
    spines_error: str = ""
    runs: tuple = ()
    metadata_columns: tuple = field(default=())


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; :class:`FormatError` naming the file otherwise."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"cannot read JSON: {exc}", path=path) from None
    if not isinstance(obj, dict):
        raise FormatError(f"expected a JSON object, found {type(obj).__name__}", path=path)
    return obj


def detect_kind(outdir: Path, kind: str) -> str:
    """``"run"`` or ``"batch"`` for ``outdir``; ``FormatError`` for anything else."""
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {KINDS}, got {kind!r}")
    if not outdir.exists():
        raise FormatError("no such folder", path=outdir)
    if not outdir.is_dir():
        raise FormatError("is a file; expected a run or batch output folder", path=outdir)
    has = {k: (outdir / f"{k}.json").is_file() for k in ("run", "batch")}
    if kind == "auto":
        if has["batch"]:
            return "batch"
        if has["run"]:
            return "run"
        raise FormatError("not a run or batch output folder: no run.json or batch.json "
                          "(make one with `smlmspine run` or `smlmspine batch`)", path=outdir)
    if not has[kind]:
        raise FormatError(f"not a {kind} output folder: no {kind}.json", path=outdir)
    return kind


def collect(outdir: Path, kind: str) -> Folder:
    """Read the folder's record and spines table; list its run folders."""
    kind = detect_kind(outdir, kind)
    info = read_json(outdir / f"{kind}.json")
    spines, error = None, ""
    path = outdir / "spines.parquet"
    if path.is_file():
        import pyarrow.parquet as pq

        try:
            spines = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable Parquet is shown as such
            error = f"spines.parquet could not be read: {' '.join(str(exc).split())}"
    else:
        error = "no spines.parquet in the folder"
    if kind == "run":
        runs = (("", outdir),)
    else:
        runs = tuple((p.name, p) for p in sorted(outdir.iterdir(), key=lambda p: p.name)
                     if p.is_dir() and (p / "run.json").is_file())
    meta = ()
    if kind == "batch" and spines is not None:
        meta = tuple(metadata_columns(spines, info))
    return Folder(outdir, kind, info, spines, error, runs, meta)


def metadata_columns(spines, info: dict) -> list[str]:
    """The manifest metadata columns of a batch spines table.

    ``batch.json`` may list them (``metadata_columns``, or ``manifest_columns``); otherwise
    every column that is not a spine result (:data:`smlmspine.morphology` features,
    envelope columns) nor ``source``/``path``.
    """
    for key in ("metadata_columns", "manifest_columns"):
        listed = info.get(key)
        if isinstance(listed, list):
            return [c for c in listed if c in spines.column_names]
    from ..morphology import SPINE_MESH_FEATURE_COLUMNS

    known = set(SPINE_MESH_FEATURE_COLUMNS) | {"source", "path", "run_folder", "folder", "file"}
    return [c for c in spines.column_names
            if c not in known and not c.endswith(_RESULT_HINTS)]


def spine_rows(spines) -> list[dict]:
    """The spines table as rows (dicts), NaN kept as float NaN."""
    return spines.to_pylist()


def mesh_path(folder: Folder, row: dict) -> Path | None:
    """The mesh file of one spine row (None when the row names none)."""
    name = row.get("mesh_file")
    if not name:
        return None
    if folder.kind == "run":
        return folder.path / name
    for key in ("run_folder", "folder"):
        sub = row.get(key)
        if sub:
            return folder.path / str(sub) / name
    source = row.get("source") or row.get("path")
    if source:
        stem = Path(str(source)).name
        for suffix in (".gz", ".bz2", ".xz"):
            stem = stem.removesuffix(suffix)
        candidate = folder.path / Path(stem).stem
        return candidate / name
    return None


def read_drift(run_dir: Path, info: dict) -> dict:
    """``drift.csv`` of one run folder as arrays; :class:`Missing` with the reason."""
    path = run_dir / "drift.csv"
    if not path.is_file():
        stage = (info.get("stages") or {}).get("drift") or {}
        why = stage.get("skipped") if isinstance(stage, dict) else None
        raise Missing(f"no drift.csv ({why})" if why else "no drift.csv in the folder")
    import pyarrow.csv as pacsv

    try:
        t = pacsv.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise Missing(f"drift.csv could not be read: {' '.join(str(exc).split())}") from None
    cols = {c: t.column(c).to_numpy(zero_copy_only=False).astype(float) for c in t.column_names
            if c in ("frame", "time_s", "dx_nm", "dy_nm", "dz_nm",
                     "sigma_x_nm", "sigma_y_nm", "sigma_z_nm")}
    if "dx_nm" not in cols or ("frame" not in cols and "time_s" not in cols):
        raise Missing(f"drift.csv has no dx_nm/frame columns (found {t.column_names})")
    return cols


def _bounds_from_statistics(pf) -> tuple | None:
    md = pf.metadata
    names = pf.schema_arrow.names
    lo, hi = [math.inf, math.inf], [-math.inf, -math.inf]
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for k, col in enumerate(("x", "y")):
            st = rg.column(names.index(col)).statistics
            if st is None or not st.has_min_max:
                return None
            lo[k], hi[k] = min(lo[k], float(st.min)), max(hi[k], float(st.max))
    if not all(math.isfinite(v) for v in lo + hi):
        return None
    return lo, hi


def histogram_xy(path: Path, *, bins: int = 600, batch_rows: int = 2_000_000):
    """A 2D histogram (counts) of x, y of a localization Parquet file, read in batches.

    Each batch is binned by :func:`smlmspine.voxel.render` (``histogram``) on one common
    grid (``bins`` pixels across the larger side of the data's bounds), so memory stays
    bounded by ``batch_rows`` whatever the file's size. Returns ``(counts (ny, nx),
    (x0, x1, y0, y1) nm, n_localizations)``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..voxel import render

    if not path.is_file():
        raise Missing(f"no {path.name} in the folder")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001
        raise Missing(f"{path.name} could not be read: {' '.join(str(exc).split())}") from None
    if not {"x", "y"} <= set(pf.schema_arrow.names):
        raise Missing(f"{path.name} has no x/y columns")
    bounds = _bounds_from_statistics(pf)
    if bounds is None:
        lo, hi = [math.inf, math.inf], [-math.inf, -math.inf]
        for b in pf.iter_batches(batch_size=batch_rows, columns=["x", "y"]):
            for k, col in enumerate(("x", "y")):
                a = b.column(col).to_numpy(zero_copy_only=False)
                a = a[np.isfinite(a)]
                if a.size:
                    lo[k], hi[k] = min(lo[k], float(a.min())), max(hi[k], float(a.max()))
        bounds = (lo, hi)
    (x0, y0), (x1, y1) = bounds
    if not (math.isfinite(x0) and math.isfinite(x1)):
        raise Missing(f"{path.name} holds no finite localizations")
    px = max(x1 - x0, y1 - y0, 1.0) / bins
    # whole pixels, the last one past the largest coordinate (pixels are [e, e + px))
    nx, ny = int((x1 - x0) // px) + 1, int((y1 - y0) // px) + 1
    roi = (x0, y0, x0 + nx * px, y0 + ny * px)
    counts = None
    n = 0
    for b in pf.iter_batches(batch_size=batch_rows, columns=["x", "y"]):
        t = pa.Table.from_batches([b])
        x, y = (t.column(c).to_numpy(zero_copy_only=False) for c in ("x", "y"))
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.all():
            t = t.filter(pa.array(ok))
        if t.num_rows == 0:
            continue
        img = np.rint(render(t, voxel_nm=px, dims=2, roi_nm=roi).data).astype(np.int64)
        counts = img if counts is None else counts + img
        n += t.num_rows
    if counts is None:
        raise Missing(f"{path.name} holds no finite localizations")
    ny, nx = counts.shape
    return counts, (x0, x0 + nx * px, y0, y0 + ny * px), n


def coupling_outputs(folder: Folder) -> list[tuple[str, Path]]:
    """Folders holding a ``smlmspine couple`` output (``rings.parquet`` + ``summary.json``).

    Looked for in the folder itself, its subfolders and their ``coupling*`` subfolders
    (e.g. ``OUTDIR/coupling/`` written by ``smlmspine couple ... -o OUTDIR/coupling``).
    """
    root = folder.path
    found = []
    candidates = [root] + sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    for c in list(candidates[1:]):
        candidates += sorted((p for p in c.iterdir() if p.is_dir() and p.name.startswith("coupling")),
                             key=lambda p: p.name)
    for c in candidates:
        if (c / "rings.parquet").is_file() and (c / "summary.json").is_file():
            found.append((c.relative_to(root).as_posix() if c != root else ".", c))
    return found


def read_coupling(path: Path) -> tuple[dict, dict]:
    """(summary.json, rings as arrays) of one coupling output folder."""
    import pyarrow.parquet as pq

    summary = read_json(path / "summary.json")
    try:
        rings = pq.read_table(path / "rings.parquet")
    except Exception as exc:  # noqa: BLE001
        raise Missing(f"rings.parquet could not be read: {' '.join(str(exc).split())}") from None
    need = ("r_inner_nm", "r_outer_nm", "z_score", "in_window", "delta_k")
    missing = [c for c in need if c not in rings.column_names]
    if missing:
        raise Missing(f"rings.parquet lacks {missing}")
    return summary, {c: rings.column(c).to_numpy(zero_copy_only=False) for c in rings.column_names}


def read_failures(outdir: Path) -> list[dict]:
    """Rows of ``failures.csv`` (:class:`Missing` when there is none)."""
    path = outdir / "failures.csv"
    if not path.is_file():
        raise Missing("no failures.csv in the folder")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise Missing(f"failures.csv could not be read: {exc}") from None
