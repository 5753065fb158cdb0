"""Run one fuzz case in a forked child: time limit, address-space cap, peak memory.

The child runs ``smlmspine.cli.main(["info", "--json", FILE])`` and, when that succeeds,
``smlmspine.io.read`` for the values (the same process as the tests, forked: no
interpreter start-up per case), under ``RLIMIT_AS`` = its address space at
the fork plus ``mem_cap_bytes`` and ``signal.alarm``. The parent kills it after
``timeout_s`` (a hang) and reads the peak resident memory from ``wait4``.

Outcomes: ``ok`` (read), ``error`` (an SmlmSpineError: one stderr line, exit 2),
``traceback`` (any other exception out of ``main`` or ``read``, or more than one
stderr line), ``raw`` (the reader raised an exception of its own that ``read``'s safety
net rephrased as "could not be read as FORMAT: TypeName: ..."), ``hang``, ``crash`` (the
child died: signal, memory cap).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if "smlmspine" in f.filename and "/tests/" not in f.filename] or tb[-1:]
    f = frames[-1] if frames else None
    loc = f"{Path(f.filename).name}:{f.lineno}" if f else "?"
    return f"{type(exc).__name__} at {loc}: {str(exc)[:200]}"


SAFETY_NET = re.compile(r"could not be read as [\w-]+: (\w+): ")


def _child(path: Path) -> dict:
    from smlmspine.cli import main
    from smlmspine.errors import SmlmSpineError
    from smlmspine.io import read

    res = {"outcome": "ok"}
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(["info", "--json", str(path)])
        except SystemExit as exc:
            return {"outcome": "traceback", "detail": f"SystemExit {exc.code}"}
        except BaseException as exc:   # noqa: BLE001 - this is what we are looking for
            return {"outcome": "traceback", "detail": "main: " + _where(exc)}
    text = err.getvalue()
    res["rc"] = rc
    res["stderr"] = text[-500:]
    if rc not in (0, 2):
        return {**res, "outcome": "traceback", "detail": f"exit status {rc}"}
    if rc == 2:
        if text.count("\n") != 1:
            return {**res, "outcome": "traceback",
                    "detail": f"exit 2 with {text.count(chr(10))} stderr lines: {text[:300]!r}"}
        m = SAFETY_NET.search(text)
        if m:   # the reader raised a raw exception that read()'s safety net rephrased
            return {**res, "outcome": "raw", "detail": text.strip()[:300]}
        return {**res, "outcome": "error"}
    try:
        json.loads(out.getvalue())
    except ValueError:
        return {**res, "outcome": "traceback", "detail": "info --json did not print one JSON object"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = read(path)
        except SmlmSpineError as exc:
            return {**res, "outcome": "traceback", "detail": f"info succeeded but read() failed: {exc}"}
        except BaseException as exc:  # noqa: BLE001
            return {**res, "outcome": "traceback", "detail": "read: " + _where(exc)}
    res["warnings"] = sorted({type(w.message).__name__ for w in caught})
    res["n_rows"] = table.num_rows
    cols = {}
    res["nonfinite"] = 0
    for c in ("x", "y", "z"):
        if c in table.column_names:
            v = np.asarray(table.column(c).to_numpy(zero_copy_only=False), float)
            cols[c] = v[:200].tolist()
            res["nonfinite"] += int((~np.isfinite(v)).sum())
    if "frame" in table.column_names:
        f = table.column("frame").to_numpy(zero_copy_only=False)
        res["negative_frames"] = int((np.asarray(f) < 0).sum())
    res["values"] = cols
    return res


def _drain(fd: int, chunks: list[bytes]) -> None:
    """Append what can be read from the non-blocking pipe ``fd`` now (until EOF or empty)."""
    try:
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return
            chunks.append(b)
    except BlockingIOError:
        pass


#: Time limit of the readers' HDF5/MAT probe child in the cases (below the case's own
#: limit, so a libhdf5 hang is the reader's clean refusal, not the harness's hang).
PROBE_TIMEOUT_S = "5"


def run_case(path: Path, *, timeout_s: float = 20.0, mem_cap_bytes: int = 2 << 30) -> dict:
    """Run one case in a forked child; returns the outcome dict (+ ``peak_rss_mb``, ``seconds``)."""
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    base_rss = _status_bytes("VmRSS") / 1024    # KiB, like ru_maxrss
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        code = 0
        try:
            cap = _status_bytes("VmSize") + mem_cap_bytes
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            signal.alarm(int(timeout_s) + 5)
            os.environ["SMLMSPINE_PROBE_TIMEOUT_S"] = PROBE_TIMEOUT_S
            os.chdir(path.parent)
            res = _child(path)
        except BaseException as exc:  # noqa: BLE001
            res = {"outcome": "crash", "detail": "child: " + _where(exc)}
        try:
            data = json.dumps(res, default=str).encode()
            with os.fdopen(wfd, "wb") as fh:
                fh.write(data)
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    os.set_blocking(rfd, False)
    status = rusage = None
    while True:
        _drain(rfd, chunks)
        wpid, status, rusage = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.perf_counter() - t0 > timeout_s:
            os.kill(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
            os.close(rfd)
            return {"outcome": "hang", "seconds": time.perf_counter() - t0,
                    "peak_rss_mb": rusage.ru_maxrss / 1024}
        time.sleep(0.002)
    _drain(rfd, chunks)
    os.close(rfd)
    seconds = time.perf_counter() - t0
    if os.WIFSIGNALED(status) or not chunks:
        res = {"outcome": "crash", "detail": f"child status {status} (signal "
                                             f"{os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})"}
    else:
        res = json.loads(b"".join(chunks))
    res["seconds"] = seconds
    res["peak_rss_mb"] = rusage.ru_maxrss / 1024
    res["extra_rss_mb"] = max(0.0, (rusage.ru_maxrss - base_rss) / 1024)
    return res


def _reset_peak() -> None:
    """Reset this process's peak resident memory (VmHWM), Linux >= 4.0."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _cap_address_space(mem_cap_bytes: int) -> None:
    """``RLIMIT_AS`` (soft) = this process's address space now + ``mem_cap_bytes``."""
    cap = _status_bytes("VmSize") + mem_cap_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _worker_main(conn, mem_cap_bytes: int) -> None:
    """Worker loop: read a path, run :func:`_child` on it, send the outcome (as JSON)."""
    import smlmspine.cli  # noqa: F401  (imports paid once, before the cap)
    import smlmspine.io

    os.environ["SMLMSPINE_PROBE_TIMEOUT_S"] = PROBE_TIMEOUT_S

    smlmspine.io.readers()
    _cap_address_space(mem_cap_bytes)
    conn.send_bytes(json.dumps({"ready": True, "rss_mb": _status_bytes("VmRSS") / 2 ** 20}).encode())
    while True:
        try:
            path = Path(conn.recv_bytes().decode())
        except EOFError:
            return
        rss0 = _status_bytes("VmRSS")
        # re-based before each case: the worker's address space grows over hundreds of cases
        # (allocator arenas, library caches), which a cap fixed at start-up would take from
        # the later cases (the -m slow run's text groups ran out after 1,400 cases)
        _cap_address_space(mem_cap_bytes)
        _reset_peak()
        try:
            os.chdir(path.parent)
            res = _child(path)
        except BaseException as exc:  # noqa: BLE001
            res = {"outcome": "traceback", "detail": "worker: " + _where(exc)}
        res["extra_rss_mb"] = max(0, _status_bytes("VmHWM") - rss0) / 2 ** 20
        res["peak_rss_mb"] = _status_bytes("VmHWM") / 2 ** 20
        conn.send_bytes(json.dumps(res, default=str).encode())


