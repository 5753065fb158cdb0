"""The body of each report section, from a :class:`~smlmspine.report._collect.Folder`.

Each builder returns HTML; an absent optional input raises :class:`Missing`, which the
page shows as "not run: <reason>".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import SmlmSpineError
from . import _figures as figs
from ._collect import (Folder, Missing, coupling_outputs, histogram_xy, mesh_path, read_coupling,
                       read_drift, read_failures, read_json)
from ._html import details_json, error, esc, fmt, img, not_run, note, table

__all__ = ["BUILDERS", "FEATURES", "MAX_FILES"]

#: Features plotted by class and by condition: (column, axis label).
FEATURES = (("neck_min_diameter_nm", "neck minimum diameter (nm)"),
            ("neck_fit_diameter_nm", "neck diameter fitted to points (nm)"),
            ("head_diameter_nm", "head diameter (nm)"),
            ("length_nm", "length (nm)"),
            ("volume_um3", "volume (µm³)"),
            ("head_neck_ratio", "head / neck ratio"))

#: Files of a batch drawn in the drift and overview sections (the rest are listed).
MAX_FILES = 12
#: Rows of the spine table.
MAX_TABLE_ROWS = 300


def _col(folder: Folder, name: str, default=None) -> list:
    t = folder.spines
    if t is None or name not in t.column_names:
        return [default] * (0 if t is None else t.num_rows)
    return t.column(name).to_pylist()


def _trusted(folder: Folder) -> np.ndarray:
    """Trustworthy spines: the ``trustworthy`` column, else ``quality == "ok"``, else all."""
    t = folder.spines
    if "trustworthy" in t.column_names:
        return np.array([bool(v) for v in t.column("trustworthy").to_pylist()], dtype=bool)
    if "quality" in t.column_names:
        return np.array([q == "ok" for q in t.column("quality").to_pylist()], dtype=bool)
    return np.ones(t.num_rows, dtype=bool)


def _floats(folder: Folder, name: str) -> np.ndarray:
    vals = _col(folder, name)
    return np.array([np.nan if v is None else float(v) for v in vals], dtype=float)


def _classes_in_order(classes: list) -> list[str]:
    present = {c or "unclassified" for c in classes}
    known = [c for c in figs.CLASS_COLORS if c in present]
    return known + sorted(present - set(known))


def _swatch(cls: str) -> str:
    return f'<span class="swatch" style="background:{figs.class_color(cls)}"></span>'


# ---------------------------------------------------------------- summary

def summary(folder: Folder) -> str:
    """Counts: localizations, spines by class, how many are trustworthy; the run's warnings."""
    info = folder.info
    rows: list[list] = []
    if folder.kind == "run":
        st = info.get("stages") or {}
        read = st.get("read") or {}
        rows += [["source", read.get("source")], ["format", read.get("format")],
                 ["localizations read", read.get("n_localizations")]]
        merge = st.get("merge") or {}
        if "n_after" in merge:
            rows.append(["localizations after blink merging", merge["n_after"]])
        dend = info.get("dendrite") or {}
        if "dendrite_score" in dend:
            rows.append(["dendrite score (0-1)", dend.get("dendrite_score")])
        rows += [["smlmspine version", info.get("smlmspine_version")],
                 ["run time (s)", info.get("seconds")]]
    else:
        rows += _batch_status_rows(info)
    body = [table(["", "value"], rows)]
    if folder.kind == "batch":
        body.append(_files_table(folder))
    if folder.spines is None:
        body.append(not_run(folder.spines_error))
    else:
        trusted = _trusted(folder)
        classes = _col(folder, "spine_class", "")
        quality = _col(folder, "quality", "")
        neck = _floats(folder, "neck_min_diameter_nm")
        good = neck[trusted & np.isfinite(neck)]
        rows2 = [["spines", folder.spines.num_rows],
                 ["trustworthy (quality ok)", int(trusted.sum())],
                 ["flagged", sum(q == "flagged" for q in quality)],
                 ["not measured", sum(q == "not_measured" for q in quality)],
                 ["median neck minimum diameter, trustworthy spines (nm)",
                  float(np.median(good)) if good.size else None]]
        body.append("<h3>Spines</h3>" + table(["", "value"], rows2, numeric={1}))
        counts = {c: 0 for c in _classes_in_order(classes)}
        for c in classes:
            counts[c or "unclassified"] += 1
        body.append("<p>" + " &nbsp; ".join(f"{_swatch(c)}{esc(c)} {n}" for c, n in counts.items())
                    + "</p>")
    warnings = info.get("warnings") or []
    if warnings:
        body.append("<h3>Quality warnings</h3><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings)
                    + "</ul>")
    return "\n".join(body)


