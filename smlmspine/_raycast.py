"""Open3D ray-casting scene of a triangle mesh, shared by the simulator (signed distance,
inside tests) and the envelope's surface fit (inner depth, enclosed volume)."""

from __future__ import annotations

import numpy as np

__all__ = ["ray_scene"]


def ray_scene(vertices, faces):
    """An ``open3d.t.geometry.RaycastingScene`` holding one triangle mesh (float32)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(faces, np.uint32)))
    return scene
