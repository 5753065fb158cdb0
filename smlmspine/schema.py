"""The canonical localization table: columns, Arrow types, units and metadata.

Every reader returns a :class:`pyarrow.Table` that follows this schema and every
stage takes and returns one. Canonical columns have fixed names, types and units
(:data:`COLUMNS`); any other source column is kept under a sanitized name with its
original name (and unit, where known) in the field metadata, so a conversion
loses nothing.

Field metadata keys: ``unit`` (e.g. ``nm``), ``original_name`` (the name in the
source file), ``description``.

Schema (table) metadata keys, all prefixed ``smlmspine.``: ``schema_version``,
``source`` (path of the file read), ``format`` (reader name), ``pixel_size_nm``
(JSON, the pixel size used to convert to nm, or ``null``), ``history`` (JSON list
of processing steps ``{"step": ..., "params": {...}, "version": ...}``).

Examples
--------
>>> t = make_table({"x": [1.0, 2.0], "y": [3.0, 4.0], "frame": [0, 1]})
>>> t.schema.field("x").metadata[b"unit"]
b'nm'
>>> validate(t) is t
True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import SchemaError

__all__ = [
    "SCHEMA_VERSION", "ColumnSpec", "COLUMNS", "COORDINATES", "META_PREFIX",
    "field", "make_table", "validate", "sanitize_name", "unit_of", "metadata",
    "history", "with_history", "with_columns", "coordinates", "ndim", "canonical_schema",
    "table_schema_columns", "TABLE_REGISTRIES", "column_specs", "spec_table", "jsonable",
    "first_negative_frame", "negative_frame_message",
]

SCHEMA_VERSION = "1"
META_PREFIX = "smlmspine."


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """Name, Arrow type, unit and meaning of one column of a table smlmspine writes.

    Attributes
    ----------
    name : str
        Column name.
    type : pyarrow.DataType
        Arrow type of the column (``pa.float64()``, ``pa.int64()``, ...).
    unit : str
        Unit stored in the field metadata (``"nm"``, ``"s"``, ``"1"`` for counts and
        labels, ...).
    description : str
        One line on what the column holds (stored in the field metadata).

    Examples
    --------
    >>> COLUMNS["x"]
    ColumnSpec(name='x', type=DataType(double), unit='nm', description='x coordinate')
    """

    name: str
    type: pa.DataType
    unit: str
    description: str


def _spec(name: str, type_: pa.DataType, unit: str, description: str) -> tuple[str, ColumnSpec]:
    return name, ColumnSpec(name, type_, unit, description)


#: Canonical columns of the localization table (see ``data_schemas/localizations.json``).
COLUMNS: dict[str, ColumnSpec] = dict([
    _spec("x", pa.float64(), "nm", "x coordinate"),
    _spec("y", pa.float64(), "nm", "y coordinate"),
    _spec("z", pa.float64(), "nm", "z coordinate (axial); absent for 2D data"),
    _spec("frame", pa.int64(), "frame", "camera frame index (STORM); absent for MINFLUX"),
    _spec("time_s", pa.float64(), "s", "acquisition time of the localization"),
    _spec("photons", pa.float64(), "photon", "photon count (intensity) of the localization"),
    _spec("background", pa.float64(), "photon", "background photons per pixel"),
    _spec("precision_xy", pa.float64(), "nm", "lateral localization precision (1 sigma)"),
    _spec("precision_z", pa.float64(), "nm", "axial localization precision (1 sigma)"),
    _spec("channel", pa.int64(), "1", "colour channel index"),
    _spec("track_id", pa.int64(), "1", "trace / track identifier (MINFLUX tid, tracked blinks)"),
    _spec("cluster_id", pa.int64(), "1", "cluster label, -1 for noise"),
    _spec("spine_id", pa.int64(), "1", "spine label, -1 when not in a spine"),
])

COORDINATES = ("x", "y", "z")

#: Every table smlmspine writes: table name -> "module:ATTRIBUTE" of its column registry
#: (a dict name -> ColumnSpec). Each needs a document ``data_schemas/<name>.json``; a test
#: keeps the two in sync. Stages add their tables here.
TABLE_REGISTRIES: dict[str, str] = {
    "localizations": "smlmspine.schema:COLUMNS",
    "spines": "smlmspine.morphology:SPINE_COLUMNS",
    "spine_profiles": "smlmspine.morphology:PROFILE_COLUMNS",
    "clusters": "smlmspine.cluster._stats:CLUSTER_COLUMNS",
    "spine_meshes": "smlmspine._columns:SPINE_MESH_COLUMNS",
    "spine_mesh_features": "smlmspine.morphology:SPINE_MESH_FEATURE_COLUMNS",
    "pairs": "smlmspine.coupling._soda:PAIR_COLUMNS",
    "rings": "smlmspine.coupling._soda:RING_COLUMNS",
    "drift": "smlmspine.drift._model:DRIFT_COLUMNS",
    "minflux_localizations": "smlmspine.io.minflux:MINFLUX_COLUMNS",
    "trace_averages": "smlmspine.minflux:TRACE_COLUMNS",
    "truth_localizations": "smlmspine.simulate._truth:TRUTH_LOCALIZATIONS",
    "truth_emitters": "smlmspine.simulate._truth:TRUTH_EMITTERS",
    "truth_spines": "smlmspine.simulate._truth:TRUTH_SPINES",
    "truth_drift": "smlmspine.simulate._truth:TRUTH_DRIFT",
    "truth_minflux": "smlmspine.simulate._truth:TRUTH_MINFLUX",
    "truth_minflux_drift": "smlmspine.simulate._truth:TRUTH_MINFLUX_DRIFT",
    "failures": "smlmspine._batch:FAILURE_COLUMNS",
    "localizations_summary": "smlmspine._batch:SUMMARY_COLUMNS",
    "batch_spines": "smlmspine._batch:batch_spine_columns",
    "spine_grids": "smlmspine.voxel._grids:SPINE_GRID_COLUMNS",
}

_INT_COLUMNS = {name for name, spec in COLUMNS.items() if pa.types.is_integer(spec.type)}


def canonical_schema() -> dict[str, ColumnSpec]:
    """Return the canonical column registry of the localization table.

    Returns
    -------
    dict of str to ColumnSpec
        A copy of :data:`COLUMNS` (name -> :class:`ColumnSpec`), in canonical order.

    Examples
    --------
    >>> list(canonical_schema())[:4]
    ['x', 'y', 'z', 'frame']
    """
    return dict(COLUMNS)


def table_schema_columns() -> dict[str, ColumnSpec]:
    """Columns of the localization table, for the ``data_schemas`` sync test.

    Returns
    -------
    dict of str to ColumnSpec
        The same registry as :func:`canonical_schema`.
    """
    return canonical_schema()


def column_specs(*specs: tuple[str, pa.DataType, str, str]) -> dict[str, ColumnSpec]:
    """Build a column registry from ``(name, type, unit, description)`` tuples.

    Stages use it for the tables they write (cluster statistics, spine features, ...),
    and :func:`spec_table` to build those tables with units in the field metadata.

    Parameters
    ----------
    *specs : tuple of (str, pyarrow.DataType, str, str)
        ``(name, type, unit, description)`` of each column, in table order.

    Returns
    -------
    dict of str to ColumnSpec
        Column name -> :class:`ColumnSpec`, in the order given.

    Examples
    --------
    >>> reg = column_specs(("cluster_id", pa.int64(), "1", "cluster label"))
    >>> reg["cluster_id"].unit
    '1'
    """
    return {name: ColumnSpec(name, type_, unit, desc) for name, type_, unit, desc in specs}


def spec_table(registry: Mapping[str, ColumnSpec], columns: Mapping[str, Any], *,
               metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Build a table whose columns follow ``registry`` exactly (order, types, units).

    Every registry column must be given; extra columns are an error, so the written
    table always matches its ``data_schemas`` document.

    Parameters
    ----------
    registry : mapping of str to ColumnSpec
        The table's column registry (from :func:`column_specs`).
    columns : mapping of str to array-like
        Values of every registry column (all of the same length ``N``); each is cast to
        its registry type.
    metadata : mapping, optional
        Table metadata, stored JSON-encoded (:func:`jsonable`) under
        ``smlmspine.<key>``.

    Returns
    -------
    pyarrow.Table
        ``N`` rows, the registry's columns in its order with ``unit`` and
        ``description`` in the field metadata.

    Raises
    ------
    SchemaError
        A registry column is missing, a column is not in the registry, or values cannot
        be stored with the registry type.

    Examples
    --------
    >>> reg = column_specs(("cluster_id", pa.int64(), "1", "cluster label"),
    ...                    ("area_nm2", pa.float64(), "nm^2", "hull area"))
    >>> t = spec_table(reg, {"cluster_id": [0, 1], "area_nm2": [10.0, 12.5]})
    >>> t.schema.field("area_nm2").metadata[b"unit"], t.num_rows
    (b'nm^2', 2)
    """
    missing = [n for n in registry if n not in columns]
    extra = [n for n in columns if n not in registry]
    if missing or extra:
        raise SchemaError(f"table columns do not match the registry: missing {missing}, extra {extra}")
    fields, arrays = [], []
    for name, spec in registry.items():
        arr = _to_array(columns[name], spec.type, name)
        fields.append(pa.field(name, spec.type, metadata={"unit": spec.unit,
                                                           "description": spec.description}))
        arrays.append(arr)
    meta = {META_PREFIX + "schema_version": SCHEMA_VERSION}
    for k, v in (metadata or {}).items():
        meta[META_PREFIX + k] = json.dumps(_jsonable(v))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def sanitize_name(name: str, taken: Iterable[str] = ()) -> str:
    """Turn a source column name into a safe, lower-case identifier.

    Units in brackets are dropped (they go to the field metadata), other characters
    become ``_``; a name that would clash with ``taken`` gets a numeric suffix.

    Parameters
    ----------
    name : str
        Column name as found in the source file.
    taken : iterable of str
        Names already in use; the result differs from all of them.

    Returns
    -------
    str
        Lower-case identifier of ``[0-9a-z_]`` (``"column"`` when nothing is left),
        prefixed with ``_`` when it would start with a digit.

    Examples
    --------
    >>> sanitize_name("uncertainty_xy [nm]")
    'uncertainty_xy'
    >>> sanitize_name("Position X (nm)")
    'position_x'
    >>> sanitize_name("1st frame", taken=["_1st_frame"])
    '_1st_frame_2'
    """
    base = re.sub(r"\s*[\[(][^\])]*[\])]\s*", " ", str(name)).strip()
    base = re.sub(r"[^0-9a-zA-Z]+", "_", base).strip("_").lower() or "column"
    if base[0].isdigit():
        base = "_" + base
    taken = set(taken)
    out, k = base, 2
    while out in taken:
        out = f"{base}_{k}"
        k += 1
    return out