def _batch_status_rows(info: dict) -> list[list]:
    rows = []
    counts = info.get("counts")
    if not isinstance(counts, dict):
        files = info.get("files") or []
        counts = {}
        for f in files.values() if isinstance(files, dict) else files:
            s = f.get("status", "unknown") if isinstance(f, dict) else str(f)
            counts[s] = counts.get(s, 0) + 1
    if counts:
        rows.append(["files", info.get("n_files", sum(counts.values()))])
        rows += [[f"files {k}", v] for k, v in counts.items()]
    inputs = info.get("inputs")
    if isinstance(inputs, (str, int, float)):
        rows.append(["inputs", inputs])
    elif isinstance(inputs, dict):
        rows += [[f"inputs: {k}", json.dumps(v) if isinstance(v, (dict, list)) else v]
                 for k, v in inputs.items()]
    for key in ("smlmspine_version", "seconds"):
        if key in info:
            rows.append([key.replace("_", " "), info[key]])
    sched = info.get("scheduler")
    if isinstance(sched, dict):
        rows += [[f"scheduler: {k}", json.dumps(v) if isinstance(v, (dict, list)) else v]
                 for k, v in sched.items()]
    elif sched:
        rows.append(["scheduler", sched])
    return rows


#: Columns of localizations_summary.parquet shown in the batch summary (when present).
_FILE_COLUMNS = ("status", "n_localizations", "n_merged", "drift_max_abs_dx_nm",
                 "drift_max_abs_dy_nm", "drift_max_abs_dz_nm", "n_spines", "dendrite_score",
                 "median_neck_min_diameter_nm", "seconds")


def _files_table(folder: Folder) -> str:
    """One row per file of a batch: ``localizations_summary.parquet`` (its main columns
    and the manifest's), else the per-file status of ``batch.json``."""
    path = folder.path / "localizations_summary.parquet"
    if path.is_file():
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - shown in place
            return error(f"localizations_summary.parquet could not be read: "
                         f"{' '.join(str(exc).split())}")
        cols = [c for c in ("source", *folder.metadata_columns, *_FILE_COLUMNS)
                if c in t.column_names]
        rows = t.select(cols).to_pylist()
        for r in rows:
            if "source" in r:
                r["source"] = Path(str(r["source"])).name
        header = [c.replace("_nm", " (nm)").replace("_", " ") for c in cols]
        numeric = {i for i, c in enumerate(cols) if c.startswith(("n_", "drift_", "median_"))
                   or c in ("seconds", "dendrite_score")}
        return ("<h3>Files (localizations_summary.parquet)</h3>"
                + table(header, [[r[c] for c in cols] for r in rows[:MAX_TABLE_ROWS]],
                        row_classes=["flagged" if r.get("status") == "failed" else ""
                                     for r in rows[:MAX_TABLE_ROWS]], numeric=numeric))
    files = folder.info.get("files")
    if isinstance(files, list) and files and all(isinstance(f, dict) for f in files):
        cols = [c for c in ("source", "run_folder", "status", "seconds", "error")
                if any(c in f for f in files)]
        return ("<h3>Files (batch.json)</h3>"
                + table(cols, [[f.get(c, "") for c in cols] for f in files[:MAX_TABLE_ROWS]]))
    return ""


# ---------------------------------------------------------------- drift

def drift(folder: Folder) -> str:
    """The drift trace (dx, dy, dz against frame) of the run, or of each file of a batch."""
    if folder.kind == "run":
        d = read_drift(folder.path, folder.info)
        stage = (folder.info.get("stages") or {}).get("drift") or {}
        rows = [[k, stage.get(k)] for k in ("method", "n_segments", "max_abs_dx_nm",
                                            "max_abs_dy_nm", "max_abs_dz_nm") if k in stage]
        return (img(figs.drift_figure([("", d)]), alt="drift trace")
                + note("Estimated stage drift subtracted from the localizations; the band is "
                       "± 2 standard errors of the estimate.")
                + (table(["", "value"], rows) if rows else ""))
    traces, absent = [], []
    for label, path in folder.runs:
        try:
            info = read_json(path / "run.json")
            traces.append((label, read_drift(path, info)))
        except (Missing, SmlmSpineError) as exc:  # listed per file below
            absent.append(f"{label}: {exc}")
    if not traces:
        raise Missing("no file of the batch has a drift.csv"
                      + (f" ({'; '.join(absent[:5])})" if absent else ""))
    shown = traces[:MAX_FILES]
    out = img(figs.drift_figure(shown), alt="drift traces of the files")
    if len(traces) > len(shown):
        out += note(f"showing the first {len(shown)} of {len(traces)} files with a drift trace")
    if absent:
        out += note("no drift trace: " + "; ".join(absent))
    return out


