"""Pre/post-synaptic coupling statistics on point clouds (2D and 3D).

- :func:`soda`: SODA (Lagache et al. 2018) for point patterns: ring statistics of the
  edge-corrected cross-K function with the analytic CSR variance (boundary terms and ring
  overlaps) or a Monte-Carlo null, per-pair coupling probabilities, coupling indices and
  mean coupling distances, with a bias correction for broad coupling distances.
- :func:`cross_k`, :func:`cross_k_envelope`: cross Ripley K/L/H with isotropic,
  translation or border edge correction and Monte-Carlo envelopes.
- :func:`nn_distances`, :func:`nn_test`: nearest-neighbour distances between channels
  with CSR-in-region and random-shift nulls.
- :func:`cbc`: coordinate-based colocalization (Malkusch et al. 2012) per localization.
- :func:`cluster_centroids`: the objects (cluster centroids) of a clustered table;
  :func:`soda_cross_h`: the cross-H envelope check at the rings of a SODA result.
- Every function takes the two populations in the order ``(pre, post)``.
- Regions: :func:`make_region`, :class:`BoxRegion`, :class:`ConvexRegion`,
  :class:`MaskRegion`, :class:`PolygonRegion`.

Examples
--------
>>> import numpy as np
>>> from smlmspine.coupling import BoxRegion, cross_k
>>> box = BoxRegion([0, 0], [1000, 1000])
>>> pre = np.array([[500.0, 500.0]]); post = np.array([[520.0, 500.0]])
>>> res = cross_k(pre, post, radii_nm=[10.0, 30.0], region=box)
>>> res.k_nm_d.tolist()  # one pair at 20 nm: K(30) = |Omega| / (n1 n2)
[0.0, 1000000.0]
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "soda": "._soda:soda",
    "SodaResult": "._soda:SodaResult",
    "ring_moments": "._soda:ring_moments",
    "PAIR_COLUMNS": "._soda:PAIR_COLUMNS",
    "RING_COLUMNS": "._soda:RING_COLUMNS",
    "cross_k": "._ripley:cross_k",
    "cross_k_envelope": "._ripley:cross_k_envelope",
    "RipleyResult": "._ripley:RipleyResult",
    "soda_cross_h": "._analysis:soda_cross_h",
    "cluster_centroids": "._analysis:cluster_centroids",
    "nn_distances": "._nn:nn_distances",
    "nn_test": "._nn:nn_test",
    "NearestNeighbourResult": "._nn:NearestNeighbourResult",
    "cbc": "._cbc:cbc",
    "CbcResult": "._cbc:CbcResult",
    "Region": "._region:Region",
    "BoxRegion": "._region:BoxRegion",
    "ConvexRegion": "._region:ConvexRegion",
    "MaskRegion": "._region:MaskRegion",
    "PolygonRegion": "._region:PolygonRegion",
    "make_region": "._region:make_region",
    "read_mask_region": "._region:read_mask_region",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
