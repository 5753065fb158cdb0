"""napari plugin: open localization files, meshes and OME-TIFF images as layers.

Declared by the npe2 manifest ``smlmspine/napari/napari.yaml`` (entry point
``napari.manifest``; install with ``pip install smlmspine[napari]``). The reader
functions return napari *layer data tuples* ``(data, kwargs, layer_type)`` and import
nothing from napari, so they also work without it:

- :func:`localization_layers`: any localization format :func:`smlmspine.io.read`
  reads -> a Points layer (``z, y, x`` in nm, the columns as features, coloured by z);
  above :data:`MAX_POINTS` a deterministic subsample plus a density image;
- :func:`mesh_layers`: a mesh file or a folder of them -> Surface layers;
- :func:`image_layers`: an OME-TIFF -> Image (or Labels) layers with the physical
  scale and origin in nm (:func:`voxel_image_layers` for an image in memory);
- :func:`get_reader`: the plugin's reader command, dispatching on the path;
- :func:`simulated_dendrite`: the plugin's sample data (File > Open Sample).

In napari, open with ``viewer.open(path, plugin="smlmspine")`` (napari's own readers
also claim ``.csv``, ``.h5``, ``.npy`` and ``.tif``). See ``docs/napari.md``.
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "get_reader": "._reader:get_reader",
    "localization_layers": "._reader:localization_layers",
    "points_layers": "._reader:points_layers",
    "mesh_layers": "._reader:mesh_layers",
    "surface_layer": "._reader:surface_layer",
    "image_layers": "._reader:image_layers",
    "voxel_image_layers": "._reader:voxel_image_layers",
    "simulated_dendrite": "._sample:simulated_dendrite",
    "MAX_POINTS": "._reader:MAX_POINTS",
    "SUBSAMPLE_SEED": "._reader:SUBSAMPLE_SEED",
    "MESH_EXTENSIONS": "._reader:MESH_EXTENSIONS",
    "IMAGE_EXTENSIONS": "._reader:IMAGE_EXTENSIONS",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