# ---------------------------------------------------------------- overview

def _spots(spines) -> list:
    if spines is None or not {"base_x_nm", "base_y_nm", "spine_id"} <= set(spines.column_names):
        return []
    cls = spines.column("spine_class").to_pylist() if "spine_class" in spines.column_names \
        else [""] * spines.num_rows
    return [(x if x is not None else np.nan, y if y is not None else np.nan, str(i),
             figs.class_color(c))
            for x, y, i, c in zip(spines.column("base_x_nm").to_pylist(),
                                  spines.column("base_y_nm").to_pylist(),
                                  spines.column("spine_id").to_pylist(), cls)]


def overview(folder: Folder) -> str:
    """A 2D histogram of the localizations (x, y) with the spine ids at their bases."""
    if folder.kind == "run":
        counts, extent, n = histogram_xy(folder.path / "localizations.parquet")
        px = (extent[1] - extent[0]) / counts.shape[1]
        return (img(figs.overview_figure(counts, extent, spots=_spots(folder.spines)),
                    alt="overview of the localizations")
                + note(f"{n} localizations after drift correction and merging, binned at "
                       f"{px:.0f} nm (square-root scale); circles: spine bases with their ids, "
                       "coloured by class."))
    import pyarrow.parquet as pq

    figures, absent = [], []
    for label, path in folder.runs[:MAX_FILES]:
        try:
            counts, extent, n = histogram_xy(path / "localizations.parquet")
        except Missing as exc:
            absent.append(f"{label}: {exc}")
            continue
        sp = None
        if (path / "spines.parquet").is_file():
            try:
                sp = pq.read_table(path / "spines.parquet")
            except Exception:  # noqa: BLE001 - the overview is drawn without the spots
                sp = None
        data = figs.overview_figure(counts, extent, spots=_spots(sp), title=label, size_in=4.6)
        figures.append(f"<figure>{img(data, alt=f'overview of {label}')}"
                       f"<figcaption>{esc(label)}: {n} localizations</figcaption></figure>")
    if not figures:
        raise Missing("no file of the batch has a localizations.parquet"
                      + (f" ({'; '.join(absent[:5])})" if absent else ""))
    out = '<div class="grid">' + "".join(figures) + "</div>"
    if len(folder.runs) > MAX_FILES:
        out += note(f"showing the first {MAX_FILES} of {len(folder.runs)} files")
    if absent:
        out += note("no overview: " + "; ".join(absent))
    return out


# ---------------------------------------------------------------- gallery

def _caption(row: dict, batch: bool) -> str:
    cls = row.get("spine_class") or "unclassified"
    lines = [f"<b>spine {esc(row.get('spine_id'))}</b> {_swatch(cls)}{esc(cls)}"]
    if batch:
        src = row.get("source") or row.get("path") or ""
        lines.append(esc(Path(str(src)).name))
    lines.append(f"neck {esc(fmt(row.get('neck_min_diameter_nm')))} nm · "
                 f"head {esc(fmt(row.get('head_diameter_nm')))} nm")
    lines.append(f"length {esc(fmt(row.get('length_nm')))} nm · "
                 f"{esc(fmt(row.get('volume_um3')))} µm³")
    q = row.get("quality")
    trusted = row.get("trustworthy", q in (None, "ok"))
    if q and not trusted:
        reason = str(row.get("quality_reason") or row.get("reason") or "")
        short = reason if len(reason) <= 90 else reason[:87] + "..."
        lines.append(f'<span class="untrusted" title="{esc(reason)}">{esc(q)}'
                     + (f": {esc(short)}" if reason else "") + "</span>")
    return "<br>".join(lines)


