"""Pool workers end with the process that started them (fixed, no randomness)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from smlmspine._parentwatch import process_alive

_SCRIPT = textwrap.dedent("""
    import os, sys, time, multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from smlmspine._parentwatch import exit_with

    def job(_):
        time.sleep(120)          # a long job, still running when the caller is killed
        return os.getpid()

    def pid(_):
        return os.getpid()

    if __name__ == "__main__":
        ctx = mp.get_context(sys.argv[1])
        with ProcessPoolExecutor(2, mp_context=ctx, initializer=exit_with,
                                 initargs=(os.getpid(), 0.2)) as ex:
            pids = sorted(set(ex.map(pid, range(8))))
            print(" ".join(map(str, pids)), flush=True)
            futs = [ex.submit(job, i) for i in range(2)]
            time.sleep(120)
""")


def test_process_alive():
    assert process_alive(os.getpid())
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not process_alive(p.pid)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_end_when_the_caller_is_killed(tmp_path, method):
    import multiprocessing as mp

    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    script = tmp_path / "pool.py"
    script.write_text(_SCRIPT)
    # (stderr: the killed caller's resource tracker complains about its semaphores;
    # TMPDIR: the killed caller cannot remove its fork server's temporary folder, so it
    # goes under tmp_path, not /tmp)
    proc = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, TMPDIR=str(tmp_path)))
    workers = []
    try:
        workers = [int(x) for x in proc.stdout.readline().split()]
        assert workers and all(process_alive(w) for w in workers)
        time.sleep(0.5)                      # the long jobs are running
        proc.send_signal(signal.SIGTERM)     # not SIGINT: nothing tells the workers
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20.0
        while any(process_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(process_alive(w) for w in workers)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
