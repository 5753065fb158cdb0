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
- Regions: :func:`make_region`, :class:`BoxRegion`, :class:`ConvexRegion`,
  :class:`MaskRegion`, :class:`PolygonRegion`.

Examples
--------
>>> import numpy as np
>>> box = BoxRegion([0, 0], [1000, 1000])
>>> pre = np.array([[500.0, 500.0]]); post = np.array([[520.0, 500.0]])
>>> res = cross_k(pre, post, radii_nm=[10.0, 30.0], region=box)
>>> res.k_nm_d.tolist()  # one pair at 20 nm: K(30) = |Omega| / (n1 n2)
[0.0, 1000000.0]
"""

from ._cbc import CbcResult, cbc
from ._nn import NearestNeighbourResult, nn_distances, nn_test
from ._region import (BoxRegion, ConvexRegion, MaskRegion, PolygonRegion, Region, make_region,
                      read_mask_region)
from ._ripley import RipleyResult, cross_k, cross_k_envelope
from ._soda import PAIR_COLUMNS, RING_COLUMNS, SodaResult, ring_moments, soda

__all__ = ["soda", "SodaResult", "ring_moments", "PAIR_COLUMNS", "RING_COLUMNS",
           "cross_k", "cross_k_envelope", "RipleyResult",
           "nn_distances", "nn_test", "NearestNeighbourResult", "cbc", "CbcResult",
           "Region", "BoxRegion", "ConvexRegion", "MaskRegion", "PolygonRegion", "make_region",
           "read_mask_region"]
