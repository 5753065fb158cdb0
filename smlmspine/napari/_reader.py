"""napari readers: localization files, meshes and OME-TIFF images as napari layer data.

Every function here returns napari *layer data tuples* ``(data, kwargs, layer_type)``
and imports nothing from napari, so that the readers work (and are tested) without
napari installed; napari turns the tuples into layers. Coordinates stay in nm: the
layers carry ``units`` ("nm") and ``axis_labels`` (``z, y, x``), napari's axis order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError, SmlmSpineError

__all__ = ["MAX_POINTS", "SUBSAMPLE_SEED", "MESH_EXTENSIONS", "IMAGE_EXTENSIONS", "get_reader",
           "localization_layers", "points_layers", "mesh_layers", "surface_layer",
           "image_layers", "voxel_image_layers"]

#: Largest number of localizations shown as one Points layer. Above it a deterministic
#: random subsample of this size is shown (seed :data:`SUBSAMPLE_SEED`, said in the
#: layer name and metadata) together with a 2D density image of *all* localizations:
#: napari's Points layer becomes slow to draw and to slice above a few million points.
MAX_POINTS = 2_000_000

#: Seed of the subsample drawn above :data:`MAX_POINTS` (same file, same points).
SUBSAMPLE_SEED = 0

#: Mesh files read as Surface layers (``smlmspine mesh`` / ``run`` write PLY, OBJ, STL
#: and GLB; OFF is read too).
MESH_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb")

#: Image files claimed when they are OME-TIFF (a plain TIFF has no physical scale and
#: is left to napari's own reader).
IMAGE_EXTENSIONS = (".ome.tif", ".ome.tiff", ".tif", ".tiff")

#: Largest side of the density image shown with a subsample, pixels.
_DENSITY_MAX_SIDE = 4096
#: Smallest pixel of that image, nm.
_DENSITY_MIN_PIXEL_NM = 10.0

#: Surface colours cycled over the spines of a mesh folder (napari colormap names).
SPINE_COLORMAPS = ("red", "green", "blue", "magenta", "cyan", "yellow", "bop orange",
                   "bop purple")


# ---------------------------------------------------------------------------------------
# dispatch


def _kind(path: Path) -> str | None:
    """``"meshes"``, ``"image"``, ``"localizations"`` or None (not ours)."""
    name = path.name.lower()
    if path.is_dir():
        return "meshes" if _mesh_files(path) else None
    if not path.is_file():
        return None
    if name.endswith(MESH_EXTENSIONS):
        return "meshes"
    if name.endswith(IMAGE_EXTENSIONS):
        return "image" if _is_ome_tiff(path) else None
    from ..io import detect_format

    try:
        detect_format(path)
    except SmlmSpineError:
        return None
    return "localizations"


_READ_KIND = {}  # filled below: kind -> reader of one path


def get_reader(path):
    """The napari reader for a path (the plugin's ``napari_get_reader`` command).

    Claims localization files any :mod:`smlmspine.io` reader recognises by content,
    mesh files (``.ply``, ``.obj``, ``.stl``, ``.off``, ``.glb``), folders holding mesh
    files, and OME-TIFF images; returns None for anything else (a plain TIFF, a NumPy
    array that is no MINFLUX export, a CSV of another layout), so that napari tries its
    other readers.

    Parameters
    ----------
    path : str, os.PathLike or list of them
        What napari asks to open; for a list, every path must be of one kind.

    Returns
    -------
    callable or None
        ``reader(path) -> list of (data, kwargs, layer_type)`` (the same path or list),
        or None when the path is not for this plugin.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "notes.txt").write_text("not localizations")
    >>> get_reader(str(d / "notes.txt")) is None
    True
    """
    paths = [Path(os.fspath(p)) for p in path] if isinstance(path, (list, tuple)) \
        else [Path(os.fspath(path))]
    if not paths:
        return None
    try:
        kinds = {_kind(p) for p in paths}
    except OSError:
        return None
    if len(kinds) != 1 or None in kinds:
        return None
    read_one = _READ_KIND[kinds.pop()]

    def reader(path):
        items = path if isinstance(path, (list, tuple)) else [path]
        return [layer for item in items for layer in read_one(item)]

    return reader


# ---------------------------------------------------------------------------------------
# localizations -> Points


def localization_layers(path, *, max_points: int = MAX_POINTS) -> list[tuple]:
    """Read a localization file (any :func:`smlmspine.io.read` format) as napari layers.

    Parameters
    ----------
    path : str or os.PathLike
        The localization file; its format is detected from the content.
    max_points : int
        Largest number of points in the Points layer (see :func:`points_layers`).

    Returns
    -------
    list of (data, kwargs, layer_type)
        One ``"points"`` layer, plus an ``"image"`` density layer when subsampled.

    Raises
    ------
    FormatError
        The file cannot be read (a pixel-unit format without a stored pixel size is
        refused: napari cannot pass ``pixel_size_nm``; convert it first with
        ``smlmspine convert --pixel-size-nm``).
    """
    from ..io import read

    path = Path(os.fspath(path))
    table = read(path)
    return points_layers(table, name=path.name, max_points=max_points,
                         source=str(path))


def points_layers(table, *, name: str = "localizations", max_points: int = MAX_POINTS,
                  source: str | None = None) -> list[tuple]:
    """A localization table as a napari Points layer (and a density image when large).

    The points are ``(z, y, x)`` (``(y, x)`` without a ``z`` column) in nm, with
    ``units`` "nm" and ``axis_labels``; every column of the table is a point feature;
    3D points are coloured by ``z`` (colormap ``turbo`` over the 1st-99th percentile),
    2D points in one colour. The point size (a diameter, nm) is twice the median
    ``precision_xy``, clipped to 5-100 nm, or 20 nm without precisions.

    Above ``max_points`` localizations, the Points layer holds a random subsample of
    ``max_points`` of them (seed :data:`SUBSAMPLE_SEED`: deterministic; the name says
    ``subsample m of n`` and ``metadata["smlmspine"]`` records it) and a second layer,
    an image, holds the ``y, x`` density (localizations per pixel) of all of them.

    Parameters
    ----------
    table : pyarrow.Table
        Canonical localization table (``x``, ``y`` and optionally ``z`` in nm).
    name : str
        Layer name.
    max_points : int
        Largest number of points shown (at least 1).
    source : str, optional
        The file the table came from (recorded in the metadata).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``[(points, kwargs, "points")]``, plus ``(density, kwargs, "image")`` when
        subsampled.

    Raises
    ------
    ParameterError
        ``max_points`` is not a positive integer.
    FormatError
        The table has no ``x`` / ``y`` columns.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [10.0, 20.0], "y": [1.0, 2.0], "z": [-5.0, 5.0]})
    >>> [(data, kw, kind)] = points_layers(t, name="demo")
    >>> kind, data.tolist(), kw["axis_labels"], kw["units"], kw["face_color"]
    ('points', [[-5.0, 1.0, 10.0], [5.0, 2.0, 20.0]], ('z', 'y', 'x'), ('nm', 'nm', 'nm'), 'z')
    >>> sorted(kw["features"])
    ['x', 'y', 'z']
    """
    from .._validate import integer

    max_points = integer(max_points, "max_points", minimum=1)
    missing = [c for c in ("x", "y") if c not in table.column_names]
    if missing:
        raise FormatError(f"the table has no column(s) {missing}; found {table.column_names}",
                          path=source)
    axes = ("z", "y", "x") if _has_z(table) else ("y", "x")
    n = table.num_rows
    keep = None
    if n > max_points:
        rng = np.random.default_rng(SUBSAMPLE_SEED)
        keep = np.sort(rng.choice(n, size=max_points, replace=False))
    shown = table if keep is None else table.take(keep)
    coords = np.column_stack([_column(shown, a) for a in axes]) if shown.num_rows \
        else np.empty((0, len(axes)))
    features = {c: _column(shown, c) for c in shown.column_names if _is_flat(shown, c)}
    info = {"source": source, "n_localizations": n, "n_shown": shown.num_rows,
            "subsampled": keep is not None, "subsample_seed": SUBSAMPLE_SEED if keep is not None else None,
            "columns": {c: _unit(table, c) for c in table.column_names}}
    kwargs = {
        "name": name if keep is None else f"{name} (subsample {shown.num_rows:,} of {n:,})",
        "features": features,
        "size": _point_size(shown),
        "border_width": 0.0,
        "axis_labels": axes,
        "units": ("nm",) * len(axes),
        "metadata": {"smlmspine": info},
    }
    if "z" in axes:
        z = coords[:, 0]
        finite = z[np.isfinite(z)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        kwargs.update(face_color="z", face_colormap="turbo",
                      face_contrast_limits=(float(lo), float(hi)))
    else:
        kwargs["face_color"] = "#ffb000"
    layers = [(coords, kwargs, "points")]
    if keep is not None and np.isfinite(coords[:, -2:]).all(axis=1).any():
        layers.append(_density_layer(table, name=name, source=source))
    return layers


def _has_z(table) -> bool:
    if "z" not in table.column_names:
        return False
    z = _column(table, "z")
    return bool(np.isfinite(z).any())


def _column(table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


def _is_flat(table, name: str) -> bool:
    import pyarrow.types as pt

    t = table.schema.field(name).type
    return (pt.is_integer(t) or pt.is_floating(t) or pt.is_boolean(t) or pt.is_string(t)
            or pt.is_large_string(t) or pt.is_dictionary(t))


def _unit(table, name: str) -> str:
    meta = table.schema.field(name).metadata or {}
    return meta.get(b"unit", b"").decode(errors="replace")


def _point_size(table) -> float:
    if "precision_xy" in table.column_names and table.num_rows:
        p = _column(table, "precision_xy").astype(float)
        p = p[np.isfinite(p) & (p > 0)]
        if p.size:
            return float(np.clip(2.0 * np.median(p), 5.0, 100.0))
    return 20.0


def _density_layer(table, *, name: str, source: str | None) -> tuple:
    """The y, x histogram of all localizations (pixel >= 10 nm, <= 4096 px a side)."""
    x, y = _column(table, "x").astype(float), _column(table, "y").astype(float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    lo = np.array([y.min(), x.min()])
    extent = np.array([y.max(), x.max()]) - lo
    pixel = max(_DENSITY_MIN_PIXEL_NM, float(extent.max()) / _DENSITY_MAX_SIDE)
    shape = np.floor(extent / pixel).astype(int) + 1
    iy = np.minimum(((y - lo[0]) / pixel).astype(np.int64), shape[0] - 1)
    ix = np.minimum(((x - lo[1]) / pixel).astype(np.int64), shape[1] - 1)
    image = np.bincount(iy * shape[1] + ix, minlength=int(shape.prod()))
    image = image.reshape(shape).astype(np.float32)
    kwargs = {
        "name": f"{name} (density of all {table.num_rows:,}, {pixel:g} nm pixels)",
        "scale": (pixel, pixel),
        "translate": tuple(float(v) for v in lo + pixel / 2),  # pixel centres
        "axis_labels": ("y", "x"),
        "units": ("nm", "nm"),
        "colormap": "magma",
        "blending": "additive",
        "contrast_limits": (0.0, float(max(1.0, np.percentile(image[image > 0], 99.5)))),
        "metadata": {"smlmspine": {"source": source, "value_unit": "localizations per pixel",
                                   "pixel_nm": pixel}},
    }
    return image, kwargs, "image"


# ---------------------------------------------------------------------------------------
# meshes -> Surface


def _mesh_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and p.name.lower().endswith(MESH_EXTENSIONS)), key=_mesh_order)


def _mesh_order(p: Path):
    """The dendrite first, then spines by number, then the rest by name."""
    stem = p.stem.lower()
    if stem in ("dendrite", "mesh"):
        return (0, 0, stem)
    if stem.startswith("spine_") and stem[6:].lstrip("-").isdigit():
        return (1, int(stem[6:]), stem)
    return (2, 0, stem)


def mesh_layers(path) -> list[tuple]:
    """Read a mesh file, or every mesh file of a folder, as napari Surface layers.

    A folder written by ``smlmspine mesh`` / ``run`` (``dendrite.ply``,
    ``spine_<id>.ply``) gives the dendrite (grey, translucent) and one coloured Surface
    per spine. Files that declare their units as smlmspine writes them (header comment
    ``smlmspine ... units=nm``; the simulator's truth PLYs, ``comment smlmspine
    simulate: ...``, are nm too) get ``units`` "nm"; other files are shown in their own
    coordinates with no unit set (units are never guessed). A mesh file's coordinates
    are ``x, y, z``; the layer's vertices are ``z, y, x``.

    Parameters
    ----------
    path : str or os.PathLike
        A mesh file (``.ply``, ``.obj``, ``.stl``, ``.off``, ``.glb``) or a folder.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One ``"surface"`` layer per mesh (see :func:`surface_layer`).

    Raises
    ------
    FormatError
        The file is no readable triangle mesh, or the folder holds no mesh file.
    """
    path = Path(os.fspath(path))
    files = _mesh_files(path) if path.is_dir() else [path]
    if not files:
        raise FormatError(f"the folder holds no mesh file ({', '.join(MESH_EXTENSIONS)})",
                          path=path)
    layers = []
    for i, f in enumerate(files):
        vertices, faces = _load_mesh(f)
        stem = f.stem.lower()
        spine = stem.startswith("spine_")
        layers.append(surface_layer(
            vertices, faces, name=f.name, units=_mesh_units(f),
            colormap=SPINE_COLORMAPS[i % len(SPINE_COLORMAPS)] if spine else "gray",
            opacity=0.9 if spine else 0.25, source=str(f)))
    return layers


def _load_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for a bad file
        raise FormatError(f"not a readable mesh: {type(exc).__name__}: {exc}", path=path) from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise FormatError("the file holds no triangle mesh", path=path)
    return np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int64)


def _mesh_units(path: Path) -> str | None:
    """"nm" when the file says smlmspine wrote it in nm, else None (never guessed).

    ``smlmspine mesh`` / ``run`` declare ``smlmspine ... units=nm`` (read as
    :func:`smlmspine.morphology.load_mesh` does); the simulator's truth PLYs carry a
    ``comment smlmspine simulate: ...`` line and are written in nm.
    """
    from ..morphology._tables import _declared_units, _header_lines

    units = _declared_units(path)
    if units is None and path.suffix.lower() == ".ply" and any(
            low.startswith("comment smlmspine simulate") for low in _header_lines(path)):
        return "nm"
    return units


def surface_layer(vertices, faces, *, name: str = "mesh", units: str | None = "nm",
                  colormap: str = "gray", opacity: float = 1.0,
                  source: str | None = None) -> tuple:
    """A triangle mesh as a napari Surface layer, vertices in ``z, y, x`` order.

    Parameters
    ----------
    vertices : (V, 3) array_like of float
        Vertex coordinates ``x, y, z`` (as in the mesh files and ``trimesh``).
    faces : (F, 3) array_like of int
        Vertex indices of each triangle.
    name : str
        Layer name.
    units : str or None
        Length unit of the coordinates (``"nm"``); None: not known (no ``units`` set).
    colormap : str
        napari colormap; the surface is drawn in its top colour.
    opacity : float
        Layer opacity, 0-1.
    source : str, optional
        The file the mesh came from (recorded in the metadata).

    Returns
    -------
    (data, kwargs, layer_type)
        ``((vertices_zyx, faces, values), kwargs, "surface")``.

    Raises
    ------
    ParameterError
        ``vertices`` is not (V, 3) or ``faces`` not (F, 3).

    Examples
    --------
    >>> (v, f, values), kw, kind = surface_layer([[1.0, 2.0, 3.0], [4, 5, 6], [7, 8, 9]],
    ...                                          [[0, 1, 2]], name="tri")
    >>> kind, v[0].tolist(), kw["axis_labels"], kw["units"]
    ('surface', [3.0, 2.0, 1.0], ('z', 'y', 'x'), ('nm', 'nm', 'nm'))
    """
    from ..errors import ParameterError

    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ParameterError(f"'vertices' must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ParameterError(f"'faces' must have shape (F, 3), got {f.shape}")
    kwargs = {
        "name": name,
        "colormap": colormap,
        "contrast_limits": (0.0, 1.0),
        "opacity": float(opacity),
        "shading": "smooth",
        "axis_labels": ("z", "y", "x"),
        "metadata": {"smlmspine": {"source": source, "units": units,
                                   "n_vertices": len(v), "n_faces": len(f)}},
    }
    if units is not None:
        kwargs["units"] = (units,) * 3
    return (np.ascontiguousarray(v[:, ::-1]), f, np.ones(len(v))), kwargs, "surface"


# ---------------------------------------------------------------------------------------
# OME-TIFF -> Image / Labels


def _is_ome_tiff(path: Path) -> bool:
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:  # not a TIFF at all: not ours
        return False


def image_layers(path) -> list[tuple]:
    """Read an OME-TIFF image as napari Image (or Labels) layers in nm.

    Read by :func:`smlmspine.voxel.read_image` (the package's own metadata when
    present, else the OME-XML ``PhysicalSizeX/Y/Z`` with their units and the first
    plane's ``PositionX/Y/Z`` as the centre of voxel 0) and shown through
    :func:`voxel_image_layers`. An OME-TIFF without physical sizes (not smlmspine's) is
    shown in pixels: scale 1, origin 0 and no unit (never guessed). Channel names come
    from the package's metadata or the OME channels.

    Parameters
    ----------
    path : str or os.PathLike
        The OME-TIFF file (``.ome.tif``; any OME-TIFF is read).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``"image"`` or ``"labels"`` layers (one per channel) with ``scale``,
        ``translate``, ``units`` and ``axis_labels`` in ``z, y, x`` order.

    Raises
    ------
    FormatError
        The file is no OME-TIFF, or has axes other than channel, z, y, x (and RGB
        samples).
    ParameterError
        The image would not fit the memory budget (``SMLMSPINE_MEMORY_BUDGET_GB``).
    """
    path = Path(os.fspath(path))
    if not _is_ome_tiff(path):
        raise FormatError("not an OME-TIFF (no OME-XML); open it with napari's own reader",
                          path=path)
    if _has_physical_size(path):
        from dataclasses import replace

        import tifffile

        from ..voxel import read_image

        image = read_image(path)
        if "c" in image.axes and not any(image.channel_names):  # not smlmspine's file
            with tifffile.TiffFile(path) as tif:
                names = tuple(ch.get("Name", "") for ch in _channels(tif.ome_metadata or ""))
            image = replace(image, channel_names=names)
        return voxel_image_layers(image, name=path.name, source=str(path))
    return voxel_image_layers(_read_pixels(path), name=path.name, units=None,
                              source=str(path))


def voxel_image_layers(image, *, name: str = "image", units: str | None = "nm",
                       source: str | None = None) -> list[tuple]:
    """A :class:`smlmspine.voxel.VoxelImage` as napari Image (or Labels) layers.

    ``scale`` is the voxel size and ``translate`` the origin (the centre of voxel 0:
    napari also puts pixel centres at integer indices), in the image's ``z, y, x``
    order. A channel axis gives one layer per channel, named after the channel. A label
    image (``value_unit == "label"``, or integers of 32 or 64 bits) is a Labels layer;
    an RGB image an RGB Image layer.

    Parameters
    ----------
    image : VoxelImage
        E.g. from :func:`smlmspine.voxel.render` or :func:`smlmspine.voxel.read_image`.
    name : str
        Layer name (a channel's name is appended in brackets).
    units : str or None
        Unit of the voxel size and origin (``"nm"``); None: unknown (no ``units`` set).
    source : str, optional
        The file the image came from (recorded in the metadata).

    Returns
    -------
    list of (data, kwargs, layer_type)
        One ``"image"`` or ``"labels"`` layer per channel.

    Examples
    --------
    >>> import numpy as np
    >>> from smlmspine.voxel import VoxelImage
    >>> img = VoxelImage(np.zeros((2, 4, 5), np.float32), ("z", "y", "x"), (50.0, 10.0, 10.0),
    ...                  (25.0, 5.0, 5.0))
    >>> [(data, kw, kind)] = voxel_image_layers(img, name="render")
    >>> kind, kw["scale"], kw["translate"], kw["units"]
    ('image', (50.0, 10.0, 10.0), (25.0, 5.0, 5.0), ('nm', 'nm', 'nm'))
    """
    axes = tuple(image.axes)
    spatial = tuple(a for a in axes if a in ("z", "y", "x"))
    scale = tuple(float(v) for v in image.voxel_nm)
    translate = tuple(float(v) for v in image.origin_nm)
    data = image.data
    rgb = axes[-1] == "rgb"
    dtype = np.dtype(data.dtype)
    labels = not rgb and (image.value_unit == "label" or
                          (dtype.kind in "iu" and dtype.itemsize >= 4))
    if "c" in axes:
        c = axes.index("c")
        planes = [np.take(data, i, axis=c) for i in range(data.shape[c])]
    else:
        planes = [data]
    names = tuple(image.channel_names)
    layers = []
    for i, plane in enumerate(planes):
        label = names[i] if i < len(names) and names[i] else (
            f"channel {i}" if len(planes) > 1 else "")
        kwargs = {
            "name": f"{name} [{label}]" if label else name,
            "scale": scale,
            "translate": translate,
            "axis_labels": spatial,
            "metadata": {"smlmspine": {"source": source, "axes": axes,
                                       "voxel": dict(zip(spatial, scale)),
                                       "origin": dict(zip(spatial, translate)),
                                       "units": units, "value_unit": image.value_unit}},
        }
        if units is not None:
            kwargs["units"] = (units,) * len(spatial)
        if rgb:
            kwargs["rgb"] = True
        elif not labels:
            kwargs["colormap"] = "gray" if len(planes) == 1 else \
                ("magenta", "green", "cyan", "yellow")[i % 4]
            kwargs["blending"] = "additive"
        layers.append((plane, kwargs, "labels" if labels else "image"))
    return layers


def _has_physical_size(path: Path) -> bool:
    """Whether the OME-XML gives a physical size for every spatial axis of the image."""
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata or ""
        axes = tif.series[0].axes.upper()
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise FormatError(f"the OME-XML cannot be parsed: {exc}", path=path) from exc
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return False
    return all(pixels.get(f"PhysicalSize{a}") is not None for a in "ZYX" if a in axes)


def _read_pixels(path: Path):
    """An OME-TIFF without physical sizes as a VoxelImage in pixels (voxel 1, origin 0)."""
    import tifffile

    from .._validate import check_memory
    from ..voxel import VoxelImage

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes.upper()
        unknown = sorted(set(axes) - set("CZYXS"))
        if unknown or "Y" not in axes or "X" not in axes:
            raise FormatError(f"image axes must be among C, Z, Y, X (S: RGB samples); "
                              f"found {series.axes!r}", path=path)
        check_memory(float(np.prod(series.shape, dtype=float)) * np.dtype(series.dtype).itemsize,
                     what=f"reading {path.name}")
        data = series.asarray()
        names = tuple(ch.get("Name", "") for ch in _channels(tif.ome_metadata or ""))
    mapped = [{"C": "c", "Z": "z", "Y": "y", "X": "x", "S": "rgb"}[a] for a in axes]
    order = [a for a in ("c", "z", "y", "x", "rgb") if a in mapped]
    data = np.transpose(data, [mapped.index(a) for a in order])
    n = sum(a in ("z", "y", "x") for a in order)
    return VoxelImage(data=data, axes=tuple(order), voxel_nm=(1.0,) * n, origin_nm=(0.0,) * n,
                      channel_names=names if "c" in order else ())


def _channels(xml: str) -> list[dict]:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    return [dict(el.attrib) for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Channel"]


_READ_KIND.update(localizations=localization_layers, meshes=mesh_layers, image=image_layers)
