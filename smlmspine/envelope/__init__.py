"""Spine envelopes (placeholder during development)."""
from ._alpha import alpha_shape
from ._reconstruct import Envelope
