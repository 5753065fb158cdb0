"""Feature and profile tables, mesh loading with explicit units, profile plots."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ..schema import column_specs, spec_table
from ._measure import SpineMeasurement

__all__ = ["SPINE_COLUMNS", "PROFILE_COLUMNS", "SPINE_MESH_FEATURE_COLUMNS", "features_table", "profile_table", "load_mesh",
           "MESH_UNITS_NM", "plot_profile"]

MESH_UNITS_NM = {"nm": 1.0, "um": 1000.0}

_F64 = pa.float64()

#: Columns of the spine features table (``data_schemas/spines.json``).
SPINE_COLUMNS = column_specs(
    ("source", pa.string(), "", "mesh file (or input) the spine comes from"),
    ("spine_id", pa.int64(), "1", "spine label (-1 when unknown)"),
    ("length_nm", _F64, "nm", "centreline length from the base to the tip"),
    ("neck_min_diameter_nm", _F64, "nm", "smallest equivalent diameter 2*sqrt(A/pi) between base and head"),
    ("neck_mean_diameter_nm", _F64, "nm", "mean equivalent diameter from the base to the head-neck boundary"),
    ("neck_length_nm", _F64, "nm", "centreline length from the base to the head-neck boundary"),
    ("head_diameter_nm", _F64, "nm", "largest equivalent diameter of a cross-section in the distal half"),
    ("head_volume_um3", _F64, "um^3", "volume distal of the head-neck boundary plane"),
    ("volume_um3", _F64, "um^3", "volume distal of the base section, plus the prism of the base section over a skipped cap or gap (NaN if the mesh is not watertight)"),
    ("surface_area_um2", _F64, "um^2", "surface area distal of the base section (no closing cap), plus the side of that prism"),
    ("convex_hull_ratio", _F64, "1", "volume distal of the base section / its convex hull volume"),
    ("head_neck_ratio", _F64, "1", "head_diameter_nm / neck_min_diameter_nm"),
    ("open_angle_deg", _F64, "deg", "angle at the base between the directions to the centre of mass and to the tip"),
    ("cvd", _F64, "1", "coefficient of variation of centre-of-mass-to-vertex distances"),
    ("n_tips", pa.int64(), "1", "number of distal branches (> 1: branched)"),
    ("is_watertight", pa.bool_(), "", "the mesh is closed (volumes valid)"),
    ("base_x_nm", _F64, "nm", "base point x"),
    ("base_y_nm", _F64, "nm", "base point y"),
    ("base_z_nm", _F64, "nm", "base point z"),
    ("base_area_nm2", _F64, "nm^2", "area of the base section (where the spine proper begins; the cut of a spine cut from its dendrite)"),
    ("cap_length_nm", _F64, "nm", "axial extent of the cap closing the spine's base, left out of every measurement (0: none)"),
    ("neck_fit_diameter_nm", _F64, "nm", "neck diameter fitted to the localizations (NaN without them)"),
    ("neck_fit_diameter_err_nm", _F64, "nm", "standard error of neck_fit_diameter_nm"),
    ("spine_class", pa.string(), "", "class: thin, mushroom, stubby, filopodium, branched"),
    ("quality", pa.string(), "", "ok (every plausibility rule passed), flagged (see quality_reason) or not_measured"),
    ("quality_reason", pa.string(), "", "plausibility rules that fired, '; '-separated (docs/morphology.md); impossible values are NaN"),
    ("trustworthy", pa.bool_(), "", "quality == 'ok': filter with pc.field('trustworthy') / df[df.trustworthy]"),
)

def _mesh_feature_columns():
    from .._columns import SPINE_MESH_COLUMNS

    extra = {k: v for k, v in SPINE_COLUMNS.items() if k not in SPINE_MESH_COLUMNS and k != "source"}
    return {**SPINE_MESH_COLUMNS, **extra}


#: Columns of ``spines.parquet`` written by ``smlmspine mesh`` and ``smlmspine run``: the
#: envelope's per-spine columns followed by the morphology features and class
#: (``data_schemas/spine_meshes.json``).
SPINE_MESH_FEATURE_COLUMNS = _mesh_feature_columns()

#: Columns of a per-spine cross-section profile table (``data_schemas/spine_profiles.json``).
PROFILE_COLUMNS = column_specs(
    ("spine_id", pa.int64(), "1", "spine label"),
    ("s_nm", _F64, "nm", "arc length along the centreline from the base"),
    ("x_nm", _F64, "nm", "centreline point x"),
    ("y_nm", _F64, "nm", "centreline point y"),
    ("z_nm", _F64, "nm", "centreline point z"),
    ("area_nm2", _F64, "nm^2", "cross-section area"),
    ("diameter_nm", _F64, "nm", "equivalent diameter 2*sqrt(area/pi)"),
    ("min_width_nm", _F64, "nm", "minimum Feret width of the section"),
    ("max_width_nm", _F64, "nm", "maximum Feret width of the section"),
    ("perimeter_nm", _F64, "nm", "perimeter of the section"),
)


def features_table(measurements: Sequence[SpineMeasurement], *, sources: Sequence[str] | None = None,
                   spine_ids: Sequence[int] | None = None, neck_fits: Sequence | None = None,
                   classes: Sequence[str] | None = None, metadata: dict | None = None,
                   precision_nm: float | None = None, rules=None) -> pa.Table:
    """One row per spine following :data:`SPINE_COLUMNS`.

    Every row passes :func:`~smlmspine.morphology.check_plausibility` (with the
    localization precision ``precision_nm`` when known): impossible values become NaN,
    ``quality``/``quality_reason``/``trustworthy`` say what fired. Classes (unless
    given) come from the checked features with ``rules``.

    Parameters
    ----------
    measurements : sequence of SpineMeasurement
        One per spine, from :func:`~smlmspine.morphology.measure_spine`.
    sources : sequence of str, optional
        Mesh file (or input) of each spine, column ``source`` (default ``""``).
    spine_ids : sequence of int, optional
        Label of each spine, column ``spine_id`` (default -1: unknown).
    neck_fits : sequence of NeckFit or None, optional
        Point-based neck fit of each spine
        (:func:`~smlmspine.morphology.fit_neck_diameter`), None where there is none;
        ``neck_fit_diameter_nm`` and ``neck_fit_diameter_err_nm`` are NaN without a fit,
        and a fit that did not converge is set to NaN by the plausibility check.
    classes : sequence of str, optional
        Class of each spine, used as given (e.g. from a trained classifier); default:
        :func:`~smlmspine.morphology.classify_rules` on the checked features.
    metadata : dict, optional
        Table metadata, stored JSON-encoded under ``smlmspine.<key>``.
    precision_nm : float, optional
        Localization precision (1 sigma, nm) for the resolution rules of the
        plausibility check; default: only the 20 nm membrane limit.
    rules : ClassRules, optional
        Thresholds of the rule-based classes (default ``ClassRules()``).

    Returns
    -------
    pyarrow.Table
        One row per measurement, the columns of :data:`SPINE_COLUMNS` in order, with
        units in the field metadata; impossible values are NaN.

    Raises
    ------
    SchemaError
        When a value cannot be stored with its column type.

    ParameterError
        When ``sources``, ``spine_ids``, ``neck_fits`` or ``classes`` does not hold one
        entry per measurement.

    Examples
    --------
    >>> import trimesh
    >>> from smlmspine.morphology import measure_spine
    >>> m = measure_spine(trimesh.creation.cylinder(radius=100.0, height=600.0, sections=64),
    ...                   base_point_nm=[0, 0, -300])
    >>> t = features_table([m], sources=["tube.ply"], spine_ids=[7], precision_nm=12.0)
    >>> row = t.to_pylist()[0]
    >>> row["spine_id"], row["length_nm"], row["spine_class"], row["quality"]
    (7, 600.0, 'thin', 'ok')
    """
    from ._classify import ClassRules, classify_rules
    from ._quality import check_plausibility, quality_columns

    rules = rules or ClassRules()
    n = len(measurements)
    for name, seq in (("sources", sources), ("spine_ids", spine_ids), ("neck_fits", neck_fits),
                      ("classes", classes)):
        if seq is not None and len(seq) != n:
            raise ParameterError(f"features_table: {name} has {len(seq)} entries for {n} "
                                 "measurement(s); give one per spine")
    fits = list(neck_fits) if neck_fits is not None else [None] * n
    rows = []
    for i, m in enumerate(measurements):
        f = fits[i]
        row = {**m.to_dict(),
               "neck_fit_diameter_nm": f.diameter_nm if f is not None else np.nan,
               "neck_fit_diameter_err_nm": f.diameter_err_nm if f is not None else np.nan}
        conv = f.converged if f is not None else None
        checked, _ = check_plausibility(row, precision_nm=precision_nm, neck_fit_converged=conv)
        cls = classes[i] if classes is not None else classify_rules(checked, rules)
        row, reasons = check_plausibility({**row, "spine_class": cls}, precision_nm=precision_nm,
                                          neck_fit_converged=conv)
        rows.append({**row, **quality_columns(reasons)})
    cols = {name: [r[name] for r in rows] for name in SPINE_COLUMNS if rows and name in rows[0]}
    for name in SPINE_COLUMNS:
        cols.setdefault(name, [])
    cols["source"] = list(sources) if sources is not None else [""] * n
    cols["spine_id"] = list(spine_ids) if spine_ids is not None else [-1] * n
    return spec_table(SPINE_COLUMNS, cols, metadata=metadata)


def profile_table(measurement: SpineMeasurement, *, spine_id: int = -1) -> pa.Table:
    """The cross-section profile of one spine following :data:`PROFILE_COLUMNS`.

    Parameters
    ----------
    measurement : SpineMeasurement
        From :func:`~smlmspine.morphology.measure_spine`; its ``profile`` is tabled.
    spine_id : int
        Label written in every row (default -1: unknown).

    Returns
    -------
    pyarrow.Table
        One row per cross-section, ordered by arc length from the base, the columns of
        :data:`PROFILE_COLUMNS` (lengths in nm, areas in nm^2).

    Examples
    --------
    >>> import trimesh
    >>> from smlmspine.morphology import measure_spine
    >>> m = measure_spine(trimesh.creation.cylinder(radius=100.0, height=600.0, sections=64),
    ...                   base_point_nm=[0, 0, -300])
    >>> p = profile_table(m, spine_id=7)
    >>> p.column_names[:3], set(p.column("spine_id").to_pylist())
    (['spine_id', 's_nm', 'x_nm'], {7})
    """
    p = measurement.profile
    n = len(p["s_nm"])
    cols = {k: p[k] for k in PROFILE_COLUMNS if k != "spine_id"}
    cols["spine_id"] = np.full(n, spine_id, dtype=np.int64)
    return spec_table(PROFILE_COLUMNS, cols)


def load_mesh(path: str | Path, *, units: str | None):
    """Load a PLY/OBJ/OFF/STL/GLB mesh and scale it to nm.

    ``units`` must be given ("nm" or "um") unless the file says it was written by
    smlmspine in nm (a ``smlmspine`` comment with ``units=nm`` in the header); units are
    never guessed from the size of the coordinates.

    Parameters
    ----------
    path : str or Path
        Mesh file; any format trimesh reads as one triangle mesh (several bodies are
        concatenated).
    units : {"nm", "um"} or None
        Length unit of the file's coordinates. None: the unit the file declares
        (only smlmspine's own PLY/OBJ/OFF files declare ``nm``), else an error.

    Returns
    -------
    trimesh.Trimesh
        The mesh (processed by trimesh: duplicate vertices merged), in nm.

    Raises
    ------
    FormatError
        When the file does not exist, cannot be read as a mesh, or holds no triangles.
    ParameterError
        When ``units`` is None and the file does not declare its units, or ``units``
        is not ``"nm"`` or ``"um"``.

    Examples
    --------
    >>> import tempfile, pathlib, trimesh
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d) / "box.ply"
    ...     _ = trimesh.creation.box(extents=(1.0, 2.0, 3.0)).export(path)
    ...     mesh = load_mesh(path, units="um")
    >>> mesh.extents.tolist()
    [1000.0, 2000.0, 3000.0]
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FormatError("no such mesh file", path=path)
    file_units = _declared_units(path)
    if units is None:
        units = file_units
    if units is None:
        raise ParameterError(f"{path}: the mesh units are unknown; pass units='nm' or 'um' "
                             "(CLI: --units nm|um). Units are never guessed")
    if units not in MESH_UNITS_NM:
        raise ParameterError(f"units must be one of {sorted(MESH_UNITS_NM)}, got {units!r}")
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:  # trimesh raises many types for bad files
        raise FormatError(f"not a readable mesh: {type(exc).__name__}: {exc}", path=path) from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise FormatError("the file holds no triangle mesh", path=path)
    if MESH_UNITS_NM[units] != 1.0:
        mesh = mesh.copy()
        mesh.apply_scale(MESH_UNITS_NM[units])
    return mesh