def field(name: str, type_: pa.DataType | None = None, *, unit: str | None = None,
          original_name: str | None = None, description: str | None = None) -> pa.Field:
    """Build an Arrow field with smlmspine metadata.

    Canonical names get their canonical type and unit unless given.

    Parameters
    ----------
    name : str
        Field name.
    type_ : pyarrow.DataType, optional
        Arrow type; default the canonical type of ``name`` (required for other names).
    unit : str, optional
        Unit (field metadata ``unit``); default the canonical unit of ``name``.
    original_name : str, optional
        Name in the source file, stored when it differs from ``name``.
    description : str, optional
        Stored as field metadata ``description``.

    Returns
    -------
    pyarrow.Field

    Raises
    ------
    SchemaError
        ``name`` is not canonical and no type is given.

    Examples
    --------
    >>> f = field("precision_xy", original_name="uncertainty_xy [nm]")
    >>> str(f.type), f.metadata[b"unit"], f.metadata[b"original_name"]
    ('double', b'nm', b'uncertainty_xy [nm]')
    """
    spec = COLUMNS.get(name)
    if type_ is None:
        if spec is None:
            raise SchemaError(f"column {name!r} is not canonical: its type must be given")
        type_ = spec.type
    meta: dict[str, str] = {}
    if unit is None and spec is not None:
        unit = spec.unit
    if unit is not None:
        meta["unit"] = unit
    if original_name is not None and original_name != name:
        meta["original_name"] = str(original_name)
    if description is not None:
        meta["description"] = description
    return pa.field(name, type_, metadata=meta or None)


