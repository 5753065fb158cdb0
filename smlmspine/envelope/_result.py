"""The result of an envelope reconstruction (its own module, so that every envelope
module can build one without importing the reconstruction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Envelope"]


@dataclass(frozen=True, eq=False)
class Envelope:
    """A reconstructed closed surface and how it was made.

    Attributes
    ----------
    mesh : trimesh.Trimesh
        Triangle mesh, coordinates in nm, outward normals.
    is_watertight : bool
        True when the mesh is closed, two-manifold, consistently oriented, one body of
        positive volume and free of self-intersections (exact test and Open3D's, see
        :func:`~smlmspine.envelope.validate_envelope`).
    reason : str
        Why ``is_watertight`` is False ("" otherwise).
    method, label : str
        Reconstruction method and labelling ("membrane" or "volume").
    alpha_nm : float
        Alpha radius of the underlying alpha shape (NaN when none was used).
    held_fraction : float
        Fraction of the input points that are vertices of (or inside) the alpha solid.
    n_points : int
        Number of input points.
    parameters : dict
        Every parameter used (JSON-compatible).
    note : str
        Quality remarks that do not invalidate the mesh ("" when none).
    """

    mesh: Any
    is_watertight: bool
    reason: str
    method: str
    label: str
    alpha_nm: float
    held_fraction: float
    n_points: int
    parameters: dict = field(default_factory=dict)
    note: str = ""

    @property
    def volume_nm3(self) -> float:
        """Enclosed volume in nm^3 (NaN when the mesh is not watertight)."""
        return float(self.mesh.volume) if self.is_watertight else float("nan")

    @property
    def area_nm2(self) -> float:
        """Surface area in nm^2."""
        return float(self.mesh.area)

    def to_dict(self) -> dict:
        """Scalars of the result (no mesh), JSON-compatible.

        Returns
        -------
        dict
            ``method``, ``label``, ``is_watertight``, ``reason``, ``alpha_nm`` (nm),
            ``held_fraction``, ``n_points``, ``n_vertices`` and ``n_faces`` of the mesh,
            ``volume_nm3`` (NaN when not watertight), ``area_nm2``, a copy of
            ``parameters`` and ``note``.

        Examples
        --------
        >>> import trimesh
        >>> env = Envelope(mesh=trimesh.creation.box((100.0, 100.0, 100.0)),
        ...                is_watertight=True, reason="", method="alpha", label="volume",
        ...                alpha_nm=40.0, held_fraction=1.0, n_points=8)
        >>> d = env.to_dict()
        >>> d["n_faces"], round(d["volume_nm3"]), round(d["area_nm2"])
        (12, 1000000, 60000)
        """
        return {"method": self.method, "label": self.label, "is_watertight": self.is_watertight,
                "reason": self.reason, "alpha_nm": self.alpha_nm,
                "held_fraction": self.held_fraction, "n_points": self.n_points,
                "n_vertices": int(len(self.mesh.vertices)), "n_faces": int(len(self.mesh.faces)),
                "volume_nm3": self.volume_nm3, "area_nm2": self.area_nm2,
                "parameters": dict(self.parameters), "note": self.note}
