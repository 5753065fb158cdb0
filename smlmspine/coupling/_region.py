"""Observation regions for coupling statistics: box, polygon, convex hull, mask.

A region knows its dimensionality, its measure (area in nm^2 or volume in nm^3), how to
test membership, how to draw uniform (CSR) points, the distance of a point to its edge
(a lower bound is enough: it only decides when the edge correction can be skipped), and
Ripley's isotropic edge-correction fraction: the fraction of the circle (2D) or sphere
surface (3D) of radius ``r`` around a point that lies inside the region.

- :class:`BoxRegion` and :class:`ConvexRegion` (convex polygon / polytope as half-spaces,
  e.g. a convex hull): exact arcs in 2D; in 3D an integral over slices with exact arcs
  (see :mod:`smlmspine.coupling._kernels`).
- :class:`MaskRegion`: a boolean pixel/voxel mask with its pixel size in nm and origin.
  Pixel ``mask[iy, ix]`` (``mask[iz, iy, ix]``) covers ``origin + index * size`` to
  ``origin + (index + 1) * size``. The fraction is a quadrature over the circle/sphere
  with a sampling step of at most a quarter pixel along the circle (2D) or half a voxel
  on the sphere (3D, Fibonacci lattice), so it converges with the mask, not with a fixed
  grid in nm. The membership test per sample is exact (the mask is a union of squares).
- :class:`PolygonRegion`: any simple polygon (2D), via shapely; a convex one becomes a
  :class:`ConvexRegion`, others use the circle quadrature of the mask region with an
  exact point-in-polygon test.

:func:`make_region` builds one from a specification (``"bbox"``, ``"hull"``, a
``(lo, hi)`` pair, a mask, a polygon) and the data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import ParameterError, QualityWarning

__all__ = ["Region", "BoxRegion", "ConvexRegion", "MaskRegion", "PolygonRegion",
           "make_region"]


class Region:
    """Base class of observation regions (see the module docstring).

    Subclasses define :attr:`measure`, :attr:`bounds_nm`, :meth:`contains`,
    :meth:`edge_distance` and :meth:`fraction_inside`; sampling and edge weights
    follow from them.

    Attributes
    ----------
    ndim : {2, 3}
        Dimensionality.
    kind : str
        ``"box"``, ``"convex"``, ``"hull"``, ``"mask"`` or ``"polygon"`` (written to
        ``summary.json``).
    """

    ndim: int = 2
    kind: str = "region"

    @property
    def measure(self) -> float:
        """Area (nm^2, 2D) or volume (nm^3, 3D) of the region."""
        raise NotImplementedError

    @property
    def bounds_nm(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners ``(d,)`` of the bounding box, nm."""
        raise NotImplementedError

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which points lie inside the region.

        Parameters
        ----------
        points : (N, d) array_like
            Coordinates in nm, ``d`` = :attr:`ndim`.

        Returns
        -------
        (N,) ndarray of bool
            True for the points inside (on the edge counts as inside).
        """
        raise NotImplementedError

    def edge_distance(self, points: np.ndarray) -> np.ndarray:
        """Lower bound of each point's distance to the region's edge.

        A lower bound is enough: it only decides when the edge correction can be skipped
        (a point farther than ``r`` from the edge has its whole circle/sphere inside).

        Parameters
        ----------
        points : (N, d) array_like
            Coordinates in nm.

        Returns
        -------
        (N,) ndarray of float
            Distance in nm (0 for points outside a mask region).
        """
        raise NotImplementedError

    def fraction_inside(self, centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Fraction of each circle (2D) or sphere surface (3D) that lies inside the region.

        Ripley's isotropic edge-correction fraction.

        Parameters
        ----------
        centers : (N, d) array_like
            Centres in nm.
        radii : (N,) array_like
            Radii in nm, one per centre.

        Returns
        -------
        (N,) ndarray of float
            Fraction in [0, 1] of the circumference (surface) of circle (sphere) ``i``
            inside the region.
        """
        raise NotImplementedError

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Points uniformly distributed in the region (complete spatial randomness).

        Parameters
        ----------
        n : int
            Number of points.
        rng : int or numpy.random.Generator, optional
            Seed or generator (``numpy.random.default_rng(rng)``).

        Returns
        -------
        (n, d) ndarray of float
            Coordinates in nm.

        Examples
        --------
        >>> pts = BoxRegion([0, 0], [100, 50]).sample(1000, rng=0)
        >>> pts.shape, bool(pts.min() >= 0), bool(pts[:, 1].max() <= 50)
        ((1000, 2), True, True)
        """
        rng = np.random.default_rng(rng)
        lo, hi = self.bounds_nm
        out = np.empty((0, self.ndim))
        frac = max(self.measure / float(np.prod(hi - lo)), 1e-6)
        while out.shape[0] < n:
            m = int((n - out.shape[0]) / frac * 1.2) + 16
            pts = lo + rng.random((m, self.ndim)) * (hi - lo)
            out = np.vstack([out, pts[self.contains(pts)]])
        return out[:n]

    def edge_weights(self, centers: np.ndarray, radii: np.ndarray, *,
                     max_weight: float = 20.0) -> np.ndarray:
        """Isotropic edge-correction weights ``1 / fraction_inside`` (capped).

        Points farther than the radius from the edge get weight 1 without evaluation.

        Parameters
        ----------
        centers : (N, d) array_like
            Centres in nm.
        radii : (N,) array_like
            Radii in nm (pair distances).
        max_weight : float
            Largest weight given (a fraction below ``1 / max_weight`` is raised to it).

        Returns
        -------
        (N,) ndarray of float
            Weights >= 1.

        Examples
        --------
        >>> BoxRegion([0, 0], [1000, 1000]).edge_weights([[0, 500], [500, 500]],
        ...                                              [100, 100]).round(6).tolist()
        [2.0, 1.0]
        """
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, self.ndim)
        radii = np.asarray(radii, dtype=np.float64).reshape(-1)
        w = np.ones(radii.shape[0])
        if radii.size == 0:
            return w
        near = self.edge_distance(centers) < radii
        if np.any(near):
            f = self.fraction_inside(centers[near], radii[near])
            w[near] = 1.0 / np.maximum(f, 1.0 / max_weight)
        return w

    def to_dict(self) -> dict:
        """A JSON-ready description of the region (written to ``summary.json``).

        Returns
        -------
        dict
            ``kind``, ``ndim``, ``measure`` (nm^2 or nm^3), ``bounds_lo_nm``,
            ``bounds_hi_nm`` (lists, nm), and per kind: ``n_faces`` (convex),
            ``voxel_size_nm``, ``origin_nm``, ``shape`` (mask), ``vertices_nm`` (polygon).
        """
        lo, hi = self.bounds_nm
        return {"kind": self.kind, "ndim": self.ndim, "measure": float(self.measure),
                "bounds_lo_nm": lo.tolist(), "bounds_hi_nm": hi.tolist()}


class ConvexRegion(Region):
    """Convex polygon (2D) or polytope (3D) ``{p : A p <= b}`` with unit normals.

    Parameters
    ----------
    A : (M, d) array
        Outward normals of the faces (normalised here).
    b : (M,) array
        Offsets, nm.
    measure : float
        Area (nm^2) or volume (nm^3).
    lo_nm, hi_nm : (d,) arrays
        Bounding box, nm.
    """

    kind = "convex"

    def __init__(self, A, b, *, measure, lo_nm, hi_nm):
        A = np.asarray(A, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        norms = np.linalg.norm(A, axis=1)
        self.A = np.ascontiguousarray(A / norms[:, None])
        self.b = np.ascontiguousarray(b / norms)
        self.ndim = A.shape[1]
        self._measure = float(measure)
        self._lo = np.asarray(lo_nm, dtype=np.float64)
        self._hi = np.asarray(hi_nm, dtype=np.float64)

    @property
    def measure(self):
        return self._measure

    @property
    def bounds_nm(self):
        return self._lo.copy(), self._hi.copy()

    def contains(self, points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, self.ndim)
        return np.all(points @ self.A.T <= self.b + 1e-9, axis=1)

    def edge_distance(self, points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, self.ndim)
        if points.shape[0] == 0:
            return np.empty(0)
        return np.min(self.b[None, :] - points @ self.A.T, axis=1)

    def fraction_inside(self, centers, radii):
        from ._kernels import circle_fraction_halfspaces

        centers = np.ascontiguousarray(centers, dtype=np.float64).reshape(-1, self.ndim)
        radii = np.ascontiguousarray(radii, dtype=np.float64).reshape(-1)
        return circle_fraction_halfspaces(centers, radii, self.A, self.b, 4)

    def to_dict(self):
        out = super().to_dict()
        out["n_faces"] = int(self.A.shape[0])
        return out


class BoxRegion(ConvexRegion):
    """Axis-aligned rectangle (2D) or box (3D) from ``lo_nm`` to ``hi_nm``.

    Parameters
    ----------
    lo_nm, hi_nm : (d,) array_like
        Lower and upper corners in nm, ``d`` = 2 or 3; ``hi_nm > lo_nm`` on every axis.

    Raises
    ------
    ParameterError
        Corners of different or unsupported length, not finite, or ``hi_nm <= lo_nm``.

    Examples
    --------
    >>> box = BoxRegion([0, 0], [1000, 1000])
    >>> box.measure
    1000000.0
    >>> box.fraction_inside([[0, 500], [0, 0]], [100, 100]).round(6).tolist()
    [0.5, 0.25]
    """

    kind = "box"

    def __init__(self, lo_nm, hi_nm):
        lo = np.asarray(lo_nm, dtype=np.float64).reshape(-1)
        hi = np.asarray(hi_nm, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape or lo.size not in (2, 3):
            raise ParameterError(f"box corners must both have 2 or 3 values, got {lo.size} and {hi.size}")
        if np.any(hi <= lo) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ParameterError(f"box upper corner {hi.tolist()} must exceed lower corner {lo.tolist()}")
        d = lo.size
        A = np.vstack([-np.eye(d), np.eye(d)])
        b = np.concatenate([-lo, hi])
        super().__init__(A, b, measure=float(np.prod(hi - lo)), lo_nm=lo, hi_nm=hi)

    @property
    def size_nm(self) -> np.ndarray:
        """Edge lengths ``(d,)`` of the box, nm."""
        return self._hi - self._lo

    def sample(self, n, rng=None):
        rng = np.random.default_rng(rng)
        return self._lo + rng.random((int(n), self.ndim)) * (self._hi - self._lo)


class MaskRegion(Region):
    """Region given by a boolean mask with its pixel/voxel size and origin in nm.

    Parameters
    ----------
    mask : (ny, nx) or (nz, ny, nx) array_like
        Inside where true (converted to bool).
    voxel_size_nm : float or sequence
        Pixel (voxel) size, one value or one per axis in (x, y[, z]) order.
    origin_nm : sequence, optional
        Coordinates (x, y[, z]) of the outer corner of pixel 0, default 0.

    Raises
    ------
    ParameterError
        A mask that is not 2D/3D or has no true pixel, or a voxel size of the wrong
        length or not positive.

    Examples
    --------
    >>> m = np.ones((10, 10), bool)
    >>> reg = MaskRegion(m, voxel_size_nm=100.0)
    >>> reg.measure
    1000000.0
    >>> round(float(reg.fraction_inside([[0.0, 500.0]], [100.0])[0]), 3)
    0.5
    """

    kind = "mask"

    def __init__(self, mask, *, voxel_size_nm, origin_nm=None):
        mask = np.asarray(mask)
        if mask.ndim not in (2, 3):
            raise ParameterError(f"mask must be a 2D or 3D array, got shape {mask.shape}")
        self.mask = np.ascontiguousarray(mask.astype(bool))
        if not self.mask.any():
            raise ParameterError("mask region is empty (no True pixel)")
        self.ndim = mask.ndim
        vs = np.asarray(voxel_size_nm, dtype=np.float64).reshape(-1)
        if vs.size == 1:
            vs = np.repeat(vs, self.ndim)
        if vs.size != self.ndim:
            raise ParameterError(f"voxel_size_nm needs 1 or {self.ndim} values (x, y[, z]) for a "
                                 f"{self.ndim}D mask, got {vs.tolist()}")
        if np.any(vs <= 0):
            raise ParameterError(f"voxel_size_nm must be positive, got {vs.tolist()}")
        self.voxel_size_nm = vs  # x, y, (z)
        self.origin_nm = (np.zeros(self.ndim) if origin_nm is None
                          else np.asarray(origin_nm, dtype=np.float64).reshape(self.ndim))
        self._shape_xyz = np.array(mask.shape[::-1])
        from scipy.ndimage import distance_transform_edt

        padded = np.pad(self.mask, 1, constant_values=False)
        edt = distance_transform_edt(padded, sampling=self.voxel_size_nm[::-1])
        self._edt = edt[tuple(slice(1, -1) for _ in range(self.ndim))]
        self._diag = float(np.linalg.norm(self.voxel_size_nm))

    @property
    def measure(self):
        return float(self.mask.sum()) * float(np.prod(self.voxel_size_nm))

    @property
    def bounds_nm(self):
        lo = self.origin_nm.copy()
        return lo, lo + self._shape_xyz * self.voxel_size_nm

    def _index(self, points):
        idx = np.floor((points - self.origin_nm) / self.voxel_size_nm).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < self._shape_xyz), axis=1)
        return idx, inside

    def contains(self, points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, self.ndim)
        idx, inside = self._index(points)
        out = np.zeros(points.shape[0], bool)
        ii = idx[inside][:, ::-1]
        out[inside] = self.mask[tuple(ii.T)]
        return out

    def edge_distance(self, points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, self.ndim)
        idx, inside = self._index(points)
        out = np.zeros(points.shape[0])
        ii = idx[inside][:, ::-1]
        out[inside] = np.maximum(self._edt[tuple(ii.T)] - self._diag, 0.0)
        return out

    def _directions(self, radius):
        step = float(self.voxel_size_nm.min())
        if self.ndim == 2:
            n = int(np.clip(math.ceil(2 * math.pi * radius / (step / 4)), 64, 8192))
            ang = (np.arange(n) + 0.5) * (2 * math.pi / n)
            return np.column_stack([np.cos(ang), np.sin(ang)])
        n = int(np.clip(math.ceil(4 * math.pi * radius ** 2 / (step / 2) ** 2), 256, 20000))
        k = np.arange(n) + 0.5
        zz = 1 - 2 * k / n
        phi = math.pi * (1 + 5 ** 0.5) * k
        rr = np.sqrt(1 - zz ** 2)
        return np.column_stack([rr * np.cos(phi), rr * np.sin(phi), zz])

    def fraction_inside(self, centers, radii):
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, self.ndim)
        radii = np.asarray(radii, dtype=np.float64).reshape(-1)
        out = np.empty(radii.shape[0])
        order = np.argsort(radii)
        # batches of similar radii share one direction set (sized for the largest)
        s = 0
        while s < order.size:
            r0 = radii[order[s]]
            e = s + 1
            while e < order.size and radii[order[e]] <= max(r0 * 1.05, r0 + 1e-9) and e - s < 512:
                e += 1
            idx = order[s:e]
            rmax = radii[idx].max()
            if rmax <= 0:
                out[idx] = self.contains(centers[idx]).astype(float)
            else:
                dirs = self._directions(rmax)
                pts = centers[idx, None, :] + radii[idx, None, None] * dirs[None, :, :]
                out[idx] = self.contains(pts.reshape(-1, self.ndim)).reshape(idx.size, -1).mean(axis=1)
            s = e
        return out

    def to_dict(self):
        out = super().to_dict()
        out.update(voxel_size_nm=self.voxel_size_nm.tolist(), origin_nm=self.origin_nm.tolist(),
                   shape=list(self.mask.shape))
        return out


class PolygonRegion(Region):
    """A simple polygon (2D), vertices ``(M, 2)`` in nm; holes are not supported.

    Convex polygons use the exact arc computation; others a fine circle quadrature.

    Parameters
    ----------
    vertices_nm : (M, 2) array_like
        Vertices in nm in order around the polygon (M >= 3, not repeated at the end).

    Raises
    ------
    ParameterError
        Not an ``(M >= 3, 2)`` array, or not a valid simple polygon with positive area.

    Examples
    --------
    >>> tri = PolygonRegion([[0, 0], [1000, 0], [0, 1000]])
    >>> tri.measure
    500000.0
    """

    kind = "polygon"

    def __init__(self, vertices_nm):
        from shapely.geometry import Polygon

        v = np.asarray(vertices_nm, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise ParameterError(f"polygon vertices must have shape (M >= 3, 2), got {v.shape}")
        poly = Polygon(v)
        if not poly.is_valid or poly.area <= 0:
            raise ParameterError("polygon is not a valid simple polygon with positive area")
        self.ndim = 2
        self.polygon = poly.buffer(0) if not poly.is_valid else poly
        self.vertices_nm = np.asarray(self.polygon.exterior.coords)[:-1]
        hull = self.polygon.convex_hull
        self.is_convex = abs(hull.area - self.polygon.area) <= 1e-9 * hull.area
        self._convex = _convex_from_points(self.vertices_nm) if self.is_convex else None
        from matplotlib.path import Path as _Path

        self._path = _Path(self.vertices_nm)
        self._boundary = self.polygon.exterior

    @property
    def measure(self):
        return float(self.polygon.area)

    @property
    def bounds_nm(self):
        x0, y0, x1, y1 = self.polygon.bounds
        return np.array([x0, y0]), np.array([x1, y1])

    def contains(self, points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return self._path.contains_points(points)

    def edge_distance(self, points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if self._convex is not None:
            return self._convex.edge_distance(points)
        import shapely

        d = shapely.distance(shapely.points(points), self._boundary)
        return np.asarray(d, dtype=np.float64)

    def fraction_inside(self, centers, radii):
        if self._convex is not None:
            return self._convex.fraction_inside(centers, radii)
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
        radii = np.asarray(radii, dtype=np.float64).reshape(-1)
        out = np.empty(radii.shape[0])
        for i in range(radii.shape[0]):
            n = int(np.clip(math.ceil(2 * math.pi * radii[i] / 0.5), 256, 8192))
            ang = (np.arange(n) + 0.5) * (2 * math.pi / n)
            pts = centers[i] + radii[i] * np.column_stack([np.cos(ang), np.sin(ang)])
            out[i] = self.contains(pts).mean()
        return out

    def to_dict(self):
        out = super().to_dict()
        out["vertices_nm"] = self.vertices_nm.tolist()
        return out


def _convex_from_points(points) -> ConvexRegion:
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    eq = hull.equations  # normal . p + offset <= 0 inside
    A, b = eq[:, :-1], -eq[:, -1]
    lo, hi = points.min(axis=0), points.max(axis=0)
    reg = ConvexRegion(A, b, measure=hull.volume, lo_nm=lo, hi_nm=hi)
    reg.kind = "hull"
    return reg


def make_region(spec, points: np.ndarray, *, voxel_size_nm=None, origin_nm=None,
                margin_nm: float = 0.0, warn: bool = True) -> Region:
    """Build the observation region from a specification and the data.

    Parameters
    ----------
    spec : Region, str, tuple, ndarray or None
        A :class:`Region`; ``"bbox"`` (bounding box of ``points``, default) or ``"hull"``
        (convex hull of ``points``), both with a :class:`~smlmspine.errors.QualityWarning`
        because a region derived from the data is only an estimate (an oversized region
        inflates the coupling index); a ``(lo_nm, hi_nm)`` pair of corners; a boolean
        mask array (needs ``voxel_size_nm``); a path to a TIFF mask (needs
        ``voxel_size_nm``); an ``(M, 2)`` polygon vertex array.
    points : (N, d) array
        All points (both populations), nm.
    voxel_size_nm : float or sequence, optional
        Pixel (voxel) size of a mask, nm, one value or one per axis (x, y[, z]); for a
        TIFF mask, default: the size in its metadata.
    origin_nm : sequence, optional
        Coordinates (x, y[, z]) in nm of the outer corner of pixel 0 of a mask (default 0).
    margin_nm : float
        Margin added around a data-derived bounding box, nm.
    warn : bool
        Warn (:class:`~smlmspine.errors.QualityWarning`) when the region is derived from
        the data (``"bbox"``, ``"hull"``).

    Returns
    -------
    Region
        A region with the dimensionality of ``points``.

    Raises
    ------
    ParameterError
        A specification that cannot be interpreted, a mask without ``voxel_size_nm``, too
        few points for a data-derived region, or a region whose dimensionality differs
        from the points'.
    FormatError
        A TIFF mask that cannot be read (see :func:`read_mask_region`).

    Examples
    --------
    >>> reg = make_region(((0, 0), (200, 100)), np.zeros((1, 2)))
    >>> reg.kind, reg.measure
    ('box', 20000.0)
    """
    points = np.asarray(points, dtype=np.float64)
    d = points.shape[1]
    if spec is None:
        spec = "bbox"
    if isinstance(spec, Region):
        region = spec
    elif isinstance(spec, str) and spec in ("bbox", "hull"):
        if points.shape[0] < d + 1:
            raise ParameterError(f"cannot derive a '{spec}' region from {points.shape[0]} points")
        if warn:
            warnings.warn(f"region derived from the data ({spec}); an oversized region inflates "
                          "the coupling statistics, a mask of the imaged tissue is better",
                          QualityWarning, stacklevel=3)
        if spec == "bbox":
            lo, hi = points.min(axis=0) - margin_nm, points.max(axis=0) + margin_nm
            hi = np.where(hi > lo, hi, lo + 1.0)
            region = BoxRegion(lo, hi)
        else:
            region = _convex_from_points(points)
    elif isinstance(spec, (str,)) or hasattr(spec, "__fspath__"):
        region = read_mask_region(spec, voxel_size_nm=voxel_size_nm, origin_nm=origin_nm)
    elif isinstance(spec, tuple) and len(spec) == 2:
        region = BoxRegion(spec[0], spec[1])
    else:
        arr = np.asarray(spec)
        if arr.dtype == bool:
            if voxel_size_nm is None:
                raise ParameterError("a mask region needs voxel_size_nm")
            region = MaskRegion(arr, voxel_size_nm=voxel_size_nm, origin_nm=origin_nm)
        elif arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 3:
            region = PolygonRegion(arr)
        else:
            raise ParameterError(f"cannot interpret region specification of type {type(spec).__name__} "
                                 f"and shape {getattr(arr, 'shape', None)}; pass 'bbox', 'hull', "
                                 "(lo_nm, hi_nm), a boolean mask with voxel_size_nm, or polygon vertices")
    if region.ndim != d:
        raise ParameterError(f"region is {region.ndim}D but the points are {d}D")
    return region


def read_mask_region(path, *, voxel_size_nm=None, origin_nm=None) -> MaskRegion:
    """Read a binary mask TIFF (nonzero = inside) as a :class:`MaskRegion`.

    The voxel size comes from ``voxel_size_nm`` or, when absent, from an OME
    ``PhysicalSizeX`` (``PhysicalSizeZ``) tag in nm or um; without either it is refused.

    Parameters
    ----------
    path : str or os.PathLike
        A 2D or 3D TIFF (singleton axes are dropped); nonzero pixels are inside.
    voxel_size_nm : float or sequence, optional
        Pixel (voxel) size in nm, one value or one per axis (x, y[, z]); overrides the
        file's metadata.
    origin_nm : sequence, optional
        Coordinates (x, y[, z]) in nm of the outer corner of pixel 0 (default 0).

    Returns
    -------
    MaskRegion

    Raises
    ------
    FormatError
        A missing or unreadable file, an image that is not 2D/3D, or no pixel size (none
        given and none in the file), or a pixel size with the wrong number of values.
    """
    from pathlib import Path

    import tifffile

    from ..errors import FormatError

    path = Path(path)
    if not path.exists():
        raise FormatError("mask file does not exist", path=path)
    try:
        with tifffile.TiffFile(path) as tif:
            arr = tif.asarray()
            size = voxel_size_nm if voxel_size_nm is not None else _tiff_voxel_size_nm(tif)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise FormatError(f"cannot read a TIFF mask: {exc}", path=path) from exc
    arr = np.squeeze(arr)
    if arr.ndim not in (2, 3):
        raise FormatError(f"mask must be a 2D or 3D image, found shape {arr.shape}", path=path)
    if size is None:
        raise FormatError("the mask has no pixel size; pass voxel_size_nm (--voxel-size-nm)",
                          path=path)
    if np.size(size) not in (1, arr.ndim):
        raise FormatError(f"the mask is {arr.ndim}D but its pixel size has {np.size(size)} values "
                          f"({size}); pass voxel_size_nm (--voxel-size-nm)", path=path)
    return MaskRegion(arr != 0, voxel_size_nm=size, origin_nm=origin_nm)


def _tiff_voxel_size_nm(tif):
    try:
        ome = tif.ome_metadata
        if ome:
            import re

            sx = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', ome)
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome)
            if sx:
                factor = {"nm": 1.0, "µm": 1e3, "um": 1e3}.get(unit.group(1) if unit else "µm")
                if factor:
                    v = float(sx.group(1)) * factor
                    sz = re.search(r'PhysicalSizeZ="([0-9.eE+-]+)"', ome)
                    return [v, v] + ([float(sz.group(1)) * factor] if sz else [])
    except Exception:  # noqa: BLE001 - metadata is optional
        pass
    return None
