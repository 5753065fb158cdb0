"""Abberior MINFLUX export layouts: field tables, container loading (.npy, zipped .npy,
.mat, .json), layout detection and conversion to localization columns.

Private helpers of :mod:`smlmspine.io.minflux` (which documents the layouts and holds the
public reader and writer); see ``docs/formats/minflux.md``.
"""

from __future__ import annotations

import ast
import io
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from ..errors import FormatError, QualityWarning
from ..schema import column_specs, make_table, with_history

__all__ = ["DEFAULT_Z_SCALE", "NESTED_ITR_DTYPE", "NESTED_TOP_FIELDS", "FLAT_DTYPE",
           "MINFLUX_COLUMNS", "minflux_arrays", "detect_layout"]

#: Axial foreshortening (refractive-index mismatch) correction applied to z on read.
#: 0.7 is the value used by Gwosch et al., Nat. Methods 17, 217-224 (2020).
DEFAULT_Z_SCALE = 0.7

_M_TO_NM = 1e9

#: Per-iteration record of the nested (m2205) layout, as exported by Imspector.
NESTED_ITR_DTYPE = np.dtype([
    ("itr", "<i4"), ("tic", "<u8"), ("loc", "<f8", (3,)), ("lnc", "<f8", (3,)),
    ("eco", "<i4"), ("ecc", "<i4"), ("efo", "<f8"), ("efc", "<f8"), ("sta", "<i4"),
    ("cfr", "<f8"), ("dcr", "<f8"), ("ext", "<f8", (3,)), ("gvy", "<f8"), ("gvx", "<f8"),
    ("eoy", "<f8"), ("eox", "<f8"), ("dmz", "<f8"), ("lcy", "<f8"), ("lcx", "<f8"),
    ("lcz", "<f8"), ("fbg", "<f8"),
])
#: Top-level fields of the nested layout (besides ``itr``), with their export dtypes.
NESTED_TOP_FIELDS = (("sqi", "<u4"), ("gri", "<u4"), ("tim", "<f8"), ("tid", "<i4"),
                     ("vld", "?"), ("act", "?"), ("dos", "<i4"), ("sky", "<i4"))
#: One record per iteration: the flat (m2410) layout.
FLAT_DTYPE = np.dtype([
    ("vld", "?"), ("fnl", "?"), ("bot", "?"), ("eot", "?"), ("sta", "u1"), ("tim", "<f8"),
    ("tid", "<u4"), ("gri", "<u4"), ("thi", "u1"), ("sqi", "u1"), ("itr", "<i4"),
    ("loc", "<f8", (3,)), ("lnc", "<f8", (3,)), ("eco", "<u4"), ("ecc", "<u4"),
    ("efo", "<f4"), ("efc", "<f4"), ("cfr", "<f4"), ("dcr", "<f4", (2,)), ("fbg", "<f4"),
])

# Per-iteration fields: output column(s), unit, description. Vector fields get _x/_y/_z.
_LENGTH_FIELDS = {"lnc", "ext", "gvy", "gvx", "eoy", "eox", "dmz", "lcy", "lcx", "lcz"}
_ITR_FIELDS = {
    "tic": ("tick", "clock ticks (40 MHz) at the end of the iteration"),
    "lnc": ("nm", "position before the final correction (lnc: 'loc not corrected'); z scaled by z_scale"),
    "eco": ("photon", "effective photon counts at the beam-pattern periphery"),
    "ecc": ("photon", "effective photon counts at the beam-pattern centre"),
    "efo": ("Hz", "effective emission frequency at the periphery (photons/s)"),
    "efc": ("Hz", "effective emission frequency at the centre, from the cfr iteration"),
    "sta": ("1", "iteration status code"),
    "cfr": ("1", "centre-frequency ratio efc/efo, from the last iteration that measures it"),
    "dcr": ("1", "detector-channel ratio (ratiometric colour), first component"),
    "ext": ("nm", "beam-pattern diameter"),
    "gvy": ("nm", "galvo centre position y"),
    "gvx": ("nm", "galvo centre position x"),
    "eoy": ("nm", "electro-optic deflector offset y"),
    "eox": ("nm", "electro-optic deflector offset x"),
    "dmz": ("nm", "deformable-mirror z position"),
    "lcy": ("nm", "localization relative to the beam pattern, y"),
    "lcx": ("nm", "localization relative to the beam pattern, x"),
    "lcz": ("nm", "localization relative to the beam pattern, z"),
    "fbg": ("Hz", "estimated background emission frequency"),
}
_TOP_FIELDS = {
    "vld": ("1", "valid localization (vld)"),
    "sqi": ("1", "sequence index"),
    "gri": ("1", "grid index (region of the acquisition grid)"),
    "thi": ("1", "thread index"),
    "act": ("1", "activation flag"),
    "dos": ("1", "dose / activation state code"),
    "sky": ("1", "sky (sequence) state code"),
    "bot": ("1", "begin of trace (flat layout)"),
    "eot": ("1", "end of trace (flat layout)"),
}

#: Columns the MINFLUX reader adds beyond the canonical ones (for ``data_schemas``).
#: Which appear depends on the fields present in the file; vector fields are split per axis.
MINFLUX_COLUMNS = column_specs(
    ("iteration", pa.int64(), "1", "index of the MINFLUX iteration that gave the position"),
    ("vld", pa.bool_(), "1", "valid localization (vld); all true unless keep_invalid=True"),
    ("efo", pa.float64(), "Hz", _ITR_FIELDS["efo"][1]),
    ("efc", pa.float64(), "Hz", _ITR_FIELDS["efc"][1]),
    ("cfr", pa.float64(), "1", _ITR_FIELDS["cfr"][1]),
    ("dcr", pa.float64(), "1", _ITR_FIELDS["dcr"][1]),
    ("eco", pa.float64(), "photon", _ITR_FIELDS["eco"][1]),
    ("ecc", pa.float64(), "photon", _ITR_FIELDS["ecc"][1]),
    ("fbg", pa.float64(), "Hz", _ITR_FIELDS["fbg"][1]),
    ("sta", pa.int64(), "1", _ITR_FIELDS["sta"][1]),
    ("tic", pa.uint64(), "tick", _ITR_FIELDS["tic"][1]),
    ("lnc_x", pa.float64(), "nm", "uncorrected position x (lnc)"),
    ("lnc_y", pa.float64(), "nm", "uncorrected position y (lnc)"),
    ("lnc_z", pa.float64(), "nm", "uncorrected position z (lnc), times z_scale; 3D only"),
    ("ext_x", pa.float64(), "nm", "beam-pattern diameter x"),
    ("ext_y", pa.float64(), "nm", "beam-pattern diameter y"),
    ("ext_z", pa.float64(), "nm", "beam-pattern diameter z"),
    ("gvx", pa.float64(), "nm", _ITR_FIELDS["gvx"][1]),
    ("gvy", pa.float64(), "nm", _ITR_FIELDS["gvy"][1]),
    ("eox", pa.float64(), "nm", _ITR_FIELDS["eox"][1]),
    ("eoy", pa.float64(), "nm", _ITR_FIELDS["eoy"][1]),
    ("dmz", pa.float64(), "nm", _ITR_FIELDS["dmz"][1]),
    ("lcx", pa.float64(), "nm", _ITR_FIELDS["lcx"][1]),
    ("lcy", pa.float64(), "nm", _ITR_FIELDS["lcy"][1]),
    ("lcz", pa.float64(), "nm", _ITR_FIELDS["lcz"][1]),
    ("sqi", pa.int64(), "1", _TOP_FIELDS["sqi"][1]),
    ("gri", pa.int64(), "1", _TOP_FIELDS["gri"][1]),
    ("thi", pa.int64(), "1", _TOP_FIELDS["thi"][1]),
    ("act", pa.bool_(), "1", _TOP_FIELDS["act"][1]),
    ("dos", pa.int64(), "1", _TOP_FIELDS["dos"][1]),
    ("sky", pa.int64(), "1", _TOP_FIELDS["sky"][1]),
    ("bot", pa.bool_(), "1", _TOP_FIELDS["bot"][1]),
    ("eot", pa.bool_(), "1", _TOP_FIELDS["eot"][1]),
    ("dt", pa.float64(), "s", "duration of illumination in the last iteration (MATLAB struct "
                              "export)"),
)
_BOOL_FIELDS = {"vld", "act", "bot", "eot", "fnl"}
_VECTOR_FIELDS = {"loc", "lnc", "ext", "dcr"}
_REQUIRED_TOP = ("tid", "tim", "vld")

