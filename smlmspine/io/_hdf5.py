"""Helpers shared by the HDF5-based readers (Picasso, DECODE, SMAP v7.3)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import FormatError

__all__ = ["HDF5_SIGNATURE", "MAT73_HEADER", "MAT5_HEADER", "is_hdf5", "open_hdf5",
           "hdf5_keys", "check_dataset_size", "check_dataset_type", "check_mat5_variables",
           "probe_kind", "probe_structure", "PROBE_TIMEOUT_ENV", "DEFAULT_PROBE_TIMEOUT_S"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: MATLAB v7.3 files are HDF5 files with a 512-byte user block that starts with this text.
MAT73_HEADER = b"MATLAB 7.3 MAT-file"
#: MATLAB level-5 MAT files (v5, v6, v7) start with this text (scipy.io.loadmat reads them).
MAT5_HEADER = b"MATLAB 5.0 MAT-file"


#: MAT v5 struct/cell arrays with more elements are refused before ``loadmat`` (which builds
#: one Python object per element: a flipped bit in a 1 x 1 struct's dimensions asked for
#: 10^9 of them, minutes and gigabytes).
MAX_MAT5_CONTAINER_ELEMENTS = 1 << 16


def check_mat5_variables(path: Path, names=None) -> None:
    """Refuse a MATLAB v5 file whose variable headers declare more than can be read.

    Reads the headers only (:func:`scipy.io.whosmat`): struct/cell arrays may have at most
    :data:`MAX_MAT5_CONTAINER_ELEMENTS` elements, numeric arrays at most the table budget
    (:func:`smlmspine.io.smlmzip.table_budget_bytes`) at 8 bytes per element. ``names``:
    the variables that will be loaded (default all). v7.3 files are left to the caller.
    """
    from .smlmzip import table_budget_bytes

    budget = table_budget_bytes()
    _walk_mat5(path, budget)
    probe_structure(path, "mat5", budget=budget)
    _check_mat5_headers(path, names, budget)


def _check_mat5_headers(path: Path, names, budget: int | None) -> None:
    import math

    from scipy.io import whosmat

    try:
        variables = whosmat(str(path))
    except NotImplementedError:   # MATLAB v7.3: the caller says what to do
        return
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for damaged headers
        raise FormatError(f"not a readable MAT file: {type(exc).__name__}: {exc}", path=path) from exc
    for name, shape, cls in variables:
        if names is not None and name not in names:
            continue
        count = math.prod(int(k) for k in shape)
        if cls in ("struct", "cell", "object") and count > MAX_MAT5_CONTAINER_ELEMENTS:
            raise FormatError(f"variable {name!r} declares a {cls} array of shape {tuple(shape)} "
                              f"({count:,} elements; at most {MAX_MAT5_CONTAINER_ELEMENTS:,} are "
                              "read): damaged header? Refused before reading", path=path)
        if budget is not None and count * 8 > budget:
            raise FormatError(f"variable {name!r} declares shape {tuple(shape)} ({count:,} "
                              f"elements), more than the {budget:,}-byte budget; refused before "
                              "reading", path=path)


#: MAT v5 data type codes scipy reads (miINT8..miDOUBLE, miINT64, miUINT64, miMATRIX,
#: miCOMPRESSED, miUTF8/16/32); others made scipy 1.17's Cython reader dereference a NULL
#: or wild pointer (segmentation fault, found by tests/fuzz scans).
_MAT5_DATA_TYPES = frozenset((1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18))


def _walk_mat5(path: Path, budget: int | None) -> None:
    """Check every element tag of a MATLAB v5 file before scipy parses it.

    Tags must carry a known data type code and fit in their parent; miMATRIX elements are
    walked recursively (their contents are tags too), miCOMPRESSED ones are inflated (at
    most ``budget`` bytes) and walked.
    """
    import struct
    import zlib

    data = path.read_bytes()
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        return   # not a v5 file: scipy reports it
    fmt = "<II" if data[126:128] == b"IM" else ">II"

    def bad(message):
        raise FormatError(f"not a readable MAT v5 file (truncated or damaged): {message}; refused "
                          "before reading", path=path)

    def walk(buf, start, end, depth, top):
        if depth > 64:
            bad("elements nested more than 64 deep")
        pos = start
        while pos + 8 <= end:
            w0, w1 = struct.unpack_from(fmt, buf, pos)
            small = w0 >> 16
            if small:   # small data element: type and size in the first word, data in the second
                if w0 & 0xFFFF not in _MAT5_DATA_TYPES or small > 4:
                    bad(f"invalid small element (type {w0 & 0xFFFF}, {small} bytes) at byte {pos}")
                pos += 8
                continue
            mdtype, nbytes = w0, w1
            body, stop = pos + 8, pos + 8 + nbytes
            if stop > end:
                bad(f"element at byte {pos} declares {nbytes:,} bytes; only {end - body:,} follow")
            if mdtype == 15 and top:
                out = zlib.decompressobj()
                try:
                    inner = out.decompress(buf[body:stop], (budget or (1 << 40)) + 1)
                except zlib.error as exc:
                    bad(f"compressed element at byte {pos} does not inflate ({exc})")
                if budget is not None and len(inner) > budget:
                    bad(f"compressed element at byte {pos} inflates beyond the {budget:,}-byte budget")
                walk(inner, 0, len(inner), depth + 1, True)
                pos = stop
                continue
            if mdtype == 14:
                walk(buf, body, stop, depth + 1, False)
            elif mdtype not in _MAT5_DATA_TYPES:
                bad(f"unknown data type code {mdtype} at byte {pos}")
            pos = stop + (-nbytes % 8)

    walk(data, 128, len(data), 0, True)


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


@contextmanager
def open_hdf5(path: Path, what: str):
    """Open an HDF5 file read-only; any failure becomes a :class:`FormatError` naming the file."""
    import h5py

    probe_structure(path, "hdf5")
    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise FormatError(f"not a readable HDF5 file (expected {what}): {exc}", path=path) from exc
    try:
        yield fh
    except FormatError:
        raise
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
        # h5py reports damaged object headers, heaps and B-trees as KeyError ("Unable to
        # synchronously open object"), OSError or RuntimeError wherever the reader touches them
        if not _raised_by_h5py(exc):
            raise
        raise FormatError(f"damaged HDF5 structure (expected {what}): {exc}", path=path) from exc
    finally:
        fh.close()


def _raised_by_h5py(exc: BaseException) -> bool:
    """Whether the innermost Python frame of ``exc`` is inside h5py."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "h5py" in Path(frames[-1].filename).parts


