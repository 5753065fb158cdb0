"""Compile the numba kernels of ``smlmspine run`` once, into their on-disk caches.

Every kernel of the package is ``@numba.njit(cache=True)``: compiled on its first call
(seconds each; the README's main job spent most of its first run compiling) and loaded
from ``__pycache__/*.nbi|*.nbc`` afterwards. ``python -m smlmspine._warm`` (run by
``scripts/setup.sh``) makes that first call at set-up: it runs the stages of
``smlmspine run`` (drift, merge, isolation, spine and dendrite envelopes, neck refits,
morphology, the overview image) and DBSCAN on a small simulated dendrite, in this
process, so that each kernel is compiled for the argument types a real run gives it.
It then lists the kernels compiled and those these stages do not use (compiled on first
use of their command). The result files are thrown away.

Examples
--------
The kernels with a cache (the module imports them all)::

    >>> kernels = cached_kernels()
    >>> len(kernels) > 50, all(name.startswith("smlmspine.") for name in kernels)
    (True, True)
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass

from ._kernelcache import load_cached

__all__ = ["warm", "cached_kernels", "load_cached", "WarmResult", "main"]

#: Modules holding ``cache=True`` kernels (a test checks that the list is complete).
KERNEL_MODULES = (
    "smlmspine._grid", "smlmspine._hull2d", "smlmspine.merge",
    "smlmspine.cluster._dbscan", "smlmspine.cluster._hull",
    "smlmspine.coupling._kernels",
    "smlmspine.drift._kernels", "smlmspine.drift._fiducial",
    "smlmspine.envelope._alpha_kernels", "smlmspine.envelope._delaunay",
    "smlmspine.envelope._selfintersect", "smlmspine.envelope._levelset",
    "smlmspine.envelope._winding", "smlmspine.envelope._recentre",
    "smlmspine.morphology._measure", "smlmspine.morphology._ringfit",
    "smlmspine.morphology._bfgs", "smlmspine.morphology._ringnll",
    "smlmspine.morphology._sections",
    "smlmspine.voxel._render_kernels",
)


@dataclass(frozen=True, slots=True)
class WarmResult:
    """What :func:`warm` did.

    Attributes
    ----------
    seconds : float
        Wall time of the warm-up.
    compiled : tuple of str
        Kernels (``module.name``) with a compiled version in their on-disk cache.
    unused : tuple of str
        Kernels without one (not used by these stages: compiled on first use).
    """

    seconds: float
    compiled: tuple
    unused: tuple


def cached_kernels() -> dict:
    """Every numba dispatcher with an on-disk cache, by ``"module.name"``.

    Returns
    -------
    dict of str to numba.core.dispatcher.Dispatcher
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    out = {}
    for name in KERNEL_MODULES:
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if (isinstance(obj, Dispatcher) and obj.py_func.__module__ == name
                    and not isinstance(obj._cache, NullCache)):
                out[f"{name}.{attr}"] = obj
    return out


def warm(*, quiet: bool = True) -> WarmResult:
    """Run the stages of ``smlmspine run`` on a small simulated dendrite (see module doc).

    Parameters
    ----------
    quiet : bool
        No progress lines on stderr.

    Returns
    -------
    WarmResult
    """
    import warnings

    with warnings.catch_warnings():
        # the warm-up's small dendrite is not a measurement: its quality warnings (drift
        # segments without structure, few spines) say nothing to the user
        warnings.simplefilter("ignore")
        return _warm_stages(say_progress=not quiet)


def _warm_stages(*, say_progress: bool) -> WarmResult:
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from . import simulate
    from .cluster import cluster_statistics, dbscan
    from .drift import correct
    from .envelope import mesh_spines, write_meshes
    from .io import write
    from .merge import merge_blinks
    from .morphology import spine_features
    from .report._collect import histogram_xy
    from .voxel import write_overview

    quiet = not say_progress

    def say(msg):
        if not quiet:
            print(f"warm: {msg} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    sim = simulate.dendrite(geometry=simulate.Geometry(n_spines=2, shaft_length_nm=2000.0),
                            rng=0)
    table = sim.localizations
    say(f"simulated {table.num_rows} localizations")
    table = correct(table, method="aim").table
    say("drift")
    table = merge_blinks(table)
    say("merge")
    # the dendrite from few points: the same kernels, a fraction of the time
    meshes = mesh_spines(table, workers=1, dendrite_max_points=3000)
    say(f"envelopes of {meshes.spines.num_rows} spines")
    if not quiet:
        from ._profile import format_profile

        print(format_profile(meshes.parameters["profile"]["steps"]), file=sys.stderr)
    spines = spine_features(meshes, precision_nm=meshes.parameters.get("precision_nm"))
    say("morphology")
    labels = dbscan(table, eps_nm=60.0, min_samples=5)
    cluster_statistics(labels)
    say("clusters")
    with tempfile.TemporaryDirectory() as tmp:
        write_meshes(replace(meshes, spines=spines), Path(tmp) / "meshes")
        write_overview(meshes.isolation.table, Path(tmp))
        # the report's overview bins the written localizations with its own types
        write(meshes.isolation.table, Path(tmp) / "localizations.parquet")
        histogram_xy(Path(tmp) / "localizations.parquet")
    say("overview")
    kernels = cached_kernels()
    compiled = tuple(sorted(k for k, d in kernels.items() if _on_disk(d)))
    unused = tuple(sorted(k for k, d in kernels.items() if not _on_disk(d)))
    return WarmResult(time.perf_counter() - t0, compiled, unused)


def _on_disk(dispatcher) -> bool:
    """Whether the kernel has a compiled version in its on-disk cache (a kernel called
    from another one that was loaded from the cache is compiled into it, but may have
    no cache of its own: only its index file tells)."""
    import os

    try:
        return os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:   # another numba layout: what this process compiled or loaded
        return bool(dispatcher.signatures)


def main(argv: list[str] | None = None) -> int:
    """``python -m smlmspine._warm [--quiet]``."""
    ap = argparse.ArgumentParser(prog="python -m smlmspine._warm",
                                 description="compile the numba kernels of `smlmspine run` "
                                             "into their on-disk caches")
    ap.add_argument("--quiet", action="store_true", help="only the summary line")
    args = ap.parse_args(argv)
    res = warm(quiet=args.quiet)
    n = len(res.compiled) + len(res.unused)
    print(f"warm: {len(res.compiled)} of {n} cached numba kernels compiled or loaded in "
          f"{res.seconds:.1f} s; compiled on first use of their command: "
          + (", ".join(res.unused) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
