"""Column registries of the ground-truth tables the simulator writes.

Each has a document ``data_schemas/<table>.json`` and an entry in
:data:`smlmspine.schema.TABLE_REGISTRIES`.
"""

from __future__ import annotations

import pyarrow as pa

from ..schema import column_specs

__all__ = ["TRUTH_LOCALIZATIONS", "TRUTH_EMITTERS", "TRUTH_SPINES", "TRUTH_DRIFT",
           "TRUTH_MINFLUX", "TRUTH_MINFLUX_DRIFT"]

f64, i64, b, s = pa.float64(), pa.int64(), pa.bool_(), pa.string()

#: Per localization, row-aligned with the simulated localization table.
TRUTH_LOCALIZATIONS = column_specs(
    ("emitter_id", i64, "1", "emitter (fluorophore or bead) that gave the localization; -1 for background"),
    ("x_true", f64, "nm", "true x of the emitter (before noise and drift); NaN for background"),
    ("y_true", f64, "nm", "true y of the emitter; NaN for background"),
    ("z_true", f64, "nm", "true z of the emitter; NaN for background"),
    ("spine_id", i64, "1", "spine holding the emitter; -1 for shaft, background and beads"),
    ("is_background", b, "1", "false localization (no emitter)"),
    ("is_fiducial", b, "1", "localization of a fiducial bead"),
)

#: Per emitter (every placed fluorophore and bead).
TRUTH_EMITTERS = column_specs(
    ("emitter_id", i64, "1", "emitter id (as in the per-localization truth)"),
    ("x_nm", f64, "nm", "true x"),
    ("y_nm", f64, "nm", "true y"),
    ("z_nm", f64, "nm", "true z"),
    ("spine_id", i64, "1", "spine holding the emitter; -1 for shaft and beads"),
    ("is_fiducial", b, "1", "fiducial bead"),
    ("n_localizations", i64, "1", "localizations produced (0: never detected, labeling efficiency)"),
)

#: Per spine: class, design parameters, placement and measurements on the true mesh.
TRUTH_SPINES = column_specs(
    ("spine_id", i64, "1", "spine id"),
    ("spine_class", s, "1", "thin, mushroom, stubby, filopodium or branched"),
    ("neck_min_diameter_nm", f64, "nm", "smallest equivalent cross-section diameter between base and head (measured)"),
    ("neck_length_nm", f64, "nm", "base to head start along the axis (measured)"),
    ("head_diameter_nm", f64, "nm", "largest equivalent cross-section diameter in the distal half (measured)"),
    ("head_volume_um3", f64, "um^3", "volume beyond the head start (measured)"),
    ("volume_um3", f64, "um^3", "volume of the spine beyond its base plane (measured)"),
    ("length_nm", f64, "nm", "base to tip along the axis (measured)"),
    ("base_x_nm", f64, "nm", "base point (axis meets the shaft surface), x"),
    ("base_y_nm", f64, "nm", "base point, y"),
    ("base_z_nm", f64, "nm", "base point, z"),
    ("axis_x", f64, "1", "unit spine axis (base to tip), x"),
    ("axis_y", f64, "1", "unit spine axis, y"),
    ("axis_z", f64, "1", "unit spine axis, z"),
    ("position_nm", f64, "nm", "arc length of the base along the shaft centreline"),
    ("design_neck_diameter_nm", f64, "nm", "neck capsule diameter used to build the shape"),
    ("design_neck_length_nm", f64, "nm", "neck capsule length used to build the shape"),
    ("design_head_diameter_nm", f64, "nm", "head ellipsoid diameter across the axis (0: no head)"),
    ("design_head_length_nm", f64, "nm", "head ellipsoid extent along the axis (0: no head)"),
    ("n_emitters", i64, "1", "fluorophores placed in the spine"),
)

#: Drift added to the true positions, per camera frame.
TRUTH_DRIFT = column_specs(
    ("frame", i64, "frame", "camera frame"),
    ("dx_nm", f64, "nm", "x drift added at this frame"),
    ("dy_nm", f64, "nm", "y drift added at this frame"),
    ("dz_nm", f64, "nm", "z drift added at this frame"),
)

#: Per MINFLUX localization, row-aligned with the simulated table.
TRUTH_MINFLUX = column_specs(
    ("emitter_id", i64, "1", "emitter that gave the localization"),
    ("x_true", f64, "nm", "true x of the emitter (before noise and drift)"),
    ("y_true", f64, "nm", "true y"),
    ("z_true", f64, "nm", "true z (0 in 2D)"),
    ("dx_nm", f64, "nm", "x drift added to this localization"),
    ("dy_nm", f64, "nm", "y drift added"),
    ("dz_nm", f64, "nm", "z drift added"),
)

#: MINFLUX drift sampled on a regular time grid.
TRUTH_MINFLUX_DRIFT = column_specs(
    ("time_s", f64, "s", "time"),
    ("dx_nm", f64, "nm", "x drift added at this time"),
    ("dy_nm", f64, "nm", "y drift added at this time"),
    ("dz_nm", f64, "nm", "z drift added at this time"),
)
