"""Loading the numba kernels' on-disk caches into a process ahead of use.

Standalone (numba and the standard library only), so that the envelope workers' fork
server can import it without the stages (:mod:`smlmspine.envelope._workerinit`).
"""

from __future__ import annotations

import sys

__all__ = ["load_cached"]


def load_cached(prefix: str = "smlmspine.") -> int:
    """Load into this process every compiled kernel version that the on-disk caches hold,
    for the numba dispatchers of the imported modules whose names start with ``prefix``.

    A kernel is otherwise loaded from its cache on its first call, in every process
    (~0.3-0.5 s per worker of ``smlmspine run``, over the kernels one spine uses). The
    worker pool's fork server calls this once (:mod:`smlmspine.envelope._workerinit`),
    while the main process reads and corrects the data, so its workers start with the
    kernels in memory. Only versions whose cache entry matches this machine and the
    kernel's current source are loaded: nothing is compiled. Best effort: a cache this
    numba version lays out differently is skipped.

    Parameters
    ----------
    prefix : str
        Module name prefix (default: the package's modules).

    Returns
    -------
    int
        Kernel versions loaded.
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    n = 0
    seen = set()
    for name, mod in list(sys.modules.items()):
        if not name.startswith(prefix) or mod is None:
            continue
        for obj in list(vars(mod).values()):
            if (not isinstance(obj, Dispatcher) or id(obj) in seen
                    or isinstance(obj._cache, NullCache)):
                continue
            seen.add(id(obj))
            try:
                cache = obj._cache
                codegen = obj.targetctx.codegen()
                for key in cache._cache_file._load_index():
                    sig = key[0]
                    if key == cache._index_key(sig, codegen) and sig not in obj.overloads:
                        obj.compile(sig)      # found in the cache: loaded, not compiled
                        n += 1
            except Exception:  # noqa: BLE001 - another cache layout: loaded on first call
                continue
    return n
