"""Meshes to label volumes, and image labels back onto localizations.

:func:`mesh_to_labels` decides inside/outside exactly at voxel centres
(:mod:`smlmspine.voxel._inside`: exact ray crossings, parity for closed meshes, the
generalised winding number for open ones): no surface voxelization is filled, so nothing
swells by a voxel. :func:`mesh_fraction` supersamples
the same test for a partial-volume fraction. :func:`labels_to_points` looks an image up
at every localization through the image's physical grid (pixel-centre convention).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ._image import VoxelImage
from ._inside import _block_of, _inside_block, _inside_slabs, _prepared

__all__ = ["mesh_to_labels", "mesh_fraction", "labels_to_points", "load_meshes",
           "LABEL_CONVENTION"]

#: Name of the metadata entry of a label image that says how its values map to spines.
LABEL_CONVENTION = "smlmspine.labels"

_SPINE_FILE = re.compile(r"^spine_(-?\d+)$")


# --------------------------------------------------------------------------------------
# meshes in
# --------------------------------------------------------------------------------------
def load_meshes(meshes, *, units: str | None = None) -> tuple[dict[int, Any], Any]:
    """Spine meshes by ``spine_id`` and the dendrite mesh, from a folder or a mapping.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        A folder as written by ``smlmspine mesh`` / ``run`` (``spine_<id>.<ext>`` and an
        optional ``dendrite.<ext>``, any of PLY, OBJ, OFF, STL, GLB), or a mapping
        ``{spine_id: trimesh.Trimesh}`` whose optional key ``"dendrite"`` is the
        dendrite mesh. Coordinates in nm.
    units : {"nm", "um"}, optional
        Units of the mesh files (see :func:`smlmspine.morphology.load_mesh`); default:
        the units the files declare (smlmspine's own files declare nm), else an error.

    Returns
    -------
    spines : dict of int to trimesh.Trimesh
        In increasing ``spine_id``.
    dendrite : trimesh.Trimesh or None

    Raises
    ------
    FormatError
        The folder does not exist or holds no spine or dendrite mesh.
    ParameterError
        A key is not a spine id >= 0 or a value is not a triangle mesh.

    Examples
    --------
    >>> import trimesh
    >>> spines, dendrite = load_meshes({3: trimesh.creation.icosphere()})
    >>> sorted(spines), dendrite is None
    ([3], True)
    """
    if isinstance(meshes, (str, Path)):
        return _load_folder(Path(meshes), units)
    if not isinstance(meshes, Mapping):
        raise ParameterError("meshes must be a mesh folder or a mapping {spine_id: mesh}, got "
                             f"{type(meshes).__name__}")
    spines, dendrite = {}, None
    for key, mesh in meshes.items():
        if key == "dendrite":
            dendrite = _check_mesh(mesh, "meshes['dendrite']")
            continue
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ParameterError(f"meshes: keys must be spine ids (int >= 0) or 'dendrite', got "
                                 f"{key!r}")
        spines[int(key)] = _check_mesh(mesh, f"meshes[{key!r}]")
    return dict(sorted(spines.items())), dendrite


def _check_mesh(mesh, name):
    faces = getattr(mesh, "faces", None)
    vertices = getattr(mesh, "vertices", None)
    if faces is None or vertices is None:
        raise ParameterError(f"{name} must be a triangle mesh (trimesh.Trimesh), got "
                             f"{type(mesh).__name__}")
    v = np.asarray(vertices, float)
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise ParameterError(f"{name}: vertices must be finite (V, 3) coordinates (nm), got "
                             f"shape {v.shape}")
    return mesh


def _load_folder(folder: Path, units):
    from ..envelope import MESH_FORMATS
    from ..morphology import load_mesh

    if not folder.is_dir():
        raise FormatError("no such mesh folder", path=folder)
    spines, dendrite = {}, None
    for path in sorted(folder.iterdir()):
        if path.suffix.lower().lstrip(".") not in MESH_FORMATS + ("off",):
            continue
        m = _SPINE_FILE.match(path.stem)
        if m:
            sid = int(m.group(1))
            if sid < 0:
                raise FormatError(f"spine id {sid} < 0 in the file name", path=path)
            if sid in spines:
                raise FormatError(f"a second mesh of spine {sid} (one file per spine)",
                                  path=path)
            spines[sid] = load_mesh(path, units=units)
        elif path.stem == "dendrite":
            if dendrite is not None:
                raise FormatError("a second dendrite mesh", path=path)
            dendrite = load_mesh(path, units=units)
    if not spines and dendrite is None:
        raise FormatError("no spine_<id>.<ext> or dendrite.<ext> mesh in the folder (as "
                          "written by `smlmspine mesh`)", path=folder)
    return dict(sorted(spines.items())), dendrite


# --------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------
def _voxel3(voxel_nm) -> tuple[float, float, float]:
    from .._validate import positive

    if np.ndim(voxel_nm) == 0:
        v = positive(voxel_nm, "voxel_nm", unit="nm")
        return (v, v, v)
    vals = list(np.asarray(voxel_nm, dtype=object).ravel())
    if len(vals) != 3:
        raise ParameterError(f"voxel_nm must be one size or three (z, y, x) in nm, got "
                             f"{voxel_nm!r}")
    return tuple(positive(v, "voxel_nm", unit="nm") for v in vals)


def _grid(meshes_all, *, voxel_nm, like, roi_nm, margin_voxels=2):
    """(origin zyx, voxel zyx, shape zyx) of the label grid."""
    if like is not None:
        if not isinstance(like, VoxelImage):
            raise ParameterError(f"like must be a VoxelImage, got {type(like).__name__}")
        if like.spatial_axes != ("z", "y", "x"):
            raise ParameterError("like must be a 3D image (spatial axes z, y, x) for a label "
                                 f"volume, got axes {like.axes}")
        vox = tuple(float(v) for v in like.voxel_nm)
        if voxel_nm is not None and not np.allclose(_voxel3(voxel_nm), vox, rtol=1e-9, atol=0):
            raise ParameterError(f"voxel_nm={voxel_nm!r} differs from the voxel size of like "
                                 f"{vox} (z, y, x nm); give one of them")
        return (tuple(float(o) for o in like.origin_nm), vox,
                tuple(int(n) for n in like.spatial_shape))
    if voxel_nm is None:
        raise ParameterError("give voxel_nm (nm) or like= (an image whose grid to use)")
    vox = _voxel3(voxel_nm)
    if roi_nm is not None:
        try:
            r = np.asarray(roi_nm, float).ravel()
        except (TypeError, ValueError):
            r = np.empty(0)
        # the order of render's roi_nm: (x0, y0, x1, y1, z0, z1)
        lo = r[[4, 1, 0]] if r.shape == (6,) else r
        hi = r[[5, 3, 2]] if r.shape == (6,) else r
        if r.shape != (6,) or not np.isfinite(r).all() or np.any(hi <= lo):
            raise ParameterError("roi_nm must be (x0, y0, x1, y1, z0, z1) in nm (as for render) "
                                 f"with x1 > x0, y1 > y0, z1 > z0, got {roi_nm!r}")
        v = np.asarray(vox)
        shape = np.maximum(1, np.ceil((hi - lo) / v - 1e-9)).astype(np.int64)
        origin = lo + v / 2
        return tuple(origin.tolist()), vox, tuple(int(n) for n in shape)
    bounds = [np.asarray(m.vertices, float) for m in meshes_all if len(m.faces)]
    if not bounds:
        raise ParameterError("no mesh with faces to place a grid around; give like= or roi_nm")
    pts = np.concatenate(bounds)
    lo, hi = pts.min(0)[::-1], pts.max(0)[::-1]          # z, y, x
    v = np.asarray(vox)
    # voxel edges on multiples of the voxel size: grids of two calls line up
    first = np.floor(lo / v) - margin_voxels
    last = np.ceil(hi / v) + margin_voxels
    shape = (last - first).astype(np.int64)
    origin = (first + 0.5) * v
    return tuple(origin.tolist()), vox, tuple(int(n) for n in shape)


# --------------------------------------------------------------------------------------
# public: mesh_to_labels, mesh_fraction
# --------------------------------------------------------------------------------------
def _label_volume(spines, dendrite, origin, voxel, shape):
    """uint32 labels of the meshes on a grid, and the label convention (metadata)."""
    blocks = {k: _block_of(m.vertices, origin, voxel, shape) for k, m in spines.items()
              if len(m.faces)}
    if dendrite is not None and len(dendrite.faces):
        blocks["dendrite"] = _block_of(dendrite.vertices, origin, voxel, shape)
    dendrite_label = (max(spines) + 2) if spines else 1
    labels = np.zeros(shape, np.uint32)
    how = {}

    def fill(mesh, lo, hi, value, name):
        n_over = 0
        prepared = _prepared(mesh.vertices, mesh.faces)
        for y0, y1, inside in _inside_slabs(prepared, origin, voxel, lo, hi):
            view = labels[lo[0]:hi[0], y0:y1, lo[2]:hi[2]]
            if value != dendrite_label:
                n_over += int(np.count_nonzero(inside & (view != 0) & (view != dendrite_label)))
            np.copyto(view, np.uint32(value), where=inside)
        how[name] = prepared.test
        return n_over

    if "dendrite" in blocks and np.all(blocks["dendrite"][1] > blocks["dendrite"][0]):
        fill(dendrite, *blocks["dendrite"], dendrite_label, "dendrite")
    overlap = 0
    for k, m in spines.items():
        if k in blocks and np.all(blocks[k][1] > blocks[k][0]):
            overlap += fill(m, *blocks[k], k + 1, str(k))
    convention = {"offset": 1, "background": 0, "dendrite_label": int(dendrite_label),
                  "spine_ids": [int(k) for k in spines],
                  "overlap_rule": "spines over the dendrite; the larger spine_id over "
                                  "another spine",
                  "n_overlap_voxels": overlap,
                  "inside_test": {k: v for k, v in how.items()}}
    return labels, convention


def _grid_under(meshes_all, like, voxel_nm):
    """3D grid under a 2D image: its y, x pixels, z over the meshes' range."""
    vy, vx = (float(v) for v in like.voxel_nm)
    if voxel_nm is None:
        vz = min(vy, vx)
    else:
        from .._validate import positive

        if np.ndim(voxel_nm) != 0:
            raise ParameterError("with a 2D like=, voxel_nm is the z sampling step (one "
                                 f"value in nm), got {voxel_nm!r}")
        vz = positive(voxel_nm, "voxel_nm", unit="nm")
    z = [np.asarray(m.vertices, float)[:, 2] for m in meshes_all if len(m.faces)]
    if not z:
        raise ParameterError("no mesh with faces to label")
    z = np.concatenate(z)
    first, last = np.floor(z.min() / vz) - 1, np.ceil(z.max() / vz) + 1
    origin = ((first + 0.5) * vz,) + tuple(float(o) for o in like.origin_nm)
    shape = (int(last - first),) + tuple(int(n) for n in like.spatial_shape)
    return origin, (vz, vy, vx), shape


def mesh_to_labels(meshes, *, voxel_nm=None, like: VoxelImage | None = None, roi_nm=None,
                   units: str | None = None) -> VoxelImage:
    """Label volume of spine (and dendrite) meshes, decided exactly at voxel centres.

    Label values: 0 background; spine ``k`` gets ``k + 1``; the dendrite gets
    ``max spine_id + 2`` (1 without spines), recorded in the metadata
    (``metadata["smlmspine.labels"]``). A spine wins over the dendrite where they
    overlap (the dendrite mesh of ``smlmspine mesh`` holds its spines), and where two
    spines overlap the larger ``spine_id`` wins (``n_overlap_voxels`` in the metadata
    counts such voxels). Inside/outside is decided at each voxel centre: crossing parity
    along rays for closed meshes, the generalised winding number (> 0.5) for open ones
    (see the module docstring); a voxel is never filled because the surface passes
    through it.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        A mesh folder (``spine_<id>.ply``, ``dendrite.ply``, as written by
        ``smlmspine mesh``) or ``{spine_id: trimesh.Trimesh, "dendrite": mesh}``; nm.
    voxel_nm : float or (float, float, float), optional
        Voxel size in nm (one value, or z, y, x). Required unless ``like`` is given;
        with a 2D ``like`` the step along z (default: its pixel size).
    like : VoxelImage, optional
        An image whose grid (shape, origin, voxel size) the labels take, so that labels
        and a rendering line up voxel for voxel. A 2D image (``y, x``, e.g. a 2D render)
        gives a 2D label image: the labels of the voxel centres along z under each pixel
        projected, a spine (the larger ``spine_id``) over the dendrite.
    roi_nm : sequence of 6 float, optional
        ``(x0, y0, x1, y1, z0, z1)`` in nm, as for :func:`smlmspine.voxel.render`: the
        region to label (voxel 0 starts at the lower corner; the same grid as ``render``
        with this ROI). Default: the meshes' bounds plus two voxels, with voxel edges on
        multiples of the voxel size.
    units : {"nm", "um"}, optional
        Units of mesh files that do not declare theirs (folders only).

    Returns
    -------
    VoxelImage
        ``uint32`` labels, axes ``("z", "y", "x")`` (``("y", "x")`` for a 2D ``like``),
        ``value_unit="label"``.

    Raises
    ------
    ParameterError
        Neither ``voxel_nm`` nor ``like``; a bad ROI; a grid over the memory budget
        (``SMLMSPINE_MEMORY_BUDGET_GB``).
    FormatError
        A mesh folder that does not exist or holds no mesh.

    Examples
    --------
    >>> import trimesh
    >>> img = mesh_to_labels({0: trimesh.creation.box((100.0, 100.0, 100.0))}, voxel_nm=10)
    >>> int((img.data == 1).sum())   # 10 x 10 x 10 voxel centres inside the box
    1000
    >>> img.metadata["smlmspine.labels"]["offset"]
    1
    """
    from .._validate import check_memory

    spines, dendrite = load_meshes(meshes, units=units)
    allm = list(spines.values()) + ([dendrite] if dendrite is not None else [])
    flat = (isinstance(like, VoxelImage) and like.spatial_axes == ("y", "x")
            and "c" not in like.axes and "rgb" not in like.axes)
    if flat:
        origin, voxel, shape = _grid_under(allm, like, voxel_nm)
    else:
        origin, voxel, shape = _grid(allm, voxel_nm=voxel_nm, like=like, roi_nm=roi_nm)
    n_vox = int(np.prod(shape))
    check_memory(n_vox * 4.0, what=f"a label volume of {shape} voxels (z, y, x; voxel "
                                   f"{voxel} nm)")
    labels, convention = _label_volume(spines, dendrite, origin, voxel, shape)
    meta = {LABEL_CONVENTION: convention,
            "source_step": "voxel.mesh_to_labels",
            "source": str(meshes) if isinstance(meshes, (str, Path)) else "meshes"}
    if flat:
        # a pixel takes a spine when its column meets one (the larger id on top), else
        # the dendrite when the column meets it
        d = convention["dendrite_label"]
        spine_top = np.where(labels == d, 0, labels).max(axis=0)
        flat_labels = np.where(spine_top > 0, spine_top,
                               np.where((labels == d).any(axis=0), d, 0)).astype(np.uint32)
        convention["projection"] = (f"2D: the labels of the voxel centres along z (every "
                                    f"{voxel[0]:g} nm over the meshes' z range) projected: "
                                    "a spine (the larger spine_id) over the dendrite")
        return VoxelImage(flat_labels, ("y", "x"), tuple(float(v) for v in like.voxel_nm),
                          tuple(float(o) for o in like.origin_nm), value_unit="label",
                          metadata=meta)
    return VoxelImage(labels, ("z", "y", "x"), tuple(voxel), tuple(origin),
                      value_unit="label", metadata=meta)


#: Largest supersampling factor of :func:`mesh_fraction` (s^3 samples per voxel).
MAX_SUPERSAMPLE = 16


def mesh_fraction(meshes, *, voxel_nm=None, like: VoxelImage | None = None, roi_nm=None,
                  supersample: int = 4, units: str | None = None) -> VoxelImage:
    """Partial-volume fraction: the part of each voxel inside the meshes (their union).

    Each voxel is split into ``supersample^3`` sub-voxels whose centres get the exact
    inside test of :func:`mesh_to_labels`; the fraction is the share inside any mesh
    (spines or dendrite). Same grid rules as :func:`mesh_to_labels`, so the two line up.

    Parameters
    ----------
    meshes : str, pathlib.Path or mapping
        As for :func:`mesh_to_labels`.
    voxel_nm : float or (float, float, float), optional
        Voxel size in nm (required unless ``like`` is given).
    like : VoxelImage, optional
        A 3D image whose grid to use.
    roi_nm : sequence of 6 float, optional
        ``(x0, y0, x1, y1, z0, z1)`` in nm, as for :func:`smlmspine.voxel.render`.
    supersample : int
        Sub-voxels per axis (1-16; default 4: a fraction in steps of 1/64).
    units : {"nm", "um"}, optional
        Units of mesh files that do not declare theirs.

    Returns
    -------
    VoxelImage
        ``float32`` fractions in [0, 1], axes ``("z", "y", "x")``,
        ``value_unit="fraction"``.

    Raises
    ------
    ParameterError
        As :func:`mesh_to_labels`, or ``supersample`` outside 1-16.

    Examples
    --------
    >>> import trimesh
    >>> box = trimesh.creation.box((95.0, 100.0, 100.0))   # faces at +-47.5 nm
    >>> img = mesh_fraction({0: box}, voxel_nm=10, supersample=4)
    >>> round(float(img.data.sum()) * 1000, 1)   # volume in nm^3 from the fractions
    950000.0
    """
    from .._validate import check_memory, integer

    s = integer(supersample, "supersample", minimum=1, maximum=MAX_SUPERSAMPLE)
    spines, dendrite = load_meshes(meshes, units=units)
    allm = [m for m in list(spines.values()) + [dendrite] if m is not None and len(m.faces)]
    origin, voxel, shape = _grid(allm, voxel_nm=voxel_nm, like=like, roi_nm=roi_nm)
    check_memory(int(np.prod(shape)) * 4.0, what=f"a fraction image of {shape} voxels")
    fine_voxel = tuple(v / s for v in voxel)
    fine_origin = tuple(o - v / 2 + fv / 2 for o, v, fv in zip(origin, voxel, fine_voxel))
    fine_shape = tuple(n * s for n in shape)
    out = np.zeros(shape, np.float32)
    # one slab of voxel layers at a time: the union of the meshes at the fine grid
    per_layer = shape[1] * shape[2] * s ** 3 * 14.0
    from .._validate import memory_budget_bytes

    layers = max(1, min(shape[0], int(memory_budget_bytes() / 4 // max(per_layer, 1))))
    check_memory(per_layer * layers, what=f"supersample={s}: one slab of sub-voxels")
    blocks = [(m, _block_of(m.vertices, fine_origin, fine_voxel, fine_shape)) for m in allm]
    for z0 in range(0, shape[0], layers):
        z1 = min(shape[0], z0 + layers)
        union = np.zeros(((z1 - z0) * s, shape[1] * s, shape[2] * s), bool)
        for m, (lo, hi) in blocks:
            lo2 = np.array([max(lo[0], z0 * s), lo[1], lo[2]])
            hi2 = np.array([min(hi[0], z1 * s), hi[1], hi[2]])
            if not np.all(hi2 > lo2):
                continue
            inside, _ = _inside_block(m.vertices, m.faces, fine_origin, fine_voxel,
                                      fine_shape, lo2, hi2)
            sl = (slice(lo2[0] - z0 * s, hi2[0] - z0 * s), slice(lo2[1], hi2[1]),
                  slice(lo2[2], hi2[2]))
            union[sl] |= inside
        out[z0:z1] = union.reshape(z1 - z0, s, shape[1], s, shape[2], s).mean(
            axis=(1, 3, 5), dtype=np.float64)
    meta = {"source_step": "voxel.mesh_fraction", "supersample": s,
            "source": str(meshes) if isinstance(meshes, (str, Path)) else "meshes"}
    return VoxelImage(out, ("z", "y", "x"), tuple(voxel), tuple(origin),
                      value_unit="fraction", metadata=meta)


# --------------------------------------------------------------------------------------
# public: labels_to_points
# --------------------------------------------------------------------------------------
def labels_to_points(table: pa.Table, labels: VoxelImage, *, column: str = "spine_id",
                     outside: int = -1, offset: int | None = None) -> pa.Table:
    """The table with a label column looked up in a label image at every localization.

    Each localization takes the value of the voxel holding it (pixel-centre
    convention: ``index = floor((coordinate - origin) / voxel + 0.5)`` per axis, the
    image's ``origin_nm`` being the centre of voxel 0). A 2D image (axes ``y, x``) uses
    ``x, y`` only; a 3D image needs ``z``. Value ``L`` becomes ``L - offset``;
    background (0), the dendrite label of a :func:`mesh_to_labels` image, points
    outside the image and points with a NaN coordinate get ``outside``. So
    ``labels_to_points(table, mesh_to_labels(meshes))`` gives each localization its
    ``spine_id`` (-1 outside every spine).

    Parameters
    ----------
    table : pyarrow.Table
        Localization table (``x``, ``y`` and, for a 3D image, ``z`` in nm); STORM or
        MINFLUX.
    labels : VoxelImage
        Integer label image, 2D or 3D, without a channel axis (a numpy, dask or zarr
        array).
    column : str
        Name of the new column (replaced when it exists; default ``"spine_id"``).
    outside : int
        Value for background and points outside the image (default -1).
    offset : int, optional
        Subtracted from every non-zero label. Default: the offset recorded by
        :func:`mesh_to_labels` in the image's metadata (1), else 0 (a segmentation's
        labels are taken as they are).

    Returns
    -------
    pyarrow.Table
        A new table with ``column`` (int64) added; the input is not changed.

    Raises
    ------
    ParameterError
        The image is not an integer 2D/3D image without channels, or the table lacks a
        coordinate the image needs.

    Examples
    --------
    >>> import numpy as np
    >>> import pyarrow as pa
    >>> img = VoxelImage(np.array([[0, 3], [5, 0]], np.uint32), ("y", "x"), (10.0, 10.0),
    ...                  (5.0, 5.0))
    >>> t = pa.table({"x": [5.0, 14.0, 6.0, 40.0], "y": [5.0, 6.0, 16.0, 5.0]})
    >>> labels_to_points(t, img, column="label").column("label").to_pylist()
    [-1, 3, 5, -1]
    """
    from ..schema import coordinates, with_columns, with_history

    if not isinstance(labels, VoxelImage):
        raise ParameterError(f"labels must be a VoxelImage, got {type(labels).__name__}")
    axes = labels.spatial_axes
    if "c" in labels.axes or "rgb" in labels.axes or axes not in (("y", "x"), ("z", "y", "x")):
        raise ParameterError("labels must be a 2D (y, x) or 3D (z, y, x) label image without "
                             f"channels, got axes {labels.axes}")
    dtype = np.dtype(getattr(labels.data, "dtype", np.asarray(labels.data).dtype))
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise ParameterError(f"labels must hold integers (a label image), got {dtype}")
    if not isinstance(column, str) or not column:
        raise ParameterError(f"column must be a non-empty name, got {column!r}")
    outside = int(outside)
    conv = (labels.metadata or {}).get(LABEL_CONVENTION, {}) if isinstance(
        labels.metadata, Mapping) else {}
    if offset is None:
        offset = int(conv.get("offset", 0))
    dendrite_label = conv.get("dendrite_label")
    dims = len(axes)
    if dims == 3 and "z" not in table.column_names:
        raise ParameterError("the label image is 3D (z, y, x) but the table has no z column; "
                             "use a 2D image for 2D data")
    xyz = coordinates(table, dims=dims)                 # (N, dims) in x, y[, z]
    zyx = xyz[:, ::-1]
    finite = np.isfinite(zyx).all(1)
    shape = np.asarray(labels.spatial_shape)
    # far points (and NaN) kept away from the integer cast: index them at -1
    lo = np.asarray(labels.origin_nm) - np.asarray(labels.voxel_nm)
    hi = np.asarray(labels.origin_nm) + np.asarray(labels.voxel_nm) * shape
    near = finite & np.all((zyx >= lo) & (zyx <= hi), axis=1)
    idx = np.full(zyx.shape, -1, np.int64)
    idx[near] = labels.index_of(zyx[near])
    ok = near & np.all((idx >= 0) & (idx < shape), axis=1)
    vals = np.full(len(zyx), outside, np.int64)
    if ok.any():
        raw = _lookup(labels.data, idx[ok]).astype(np.int64)
        mapped = np.where(raw == 0, outside, raw - int(offset))
        if dendrite_label is not None:
            mapped = np.where(raw == int(dendrite_label), outside, mapped)
        vals[ok] = mapped
    out = with_columns(table, {column: vals}, units={column: "1"})
    return with_history(out, "voxel.labels_to_points",
                        {"column": column, "outside": outside, "offset": int(offset),
                         "image_shape": [int(n) for n in shape],
                         "voxel_nm": [float(v) for v in labels.voxel_nm],
                         "origin_nm": [float(o) for o in labels.origin_nm]})


def _lookup(data, idx):
    """Values of ``data`` at integer indices ``idx`` (N, D), numpy, dask or zarr."""
    sel = tuple(idx.T)
    if isinstance(data, np.ndarray):
        return data[sel]
    if hasattr(data, "vindex"):
        out = data.vindex[sel]
        return np.asarray(out.compute() if hasattr(out, "compute") else out)
    return np.asarray(data)[sel]
