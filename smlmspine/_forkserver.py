"""The first module the worker pools' fork server imports
(:data:`smlmspine.envelope._export.WORKER_MODULES`): from then on the server ignores
SIGINT.

Python's fork server ignores SIGINT only once it has imported its preload modules
(~2 s here). Ctrl-C in a terminal reaches every process of the command, and a server
interrupted while importing printed a KeyboardInterrupt traceback beside the command's
one line; the command stops the server itself. Imported anywhere else (not from the
fork server's ``main``), this module does nothing.
"""

import signal
import sys


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
