"""The image result of the voxel stage: an array with its physical grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["VoxelImage"]


@dataclass(frozen=True)
class VoxelImage:
    """An image on a physical grid (nm).

    Attributes
    ----------
    data : array
        numpy array (or a dask/zarr array for large images) with axes ``axes``.
    axes : tuple of str
        Axis names, spatial axes in ``z, y, x`` order with an optional leading ``"c"``
        (channels): ``("y", "x")``, ``("z", "y", "x")``, ``("c", "y", "x")``,
        ``("c", "z", "y", "x")``; an RGB image ends in ``"rgb"``.
    voxel_nm : tuple of float
        Voxel size per spatial axis (same order as the spatial axes), nm.
    origin_nm : tuple of float
        Physical position of the centre of voxel index 0 per spatial axis (the first
        voxel edge plus half a voxel), nm.
    channel_names : tuple of str
        One name per ``"c"`` index (empty without a channel axis).
    value_unit : str
        What a value means (``"localizations per voxel"``, ``"label"``, ...).
    metadata : dict
        Provenance and any further description (JSON-serialisable).
    """

    data: object
    axes: tuple
    voxel_nm: tuple
    origin_nm: tuple
    channel_names: tuple = ()
    value_unit: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def spatial_axes(self) -> tuple:
        """The spatial axis names (``z``, ``y``, ``x`` present), in array order."""
        return tuple(a for a in self.axes if a in ("z", "y", "x"))

    @property
    def spatial_shape(self) -> tuple:
        """The array's extent along the spatial axes."""
        shape = np.shape(self.data)
        return tuple(n for a, n in zip(self.axes, shape) if a in ("z", "y", "x"))

    def index_of(self, coords_nm) -> np.ndarray:
        """Voxel indices holding points (pixel-centre convention).

        Parameters
        ----------
        coords_nm : array_like, shape (N, D)
            Coordinates in nm, in the spatial-axis order of the image (``z, y, x``).

        Returns
        -------
        numpy.ndarray of int64, shape (N, D)
            Voxel indices; points outside the image are not clipped.
        """
        c = np.asarray(coords_nm, float)
        o = np.asarray(self.origin_nm, float)
        v = np.asarray(self.voxel_nm, float)
        return np.floor((c - o) / v + 0.5).astype(np.int64)
