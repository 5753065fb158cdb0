"""Helpers shared by the HDF5-based readers (Picasso, DECODE, SMAP v7.3)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import FormatError
from ._registry import _PROBE_MARK, HDF5_SIGNATURE, is_hdf5, probe_structure

__all__ = ["HDF5_SIGNATURE", "MAT73_HEADER", "MAT5_HEADER", "is_hdf5", "open_hdf5",
           "hdf5_keys", "check_dataset_size", "check_dataset_type", "check_mat5_variables"]

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
# The child process of smlmspine.io._registry.probe_structure (``python -m
# smlmspine.io._hdf5 KIND PATH BUDGET``): the library calls a damaged file could hang or
# crash on, run where a hang can be timed out and a crash only ends the child.

#: Most objects (groups, datasets) and nesting depth the HDF5 probe walks.
_PROBE_MAX_OBJECTS = 100_000
_PROBE_MAX_DEPTH = 64


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
    if len(argv) < 3 or argv[2] == "auto":
        from .smlmzip import table_budget_bytes

        budget = table_budget_bytes()
    else:
        budget = None if argv[2] == "None" else int(argv[2])
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
