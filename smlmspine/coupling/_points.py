"""Input handling shared by the coupling statistics: tables or arrays to (N, d) nm arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, SchemaError

__all__ = ["as_points", "common_ndim"]


def as_points(obj, *, name: str = "points", ndim: int | None = None) -> np.ndarray:
    """Coordinates ``(N, 2|3)`` float64 in nm from a table or an array.

    Tables: canonical ``x, y, (z)`` columns, or cluster-statistics ``centroid_x_nm,
    centroid_y_nm, (centroid_z_nm)`` (a ``centroid_z_nm`` that is all NaN means 2D).

    Examples
    --------
    >>> as_points(pa.table({"centroid_x_nm": [1.0], "centroid_y_nm": [2.0],
    ...                     "centroid_z_nm": [float("nan")]})).tolist()
    [[1.0, 2.0]]
    """
    if isinstance(obj, pa.Table):
        names = obj.column_names
        if "x" in names and "y" in names:
            cols = ["x", "y"] + (["z"] if "z" in names else [])
        elif "centroid_x_nm" in names and "centroid_y_nm" in names:
            cols = ["centroid_x_nm", "centroid_y_nm"]
            if "centroid_z_nm" in names:
                z = obj.column("centroid_z_nm").to_numpy(zero_copy_only=False).astype(float)
                if z.size == 0 or np.any(np.isfinite(z)):
                    cols.append("centroid_z_nm")
        else:
            raise SchemaError(f"{name}: expected columns x, y(, z) or centroid_x_nm, centroid_y_nm"
                              f"(, centroid_z_nm); found {names}")
        arr = np.column_stack([obj.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
                               for c in cols]) if obj.num_rows else np.empty((0, len(cols)))
    else:
        arr = np.asarray(obj, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ParameterError(f"'{name}' must have shape (N, 2 or 3), got {arr.shape}")
    if ndim is not None and arr.shape[1] != ndim:
        if ndim == 2 and arr.shape[1] == 3:
            arr = arr[:, :2]
        else:
            raise ParameterError(f"'{name}' is {arr.shape[1]}D, expected {ndim}D")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"'{name}' holds {int((~np.isfinite(arr)).any(axis=1).sum())} "
                             "point(s) with non-finite coordinates")
    return np.ascontiguousarray(arr)


def common_ndim(a, b, ndim=None):
    """The dimensionality both populations share (3 only when both are 3D)."""
    if ndim is not None:
        if ndim not in (2, 3):
            raise ParameterError(f"ndim must be 2 or 3, got {ndim}")
        return ndim
    return min(a.shape[1], b.shape[1])
