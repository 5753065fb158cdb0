"""smlmspine._warm: the set-up compiles the numba kernels of `smlmspine run`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smlmspine import _warm

ROOT = Path(__file__).resolve().parents[1] / "smlmspine"


def test_kernel_modules_complete():
    # every module with a cache=True kernel is listed (a new kernel module must be added
    # to KERNEL_MODULES, or the set-up leaves it to compile on first use unseen)
    found = set()
    for path in ROOT.rglob("*.py"):
        if re.search(r"cache\s*=\s*True", path.read_text(encoding="utf-8")):
            parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
            found.add(".".join(parts))
    found.discard("smlmspine._warm")   # says "cache=True" in its documentation
    assert found <= set(_warm.KERNEL_MODULES), sorted(found - set(_warm.KERNEL_MODULES))


def test_cached_kernels_are_cached_dispatchers():
    kernels = _warm.cached_kernels()
    assert len(kernels) > 50
    assert "smlmspine.envelope._delaunay._kernel" in kernels
    # (kernels made on first call, as merge's and the ring fit's, are listed once made)
    for d in kernels.values():
        assert d._cache.__class__.__name__ != "NullCache"


@pytest.mark.slow
def test_warm_compiles_the_run_kernels():
    res = _warm.warm()
    for name in ("smlmspine.envelope._delaunay._kernel",
                 "smlmspine.envelope._selfintersect._kernel",
                 "smlmspine.drift._kernels.kernel_sums",
                 "smlmspine.morphology._ringfit._KERNEL"):
        assert name in res.compiled, name
    assert not set(res.compiled) & set(res.unused)


def _python(code: str, cwd) -> str:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, timeout=300, check=True)
    return out.stdout.strip()


def test_load_cached_loads_from_the_cache_and_never_compiles(tmp_path):
    # a kernel compiled (and cached) by one process is loaded by load_cached in the
    # next, without a compilation; a stale cache (source changed) loads nothing and
    # compiles nothing
    src = ("from numba import njit\n\n@njit(cache=True)\ndef kern(x):\n"
           "    return x * {k}\n")
    (tmp_path / "h19kern.py").write_text(src.format(k=2.0))
    assert _python("import h19kern; print(h19kern.kern(3.0))", tmp_path) == "6.0"
    probe = ("import h19kern\nfrom smlmspine._warm import load_cached\n"
             "n = load_cached('h19kern')\nk = h19kern.kern\n"
             "print(n, len(k.signatures), sum(k.stats.cache_hits.values()), "
             "sum(k.stats.cache_misses.values()))")
    assert _python(probe, tmp_path) == "1 1 1 0"
    (tmp_path / "h19kern.py").write_text(src.format(k=3.0) + "# changed\n")
    assert _python(probe, tmp_path) == "0 0 0 0"


def test_worker_init_is_the_last_preload():
    # the fork server imports the modules in order: the kernel loading must come after
    # the modules whose kernels it loads
    from smlmspine.envelope import _export

    assert _export.WORKER_MODULES[-1] == "smlmspine.envelope._workerinit"
