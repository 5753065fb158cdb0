"""The spine stages by region: tiles along the dendrite with an overlap margin.

:func:`mesh_spine_tiles` cuts a (drift-corrected, merged) localization table into tiles
along the principal axis of its x/y positions: ``n_tiles`` consecutive *core* ranges
holding equal numbers of localizations, each extended by ``margin_nm`` on both sides.
Every tile goes through the spine stages on its own (isolation, envelopes without the
dendrite mesh, morphology: :func:`smlmspine.envelope.mesh_spines`,
:func:`smlmspine.morphology.spine_features`), so only one tile's localizations are held
by those stages at a time. A spine is kept only by the tile whose core holds its base
point (``base_x_nm``, ``base_y_nm`` projected on the axis); since the cores do not
overlap, no spine is counted twice, and since a tile reaches ``margin_nm`` beyond its
core, a spine whose base lies in the core is whole in that tile as long as it is shorter
than the margin (:data:`DEFAULT_MARGIN_NM`). Spine ids are renumbered 1, 2, ... in
the order of the tiles (and of the spines within a tile).

The localizations get the ``spine_id`` of the kept spine they were isolated into (by
the tile that kept it), -1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ._columns import require_z

__all__ = ["mesh_spine_tiles", "TiledSpines", "DEFAULT_MARGIN_NM"]

#: Overlap margin of a tile beyond its core, nm: longer than the longest spine (the
#: simulator's spines reach ~2.5 um from the shaft surface; real dendritic spines rarely
#: exceed 3 um).
DEFAULT_MARGIN_NM = 3000.0


@dataclass(frozen=True, eq=False)
class TiledSpines:
    """Result of :func:`mesh_spine_tiles`.

    Attributes
    ----------
    spines : pyarrow.Table
        One row per kept spine (the columns of :func:`smlmspine.morphology.spine_features`
        plus ``tile``), ``spine_id`` unique across tiles.
    envelopes : dict of int to Envelope
        By the new ``spine_id``.
    localizations : pyarrow.Table
        The input table with ``spine_id`` (-1 outside kept spines).
    tiles : list of dict
        Per tile: ``core_nm`` (range along the axis), ``n_localizations``,
        ``n_spines_found``, ``n_spines_kept``.
    axis : (2,) ndarray
        Unit x/y direction of the tiling; positions along it are ``(xy - origin) @ axis``.
    origin : (2,) ndarray
    parameters : dict
        The spine stages' parameters of the first tile, plus ``margin_nm``, ``n_tiles``
        and ``profile`` (the envelope-step profiles of all tiles, summed).
    """

    spines: pa.Table
    envelopes: dict
    localizations: pa.Table
    tiles: list
    axis: np.ndarray
    origin: np.ndarray
    parameters: dict = field(default_factory=dict)


def _axis(xy: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    sub = xy if len(xy) <= 200_000 else xy[rng.choice(len(xy), 200_000, replace=False)]
    origin = sub.mean(axis=0)
    _, _, vt = np.linalg.svd(sub - origin, full_matrices=False)
    axis = vt[0] / np.linalg.norm(vt[0])
    if axis[np.argmax(np.abs(axis))] < 0:   # a fixed orientation
        axis = -axis
    return axis, origin


def mesh_spine_tiles(table: pa.Table, *, n_tiles: int, margin_nm: float = DEFAULT_MARGIN_NM,
                     label: str = "membrane", method: str = "auto", alpha_nm="auto",
                     neck_surface: bool = True, step_nm: float = 10.0, workers: int = 1,
                     progress: bool = False) -> TiledSpines:
    """Isolate, mesh and measure spines tile by tile along the dendrite.

    Parameters
    ----------
    table : pyarrow.Table
        3D localizations (nm) of one dendrite fragment, drift-corrected and merged.
    n_tiles : int
        Number of tiles (cores of equal localization counts along the principal axis).
    margin_nm : float
        Overlap of a tile beyond its core on each side, nm; must exceed the longest
        spine (default :data:`DEFAULT_MARGIN_NM`).
    label, method, alpha_nm, neck_surface, workers, progress
        As :func:`smlmspine.envelope.mesh_spines`.
    step_nm : float
        Cross-section spacing of the morphology, nm.

    Returns
    -------
    TiledSpines

    Raises
    ------
    ParameterError
        ``n_tiles`` < 1, a negative margin, a table without ``z``.
    """
    from . import envelope
    from ._validate import integer, non_negative
    from .morphology import spine_features

    n_tiles = integer(n_tiles, "n_tiles", minimum=1)
    margin = non_negative(margin_nm, "margin_nm", unit="nm")
    require_z(table.column_names)
    xy = np.column_stack([table.column("x").to_numpy(), table.column("y").to_numpy()])
    axis, origin = _axis(xy, np.random.default_rng(0))
    s = (xy - origin) @ axis
    del xy
    cuts = np.quantile(s, np.arange(1, n_tiles) / n_tiles) if n_tiles > 1 else np.zeros(0)
    lo = np.concatenate([[-np.inf], cuts])
    hi = np.concatenate([cuts, [np.inf]])
    spine_id = np.full(table.num_rows, -1, np.int64)
    rows_out, envelopes, tiles, parameters, profiles = [], {}, [], {}, []
    next_id = 1
    for k in range(n_tiles):
        sel = np.flatnonzero((s >= lo[k] - margin) & (s < hi[k] + margin))
        sub = table.take(pa.array(sel))
        meshes = envelope.mesh_spines(sub, label=label, method=method, alpha_nm=alpha_nm,
                                      neck_surface=neck_surface, workers=workers,
                                      dendrite=False, progress=progress)
        if not parameters:
            parameters = dict(meshes.parameters)
        profiles.append(meshes.parameters.get("profile"))
        feats = spine_features(meshes, label=label,
                               precision_nm=meshes.parameters.get("precision_nm"),
                               step_nm=step_nm, progress=progress, workers=workers)
        ids = np.asarray(feats.column("spine_id").to_numpy(), np.int64)
        base = np.column_stack([feats.column("base_x_nm").to_numpy(zero_copy_only=False),
                                feats.column("base_y_nm").to_numpy(zero_copy_only=False)])
        sb = (base - origin) @ axis if len(ids) else np.zeros(0)
        keep = (sb >= lo[k]) & (sb < hi[k])
        new_ids = {int(old): next_id + j for j, old in enumerate(ids[keep])}
        next_id += len(new_ids)
        kept = feats.filter(pa.array(keep))
        kept = kept.set_column(kept.schema.get_field_index("spine_id"), "spine_id",
                               pa.array([new_ids[int(i)] for i in
                                         kept.column("spine_id").to_pylist()], pa.int64()))
        kept = kept.append_column("tile", pa.array(np.full(kept.num_rows, k, np.int64)))
        rows_out.append(kept)
        for old, new in new_ids.items():
            envelopes[new] = meshes.envelopes[old]
        local = np.asarray(meshes.isolation.table.column("spine_id").to_numpy(), np.int64)
        values, inverse = np.unique(local, return_inverse=True)
        gid = np.array([new_ids.get(int(v), -1) for v in values], np.int64)[inverse]
        take = gid >= 0
        free = spine_id[sel[take]] < 0   # a localization claimed by one kept spine only
        spine_id[sel[take][free]] = gid[take][free]
        tiles.append({"core_nm": [float(lo[k]), float(hi[k])], "n_localizations": int(len(sel)),
                      "n_spines_found": int(len(ids)), "n_spines_kept": int(keep.sum())})
    spines = pa.concat_tables(rows_out) if rows_out else pa.table({})
    from .schema import with_columns

    locs = with_columns(table, {"spine_id": spine_id})
    from ._profile import merge_profiles

    parameters.update({"margin_nm": margin, "n_tiles": n_tiles,
                       "profile": merge_profiles(profiles)})   # every tile's envelope steps
    return TiledSpines(spines, envelopes, locs, tiles, axis, origin, parameters)
