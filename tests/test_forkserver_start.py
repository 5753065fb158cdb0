"""The worker pools' fork server ignores Ctrl-C from its first instruction
(:func:`smlmspine._forkserver.start`): before, a Ctrl-C in its first ~0.1 s (Python's
start-up) printed a KeyboardInterrupt traceback beside the command's one line."""

import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = """
import signal
from multiprocessing import forkserver
from smlmspine.envelope._export import _ensure_server, _pool_context

# Ctrl-C as in a terminal (a test runner started in the background passes SIGINT on
# ignored, and a server started then would ignore it whatever the code does)
signal.signal(signal.SIGINT, signal.default_int_handler)
before = signal.getsignal(signal.SIGINT)
ctx = _pool_context()
if ctx.get_start_method() != "forkserver":
    print("none")
    raise SystemExit
_ensure_server(ctx)
pid = forkserver._forkserver._forkserver_pid
# read at once: the server is still starting Python, long before its preloads
status = open(f"/proc/{pid}/status").read()
ignored = int([l for l in status.splitlines() if l.startswith("SigIgn")][0].split()[1], 16)
print(bool(ignored & (1 << (signal.SIGINT - 1))),
      signal.getsignal(signal.SIGINT) is before,
      signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_the_fork_server_ignores_sigint_from_its_start_and_the_caller_is_as_before():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "none":
        pytest.skip("no fork server on this platform")
    # the server: SIGINT ignored; this process: its handler and signal mask restored
    assert out.stdout.split() == ["True", "True", "True"], out.stdout + out.stderr
