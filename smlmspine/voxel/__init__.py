"""The voxel bridge: localizations and meshes to images, image labels back onto points.

The stage between :mod:`smlmspine.morphology` and :mod:`smlmspine.coupling`:

- :func:`render`: a localization table as a 2D/3D image (histogram, or each
  localization's Gaussian integrated over the voxels);
- :func:`write_image` / :func:`read_image`: OME-TIFF and OME-Zarr with voxel size and
  origin;
- :func:`mesh_to_labels`: spine (and dendrite) meshes as a label volume;
- :func:`labels_to_points`: an image segmentation looked up at every localization;
- :func:`spine_grids`: each spine in a canonical frame as a fixed-size voxel grid and
  a surface point cloud, for classifiers.

Images are :class:`VoxelImage`: spatial axes in ``z, y, x`` order (OME, napari), voxel
size and origin in nm, where the origin is the centre of voxel 0 (its first edge plus
half a voxel).
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "VoxelImage": "._image:VoxelImage",
    "mesh_to_labels": "._labels:mesh_to_labels",
    "mesh_fraction": "._labels:mesh_fraction",
    "labels_to_points": "._labels:labels_to_points",
    "load_meshes": "._labels:load_meshes",
    "spine_grids": "._grids:spine_grids",
    "SpineGrids": "._grids:SpineGrids",
    "write_spine_grids": "._grids:write_spine_grids",
    "read_spine_grids": "._grids:read_spine_grids",
    "canonical_frame": "._grids:canonical_frame",
    "SPINE_GRID_COLUMNS": "._grids:SPINE_GRID_COLUMNS",
    "GRID_CHANNELS": "._grids:GRID_CHANNELS",
    "render": "._render:render",
    "write_overview": "._render:write_overview",
    "write_image": "._io:write_image",
    "read_image": "._io:read_image",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
