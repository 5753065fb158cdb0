"""Open3D ray-casting scene of a triangle mesh, shared by the simulator (signed distance,
inside tests) and the envelope's surface fit (inner depth, enclosed volume)."""

from __future__ import annotations

import numpy as np

__all__ = ["ray_scene"]


def ray_scene(vertices, faces):
    """An ``open3d.t.geometry.RaycastingScene`` holding one triangle mesh (float32).

    Parameters
    ----------
    vertices : (V, 3) array-like of float
        Vertex coordinates (nm), stored as float32.
    faces : (F, 3) array-like of int
        Vertex indices of each triangle.

    Returns
    -------
    open3d.t.geometry.RaycastingScene
        Ready for ``cast_rays``, ``compute_signed_distance``, ``compute_occupancy``.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    >>> f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    >>> occ = ray_scene(v, f).compute_occupancy(np.array([[0.1, 0.1, 0.1], [1, 1, 1]], np.float32))
    >>> occ.numpy().tolist()
    [1.0, 0.0]
    """
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(faces, np.uint32)))
    return scene
