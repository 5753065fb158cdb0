"""Marching tetrahedra core shared by the simulator's implicit-surface mesher and the
envelope's voxel repair: from tetrahedra with inside/outside corners to a closed,
outward-oriented triangle mesh.

The Kuhn split of a cube into 6 tetrahedra along its 0-7 diagonal has no ambiguous
cases and is translation invariant (neighbouring cubes agree on shared faces), so the
surface is a consistently oriented 2-manifold wherever it stays off the grid border.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["TETS", "CORNERS", "tetra_surface"]

#: Corner index c = dx + 2*dy + 4*dz of the unit cube's 8 corners, as (8, 3) offsets.
CORNERS = np.array([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])
#: Kuhn split of the unit cube into 6 tetrahedra (corner indices).
TETS = np.array([[0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7],
                 [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7]])


def tetra_surface(tv: np.ndarray, tin: np.ndarray, values: np.ndarray,
                  xyz: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface (value 0) through tetrahedra.

    Parameters
    ----------
    tv : (T, 4) ndarray of int
        Point indices of each tetrahedron's corners.
    tin : (T, 4) ndarray of bool
        Whether each corner is inside (value < 0).
    values : (P,) ndarray of float
        Value of every point (never exactly 0), negative inside.
    xyz : callable
        Point indices -> ``(n, 3)`` coordinates (nm).

    Returns
    -------
    vertices : (V, 3) ndarray of float
        One vertex per crossed edge, linearly interpolated.
    faces : (F, 3) ndarray of int64
        Normals point from inside to outside.

    Examples
    --------
    >>> g = np.indices((2, 2, 2)).reshape(3, -1).T.astype(float)   # one cube, 8 points
    >>> vals = np.where(np.arange(8) == 0, -1.0, 1.0)                # corner 0 inside
    >>> tv = TETS
    >>> v, f = tetra_surface(tv, vals[tv] < 0, vals, lambda i: g[i])
    >>> len(f) > 0 and bool(np.all(v.min(0) >= 0))
    True
    """
    case = (tin * np.array([1, 2, 4, 8])).sum(1)
    ea_list, eb_list = [], []
    for c in range(1, 15):
        sel = case == c
        if not sel.any():
            continue
        t = tv[sel]
        ins = [i for i in range(4) if (c >> i) & 1]
        outs = [i for i in range(4) if not (c >> i) & 1]
        if len(ins) == 1 or len(outs) == 1:
            lone, others = (ins[0], outs) if len(ins) == 1 else (outs[0], ins)
            tris = [[(lone, o) for o in others]]
        else:
            (i, j), (k, l) = ins, outs
            tris = [[(i, k), (i, l), (j, l)], [(i, k), (j, l), (j, k)]]
        for tri in tris:
            ea_list.append(np.stack([t[:, p[0]] for p in tri], 1))
            eb_list.append(np.stack([t[:, p[1]] for p in tri], 1))
    if not ea_list:
        return np.empty((0, 3)), np.empty((0, 3), np.int64)
    ea, eb = np.concatenate(ea_list), np.concatenate(eb_list)
    # Every crossed edge as (inside point, outside point), numbered once.
    a_in = values[ea] < 0
    p_in, p_out = np.where(a_in, ea, eb), np.where(a_in, eb, ea)
    n = np.int64(len(values))
    key = p_in.astype(np.int64) * n + p_out
    ukey, inv = np.unique(key.ravel(), return_inverse=True)
    faces = inv.reshape(-1, 3).astype(np.int64)
    ki, ko = ukey // n, ukey % n
    fi, fo = values[ki], values[ko]
    s = np.clip(fi / (fi - fo), 1e-3, 1.0 - 1e-3)
    pi, po = xyz(ki), xyz(ko)
    verts = pi + s[:, None] * (po - pi)
    # Orient outward: the normal points from the inside to the outside point.
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    nrm = np.cross(v1 - v0, v2 - v0)
    k0 = key[:, 0]
    d = xyz(k0 % n) - xyz(k0 // n)
    flip = np.einsum("ij,ij->i", nrm, d) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces
