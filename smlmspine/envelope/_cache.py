"""Results of a function of a mesh, remembered by the mesh's exact bytes.

Shared by the mesh checks (:mod:`._repair`) and the exact self-intersection test
(:mod:`._selfintersect`), which import it from here so that neither imports the other
for it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ResultCache"]


class ResultCache:
    """The last few results of a function of a mesh, keyed by its exact bytes.

    The envelope steps check the same mesh more than once (a level set is checked where
    it is made, by its caller and by the final validation; a smoothing round's last test
    is the caller's first). The key is a 128-bit BLAKE2b digest of the vertex and face
    arrays as float64/int64 with their shapes, plus the function's options, so a hit is
    the same input bit for bit (but for a 2^-128 chance of a digest collision); stored
    values are returned as copies.
    """

    def __init__(self, size: int = 16):
        import threading
        from collections import OrderedDict

        self.size = size
        self.data = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.lock = threading.Lock()   # (threads of one process share the cache)

    @staticmethod
    def key(P: np.ndarray, F: np.ndarray, *extra) -> bytes:
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        h.update(repr((P.shape, F.shape, P.dtype.str, F.dtype.str) + extra).encode())
        h.update(np.ascontiguousarray(P).view(np.uint8).ravel())
        h.update(np.ascontiguousarray(F).view(np.uint8).ravel())
        return h.digest()

    def get(self, key):
        with self.lock:
            value = self.data.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self.data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.hits = self.misses = 0
