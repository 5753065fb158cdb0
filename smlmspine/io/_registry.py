"""One place where every reader and writer is registered, and format sniffing.

A format module registers itself with :func:`register_reader` / :func:`register_writer`
at import time; :data:`_FORMAT_MODULES` lists the modules the registry imports (lazily,
on the first call of :func:`read`, :func:`write` or :func:`formats`).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .._outputs import atomic_write, backup_beside, current_umask, restore_backup
from ..errors import FormatError, SchemaError, SmlmSpineError
from ..schema import (META_PREFIX, first_negative_frame, metadata, negative_frame_message,
                      validate, with_history)
from ._text import HEAD_BYTES  # defined with the text helpers that need it (one-way import)

# Order matters for sniffing: specific formats first, the generic CSV reader last.
_FORMAT_MODULES = (
    "arrowfiles", "smlmzip", "picasso", "decode", "smap", "minflux",
    "rapidstorm", "thunderstorm", "zeiss", "oni", "nstorm", "generic",
)



@dataclass(frozen=True)
class Reader:
    """A registered reader (made by :func:`register_reader`, listed by :func:`readers`).

    Attributes
    ----------
    name : str
        Reader name, as given to :func:`read`'s ``format=`` (CLI: ``--format``).
    extensions : tuple of str
        Lower-case file extensions with the dot (e.g. ``(".csv",)``); a file with one of
        them is sniffed by this reader before the others.
    read : callable
        ``read(path, *, pixel_size_nm=None, **options)`` returning the canonical
        ``pyarrow.Table`` (coordinates in nm); raises :class:`FormatError` on bad input.
    sniff : callable
        ``sniff(path, head)`` gets the path and the first ``HEAD_BYTES`` (65 536) bytes
        and returns True when the content is this format.
    description : str
        One line for ``smlmspine formats`` and for the "layouts tried" list of an
        unrecognised file.
    priority : int
        Sniffing order among readers whose extension matches equally: lower first
        (default 100).
    options : tuple of str
        Names of the keyword options ``read`` takes besides ``pixel_size_nm``; others are
        refused by :func:`read`.
    """

    name: str
    extensions: tuple[str, ...]
    read: Callable[..., pa.Table]
    sniff: Callable[[Path, bytes], bool]
    description: str
    priority: int = 100
    options: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Writer:
    """A registered writer (made by :func:`register_writer`, listed by :func:`writers`).

    Attributes
    ----------
    name : str
        Writer name, as given to :func:`write`'s ``format=`` (CLI: ``--to``).
    extensions : tuple of str
        Lower-case file extensions with the dot; :func:`write` picks the writer from the
        output's extension when no format is given.
    write : callable
        ``write(table, tmp_path, *, final_path, **options)`` writes the main file to
        ``tmp_path`` (the registry renames it to ``final_path`` on success). A writer with
        sidecar files (e.g. Picasso's YAML) writes each to a ``temporary_beside`` its
        final name and returns the ``[(tmp, final), ...]`` pairs: the registry renames
        them together with the main file (``commit_files``), so a failure leaves neither
        new file and any previous sidecar untouched. Other writers return None.
    description : str
        One line for ``smlmspine formats``.
    options : tuple of str
        Names of the keyword options ``write`` takes (e.g. ``pixel_size_nm``); others are
        refused by :func:`write`.
    """

    name: str
    extensions: tuple[str, ...]
    write: Callable[[pa.Table, Path], None]
    description: str
    options: tuple[str, ...] = field(default_factory=tuple)


_READERS: dict[str, Reader] = {}
_WRITERS: dict[str, Writer] = {}
_loaded = False


def register_reader(name: str, *, extensions: tuple[str, ...], sniff: Callable[[Path, bytes], bool],
                    description: str, priority: int = 100, options: tuple[str, ...] = ()):
    """Decorator registering ``func(path, *, pixel_size_nm=None, **options)`` as a reader.

    Registering a name again replaces the earlier reader.

    Parameters
    ----------
    name : str
        Reader name (``Reader.name``).
    extensions : tuple of str
        File extensions with the dot; stored lower-case.
    sniff : callable
        ``sniff(path, head) -> bool``: whether the file (path and its first ``HEAD_BYTES``
        bytes) is this format. An exception other than :class:`~smlmspine.errors.SmlmSpineError`
        counts as "no".
    description : str
        One line for ``smlmspine formats``.
    priority : int, optional
        Sniffing order among equally matching readers: lower values are sniffed first
        (default 100).
    options : tuple of str, optional
        Keyword options the reader takes besides ``pixel_size_nm``.

    Returns
    -------
    callable
        The decorator; it registers the function as a :class:`Reader` and returns the
        function unchanged.
    """

    def deco(func):
        _READERS[name] = Reader(name, tuple(e.lower() for e in extensions), func, sniff,
                                description, priority, tuple(options))
        return func

    return deco


def register_writer(name: str, *, extensions: tuple[str, ...], description: str,
                    options: tuple[str, ...] = ()):
    """Decorator registering ``func(table, tmp_path, *, final_path, **options)`` as a writer.

    The function returns None, or the ``[(tmp, final), ...]`` sidecar files it wrote to
    temporary names (see :class:`Writer`). Registering a name again replaces the earlier
    writer.

    Parameters
    ----------
    name : str
        Writer name (``Writer.name``).
    extensions : tuple of str
        File extensions with the dot; stored lower-case.
    description : str
        One line for ``smlmspine formats``.
    options : tuple of str, optional
        Keyword options the writer takes (e.g. ``pixel_size_nm``).

    Returns
    -------
    callable
        The decorator; it registers the function as a :class:`Writer` and returns the
        function unchanged.
    """

    def deco(func):
        _WRITERS[name] = Writer(name, tuple(e.lower() for e in extensions), func, description,
                                tuple(options))
        return func

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _FORMAT_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            # Only a missing *format module* is tolerated (while the package grows);
            # a missing dependency inside a present module is a real error.
            if exc.name != f"{__package__}.{mod}":
                raise
    _loaded = True


def readers() -> dict[str, Reader]:
    """All registered readers by name.

    Returns
    -------
    dict of str to Reader
        A new dict, in sniffing order (by ``Reader.priority``, then name).

    Examples
    --------
    >>> "thunderstorm" in readers()
    True
    """
    _load()
    return dict(sorted(_READERS.items(), key=lambda kv: (kv[1].priority, kv[0])))


def writers() -> dict[str, Writer]:
    """All registered writers by name.

    Returns
    -------
    dict of str to Writer
        A new dict, in registration order.

    Examples
    --------
    >>> writers()["parquet"].extensions
    ('.parquet', '.pq')
    """
    _load()
    return dict(_WRITERS)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted({e for r in _READERS.values() for e in r.extensions} |
                      {e for w in _WRITERS.values() for e in w.extensions}, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def detect_format(path: str | Path) -> str:
    """Name of the reader whose sniffer accepts the file's content.

    Readers whose extensions match the file's are tried first, then the others, each
    group by ``Reader.priority``. The extension alone never decides. HDF5 and MAT
    files are first opened in a separate process (``probe_structure``), so a damaged
    file cannot hang or crash the caller.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        The reader's name (a key of :func:`readers`; pass it to :func:`read` as
        ``format=``).

    Raises
    ------
    FormatError
        When the path cannot be read, is empty or no reader recognises the content (the
        message lists the layouts tried).
    """
    path = Path(path)
    _load()
    head = _read_head(path)
    if not head:
        raise FormatError("the file is empty; expected a localization file", path=path)
    ext = _suffix(path)
    candidates = sorted(_READERS.values(), key=lambda r: (ext not in r.extensions, r.priority))
    for reader in candidates:
        try:
            if reader.sniff(path, head):
                return reader.name
        except SmlmSpineError:
            raise
        except Exception:  # a sniffer must never take the whole detection down
            continue
    raise FormatError(
        f"unknown format: no reader recognises the content{_first_line_hint(head)}; "
        "layouts tried, in order: "
        + "; ".join(f"{r.name} ({r.description})" for r in candidates)
        + ". Pass format= (CLI: --format), or for a custom CSV format='csv' with a column "
        "mapping", path=path)


def _first_line_hint(head: bytes) -> str:
    """`` (first line: '...')`` when the head is text, else `` (binary content)``."""
    from ._text import head_text, is_utf16

    text = head_text(head)
    if text is None:
        return " (UTF-16 text: save it as UTF-8)" if is_utf16(head) else " (binary content)"
    line = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    return f" (first line: {line[:80]!r})"


def _read_head(path: Path) -> bytes:
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. name too long, permission denied on a parent folder
        raise FormatError(f"cannot be read: {exc.strerror or exc}", path=path) from exc
    if not exists:
        raise FormatError("no such file", path=path)
    if is_dir:
        raise FormatError("is a directory, expected a localization file", path=path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise FormatError(f"cannot be read: {exc.strerror or exc}", path=path) from exc
    kind = probe_kind(head)
    if kind is not None:  # before any sniffer or reader hands the file to libhdf5 / scipy
        probe_structure(path, kind)
    return head


def read(path: str | Path, *, format: str | None = None, pixel_size_nm: float | None = None,
         **options) -> pa.Table:
    """Read any supported localization file into the canonical table.

    Parameters
    ----------
    path : str or Path
        The file.
    format : str, optional
        Reader name (see ``smlmspine formats``); detected from the content if omitted.
    pixel_size_nm : float, optional
        Pixel size for pixel-unit formats that do not store one. Never guessed.
    **options
        Reader-specific options (e.g. ``mapping=`` for the generic CSV reader).

    Returns
    -------
    pyarrow.Table
        Canonical localization table (coordinates in nm), validated.

    Raises
    ------
    FormatError
        Naming the file (and line/column where it applies) for any unreadable input.
    """
    path = Path(path)
    _load()
    if format is None:
        format = detect_format(path)
    else:
        _read_head(path)
    if format not in _READERS:
        raise FormatError(f"unknown format {format!r}; known: {', '.join(sorted(_READERS))}",
                          path=path)
    reader = _READERS[format]
    unknown = set(options) - set(reader.options)
    if unknown:
        raise FormatError(f"reader {format!r} does not take option(s) {sorted(unknown)}; "
                          f"it takes {sorted(reader.options) or 'none'}", path=path)
    try:
        table = reader.read(path, pixel_size_nm=pixel_size_nm, **options)
    except SmlmSpineError as exc:
        if isinstance(exc, FormatError) and exc.path is not None:
            raise
        raise FormatError(str(exc), path=path) from exc
    except MemoryError:
        raise
    except Exception as exc:  # safety net: never a bare traceback for a bad file
        raise FormatError(f"could not be read as {format}: {type(exc).__name__}: {exc}",
                          path=path) from exc
    try:
        validate(table)
    except SchemaError as exc:
        raise FormatError(str(exc), path=path) from exc
    _refuse_negative_frames(table, path)
    _refuse_impossible_coordinates(table, path)
    return _with_reader_name(table, format, path)


def _refuse_negative_frames(table: pa.Table, path: Path) -> None:
    """One check for every reader (and writer): frames count from 0 or 1."""
    found = first_negative_frame(table)
    if found is None:
        return
    meta = table.schema.field("frame").metadata or {}
    column = (meta.get(b"original_name") or b"frame").decode(errors="replace")
    raise FormatError(negative_frame_message(found), path=path, column=column)


#: Largest |x|, |y|, |z| a localization may have, nm (1 m: no microscope's field of view
#: or stage travel comes near; a larger value is a damaged number or a wrong unit).
#: Checked by :func:`read` for every format (after unit conversion) and by :func:`write`
#: (so no writer produces a file the readers refuse); see docs/reliability.md.
MAX_COORDINATE_NM = 1e9


def _refuse_impossible_coordinates(table: pa.Table, path: Path, *,
                                   in_file: bool = True) -> None:
    """One check for every reader and writer: coordinates within +-1 m.

    ``in_file`` names the column as the file calls it (its ``original_name``, for a table
    just read); ``False`` names the table's column (for a table about to be written).

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> _refuse_impossible_coordinates(make_table({"x": [1.0, -1e300], "y": [0.0, 0.0]}), Path("a.csv"))
    Traceback (most recent call last):
    ...
    smlmspine.errors.FormatError: a.csv, column 'x': |x| must be at most 1e+09 nm (1 m: larger is a damaged value or a wrong unit); found -1e+300 at row 1 (rows count from 0; 1 such row)
    """
    import numpy as np
    import pyarrow.compute as pc

    # with a relative tolerance of 1e-12: a pixel format gives 1e9 nm back as 1e9 nm +
    # 1 ulp, and what a writer accepted, its reader (and the next writer) must accept
    limit = MAX_COORDINATE_NM * (1.0 + 1e-12)
    for name in ("x", "y", "z"):
        if name not in table.column_names or table.num_rows == 0:
            continue
        col = table.column(name)
        if not pa.types.is_floating(col.type) and not pa.types.is_integer(col.type):
            continue
        low, high = (pc.min_max(col)[k].as_py() for k in ("min", "max"))
        if low is None or (-limit <= low and high <= limit):
            continue
        values = np.asarray(col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array)
                            else col.to_numpy())
        with np.errstate(invalid="ignore"):
            bad = np.abs(values) > limit
        row = int(np.argmax(bad))
        count = int(bad.sum())
        meta = table.schema.field(name).metadata or {}
        original = meta.get(b"original_name") if in_file else None
        column = (original or name.encode()).decode(errors="replace")
        raise FormatError(f"|{name}| must be at most {MAX_COORDINATE_NM:g} nm (1 m: larger is a "
                          f"damaged value or a wrong unit); found {values[row]:g} at row {row} "
                          f"(rows count from 0; {count} such row{'s' if count > 1 else ''})",
                          path=path, column=column)


def _with_reader_name(table: pa.Table, format: str, path: Path) -> pa.Table:
    """Fill the ``format``/``source`` metadata a file did not record (e.g. a Parquet
    file written from a table built in memory said ``format: None``); a recorded origin
    (a Parquet file converted from ThunderSTORM keeps ``thunderstorm``) is kept."""
    meta = metadata(table)
    updates = {}
    if meta.get("format") is None:
        updates["format"] = format
    if meta.get("source") is None:
        updates["source"] = str(path)
    if not updates:
        return table
    raw = dict(table.schema.metadata or {})
    for key, value in updates.items():
        raw[(META_PREFIX + key).encode()] = json.dumps(value).encode()
    return table.replace_schema_metadata(raw)


#: Writers whose files are HDF5/MAT (probed on reading, see probe_structure).
_PROBE_TRUSTED_WRITERS = ("picasso",)


def write(table: pa.Table, path: str | Path, *, format: str | None = None, **options) -> Path:
    """Write a table; the format comes from ``format`` or the file extension.

    The file is written to a temporary name in the same folder and renamed at the end,
    so a failure never leaves a partial output (a writer's sidecar files, e.g. Picasso's
    ``.yaml``, are renamed with it: all or none). The file gets the permissions a plain
    ``open()`` would give it (umask respected).

    Parameters
    ----------
    table : pyarrow.Table
        Canonical localization table (coordinates in nm). Non-finite values are allowed
        where the format can store them; negative frames and coordinates beyond
        +-1e9 nm (1 m) are refused, so no file is written that :func:`read` would refuse.
    path : str or Path
        Output file; its folder must exist. An existing file is replaced.
    format : str, optional
        Writer name (a key of :func:`writers`); taken from the extension if omitted.
    **options
        Writer-specific options (e.g. ``pixel_size_nm=`` for Picasso HDF5).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    FormatError
        Naming the output: unknown extension or writer, an option the writer does not
        take, a missing output folder, a table the format cannot hold (negative frames,
        a coordinate beyond 1 m, a column it cannot store), or a failed write.
    SchemaError
        The table is not a canonical localization table (e.g. no ``x``/``y``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from smlmspine.schema import make_table
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> out = write(make_table({"x": [1.5, 2.0], "y": [0.0, 3.0]}), d / "a.parquet")
    >>> read(out).column("x").to_pylist()
    [1.5, 2.0]
    """
    path = Path(path)
    _load()
    if format is None:
        ext = _suffix(path)
        matches = [w for w in _WRITERS.values() if ext in w.extensions]
        if not matches:
            known = sorted({e for w in _WRITERS.values() for e in w.extensions})
            raise FormatError(f"cannot tell the output format from extension {ext!r}; "
                              f"known: {', '.join(known)} (or pass format=)", path=path)
        writer = matches[0]
    else:
        if format not in _WRITERS:
            raise FormatError(f"no writer {format!r}; known: {', '.join(sorted(_WRITERS))}",
                              path=path)
        writer = _WRITERS[format]
    unknown = set(options) - set(writer.options)
    if unknown:
        raise FormatError(f"writer {writer.name!r} does not take option(s) {sorted(unknown)}; "
                          f"it takes {sorted(writer.options) or 'none'}", path=path)
    validate(table, require_finite=False)
    # never write a file the readers would refuse
    _refuse_negative_frames(table, path)
    _refuse_impossible_coordinates(table, path, in_file=False)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FormatError(f"output folder {str(parent)!r} does not exist", path=path)
    table = with_history(table, "io.write", {"format": writer.name, "path": str(path)})
    temporaries: list[Path] = []
    try:
        tmp_path = temporary_beside(path)  # inside the try: a refused mkstemp is a FormatError
        temporaries.append(tmp_path)
        sidecars = list(writer.write(table, tmp_path, final_path=path, **options) or [])
        temporaries.extend(Path(tmp) for tmp, _ in sidecars)
        commit_files(sidecars + [(tmp_path, path)])
        if writer.name in _PROBE_TRUSTED_WRITERS:
            trust_written(path)   # written by h5py here: reading it back needs no probe
    except SmlmSpineError:
        raise
    except Exception as exc:
        raise FormatError(f"could not be written as {writer.name}: {type(exc).__name__}: {exc}",
                          path=path) from exc
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
    return path


def temporary_beside(path: str | Path) -> Path:
    """A new, empty temporary file in the folder of ``path`` (hidden, ``.part``), for
    :func:`commit_files`; the caller removes it if the commit does not happen."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    os.close(fd)
    return Path(tmp)


def commit_files(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each temporary file to its final name: all of them, or none.

    A writer of several files (Picasso: ``.hdf5`` + ``.yaml``) writes them all to
    temporary names first; the renames happen here, in the order given (put the main
    file last). If a rename fails, the files already renamed are taken back: a file that
    existed before is restored (from a hard link made just before it was replaced), a
    new one is removed. The temporary files are left for the caller to remove.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> a, b = temporary_beside(d / "a.txt"), temporary_beside(d / "b.txt")
    >>> _ = a.write_text("A"), b.write_text("B")
    >>> commit_files([(a, d / "a.txt"), (b, d / "b.txt")])
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt', 'b.txt']
    """
    mode = 0o666 & ~current_umask()
    done: list[tuple[Path, Path | None]] = []
    try:
        for tmp, final in pairs:
            # chmod after the writer ran: a writer may have replaced the temporary file
            os.chmod(tmp, mode)
            backup = backup_beside(Path(final), copy=True)
            try:
                os.replace(tmp, final)
            except BaseException:
                if backup is not None:
                    backup.unlink(missing_ok=True)
                raise
            done.append((Path(final), backup))
    except BaseException:
        for final, backup in reversed(done):
            try:
                if backup is not None:
                    restore_backup(backup, final)
                else:
                    final.unlink(missing_ok=True)
            except OSError:  # pragma: no cover - best effort; the first error is raised
                pass
        raise
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    The file gets the permissions a plain ``open(path, "w")`` would give it
    (``0o666`` masked by the current umask), not the ``0o600`` of
    :func:`tempfile.mkstemp`, so group members can read outputs when the umask says so.

    Parameters
    ----------
    path : str or Path
        The final output file. Its folder must exist; an existing file is replaced only
        when the ``with`` block succeeds.

    Yields
    ------
    Path
        A new temporary file (hidden, in the same folder) to write to. If the block
        raises, it is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_output(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("ok")
    >>> (d / "a.txt").read_text()
    'ok'
    >>> oct((d / "a.txt").stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    True
    """
    with atomic_write(path) as tmp_path:
        yield tmp_path


# ----------------------------------------------------------------------------------------
# Probing HDF5 and MAT v5 files in a separate process
#
# libhdf5 and scipy's MAT v5 reader are C code: a damaged file can make them loop forever
# (libhdf5 reading a variable-length attribute from a damaged global heap) or crash the
# interpreter (scipy dereferencing a wild pointer), and neither can be interrupted from
# Python. Before the first h5py/scipy call on a file (the registry's _read_head, and
# open_hdf5 / hdf5_keys / check_mat5_variables in _hdf5 for readers called directly),
# probe_structure runs the same library calls on it in a child process
# (``python -m smlmspine.io._hdf5``) with a time limit: the child opens the file and reads
# every object, attribute and the first element of every dataset (HDF5), or loads every
# variable (MAT v5). A child that does not finish in time, or dies from a signal, makes
# the file a FormatError; anything else (the child finished, whatever it found) lets the
# reader go on, and the reader reports what is wrong with the file itself.

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(head: bytes) -> bool:
    """Whether ``head`` starts an HDF5 file (signature at 0, or after a 512/1024/2048-byte user block).

    Examples
    --------
    >>> is_hdf5(HDF5_SIGNATURE + b"...")
    True
    >>> is_hdf5(b"x,y\\n1,2\\n")
    False
    """
    return any(head[o:o + 8] == HDF5_SIGNATURE for o in (0, 512, 1024, 2048))


#: Environment variable: seconds the child may take on a file of up to 20 MB (1 s more
#: per further 20 MB); ``0`` switches the probe off.
PROBE_TIMEOUT_ENV = "SMLMSPINE_PROBE_TIMEOUT_S"
#: Default of :data:`PROBE_TIMEOUT_ENV`.
DEFAULT_PROBE_TIMEOUT_S = 20.0
_PROBE_MARK = "smlmspine-probe-done"   # the child prints it when it has finished
_PROBE_CHILD_ENV = "SMLMSPINE_PROBE_CHILD"
_PROBED: dict[tuple, None] = {}   # files probed by this process (path, inode, size, mtime)


def probe_kind(head: bytes) -> str | None:
    """``"hdf5"`` (HDF5, MATLAB v7.3), ``"mat5"`` (MATLAB v5) or ``None`` for ``head``.

    A MAT v5 file is recognised as scipy recognises it (version and byte-order marks at
    bytes 124-127), whatever its header text says.

    Examples
    --------
    >>> mat = b"MATLAB 5.0 MAT-file".ljust(124) + b"\\x00\\x01IM"
    >>> probe_kind(HDF5_SIGNATURE + bytes(8)), probe_kind(mat), probe_kind(b"x,y")
    ('hdf5', 'mat5', None)
    """
    if is_hdf5(head):
        return "hdf5"
    if len(head) >= 128 and head[124:128] in (b"\x00\x01IM", b"\x01\x00MI"):
        return "mat5"
    return None


def probe_timeout_s(size_bytes: int) -> float:
    """Time limit of the probe for a file of ``size_bytes`` (0: no probe)."""
    text = os.environ.get(PROBE_TIMEOUT_ENV, "").strip()
    try:
        base = float(text) if text else DEFAULT_PROBE_TIMEOUT_S
    except ValueError:
        base = float("nan")
    if not base >= 0 or base == float("inf"):
        raise FormatError(f"environment variable {PROBE_TIMEOUT_ENV} must be a number of "
                          f"seconds >= 0, got {text!r}")
    if base == 0:
        return 0.0
    return base + max(0, size_bytes - 20_000_000) / 20e6


def probe_structure(path: Path, kind: str, *, budget: int | None = None) -> None:
    """Refuse ``path`` when its HDF5/MAT structure hangs or crashes the C library.

    ``kind`` is ``"hdf5"`` or ``"mat5"`` (:func:`probe_kind`); ``budget``: the table
    budget in bytes for the MAT checks (default: the child asks
    :func:`smlmspine.io.smlmzip.table_budget_bytes`).
    Runs once per file and process (the result is remembered by path, inode, size and
    modification time).

    Raises
    ------
    FormatError
        ``<file>: damaged HDF5 file: the HDF5 library did not finish reading its metadata
        within N s ...`` or ``... crashed (SIGSEGV) ...``.
    """
    import subprocess

    path = Path(path)
    if os.environ.get(_PROBE_CHILD_ENV):
        return   # this is the child
    key = _probe_key(path)
    if key is None or key in _PROBED:
        return   # a missing file: the reader reports it
    timeout = probe_timeout_s(key[2])
    if timeout == 0:
        return
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
    env.pop("PYTHONSTARTUP", None)
    env[_PROBE_CHILD_ENV] = "1"
    # (the child computes the MAT budget itself when the caller does not give it)
    cmd = [sys.executable, "-m", "smlmspine.io._hdf5", kind, str(path),
           "auto" if budget is None else repr(budget)]
    label, library, what = (("HDF5", "the HDF5 library", "metadata") if kind == "hdf5" else
                            ("MAT v5", "scipy's MAT reader", "variables"))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise FormatError(f"damaged {label} file: {library} did not finish reading its {what} "
                          f"within {timeout:g} s (checked in a separate process; to allow more "
                          f"time set {PROBE_TIMEOUT_ENV})", path=path) from None
    except OSError:   # no process can be started here: read without the probe
        return
    if proc.returncode < 0:
        import signal

        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise FormatError(f"damaged {label} file: {library} crashed reading its {what} ({name}, "
                          "in a separate process); refused", path=path)
    if proc.returncode == 0 and _PROBE_MARK.encode() in proc.stdout:
        _PROBED[key] = None
    # any other exit (the child could not run, e.g. no memory to start): no verdict, the
    # reader goes on (and a library hang or crash would then hit this process)


def _probe_key(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def trust_written(path: Path) -> None:
    """Remember a file this process has just written with h5py/scipy (the package's
    writers) as probed: reading it back costs no probe while it is unchanged."""
    key = _probe_key(Path(path))
    if key is not None:
        _PROBED[key] = None
