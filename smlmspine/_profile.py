"""Step timers and peak memory: where the time of a stage goes.

A :class:`StepTimes` accumulates wall seconds and calls per named step. While one is
*recording* (``with times.recording():``), :func:`step` anywhere in the package adds to
it; nested steps are recorded under ``"outer/inner"``. Without a recording
:func:`step` only reads the clock. The cost is a ``time.perf_counter`` pair and a dict
update per step (about a microsecond; a spine envelope makes a few tens of steps).

The envelope stage (:func:`smlmspine.envelope.mesh_spines`) records one
:class:`StepTimes` per spine (in the process that made it, a worker or not) and sums
them into ``parameters["profile"]`` (``run.json``: ``stages.mesh.parameters.profile``);
:func:`format_profile` makes the table ``smlmspine mesh --profile`` and
``smlmspine run --profile`` print.

Examples
--------
>>> times = StepTimes()
>>> with times.recording():
...     with step("fit"):
...         with step("solve"):
...             pass
...     with step("fit"):
...         pass
>>> times.calls
{'fit/solve': 1, 'fit': 2}
>>> sorted(StepTimes.merged([times, times]).calls.items())
[('fit', 4), ('fit/solve', 2)]
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterable, Iterator, Mapping

__all__ = ["StepTimes", "step", "peak_rss_mb", "format_profile", "format_run_profile",
           "merge_profiles"]

# the StepTimes recording now (innermost last) and the names of the open steps
_RECORDING: list["StepTimes"] = []
_OPEN: list[str] = []


class StepTimes:
    """Wall seconds and calls per step name (``"outer/inner"`` for nested steps).

    Attributes
    ----------
    seconds : dict of str to float
        Total wall seconds per step (a nested step's time is also in its parent's).
    calls : dict of str to int
        Number of times each step ran.
    max_seconds : dict of str to float
        Longest single call of each step.
    """

    __slots__ = ("seconds", "calls", "max_seconds")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.max_seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        """Add ``seconds`` (and ``calls``) to step ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)
        self.calls[name] = self.calls.get(name, 0) + int(calls)
        if seconds > self.max_seconds.get(name, -1.0):
            self.max_seconds[name] = float(seconds)

    @contextmanager
    def recording(self) -> Iterator["StepTimes"]:
        """Make :func:`step` record into this object (nested recordings: the innermost)."""
        _RECORDING.append(self)
        opened = list(_OPEN)
        _OPEN.clear()
        try:
            yield self
        finally:
            _RECORDING.pop()
            _OPEN[:] = opened

    def total(self) -> float:
        """Seconds of the top-level steps (nested steps are inside them)."""
        return float(sum(s for k, s in self.seconds.items() if "/" not in k))

    def to_dict(self) -> dict:
        """``{step: {"seconds", "calls", "max_seconds"}}``, JSON-ready."""
        return {k: {"seconds": round(self.seconds[k], 4), "calls": self.calls[k],
                    "max_seconds": round(self.max_seconds.get(k, self.seconds[k]), 4)}
                for k in self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping]) -> "StepTimes":
        """The inverse of :meth:`to_dict`."""
        out = cls()
        for k, v in d.items():
            out.seconds[k] = float(v["seconds"])
            out.calls[k] = int(v["calls"])
            out.max_seconds[k] = float(v.get("max_seconds", v["seconds"]))
        return out

    @classmethod
    def merged(cls, parts: Iterable["StepTimes"]) -> "StepTimes":
        """The sum of several (e.g. one per spine)."""
        out = cls()
        for p in parts:
            for k, s in p.seconds.items():
                out.seconds[k] = out.seconds.get(k, 0.0) + s
                out.calls[k] = out.calls.get(k, 0) + p.calls[k]
                out.max_seconds[k] = max(out.max_seconds.get(k, 0.0), p.max_seconds.get(k, s))
        return out


@contextmanager
def step(name: str) -> Iterator[None]:
    """Time the block as step ``name`` of the :class:`StepTimes` recording now (if any).

    Parameters
    ----------
    name : str
        Step name (no ``/``); inside another step it is recorded as ``"outer/name"``.
    """
    if not _RECORDING:
        yield
        return
    _OPEN.append(name)
    key = "/".join(_OPEN)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        _OPEN.pop()
        if _RECORDING:
            _RECORDING[-1].add(key, dt)


