"""The first module the worker pools' fork server imports
(:data:`smlmspine.envelope._export.WORKER_MODULES`): from then on the server ignores
SIGINT.

Python's fork server ignores SIGINT only once it has imported its preload modules
(~2 s here). Ctrl-C in a terminal reaches every process of the command, and a server
interrupted while importing printed a KeyboardInterrupt traceback beside the command's
one line; the command stops the server itself. Imported anywhere else (not from the
fork server's ``main``), this module does nothing.

That left the server's first ~0.1 s, before it reaches this module (Python's start-up
and ``multiprocessing.forkserver``'s own imports): a Ctrl-C 0.4 s into ``run``, on a
machine busy with another job, printed the traceback from ``multiprocessing/forkserver.py``
line 11 (a CI run, 2026-12-05). :func:`start` starts the server with SIGINT ignored,
which it inherits from its first instruction (a blocked signal is not: the new process
came up with an empty signal mask).
"""

import signal
import sys


def start() -> None:
    """``multiprocessing.forkserver.ensure_running()``; a server started here, from the
    main thread, ignores SIGINT from its first instruction (see the module's text). A
    server already running is left as it is.

    For the few milliseconds of the start, this process ignores SIGINT too, with the
    signal blocked in this thread: a Ctrl-C then stays pending here and is handled once
    the start returns (on Linux a blocked signal is kept even while ignored), unless
    another thread of this process, not blocking it, takes it meanwhile.
    """
    import threading
    from multiprocessing import forkserver

    old = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or old is None:
        forkserver.ensure_running()   # (only the main thread can set a handler)
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # inherited by the new server
        try:
            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, old)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _imported_by_fork_server() -> bool:
    frame = sys._getframe()
    while frame is not None:
        if (frame.f_code.co_name == "main"
                and frame.f_globals.get("__name__") == "multiprocessing.forkserver"):
            return True
        frame = frame.f_back
    return False


if _imported_by_fork_server():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
