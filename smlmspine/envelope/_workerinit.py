"""Imported by the fork server of the envelope stage's worker pool, last of
:data:`~smlmspine.envelope._export.WORKER_MODULES`: loads the compiled numba kernels of
the modules imported before it from their on-disk caches
(:func:`smlmspine._kernelcache.load_cached`), so that every worker forked from the server has
them in memory instead of loading them on first use. Nothing else imports it."""

from __future__ import annotations

from .._kernelcache import load_cached

#: Kernel versions the fork server loaded (for the tests).
LOADED = load_cached()
