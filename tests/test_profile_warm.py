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
