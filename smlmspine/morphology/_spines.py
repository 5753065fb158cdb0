"""Per-spine entry points of the morphology stage: mesh files to a feature table, and the
point-based neck diameter of a measured spine. Re-exported by :mod:`smlmspine.morphology`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ._classify import ClassRules
from ._measure import SpineMeasurement, measure_spine
from ._neckfit import NeckFit, fit_neck_diameter, radial_distances
from ._tables import _iter_paths, features_table, load_mesh

__all__ = ["neck_fit_for_spine", "measure_meshes"]


def neck_fit_for_spine(points_nm: np.ndarray, measurement: SpineMeasurement, *,
                       label: str = "membrane", sigma_nm: float | None = None) -> NeckFit | None:
    """Point-based neck diameter of one spine from its localizations.

    The neck axis is the centreline between the base and the head-neck boundary
    (a straight fit); localizations whose projection falls in the middle 80 % of that
    segment and that lie within ``neck_mean_diameter/2 + 4 sigma`` (at least 60 nm) of
    the axis are used. Returns ``None`` for spines without a neck or with too few
    localizations there.

    Parameters
    ----------
    points_nm : (N, 3) ndarray of float
        Localizations of the spine, nm.
    measurement : SpineMeasurement
        The spine's mesh measurement (:func:`measure_spine`), for its profile and neck.
    label : {"membrane", "volume"}
        Label model of the fit (see :func:`fit_neck_diameter`).
    sigma_nm : float, optional
        Localization precision, nm; default: fitted (15 nm for the selection radius).

    Returns
    -------
    NeckFit or None
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

    Parameters
    ----------
    paths : sequence of str or pathlib.Path
        Mesh files (PLY, OBJ, OFF, STL, GLB) or folders of them.
    units : str, optional
        Unit of the mesh coordinates (converted to nm); default: nm.
    base_point_nm : (3,) sequence of float, optional
        Base point of every spine, nm; default: found on each mesh.
    step_nm : float
        Sampling step of the cross-section profile, nm.
    rules : ClassRules
        Thresholds of the rule-based classes.
    progress : bool
        Show a progress bar.

    Returns
    -------
    (pyarrow.Table, list of SpineMeasurement)
        The features table (one row per mesh, ``source`` and ``spine_id`` from a
        ``spine_<id>`` file name, else -1) and the measurements in the same order.

    Raises
    ------
    ParameterError
        No mesh file among ``paths``.
    FormatError
        A file that cannot be read as a mesh.
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


