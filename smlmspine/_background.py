"""Figures drawn on idle cores: helper processes that run only when a core is free.

``smlmspine run`` draws ``drift.png`` and the report's figures with matplotlib, about
1.7 s on the README's sample, all of it on one core once the envelope jobs are done.
Inside :func:`helpers` (the CLI's ``run`` opens it), :func:`submit` hands such work to
up to two helper processes forked from the envelope stage's fork server and scheduled
as ``SCHED_IDLE`` (Linux; elsewhere ``nice`` 19): they run only on cores nothing else
wants, such as the one the last spine job leaves free, instead of adding to the run's
time, and the report's sections are drawn two at a time. (At ``nice`` 19 they still
took 0.4 s from the envelope jobs of the README sample: a job alone on the machine
runs its BLAS and Open3D loops on both cores, and a helper's time slices delayed them.)
Outside the block, or with one worker, :func:`submit` returns None and the caller
draws in its own process, as it always did. The pictures do not depend on where they
were drawn (``tests/test_background.py``).

A helper is never waited for long: :func:`result` gives up after ``timeout_s``
(:data:`WAIT_S`; on a busy machine an idle-class process may get no time at all) and
returns None, as it does when the helper could not do the work (a broken pool, a
process that could not start); the caller then draws the figure itself. An error of the
work itself (:class:`~smlmspine.errors.SmlmSpineError`) is raised as it would have been
in the caller.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import Future
from contextlib import contextmanager

__all__ = ["helpers", "submit", "result", "active"]

#: At most this many helper processes (drift plot; report sections two at a time).
MAX_HELPERS = 2

#: ``nice`` increment of the helpers where ``SCHED_IDLE`` is not available.
NICE = 19

#: Seconds a caller waits for a helper's result (in all, for the report's sections)
#: before doing the work itself.
WAIT_S = 20.0

#: Seconds the end of the block waits for helpers still being started (the fork server
#: may still be importing its modules when a command fails early).
START_WAIT_S = 60.0

#: Seconds the end of the block waits for the pool's own threads (its manager, its
#: queue's feeder) once the helpers are stopped.
JOIN_S = 10.0

_EXECUTOR = None
_STARTING: list = []   # the threads handing work over (each may be starting a helper)


def _init(parent_pid: int) -> None:
    """Helper initializer: idle priority, end with the caller, matplotlib imported."""
    from ._parentwatch import exit_with

    idle_priority()
    exit_with(parent_pid)
    import matplotlib.backends.backend_agg  # noqa: F401  (what every figure draws with)
    import matplotlib.figure  # noqa: F401


def idle_priority() -> str:
    """Schedule this process only on idle cores: ``SCHED_IDLE`` where the system has it,
    else ``nice`` +19; returns which (``"idle"``, ``"nice"`` or ``"none"``)."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError:
            pass
    try:
        os.nice(NICE)
        return "nice"
    except OSError:   # not permitted here: a helper at normal priority still works
        return "none"


def _warm() -> None:
    """A helper's first job: the modules its figures need, and one small drawing (the
    first text drawn loads the fonts)."""
    import io

    import pyarrow.parquet  # noqa: F401  (the report reads the run's tables)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=20)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "o")
    ax.set_title("warm")
    fig.savefig(io.BytesIO(), format="png")


@contextmanager
def helpers(workers):
    """Within the block, :func:`submit` runs work on helper processes.

    Parameters
    ----------
    workers : int or None
        The command's worker count (as :func:`smlmspine._workers.n_workers` reads it);
        below 2 there are no helpers. Nor are there without the fork server (the
        envelope stage's start method), whose preloaded modules make a helper start in
        milliseconds.

    Yields
    ------
    bool
        Whether helpers are available.
    """
    global _EXECUTOR
    from ._workers import n_workers

    n = n_workers(workers, MAX_HELPERS)
    if n < 2 or _EXECUTOR is not None:
        yield False
        return
    from .envelope._export import _ensure_server, _pool_context

    ctx = _pool_context()
    if ctx.get_start_method() != "forkserver":
        yield False
        return
    try:   # (started here, in the main thread, deaf to Ctrl-C from its first instruction)
        _ensure_server(ctx)
    except (OSError, RuntimeError):   # no fork server: the caller draws, as without helpers
        yield False
        return
    from concurrent.futures import ProcessPoolExecutor

    _EXECUTOR = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init,
                                    initargs=(os.getpid(),))
    for _ in range(n):   # every helper started now and warmed up on idle cores
        submit(_warm)
    try:
        yield True
    finally:
        ex, _EXECUTOR = _EXECUTOR, None
        _stop(ex)