def hdf5_keys(path: Path, *, strict_suffixes: tuple[str, ...] = (".hdf5", ".h5")) -> set[str]:
    """Top-level names of an HDF5 file, for sniffing.

    A file that has the HDF5 signature but cannot be opened is reported as damaged
    (:class:`FormatError`) when its name ends with one of ``strict_suffixes``; otherwise
    the empty set is returned (it is simply not this format).
    """
    import h5py

    probe_structure(path, "hdf5")
    try:
        with h5py.File(path, "r") as fh:
            return set(fh.keys())
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError/ValueError/KeyError...
        if path.name.lower().endswith(tuple(strict_suffixes)):
            raise FormatError("has the HDF5 signature but cannot be opened (truncated or "
                              f"damaged file?): {exc}", path=path) from exc
        return set()


def check_dataset_type(ds, path: Path, name: str) -> None:
    """Refuse a dataset whose stored type does not match the NumPy type h5py reads it as.

    A damaged float type (odd mantissa/exponent layout) is mapped by h5py to a wider
    NumPy float (``longdouble``) than the 2/4/8 bytes stored; reading such a compound
    dataset corrupted the heap inside libhdf5 (a segmentation fault later, found by
    tests/fuzz). Checked before reading: every field's NumPy size must equal its stored
    member size.
    """
    try:
        h5type = ds.id.get_type()
        dtype = ds.dtype
        if dtype.names is None:
            pairs = [(name, dtype, h5type.get_size())]
        else:
            pairs = []
            for i in range(h5type.get_nmembers()):
                member = h5type.get_member_name(i).decode("utf-8", "replace")
                if member not in dtype.names:
                    continue
                pairs.append((f"{name}.{member}", dtype.fields[member][0], h5type.get_member_type(i).get_size()))
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many types on damaged headers
        raise FormatError(f"dataset {name!r} has an unreadable type ({type(exc).__name__}: {exc})",
                          path=path) from exc
    for field_name, np_type, stored in pairs:
        if np_type.kind not in "biufc" or np_type.subdtype is not None:
            continue   # strings, references, arrays: h5py's own sizes differ by design
        if np_type.itemsize != stored:
            raise FormatError(f"dataset {field_name!r} stores {stored}-byte values that read as "
                              f"{np_type} ({np_type.itemsize} bytes): a damaged type, refused "
                              "before reading", path=path)


def check_dataset_size(ds, path: Path, name: str) -> None:
    """Refuse to read a dataset whose declared size would exhaust memory.

    HDF5 stores a dataset's shape apart from its data: a file of a few kB can declare a
    (10^10,) compound ``locs`` whose chunks were never written (read back as the fill
    value). Checked before reading: the declared bytes must stay within the budget of
    :func:`smlmspine.io.smlmzip.table_budget_bytes` and a non-empty dataset must have
    data stored.
    """
    from .smlmzip import table_budget_bytes

    check_dataset_type(ds, path, name)
    declared = int(ds.size) * int(ds.dtype.itemsize)
    budget = table_budget_bytes()
    if budget is not None and declared > budget:
        raise FormatError(f"dataset {name!r} declares shape {ds.shape} = {declared:,} bytes, more "
                          f"than the {budget:,}-byte budget; refusing before reading",
                          path=path)
    try:
        stored = ds.id.get_storage_size()
    except Exception:  # noqa: BLE001 - virtual/external datasets: no storage to compare
        return
    if declared > 0 and stored == 0 and ds.external is None and not ds.is_virtual:
        raise FormatError(f"dataset {name!r} declares shape {ds.shape} but no data is stored "
                          "(never written, or a forged header)", path=path)


