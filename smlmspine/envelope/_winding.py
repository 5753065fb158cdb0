"""Consistent face winding: trimesh's ``repair.fix_normals`` without networkx.

:func:`fix_normals` does what ``trimesh.repair.fix_normals(mesh)`` (trimesh 5.2) does:
when the winding is not consistent, a breadth-first traversal of the face-adjacency
graph, component by component, reverses a face whose shared edge with its parent in
the traversal runs the same way; then ``trimesh.repair.fix_inversion``. trimesh runs
the traversal through networkx (``from_edgelist``, ``connected_components``,
``bfs_edges``: ~60 ms per call on a spine's bridged alpha surface, 4,850 face pairs);
:func:`_winding_bfs` visits the faces in the same order (networkx's graph keeps nodes
and neighbours in the order the edge list gives them, and its BFS is first-in first-out)
(from the node networkx starts at, :func:`_starts`) and flips the same faces, in numba. Where two faces of the graph share more than one
edge (not after ``unique_faces``), the choice of edge depended on trimesh's hashing
order: the mesh then goes to trimesh's own ``fix_winding``. A test compares the two on
broken meshes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fix_normals"]


def fix_normals(mesh) -> None:
    """``trimesh.repair.fix_normals(mesh)`` (``multibody=False``), in place."""
    import trimesh

    if not mesh.is_winding_consistent:
        adjacency = np.asarray(mesh.face_adjacency, np.int64).reshape(-1, 2)
        faces = np.array(mesh.faces, np.int64)
        if len(adjacency):
            ptr, nbr, nodes = _graph(adjacency, len(faces))
            flipped = _winding_bfs(faces, ptr, nbr, _starts(ptr, nbr, nodes))
            if flipped < 0:   # faces sharing two edges: trimesh's own traversal
                trimesh.repair.fix_winding(mesh)
            elif flipped > 0:
                mesh.faces = faces
    trimesh.repair.fix_inversion(mesh, multibody=False)


def _graph(adjacency: np.ndarray, n_faces: int):
    """networkx's ``from_edgelist(adjacency)`` as arrays: every node's neighbours in
    the order the edge list first gives them (CSR ``ptr``, ``nbr``), and the nodes in
    the order they first appear (``u`` before ``v`` of each pair)."""
    src = adjacency.reshape(-1)                      # u0, v0, u1, v1, ...
    dst = adjacency[:, ::-1].reshape(-1)             # v0, u0, v1, u1, ...
    # a repeated pair keeps its first position (a dict key set twice)
    key = np.minimum(src, dst) * n_faces + np.maximum(src, dst)
    _, first = np.unique(key, return_index=True)
    # (each pair is two directed entries with the same key: keep both of the first)
    keep = _both_directions(first, len(src))
    s, d = src[keep], dst[keep]
    order = np.argsort(s, kind="stable")
    ptr = np.zeros(n_faces + 1, np.int64)
    np.add.at(ptr, s + 1, 1)
    ptr = np.cumsum(ptr)
    nbr = np.ascontiguousarray(d[order])
    _, at = np.unique(src, return_index=True)
    nodes = src[np.sort(at)]
    return ptr, nbr, np.ascontiguousarray(nodes)


def _starts(ptr, nbr, nodes) -> np.ndarray:
    """The node each component's traversal starts from in trimesh's ``fix_winding``:
    ``next(iter(graph.subgraph(component).nodes()))``. networkx iterates a subgraph's
    nodes in the graph's order (the component's first node) unless the component holds
    less than half the nodes; then in the order of a Python set built as networkx builds
    it (``connected_components`` adds the nodes in breadth-first order, ``subgraph``
    copies that set element by element), which is rebuilt here the same way."""
    disc, offs = _components(ptr, nbr, nodes)
    n_nodes = len(nodes)
    starts = np.empty(len(offs) - 1, np.int64)
    for k in range(len(offs) - 1):
        d = disc[offs[k]:offs[k + 1]]
        if 2 * len(d) < n_nodes:
            c = {int(d[0])}
            for w in d[1:].tolist():
                c.add(w)
            starts[k] = next(iter({n for n in c}))
        else:
            starts[k] = d[0]
    return starts


@njit(cache=True, nogil=True)
def _components(ptr, nbr, nodes):
    """Components in the order of ``nodes``, each's nodes in breadth-first order from its
    first node (networkx's ``_plain_bfs``): ``(nodes, offsets)``."""
    n = ptr.size - 1
    seen = np.zeros(n, np.bool_)
    out = np.empty(nodes.size, np.int64)
    offs = [0]
    tail = 0
    for s in nodes:
        if seen[s]:
            continue
        seen[s] = True
        head = tail
        out[tail] = s
        tail += 1
        while head < tail:
            p = out[head]
            head += 1
            for k in range(ptr[p], ptr[p + 1]):
                c = nbr[k]
                if not seen[c]:
                    seen[c] = True
                    out[tail] = c
                    tail += 1
        offs.append(tail)
    return out, np.array(offs, np.int64)


def _both_directions(first, n):
    """The directed entries of each undirected pair's first occurrence (entries 2i and
    2i + 1 come from pair i)."""
    pair = first // 2
    keep = np.zeros(n, bool)
    keep[2 * pair] = True
    keep[2 * pair + 1] = True
    return keep


@njit(cache=True, nogil=True)
def _winding_bfs(faces, ptr, nbr, starts):
    """Breadth-first traversal of each component from its start; a child face whose
    shared edge with its parent runs the same way is reversed (in ``faces``). Returns
    the number of faces reversed, or -1 when a parent and child share more than one
    edge (nothing is changed then)."""
    n = faces.shape[0]
    # first pass: every pair of the graph shares exactly one edge
    for p in range(n):
        for k in range(ptr[p], ptr[p + 1]):
            c = nbr[k]
            shared = 0
            for i in range(3):
                a, b = faces[p, i], faces[p, (i + 1) % 3]
                for j in range(3):
                    x, y = faces[c, j], faces[c, (j + 1) % 3]
                    if (a == x and b == y) or (a == y and b == x):
                        shared += 1
            if shared != 1:
                return -1
    seen = np.zeros(n, np.bool_)
    queue = np.empty(n, np.int64)
    flipped = 0
    for s in starts:
        if seen[s]:
            continue
        seen[s] = True
        head, tail = 0, 1
        queue[0] = s
        while head < tail:
            p = queue[head]
            head += 1
            for k in range(ptr[p], ptr[p + 1]):
                c = nbr[k]
                if seen[c]:
                    continue
                seen[c] = True
                queue[tail] = c
                tail += 1
                same = False
                for i in range(3):
                    a, b = faces[p, i], faces[p, (i + 1) % 3]
                    for j in range(3):
                        x, y = faces[c, j], faces[c, (j + 1) % 3]
                        if a == x and b == y:
                            same = True
                if same:
                    t = faces[c, 0]
                    faces[c, 0] = faces[c, 2]
                    faces[c, 2] = t
                    flipped += 1
    return flipped