_NPY_MAGIC = b"\x93NUMPY"
#: Localizations looked at to find the iteration that measures cfr (nested layout).
_CFR_SAMPLE = 100_000
_MAT_MAGIC = b"MATLAB 5.0 MAT-file"


# --------------------------------------------------------------------------- sniffing

def _npy_header(head: bytes) -> dict | None:
    if not head.startswith(_NPY_MAGIC):
        return None
    try:
        buf = io.BytesIO(head)
        version = np.lib.format.read_magic(buf)
        hlen_bytes = 2 if version[0] == 1 else 4
        hlen = int.from_bytes(head[8:8 + hlen_bytes], "little")
        text = head[8 + hlen_bytes:8 + hlen_bytes + hlen].decode("latin1")
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError):
        return None


def _descr_names(descr) -> set[str]:
    if not isinstance(descr, list):
        return set()
    return {d[0] for d in descr if isinstance(d, tuple) and d and isinstance(d[0], str)}


def _zip_member(path: Path) -> str | None:
    """The single ``.npy`` member of a zip archive, else None."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(".npy")
                       and not m.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError):
        return None
    return members[0] if len(members) == 1 else None


def _sniff(path: Path, head: bytes) -> bool:
    if _struct_sniff(path, head):
        return True
    if head.startswith(b"PK\x03\x04"):
        member = _zip_member(path)
        if member is None:
            return False
        import zipfile

        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            head = fh.read(4096)
    header = _npy_header(head)
    if header is not None:
        names = _descr_names(header.get("descr"))
        return "tid" in names and ("itr" in names or "loc" in names)
    if head.startswith(_MAT_MAGIC):
        try:
            from scipy.io import whosmat

            names = {v[0] for v in whosmat(str(path))}
        except Exception:
            return False
        return "tid" in names and ("itr" in names or "loc" in names)
    text = head.lstrip()[:1]
    if text in (b"[", b"{"):
        sample = head[:HEAD_SAMPLE]
        return b'"tid"' in sample and (b'"itr"' in sample or b'"loc"' in sample)
    return False


HEAD_SAMPLE = 64 * 1024


# --------------------------------------------------------------------------- loading

#: Largest iteration index accepted in flat exports (Imspector sequences use up to ~10).
_MAX_ITERATION = 255


def _check_npy_size(fh, available: int, path: Path, what: str) -> None:
    """Refuse a ``.npy`` whose header declares more data than ``available`` bytes.

    ``fh`` is positioned at the start of the ``.npy``; it is left there. A header that
    claims a huge shape is refused here, before NumPy allocates the array.
    """
    start = fh.tell()
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:  # (3, 0): same layout as 2.0 with a UTF-8 header; np.load checks the rest
            shape, dtype = None, None
        header_end = fh.tell() - start
    except (ValueError, SyntaxError) as exc:   # numpy parses the header with ast: SyntaxError
        raise FormatError(f"not a readable .npy header: {exc}", path=path) from exc
    finally:
        fh.seek(start)
    if shape is None:
        return
    count = 1
    for k in shape:
        count *= int(k)
    declared = count * int(dtype.itemsize)
    if declared > available - header_end:
        raise FormatError(f"the .npy header declares shape {tuple(shape)} of {dtype.itemsize}-byte "
                          f"records = {declared:,} bytes, but {what} holds only "
                          f"{max(available - header_end, 0):,} bytes of data (truncated file or "
                          "forged header); refusing before allocating", path=path)


def _load_npy(path: Path, member: str | None = None) -> np.ndarray:
    try:
        if member is None:
            with open(path, "rb") as fh:
                _check_npy_size(fh, path.stat().st_size, path, "the file")
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        else:
            import zipfile

            from .smlmzip import check_zip_entry, table_budget_bytes

            with zipfile.ZipFile(path) as zf:
                check_zip_entry(zf.getinfo(member), path, budget=table_budget_bytes())
                size = zf.getinfo(member).file_size
                with zf.open(member) as fh:
                    # the check reads the header; a zip stream cannot seek back cheaply
                    _check_npy_size(_Rewindable(fh), size, path, f"member {member!r}")
                with zf.open(member) as fh:
                    arr = np.lib.format.read_array(fh, allow_pickle=False)
    except FormatError:
        raise
    except ValueError as exc:
        # object arrays (pickled) or a malformed header
        raise FormatError(f"not a readable MINFLUX .npy structured array: {exc}", path=path) from exc
    except (OSError, EOFError, TypeError) as exc:
        raise FormatError(f"cannot be read as .npy: {type(exc).__name__}: {exc}", path=path) from exc
    except Exception as exc:  # zipfile.BadZipFile (CRC), zlib.error: a damaged archive
        import zipfile
        import zlib

        if not isinstance(exc, (zipfile.BadZipFile, zlib.error)):
            raise
        raise FormatError(f"the zipped .npy cannot be decompressed (truncated or damaged file?): "
                          f"{exc}", path=path) from exc
    if arr.dtype.names is None:
        raise FormatError(f"expected a structured array with MINFLUX fields (tid, tim, vld, itr/loc); "
                          f"found a plain {arr.dtype} array of shape {arr.shape}", path=path)
    if arr.ndim != 1:
        raise FormatError(f"expected a 1-D structured array, found shape {arr.shape}", path=path)
    return arr


class _Rewindable:
    """Enough of a file object for :func:`_check_npy_size` on a zip stream (reads only)."""

    def __init__(self, fh):
        self._fh, self._pos = fh, 0

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int) -> None:
        self._pos = pos  # only used to return to the start; the stream is reopened after

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._pos += len(data)
        return data


def _arrays_from_structured(arr: np.ndarray) -> tuple[dict, dict | None]:
    """Split a structured array into top-level fields and (nested layout) per-iteration fields."""
    names = arr.dtype.names
    top = {n: arr[n] for n in names if n != "itr"}
    sub = arr.dtype["itr"].base if "itr" in names else None
    if sub is not None and sub.names is not None:
        itr_arr = arr["itr"]
        if itr_arr.ndim == 1:  # a single iteration stored without the iteration axis
            itr_arr = itr_arr[:, None]
        return top, itr_arr
    if "itr" in names:
        top["itr"] = arr["itr"]
    return top, None


def _load_mat(path: Path) -> tuple[dict, dict | None]:
    from scipy.io import loadmat

    from ._hdf5 import check_mat5_variables

    check_mat5_variables(path)
    try:
        mat = loadmat(str(path))
    except NotImplementedError as exc:
        raise FormatError("MATLAB v7.3 (HDF5) files are not supported for MINFLUX; export as "
                          ".npy or as a v5 .mat file", path=path) from exc
    except Exception as exc:  # scipy raises assorted errors on truncated/corrupt files
        raise FormatError(f"not a readable MATLAB v5 file: {type(exc).__name__}: {exc}",
                          path=path) from exc
    data = {k: v for k, v in mat.items() if not k.startswith("__")}
    itr = data.get("itr")
    nested = None
    if isinstance(itr, np.ndarray) and itr.dtype.names is not None:
        struct = itr.ravel()[0] if itr.size == 1 else None
        if struct is None:
            raise FormatError(f"variable 'itr' is a {itr.shape} struct array; expected one struct "
                              "whose fields are (N, iterations[, 3]) arrays", path=path)
        nested = {name: np.asarray(struct[name]) for name in itr.dtype.names}
        data.pop("itr")
    top = {}
    for k, v in data.items():
        v = np.asarray(v)
        if v.dtype == object:
            continue  # cell arrays (e.g. notes) are not localization fields
        if v.ndim == 2 and 1 in v.shape and not (k in _VECTOR_FIELDS and v.shape[1] > 1):
            v = v.ravel()  # 1 x N or N x 1 -> N (an M x 3 'loc' of one record stays 1 x 3)
        top[k] = v
    if nested is not None:
        n_rows = {len(v) for v in top.values() if v.ndim >= 1} | {len(v) for v in nested.values()}
        if len(n_rows) > 1:
            # MATLAB may have stored (iterations, N): transpose fields whose first axis is wrong
            n = len(top["tid"]) if "tid" in top else None
            if n is not None:
                for name, val in nested.items():
                    if val.shape[0] != n and val.ndim >= 2 and val.shape[1] == n:
                        nested[name] = np.swapaxes(val, 0, 1)
    return top, nested


#: Bytes Python's ``json`` module holds per object (``{``), per list (``[``) and per value
#: (``,``) on top of the text, measured with tracemalloc (CPython 3.11): a MINFLUX export
#: parses to ~3.7x its size (the estimate, with the text counted twice, is ~1.3x that);
#: files of empty objects or lists to up to 25x (the estimate is then 1.2-3x above).
_JSON_BYTES = {b"{": 200, b"[": 72, b",": 32}


def json_memory_estimate(path: Path, chunk: int = 1 << 24) -> tuple[float, dict]:
    """Memory (bytes) ``json.load`` would take for the file, counted without parsing it
    (one pass over the bytes, ``chunk`` at a time), and the counts behind it."""
    counts = dict.fromkeys(_JSON_BYTES, 0)
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            size += len(block)
            for token in counts:
                counts[token] += block.count(token)
    # the text is held twice while it is decoded (bytes, then str)
    total = 2.0 * size + sum(_JSON_BYTES[t] * n for t, n in counts.items())
    return total, counts


def _check_json_budget(path: Path) -> None:
    """Refuse a JSON file whose parsed form would exceed the memory budget (before parsing)."""
    from .._validate import check_memory

    need, counts = json_memory_estimate(path)
    size = path.stat().st_size
    check_memory(need, what=f"parsing this {size / 1e6:.3g} MB JSON file ({counts[b'{']} "
                            f"objects, {counts[b'[']} lists, {counts[b',']} separators)")


def _load_json(path: Path) -> tuple[dict, dict | None]:
    _check_json_budget(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"not valid JSON: {exc}", path=path) from exc
    except RecursionError:
        raise FormatError("JSON nested too deeply to be a MINFLUX export (a list of flat "
                          "records)", path=path) from None
    if isinstance(data, dict):
        # column-wise export {"tid": [...], ...} or a wrapper with one list
        lists = [v for v in data.values() if isinstance(v, list)]
        if "tid" in data:
            return _columns_from_dict(data, path)
        if len(lists) == 1:
            data = lists[0]
        else:
            raise FormatError("expected a JSON list of MINFLUX records (objects with tid, tim, vld, "
                              f"itr/loc); found an object with keys {sorted(data)[:10]}", path=path)
    if not isinstance(data, list):
        raise FormatError(f"expected a JSON list of MINFLUX records, found {type(data).__name__}",
                          path=path)
    if not data:
        raise FormatError("the file holds no MINFLUX records (empty list)", path=path)
    if not all(isinstance(r, dict) for r in data[:10]):
        raise FormatError("expected a JSON list of objects (one per record)", path=path)
    keys = list(data[0].keys())
    nested_itr = isinstance(data[0].get("itr"), list)
    top: dict[str, Any] = {}
    for k in keys:
        if k == "itr" and nested_itr:
            continue
        try:
            top[k] = _json_array([r[k] for r in data])
        except KeyError as exc:
            raise FormatError(f"record missing field {exc.args[0]!r} (present in the first record)",
                              path=path) from exc
    if not nested_itr:
        return top, None
    first = data[0]["itr"]
    if not first or not isinstance(first[0], dict):
        raise FormatError("field 'itr' must be a list of per-iteration objects", path=path)
    n_it = len(first)
    nested = {}
    for k in first[0]:
        try:
            nested[k] = np.array([[it[k] for it in r["itr"]] for r in data], dtype=float
                                 if k not in ("itr", "tic", "eco", "ecc", "sta") else None)
        except (KeyError, ValueError) as exc:
            raise FormatError(f"'itr' records are inconsistent (field {k!r}; expected {n_it} "
                              f"iterations per record): {exc}", path=path) from exc
        if nested[k].dtype == object:
            raise FormatError(f"'itr' field {k!r} has records with different numbers of "
                              "iterations", path=path)
    return top, nested


def _json_array(values: list) -> np.ndarray:
    """Array from JSON values; ``null`` (NaN written by exporters) becomes NaN."""
    arr = np.array(values)
    if arr.dtype == object:
        try:
            arr = np.array(values, dtype=float)
        except (TypeError, ValueError):
            pass
    return arr


def _columns_from_dict(data: dict, path: Path) -> tuple[dict, dict | None]:
    top, nested = {}, None
    for k, v in data.items():
        if k == "itr" and isinstance(v, dict):
            nested = {kk: np.asarray(vv) for kk, vv in v.items()}
        else:
            top[k] = _json_array(v)
    return top, nested


def minflux_arrays(path: str | Path) -> tuple[str, dict, dict | None]:
    """Load a MINFLUX export into plain arrays, without any interpretation.

    The container is recognised by its first bytes, not its suffix: a NumPy ``.npy``
    structured array, a zip archive holding one ``.npy``, a MATLAB v5 ``.mat`` file, or
    JSON (a list of records or a column-wise object).

    Parameters
    ----------
    path : str or pathlib.Path
        The export file.

    Returns
    -------
    layout : {"nested", "flat"}
        See :func:`detect_layout`.
    top : dict of str to ndarray
        Top-level fields, each of length N (nested: localizations; flat: iterations).
    itr : structured ndarray, dict of str to ndarray, or None
        Nested layout only: the per-iteration records, shape ``(N, n_iterations)`` (``.npy``)
        or a dict of fields of shape ``(N, n_iterations[, k])`` (``.mat``/``.json``).

    Raises
    ------
    FormatError
        Not one of the containers above (MATLAB v7.3/HDF5 files included: they are read
        only in the published struct layout), an unreadable or inconsistent file, or no
        recognisable layout (see :func:`detect_layout`).
    ParameterError
        A JSON file whose parsed form would exceed the memory budget.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(HEAD_SAMPLE)
    if head.startswith(_NPY_MAGIC):
        top, nested = _arrays_from_structured(_load_npy(path))
    elif head.startswith(b"PK\x03\x04"):
        member = _zip_member(path)
        if member is None:
            raise FormatError("a zip archive must hold exactly one .npy MINFLUX export", path=path)
        top, nested = _arrays_from_structured(_load_npy(path, member))
    elif head.startswith(_MAT_MAGIC):
        top, nested = _load_mat(path)
    elif head.lstrip()[:1] in (b"[", b"{"):
        top, nested = _load_json(path)
    elif head.startswith(b"\x89HDF") or head.startswith(_MAT73_HEADER):
        raise FormatError("MATLAB v7.3 (HDF5) MINFLUX files are read only in the published struct "
                          f"layout (a struct '{STRUCT_VARIABLE}' with t, id, pos, ...); for Imspector "
                          "exports use .npy, .json or a v5 .mat file", path=path)
    else:
        raise FormatError("not a MINFLUX export: expected a NumPy .npy structured array, a MATLAB "
                          ".mat file or a JSON list of records", path=path)
    return detect_layout(top, nested, path=path), top, nested


