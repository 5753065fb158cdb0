"""numba kernels of the level-set rebuild (:mod:`smlmspine.envelope._levelset`).

:func:`grid_inside` replaces Open3D's ``RaycastingScene.compute_occupancy`` (three
random rays per grid point, ~0.4 s per spine): the inside/outside sign of every point
of a regular grid, by the parity of the surface crossings along the grid lines, one
pass per axis and the majority of the three. Each triangle is rasterized onto the grid
lines that pierce it (a point-in-triangle test of the line in the triangle's
projection, with a consistent tie rule on shared edges), its crossing toggles the
parity from the next grid point on, and a running XOR along each line gives the
parity at every point: O(triangles + crossings + grid points). On the 45 surfaces
rebuilt for the first half of a simulated 40 um dendrite (~1e6 inside points each) it
agreed with Open3D's vote at every grid point but one, 49 nm from the surface, where two
of Open3D's three random rays were wrong (101 rays, and a brute-force count of the
crossings along each axis, say outside).

:func:`mesh_components` replaces ``trimesh.Trimesh.split`` for the largest body of a
marching-cubes surface (a union-find over the faces' vertices).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["grid_inside", "mesh_components"]


@njit(cache=True, nogil=True)
def _edge_sign(au, aw, bu, bw, qu, qw):
    """Sign of q against the directed edge a->b in the (u, w) plane, ties broken by
    the symbolic perturbation q + (eps, eps**2): never 0 unless a == b."""
    du = bu - au
    dw = bw - aw
    e = du * (qw - aw) - dw * (qu - au)
    if e > 0.0:
        return 1
    if e < 0.0:
        return -1
    # e(q + (eps, eps^2)) = e + du * eps^2 - dw * eps
    if dw != 0.0:
        return 1 if -dw > 0.0 else -1
    if du != 0.0:
        return 1 if du > 0.0 else -1
    return 0


@njit(cache=True, nogil=True)
def _oriented_sign(vs, i, j, cu, cw, qu, qw):
    # the same float operations for edge (i, j) in both faces that share it: evaluated
    # from the lower vertex index, negated for the other direction
    if i < j:
        return _edge_sign(vs[i, cu], vs[i, cw], vs[j, cu], vs[j, cw], qu, qw)
    return -_edge_sign(vs[j, cu], vs[j, cw], vs[i, cu], vs[i, cw], qu, qw)


@njit(cache=True, nogil=True)
def _axis_parity(vs, faces, lo, pitch, n, axis, toggles):
    """Toggle counts of the crossings along grid lines parallel to ``axis``."""
    cu = (axis + 1) % 3
    cw = (axis + 2) % 3
    nu = n[cu]
    nw = n[cw]
    na = n[axis]
    for t in range(faces.shape[0]):
        a = faces[t, 0]
        b = faces[t, 1]
        c = faces[t, 2]
        umin = min(vs[a, cu], vs[b, cu], vs[c, cu])
        umax = max(vs[a, cu], vs[b, cu], vs[c, cu])
        wmin = min(vs[a, cw], vs[b, cw], vs[c, cw])
        wmax = max(vs[a, cw], vs[b, cw], vs[c, cw])
        i0 = max(int(np.floor((umin - lo[cu]) / pitch)) - 1, 0)
        i1 = min(int(np.floor((umax - lo[cu]) / pitch)) + 1, nu - 1)
        j0 = max(int(np.floor((wmin - lo[cw]) / pitch)) - 1, 0)
        j1 = min(int(np.floor((wmax - lo[cw]) / pitch)) + 1, nw - 1)
        for i in range(i0, i1 + 1):
            qu = lo[cu] + pitch * i
            if qu < umin or qu > umax:
                continue
            for j in range(j0, j1 + 1):
                qw = lo[cw] + pitch * j
                if qw < wmin or qw > wmax:
                    continue
                sa = _oriented_sign(vs, b, c, cu, cw, qu, qw)
                sb = _oriented_sign(vs, c, a, cu, cw, qu, qw)
                sc = _oriented_sign(vs, a, b, cu, cw, qu, qw)
                if sa == 0 or not (sa == sb and sb == sc):
                    continue
                # where the line meets the triangle's plane (barycentric weights from
                # the plain edge functions; the tie rule only decides membership)
                wa = (vs[c, cu] - vs[b, cu]) * (qw - vs[b, cw]) - (vs[c, cw] - vs[b, cw]) * (qu - vs[b, cu])
                wb = (vs[a, cu] - vs[c, cu]) * (qw - vs[c, cw]) - (vs[a, cw] - vs[c, cw]) * (qu - vs[c, cu])
                wc = (vs[b, cu] - vs[a, cu]) * (qw - vs[a, cw]) - (vs[b, cw] - vs[a, cw]) * (qu - vs[a, cu])
                s = wa + wb + wc
                if s == 0.0:
                    x = (vs[a, axis] + vs[b, axis] + vs[c, axis]) / 3.0
                else:
                    x = (wa * vs[a, axis] + wb * vs[b, axis] + wc * vs[c, axis]) / s
                # the parity changes from the first grid point beyond x on
                k = int(np.floor((x - lo[axis]) / pitch)) + 1
                if k < 0:
                    k = 0
                if k < na:
                    if axis == 0:
                        toggles[k, i, j] ^= 1
                    elif axis == 1:
                        toggles[j, k, i] ^= 1
                    else:
                        toggles[i, j, k] ^= 1


@njit(cache=True, nogil=True)
def _grid_inside(vs, faces, lo, pitch, n):
    votes = np.zeros((n[0], n[1], n[2]), np.uint8)
    for axis in range(3):
        tog = np.zeros((n[0], n[1], n[2]), np.uint8)
        _axis_parity(vs, faces, lo, pitch, n, axis, tog)
        # running XOR along the axis: the parity at every grid point
        if axis == 0:
            for j in range(n[1]):
                for k in range(n[2]):
                    p = 0
                    for i in range(n[0]):
                        p ^= tog[i, j, k]
                        votes[i, j, k] += p
        elif axis == 1:
            for i in range(n[0]):
                for k in range(n[2]):
                    p = 0
                    for j in range(n[1]):
                        p ^= tog[i, j, k]
                        votes[i, j, k] += p
        else:
            for i in range(n[0]):
                for j in range(n[1]):
                    p = 0
                    for k in range(n[2]):
                        p ^= tog[i, j, k]
                        votes[i, j, k] += p
    out = np.empty((n[0], n[1], n[2]), np.bool_)
    for i in range(n[0]):
        for j in range(n[1]):
            for k in range(n[2]):
                out[i, j, k] = votes[i, j, k] >= 2
    return out


@njit(cache=True, nogil=True)
def _find(parent, x):
    r = x
    while parent[r] != r:
        r = parent[r]
    while parent[x] != r:
        nxt = parent[x]
        parent[x] = r
        x = nxt
    return r


@njit(cache=True, nogil=True)
def _components(faces, n_vertices):
    parent = np.arange(n_vertices)
    for t in range(faces.shape[0]):
        ra = _find(parent, faces[t, 0])
        for k in (1, 2):
            rb = _find(parent, faces[t, k])
            if ra != rb:
                if ra < rb:
                    parent[rb] = ra
                else:
                    parent[ra] = rb
                    ra = rb
    label = np.empty(n_vertices, np.int64)
    for v in range(n_vertices):
        label[v] = _find(parent, v)
    return label


def grid_inside(vertices, faces, *, origin, pitch_nm: float, shape):
    """Which points of a regular grid lie inside a closed triangle mesh.

    Parameters
    ----------
    vertices : (V, 3) ndarray of float
        Mesh vertices (nm), in the grid's frame.
    faces : (F, 3) ndarray of int
        Triangles of a closed mesh (self-intersections allowed: the parity of the
        crossings is the inside of the mod-2 winding number).
    origin : (3,) array-like of float
        Coordinates of grid point (0, 0, 0), nm.
    pitch_nm : float
        Grid spacing (nm); point (i, j, k) is ``origin + pitch_nm * (i, j, k)``.
    shape : (3,) tuple of int

    Returns
    -------
    (I, J, K) ndarray of bool
        Inside by the majority of the crossing parities along the three grid axes
        (exact arithmetic gives the same parity along every axis for a closed mesh;
        the vote settles rounding at a grid line through a mesh vertex).

    Examples
    --------
    >>> import trimesh
    >>> s = trimesh.creation.icosphere(3, radius=10.0)
    >>> ins = grid_inside(s.vertices, s.faces, origin=(-12.0, -12.0, -12.0), pitch_nm=1.0,
    ...                   shape=(25, 25, 25))
    >>> bool(ins[12, 12, 12]), bool(ins[0, 0, 0]), int(ins.sum())   # 4/3 pi 10^3 = 4189
    (True, False, 4139)
    """
    vs = np.ascontiguousarray(vertices, np.float64)
    fs = np.ascontiguousarray(faces, np.int64)
    n = np.asarray(shape, np.int64)
    return _grid_inside(vs, fs, np.asarray(origin, np.float64), float(pitch_nm), n)


def mesh_components(faces, n_vertices: int):
    """Connected component of every vertex (the lowest vertex index in it).

    Parameters
    ----------
    faces : (F, 3) ndarray of int
    n_vertices : int

    Returns
    -------
    (n_vertices,) ndarray of int64

    Examples
    --------
    >>> mesh_components(np.array([[0, 1, 2], [3, 4, 5], [2, 1, 6]]), 7).tolist()
    [0, 0, 0, 3, 3, 3, 0]
    """
    return _components(np.ascontiguousarray(faces, np.int64), int(n_vertices))