def gallery(folder: Folder, *, max_thumbnails: int = 48) -> str:
    """A thumbnail of every spine mesh (class colour), captioned with its neck/head numbers."""
    import trimesh

    if folder.spines is None:
        raise Missing(folder.spines_error)
    rows = folder.spines.to_pylist()
    if not rows:
        raise Missing("no spines were found")
    batch = folder.kind == "batch"
    items = []
    for row in rows[:max_thumbnails]:
        path = mesh_path(folder, row)
        cap = _caption(row, batch)
        if path is None or not path.is_file():
            items.append(f'<figure class="thumb"><p class="not-run">no mesh file'
                         f'{": " + esc(path.name) if path is not None else ""}</p>'
                         f"<figcaption>{cap}</figcaption></figure>")
            continue
        try:
            mesh = trimesh.load(path, process=False, force="mesh")
            v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
            if len(f) == 0:
                raise ValueError("no faces")
        except Exception as exc:  # noqa: BLE001 - one unreadable mesh does not stop the report
            items.append(f'<figure class="thumb"><p class="error">{esc(path.name)} could not be '
                         f"read: {esc(' '.join(str(exc).split())[:120])}</p>"
                         f"<figcaption>{cap}</figcaption></figure>")
            continue
        base = np.array([row.get(f"base_{c}_nm") for c in "xyz"], dtype=float) \
            if all(row.get(f"base_{c}_nm") is not None for c in "xyz") else None
        axis = np.array([row.get(f"axis_{c}") for c in "xyz"], dtype=float) \
            if all(row.get(f"axis_{c}") is not None for c in "xyz") else None
        data = figs.spine_thumbnail(v, f, color=figs.class_color(row.get("spine_class")),
                                    base=base, axis=axis)
        alt = f"spine {row.get('spine_id')}"
        items.append(f'<figure class="thumb">{img(data, alt=alt, cls="thumb")}'
                     f"<figcaption>{cap}</figcaption></figure>")
    out = ('<div class="gallery">' + "".join(items) + "</div>"
           + note("Each spine seen from the optical axis side, its base at the bottom and its "
                  "axis up; neck = minimum equivalent diameter between base and head. Spines "
                  "that failed a plausibility rule are marked with the rule (their numbers are "
                  "not trustworthy)."))
    if len(rows) > max_thumbnails:
        out += note(f"showing the first {max_thumbnails} of {len(rows)} spines")
    return out


# ---------------------------------------------------------------- features

def _feature_plot(folder: Folder, key: list[str], groups: list[str], title: str, *,
                  by_class: bool) -> str:
    trusted = _trusted(folder)
    feats = [(c, label) for c, label in FEATURES if c in folder.spines.column_names]
    if not feats:
        raise Missing("the spines table has no morphology features")
    idx = {g: np.array([k == g for k in key], dtype=bool) for g in groups}
    values = {c: {g: _floats(folder, c)[idx[g]] for g in groups} for c, _ in feats}
    tr = {g: trusted[idx[g]] for g in groups}
    if by_class:
        colors, points = {g: figs.class_color(g) for g in groups}, None
    else:  # dots in their spine's class colour
        cls = np.array([figs.class_color(c) for c in _col(folder, "spine_class", "")],
                       dtype=object)
        colors, points = None, {g: list(cls[idx[g]]) for g in groups}
    return img(figs.feature_figure(groups, feats, values, tr, colors=colors, point_colors=points,
                                   title=title), alt=title)


def _spine_table(folder: Folder) -> str:
    t = folder.spines
    cols = [c for c in ("source", "spine_id", "spine_class", "quality", "neck_min_diameter_nm",
                        "neck_fit_diameter_nm", "head_diameter_nm", "length_nm", "volume_um3",
                        "is_watertight", "quality_reason")
            if c in t.column_names]
    rows = t.select(cols).to_pylist()[:MAX_TABLE_ROWS]
    body = []
    for r in rows:
        if "source" in r:
            r["source"] = Path(str(r["source"])).name
        body.append([r[c] for c in cols])
    quality = [r.get("quality") or "" for r in rows]
    header = [c.replace("_nm", " (nm)").replace("_um3", " (µm³)").replace("_", " ") for c in cols]
    numeric = {i for i, c in enumerate(cols) if c.endswith(("_nm", "_um3")) or c == "spine_id"}
    out = table(header, body, row_classes=[q if q in ("flagged", "not_measured") else ""
                                           for q in quality], numeric=numeric)
    if t.num_rows > MAX_TABLE_ROWS:
        out += note(f"first {MAX_TABLE_ROWS} of {t.num_rows} rows; the full table is "
                    "spines.parquet")
    return "<details><summary>every spine (table)</summary>" + out + "</details>"


