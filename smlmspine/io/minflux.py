"""Abberior MINFLUX exports (``.npy``, ``.mat``, ``.json``): reader and writer.

Two layouts exist (both documented in ``docs/formats/minflux.md``); the reader detects
which one from the content, never from the file name:

* **nested** (Imspector exports up to m2205, "version 1"): one record per localization
  attempt with top-level fields ``tid`` (trace id), ``tim`` (s), ``vld`` (valid),
  optional ``sqi``, ``gri``, ``thi``, ``act``, ``dos``, ``sky``, and ``itr``: a nested
  record array with one entry per MINFLUX iteration holding ``itr``, ``tic``, ``loc``
  (3,) (m), ``lnc`` (3,) (m), ``eco``, ``ecc``, ``efo``, ``efc``, ``sta``, ``cfr``,
  ``dcr``, ``ext`` (3,), ``gvy``, ``gvx``, ``eoy``, ``eox``, ``dmz``, ``lcy``, ``lcx``,
  ``lcz``, ``fbg`` (older exports lack some of these; any subset with ``loc`` is read).
* **flat** (Imspector m2410 and newer, "version 2"): one record per *iteration*, with
  ``itr`` an integer (iteration index), ``fnl`` (final iteration of a localization),
  ``bot``/``eot`` (begin/end of trace), ``vld``, ``tim``, ``tid``, ``loc``, ``lnc``,
  ``eco``, ``ecc``, ``efo``, ``efc``, ``cfr``, ``dcr`` (scalar or (2,): the second
  component is ``1 - dcr``), ``fbg``, ``sta``, ``gri``, ``thi``, ``sqi``.

Mapping to the canonical table: the position of the final iteration of each localization
(the last iteration with a finite position, recorded in column ``iteration``), metres ->
nm, to ``x``, ``y``, ``z``; ``z`` (and ``lnc_z``) multiplied by the axial foreshortening
factor ``z_scale`` (default :data:`DEFAULT_Z_SCALE` = 0.7, Gwosch et al. 2020), recorded
in the table history; ``tim`` -> ``time_s``; ``tid`` -> ``track_id``; no ``frame``.
Quality fields are taken from the same iteration as the position, except ``cfr`` and
``efc``, which come from the last iteration in which the centre-frequency check was made
(the last iteration with a finite ``efc``; 3D sequences measure it in an intermediate
iteration only). A zip archive holding one ``.npy`` export is read directly. Invalid localizations (``vld`` false) are dropped
unless ``keep_invalid=True``.

A third layout, **struct**, is the published MATLAB export (DNA-PAINT MINFLUX data sets):
one struct variable ``minflux`` with fields ``t`` (s), ``id`` (trace), ``pos`` (N x 3, nm;
z = 0 for 2D), ``rpos`` (N x 3, nm, relative to the beam centre), ``dt`` (s), ``efo``,
``efc``, ``fbg`` (Hz) and ``meta``, holding the final iteration of valid localizations
only; MATLAB v5 (scipy) and v7.3 (HDF5, h5py; arrays stored transposed) are read. ``pos``
is taken in nm unless ``meta`` states a unit (or ``position_unit=`` is given); a magnitude
that contradicts the unit is refused. Columns: ``x``, ``y`` (, ``z`` x ``z_scale``),
``time_s``, ``track_id``, ``vld`` (true), ``lcx``/``lcy``(/``lcz``) from ``rpos``, ``dt``,
``efo``, ``efc``, ``fbg``, and ``cfr`` = efc / efo (NaN where efc is not finite).

The writer :func:`write_abberior_npy` produces files in either layout from a
localization table (this is what :mod:`smlmspine.simulate` uses for MINFLUX test files);
the registered writer ``minflux`` stores only the fields the table has.

Examples
--------
>>> import tempfile, pathlib
>>> from smlmspine.schema import make_table
>>> t = make_table({"x": [100.0, 102.0], "y": [50.0, 51.0], "z": [7.0, 14.0],
...                 "time_s": [0.1, 0.2], "track_id": [3, 3]})
>>> p = pathlib.Path(tempfile.mkdtemp()) / "mfx.npy"
>>> _ = write_abberior_npy(t, p, ndim=3, n_iterations=4)
>>> back = read_minflux(p)
>>> back.column("z").to_pylist(), back.column("track_id").to_pylist()
([7.0, 14.0], [3, 3])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ._minflux_layouts import (_M_TO_NM, DEFAULT_Z_SCALE, FLAT_DTYPE, MINFLUX_COLUMNS,
                               NESTED_ITR_DTYPE, NESTED_TOP_FIELDS, _build_table,
                               _flat_to_columns, _nested_to_columns, _sniff, _struct_sniff,
                               detect_layout, minflux_arrays, struct_table)
from ._registry import atomic_output, register_reader, register_writer

__all__ = ["read_minflux", "write_abberior_npy", "minflux_arrays", "detect_layout",
           "DEFAULT_Z_SCALE", "MINFLUX_COLUMNS", "NESTED_ITR_DTYPE", "NESTED_TOP_FIELDS",
           "FLAT_DTYPE"]


@register_reader("minflux", extensions=(".npy", ".mat", ".json", ".npy.zip"), sniff=_sniff,
                 description="Abberior MINFLUX export (.npy/.mat/.json, zipped .npy; nested and "
                             "flat layouts)",
                 priority=40, options=("keep_invalid", "z_scale", "require_3d", "position_unit"))
def read_minflux(path: str | Path, *, pixel_size_nm: float | None = None,
                 keep_invalid: bool = False, z_scale: float = DEFAULT_Z_SCALE,
                 require_3d: bool = False, position_unit: str | None = None) -> pa.Table:
    """Read an Abberior MINFLUX export into the canonical localization table.

    Parameters
    ----------
    path : str or Path
        ``.npy`` (NumPy structured array; also a zip archive holding one ``.npy``), ``.mat``
        (MATLAB v5) or ``.json`` export, in the nested (m2205) or flat (m2410+) layout; the
        layout is detected from the content.
    pixel_size_nm : None
        Unused (MINFLUX positions are in metres); accepted for the registry interface.
    keep_invalid : bool, default False
        Keep localizations with ``vld`` false (their last finite iteration gives the
        position; attempts without any position are dropped with a
        :class:`~smlmspine.errors.QualityWarning`).
    z_scale : float, default 0.7
        Axial foreshortening (refractive-index mismatch) factor multiplied into ``z``
        (and ``lnc_z``); recorded in the table history and metadata (``z_scale``).
        Use 1.0 to keep the raw axial positions.
    require_3d : bool, default False
        Raise :class:`FormatError` if the acquisition is 2D (all z positions 0).
    position_unit : str, optional
        MATLAB struct export only (``minflux.pos``, documented in nm): the unit of ``pos``
        and ``rpos`` when the file's ``meta`` states none. A unit in ``meta`` that differs
        is an error; so is using it with another layout.

    Returns
    -------
    pyarrow.Table
        One row per localization: ``x``, ``y`` (, ``z``) in nm, ``time_s``, ``track_id``,
        ``iteration``, ``vld`` and the quality fields (``efo``, ``cfr``, ``dcr``, ``eco``,
        ``fbg``, ...; see :data:`MINFLUX_COLUMNS`) with units in the field metadata.

    Raises
    ------
    FormatError
        Missing or wrongly typed fields, empty or all-invalid data, 2D data when
        ``require_3d``; the message names the file and the field.
    """
    path = Path(path)
    if not np.isfinite(z_scale) or z_scale <= 0:
        raise ParameterError(f"z_scale must be a positive number, got {z_scale!r}")
    with open(path, "rb") as fh:
        head = fh.read(128)
    if _struct_sniff(path, head):
        return struct_table(path, z_scale=float(z_scale), require_3d=require_3d,
                            position_unit=position_unit)
    if position_unit is not None:
        raise ParameterError("position_unit applies only to the MATLAB struct export "
                             "(minflux.pos); Imspector .npy/.json/.mat exports are in metres")
    layout, top, itr = minflux_arrays(path)
    if layout == "nested":
        pos, iteration, top_sel, per_itr, cfr_it, n_it = _nested_to_columns(
            top, itr, path, keep_invalid)
    else:
        pos, iteration, top_sel, per_itr, cfr_it, n_it = _flat_to_columns(top, path, keep_invalid)
    return _build_table(pos, iteration, top_sel, per_itr, path=path, layout=layout,
                        z_scale=float(z_scale), require_3d=require_3d, keep_invalid=keep_invalid,
                        cfr_it=cfr_it, n_it=n_it)

# --------------------------------------------------------------------------- writing

def _table_columns(table_or_records) -> dict[str, np.ndarray]:
    if isinstance(table_or_records, pa.Table):
        return {n: table_or_records.column(n).to_numpy(zero_copy_only=False)
                for n in table_or_records.column_names}
    if isinstance(table_or_records, Mapping):
        return {k: np.asarray(v) for k, v in table_or_records.items()}
    raise ParameterError("expected a pyarrow.Table or a mapping of column name -> array, got "
                         f"{type(table_or_records).__name__}")


def _positions_m(cols, n, ndim, z_scale) -> np.ndarray:
    """(n, 3) positions in metres as the exports store them (z before the axial
    foreshortening ``z_scale``; 0 in 2D)."""
    pos = np.zeros((n, 3))
    pos[:, 0] = cols["x"] / _M_TO_NM
    pos[:, 1] = cols["y"] / _M_TO_NM
    if ndim == 3:
        pos[:, 2] = cols["z"] / (_M_TO_NM * z_scale)
    return pos


def _nested_records(cols, n, ndim, n_iterations, z_scale) -> np.ndarray:
    top_dtype = [(name, dt) for name, dt in NESTED_TOP_FIELDS]
    dtype = np.dtype([("itr", NESTED_ITR_DTYPE, (n_iterations,))] + top_dtype)
    out = np.zeros(n, dtype=dtype)
    it = out["itr"]
    it["itr"] = np.arange(n_iterations)[None, :]
    pos = _positions_m(cols, n, ndim, z_scale)
    it["loc"] = pos[:, None, :]
    it["lnc"] = pos[:, None, :]
    tim = np.asarray(cols.get("time_s", np.arange(n) * 1e-3), dtype=float)
    # 40 MHz clock; earlier iterations a few microseconds apart
    it["tic"] = (np.round(tim * 4e7)[:, None] - (n_iterations - 1 - np.arange(n_iterations)) *
                 100).clip(0).astype(np.uint64)
    defaults = {"efo": 1e5, "eco": 100, "ecc": 50, "efc": 5e4, "cfr": 0.5, "dcr": 0.5, "fbg": 0.0}
    for name, default in defaults.items():
        v = cols.get(name)
        it[name] = (np.asarray(v, dtype=float) if v is not None else np.full(n, default))[:, None]
    it["ext"] = np.array([3.96e-8, 3.96e-8, 3.96e-8 if ndim == 3 else 3.96e-8])
    out["tim"] = tim
    out["tid"] = np.asarray(cols.get("track_id", np.arange(n)), dtype=np.int64)
    out["vld"] = np.asarray(cols.get("vld", np.ones(n, bool)), dtype=bool)
    out["dos"] = 255
    out["sky"] = 2
    return out


def _flat_records(cols, n, ndim, n_iterations, z_scale) -> np.ndarray:
    m = n * n_iterations
    out = np.zeros(m, dtype=FLAT_DTYPE)
    rep = np.repeat(np.arange(n), n_iterations)
    out["itr"] = np.tile(np.arange(n_iterations), n)
    out["fnl"] = out["itr"] == n_iterations - 1
    tid = np.asarray(cols.get("track_id", np.arange(n)), dtype=np.int64)
    if np.any(tid < 0):
        raise ParameterError("track_id must be >= 0 for the flat MINFLUX layout (uint32 tid)")
    first = np.ones(n, bool)
    first[1:] = tid[1:] != tid[:-1]
    last = np.ones(n, bool)
    last[:-1] = tid[1:] != tid[:-1]
    out["bot"] = first[rep] & (out["itr"] == 0)
    out["eot"] = last[rep] & out["fnl"]
    out["tid"] = tid[rep]
    out["vld"] = np.asarray(cols.get("vld", np.ones(n, bool)), dtype=bool)[rep]
    tim = np.asarray(cols.get("time_s", np.arange(n) * 1e-3), dtype=float)
    out["tim"] = tim[rep]
    pos = _positions_m(cols, n, ndim, z_scale)
    out["loc"] = pos[rep]
    out["lnc"] = pos[rep]
    defaults = {"efo": 1e5, "eco": 100, "ecc": 50, "efc": 5e4, "cfr": 0.5, "fbg": 0.0}
    for name, default in defaults.items():
        v = cols.get(name)
        out[name] = (np.asarray(v, dtype=float) if v is not None else np.full(n, default))[rep]
    dcr = np.asarray(cols.get("dcr", np.full(n, 0.5)), dtype=float)[rep]
    out["dcr"] = np.column_stack([dcr, 1.0 - dcr])
    return out


def _to_json_records(arr: np.ndarray) -> list:
    def conv(rec, dtype):
        d = {}
        for name in dtype.names:
            sub = dtype[name]
            val = rec[name]
            if sub.subdtype is not None and sub.subdtype[0].names is not None:
                d[name] = [conv(v, sub.subdtype[0]) for v in val]
            elif isinstance(val, np.ndarray):
                d[name] = [None if not np.isfinite(x) else float(x) for x in val.tolist()]
            else:
                v = val.item()
                d[name] = None if isinstance(v, float) and not np.isfinite(v) else v
        return d

    return [conv(r, arr.dtype) for r in arr]


def _to_mat_dict(arr: np.ndarray, layout: str) -> dict:
    out = {}
    for name in arr.dtype.names:
        if name == "itr" and layout == "nested":
            sub = arr["itr"]
            struct = np.empty((1, 1), dtype=[(f, object) for f in sub.dtype.names])
            for f in sub.dtype.names:
                struct[f][0, 0] = np.ascontiguousarray(sub[f])
            out["itr"] = struct
        else:
            v = np.ascontiguousarray(arr[name])
            out[name] = v[:, None] if v.ndim == 1 else v
            if v.dtype == bool:
                out[name] = out[name].astype(np.uint8)
    return out


def write_abberior_npy(table_or_records, path: str | Path, *, ndim: int | None = None,
                       n_iterations: int = 5, version: str = "m2205",
                       z_scale: float = DEFAULT_Z_SCALE) -> Path:
    """Write localizations as an Abberior MINFLUX export (for tests and simulations).

    The simulator (:mod:`smlmspine.simulate`) uses this to produce MINFLUX files that
    :func:`read_minflux` (and pyMINFLUX) read back. Every iteration gets the final position
    (a simplification of real sequences, where early iterations are coarser).

    Parameters
    ----------
    table_or_records : pyarrow.Table or mapping of str to array
        Localizations: ``x``, ``y`` (, ``z``) in nm, optional ``time_s`` (s), ``track_id``,
        ``vld`` and quality columns ``efo``, ``eco``, ``ecc``, ``efc``, ``cfr``, ``dcr``,
        ``fbg`` (defaults are written where absent).
    path : str or Path
        Output file; ``.npy`` (structured array), ``.json`` (list of records) or ``.mat``
        (MATLAB v5, variables as Imspector writes them).
    ndim : {2, 3}, optional
        Dimensionality; default 3 when a ``z`` column is present, else 2. 2D files have z = 0.
    n_iterations : int, default 5
        MINFLUX iterations per localization (Imspector's 2D sequences use 5, 3D 10).
    version : {"m2205", "m2410"}
        ``"m2205"``: nested layout (one record per localization with an ``itr``
        sub-array); ``"m2410"``: flat layout (one record per iteration, ``fnl`` marks the
        final one).
    z_scale : float, default 0.7
        The foreshortening factor the reader will apply: ``z`` is divided by it so that
        ``read_minflux(path, z_scale=z_scale)`` returns the input ``z``.

    Returns
    -------
    Path
        The path written (atomically: a failure leaves no partial file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".json", ".mat"):
        raise ParameterError(f"output extension must be .npy, .json or .mat, got {suffix!r}")
    arr = _records(_table_columns(table_or_records), ndim=ndim, n_iterations=n_iterations,
                   version=version, z_scale=z_scale)
    layout = "nested" if version == "m2205" else "flat"
    with atomic_output(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        elif suffix == ".json":
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(_to_json_records(arr), fh)
        else:
            from scipy.io import savemat

            with open(tmp, "wb") as fh:
                savemat(fh, _to_mat_dict(arr, layout))
    if suffix == ".mat":
        from ._registry import trust_written

        trust_written(path)   # written by scipy here: reading it back needs no probe
    return path


def _records(cols: dict, *, ndim, n_iterations, version, z_scale) -> np.ndarray:
    n, ndim = _check_records(cols, ndim=ndim, n_iterations=n_iterations, version=version,
                             z_scale=z_scale)
    build = _nested_records if version == "m2205" else _flat_records
    return build(cols, n, ndim, int(n_iterations), float(z_scale))


def _check_records(cols: dict, *, ndim, n_iterations, version, z_scale) -> tuple[int, int]:
    """Validate the writer's arguments and columns; returns (rows, ndim)."""
    for name in ("x", "y"):
        if name not in cols:
            raise ParameterError(f"column {name!r} is required to write a MINFLUX file; found "
                                 f"{sorted(cols)}")
    n = len(cols["x"])
    if n == 0:
        raise ParameterError("no localizations to write")
    if ndim is None:
        ndim = 3 if "z" in cols else 2
    if ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim!r}")
    if ndim == 3 and "z" not in cols:
        raise ParameterError("ndim=3 needs a 'z' column")
    if int(n_iterations) < 1:
        raise ParameterError(f"n_iterations must be >= 1, got {n_iterations!r}")
    if not np.isfinite(z_scale) or z_scale <= 0:
        raise ParameterError(f"z_scale must be a positive number, got {z_scale!r}")
    if version not in ("m2205", "m2410"):
        raise ParameterError(f"version must be 'm2205' (nested) or 'm2410' (flat), got {version!r}")
    return n, ndim


#: Columns the registered writer stores (besides x, y, z, time_s, track_id): top-level
#: fields, scalar per-iteration fields and per-iteration vectors (``<name>_x/_y/_z``).
_WRITABLE_TOP = ("vld", "sqi", "gri", "act", "dos", "sky")
_WRITABLE_ITR = ("efo", "efc", "cfr", "dcr", "eco", "ecc", "fbg", "sta", "tic", "gvx", "gvy",
                 "eox", "eoy", "dmz", "lcx", "lcy", "lcz")
_WRITABLE_VEC = ("lnc", "ext")
#: Not stored as fields: ``iteration`` is the index of the final iteration the reader
#: finds; ``bot``/``eot`` (flat layout: begin/end of trace) follow from ``track_id``.
_STRUCTURAL = ("iteration", "bot", "eot")


def _minimal_nested(cols: dict, n: int, ndim: int, n_iterations: int, z_scale: float,
                    path) -> np.ndarray:
    """Nested records holding only the fields the table has (no invented quality values)."""
    from ._minflux_layouts import _LENGTH_FIELDS

    itr_types = dict((name, NESTED_ITR_DTYPE[name]) for name in NESTED_ITR_DTYPE.names)
    top_types = dict(NESTED_TOP_FIELDS)
    itr_fields = ["itr", "loc"] + [f for f in _WRITABLE_ITR if f in cols] + \
        [v for v in _WRITABLE_VEC if f"{v}_x" in cols or f"{v}_y" in cols]
    top_fields = ["tim", "tid", "vld"] + [f for f in _WRITABLE_TOP if f in cols and f != "vld"]
    dtype = np.dtype([("itr", np.dtype([(f, itr_types[f]) for f in itr_fields]),
                       (n_iterations,))] + [(f, top_types[f]) for f in top_fields])
    out = np.zeros(n, dtype=dtype)
    it = out["itr"]
    it["itr"] = np.arange(n_iterations)[None, :]
    pos = _positions_m(cols, n, ndim, z_scale)
    it["loc"] = pos[:, None, :]
    for name in itr_fields[2:]:
        if name in _WRITABLE_VEC:
            vec = np.zeros((n, 3))
            for j, ax in enumerate("xyz"):
                if f"{name}_{ax}" in cols:
                    scale = _M_TO_NM * (z_scale if (name == "lnc" and ax == "z") else 1.0)
                    vec[:, j] = np.asarray(cols[f"{name}_{ax}"], dtype=np.float64) / scale
            it[name] = vec[:, None, :]
            continue
        v = np.asarray(cols[name])
        if name in _LENGTH_FIELDS:
            v = np.asarray(v, dtype=np.float64) / _M_TO_NM
        it[name] = v[:, None]
    out["tim"] = np.asarray(cols["time_s"], dtype=np.float64)
    out["tid"] = np.asarray(cols["track_id"], dtype=np.int64)
    out["vld"] = np.asarray(cols.get("vld", np.ones(n, bool)), dtype=bool)
    for name in top_fields[3:]:
        out[name] = np.asarray(cols[name])
    return out


@register_writer("minflux", extensions=(".npy",),
                 description="Abberior MINFLUX .npy (nested m2205 layout; needs time_s and "
                             "track_id; stores positions, vld and the MINFLUX fields the table "
                             "has, refuses other columns)",
                 options=("ndim", "n_iterations", "version", "z_scale"))
def _write_registry(table: pa.Table, tmp_path: Path, *, final_path: Path | None = None,
                    ndim: int | None = None, n_iterations: int = 5, version: str = "m2205",
                    z_scale: float = DEFAULT_Z_SCALE) -> None:
    missing = [c for c in ("time_s", "track_id") if c not in table.column_names]
    if missing:
        raise FormatError(f"a MINFLUX .npy needs column(s) {missing} (MINFLUX time and trace id); "
                          "this table looks like camera (STORM) data: write .parquet/.csv, or "
                          "call smlmspine.io.minflux.write_abberior_npy to fill defaults",
                          path=final_path)
    storable = {"x", "y", "z", "time_s", "track_id", *_WRITABLE_TOP, *_WRITABLE_ITR,
                *_STRUCTURAL, *(f"{v}_{ax}" for v in _WRITABLE_VEC for ax in "xyz")}
    extra = [c for c in table.column_names if c not in storable]
    if extra:
        raise FormatError(f"a MINFLUX .npy cannot store column(s) {extra} (it holds x, y, z, "
                          "time_s, track_id, vld and Imspector's fields); write .parquet or "
                          ".arrow to keep them, or drop them first", path=final_path)
    try:
        cols = _table_columns(table)
        if version != "m2205":  # the flat layout: every field, defaults where absent
            arr = _records(cols, ndim=ndim, n_iterations=n_iterations, version=version,
                           z_scale=z_scale)
        else:
            n, dims = _check_records(cols, ndim=ndim, n_iterations=n_iterations,
                                     version=version, z_scale=z_scale)
            arr = _minimal_nested(cols, n, dims, int(n_iterations), float(z_scale), final_path)
    except ParameterError as exc:
        raise FormatError(str(exc), path=final_path) from exc
    with open(tmp_path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
