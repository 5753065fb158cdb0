"""Analytic meshes shared by the morphology tests."""

import numpy as np
import trimesh


def revolved(s, r, segments: int = 32) -> trimesh.Trimesh:
    """Closed solid of revolution about +z: radius r[i] at height s[i] (nm), ``segments``
    vertices per ring, flat end caps fanned from the axis."""
    n = int(segments)
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    v = np.concatenate([np.c_[ri * np.cos(a), ri * np.sin(a), np.full(n, si)]
                        for si, ri in zip(s, r)])
    faces = []
    for i in range(len(s) - 1):
        for j in range(n):
            a0, a1 = i * n + j, i * n + (j + 1) % n
            faces += [[a0, a1, a1 + n], [a0, a1 + n, a0 + n]]
    v = np.r_[v, [[0, 0, s[0]]], [[0, 0, s[-1]]]]
    c0, c1, top = len(v) - 2, len(v) - 1, (len(s) - 1) * n
    for j in range(n):
        faces += [[c0, (j + 1) % n, j], [c1, top + j, top + (j + 1) % n]]
    m = trimesh.Trimesh(v, np.array(faces), process=False)
    assert m.is_watertight and m.volume > 0
    return m
