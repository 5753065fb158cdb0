"""napari sample data: a simulated dendrite with its ground-truth meshes."""

from __future__ import annotations

from ._reader import SPINE_COLORMAPS, points_layers, surface_layer

__all__ = ["simulated_dendrite"]


def simulated_dendrite(*, n_spines: int = 4, rng: int = 1) -> list[tuple]:
    """A simulated 3D STORM dendrite as napari layers (File > Open Sample in napari).

    :func:`smlmspine.simulate.dendrite` (membrane label, default acquisition) with
    ``n_spines`` spines on a 4 um shaft: the localizations as a Points layer (see
    :func:`~smlmspine.napari.points_layers`), the true surface of the whole fragment
    (grey, translucent) and one Surface per true spine mesh, all in nm.

    Parameters
    ----------
    n_spines : int
        Number of spines.
    rng : int
        Simulation seed (the same seed gives the same layers).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``[points, fragment surface, spine surfaces by spine_id...]``.

    Examples
    --------
    >>> layers = simulated_dendrite(n_spines=1, rng=2)
    >>> [kind for _, _, kind in layers]
    ['points', 'surface', 'surface']
    """
    from ..simulate import Geometry, dendrite

    sim = dendrite(geometry=Geometry(n_spines=n_spines, shaft_length_nm=4000), rng=rng)
    layers = points_layers(sim.localizations, name="simulated dendrite")
    layers.append(surface_layer(sim.mesh.vertices, sim.mesh.faces, name="true fragment",
                                colormap="gray", opacity=0.25))
    for i, (sid, mesh) in enumerate(sorted(sim.spine_meshes.items())):
        layers.append(surface_layer(mesh.vertices, mesh.faces, name=f"true spine {sid}",
                                    colormap=SPINE_COLORMAPS[i % len(SPINE_COLORMAPS)], opacity=0.9))
    return layers
