"""Output transactions: check every output before the work, undo everything on failure.

A command that writes files opens one :class:`Outputs` and declares each output with
:meth:`Outputs.file` or :meth:`Outputs.folder` *before* it computes anything. A
declaration checks the path at once (its folder exists and is a folder that can be
written; a file is not expected where a folder exists, or the reverse) and raises
:class:`~smlmspine.errors.FormatError` naming the option and the path. If the command
then fails, for any reason (a bad parameter found late, a full disk, Ctrl-C), leaving the
``with`` block removes every file and folder the command created and puts back every
file it replaced (kept meanwhile as a hard link, so without copying), and an
:class:`OSError` becomes one :class:`FormatError` line naming the path. Each file is
itself written atomically (temporary name, then rename), so no reader ever sees half a
file.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> try:
...     with Outputs() as out:
...         a = out.file(d / "a.txt", option="-o")
...         with atomic_path(a) as tmp:
...             _ = tmp.write_text("ok")
...         raise RuntimeError("late failure")
... except RuntimeError:
...     pass
>>> sorted(p.name for p in d.iterdir())
[]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

from .errors import FormatError

__all__ = ["Outputs", "atomic_write", "atomic_path", "backup_beside", "restore_backup",
           "current_umask", "check_output_file", "check_output_folder", "abandon_outputs"]


_UMASK_LOCK = threading.Lock()
#: The output transactions in progress and the temporary files of atomic writes not yet
#: renamed: what :func:`abandon_outputs` undoes when a command is stopped at once (SIGTERM).
_LIVE_LOCK = threading.Lock()
_LIVE_OUTPUTS: list = []
_LIVE_TEMPS: set = set()


def abandon_outputs() -> None:
    """Undo every output transaction in progress and remove every temporary file of an
    unfinished atomic write, without unwinding the code that made them.

    For a command stopped where it stands (the console script's SIGTERM handler, which
    then ends the process): the same roll-back as an exception leaving the
    :class:`Outputs` block. Errors are ignored: this is the last thing the process does.
    """
    with _LIVE_LOCK:
        outputs = list(reversed(_LIVE_OUTPUTS))
        temps = list(_LIVE_TEMPS)
        _LIVE_OUTPUTS.clear()
        _LIVE_TEMPS.clear()
    for out in outputs:
        try:
            out._rollback()
        except Exception:  # noqa: BLE001 - the process ends next
            pass
    for tmp in temps:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read with
    :func:`os.umask` under a lock, setting the most restrictive mask (``0o077``) for
    the instant of the swap, so a file another thread creates meanwhile is never made
    more readable than intended.

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask & 0o777


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _label(option: str | None) -> str:
    return f"{option}: " if option else ""


def check_output_file(path, *, option: str | None = None) -> Path:
    """Check that a file can be written at ``path``; return it as a :class:`Path`.

    The folder must exist, be a folder and be writable; ``path`` must not be an existing
    folder.
    """
    path = Path(path)
    parent = _parent(path)
    if path.is_dir():
        raise FormatError(f"{_label(option)}is an existing folder; expected a file name", path=path)
    _check_folder_writable(parent, path, option)
    return path


def _check_folder_writable(folder: Path, path: Path, option: str | None) -> None:
    # walk up to the first component that exists, to say what is wrong
    probe = folder
    while not probe.exists() and probe != _parent(probe):
        if probe.is_symlink():
            break
        probe = _parent(probe)
    if not folder.exists():
        if probe.exists() and not probe.is_dir():
            raise FormatError(f"{_label(option)}{str(probe)!r} is a file, not a folder", path=path)
        raise FormatError(f"{_label(option)}output folder {str(folder)!r} does not exist", path=path)
    if not folder.is_dir():
        raise FormatError(f"{_label(option)}{str(folder)!r} is a file, not a folder", path=path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FormatError(f"{_label(option)}output folder {str(folder)!r} is not writable", path=path)


def check_output_folder(path, *, option: str | None = None, parents: bool = False) -> Path:
    """Check that ``path`` is an existing folder or can be created: its parent exists
    (with ``parents``: its nearest existing ancestor) and is a writable folder."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise FormatError(f"{_label(option)}is an existing file; expected a folder", path=path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise FormatError(f"{_label(option)}folder is not writable", path=path)
        return path
    parent = _parent(path)
    if parents:
        while not parent.exists() and not parent.is_symlink() and parent != _parent(parent):
            parent = _parent(parent)
    _check_folder_writable(parent, path, option)
    return path


