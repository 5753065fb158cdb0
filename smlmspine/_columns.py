"""Names shared by several stages, defined once here so that no stage imports another for them.

- :data:`SPINE_CLASSES`: the spine classes, in the vocabulary of the ``spine_class`` column
  (simulated truth, rule-based and trained classification).
- :data:`SPINE_MESH_COLUMNS`: the per-spine table of ``smlmspine mesh``
  (``data_schemas/spine_meshes.json``), written by the envelope stage and extended with
  features by the morphology stage.

Examples
--------
>>> SPINE_CLASSES[:2], SPINE_MESH_COLUMNS["volume_um3"].unit
(('thin', 'mushroom'), 'um^3')
"""

from __future__ import annotations

import pyarrow as pa

from .schema import ColumnSpec, column_specs

__all__ = ["SPINE_CLASSES", "SPINE_MESH_COLUMNS", "require_z"]

#: Spine classes (Peters & Kaiserman-Abramof 1970, with branched spines).
SPINE_CLASSES = ("thin", "mushroom", "stubby", "filopodium", "branched")

#: Columns of ``spines.parquet`` as written by ``smlmspine mesh``. The morphology stage
#: extends this registry with its features (pass ``registry=`` to
#: :func:`smlmspine.envelope.spine_mesh_table`).
SPINE_MESH_COLUMNS: dict[str, ColumnSpec] = column_specs(
    ("spine_id", pa.int64(), "1", "spine label, as in the localization table's spine_id"),
    ("n_localizations", pa.int64(), "1", "localizations assigned to the spine"),
    ("base_x_nm", pa.float64(), "nm", "base point (the spine axis meets the shaft surface), x"),
    ("base_y_nm", pa.float64(), "nm", "base point, y"),
    ("base_z_nm", pa.float64(), "nm", "base point, z"),
    ("axis_x", pa.float64(), "1", "unit spine axis (base to tip), x"),
    ("axis_y", pa.float64(), "1", "unit spine axis, y"),
    ("axis_z", pa.float64(), "1", "unit spine axis, z"),
    ("detection_confidence", pa.float64(), "1", "how surely this is a spine, 0-1 (from the "
                                                "isolation; docs/envelope.md)"),
    ("is_watertight", pa.bool_(), "1", "the mesh is closed, two-manifold, consistently "
                                      "oriented, one body of positive volume and free of "
                                      "self-intersections (exact test and Open3D's)"),
    ("reason", pa.string(), "1", "why is_watertight is false (empty when true)"),
    ("method", pa.string(), "1", "reconstruction method (alpha, shell, poisson)"),
    ("alpha_nm", pa.float64(), "nm", "alpha radius of the underlying alpha shape"),
    ("volume_um3", pa.float64(), "um^3", "enclosed volume of the mesh (NaN when not watertight)"),
    ("surface_area_um2", pa.float64(), "um^2", "surface area of the mesh, including the base cap"),
    ("mesh_file", pa.string(), "1", "file name of the spine mesh in the output folder "
                                   "(empty when not written)"),
)


def require_z(column_names) -> None:
    """Refuse 2D localizations before the spine stages (which need ``z``).

    >>> require_z(["x", "y"])
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: spine envelopes need 3D localizations; the input has no z column
    """
    if "z" not in column_names:
        from .errors import ParameterError

        raise ParameterError("spine envelopes need 3D localizations; the input has no z column")