def detect_layout(top: Mapping[str, np.ndarray], itr, *, path: str | Path | None = None) -> str:
    """``"nested"`` (per-localization records with an ``itr`` sub-record) or ``"flat"``
    (one record per iteration, with ``fnl``); anything else is a :class:`FormatError`.

    Parameters
    ----------
    top : mapping of str to ndarray
        Top-level fields of the export (as from :func:`minflux_arrays`).
    itr : structured ndarray, mapping of str to ndarray, or None
        The per-iteration sub-records of the nested layout; None when there are none.
    path : str or pathlib.Path, optional
        The file, named in the error message.

    Returns
    -------
    {"nested", "flat"}
        ``"nested"`` when ``itr`` is given (and has ``loc``); ``"flat"`` when ``top``
        has ``loc`` and ``fnl`` (final-iteration flag).

    Raises
    ------
    FormatError
        A nested ``itr`` without ``loc``, flat records with ``loc`` but no ``fnl``, or no
        ``loc`` at all.

    Examples
    --------
    >>> import numpy as np
    >>> detect_layout({"loc": np.zeros((4, 3)), "fnl": np.ones(4, bool)}, None)
    'flat'
    """
    if itr is not None:
        names = itr.dtype.names if isinstance(itr, np.ndarray) else tuple(itr)
        if "loc" not in names:
            raise FormatError(f"the nested 'itr' record has no 'loc' field; found "
                              f"{sorted(names)}", path=path)
        return "nested"
    if "loc" in top and "fnl" in top:
        return "flat"
    if "loc" in top:
        raise FormatError("flat MINFLUX records without 'fnl' (final-iteration flag): cannot tell "
                          f"which iteration is the localization; found fields {sorted(top)}",
                          path=path)
    raise FormatError("no localization positions: expected a nested 'itr' record with 'loc' or "
                      f"flat records with 'loc' and 'fnl'; found fields {sorted(top)}", path=path)