class Worker:
    """A spawned process that runs cases one after the other (restarted after a hang/crash).

    Cheaper than a fork per case; before each case its address space is capped at its
    current size plus ``mem_cap_bytes``. Each case's peak resident memory (VmHWM, reset before the case)
    comes back as ``peak_rss_mb`` and, above the memory before the case, ``extra_rss_mb``;
    the largest of them so far are ``peak_rss_mb``/``peak_extra_rss_mb`` here, and
    ``baseline_rss_mb`` is the resident memory once the package is imported.
    """

    def __init__(self, *, mem_cap_bytes: int = 2 << 30):
        self.mem_cap_bytes = mem_cap_bytes
        self.restarts = 0
        self.peak_rss_mb = 0.0
        self.peak_extra_rss_mb = 0.0
        self._start()

    def _start(self):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, self.mem_cap_bytes), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(120):
            raise RuntimeError("fuzz worker did not start")
        self.baseline_rss_mb = json.loads(self.conn.recv_bytes())["rss_mb"]

    def _restart(self):
        self.proc.kill()
        self.proc.join()
        self.conn.close()
        self.restarts += 1
        self._start()

    def run(self, path: Path, *, timeout_s: float = 20.0) -> dict:
        t0 = time.perf_counter()
        self.conn.send_bytes(str(path).encode())
        if not self.conn.poll(timeout_s):
            self._restart()
            return {"outcome": "hang", "seconds": time.perf_counter() - t0}
        try:
            res = json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            code = self.proc.exitcode
            self._restart()
            return {"outcome": "crash", "detail": f"worker died (exit code {code})",
                    "seconds": time.perf_counter() - t0}
        res["seconds"] = time.perf_counter() - t0
        self.peak_rss_mb = max(self.peak_rss_mb, res["peak_rss_mb"])
        self.peak_extra_rss_mb = max(self.peak_extra_rss_mb, res["extra_rss_mb"])
        return res

    def close(self):
        self.conn.close()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
