"""Morphology of the spine envelopes of ``smlmspine mesh`` / ``smlmspine run``.

:func:`spine_features` extends the per-spine table of a
:class:`~smlmspine.envelope.SpineMeshes` with the morphology features, the point-based
neck fit, the quality columns and the rule-based class. Re-exported by
:mod:`smlmspine.morphology`. It reads the envelope stage's result by its attributes
only: morphology does not import :mod:`smlmspine.envelope` (the dependency between the
two stages runs one way, envelope -> morphology).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .._labels import check_label
from ..errors import ParameterError
from ..schema import coordinates, spec_table
from ._classify import ClassRules, classify_rules
from ._measure import measure_spines
from ._quality import check_plausibility, quality_columns
from ._spines import neck_fit_for_spine
from ._tables import SPINE_MESH_FEATURE_COLUMNS

__all__ = ["spine_features"]


def spine_features(meshes, *, label: str = "membrane", precision_nm=None, step_nm: float = 10.0,
                   rules=None, progress: bool = False, workers: int = 1) -> pa.Table:
    """Morphology of every spine envelope of a :class:`~smlmspine.envelope.SpineMeshes`.

    Each spine is measured from its base point (from the isolation) with
    :func:`smlmspine.morphology.measure_spine`, its neck diameter is also fitted to its
    localizations (:func:`~smlmspine.morphology.neck_fit_for_spine`), and it is classified
    with the rules. Spines whose mesh is not watertight or cannot be measured get NaN
    features and the reason. The base plane is the isolation's (base point and axis);
    ``volume_um3`` and ``surface_area_um2`` are replaced by the morphology's (the spine
    distal of its base section, no closing cap); impossible values become NaN
    (``quality``, ``quality_reason``, ``trustworthy``;
    :func:`smlmspine.morphology.check_plausibility`).

    Parameters
    ----------
    meshes : SpineMeshes
        The result of :func:`smlmspine.envelope.mesh_spines`: its ``spines`` table
        (base point ``base_*_nm`` and axis ``axis_*`` per spine, nm), ``envelopes`` by
        ``spine_id`` and ``isolation.table`` (the localizations with ``spine_id``, nm).
    label : {"membrane", "volume"}
        What was labelled; the label model of the point-based neck fit.
    precision_nm : float or array-like of float, optional
        Localization precision (1 sigma), nm; its first value is used (the
        ``precision_nm`` of ``meshes.parameters``). Default: fitted by the neck fit, and
        no precision-based plausibility bounds.
    step_nm : float
        Cross-section spacing along the centreline, nm.
    rules : ClassRules, optional
        Thresholds of the rule-based classes; default ``ClassRules()``.
    progress : bool
        Show a progress bar (tqdm).
    workers : int
        Processes for the mesh measurements (``smlmspine.morphology._measure.measure_spines``:
        1 = none, the default; -1 = all cores; at most one per 4 spines). The result does
        not depend on it.

    Returns
    -------
    pyarrow.Table
        ``meshes.spines`` (same rows, same order) extended with the feature columns:
        :data:`smlmspine.morphology.SPINE_MESH_FEATURE_COLUMNS`
        (``data_schemas/spine_mesh_features.json``; lengths and diameters in nm, volumes
        in um^3, areas in um^2 and nm^2 as named). Table metadata: ``source_step``,
        ``step_nm``, ``label``.

    Raises
    ------
    ParameterError
        ``label`` not ``"membrane"`` or ``"volume"``.
    """
    check_label(label)
    rules = rules or ClassRules()
    base_rows = meshes.spines.to_pylist()
    p = coordinates(meshes.isolation.table, dims=3)
    sid = meshes.isolation.table.column("spine_id").to_numpy()
    sigma = None
    if precision_nm is not None:
        sigma = float(np.atleast_1d(precision_nm)[0])
    extra = [k for k in SPINE_MESH_FEATURE_COLUMNS if k not in meshes.spines.column_names]
    rows = []
    # the meshes' measurements first (in worker processes when asked: they are the
    # cost), then the point fits, plausibility and classes in spine order
    todo = [i for i, row in enumerate(base_rows)
            if meshes.envelopes[row["spine_id"]].is_watertight]
    measured = dict(zip(todo, measure_spines(
        [meshes.envelopes[base_rows[i]["spine_id"]].mesh for i in todo],
        base_points_nm=[_base(base_rows[i]) for i in todo],
        base_normals=[_normal(base_rows[i]) for i in todo],
        workers=workers, progress=progress, step_nm=step_nm)))
    for i, row in enumerate(base_rows):
        k = row["spine_id"]
        env = meshes.envelopes[k]
        feats: dict[str, Any] = {name: np.nan for name in extra}
        feats.update(n_tips=-1, spine_class="", neck_fit_diameter_nm=np.nan,
                     neck_fit_diameter_err_nm=np.nan)
        reason = row.get("reason", "")
        feats.update(quality_columns([], measured=False), volume_um3=np.nan, surface_area_um2=np.nan)
        if env.is_watertight:
            # measured on the base plane of the isolation (shaft surface or base-most
            # localizations)
            m = measured[i]
            if isinstance(m, ParameterError):
                reason = f"not measurable: {m}"
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
                      metadata={"source_step": "morphology.spine_features", "step_nm": step_nm,
                                "label": label})


def _base(row) -> list:
    return [row["base_x_nm"], row["base_y_nm"], row["base_z_nm"]]


def _normal(row):
    """The isolation's spine axis as the base-plane normal (None when it has none)."""
    normal = [row.get("axis_x", np.nan), row.get("axis_y", np.nan), row.get("axis_z", np.nan)]
    if not np.all(np.isfinite(normal)) or not np.any(normal):
        return None
    return normal
