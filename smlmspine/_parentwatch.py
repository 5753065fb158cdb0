"""Worker processes that end with the process that started them.

A process pool's workers (``concurrent.futures.ProcessPoolExecutor`` with the fork
server) are children of the fork server, not of the calling process: when the caller
is killed (``SIGTERM`` from a job scheduler, ``kill``), nothing tells them, and each
finishes (or keeps computing) its job as an orphan. Seen on a 9.9M-localization run
(2026-12-04): killed after 12 min, its two envelope workers went on computing until
killed by hand. :func:`exit_with` starts a daemon thread in the worker that checks the
caller every ``poll_s`` seconds and ends the worker (``os._exit``) once it is gone.
Use it as the pool's ``initializer`` with ``initargs=(os.getpid(),)``.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["exit_with", "process_alive"]

#: Seconds between two checks of the calling process.
POLL_S = 1.0


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie, dead but not yet reaped, is not).

    Examples
    --------
    >>> process_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):   # no /proc (macOS): kill(pid, 0) has answered
        return True


def exit_with(parent_pid: int, poll_s: float = POLL_S, blas_threads: int | None = None) -> None:
    """Pool ``initializer``: end this worker process once ``parent_pid`` is gone.

    Parameters
    ----------
    parent_pid : int
        The process that owns the pool (``os.getpid()`` there).
    poll_s : float
        Seconds between two checks.
    blas_threads : int, optional
        Also limit BLAS to this many threads in the worker (when the workers already
        fill the cores); None leaves BLAS as it is.

    The worker also ignores SIGINT: Ctrl-C in a terminal reaches every process of the
    command, and a worker interrupted while it waits for work printed a traceback of
    its own; the process that owns the pool stops it (and this watch ends it with its
    parent).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if blas_threads is not None:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(int(blas_threads))
        except ImportError:  # pragma: no cover - comes with scikit-learn
            pass

    def watch():
        while process_alive(parent_pid):
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="smlmspine-exit-with-parent", daemon=True).start()
