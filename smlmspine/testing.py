"""Public test helpers: analytic shapes with known measurements.

Examples
--------
>>> m = analytic_spine(50.0, 500.0, 300.0)
>>> m.is_watertight
True
>>> round(analytic_spine_volume_nm3(50.0, 500.0, 300.0) / 1e9, 4)
0.117
"""

from __future__ import annotations

import numpy as np

__all__ = ["analytic_spine", "analytic_spine_volume_nm3"]


def analytic_spine(r_nm: float = 50.0, L_nm: float = 500.0, R_nm: float = 300.0, *,
                   bend_radius_nm: float | None = None, sections: int = 128):
    """A spine mesh (nm): cylinder neck (radius ``r_nm``, length ``L_nm``) from z=0 up,
    capped by a sphere head of radius ``R_nm``; a surface of revolution, watertight.

    With ``bend_radius_nm`` the neck is bent along a circular arc of that radius (in the
    x-z plane) and the head follows rigidly, so diameters and volume are unchanged.

    Parameters
    ----------
    r_nm : float
        Neck radius in nm (smaller than ``R_nm``).
    L_nm : float
        Neck length in nm, from the base at z = 0 to the junction with the head.
    R_nm : float
        Head (sphere) radius in nm; the head centre is at
        ``z = L_nm + sqrt(R_nm**2 - r_nm**2)``.
    bend_radius_nm : float, optional
        Radius in nm of the arc the neck follows; ``None`` (default) keeps it straight
        along +z.
    sections : int
        Angular sections of the surface of revolution (more: closer to the analytic
        volume, :func:`analytic_spine_volume_nm3`).

    Returns
    -------
    trimesh.Trimesh
        Watertight mesh, vertices in nm, base disc at z = 0 centred on the z axis.

    Examples
    --------
    >>> m = analytic_spine(50.0, 500.0, 300.0, bend_radius_nm=1000.0)
    >>> bool(m.is_watertight)
    True
    >>> bool(abs(m.volume / analytic_spine_volume_nm3(50.0, 500.0, 300.0) - 1) < 0.01)
    True
    """
    import trimesh

    zc = L_nm + np.sqrt(R_nm ** 2 - r_nm ** 2)
    th0 = np.arcsin(r_nm / R_nm)
    ang = np.linspace(th0, np.pi, 240)
    arc = np.stack([R_nm * np.sin(ang), zc - R_nm * np.cos(ang)], axis=1)
    neck = np.c_[np.full(40, r_nm), np.linspace(0, L_nm, 40)][1:]
    prof = np.vstack([[0.0, 0.0], [r_nm, 0.0], neck, arc[1:]])
    prof[-1, 0] = 0.0
    mesh = trimesh.creation.revolve(prof, sections=sections)
    if bend_radius_nm:
        mesh = _bend(mesh, L_nm, bend_radius_nm)
    return mesh


def analytic_spine_volume_nm3(r_nm: float, L_nm: float, R_nm: float) -> float:
    """Exact volume of :func:`analytic_spine` (nm^3): cylinder + sphere minus the cap
    of the sphere below the neck junction.

    Parameters
    ----------
    r_nm : float
        Neck radius in nm.
    L_nm : float
        Neck length in nm.
    R_nm : float
        Head radius in nm (at least ``r_nm``).

    Returns
    -------
    float
        Volume in nm^3.

    Examples
    --------
    >>> import numpy as np
    >>> v = analytic_spine_volume_nm3(0.0, 0.0, 300.0)   # no neck: a sphere
    >>> bool(np.isclose(v, 4 / 3 * np.pi * 300.0 ** 3))
    True
    """
    h = R_nm - np.sqrt(R_nm ** 2 - r_nm ** 2)
    return float(np.pi * r_nm ** 2 * L_nm + 4 / 3 * np.pi * R_nm ** 3 - np.pi * h ** 2 * (3 * R_nm - h) / 3)


def _bend(mesh, L, Rb):
    import trimesh

    v = np.asarray(mesh.vertices, float)
    x, y, z = v.T
    out = np.empty_like(v)
    neck = z <= L
    th = z[neck] / Rb
    out[neck] = np.c_[Rb - (Rb - x[neck]) * np.cos(th), y[neck], (Rb - x[neck]) * np.sin(th)]
    te = L / Rb
    end = np.array([Rb - Rb * np.cos(te), 0.0, Rb * np.sin(te)])
    rot = np.array([[np.cos(te), 0, np.sin(te)], [0, 1, 0], [-np.sin(te), 0, np.cos(te)]])
    out[~neck] = end + np.c_[x[~neck], y[~neck], z[~neck] - L] @ rot.T
    return trimesh.Trimesh(out, mesh.faces, process=False)