def _to_array(values: Any, type_: pa.DataType | None, name: str) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        if not isinstance(values, list):
            values = np.asarray(values)
            if values.dtype.kind in "biufc" and not values.dtype.isnative:
                values = values.astype(values.dtype.newbyteorder("="))   # Arrow: native order only
        arr = pa.array(values)
    if type_ is not None and not arr.type.equals(type_):
        if name in _INT_COLUMNS and pa.types.is_floating(arr.type):
            np_vals = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)
            finite = np_vals[np.isfinite(np_vals)]
            if np.any(finite != np.round(finite)):
                raise SchemaError(f"column {name!r} must hold integers, found non-integer values "
                                  f"(e.g. {finite[finite != np.round(finite)][0]!r})")
            if np.any(~np.isfinite(np_vals)):
                raise SchemaError(f"column {name!r} must hold integers, found NaN/inf")
        try:
            arr = arr.cast(type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"column {name!r} cannot be stored as {type_}: {exc}") from exc
    return arr


def make_table(columns: Mapping[str, Any], *, units: Mapping[str, str] | None = None,
               original_names: Mapping[str, str] | None = None,
               source: str | None = None, format: str | None = None,
               pixel_size_nm: float | Iterable[float] | None = None,
               history: list[dict] | None = None,
               extra_metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Assemble a canonical localization table.

    Parameters
    ----------
    columns : mapping of str to array-like
        Column name -> values. Canonical names (:data:`COLUMNS`) are cast to their
        canonical type (never downcast: coordinates become float64); other names are
        sanitized and kept with their type.
    units : mapping, optional
        Units of non-canonical columns (canonical ones always carry their own).
    original_names : mapping, optional
        Name in the source file for each column (stored as ``original_name``).
    source, format : str, optional
        Source path and reader name, stored in the table metadata.
    pixel_size_nm : float or sequence, optional
        The pixel size used for the conversion to nm (``None`` when the source was in nm).
    history : list of dict, optional
        Processing history to start with.
    extra_metadata : mapping, optional
        More table metadata (stored JSON-encoded under ``smlmspine.<key>``).

    Returns
    -------
    pyarrow.Table
        Canonical columns first (in :data:`COLUMNS` order), then the others in the order
        given; units and original names in the field metadata; ``smlmspine.*`` table
        metadata (schema version, source, format, pixel size, history).

    Raises
    ------
    SchemaError
        Columns of different lengths, non-integer values in an integer canonical column
        (``frame``, ``channel``, ...), or values that cannot be cast.

    Examples
    --------
    >>> t = make_table({"x": [1, 2], "y": [3, 4], "X [um]": [5, 6]}, units={"X [um]": "um"})
    >>> t.column_names, str(t.schema.field("x").type)
    (['x', 'y', 'x_2'], 'double')
    """
    units = dict(units or {})
    original_names = dict(original_names or {})
    fields, arrays, taken = [], [], set()
    order = [c for c in COLUMNS if c in columns] + [c for c in columns if c not in COLUMNS]
    for name in order:
        values = columns[name]
        if name in COLUMNS:
            out_name = name
            spec = COLUMNS[name]
            arr = _to_array(values, spec.type, name)
            f = field(name, original_name=original_names.get(name))
        else:
            out_name = sanitize_name(name, taken | set(COLUMNS))
            arr = _to_array(values, None, name)
            if pa.types.is_null(arr.type):
                arr = arr.cast(pa.float64())
            f = field(out_name, arr.type, unit=units.get(name),
                      original_name=original_names.get(name, name))
        taken.add(out_name)
        fields.append(f)
        arrays.append(arr)
    meta = {
        META_PREFIX + "schema_version": SCHEMA_VERSION,
        META_PREFIX + "source": json.dumps(None if source is None else str(source)),
        META_PREFIX + "format": json.dumps(format),
        META_PREFIX + "pixel_size_nm": json.dumps(_pixel_json(pixel_size_nm)),
        META_PREFIX + "history": json.dumps(list(history or [])),
    }
    for key, value in (extra_metadata or {}).items():
        meta[META_PREFIX + key] = json.dumps(value)
    schema = pa.schema(fields, metadata=meta)
    n = {len(a) for a in arrays}
    if len(n) > 1:
        raise SchemaError(f"columns have different lengths: {sorted(n)}")
    return pa.Table.from_arrays(arrays, schema=schema)


def _pixel_json(pixel_size_nm):
    if pixel_size_nm is None:
        return None
    if np.ndim(pixel_size_nm) == 0:
        return float(pixel_size_nm)
    return [float(v) for v in pixel_size_nm]


def metadata(table: pa.Table) -> dict[str, Any]:
    """Decoded smlmspine table metadata (``schema_version``, ``source``, ``format``, ...).

    Parameters
    ----------
    table : pyarrow.Table
        Any table; keys without the ``smlmspine.`` prefix are ignored.

    Returns
    -------
    dict
        Key without the prefix -> decoded JSON value (the raw string when a value is
        not JSON; ``schema_version`` as a string).

    Examples
    --------
    >>> metadata(make_table({"x": [0.0], "y": [0.0]}, format="csv"))["format"]
    'csv'
    """
    raw = table.schema.metadata or {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode()
        if not key.startswith(META_PREFIX):
            continue
        key = key[len(META_PREFIX):]
        if key == "schema_version":
            out[key] = v.decode()
            continue
        try:
            out[key] = json.loads(v)
        except (json.JSONDecodeError, UnicodeDecodeError):
            out[key] = v.decode(errors="replace")
    return out


def history(table: pa.Table) -> list[dict]:
    """The processing history recorded in the table metadata (oldest first).

    Parameters
    ----------
    table : pyarrow.Table
        A table written or returned by smlmspine.

    Returns
    -------
    list of dict
        Steps ``{"step": str, "params": dict, "version": str}``; empty when the table
        has no (or no valid) history.

    Examples
    --------
    >>> history(make_table({"x": [0.0], "y": [0.0]}))
    []
    """
    h = metadata(table).get("history") or []
    return list(h) if isinstance(h, list) else []


def _with_meta(table: pa.Table, updates: Mapping[str, Any]) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    for key, value in updates.items():
        meta[(META_PREFIX + key).encode()] = json.dumps(value).encode()
    meta.setdefault((META_PREFIX + "schema_version").encode(), SCHEMA_VERSION.encode())
    return table.replace_schema_metadata(meta)


def with_history(table: pa.Table, step: str, params: Mapping[str, Any] | None = None,
                 **metadata_updates: Any) -> pa.Table:
    """Return a new table with one processing step appended to its history.

    Parameters
    ----------
    table : pyarrow.Table
        The table (not modified).
    step : str
        Name of the step, ``"<module>.<function>"`` by convention.
    params : mapping, optional
        Parameters of the step (made JSON-compatible with :func:`jsonable`).
    **metadata_updates
        Further table metadata to set (``smlmspine.<key>``, JSON-encoded).

    Returns
    -------
    pyarrow.Table
        The same columns with the step (and the package version) appended to
        ``smlmspine.history``.

    Examples
    --------
    >>> t = with_history(make_table({"x": [0.0], "y": [0.0]}), "drift.correct", {"method": "aim"})
    >>> history(t)[-1]["step"], history(t)[-1]["params"]["method"]
    ('drift.correct', 'aim')
    """
    from . import __version__

    entry = {"step": step, "params": _jsonable(dict(params or {})), "version": __version__}
    return _with_meta(table, {"history": history(table) + [entry], **metadata_updates})


def jsonable(obj):
    """A JSON-compatible copy of ``obj``: numpy scalars/arrays to Python, non-finite
    floats to ``None`` (JSON has no NaN), unknown objects to their ``str``.

    Parameters
    ----------
    obj : object
        Nested dicts, lists, tuples, numpy scalars and arrays, numbers, strings.

    Returns
    -------
    object
        The same structure of dict (str keys), list, str, int, float, bool and None.

    Examples
    --------
    >>> jsonable({"a": np.float64(1.5), "b": [np.nan, 2], "c": np.arange(2)})
    {'a': 1.5, 'b': [None, 2], 'c': [0, 1]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


_jsonable = jsonable


def with_columns(table: pa.Table, columns: Mapping[str, Any], *,
                 units: Mapping[str, str] | None = None) -> pa.Table:
    """Return a new table with columns added or replaced (metadata kept).

    Canonical names get their canonical type and unit; others need a unit in ``units``
    (or are stored without one).

    Parameters
    ----------
    table : pyarrow.Table
        The table (not modified).
    columns : mapping of str to array-like
        Column name -> ``N`` values (``N`` = the table's rows); an existing column of
        that name is replaced in place, a new one appended.
    units : mapping of str to str, optional
        Units of non-canonical columns.

    Returns
    -------
    pyarrow.Table
        The new table, with the schema metadata of ``table``.

    Raises
    ------
    SchemaError
        A column with a length other than the table's, or values that cannot be cast.

    Examples
    --------
    >>> t = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0]})
    >>> with_columns(t, {"cluster_id": [0, -1]}).column("cluster_id").to_pylist()
    [0, -1]
    """
    units = dict(units or {})
    out = table
    for name, values in columns.items():
        spec = COLUMNS.get(name)
        arr = _to_array(values, spec.type if spec else None, name)
        if len(arr) != table.num_rows:
            raise SchemaError(f"column {name!r} has {len(arr)} values, the table has {table.num_rows} rows")
        f = field(name, arr.type, unit=units.get(name))
        idx = out.schema.get_field_index(name)
        out = out.set_column(idx, f, arr) if idx >= 0 else out.append_column(f, arr)
    return out.replace_schema_metadata(table.schema.metadata)


def unit_of(table: pa.Table, name: str) -> str | None:
    """Unit of a column from its field metadata.

    Parameters
    ----------
    table : pyarrow.Table
        The table.
    name : str
        Column name (a ``KeyError`` when absent).

    Returns
    -------
    str or None
        The ``unit`` of the field metadata, ``None`` if it has none.

    Examples
    --------
    >>> unit_of(make_table({"x": [0.0], "y": [0.0], "time_s": [1.0]}), "time_s")
    's'
    """
    meta = table.schema.field(name).metadata or {}
    unit = meta.get(b"unit")
    return None if unit is None else unit.decode()


def ndim(table: pa.Table) -> int:
    """Spatial dimension of a localization table.

    Parameters
    ----------
    table : pyarrow.Table
        A localization table.

    Returns
    -------
    int
        3 when the table has a ``z`` column, else 2.

    Examples
    --------
    >>> ndim(make_table({"x": [0.0], "y": [0.0]}))
    2
    """
    return 3 if "z" in table.column_names else 2


def coordinates(table: pa.Table, *, dims: int | None = None) -> np.ndarray:
    """Coordinates as an ``(N, 2)`` or ``(N, 3)`` float64 array in nm.

    Parameters
    ----------
    table : pyarrow.Table
        A localization table with ``x``, ``y`` (and ``z``) in nm.
    dims : {2, 3}, optional
        Ask for 2D or 3D; default: 3 when the table has ``z``.

    Returns
    -------
    (N, dims) ndarray of float64
        ``x``, ``y`` (, ``z``) in nm.

    Raises
    ------
    SchemaError
        ``dims`` is not 2 or 3, or 3D is asked of a table without ``z``.

    Examples
    --------
    >>> coordinates(make_table({"x": [1.0, 2.0], "y": [3.0, 4.0]})).tolist()
    [[1.0, 3.0], [2.0, 4.0]]
    """
    d = ndim(table) if dims is None else dims
    if d not in (2, 3):
        raise SchemaError(f"dims must be 2 or 3, got {d}")
    if d == 3 and "z" not in table.column_names:
        raise SchemaError("3D coordinates requested but the table has no 'z' column (2D data)")
    cols = [table.column(c).to_numpy() for c in COORDINATES[:d]]
    return np.column_stack(cols).astype(np.float64, copy=False) if cols[0].size else np.empty((0, d))


def first_negative_frame(table: pa.Table) -> tuple[int, int, int] | None:
    """``(row, value, count)`` of the first negative ``frame`` (rows count from 0), or
    ``None`` when the table has no ``frame`` column or no negative frame.

    Frames count from 0 (rapidSTORM, Picasso, SMAP) or 1 (ThunderSTORM, ZEN): a negative
    frame is a damaged or foreign column.

    Parameters
    ----------
    table : pyarrow.Table
        A localization table.

    Returns
    -------
    tuple of (int, int, int) or None
        Row of the first negative frame, its value, and the number of negative rows.

    Examples
    --------
    >>> first_negative_frame(make_table({"x": [0.0] * 3, "y": [0.0] * 3, "frame": [4, -3, -1]}))
    (1, -3, 2)
    >>> first_negative_frame(make_table({"x": [0.0], "y": [0.0], "frame": [0]})) is None
    True
    """
    if "frame" not in table.column_names or table.num_rows == 0:
        return None
    col = table.column("frame")
    if not pa.types.is_integer(col.type) and not pa.types.is_floating(col.type):
        return None
    low = pc.min(col).as_py()
    if low is None or low >= 0:
        return None
    values = np.asarray(col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array)
                        else col.to_numpy())
    with np.errstate(invalid="ignore"):
        neg = values < 0
    row = int(np.flatnonzero(neg)[0])
    return row, int(values[row]), int(np.count_nonzero(neg))


def negative_frame_message(found: tuple[int, int, int]) -> str:
    """The one-line reason for a negative frame found by :func:`first_negative_frame`.

    Parameters
    ----------
    found : tuple of (int, int, int)
        ``(row, value, count)`` as returned by :func:`first_negative_frame`.

    Returns
    -------
    str

    Examples
    --------
    >>> negative_frame_message((17, -3, 2))
    'frame must be >= 0 (frames count from 0 or 1); found -3 at row 17 (rows count from 0; 2 negative rows)'
    """
    row, value, count = found
    rows = "1 negative row" if count == 1 else f"{count} negative rows"
    return (f"frame must be >= 0 (frames count from 0 or 1); found {value} at row {row} "
            f"(rows count from 0; {rows})")


def validate(table: pa.Table, *, require_finite: bool = True) -> pa.Table:
    """Check that a table follows the canonical schema; return it unchanged.

    Parameters
    ----------
    table : pyarrow.Table
        The table to check.
    require_finite : bool
        Also refuse NaN, infinite or missing ``x``/``y``/``z`` values.

    Returns
    -------
    pyarrow.Table
        ``table`` itself.

    Raises
    ------
    SchemaError
        Naming the offending column and the problem: missing ``x``/``y``, a canonical
        column with the wrong type or unit, non-finite coordinates, or unreadable
        metadata.

    Examples
    --------
    >>> validate(make_table({"x": [0.0, float("nan")], "y": [0.0, 1.0]}))
    Traceback (most recent call last):
    ...
    smlmspine.errors.SchemaError: column 'x' holds 1 non-finite or missing coordinate(s)
    """
    if not isinstance(table, pa.Table):
        raise SchemaError(f"expected a pyarrow.Table, got {type(table).__name__}")
    names = table.column_names
    for required in ("x", "y"):
        if required not in names:
            raise SchemaError(f"column {required!r} is missing; found {names}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise SchemaError(f"duplicate column names {dup}")
    for name in names:
        spec = COLUMNS.get(name)
        if spec is None:
            continue
        f = table.schema.field(name)
        if not f.type.equals(spec.type):
            raise SchemaError(f"column {name!r} must be {spec.type}, found {f.type}")
        unit = unit_of(table, name)
        if unit != spec.unit:
            raise SchemaError(f"column {name!r} must have unit {spec.unit!r}, found {unit!r}")
    if require_finite:
        for name in COORDINATES:
            if name in names and table.num_rows:
                col = table.column(name)
                bad = pc.sum(pc.invert(pc.is_finite(col))).as_py() or 0
                if col.null_count or bad:
                    raise SchemaError(f"column {name!r} holds {bad + col.null_count} "
                                      "non-finite or missing coordinate(s)")
    meta = table.schema.metadata or {}
    hist = meta.get((META_PREFIX + "history").encode())
    if hist is not None:
        try:
            if not isinstance(json.loads(hist), list):
                raise ValueError
        except ValueError as exc:
            raise SchemaError("table metadata 'smlmspine.history' is not a JSON list") from exc
    return table
