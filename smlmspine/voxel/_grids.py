"""Each spine in a canonical frame as a fixed-size voxel grid and a surface point cloud.

The input of 3D-CNN and point-network spine classifiers. The canonical frame puts the
spine's base point at the origin and its axis (base to tip) along +z; its x axis is the
principal direction of the spine's surface across the axis (sign: positive third
moment), so the roll about the axis is fixed by the shape. A grid of ``size^3`` voxels
of pitch ``h`` (z, y, x array order) has voxel ``(k, j, i)`` centred at canonical
``x = (i - (size - 1) / 2) h``, ``y = (j - (size - 1) / 2) h``,
``z = (k - m + 1/2) h`` with ``m = max(1, size // 16)`` layers below the base plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ..schema import ColumnSpec, column_specs, spec_table

__all__ = ["spine_grids", "SpineGrids", "write_spine_grids", "read_spine_grids",
           "canonical_frame", "SPINE_GRID_COLUMNS", "GRID_CHANNELS"]

#: Channels a spine grid can hold.
GRID_CHANNELS = ("mask", "sdf", "density")

#: Columns of ``spine_grids.parquet`` (``data_schemas/spine_grids.json``).
SPINE_GRID_COLUMNS: dict[str, ColumnSpec] = column_specs(
    ("spine_id", pa.int64(), "1", "spine label (as in the localization table's spine_id)"),
    ("row", pa.int64(), "1", "index of the spine along the first axis of the grid, point and "
                             "affine arrays"),
    ("pitch_nm", pa.float64(), "nm", "voxel size of the spine's grid"),
    ("size", pa.int64(), "1", "voxels per axis of the grid"),
    ("base_layer", pa.int64(), "1", "voxel layers below the base plane (z = 0 is the lower "
                                    "face of layer base_layer)"),
    ("base_x_nm", pa.float64(), "nm", "base point (canonical origin), x"),
    ("base_y_nm", pa.float64(), "nm", "base point, y"),
    ("base_z_nm", pa.float64(), "nm", "base point, z"),
    ("axis_x", pa.float64(), "1", "unit spine axis (canonical +z), x"),
    ("axis_y", pa.float64(), "1", "unit spine axis, y"),
    ("axis_z", pa.float64(), "1", "unit spine axis, z"),
    ("roll_x", pa.float64(), "1", "unit canonical +x axis in data coordinates, x"),
    ("roll_y", pa.float64(), "1", "unit canonical +x axis, y"),
    ("roll_z", pa.float64(), "1", "unit canonical +x axis, z"),
    ("frame_source", pa.string(), "1", "where base and axis come from: table (spines table), "
                                       "cap (the mesh's flat base cap), pca (principal axis; "
                                       "a guess)"),
    ("cropped", pa.bool_(), "1", "part of the mesh lies outside the grid (fixed pitch)"),
    ("outside_fraction", pa.float64(), "1", "fraction of the surface points outside the grid"),
    ("mesh_volume_nm3", pa.float64(), "nm^3", "enclosed volume of the mesh (NaN when not "
                                              "watertight)"),
    ("mask_volume_nm3", pa.float64(), "nm^3", "mask voxels x pitch^3"),
    ("n_localizations", pa.int64(), "1", "localizations in the grid (0 without a table)"),
)


@dataclass(frozen=True, eq=False)
class SpineGrids:
    """Result of :func:`spine_grids`.

    Attributes
    ----------
    spine_ids : (N,) ndarray of int64
        Spine of each row.
    channels : tuple of str
        Channel names, in the order of the second grid axis.
    grids : (N, C, size, size, size) ndarray of float32
        Per spine and channel, axes ``z, y, x`` of the canonical frame: ``mask`` (1 inside
        at the voxel centre, exact test of :func:`mesh_to_labels`), ``sdf`` (signed
        distance to the surface in nm, negative inside), ``density`` (localizations per
        voxel).
    points : (N, P, 3) ndarray of float32
        Surface points in canonical ``x, y, z`` (nm), area-uniform.
    normals : (N, P, 3) ndarray of float32
        Outward unit normals at ``points`` (canonical frame).
    affines : (N, 4, 4) ndarray of float64
        Data (nm) to canonical (nm) homogeneous transforms: ``p' = A @ [x, y, z, 1]``.
    index : pyarrow.Table
        One row per spine (:data:`SPINE_GRID_COLUMNS`).
    parameters : dict
        The call's parameters.
    """

    spine_ids: np.ndarray
    channels: tuple
    grids: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    affines: np.ndarray
    index: pa.Table
    parameters: dict = field(default_factory=dict)

    def to_table(self) -> pa.Table:
        """The index table (one row per spine).

        Returns
        -------
        pyarrow.Table
            :data:`SPINE_GRID_COLUMNS`.
        """
        return self.index

    def grid_centres(self, row: int) -> np.ndarray:
        """Canonical coordinates of one spine's voxel centres.

        Parameters
        ----------
        row : int
            Row of the spine.

        Returns
        -------
        (size, size, size, 3) ndarray of float64
            ``x, y, z`` in nm of voxel ``(k, j, i)``.
        """
        h = float(self.index.column("pitch_nm")[row].as_py())
        size = int(self.index.column("size")[row].as_py())
        m = int(self.index.column("base_layer")[row].as_py())
        return _centres(size, h, m)


def _centres(size, h, m):
    xy = (np.arange(size) - (size - 1) / 2) * h
    z = (np.arange(size) - m + 0.5) * h
    zz, yy, xx = np.meshgrid(z, xy, xy, indexing="ij")
    return np.stack([xx, yy, zz], -1)


def _base_layers(size: int) -> int:
    return max(1, size // 16)


# --------------------------------------------------------------------------------------
# the frame
# --------------------------------------------------------------------------------------
def canonical_frame(mesh, *, base_nm=None, axis=None) -> tuple[np.ndarray, str]:
    """Data-to-canonical transform of one spine: base at the origin, axis along +z.

    Base and axis come from the arguments (e.g. ``spines.parquet`` of ``smlmspine
    mesh``: ``base_*_nm``, ``axis_*``) or, when absent, from the mesh: a flat base cap
    (base = its centroid, axis = minus its outward normal), the largest facet when it
    has >= 4 faces, covers >= 0.5 % of the surface and >= 10 times the second largest
    facet; without one the principal axis of the surface, from its narrower end (a
    guess). The canonical x axis is the principal direction of the surface across the
    axis, signed so that the surface's third moment along it is >= 0.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The spine mesh (nm).
    base_nm : (3,) array_like, optional
        Base point (nm).
    axis : (3,) array_like, optional
        Spine axis from base to tip (normalised here).

    Returns
    -------
    affine : (4, 4) ndarray
        ``p' = affine @ [x, y, z, 1]``.
    source : str
        ``"table"``, ``"cap"`` or ``"pca"``.

    Examples
    --------
    >>> import trimesh
    >>> cyl = trimesh.creation.cylinder(radius=50.0, height=400.0)   # flat caps at z = +-200
    >>> _ = cyl.apply_translation([0, 0, 200.0])
    >>> A, how = canonical_frame(cyl, base_nm=[0, 0, 0], axis=[0, 0, 1])
    >>> how, np.round(A @ [0, 0, 400.0, 1], 6).tolist()
    ('table', [0.0, 0.0, 400.0, 1.0])
    """
    v = np.asarray(mesh.vertices, float)
    centroids = np.asarray(mesh.triangles_center, float)
    areas = np.asarray(mesh.area_faces, float)
    if base_nm is not None and axis is not None:
        b = np.asarray(base_nm, float).reshape(3)
        a = np.asarray(axis, float).reshape(3)
        if not (np.isfinite(b).all() and np.isfinite(a).all() and np.linalg.norm(a) > 0):
            raise ParameterError(f"base/axis must be finite with a non-zero axis, got base "
                                 f"{b.tolist()}, axis {a.tolist()}")
        source = "table"
    else:
        b, a, source = _estimate_base_axis(mesh, v, centroids, areas)
    a = a / np.linalg.norm(a)
    rel = centroids - b
    perp = rel - np.outer(rel @ a, a)
    w = areas / max(areas.sum(), 1e-300)
    cov = (perp * w[:, None]).T @ perp
    evals, evecs = np.linalg.eigh(cov)
    ex = evecs[:, -1] - (evecs[:, -1] @ a) * a
    if np.linalg.norm(ex) < 1e-9:
        ex = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
    ex /= np.linalg.norm(ex)
    if float(np.sum(w * (perp @ ex) ** 3)) < 0:
        ex = -ex
    ey = np.cross(a, ex)
    R = np.stack([ex, ey, a])
    A = np.eye(4)
    A[:3, :3] = R
    A[:3, 3] = -R @ b
    return A, source


#: Fewest faces of a planar facet taken as a base cap (two adjacent triangles can be
#: coplanar by chance).
CAP_MIN_FACES = 4


def _estimate_base_axis(mesh, v, centroids, areas):
    total = float(areas.sum())
    try:
        facets = mesh.facets
        f_area = np.asarray(mesh.facets_area, float)
    except Exception as exc:  # noqa: BLE001 - trimesh raises many types on odd meshes
        if isinstance(exc, ImportError):
            raise
        facets, f_area = [], np.empty(0)
    order = np.argsort(f_area)[::-1]
    second = float(f_area[order[1]]) if len(order) > 1 else 0.0
    if (len(order) and f_area[order[0]] >= max(0.005 * total, 10 * second)
            and len(facets[order[0]]) >= CAP_MIN_FACES):
        k = int(order[0])
        faces = np.asarray(facets[k])
        normal = np.asarray(mesh.facets_normal[k], float)
        b = (centroids[faces] * areas[faces, None]).sum(0) / areas[faces].sum()
        return b, -normal, "cap"
    w = areas / max(total, 1e-300)
    c = (centroids * w[:, None]).sum(0)
    cov = ((centroids - c) * w[:, None]).T @ (centroids - c)
    a = np.linalg.eigh(cov)[1][:, -1]
    t = (v - c) @ a
    lo, hi = t.min(), t.max()
    band = 0.1 * (hi - lo)

    def spread(sel):
        q = v[sel] - c
        return float(np.mean(np.linalg.norm(q - np.outer(q @ a, a), axis=1))) if sel.any() else 0.0

    if spread(t >= hi - band) < spread(t <= lo + band):
        a, t, lo, hi = -a, -t, -hi, -lo
    sel = t <= lo + band
    q = v[sel]
    b = q.mean(0) + (lo - ((q - c) @ a).mean()) * a
    return b, a, "pca"


def _frames_from_table(spines):
    need = ("spine_id", "base_x_nm", "base_y_nm", "base_z_nm", "axis_x", "axis_y", "axis_z")
    if spines is None:
        return {}
    if not isinstance(spines, pa.Table):
        raise ParameterError(f"spines must be a pyarrow.Table, got {type(spines).__name__}")
    missing = [c for c in need if c not in spines.column_names]
    if missing:
        raise ParameterError(f"spines table lacks column(s) {missing}; it needs {list(need)} "
                             "(spines.parquet of `smlmspine mesh`)")
    d = spines.select(list(need)).to_pydict()
    out = {}
    for i, k in enumerate(d["spine_id"]):
        b = [d["base_x_nm"][i], d["base_y_nm"][i], d["base_z_nm"][i]]
        a = [d["axis_x"][i], d["axis_y"][i], d["axis_z"][i]]
        vals = np.asarray(b + a, dtype=float)
        if k is not None and np.isfinite(vals).all() and np.linalg.norm(vals[3:]) > 0:
            out[int(k)] = (vals[:3], vals[3:])
    return out


# --------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------
def spine_grids(meshes, *, size: int = 64, voxel_nm=None, points: int = 2048,
                channels=("mask",), table: pa.Table | None = None,
                spines: pa.Table | None = None, units: str | None = None,
                progress: bool = False) -> SpineGrids:
    """Each spine as a ``size^3`` voxel grid and a surface point cloud in its canonical frame.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        A mesh folder of ``smlmspine mesh`` (``spine_<id>.ply``; its ``spines.parquet``
        gives base points and axes) or ``{spine_id: trimesh.Trimesh}`` (nm); a dendrite
        mesh is ignored.
    size : int
        Voxels per axis (4-512; default 64).
    voxel_nm : float, optional
        Fixed pitch (nm) for every spine; spines that do not fit are cropped and flagged
        (``cropped``). Default None: each spine's pitch fits its extent (recorded as
        ``pitch_nm``).
    points : int
        Surface points per spine (area-uniform, seeded by the spine id; default 2048).
    channels : sequence of {"mask", "sdf", "density"}
        Grid channels (default ``("mask",)``); ``density`` needs ``table``.
    table : pyarrow.Table, optional
        3D localization table (nm) for the ``density`` channel: localizations per voxel,
        all localizations inside the spine's grid.
    spines : pyarrow.Table, optional
        Base points and axes (``spine_id``, ``base_x_nm``.., ``axis_x``..: the spine table
        of ``smlmspine mesh`` or ``DendriteSimulation.spines``). Default: the mesh
        folder's ``spines.parquet`` if any; spines without a row get a frame estimated
        from the mesh (see :func:`canonical_frame`).
    units : {"nm", "um"}, optional
        Units of mesh files that do not declare theirs.
    progress : bool
        A tqdm progress bar over the spines on stderr (default False).

    Returns
    -------
    SpineGrids

    Raises
    ------
    ParameterError
        A bad size, channel or pitch; ``density`` without a 3D table; arrays over the
        memory budget.

    Examples
    --------
    >>> import trimesh
    >>> cone = trimesh.creation.cone(radius=100.0, height=400.0)   # flat base at z = 0
    >>> g = spine_grids({1: cone}, size=16, points=64)
    >>> g.grids.shape, g.index.column("frame_source").to_pylist()
    ((1, 1, 16, 16, 16), ['cap'])
    """
    from .._validate import check_memory, integer, positive
    from ._labels import load_meshes

    size = integer(size, "size", minimum=4, maximum=512)
    points = integer(points, "points", minimum=1, maximum=10_000_000)
    pitch = None if voxel_nm is None else positive(voxel_nm, "voxel_nm", unit="nm")
    if isinstance(channels, str):
        channels = (channels,)
    channels = tuple(channels)
    bad = [c for c in channels if c not in GRID_CHANNELS]
    if bad or not channels or len(set(channels)) != len(channels):
        raise ParameterError(f"channels must be distinct names from {GRID_CHANNELS}, got "
                             f"{list(channels)}")
    xyz = None
    if "density" in channels:
        if table is None:
            raise ParameterError("the density channel needs table= (3D localizations, nm)")
        from ..schema import coordinates

        if "z" not in table.column_names:
            raise ParameterError("the density channel needs a 3D table (x, y, z); got no z")
        xyz = coordinates(table, dims=3)
        xyz = xyz[np.isfinite(xyz).all(1)]
    spine_meshes, _ = load_meshes(meshes, units=units)
    if spines is None and isinstance(meshes, (str, Path)):
        spines = _folder_spines(Path(meshes))
    frames = _frames_from_table(spines)
    ids = [k for k, m in spine_meshes.items() if len(m.faces)]
    n = len(ids)
    check_memory(n * (len(channels) * size ** 3 * 4.0 + points * 24.0) + size ** 3 * 40.0,
                 what=f"{n} spine grids of {size}^3 voxels x {len(channels)} channel(s)")
    grids = np.zeros((n, len(channels), size, size, size), np.float32)
    pts = np.zeros((n, points, 3), np.float32)
    nrm = np.zeros((n, points, 3), np.float32)
    aff = np.zeros((n, 4, 4))
    rows = []
    m_layers = _base_layers(size)
    rows_iter = enumerate(ids)
    if progress:
        from tqdm import tqdm

        rows_iter = tqdm(rows_iter, total=n, desc="spine grids", unit="spine")
    for row, k in rows_iter:
        mesh = spine_meshes[k]
        base, axis = frames.get(k, (None, None))
        A, source = canonical_frame(mesh, base_nm=base, axis=axis)
        cm = mesh.copy()
        cm.apply_transform(A)
        v = np.asarray(cm.vertices, float)
        h = pitch if pitch is not None else _fit_pitch(v, size, m_layers)
        p, fidx = _surface_points(cm, points, seed=k)
        pts[row], nrm[row] = p, np.asarray(cm.face_normals, float)[fidx]
        half = size * h / 2
        lo = np.array([-half, -half, -m_layers * h])
        hi = np.array([half, half, (size - m_layers) * h])
        out_v = np.any((v < lo) | (v > hi), axis=1)
        outside_frac = float(np.mean(np.any((p < lo) | (p > hi), axis=1)))
        mask = _mask(cm, size, h, m_layers)
        n_loc = 0
        for c, name in enumerate(channels):
            if name == "mask":
                grids[row, c] = mask
            elif name == "sdf":
                grids[row, c] = _sdf(cm, size, h, m_layers, mask)
            else:
                grids[row, c], n_loc = _density(xyz, A, size, h, m_layers)
        vol = float(cm.volume) if cm.is_watertight else float("nan")
        aff[row] = A
        rows.append({"spine_id": k, "row": row, "pitch_nm": h, "size": size,
                     "base_layer": m_layers,
                     "base_x_nm": float(-(A[:3, :3].T @ A[:3, 3])[0]),
                     "base_y_nm": float(-(A[:3, :3].T @ A[:3, 3])[1]),
                     "base_z_nm": float(-(A[:3, :3].T @ A[:3, 3])[2]),
                     "axis_x": A[2, 0], "axis_y": A[2, 1], "axis_z": A[2, 2],
                     "roll_x": A[0, 0], "roll_y": A[0, 1], "roll_z": A[0, 2],
                     "frame_source": source, "cropped": bool(out_v.any()),
                     "outside_fraction": outside_frac, "mesh_volume_nm3": vol,
                     "mask_volume_nm3": float(np.count_nonzero(mask)) * h ** 3,
                     "n_localizations": int(n_loc)})
    cols = {name: [r[name] for r in rows] for name in SPINE_GRID_COLUMNS}
    if not rows:
        cols = {name: pa.array([], type=spec.type) for name, spec in SPINE_GRID_COLUMNS.items()}
    index = spec_table(SPINE_GRID_COLUMNS, cols, metadata={"source_step": "voxel.spine_grids"})
    params = {"size": size, "voxel_nm": pitch, "points": points, "channels": list(channels),
              "density": "localizations per voxel" if xyz is not None else None}
    return SpineGrids(np.asarray(ids, np.int64), channels, grids, pts, nrm, aff, index, params)


def _folder_spines(folder: Path):
    import pyarrow.parquet as pq

    path = folder / "spines.parquet"
    if not path.is_file():
        return None
    try:
        return pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
        raise FormatError(f"not a readable spine table: {exc}", path=path) from exc


def _fit_pitch(v, size, m):
    """Smallest pitch whose grid holds every vertex (half a voxel of margin)."""
    r = float(np.max(np.abs(v[:, :2]))) if len(v) else 1.0
    z_hi = float(v[:, 2].max()) if len(v) else 1.0
    z_lo = float(v[:, 2].min()) if len(v) else 0.0
    h = max(2 * r / (size - 1), z_hi / (size - m - 0.5), -z_lo / (m - 0.5), 1e-6)
    return float(h) * (1 + 1e-9)


def _surface_points(mesh, count, seed):
    import trimesh

    p, fidx = trimesh.sample.sample_surface(mesh, count, seed=int(seed))
    return np.asarray(p, float), np.asarray(fidx, np.int64)


def _mask(mesh, size, h, m):
    from ._inside import _block_of, _inside_block

    origin = (-(m - 0.5) * h, -(size - 1) / 2 * h, -(size - 1) / 2 * h)     # z, y, x
    shape = (size, size, size)
    voxel = (h, h, h)
    out = np.zeros(shape, np.float32)
    lo, hi = _block_of(mesh.vertices, origin, voxel, shape)
    if np.all(hi > lo):
        inside, _ = _inside_block(mesh.vertices, mesh.faces, origin, voxel, shape, lo, hi)
        out[tuple(slice(a, b) for a, b in zip(lo, hi))] = inside
    return out


def _sdf(mesh, size, h, m, mask):
    """Signed distance (nm, negative inside) at the voxel centres.

    Exact (Open3D closest points) in a band of voxels at the surface (mask boundary and
    voxels holding vertices, grown by one); elsewhere the distance to the closest
    surface point of the nearest band voxel (scipy's Euclidean distance transform),
    refined by jump flooding over the neighbours' closest points (each candidate a
    true surface point, so the distance only falls towards the exact one).
    Open3D's own distance query is slow deep inside a large mesh, hence the band.
    """
    from scipy import ndimage

    from .._raycast import ray_scene

    c = _centres(size, h, m)
    inside = mask > 0
    band = inside ^ ndimage.binary_erosion(inside)
    band |= ndimage.binary_dilation(inside) ^ inside
    v = np.asarray(mesh.vertices, float)
    idx = np.floor(np.c_[v[:, 2] / h + m, v[:, 1] / h + size / 2, v[:, 0] / h + size / 2]
                   ).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < size), axis=1)
    band[tuple(idx[ok].T)] = True
    band = ndimage.binary_dilation(band)
    if not band.any():        # the mesh lies outside the grid
        band[0, 0, 0] = True
    q = np.full(c.shape, np.nan)
    res = ray_scene(v, mesh.faces).compute_closest_points(c[band].astype(np.float32))
    q[band] = res["points"].numpy()
    near = ndimage.distance_transform_edt(~band, return_distances=False, return_indices=True)
    closest = q[tuple(near)]
    d2 = np.einsum("...i,...i->...", c - closest, c - closest)
    # jump flooding: every candidate is a surface point, so a neighbour's closest point
    # can only lower the distance towards the truth (never below it)
    offsets = [(a, b, e) for a in (-1, 0, 1) for b in (-1, 0, 1) for e in (-1, 0, 1)
               if (a, b, e) != (0, 0, 0)]
    for step in (4, 2, 1, 1):
        for off in offsets:
            dst, src = [], []
            for o in off:
                k = o * step
                dst.append(slice(max(0, k), size + min(0, k)))
                src.append(slice(max(0, -k), size + min(0, -k)))
            dst, src = tuple(dst), tuple(src)
            cand = closest[src]
            diff = c[dst] - cand
            dc = np.einsum("...i,...i->...", diff, diff)
            better = dc < d2[dst]
            closest[dst][better] = cand[better]
            d2[dst][better] = dc[better]
    d = np.sqrt(d2)
    return np.where(inside, -d, d).astype(np.float32)


def _density(xyz, A, size, h, m):
    q = xyz @ A[:3, :3].T + A[:3, 3]
    i = np.floor(q[:, 0] / h + size / 2).astype(np.int64)
    j = np.floor(q[:, 1] / h + size / 2).astype(np.int64)
    k = np.floor(q[:, 2] / h + m).astype(np.int64)
    ok = (i >= 0) & (i < size) & (j >= 0) & (j < size) & (k >= 0) & (k < size)
    counts = np.bincount((k[ok] * size + j[ok]) * size + i[ok], minlength=size ** 3)
    return counts.reshape(size, size, size).astype(np.float32), int(ok.sum())


# --------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------
#: Largest grid array (bytes) :func:`write_spine_grids` writes as .npz with ``format="auto"``.
NPZ_MAX_BYTES = 64e6
_ARRAYS = ("grids", "points", "normals", "affines", "spine_ids")


def write_spine_grids(result, outdir: str | Path, *, format: str = "auto") -> Path:
    """Write spine grids: one array file plus the index table ``spine_grids.parquet``.

    ``spine_grids.zarr`` (Zarr v3 group; ``grids`` ``(N, C, size, size, size)`` float32
    chunked one spine per chunk; ``points``, ``normals`` ``(N, P, 3)``; ``affines``
    ``(N, 4, 4)``; ``spine_ids`` ``(N,)``; the channel names and conventions in the group
    attributes under ``"smlmspine"``) or ``spine_grids.npz`` with the same arrays and
    ``channels``. All or nothing (rolled back on a failure).

    Parameters
    ----------
    result : SpineGrids or iterable of SpineGrids
        From :func:`spine_grids`; several results (batches of spines with the same
        channels, size and points, e.g. made one after the other to bound memory) are
        appended to one Zarr store, their index rows numbered on.
    outdir : str or pathlib.Path
        Output folder (created with its parents when missing).
    format : {"auto", "zarr", "npz"}
        ``auto``: ``npz`` for one result whose grids take at most 64 MB
        (``NPZ_MAX_BYTES``), else ``zarr`` (always for batches).

    Returns
    -------
    pathlib.Path
        The array file (``.zarr`` folder or ``.npz``).

    Raises
    ------
    ParameterError
        An unknown ``format``, ``npz`` for batches, or batches that do not match.
    FormatError
        The folder cannot be written.
    """
    from .._outputs import Outputs

    if format not in ("auto", "zarr", "npz"):
        raise ParameterError(f"format must be 'auto', 'zarr' or 'npz', got {format!r}")
    batches = None
    if not isinstance(result, SpineGrids):
        batches = iter(result)
        if format == "npz":
            raise ParameterError("batches of spine grids are written as Zarr (format='zarr' "
                                 "or 'auto')")
        format = "zarr"
    elif format == "auto":
        format = "npz" if result.grids.nbytes <= NPZ_MAX_BYTES else "zarr"
    with Outputs() as transaction:
        folder = transaction.folder(outdir, option="outdir", parents=True)
        target = folder / f"spine_grids.{format}"
        for other in (folder / "spine_grids.npz", folder / "spine_grids.zarr"):
            if other.exists():
                raise FormatError("exists already; remove it or choose another folder",
                                  path=other)
        if batches is not None:
            return _write_batches(batches, folder, target)
        return _write(result, folder, target, format)


def _write_batches(batches, folder, target):
    import pyarrow.parquet as pq
    import zarr

    from .._outputs import atomic_write

    group = arrays = None
    index, n = [], 0
    for res in batches:
        if not isinstance(res, SpineGrids):
            raise ParameterError(f"batches must be SpineGrids, got {type(res).__name__}")
        if group is None:
            group = zarr.open_group(str(target), mode="w-", zarr_format=3)
            group.attrs["smlmspine"] = _attrs(res)
            first = res
            arrays = {}
            for name in ("grids", "points", "normals", "affines", "spine_ids"):
                a = getattr(res, name)
                chunks = ((1,) + a.shape[1:]) if name == "grids" else \
                    ((max(1, min(256, 2 ** 20 // max(1, int(np.prod(a.shape[1:]))))),)
                     + a.shape[1:])
                kw = {"dimension_names": ["spine", "c", "z", "y", "x"]} if name == "grids" \
                    else {}
                arrays[name] = group.create_array(name, shape=(0,) + a.shape[1:],
                                                  dtype=a.dtype, chunks=chunks, **kw)
        elif (res.channels != first.channels or res.grids.shape[1:] != first.grids.shape[1:]
              or res.points.shape[1:] != first.points.shape[1:]):
            raise ParameterError("batches of spine grids must share channels, size and "
                                 "points")
        for name, arr in arrays.items():
            a = getattr(res, name)
            if len(a):
                arr.append(a, axis=0)
        rows = res.index.column("row").to_numpy() + n
        index.append(res.index.set_column(res.index.schema.get_field_index("row"),
                                          res.index.schema.field("row"),
                                          pa.array(rows, pa.int64())))
        n += len(res.spine_ids)
    if group is None:
        raise ParameterError("no spine grids to write (no batch)")
    with atomic_write(folder / "spine_grids.parquet") as tmp:
        pq.write_table(pa.concat_tables(index), tmp)
    return target


def _attrs(result):
    size = result.grids.shape[-1] if result.grids.ndim == 5 else 0
    return {"channels": list(result.channels), "axes": ["spine", "c", "z", "y", "x"],
            "units": {"points": "nm", "sdf": "nm", "density": "localizations per voxel",
                      "mask": "1"},
            "frame": "base at the origin, spine axis along +z, x the principal direction "
                     "across the axis; affines map data nm to canonical nm",
            "voxel_centre": "x = (i - (size - 1) / 2) pitch, y = (j - (size - 1) / 2) pitch, "
                            "z = (k - base_layer + 1/2) pitch",
            "size": int(size), "parameters": result.parameters}


def _write(result, folder, target, fmt):
    import json

    import pyarrow.parquet as pq

    from .._outputs import atomic_write

    if fmt == "npz":
        with atomic_write(target) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, grids=result.grids, points=result.points,
                                    normals=result.normals, affines=result.affines,
                                    spine_ids=result.spine_ids,
                                    channels=np.asarray(result.channels, dtype="U16"),
                                    attributes=np.asarray(json.dumps(_attrs(result))))
    else:
        import zarr

        group = zarr.open_group(str(target), mode="w-", zarr_format=3)
        group.attrs["smlmspine"] = _attrs(result)
        g = result.grids
        arr = group.create_array("grids", shape=g.shape, dtype="float32",
                                 chunks=(1,) + g.shape[1:],
                                 dimension_names=["spine", "c", "z", "y", "x"])
        for i in range(g.shape[0]):
            arr[i] = g[i]
        for name in ("points", "normals", "affines", "spine_ids"):
            a = getattr(result, name)
            group.create_array(name, data=a, chunks=a.shape if a.size else "auto")
    with atomic_write(folder / "spine_grids.parquet") as tmp:
        pq.write_table(result.index, tmp)
    return target


def read_spine_grids(path: str | Path) -> dict[str, Any]:
    """Read the arrays written by :func:`write_spine_grids` (``.npz`` or ``.zarr``).

    Parameters
    ----------
    path : str or pathlib.Path
        ``spine_grids.npz`` or ``spine_grids.zarr``.

    Returns
    -------
    dict
        ``grids``, ``points``, ``normals``, ``affines``, ``spine_ids`` (numpy arrays),
        ``channels`` (tuple of str) and ``attributes`` (dict).

    Raises
    ------
    FormatError
        Not a spine-grid file.
    """
    import json

    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                out = {k: np.asarray(z[k]) for k in _ARRAYS}
                out["channels"] = tuple(str(c) for c in z["channels"])
                out["attributes"] = json.loads(str(z["attributes"]))
            return out
        import zarr

        group = zarr.open_group(str(path), mode="r")
        out = {k: np.asarray(group[k][...]) for k in _ARRAYS}
        attrs = dict(group.attrs["smlmspine"])
        out["channels"] = tuple(attrs["channels"])
        out["attributes"] = attrs
        return out
    except (OSError, KeyError, ValueError) as exc:
        raise FormatError(f"not a spine-grid file: {exc}", path=path) from exc
    except Exception as exc:  # noqa: BLE001 - zarr raises its own types for a bad store
        if isinstance(exc, ImportError):
            raise
        raise FormatError(f"not a spine-grid file: {type(exc).__name__}: {exc}",
                          path=path) from exc
