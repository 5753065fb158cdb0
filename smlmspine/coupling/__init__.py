"""Pre/post-synaptic coupling statistics (placeholder, being written)."""
from ._region import BoxRegion, ConvexRegion, MaskRegion, PolygonRegion, Region, make_region

__all__ = ["Region", "BoxRegion", "ConvexRegion", "MaskRegion", "PolygonRegion", "make_region"]