def _header_lines(path: Path) -> list[str]:
    """The lines of a mesh file's header, lower-cased (at most 60 within its first 4 kB,
    up to a PLY ``end_header``); empty when the file cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("latin-1")
    except OSError:
        return []
    lines = []
    for line in head.splitlines()[:60]:
        low = line.lower()
        if low.startswith("end_header"):
            break
        lines.append(low)
    return lines


def _declared_units(path: Path) -> str | None:
    if path.suffix.lower() not in (".ply", ".obj", ".off"):
        return None
    for low in _header_lines(path):
        if "smlmspine" in low and "units=nm" in low.replace(" ", ""):
            return "nm"
    return None


def plot_profile(measurement: SpineMeasurement, path: str | Path, *, title: str = "") -> Path:
    """Plot the diameter profile with the neck minimum, head and head-neck boundary marked.

    The equivalent diameter against the arc length from the base, the band between the
    minimum and maximum Feret widths, horizontal lines at ``neck_min_diameter_nm`` and
    ``head_diameter_nm`` and a vertical line at ``neck_length_nm`` (when > 0). Uses
    matplotlib's non-interactive ``Agg`` backend.

    Parameters
    ----------
    measurement : SpineMeasurement
        From :func:`~smlmspine.morphology.measure_spine`.
    path : str or Path
        Image file to write (format from the suffix, e.g. ``.png``; 100 dpi).
    title : str
        Title of the plot.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile, pathlib, trimesh
    >>> from smlmspine.morphology import measure_spine
    >>> m = measure_spine(trimesh.creation.cylinder(radius=100.0, height=600.0, sections=64),
    ...                   base_point_nm=[0, 0, -300])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = plot_profile(m, pathlib.Path(d) / "profile.png", title="tube")
    ...     print(out.name, out.stat().st_size > 0)
    profile.png True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = measurement.profile
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(p["s_nm"], p["diameter_nm"], "k-", label="equivalent diameter")
    ax.fill_between(p["s_nm"], p["min_width_nm"], p["max_width_nm"], color="0.85",
                    label="min-max width")
    ax.axhline(measurement.neck_min_diameter_nm, color="tab:blue", ls="--",
               label=f"neck min {measurement.neck_min_diameter_nm:.0f} nm")
    ax.axhline(measurement.head_diameter_nm, color="tab:red", ls="--",
               label=f"head {measurement.head_diameter_nm:.0f} nm")
    if measurement.neck_length_nm > 0:
        ax.axvline(measurement.neck_length_nm, color="tab:green", ls=":", label="head-neck boundary")
    ax.set_xlabel("distance from base along centreline (nm)")
    ax.set_ylabel("diameter (nm)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _iter_paths(items: Iterable[str | Path]) -> list[Path]:
    exts = {".ply", ".obj", ".off", ".stl", ".glb"}
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in exts))
        else:
            out.append(p)
    return out
