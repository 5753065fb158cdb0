"""Spine envelopes: isolate spines in a dendrite point cloud, reconstruct closed meshes.

- :func:`alpha_shape`: 3D alpha shape from one Delaunay tetrahedralization (cavities
  filled, manifold repair, ``alpha_nm="auto"``), as a checked :class:`Envelope`.
- :func:`reconstruct`: envelope of one object whose surface lies on the data surface:
  the alpha surface moved onto the membrane (``label="membrane"``) or onto the boundary
  of the blurred solid (``label="volume"``), or Open3D Poisson.
- :func:`isolate_spines`: shaft centreline and radius, protrusions, one ``spine_id`` per
  spine with its base point and axis (or given labels).
- :func:`mesh_spines` / :func:`write_meshes`: everything for ``smlmspine mesh``.
- :func:`check_mesh` / :func:`repair_mesh`: validity (closed, manifold, one body, free
  of self-intersections: :func:`self_intersections`, exact) and the repair chain;
  :func:`validate_envelope` adds Open3D's self-intersection test.

Every mesh is in nm. Heavy dependencies (open3d, trimesh, scipy) load on first use.

Examples
--------
>>> import numpy as np
>>> from smlmspine import envelope
>>> rng = np.random.default_rng(0)
>>> p = rng.normal(size=(3000, 3))
>>> p = 150.0 * p / np.linalg.norm(p, axis=1, keepdims=True)      # sphere, r = 150 nm
>>> env = envelope.alpha_shape(p + rng.normal(0, 5, p.shape), alpha_nm=60.0)
>>> env.is_watertight, env.reason
(True, '')
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "alpha_shape": "._alpha:alpha_shape",
    "AlphaComplex": "._alpha:AlphaComplex",
    "Envelope": "._result:Envelope",
    "reconstruct": "._reconstruct:reconstruct",
    "isolate_spines": "._isolate:isolate_spines",
    "IsolatedSpines": "._isolate:IsolatedSpines",
    "Centreline": "._isolate:Centreline",
    "ISOLATED_SPINE_COLUMNS": "._isolate:ISOLATED_SPINE_COLUMNS",
    "mesh_spines": "._export:mesh_spines",
    "SpineMeshes": "._export:SpineMeshes",
    "write_meshes": "._export:write_meshes",
    "export_mesh": "._export:export_mesh",
    "spine_mesh_table": "._export:spine_mesh_table",
    "SPINE_MESH_COLUMNS": ".._columns:SPINE_MESH_COLUMNS",
    "MESH_FORMATS": "._export:MESH_FORMATS",
    "check_mesh": "._repair:check_mesh",
    "repair_mesh": "._repair:repair_mesh",
    "validate_envelope": "._repair:validate_envelope",
    "self_intersections": "._selfintersect:self_intersections",
    "marching_tetrahedra": "._repair:marching_tetrahedra",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
