"""Fluorophore placement: on a surface (membrane labels) or inside a solid (volume labels)."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["sample_surface", "sample_volume", "face_areas"]


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangle areas, ``(F,)`` in the squared unit of ``vertices``."""
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, *, density_per_um2: float,
                   rng: np.random.Generator, face_mask: np.ndarray | None = None):
    """Poisson points on the triangles (uniform by area), ``density_per_um2`` per um^2.

    Returns
    -------
    points : (N, 3) ndarray
        nm.
    face_index : (N,) ndarray of int
    area_um2 : float
        Area of the (masked) surface.

    Examples
    --------
    >>> import trimesh
    >>> box = trimesh.creation.box(extents=[1000.0, 1000.0, 1000.0])  # 6 um^2
    >>> pts, fi, area = sample_surface(box.vertices, box.faces, density_per_um2=1000.0,
    ...                                rng=np.random.default_rng(0))
    >>> round(area, 6), 5700 < len(pts) < 6300
    (6.0, True)
    """
    areas = face_areas(vertices, faces)
    if face_mask is not None:
        areas = np.where(face_mask, areas, 0.0)
    total_um2 = float(areas.sum()) * 1e-6
    n = int(rng.poisson(density_per_um2 * total_um2)) if total_um2 > 0 else 0
    if n == 0:
        return np.empty((0, 3)), np.empty(0, dtype=np.int64), total_um2
    cum = np.cumsum(areas)
    fi = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    fi = np.minimum(fi, len(faces) - 1)
    r1 = np.sqrt(rng.random(n))
    r2 = rng.random(n)
    tri = vertices[faces[fi]]
    pts = ((1 - r1)[:, None] * tri[:, 0] + (r1 * (1 - r2))[:, None] * tri[:, 1]
           + (r1 * r2)[:, None] * tri[:, 2])
    return pts, fi.astype(np.int64), total_um2


def sample_volume(inside: Callable[[np.ndarray], np.ndarray], lo, hi, *, density_per_um3: float,
                  rng: np.random.Generator, chunk: int = 2_000_000) -> np.ndarray:
    """Poisson points inside a solid, ``density_per_um3`` per um^3 (rejection in the box).

    ``inside(points) -> bool mask`` says which points of an ``(N, 3)`` array (nm) are
    in the solid; ``lo``/``hi`` bound it (nm).
    """
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    box_um3 = float(np.prod(hi - lo)) * 1e-9
    n = int(rng.poisson(density_per_um3 * box_um3))
    out = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        p = lo + rng.random((m, 3)) * (hi - lo)
        out.append(p[inside(p)])
    return np.concatenate(out) if out else np.empty((0, 3))