@contextmanager
def atomic_write(path, *, keep_suffix: bool = False):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    The one atomic write of the package (:func:`smlmspine.io.atomic_output`,
    :func:`atomic_path`). The temporary file is hidden (``.NAME.*.part``; with
    ``keep_suffix`` ``.STEM.*.part.EXT``, for writers that choose the format from the
    extension) and removed on failure; on success it gets the permissions a plain
    ``open(path, "w")`` would give (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
    """
    path = Path(path)
    if keep_suffix:
        prefix, suffix = f".{path.stem}.", ".part" + path.suffix
    else:
        prefix, suffix = f".{path.name}.", ".part"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=_parent(path))
    os.close(fd)
    tmp_path = Path(tmp)
    with _LIVE_LOCK:
        _LIVE_TEMPS.add(tmp_path)
    try:
        yield tmp_path
        # chmod after the writer ran: a writer may have replaced the temporary file
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
        with _LIVE_LOCK:
            _LIVE_TEMPS.discard(tmp_path)


def atomic_path(path):
    """:func:`atomic_write` keeping the extension (for matplotlib, which picks the format
    from it)."""
    return atomic_write(path, keep_suffix=True)


def backup_beside(path, *, copy: bool = False) -> Path | None:
    """A second, hidden name beside the existing ``path`` (``.NAME.*.smlmspine-backup``) so
    that a replaced file can be put back (:func:`restore_backup`); ``None`` when nothing
    exists there (or, without ``copy``, when no link can be made).

    A file gets a hard link (no copy: a writer that replaces the file by a rename leaves
    the link untouched); a symlink gets a symlink to the same target; with ``copy`` a file
    system without hard links gets a copy.
    """
    path = Path(path)
    if not os.path.lexists(path) or not (path.is_symlink() or path.is_file()):
        return None
    backup = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.smlmspine-backup")
    try:
        if path.is_symlink():
            os.symlink(os.readlink(path), backup)
        else:
            os.link(path, backup)
    except (OSError, NotImplementedError):
        if not copy:
            return None
        shutil.copy2(path, backup, follow_symlinks=False)
    return backup


def restore_backup(backup: Path, path: Path) -> None:
    """Put ``backup`` (:func:`backup_beside`) back under ``path``.

    When ``path`` is still the very file the backup links to (nothing replaced it), only
    the backup name is removed: ``rename`` between two links of one file does nothing.
    """
    try:
        a, b = os.lstat(backup), os.lstat(path)
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
            os.unlink(backup)
            return
    except FileNotFoundError:
        pass
    os.replace(backup, path)


class Outputs:
    """The outputs of one command; a context manager that undoes them on failure.

    See the module docstring. Declare outputs with :meth:`file` / :meth:`folder` before
    the work; on an exception inside the ``with`` block, created paths are removed and
    replaced files restored; an :class:`OSError` is re-raised as :class:`FormatError`.
    """

    def __init__(self):
        self._files: list[tuple[Path, Path | None, bool]] = []  # (target, backup, existed)
        self._new_folders: list[Path] = []                     # created, outermost first
        self._folders: list[tuple[Path, set[str], Path | None, dict]] = []
        self._active = False

    # -- declarations ---------------------------------------------------------------
    def file(self, path, *, option: str | None = None) -> Path | None:
        """Declare an output file (``None`` passes through); check it; return its Path."""
        if path is None:
            return None
        path = check_output_file(path, option=option)
        if any(p == path for p, _, _ in self._files):
            raise FormatError(f"{_label(option)}the same file is given for two outputs", path=path)
        existed = path.exists() or path.is_symlink()
        backup = self._link_backup(path) if existed else None
        self._files.append((path, backup, existed))
        return path

    def folder(self, path, *, option: str | None = None, parents: bool = False) -> Path | None:
        """Declare an output folder; check it and create it (``parents``: also missing
        parent folders, else the parent must exist).

        Files already in an existing folder are remembered: on failure, what the
        command added is removed and what it replaced is put back.
        """
        if path is None:
            return None
        path = check_output_folder(path, option=option, parents=parents)
        if path.is_dir():
            before = {p.name for p in path.iterdir()}
            backup_dir, links = self._snapshot(path)
            self._folders.append((path, before, backup_dir, links))
            return path
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = _parent(probe)
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise FormatError(f"{_label(option)}cannot create the folder: "
                              f"{exc.strerror or exc}", path=path) from None
        self._new_folders.append(missing[-1])
        return path

    # -- backups ----------------------------------------------------------------------
    @staticmethod
    def _link_backup(path: Path) -> Path | None:
        """A second name for the current file (a hard link, or a copy of a symlink)."""
        return backup_beside(path)

    @staticmethod
    def _snapshot(folder: Path, limit: int = 10000):
        files = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
        if not files or len(files) > limit:
            return None, {}
        backup_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".smlmspine-backup",
                                           dir=_parent(folder)))
        links = {}
        for p in files:
            try:
                os.link(p, backup_dir / p.name)
                links[p.name] = os.stat(p).st_ino
            except OSError:
                pass
        return backup_dir, links

    # -- context ------------------------------------------------------------------------
    def __enter__(self) -> "Outputs":
        self._active = True
        with _LIVE_LOCK:
            _LIVE_OUTPUTS.append(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        self._active = False
        if exc_type is None:
            self._forget()      # committed: a stop from now on leaves the outputs
            self._discard_backups()
            return False
        self._rollback()
        self._forget()          # (a stop during the roll-back finishes it)
        if isinstance(exc, OSError) and not isinstance(exc, FormatError):
            name = exc.filename if exc.filename is not None else None
            what = exc.strerror or str(exc)
            raise FormatError(f"cannot write: {what}", path=name) from None
        return False

    def _forget(self) -> None:
        with _LIVE_LOCK:
            if self in _LIVE_OUTPUTS:
                _LIVE_OUTPUTS.remove(self)

    def _discard_backups(self) -> None:
        for _, backup, _ in self._files:
            if backup is not None:
                backup.unlink(missing_ok=True)
        for _, _, backup_dir, _ in self._folders:
            if backup_dir is not None:
                shutil.rmtree(backup_dir, ignore_errors=True)

    def _rollback(self) -> None:
        for path, backup, existed in reversed(self._files):
            try:
                if backup is not None:
                    restore_backup(backup, path)
                elif not existed and (path.is_file() or path.is_symlink()):
                    path.unlink()
            except OSError:
                pass
        for folder, before, backup_dir, links in reversed(self._folders):
            try:
                for p in folder.iterdir():
                    if p.name not in before:
                        if p.is_dir() and not p.is_symlink():
                            shutil.rmtree(p, ignore_errors=True)
                        else:
                            p.unlink(missing_ok=True)
                    elif p.name in links and (not p.exists() or os.stat(p).st_ino != links[p.name]):
                        os.replace(backup_dir / p.name, p)
            except OSError:
                pass
            if backup_dir is not None:
                shutil.rmtree(backup_dir, ignore_errors=True)
        for folder in reversed(self._new_folders):
            shutil.rmtree(folder, ignore_errors=True)