def peak_rss_mb(*, children: bool = True) -> float:
    """Peak resident memory of this process so far, in MB (10^6 bytes).

    Parameters
    ----------
    children : bool
        Also the peak of the child processes that have ended and been waited for
        (the larger of the two; a pool's workers count once they have exited).

    Returns
    -------
    float
        NaN where :mod:`resource` is not available (Windows).

    Examples
    --------
    >>> peak_rss_mb() > 1.0
    True
    """
    try:
        import resource
    except ImportError:   # Windows
        return float("nan")
    import sys

    scale = 1.0 if sys.platform == "darwin" else 1024.0   # bytes on macOS, KiB on Linux
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        rss = max(rss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return rss * scale / 1e6


def format_profile(steps: Mapping[str, Mapping], *, wall_seconds: float | None = None,
                   title: str = "step") -> str:
    """A readable table of a step breakdown (:meth:`StepTimes.to_dict` form).

    Steps are listed in order of their top-level step's time, nested steps indented
    under their parent; ``share`` is of the sum of the top-level steps (in a process
    pool that sum is worker time, more than the wall time).

    Parameters
    ----------
    steps : mapping of str to mapping
        ``{name: {"seconds", "calls"[, "max_seconds"]}}``.
    wall_seconds : float, optional
        Wall time of the whole, printed in the last line.
    title : str
        Header of the first column.

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_profile({"a": {"seconds": 3.0, "calls": 2},
    ...                       "a/b": {"seconds": 1.0, "calls": 2},
    ...                       "c": {"seconds": 1.0, "calls": 1}}, wall_seconds=4.5))
    step                        seconds  share   calls   max s
    a                             3.000  75.0 %       2   3.000
      b                           1.000  25.0 %       2   1.000
    c                             1.000  25.0 %       1   1.000
    sum of steps                  4.000 100.0 %
    wall                          4.500
    """
    top = {k: float(v["seconds"]) for k, v in steps.items() if "/" not in k}
    total = sum(top.values())
    lines = [f"{title:<26} {'seconds':>8} {'share':>6} {'calls':>7} {'max s':>7}"]

    def children(prefix: str, depth: int) -> None:
        kids = [k for k in steps if k.startswith(prefix) and "/" not in k[len(prefix):]]
        for k in sorted(kids, key=lambda k: -float(steps[k]["seconds"])):
            v = steps[k]
            s = float(v["seconds"])
            share = 100.0 * s / total if total > 0 else float("nan")
            name = "  " * depth + k[len(prefix):]
            lines.append(f"{name[:26]:<26} {s:8.3f} {share:5.1f} % {int(v['calls']):7d} "
                         f"{float(v.get('max_seconds', s)):7.3f}")
            children(k + "/", depth + 1)

    children("", 0)
    lines.append(f"{'sum of steps':<26} {total:8.3f} {100.0 if total > 0 else float('nan'):5.1f} %")
    if wall_seconds is not None:
        lines.append(f"{'wall':<26} {float(wall_seconds):8.3f}")
    return "\n".join(lines)


def merge_profiles(profiles: Iterable[Mapping | None]) -> dict | None:
    """One envelope-stage profile from several (e.g. one per region of a tiled run).

    Steps, wall times and spine times are summed, peaks take the largest. Spine ids
    are those of the parts: give parts whose ids do not collide (a later part's entry
    replaces an earlier one).

    Parameters
    ----------
    profiles : iterable of mapping or None
        ``parameters["profile"]`` of :func:`smlmspine.envelope.mesh_spines` calls
        (None entries are skipped).

    Returns
    -------
    dict or None
        None when no part has a profile.

    Examples
    --------
    >>> a = {"wall_seconds": 2.0, "jobs_wall_seconds": 1.5, "workers": 2,
    ...      "steps": {"spine": {"seconds": 3.0, "calls": 2}}, "spine_seconds": {1: 1.0},
    ...      "spine_points": {1: 40}, "peak_rss_mb": {"main": 100.0, "jobs": 80.0}}
    >>> m = merge_profiles([a, None, a])
    >>> m["wall_seconds"], m["steps"]["spine"]["calls"], m["peak_rss_mb"]["main"], m["parts"]
    (4.0, 4, 100.0, 2)
    """
    parts = [p for p in profiles if p]
    if not parts:
        return None
    steps = StepTimes.merged(StepTimes.from_dict(p.get("steps", {})) for p in parts)
    out: dict = {"wall_seconds": round(sum(float(p.get("wall_seconds", 0.0)) for p in parts), 4),
                 "jobs_wall_seconds": round(sum(float(p.get("jobs_wall_seconds", 0.0))
                                                for p in parts), 4),
                 "workers": max(int(p.get("workers", 1)) for p in parts),
                 "steps": steps.to_dict(), "spine_seconds": {}, "spine_points": {},
                 "peak_rss_mb": {}, "parts": len(parts)}
    for p in parts:
        out["spine_seconds"].update(p.get("spine_seconds") or {})
        out["spine_points"].update(p.get("spine_points") or {})
        for k, v in (p.get("peak_rss_mb") or {}).items():
            if v is not None:
                out["peak_rss_mb"][k] = max(float(v), out["peak_rss_mb"].get(k, 0.0))
    return out


def format_run_profile(stages: Mapping[str, Mapping], mesh_profile: Mapping | None = None,
                       *, slowest: int = 5) -> str:
    """The ``--profile`` report of ``smlmspine run`` / ``mesh``: stages, then envelope steps.

    Parameters
    ----------
    stages : mapping of str to mapping
        Per stage (in order) a mapping with ``"seconds"`` and optionally
        ``"peak_rss_mb"`` (peak so far at the end of the stage); a stage without
        ``"seconds"`` (or with None) is listed as ``skipped`` (with a ``"skipped"``
        key) or ``-`` (not timed).
    mesh_profile : mapping, optional
        ``parameters["profile"]`` of :func:`smlmspine.envelope.mesh_spines`.
    slowest : int
        How many of the slowest spines to list.

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_run_profile({"read": {"seconds": 1.0, "peak_rss_mb": 100.0},
    ...                           "drift": {"skipped": "no frame"}}))
    stage                       seconds  share  peak RSS MB
    read                          1.000 100.0 %        100.0
    drift                       skipped
    sum of stages                 1.000
    """
    timed = {k: float(v["seconds"]) for k, v in stages.items()
             if isinstance(v, Mapping) and v.get("seconds") is not None}
    total = sum(timed.values())
    lines = [f"{'stage':<26} {'seconds':>8} {'share':>6} {'peak RSS MB':>12}"]
    for k, v in stages.items():
        if k not in timed:
            what = "skipped" if isinstance(v, Mapping) and "skipped" in v else "-"
            lines.append(f"{k:<26} {what:>8}")
            continue
        rss = v.get("peak_rss_mb")
        rss_s = f"{float(rss):12.1f}" if rss is not None else ""
        share = 100.0 * timed[k] / total if total > 0 else float("nan")
        lines.append(f"{k:<26} {timed[k]:8.3f} {share:5.1f} % {rss_s}")
    lines.append(f"{'sum of stages':<26} {total:8.3f}")
    if mesh_profile:
        mp = mesh_profile
        lines.append("")
        lines.append(f"envelope stage: {float(mp['wall_seconds']):.2f} s wall with "
                     f"{int(mp['workers'])} worker process(es) "
                     f"(spine and dendrite jobs {float(mp['jobs_wall_seconds']):.2f} s wall); "
                     "steps summed over spines and workers:")
        lines.append(format_profile(mp["steps"], title="step"))
        rss = mp.get("peak_rss_mb") or {}
        if rss:
            lines.append(f"peak RSS MB: main process {rss.get('main')}, largest job's process "
                         f"{rss.get('jobs')}")
        secs = mp.get("spine_seconds") or {}
        pts = mp.get("spine_points") or {}
        if secs and slowest:
            worst = sorted(secs, key=lambda k: -float(secs[k]))[:slowest]
            lines.append("slowest spines: " + ", ".join(
                f"{k} ({float(secs[k]):.2f} s, {pts.get(k, '?')} pts)" for k in worst))
    return "\n".join(lines)