# ----------------------------------------------------------------------------------------
# Probing HDF5 and MAT v5 files in a separate process
#
# libhdf5 and scipy's MAT v5 reader are C code: a damaged file can make them loop forever
# (libhdf5 reading a variable-length attribute from a damaged global heap) or crash the
# interpreter (scipy dereferencing a wild pointer), and neither can be interrupted from
# Python. Before the first h5py/scipy call on a file, :func:`probe_structure` runs the
# same library calls on it in a child process with a time limit: the child opens the
# file and reads every object, attribute and the first element of every dataset (HDF5),
# or loads every variable (MAT v5). A child that does not finish in time, or dies from a
# signal, makes the file a FormatError; anything else (the child finished, whatever it
# found) lets the reader go on, and the reader reports what is wrong with the file itself.

#: Environment variable: seconds the child may take on a file of up to 20 MB (1 s more
#: per further 20 MB); ``0`` switches the probe off.
PROBE_TIMEOUT_ENV = "SMLMSPINE_PROBE_TIMEOUT_S"
#: Default of :data:`PROBE_TIMEOUT_ENV`.
DEFAULT_PROBE_TIMEOUT_S = 20.0
#: Most objects (groups, datasets) and nesting depth the HDF5 probe walks.
_PROBE_MAX_OBJECTS = 100_000
_PROBE_MAX_DEPTH = 64
_PROBE_MARK = "smlmspine-probe-done"
_PROBE_CHILD_ENV = "SMLMSPINE_PROBE_CHILD"
_PROBED: dict[tuple, None] = {}   # files probed by this process (path, inode, size, mtime)


def probe_kind(head: bytes) -> str | None:
    """``"hdf5"`` (HDF5, MATLAB v7.3), ``"mat5"`` (MATLAB v5) or ``None`` for ``head``.

    A MAT v5 file is recognised as scipy recognises it (version and byte-order marks at
    bytes 124-127), whatever its header text says.

    Examples
    --------
    >>> mat = MAT5_HEADER.ljust(124) + b"\\x00\\x01IM"
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
    budget in bytes for the MAT checks (default :func:`smlmspine.io.smlmzip.table_budget_bytes`).
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
    if kind == "mat5" and budget is None:
        from .smlmzip import table_budget_bytes

        budget = table_budget_bytes()
    cmd = [sys.executable, "-m", "smlmspine.io._hdf5", kind, str(path), repr(budget)]
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


def _probe_hdf5(path: Path) -> None:
    """Read every object, attribute and first dataset element (in the child)."""
    import h5py
    import numpy as np

    count = 0
    with h5py.File(path, "r") as fh:
        stack = [(fh, 0)]
        while stack and count < _PROBE_MAX_OBJECTS:
            obj, depth = stack.pop()
            count += 1
            for name in list(obj.attrs):
                try:
                    obj.attrs[name]
                except Exception:  # noqa: BLE001 - the reader will report it
                    pass
            if isinstance(obj, h5py.Dataset):
                try:
                    check_dataset_type(obj, path, obj.name or "")
                    if obj.shape is not None and obj.size:
                        obj[(0,) * obj.ndim] if obj.ndim else obj[()]
                except Exception:  # noqa: BLE001
                    pass
            elif isinstance(obj, h5py.Group) and depth < _PROBE_MAX_DEPTH:
                for name in list(obj):
                    try:
                        stack.append((obj[name], depth + 1))
                    except Exception:  # noqa: BLE001 - dangling or damaged link
                        pass
    np.asarray(0)


def _probe_mat5(path: Path, budget: int | None) -> None:
    """The checks and the full ``loadmat`` the readers do (in the child)."""
    from scipy.io import loadmat

    _walk_mat5(path, budget)
    _check_mat5_headers(path, None, budget)
    loadmat(str(path))


def _probe_main(argv: list[str]) -> int:
    kind, path = argv[0], Path(argv[1])
    budget = None if len(argv) < 3 or argv[2] == "None" else int(argv[2])
    try:
        if kind == "hdf5":
            _probe_hdf5(path)
        else:
            _probe_mat5(path, budget)
    except Exception:  # noqa: BLE001 - an error the reader reports: not a hang or crash
        pass
    except MemoryError:
        pass
    sys.stdout.write(_PROBE_MARK + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":   # the child of probe_structure
    sys.exit(_probe_main(sys.argv[1:]))
