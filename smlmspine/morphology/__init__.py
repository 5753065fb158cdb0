"""Spine morphology: neck constriction, head and length measurements, classes.

From a closed spine mesh (ours from :mod:`smlmspine.envelope`, or anyone's: EM
reconstructions, confocal/SIM tools) to a feature table with units in the column
names, a cross-section profile per spine, rule-based or trained classes, and a
point-based neck diameter fitted to the localizations (free of envelope bias).
Definitions are in ``docs/morphology.md``.

Examples
--------
>>> import trimesh
>>> from smlmspine.morphology import measure_spine
>>> m = measure_spine(trimesh.creation.cylinder(radius=100.0, height=600.0, sections=64),
...                   base_point_nm=[0, 0, -300])
>>> round(m.head_diameter_nm), round(m.volume_um3, 4)
(200, 0.0188)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from ._classify import (ML_FEATURES, SPINE_CLASSES, ClassifierModel, ClassRules, TrainingReport,
                        classify_rules, classify_table, has_head, load_model, save_model,
                        train_classifier)
from ._measure import FEATURE_NAMES, BasePlane, SpineMeasurement, base_plane, find_base, measure_spine
from ._neckfit import NeckFit, fit_neck_diameter, radial_distances
from ._necksurface import NeckSurfaceFit, fit_neck_surface
from ._quality import EM_RANGES, PLAUSIBILITY_RULES, check_plausibility, quality_columns
from ._sections import centreline, cross_section, section_profile
from ._tables import (PROFILE_COLUMNS, SPINE_COLUMNS, SPINE_MESH_FEATURE_COLUMNS, _iter_paths,
                      features_table, load_mesh, plot_profile, profile_table)

__all__ = [
    "measure_spine", "measure_meshes", "SpineMeasurement", "FEATURE_NAMES", "find_base",
    "base_plane", "BasePlane", "check_plausibility", "quality_columns", "PLAUSIBILITY_RULES",
    "EM_RANGES",
    "section_profile", "centreline", "cross_section",
    "fit_neck_diameter", "radial_distances", "neck_fit_for_spine", "NeckFit",
    "fit_neck_surface", "NeckSurfaceFit",
    "classify_rules", "classify_table", "has_head", "ClassRules", "SPINE_CLASSES", "train_classifier",
    "TrainingReport", "load_model", "save_model", "ClassifierModel", "ML_FEATURES",
    "features_table", "profile_table", "SPINE_COLUMNS", "PROFILE_COLUMNS", "load_mesh",
    "SPINE_MESH_FEATURE_COLUMNS",
    "plot_profile",
]


def neck_fit_for_spine(points_nm: np.ndarray, measurement: SpineMeasurement, *,
                       label: str = "membrane", sigma_nm: float | None = None) -> NeckFit | None:
    """Point-based neck diameter of one spine from its localizations.

    The neck axis is the centreline between the base and the head-neck boundary
    (a straight fit); localizations whose projection falls in the middle 80 % of that
    segment and that lie within ``neck_mean_diameter/2 + 4 sigma`` (at least 60 nm) of
    the axis are used. Returns ``None`` for spines without a neck or with too few
    localizations there.
    """
    p = measurement.profile
    if measurement.neck_length_nm <= 0 or len(p.get("s_nm", [])) < 3:
        return None
    sel = p["s_nm"] <= measurement.neck_length_nm
    if sel.sum() < 2:
        return None
    c = np.c_[p["x_nm"][sel], p["y_nm"][sel], p["z_nm"][sel]]
    centre = c.mean(axis=0)
    _, _, vt = np.linalg.svd(c - centre, full_matrices=False)
    axis = vt[0]
    s = (c - centre) @ axis
    lo, hi = s.min(), s.max()
    span = hi - lo
    sig = sigma_nm if sigma_nm is not None else 15.0
    r_max = max(measurement.neck_mean_diameter_nm / 2 + 4 * sig, 60.0)
    r = radial_distances(points_nm, centre, axis, s_min_nm=lo + 0.1 * span, s_max_nm=hi - 0.1 * span)
    r = r[r < r_max]
    if r.size < 20:
        return None
    return fit_neck_diameter(r, label=label, r_max_nm=r_max, sigma_nm=sigma_nm,
                             initial_radius_nm=measurement.neck_min_diameter_nm / 2)


def measure_meshes(paths: Sequence[str | Path], *, units: str | None = None,
                   base_point_nm: Sequence[float] | None = None, step_nm: float = 10.0,
                   rules: ClassRules = ClassRules(), progress: bool = False):
    """Measure mesh files (or folders of them); one row per mesh with a ``source`` column.

    Returns ``(features table, list of SpineMeasurement)``.
    """
    files = _iter_paths(paths)
    if not files:
        from ..errors import ParameterError

        raise ParameterError("no mesh files given (PLY/OBJ/OFF/STL/GLB)")
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="measuring spines", unit="spine")
    measurements, sources, ids = [], [], []
    for path in iterator:
        mesh = load_mesh(path, units=units)
        measurements.append(measure_spine(mesh, base_point_nm=base_point_nm, step_nm=step_nm))
        sources.append(str(path))
        ids.append(_spine_id_from(path))
    table = features_table(measurements, sources=sources, spine_ids=ids, rules=rules,
                           metadata={"units_in": units, "step_nm": step_nm})
    return table, measurements


def _spine_id_from(path: Path) -> int:
    stem = Path(path).stem
    if stem.startswith("spine_") and stem[6:].lstrip("-").isdigit():
        return int(stem[6:])
    return -1


