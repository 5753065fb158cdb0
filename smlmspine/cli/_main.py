"""The ``smlmspine`` parser and entry point (re-exported by :mod:`smlmspine.cli`)."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .. import __version__
from ..errors import SmlmSpineError

__all__ = ["main", "build_parser", "console_main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message):
        if message.startswith("argument ") and ": must be " in message:
            # "argument --eps-nm: must be ..." (a refused value) -> "--eps-nm must be ..."
            message = message[len("argument "):].replace(": must be ", " must be ", 1)
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")

# Command-group modules, in the order their commands appear in --help.
_COMMAND_MODULES = ("io", "simulate", "minflux", "drift", "cluster", "envelope",
                    "morphology", "voxel", "voxelmesh", "coupling", "pipeline", "batch", "report")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered.

    Returns
    -------
    argparse.ArgumentParser
        Usage errors print one line and exit with status 2.
    """
    parser = _Parser(
        prog="smlmspine",
        description="SMLM (3D STORM, MINFLUX) point clouds of neurons: localization tables, "
                    "drift, clusters, spine envelopes, neck measurements, synaptic coupling.",
        epilog="A refused command prints one line and exits with status 2, leaving no partial "
               "output. Memory a parameter would imply is refused beyond a budget (a quarter of "
               "the machine's memory, at least 1 GB); set SMLMSPINE_MEMORY_BUDGET_GB (in GB) to "
               "change it (docs/reliability.md).")
    parser.add_argument("--version", action="version", version=f"smlmspine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}._{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}._{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 ok, 2 user error (one line on stderr), 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help/--version/usage errors
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    name = " ".join(filter(None, (args.command, getattr(args, "simulate_command", None))))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return int(args.func(args) or 0)
    except SmlmSpineError as exc:
        print(f"smlmspine {name}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `smlmspine info FILE | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the environment refused (disk full, permissions): one line
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"smlmspine {name}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # an allocation the budget checks did not foresee
        print(f"smlmspine {name}: error: {_memory_message(args, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("smlmspine: interrupted", file=sys.stderr)
        return 130


def _on_sigterm(signum, frame):
    """SIGTERM: stop where the command stands (:func:`_stop_now`).

    Raising an exception here, as Python's Ctrl-C does, unwinds from wherever the main
    thread happens to be. Raised inside the start of a process pool, a numba cache load
    or a futures callback, it printed tracebacks, left semaphores to the resource
    tracker, crashed the interpreter (SIGSEGV) or hung it on a queue's feeder thread
    (SIGTERM at 0.5-4.5 s into the README job, 2026-12-05). Nothing is unwound now."""
    _stop_now(143, "smlmspine: terminated")


def _on_sigint(signum, frame):
    """Ctrl-C in the console script: as SIGTERM (:func:`_on_sigterm`), exit status 130.
    (``smlmspine.cli.main`` and ``python -m smlmspine`` keep Python's KeyboardInterrupt.)
    """
    _stop_now(130, "smlmspine: interrupted")


def _stop_now(code: int, line: str) -> None:
    """End the process at once, leaving nothing behind: the command's outputs rolled
    back (:func:`smlmspine._outputs.abandon_outputs`), its child processes (worker pools,
    their fork server, figure helpers) killed, its semaphores released (else the
    resource tracker reports them "leaked"), one ``line`` on stderr, exit ``code``.
    Exit handlers do not run (as for a process killed by the default SIGTERM action)."""
    import os
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    steps = (_abandon_outputs, _kill_children, _release_semaphores)
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - the process ends next, whatever failed
            pass
    try:
        os.write(2, (line + "\n").encode())
    finally:
        os._exit(code)


def _abandon_outputs() -> None:
    from .._outputs import abandon_outputs

    abandon_outputs()


def _kill_children() -> None:
    import multiprocessing
    import os
    import signal
    from multiprocessing import forkserver

    for p in multiprocessing.active_children():
        p.kill()
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid:
        os.kill(pid, signal.SIGKILL)
    # multiprocessing's temporary folder (the fork server's socket), removed at a
    # normal exit by a finalizer
    import shutil

    tmp = multiprocessing.current_process()._config.get("tempdir")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def _release_semaphores() -> None:
    """Unlink this process's named semaphores and tell the resource tracker (what their
    finalizers do at a normal exit)."""
    import gc
    from multiprocessing.synchronize import SemLock

    for obj in gc.get_objects():
        if isinstance(obj, SemLock):
            name = getattr(obj._semlock, "name", None)
            if name:
                try:
                    SemLock._cleanup(name)
                except OSError:
                    pass


def console_main() -> None:
    """The ``smlmspine`` console script: :func:`main`, then a quick exit.

    Once the command has returned, its outputs are written and closed. The interpreter's
    own shutdown (freeing every module and object of numpy, scipy, Open3D, numba, ...)
    then takes ~0.5 s after a ``run``, for nothing, so the process ends with
    ``os._exit`` once the streams are flushed and the exit handlers (``atexit``:
    multiprocessing's clean-up, temporary folders) have run. It exits normally while a
    non-daemon thread is still running, and whenever :func:`main` raised. SIGTERM and
    Ctrl-C end a command at once (:func:`_on_sigterm`: its outputs removed, its child
    processes killed, exit status 143 and 130).
    """
    import atexit
    import os
    import signal
    import threading

    # a job scheduler's SIGTERM (or `kill`) ends the command at once: outputs removed,
    # child processes killed, one line, exit 143 (the default would leave a partial
    # output folder and leaked semaphores)
    # (a signal the process was started with ignored stays ignored: a shell script's
    # background job, `nohup`)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):   # a closed pipe: the normal exit reports nothing
        sys.exit(code)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


#: Positional arguments that name input files, in the order they are mentioned.
_INPUT_ARGS = ("in", "inp", "input", "features", "meshes", "pre", "post", "file", "files")


def _memory_message(args, exc: MemoryError) -> str:
    """One line for a MemoryError: the command, the input file(s) and what to do."""
    names = []
    for attr in _INPUT_ARGS:
        value = getattr(args, attr, None)
        if isinstance(value, (list, tuple)):
            names += [str(v) for v in value]
        elif value is not None:
            names.append(str(value))
    on = f" on {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" if names else ""
    detail = " ".join(str(exc).split())
    detail = f" ({detail[:120]})" if detail else ""
    return (f"out of memory{on}{detail}: the input or the parameters need more memory than "
            "this machine gives; use a smaller input or larger steps, or a machine with more "
            "memory")