# --------------------------------------------------------------------------- conversion

def _check_field(name: str, arr: np.ndarray, kind: str, path) -> np.ndarray:
    """Check the dtype kind of a field (``float``: numeric; ``int``: integer-valued; ``bool``)."""
    arr = np.asarray(arr)
    k = arr.dtype.kind
    if kind == "float":
        ok = k in "fiu"
    elif kind == "bool":
        ok = k in "biu"
    else:
        ok = k in "iu" or (k == "f" and (arr.size == 0 or (
            bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr))))))
    if not ok:
        raise FormatError(f"field {name!r} must be {kind}-valued, found dtype {arr.dtype}",
                          path=path, column=name)
    return arr


def _cfr_iteration(cfr: np.ndarray, efc: np.ndarray | None = None) -> int | None:
    """Last iteration index in which the centre frequency was measured.

    With ``efc`` (rows x iterations): iterations where some ``efc`` is finite (Imspector
    writes NaN or -inf where no centre check was made). Without: iterations whose ``cfr``
    varies across localizations (pyMINFLUX's rule).
    """
    if cfr.shape[0] == 0:
        return None
    if efc is not None:
        measured = np.isfinite(efc).any(axis=0)
    else:
        c = np.where(np.isfinite(cfr), cfr, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if c.shape[0] == 1:
                measured = np.isfinite(c[0]) & (c[0] > 0)
            else:
                measured = np.nanstd(c, axis=0) > 0
    idx = np.flatnonzero(measured)
    return int(idx[-1]) if idx.size else None


def _last_finite(loc: np.ndarray) -> np.ndarray:
    """Index of the last iteration with a finite position, per row (-1 when none); loc (N, I, 3)."""
    fin = np.isfinite(loc[..., 0]) & np.isfinite(loc[..., 1])
    n_it = fin.shape[1]
    rev = fin[:, ::-1]
    last = n_it - 1 - np.argmax(rev, axis=1)
    last[~fin.any(axis=1)] = -1
    return last


def _nested_to_columns(top: dict, itr, path, keep_invalid: bool):
    """Localizations of the nested layout; ``itr`` is a structured (N, I) array or a dict."""
    for name in _REQUIRED_TOP:
        if name not in top:
            raise FormatError(f"missing top-level field {name!r}; found {sorted(top)}", path=path,
                              column=name)
    names = itr.dtype.names if isinstance(itr, np.ndarray) else tuple(itr)
    loc = _check_field("itr.loc", itr["loc"], "float", path)
    if loc.ndim != 3 or loc.shape[-1] not in (2, 3):
        raise FormatError(f"field 'itr.loc' must have shape (N, iterations, 3), found {loc.shape}",
                          path=path, column="itr.loc")
    n, n_it = loc.shape[:2]
    for name in _REQUIRED_TOP:
        if np.shape(top[name])[:1] != (n,):
            raise FormatError(f"field {name!r} has shape {np.shape(top[name])}, expected ({n},) "
                              "like 'itr'", path=path, column=name)
    vld = np.asarray(_check_field("vld", top["vld"], "bool", path), dtype=bool)
    _check_field("tid", top["tid"], "int", path)
    _check_field("tim", top["tim"], "float", path)
    rows = np.arange(n) if keep_invalid else np.flatnonzero(vld)
    # final iteration = last with a finite position; fast path when it is the last one
    x_last = np.asarray(loc[rows, n_it - 1, 0], dtype=np.float64)
    last = np.full(len(rows), n_it - 1, dtype=np.int64)
    slow = ~np.isfinite(x_last)
    if np.any(slow):
        last[slow] = _last_finite(np.asarray(loc[rows[slow]], dtype=np.float64))
    has_pos = last >= 0
    if not np.all(has_pos):
        dropped = int(np.count_nonzero(~has_pos))
        warnings.warn(f"{path}: {dropped} localization attempt(s) without any finite position "
                      "were dropped", QualityWarning, stacklevel=3)
        rows, last = rows[has_pos], last[has_pos]
    cfr_it = None
    if "cfr" in names:
        # which iteration measures the centre frequency is a property of the sequence:
        # decide it on up to _CFR_SAMPLE evenly spaced localizations
        sample = rows[::max(1, len(rows) // _CFR_SAMPLE)]
        efc = np.asarray(itr["efc"][sample], dtype=float) if "efc" in names else None
        cfr_it = _cfr_iteration(np.asarray(itr["cfr"][sample], dtype=float), efc)
    if isinstance(itr, np.ndarray):
        final = itr[rows, last]  # one gather of the final-iteration records
        get = final.__getitem__
    else:
        for name in names:
            if np.shape(itr[name])[:2] != (n, n_it):
                raise FormatError(f"field 'itr.{name}' has shape {np.shape(itr[name])}, expected "
                                  f"{(n, n_it)} (+ trailing axes)", path=path,
                                  column=f"itr.{name}")

        def get(name):
            return np.asarray(itr[name])[rows, last]
    pos = np.asarray(get("loc"), dtype=np.float64)
    per_itr: dict[str, np.ndarray] = {}
    for name in names:
        if name in ("loc", "itr"):
            continue
        if name in ("cfr", "efc"):
            if cfr_it is None:
                per_itr[name] = np.full(len(rows), np.nan)
            else:
                v = np.asarray(itr[name][rows, cfr_it], dtype=np.float64)
                per_itr[name] = np.where(last >= cfr_it, v, np.nan)
        else:
            per_itr[name] = np.asarray(get(name))
    top_sel = {name: np.asarray(v)[rows] for name, v in top.items() if np.ndim(v) >= 1 and
               np.shape(v)[0] == n}
    return pos, last, top_sel, per_itr, cfr_it, int(n_it)


def _flat_to_columns(top: dict, path, keep_invalid: bool):
    for name in _REQUIRED_TOP + ("itr",):
        if name not in top:
            raise FormatError(f"missing field {name!r} in the flat (per-iteration) layout; found "
                              f"{sorted(top)}", path=path, column=name)
    loc = _check_field("loc", top["loc"], "float", path)
    if loc.ndim != 2 or loc.shape[1] not in (2, 3):
        raise FormatError(f"field 'loc' must have shape (N, 3), found {loc.shape}", path=path,
                          column="loc")
    m = loc.shape[0]
    for name, v in top.items():
        if np.shape(v)[:1] != (m,):
            raise FormatError(f"field {name!r} has {np.shape(v)[:1]} records, expected {m}",
                              path=path, column=name)
    itr_idx = np.asarray(_check_field("itr", top["itr"], "int", path), dtype=np.int64)
    if m and (itr_idx.min() < 0 or itr_idx.max() > _MAX_ITERATION):
        bad = int(itr_idx[(itr_idx < 0) | (itr_idx > _MAX_ITERATION)][0])
        # an iteration index sizes the per-iteration grids below: refused before allocating
        raise FormatError(f"iteration index {bad} in field 'itr'; MINFLUX sequences have "
                          f"iterations 0..{_MAX_ITERATION} at most (damaged file?)", path=path,
                          column="itr")
    tid = np.asarray(_check_field("tid", top["tid"], "int", path), dtype=np.int64)
    fnl = np.asarray(_check_field("fnl", top["fnl"], "bool", path), dtype=bool)
    vld = np.asarray(_check_field("vld", top["vld"], "bool", path), dtype=bool)
    loc = np.asarray(loc, dtype=np.float64)
    # localization attempts: a new one starts after a final iteration or at a new trace
    start = np.ones(m, dtype=bool)
    if m > 1:
        start[1:] = fnl[:-1] | (tid[1:] != tid[:-1])
    gid = np.cumsum(start) - 1
    n_groups = int(gid[-1]) + 1 if m else 0
    finite = np.isfinite(loc[:, 0]) & np.isfinite(loc[:, 1])
    # last row with a finite position in each group
    idx = np.where(finite, np.arange(m), -1)
    pos_row = np.full(n_groups, -1, dtype=np.int64)
    np.maximum.at(pos_row, gid, idx)
    last_row = np.zeros(n_groups, dtype=np.int64)
    if m:
        last_row[gid] = np.arange(m)  # ends up as the group's last row (increasing order)
    group_vld = vld[last_row]
    keep = np.ones(n_groups, dtype=bool) if keep_invalid else group_vld.copy()
    no_pos = keep & (pos_row < 0)
    if np.any(no_pos):
        warnings.warn(f"{path}: {int(no_pos.sum())} localization attempt(s) without any finite "
                      "position were dropped", QualityWarning, stacklevel=3)
    keep &= pos_row >= 0
    rows = pos_row[keep]
    pos = loc[rows]
    # cfr: last iteration index whose cfr varies; per group the last such row, else the
    # latest one earlier in the same trace (tracking sequences measure it once per trace)
    per_itr: dict[str, np.ndarray] = {}
    cfr_it = None
    n_it = int(itr_idx.max()) + 1 if m else 0
    if "cfr" in top:
        cfr_all = np.asarray(top["cfr"], dtype=np.float64)
        cfr_all = cfr_all[:, 0] if cfr_all.ndim == 2 else cfr_all
        sel = vld & fnl if np.any(vld & fnl) else np.ones(m, bool)
        valid_groups = np.unique(gid[sel])
        in_valid = np.isin(gid, valid_groups)
        gi = np.searchsorted(valid_groups, gid[in_valid])
        grid = np.full((len(valid_groups), max(n_it, 1)), np.nan)
        grid[gi, itr_idx[in_valid]] = cfr_all[in_valid]
        efc_grid = None
        if "efc" in top:
            efc_grid = np.full_like(grid, np.nan)
            efc_grid[gi, itr_idx[in_valid]] = np.asarray(top["efc"], dtype=np.float64)[in_valid]
        cfr_it = _cfr_iteration(grid, efc_grid)
        if cfr_it is not None:
            is_c = itr_idx == cfr_it
            last_c = np.where(is_c, np.arange(m), -1)
            last_c = np.maximum.accumulate(last_c) if m else last_c
            src = last_c[rows]
            ok = (src >= 0) & (tid[np.maximum(src, 0)] == tid[rows])
            for name in ("cfr", "efc"):
                if name in top:
                    v = np.asarray(top[name], dtype=np.float64)
                    per_itr[name] = np.where(ok, v[np.maximum(src, 0)], np.nan)
        else:
            for name in ("cfr", "efc"):
                if name in top:
                    per_itr[name] = np.full(len(rows), np.nan)
    skip = {"loc", "itr", "fnl", "cfr", "efc", "tid", "tim", "vld", "sqi", "gri", "thi", "act",
            "dos", "sky", "bot", "eot"}
    for name, v in top.items():
        if name in skip:
            continue
        v = np.asarray(v)
        if name == "dcr" and v.ndim == 2:
            v = v[:, 0]
        per_itr[name] = v[rows]
    top_sel = {name: np.asarray(top[name])[rows] for name in
               ("tid", "tim", "vld", "sqi", "gri", "thi", "act", "dos", "sky") if name in top}
    # bot/eot describe the trace: true if any row of the group has it
    for name in ("bot", "eot"):
        if name in top:
            flag = np.zeros(n_groups, dtype=bool)
            np.logical_or.at(flag, gid, np.asarray(top[name], dtype=bool))
            top_sel[name] = flag[keep]
    return pos, itr_idx[rows], top_sel, per_itr, cfr_it, n_it


def _build_table(pos, iteration, top_sel, per_itr, *, path, layout, z_scale, require_3d,
                 keep_invalid, cfr_it, n_it) -> pa.Table:
    if len(pos) == 0:
        what = "localizations" if keep_invalid else "valid localizations (vld true)"
        hint = "" if keep_invalid else "; pass keep_invalid=True (CLI --keep-invalid) to keep invalid ones"
        raise FormatError(f"the file holds no {what}{hint}", path=path)
    tid = np.asarray(top_sel["tid"])
    tim = np.asarray(top_sel["tim"], dtype=np.float64)
    has_z = pos.shape[1] == 3 and bool(np.any(pos[:, 2] != 0))
    if require_3d and not has_z:
        raise FormatError("3D coordinates requested (require_3d=True) but this is a 2D MINFLUX "
                          "acquisition: every z position is 0", path=path)
    with np.errstate(over="ignore", invalid="ignore"):   # inf is refused by the validation
        cols: dict[str, Any] = {"x": pos[:, 0] * _M_TO_NM, "y": pos[:, 1] * _M_TO_NM}
        if has_z:
            cols["z"] = pos[:, 2] * (_M_TO_NM * z_scale)
    cols["time_s"] = tim
    cols["track_id"] = np.asarray(tid, dtype=np.int64)
    cols["iteration"] = np.asarray(iteration, dtype=np.int64)
    cols["vld"] = np.asarray(top_sel["vld"], dtype=bool)
    units = {"iteration": "1", "vld": "1"}
    original = {"x": "itr.loc[0]" if layout == "nested" else "loc[0]",
                "y": "itr.loc[1]" if layout == "nested" else "loc[1]",
                "time_s": "tim", "track_id": "tid"}
    if has_z:
        original["z"] = "itr.loc[2]" if layout == "nested" else "loc[2]"
    order = [c for c in MINFLUX_COLUMNS] + sorted(per_itr) + sorted(top_sel)
    values: dict[str, tuple[np.ndarray, str | None]] = {}
    for name, v in per_itr.items():
        v = np.asarray(v)
        unit = _ITR_FIELDS.get(name, (None,))[0]
        if name in _LENGTH_FIELDS and v.dtype.kind in "fiu":
            v = np.asarray(v, dtype=np.float64) * _M_TO_NM
        if v.ndim == 2:
            axes = "xyz"[:v.shape[1]]
            for j, ax in enumerate(axes):
                if ax == "z" and not has_z:
                    continue
                comp = v[:, j] * (z_scale if (name == "lnc" and ax == "z") else 1.0)
                values[f"{name}_{ax}"] = (comp, unit)
            continue
        if name in ("efo", "efc", "cfr", "dcr", "eco", "ecc", "fbg"):
            v = np.asarray(v, dtype=np.float64)
        values[name] = (v, unit)
    for name, v in top_sel.items():
        if name in ("tid", "tim", "vld"):
            continue
        v = np.asarray(v)
        if name in _BOOL_FIELDS:
            v = np.asarray(v, dtype=bool)
        elif v.dtype.kind in "iu" and v.dtype != np.uint64:
            v = np.asarray(v, dtype=np.int64)
        values[name] = (v, _TOP_FIELDS.get(name, (None,))[0])
    seen = set()
    for name in order:
        key = name
        if key in values and key not in seen:
            v, unit = values[key]
            cols[key] = v
            if unit is not None:
                units[key] = unit
            seen.add(key)
    for key in sorted(set(values) - seen):
        v, unit = values[key]
        cols[key] = v
        if unit is not None:
            units[key] = unit
    for key in cols:
        if key not in original and key not in ("iteration",):
            base = key.split("_")[0] if key.startswith(("lnc_", "ext_")) else key
            original[key] = (f"itr.{base}" if layout == "nested" and base in _ITR_FIELDS
                             else base)
    table = make_table(cols, units=units, original_names=original, source=str(path),
                       format="minflux",
                       extra_metadata={"minflux_layout": layout, "minflux_iterations": n_it,
                                       "minflux_cfr_iteration": cfr_it, "z_scale": z_scale if has_z
                                       else None})
    return with_history(table, "io.read_minflux",
                        {"layout": layout, "z_scale": z_scale, "z_scale_applied": has_z,
                         "keep_invalid": keep_invalid, "n_iterations": n_it,
                         "cfr_iteration": cfr_it})


# --------------------------------------------------------------------------- MATLAB struct

#: Variable name of the published Abberior MATLAB struct export.
STRUCT_VARIABLE = "minflux"
#: Fields of the struct export (one entry per valid localization of the final iteration).
STRUCT_FIELDS = ("t", "id", "pos", "rpos", "dt", "efo", "efc", "fbg")
#: Unit the struct layout documents for ``pos`` and ``rpos``.
STRUCT_DEFAULT_UNIT = "nm"
#: ``meta`` keys (case-insensitive) read as the unit of ``pos``/``rpos``.
_META_UNIT_KEYS = ("unit", "units", "pos_unit", "posunit", "position_unit", "positionunit",
                   "length_unit", "lengthunit", "unit_pos", "pos_units")
#: Plausible range of max(|x|, |y|) in nm: below, the numbers are metres (or smaller
#: units) labelled nm; above (10 cm), no microscope field of view is that large.
STRUCT_PLAUSIBLE_NM = (1e-2, 1e8)
_MAT73_HEADER = b"MATLAB 7.3 MAT-file"


def _struct_sniff(path: Path, head: bytes) -> bool:
    """A MATLAB file (v5 or v7.3) whose variable ``minflux`` is a struct with ``pos``."""
    if head.startswith(_MAT_MAGIC):
        from scipy.io import whosmat

        try:
            return any(name == STRUCT_VARIABLE and cls == "struct"
                       for name, _, cls in whosmat(str(path)))
        except Exception:
            return False
    if head.startswith(_MAT73_HEADER):
        import h5py

        try:
            with h5py.File(path, "r") as fh:
                grp = fh.get(STRUCT_VARIABLE)
                return isinstance(grp, h5py.Group) and "pos" in grp
        except Exception:
            return False
    return False


def _h5_value(fh, obj):
    """A MATLAB v7.3 dataset/group as Python data: arrays transposed back to MATLAB's
    shape (HDF5 stores them column-major, i.e. reversed), char arrays as str, structs as dict."""
    import h5py

    if isinstance(obj, h5py.Group):
        return {k: _h5_value(fh, v) for k, v in obj.items()}
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0,))
    if obj.dtype == h5py.ref_dtype:
        return [_h5_value(fh, fh[r]) for r in np.asarray(obj[()]).ravel() if r]
    from ._hdf5 import check_dataset_size

    check_dataset_size(obj, Path(fh.filename), obj.name.lstrip("/").replace("/", "."))
    value = np.asarray(obj[()])
    if cls == "char":
        return "".join(chr(c) for c in value.ravel(order="F") if c)
    return value.T


def _struct_fields_v73(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            grp = fh.get(STRUCT_VARIABLE)
            if not isinstance(grp, h5py.Group):
                raise FormatError(f"no struct variable {STRUCT_VARIABLE!r}; found "
                                  f"{sorted(fh.keys())}", path=path)
            return {k: _h5_value(fh, v) for k, v in grp.items()}
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise FormatError(f"not a readable MATLAB v7.3 (HDF5) file: {type(exc).__name__}: "
                          f"{exc}", path=path) from exc


def _struct_fields_v5(path: Path) -> dict:
    from scipy.io import loadmat

    from ._hdf5 import check_mat5_variables

    check_mat5_variables(path, names={STRUCT_VARIABLE})
    try:
        mat = loadmat(str(path), variable_names=[STRUCT_VARIABLE], squeeze_me=False,
                      struct_as_record=True)
    except Exception as exc:  # scipy raises assorted errors on truncated/corrupt files
        raise FormatError(f"not a readable MATLAB v5 file: {type(exc).__name__}: {exc}",
                          path=path) from exc
    var = mat.get(STRUCT_VARIABLE)
    if not isinstance(var, np.ndarray) or var.dtype.names is None or var.size != 1:
        raise FormatError(f"variable {STRUCT_VARIABLE!r} is not a 1x1 struct", path=path)
    rec = var.ravel()[0]
    return {name: _mat5_value(rec[name]) for name in var.dtype.names}


def _mat5_value(v):
    """scipy's v5 representation -> arrays (MATLAB shape), str, dict for structs."""
    if isinstance(v, np.ndarray) and v.dtype.names is not None:
        if v.size == 1:
            rec = v.ravel()[0]
            return {name: _mat5_value(rec[name]) for name in v.dtype.names}
        return [_mat5_value(x[None]) for x in v.ravel()]
    if isinstance(v, np.ndarray) and v.dtype.kind == "U":
        return "".join(v.ravel().tolist())
    if isinstance(v, np.ndarray) and v.dtype == object:
        return [_mat5_value(x) for x in v.ravel()]
    return v


def struct_fields(path: str | Path) -> dict:
    """Fields of the ``minflux`` struct of a MATLAB v5 or v7.3 file, in MATLAB's shapes
    (``pos``: (N, 3); ``t``: (N, 1); ``meta``: dict)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(_MAT73_HEADER):
        return _struct_fields_v73(path)
    if head.startswith(_MAT_MAGIC):
        return _struct_fields_v5(path)
    raise FormatError("not a MATLAB file (expected the header 'MATLAB 5.0 MAT-file' or "
                      "'MATLAB 7.3 MAT-file')", path=path)


def _meta_unit(meta, path) -> str | None:
    if not isinstance(meta, dict):
        return None
    found = {}
    for key, value in meta.items():
        k = str(key).strip().lower()
        if k not in _META_UNIT_KEYS:
            continue
        if isinstance(value, dict):  # e.g. meta.units.pos
            value = next((v for kk, v in value.items() if str(kk).lower() in ("pos", "position")),
                         None)
        if isinstance(value, str) and value.strip():
            found[key] = value.strip()
    if len(set(found.values())) > 1:
        raise FormatError(f"'meta' states different position units: {found}", path=path)
    return next(iter(found.values()), None)


def _column_vector(fields: dict, name: str, n: int | None, path) -> np.ndarray:
    v = np.asarray(fields[name])
    if v.dtype.kind not in "fiub":
        raise FormatError(f"field '{STRUCT_VARIABLE}.{name}' must be numeric, found {v.dtype}",
                          path=path, column=name)
    if v.ndim > 2 or (v.ndim == 2 and 1 not in v.shape):
        raise FormatError(f"field '{STRUCT_VARIABLE}.{name}' must be an N x 1 vector, found "
                          f"shape {v.shape}", path=path, column=name)
    v = v.ravel()
    if n is not None and v.shape[0] != n:
        raise FormatError(f"field '{STRUCT_VARIABLE}.{name}' has {v.shape[0]} entries, expected "
                          f"{n} (one per localization, like 't')", path=path, column=name)
    return v


def _xyz(fields: dict, name: str, n: int, path) -> np.ndarray:
    v = np.asarray(fields[name])
    if v.dtype.kind not in "fiu":
        raise FormatError(f"field '{STRUCT_VARIABLE}.{name}' must be numeric, found {v.dtype}",
                          path=path, column=name)
    if v.ndim == 1 and n == 1 and v.shape[0] in (2, 3):
        v = v[None, :]
    if v.ndim != 2 or v.shape[0] != n or v.shape[1] not in (2, 3):
        raise FormatError(f"field '{STRUCT_VARIABLE}.{name}' must be N x 3 (X, Y, Z) with N = {n}"
                          f" localizations, found shape {v.shape}", path=path, column=name)
    v = np.asarray(v, dtype=np.float64)
    if v.shape[1] == 2:
        v = np.column_stack([v, np.zeros(n)])
    return v


def _plain(obj):
    """JSON-able copy of ``meta``: 1-element arrays become scalars, non-finite floats None."""
    from ..schema import jsonable

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.ravel()[0] if obj.size == 1 else obj)
    return jsonable(obj)


def struct_table(path: str | Path, *, z_scale: float, require_3d: bool,
                 position_unit: str | None = None) -> pa.Table:
    """Read the published Abberior MATLAB struct export (``minflux.t/id/pos/...``).

    ``pos``/``rpos`` are in nm as documented for this layout, unless ``meta`` states a
    unit (or ``position_unit`` is given; a conflict with ``meta`` is refused); a magnitude
    outside :data:`STRUCT_PLAUSIBLE_NM` contradicts the unit and is refused.
    """
    from .smlmzip import LENGTH_UNITS_NM

    path = Path(path)
    fields = struct_fields(path)
    missing = [f for f in ("t", "id", "pos") if f not in fields]
    if missing:
        raise FormatError(f"struct '{STRUCT_VARIABLE}' lacks field(s) {missing}; found "
                          f"{sorted(fields)} (expected {', '.join(STRUCT_FIELDS)}, meta)", path=path)
    meta = fields.get("meta")
    meta_unit = _meta_unit(meta, path)
    if position_unit is not None and meta_unit is not None and \
            LENGTH_UNITS_NM.get(position_unit) != LENGTH_UNITS_NM.get(meta_unit):
        raise FormatError(f"position_unit={position_unit!r} but the file's meta states "
                          f"{meta_unit!r}; drop the argument or fix the file", path=path)
    unit = meta_unit or position_unit or STRUCT_DEFAULT_UNIT
    origin = ("meta" if meta_unit else "position_unit=" if position_unit
              else "the struct layout's documented unit")
    if unit not in LENGTH_UNITS_NM:
        raise FormatError(f"position unit {unit!r} (from {origin}) is not a length unit "
                          f"({', '.join(LENGTH_UNITS_NM)})", path=path)
    factor = LENGTH_UNITS_NM[unit]
    tim = np.asarray(_column_vector(fields, "t", None, path), dtype=np.float64)
    n = tim.shape[0]
    if n == 0:
        raise FormatError("the file holds no localizations (empty 'minflux.t')", path=path)
    tid = _check_field("id", _column_vector(fields, "id", n, path), "int", path)
    pos = _xyz(fields, "pos", n, path) * factor
    finite = np.abs(pos[:, :2])[np.isfinite(pos[:, :2])]
    largest = float(finite.max()) if finite.size else 0.0
    lo, hi = STRUCT_PLAUSIBLE_NM
    if largest and not (lo <= largest <= hi):
        raise FormatError(f"positions contradict their unit {unit!r} (from {origin}): the largest "
                          f"|x|, |y| is {largest / factor:.3g} {unit} = {largest:.3g} nm, outside "
                          f"the plausible {lo:g}..{hi:g} nm; positions in metres (as in the .npy "
                          "export)? Pass position_unit='m' if the file says nothing", path=path)
    has_z = bool(np.any(pos[:, 2] != 0))
    if require_3d and not has_z:
        raise FormatError("3D coordinates requested (require_3d=True) but this is a 2D MINFLUX "
                          "acquisition: every z position is 0", path=path)
    cols: dict[str, Any] = {"x": pos[:, 0], "y": pos[:, 1]}
    original = {"x": "pos[:, 1]", "y": "pos[:, 2]", "time_s": "t", "track_id": "id"}
    if has_z:
        cols["z"] = pos[:, 2] * z_scale
        original["z"] = "pos[:, 3]"
    cols["time_s"] = tim
    cols["track_id"] = np.asarray(tid, dtype=np.int64)
    cols["vld"] = np.ones(n, dtype=bool)
    units = {"vld": "1"}
    if "rpos" in fields:
        rpos = _xyz(fields, "rpos", n, path) * factor
        for j, ax in enumerate("xyz"[:3 if has_z else 2]):
            cols[f"lc{ax}"] = rpos[:, j]
            units[f"lc{ax}"] = "nm"
            original[f"lc{ax}"] = f"rpos[:, {j + 1}]"
    for name, unit_name in (("dt", "s"), ("efo", "Hz"), ("efc", "Hz"), ("fbg", "Hz")):
        if name in fields:
            cols[name] = np.asarray(_column_vector(fields, name, n, path), dtype=np.float64)
            units[name] = unit_name
    if "efo" in cols and "efc" in cols:
        efo, efc = cols["efo"], cols["efc"]
        ok = np.isfinite(efc) & np.isfinite(efo) & (efo > 0)
        cols["cfr"] = np.where(ok, efc / np.where(ok, efo, 1.0), np.nan)
        units["cfr"] = "1"
        original["cfr"] = "efc / efo"
    skipped = []
    for name, value in fields.items():
        if name in STRUCT_FIELDS or name == "meta":
            continue
        v = np.asarray(value) if not isinstance(value, (dict, list, str)) else None
        if v is not None and v.dtype.kind in "fiub" and v.ndim <= 2 and v.size == n and \
                (v.ndim < 2 or 1 in v.shape):
            cols[name] = v.ravel()
        else:
            skipped.append(name)
    order = [c for c in ("x", "y", "z", "time_s", "track_id")] + \
        [c for c in MINFLUX_COLUMNS if c in cols] + [c for c in cols]
    cols = {k: cols[k] for k in dict.fromkeys(order) if k in cols}
    extra = {"minflux_layout": "struct", "minflux_iterations": None,
             "minflux_cfr_iteration": None, "z_scale": z_scale if has_z else None,
             "minflux_position_unit": unit, "minflux_meta": _plain(meta) if meta is not None
             else None}
    if skipped:
        extra["minflux_skipped_fields"] = sorted(skipped)
    table = make_table(cols, units=units, original_names=original, source=str(path),
                       format="minflux", extra_metadata=extra)
    return with_history(table, "io.read_minflux",
                        {"layout": "struct", "z_scale": z_scale, "z_scale_applied": has_z,
                         "position_unit": unit, "position_unit_from": origin})
