"""How many workers (processes or threads) a stage uses: one rule for every stage."""

from __future__ import annotations

import os

__all__ = ["n_workers", "abandon"]


def n_workers(workers, n_jobs: int, *, jobs_per_worker: int = 1) -> int:
    """Workers for ``n_jobs`` independent jobs: ``workers`` (-1 = all cores, -2 = all but
    one, ...; None or 0 = 1), at most one per ``jobs_per_worker`` jobs, at least 1.

    Examples
    --------
    >>> n_workers(2, 10), n_workers(8, 3), n_workers(None, 5), n_workers(2, 7, jobs_per_worker=4)
    (2, 3, 1, 1)
    """
    if workers is None or int(workers) == 0:
        return 1
    n = int(workers)
    if n < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n)
    return max(1, min(n, n_jobs // jobs_per_worker))


def abandon(executor, join_s: float = 5.0) -> None:
    """Stop a ``ProcessPoolExecutor`` without waiting for its work: queued jobs cancelled,
    running workers terminated (then joined, ``join_s`` seconds at most each).

    For work nobody will use: an interrupted command (Ctrl-C, SIGTERM), whose pool would
    otherwise finish every queued spine before the command could end, or helpers whose
    callers did the work themselves (:mod:`smlmspine._background`).
    """
    procs = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=join_s)