def features(folder: Folder) -> str:
    """Box/strip plots of the features by class and by manifest condition; the spine table."""
    if folder.spines is None:
        raise Missing(folder.spines_error)
    if folder.spines.num_rows == 0:
        raise Missing("no spines were found")
    classes = [c or "unclassified" for c in _col(folder, "spine_class", "")]
    out = ["<h3>By class</h3>",
           _feature_plot(folder, classes, _classes_in_order(classes), "features by spine class",
                         by_class=True),
           note("Boxes and dots: the trustworthy spines (quality ok), dots in their class "
                "colour; black crosses: spines that are not trustworthy (a plausibility rule "
                "fired: their values are shown, not trusted); NaN: not measurable, counted "
                "under each group.")]
    out.append("<h3>By condition</h3>")
    if folder.kind == "run":
        out.append(not_run("one run has no manifest conditions (made by smlmspine batch with "
                           "a manifest)"))
    elif not folder.metadata_columns:
        out.append(not_run("the batch had no manifest metadata columns"))
    else:
        for col in folder.metadata_columns:
            key = ["n/a" if v is None else str(v) for v in _col(folder, col)]
            groups = sorted(set(key))
            if len(groups) > 30:
                out.append(note(f"{col}: {len(groups)} distinct values, not plotted"))
                continue
            out.append(_feature_plot(folder, key, groups, f"features by {col}", by_class=False))
    out.append(_spine_table(folder))
    return "\n".join(out)


# ---------------------------------------------------------------- coupling

def coupling(folder: Folder) -> str:
    """SODA ring statistics and cross H(r) of every ``smlmspine couple`` output found."""
    found = coupling_outputs(folder)
    if not found:
        raise Missing("no smlmspine couple output (summary.json + rings.parquet) in the folder, "
                      "its subfolders or their coupling/ folders")
    out = []
    keys = ("coupling_index_pre", "coupling_index_post", "n_coupled_pairs",
            "mean_coupling_distance_weighted_nm", "p_value", "coupled", "n_pre", "n_post",
            "ndim", "null")
    for label, path in found:
        out.append(f"<h3>{esc(label)}</h3>")
        try:
            s, rings = read_coupling(path)
        except (Missing, SmlmSpineError) as exc:  # shown in place
            out.append(error(f"{label}: {exc}"))
            continue
        out.append(img(figs.coupling_figure(s, rings), alt=f"coupling curves {label}"))
        out.append(table(["", "value"], [[k, s.get(k)] for k in keys if k in s], numeric={1}))
    return "\n".join(out)


# ---------------------------------------------------------------- failures

def failures(folder: Folder) -> str:
    """The files of a batch that failed, with their errors."""
    if folder.kind == "run":
        return ("<p>none: a single run that completed (failures are recorded per file by "
                "<code>smlmspine batch</code> in failures.csv).</p>")
    rows = read_failures(folder.path)
    if not rows:
        return "<p>none: every file of the batch succeeded.</p>"
    header = list(rows[0].keys())
    return (f"<p>{len(rows)} file(s) failed.</p>"
            + table(header, [[r.get(h, "") for h in header] for r in rows]))


# ---------------------------------------------------------------- parameters

def _flat_rows(d: dict, prefix: str = "") -> list[list]:
    rows = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and len(prefix.split(".")) < 3:
            rows += _flat_rows(v, name + ".")
        else:
            rows.append([name, json.dumps(v) if isinstance(v, (list, dict)) or v is None else v])
    return rows


def parameters(folder: Folder) -> str:
    """Every parameter of the run (``run.json``) or batch (``batch.json``), as recorded."""
    info = folder.info
    name = f"{folder.kind}.json"
    params = info.get("parameters") or info.get("config")
    out = []
    if isinstance(params, dict):
        out.append(table(["parameter", "value"], _flat_rows(params)))
    else:
        out.append(note(f"{name} holds no 'parameters' entry"))
    if folder.kind == "run":
        mesh = ((info.get("stages") or {}).get("mesh") or {}).get("parameters")
        if isinstance(mesh, dict):
            out.append("<h3>Envelope parameters (as used)</h3>"
                       + table(["parameter", "value"], _flat_rows(mesh)))
    out.append(details_json(f"{name} (complete)", info))
    return "\n".join(out)


BUILDERS = {"summary": summary, "drift": drift, "overview": overview, "gallery": gallery,
            "features": features, "coupling": coupling, "failures": failures,
            "parameters": parameters}


def build(folder: Folder, sid: str, **options) -> str:
    """The body of section ``sid``; "not run: ..." when an input is absent."""
    fn = BUILDERS[sid]
    try:
        return fn(folder, **options) if sid == "gallery" else fn(folder)
    except Missing as exc:
        return not_run(str(exc))