def _stop(ex) -> None:
    """Shut the helpers down without waiting for work still running: whatever a helper
    has not finished, its caller did itself (:func:`result`), and an idle-class process
    on a busy machine may not finish soon.

    A helper still being started is waited for first (:data:`START_WAIT_S` at most): a
    process the fork server forked after this one had cleaned up its queues would fail
    to start with a traceback on the command's stderr (seen when ``run`` refused a 2D
    file 0.3 s after it began, while the fork server was still importing).
    """
    import gc
    import time

    deadline = time.monotonic() + START_WAIT_S
    while _STARTING:
        _STARTING.pop().join(timeout=max(0.0, deadline - time.monotonic()))
    from ._workers import abandon

    # the threads that own the pool's queues (named semaphores), taken before the
    # shutdown lets go of them
    manager = getattr(ex, "_executor_manager_thread", None)
    queues = [weakref.ref(q) for q in (getattr(ex, "_call_queue", None),
                                       getattr(ex, "_result_queue", None)) if q is not None]
    feeder = getattr(queues[0](), "_thread", None) if queues else None
    abandon(ex)   # (the shutdown drops the executor's references to the queues)
    for thread in (manager, feeder):
        if thread is not None:
            thread.join(timeout=JOIN_S)
    del manager, feeder
    # the queues' semaphores released here, on this thread: left to a garbage
    # collection on whichever thread runs one next, their clean-up could still be under
    # way when the console script's quick exit ends the process, and the resource
    # tracker then reported a semaphore "leaked" (1 run in 10 of a refused file)
    if any(ref() is not None for ref in queues):
        gc.collect()


def active() -> bool:
    """Whether :func:`submit` hands work to helpers (inside :func:`helpers`)."""
    return _EXECUTOR is not None


def submit(fn, *args) -> Future | None:
    """``fn(*args)`` on a helper: a future of its result, or None outside :func:`helpers`.

    Never blocks: a helper process is started by a thread of its own, since starting
    one waits until the fork server has imported its modules.
    """
    ex = _EXECUTOR
    if ex is None:
        return None
    outer: Future = Future()

    def hand_over():
        if outer.cancelled():
            return
        try:
            inner = ex.submit(fn, *args)
        except BaseException as exc:   # a shut-down or broken pool: the caller draws
            outer.set_exception(exc)
            return
        inner.add_done_callback(lambda f: _copy(f, outer))

    thread = threading.Thread(target=hand_over, name="smlmspine-helper-submit", daemon=True)
    _STARTING.append(thread)
    thread.start()
    return outer


def _copy(inner: Future, outer: Future) -> None:
    if outer.cancelled():   # given up on (result's timeout): nobody waits for it
        return
    exc = inner.exception()
    if exc is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(inner.result())


def result(future: Future | None, timeout_s: float | None = None):
    """The result of a :func:`submit`, or None when there was no helper, it failed or it
    has not answered within ``timeout_s`` seconds (default :data:`WAIT_S`; then the
    caller does the work).

    An :class:`~smlmspine.errors.SmlmSpineError` raised by the work itself is re-raised.
    """
    if future is None:
        return None
    from .errors import SmlmSpineError

    try:
        wait = WAIT_S if timeout_s is None else timeout_s
        return future.result(timeout=max(0.0, float(wait)))
    except SmlmSpineError:
        raise
    except Exception:   # the helper, not the work (or too late): the caller does it
        future.cancel()
        return None
