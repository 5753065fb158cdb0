"""Picasso HDF5 localization files (``.hdf5`` + ``.yaml`` sidecar): reader and writer.

Layout (Picasso, Schnitzbauer et al. 2017, "filetypes" in its documentation):

* ``<stem>.hdf5`` holds one compound dataset ``locs``, one record per localization:
  ``frame`` (uint32), ``x``, ``y`` (float32, **camera pixels**), ``photons``, ``sx``, ``sy``
  (PSF width, px), ``bg`` (photons per pixel), ``lpx``, ``lpy`` (precision, px),
  ``ellipticity``, ``net_gradient``, for 3D ``z`` (**nm**) and ``d_zcalib``, after picking
  ``group``, after linking ``len``, ``n``, ... Any other field is allowed.
* ``<stem>.yaml`` is a multi-document YAML file, one document per processing step; the
  localization step stores the pixel size in nm under ``Pixelsize`` (some tools write
  ``pixelsize``).

Reading converts ``x``, ``y``, ``sx``, ``sy``, ``lpx``, ``lpy`` to nm with the pixel size
from the YAML (the last document that has one), else the ``pixel_size_nm`` argument,
else it refuses. ``z`` is already in nm. ``precision_xy`` is the mean of ``lpx`` and
``lpy`` (nm); ``sx``/``sy``/``lpx``/``lpy`` are kept as columns in nm. Every other field
is kept under its (sanitized) name.

Writing produces a file Picasso opens: ``locs`` with the canonical columns renamed back
(``background`` -> ``bg``, ``x``/``y``/``sx``/``sy``/``lpx``/``lpy`` back to px, ``frame``
as uint32), every other column as a field of its own, and the YAML sidecar with
``Pixelsize`` (and, under a ``smlmspine`` key, the units/original names/history needed to
read the file back unchanged). Floating-point fields are stored as float32 (Picasso's
type) when that loses nothing beyond float64 rounding, else as float64. ``lpx``/``lpy``
derived from ``precision_xy`` are marked so in the sidecar and not returned on read.

The sidecar is read with a safe YAML loader that refuses alias expansion beyond
:data:`MAX_YAML_NODES` nodes ("billion laughs") and recursive aliases.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError
from ..schema import COLUMNS, make_table, metadata
from ._hdf5 import check_dataset_size, hdf5_keys, is_hdf5, open_hdf5
from ._registry import register_reader, register_writer, temporary_beside

__all__ = ["read_picasso", "write_picasso", "sidecar_path", "read_sidecar", "PIXEL_FIELDS"]

#: Picasso fields stored in camera pixels (converted to nm on read, back on write).
PIXEL_FIELDS = ("x", "y", "sx", "sy", "lpx", "lpy")
#: Picasso field -> canonical column (besides x/y/z, which keep their names).
_TO_CANONICAL = {"frame": "frame", "photons": "photons", "bg": "background", "z": "z"}
_FROM_CANONICAL = {v: k for k, v in _TO_CANONICAL.items()}
_PIXEL_KEYS = ("pixelsize", "pixel_size", "pixel size")


def sidecar_path(path: str | Path) -> Path:
    """The YAML sidecar of a Picasso file: same folder and stem, extension ``.yaml``.

    Parameters
    ----------
    path : str or pathlib.Path
        The Picasso HDF5 file (``*_locs.hdf5``).

    Returns
    -------
    pathlib.Path
        The sidecar's path (whether or not it exists).

    Examples
    --------
    >>> sidecar_path("data/run1_locs.hdf5").as_posix()
    'data/run1_locs.yaml'
    """
    return Path(path).with_suffix(".yaml")


#: Most YAML nodes a sidecar may expand to (aliases counted at their full size): Picasso
#: sidecars hold tens of nodes; a "billion laughs" file of a few hundred bytes expands to
#: hundreds of millions.
MAX_YAML_NODES = 100_000
#: Largest sidecar read (bytes).
MAX_YAML_BYTES = 16 << 20


class _YamlBudgetError(Exception):
    """The sidecar's aliases expand beyond :data:`MAX_YAML_NODES`, or an alias is recursive."""


def _yaml_loader():
    import yaml
    from yaml.events import AliasEvent

    class _Loader(yaml.SafeLoader):
        """Safe loader that reads Picasso's ``!!python/...`` tags as plain data and refuses
        alias expansion beyond :data:`MAX_YAML_NODES` nodes (and recursive aliases)."""

        def compose_document(self):
            self._sizes = {}
            try:
                return super().compose_document()
            finally:
                self._sizes = {}

        def compose_node(self, parent, index):
            if self.check_event(AliasEvent):
                anchor = self.peek_event().anchor
                target = self.anchors.get(anchor)
                if target is not None and id(target) not in self._sizes:
                    raise _YamlBudgetError(f"alias *{anchor} refers to a node that contains it "
                                           "(recursive alias)")
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                if isinstance(node, yaml.SequenceNode):
                    size = 1 + sum(self._sizes.get(id(c), 1) for c in node.value)
                elif isinstance(node, yaml.MappingNode):
                    size = 1 + sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1)
                                   for k, v in node.value)
                else:
                    size = 1
                self._sizes[id(node)] = size
            if size > MAX_YAML_NODES:
                raise _YamlBudgetError(f"its aliases expand to more than {MAX_YAML_NODES:,} "
                                       "nodes (a 'billion laughs' file?)")
            return node

    def _python_tag(loader, suffix, node):
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        return loader.construct_scalar(node)

    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", _python_tag)
    _Loader.add_multi_constructor("!", _python_tag)
    return _Loader


def read_sidecar(path: str | Path) -> list[dict] | None:
    """The documents of a Picasso YAML sidecar (``None`` when there is none).

    The YAML is parsed with a safe loader (Picasso's Python tags are read as plain
    data, nothing is executed).

    Parameters
    ----------
    path : str or pathlib.Path
        The Picasso HDF5 file; its sidecar is :func:`sidecar_path` of it.

    Returns
    -------
    list of dict or None
        One dict per YAML document (a non-mapping document as ``{"value": ...}``), in
        file order; ``None`` when the sidecar does not exist.

    Raises
    ------
    FormatError
        When the sidecar exists but is not valid YAML, is larger than
        :data:`MAX_YAML_BYTES`, or its aliases expand beyond :data:`MAX_YAML_NODES` nodes.
    """
    import yaml

    yml = sidecar_path(path)
    if not yml.is_file():
        return None
    size = yml.stat().st_size
    if size > MAX_YAML_BYTES:
        raise FormatError(f"Picasso YAML sidecar has {size:,} bytes; refusing more than "
                          f"{MAX_YAML_BYTES:,} (Picasso writes a few kB)", path=yml)
    try:
        with open(yml, encoding="utf-8") as fh:
            docs = list(yaml.load_all(fh, Loader=_yaml_loader()))
    except _YamlBudgetError as exc:
        raise FormatError(f"Picasso YAML sidecar refused: {exc}", path=yml) from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise FormatError(f"Picasso YAML sidecar is not readable YAML: {exc}", path=yml) from exc
    return [d if isinstance(d, dict) else {"value": d} for d in docs if d is not None]


def _pixel_from_info(info: list[dict], yml: Path) -> float | None:
    found = None
    for doc in info:
        for key, value in doc.items():
            if str(key).strip().lower() in _PIXEL_KEYS:
                try:
                    px = float(value)
                except (TypeError, ValueError):
                    raise FormatError(f"{key!r} is {value!r}, expected a number (nm)",
                                      path=yml) from None
                if not (math.isfinite(px) and px > 0):
                    raise FormatError(f"{key!r} is {value!r}, expected a positive pixel size in nm",
                                      path=yml)
                found = px
    return found


def _sniff(path: Path, head: bytes) -> bool:
    return is_hdf5(head) and "locs" in hdf5_keys(path)


@register_reader("picasso", extensions=(".hdf5", ".h5"), sniff=_sniff,
                 description="Picasso HDF5 'locs' table (px) + YAML sidecar (Pixelsize)",
                 priority=20)
def read_picasso(path: str | Path, *, pixel_size_nm: float | None = None) -> pa.Table:
    """Read a Picasso HDF5 localization file into the canonical table (nm).

    Parameters
    ----------
    path : str or Path
        The ``.hdf5`` file; its sidecar ``<stem>.yaml`` is read when present.
    pixel_size_nm : float, optional
        Camera pixel size in nm, used only when the sidecar has no ``Pixelsize``.
        If the sidecar has one and this differs, :class:`FormatError` is raised.

    Returns
    -------
    pyarrow.Table
        Canonical table; ``x``, ``y``, ``sx``, ``sy``, ``lpx``, ``lpy`` in nm.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, h5py
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> locs = np.rec.fromarrays([np.array([0, 1], "u4"), np.array([1.5, 2.0], "f4"),
    ...                           np.array([3.0, 4.0], "f4")], names="frame,x,y")
    >>> with h5py.File(d / "a.hdf5", "w") as f:
    ...     _ = f.create_dataset("locs", data=locs)
    >>> _ = (d / "a.yaml").write_text("Pixelsize: 100\\n")
    >>> read_picasso(d / "a.hdf5").column("x").to_pylist()
    [150.0, 200.0]
    """
    path = Path(path)
    with open_hdf5(path, "a Picasso file with a 'locs' dataset") as fh:
        if "locs" not in fh:
            raise FormatError(f"no 'locs' dataset (Picasso layout); found {sorted(fh.keys())}",
                              path=path)
        ds = fh["locs"]
        if not hasattr(ds, "dtype") or ds.dtype.names is None:
            raise FormatError("'locs' is not a compound (table) dataset", path=path)
        check_dataset_size(ds, path, "locs")
        try:
            locs = ds[...]
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"'locs' cannot be read (truncated or damaged file?): {exc}",
                              path=path) from exc
    names = list(locs.dtype.names)
    for required in ("x", "y"):
        if required not in names:
            raise FormatError(f"'locs' has no {required!r} field; found {names}", path=path,
                              column=required)
    info = read_sidecar(path)
    yml = sidecar_path(path)
    px_yaml = _pixel_from_info(info, yml) if info else None
    if px_yaml is not None and pixel_size_nm is not None and \
            not math.isclose(px_yaml, float(pixel_size_nm), rel_tol=1e-9):
        raise FormatError(f"the sidecar says Pixelsize {px_yaml:g} nm but pixel_size_nm="
                          f"{pixel_size_nm:g} was given; drop the argument or fix the sidecar",
                          path=path)
    px = px_yaml if px_yaml is not None else pixel_size_nm
    if px is None:
        where = "has no 'Pixelsize'" if info is not None else "does not exist"
        raise FormatError(f"x/y are in camera pixels but the pixel size is unknown: the sidecar "
                          f"{yml.name} {where}; pass pixel_size_nm= (CLI: --pixel-size-nm)",
                          path=path)
    px = float(px)
    if not (math.isfinite(px) and px > 0):
        raise FormatError(f"pixel_size_nm must be a positive number, got {pixel_size_nm!r}",
                          path=path)

    saved = _smlmspine_block(info)
    saved_cols = saved.get("columns", {}) if isinstance(saved.get("columns"), dict) else {}
    columns, units, originals = {}, {}, {}
    for name in names:
        values = np.asarray(locs[name])
        if values.ndim != 1:
            raise FormatError(f"field {name!r} has shape {values.shape[1:]} per localization; "
                              "only scalar fields are supported", path=path, column=name)
        if name in PIXEL_FIELDS:
            with np.errstate(over="ignore", invalid="ignore"):  # inf is caught by validation
                values = values.astype(np.float64) * px
        spec = saved_cols.get(name) if isinstance(saved_cols.get(name), dict) else {}
        target = _TO_CANONICAL.get(name, name)
        if target in COLUMNS:  # x, y, z, frame, photons, bg; precision_xy etc. written by us
            columns[target] = values
            originals[target] = spec.get("original_name", name)
        else:
            columns[name] = values
            unit = "nm" if name in PIXEL_FIELDS else spec.get("unit")
            if unit:
                units[name] = unit
            originals[name] = spec.get("original_name", name)
    if "precision_xy" not in columns and "lpx" in columns and "lpy" in columns:
        columns["precision_xy"] = (columns["lpx"] + columns["lpy"]) / 2.0
        spec = saved_cols.get("precision_xy")
        if isinstance(spec, dict) and spec.get("original_name"):
            originals["precision_xy"] = spec["original_name"]
        # lpx/lpy that smlmspine derived from precision_xy for Picasso are not source columns
        for name in ("lpx", "lpy"):
            spec = saved_cols.get(name)
            if isinstance(spec, dict) and spec.get("derived_from") == "precision_xy":
                del columns[name]
                units.pop(name, None)
                originals.pop(name, None)
    for name in PIXEL_FIELDS:
        spec = saved_cols.get(name)
        if name in columns and name not in COLUMNS and isinstance(spec, dict) \
                and spec.get("type") == "float":
            columns[name] = columns[name].astype(np.float32)  # the writer's input type
    hist = saved.get("history") if isinstance(saved.get("history"), list) else None
    table = make_table(columns, units=units, original_names=originals, source=str(path),
                       format="picasso", pixel_size_nm=px, history=hist,
                       extra_metadata={"picasso_info": _strip_own(info)} if info else None)
    return _restore_field_metadata(table, saved_cols)


def _smlmspine_block(info: list[dict] | None) -> dict:
    for doc in reversed(info or []):
        block = doc.get("smlmspine")
        if isinstance(block, dict):
            return block
    return {}


def _strip_own(info: list[dict]) -> list[dict]:
    """Sidecar documents without the ones smlmspine wrote (they are rebuilt on write)."""
    return [_jsonable(d) for d in info if "smlmspine" not in d]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _restore_field_metadata(table: pa.Table, saved_cols: dict) -> pa.Table:
    """Put back descriptions stored by the writer (units/original names are set by make_table)."""
    if not saved_cols:
        return table
    fields = []
    for f in table.schema:
        spec = saved_cols.get(f.name) if f.name not in COLUMNS else None
        if isinstance(spec, dict) and spec.get("description"):
            meta = dict(f.metadata or {})
            meta[b"description"] = str(spec["description"]).encode()
            f = f.with_metadata(meta)
        fields.append(f)
    return pa.Table.from_arrays(table.columns,
                                schema=pa.schema(fields, metadata=table.schema.metadata))


def _writer_pixel_size(table: pa.Table, pixel_size_nm, final_path: Path) -> float:
    if pixel_size_nm is not None:
        px, origin = pixel_size_nm, "pixel_size_nm="
    else:
        meta = metadata(table)
        px, origin = meta.get("pixel_size_nm"), "the table's pixel_size_nm metadata"
        if px is None:
            px, origin = meta.get("camera_pixel_size_nm"), "the table's camera_pixel_size_nm"
        if isinstance(px, list):
            vals = [float(v) for v in px]
            if len(set(vals)) != 1:
                raise FormatError(f"the table has different pixel sizes per axis ({vals} nm) but "
                                  "Picasso stores one; pass pixel_size_nm= (CLI: "
                                  "--out-pixel-size-nm)", path=final_path)
            px = vals[0]
    if px is None:
        raise FormatError("Picasso stores x/y in camera pixels but the table has no pixel size; "
                          "pass pixel_size_nm= (CLI: --out-pixel-size-nm N)", path=final_path)
    try:
        px = float(px)
    except (TypeError, ValueError):
        raise FormatError(f"pixel size from {origin} is {px!r}, expected a number in nm",
                          path=final_path) from None
    if not (math.isfinite(px) and px > 0):
        raise FormatError(f"pixel size from {origin} is {px!r}, expected a positive number (nm)",
                          path=final_path)
    return px


def _compact_float(values: np.ndarray) -> np.ndarray:
    """float32 when that loses nothing beyond float64 rounding, else float64."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = values.astype(np.float32)
    finite = np.isfinite(values)
    same_nonfinite = np.array_equal(np.isfinite(as32), finite) and \
        np.array_equal(np.isnan(as32), np.isnan(values))
    if same_nonfinite and np.allclose(as32[finite].astype(np.float64), values[finite],
                                      rtol=1e-12, atol=0.0):
        return as32
    return values


def _column_numpy(table: pa.Table, name: str, final_path: Path) -> np.ndarray:
    col = table.column(name)
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise FormatError(f"column {name!r} is {t}; Picasso HDF5 stores numbers only "
                          "(drop or convert the column first)", path=final_path, column=name)
    if col.null_count:
        if pa.types.is_floating(t):
            return np.asarray(col.to_numpy(zero_copy_only=False), dtype=t.to_pandas_dtype())
        raise FormatError(f"column {name!r} has {col.null_count} missing value(s); Picasso "
                          "HDF5 cannot store missing integers", path=final_path, column=name)
    return col.to_numpy()


@register_writer("picasso", extensions=(".hdf5", ".h5"),
                 description="Picasso HDF5 'locs' (px) + YAML sidecar with Pixelsize",
                 options=("pixel_size_nm",))
def write_picasso(table: pa.Table, path: Path, *, final_path: Path | None = None,
                  pixel_size_nm: float | None = None) -> list[tuple[Path, Path]]:
    """Write a table as a Picasso HDF5 file plus its YAML sidecar.

    Parameters
    ----------
    table : pyarrow.Table
        Canonical localization table (nm).
    path : Path
        Where to write the HDF5 data (the registry's temporary file).
    final_path : Path, optional
        The name the file will have; the sidecar ``<stem>.yaml`` is named after it.
    pixel_size_nm : float, optional
        Camera pixel size for the conversion back to px. Default: the table's
        ``pixel_size_nm`` metadata, else its ``camera_pixel_size_nm``; with neither, a
        :class:`FormatError` asks for one.

    Returns
    -------
    list of (Path, Path)
        ``[(temporary sidecar, final sidecar)]``: the YAML is written to a temporary
        file that the registry renames together with the HDF5 file (both or neither).
    """
    import h5py
    import yaml

    from .. import __version__

    final_path = Path(final_path if final_path is not None else path)
    for target in (final_path, sidecar_path(final_path)):
        if target.is_dir():  # checked first: the sidecar must not outlive a failed write
            raise FormatError(f"{target.name} is a directory; cannot write the Picasso file "
                              "and its sidecar there", path=final_path)
    px = _writer_pixel_size(table, pixel_size_nm, final_path)
    names = table.column_names
    arrays: dict[str, np.ndarray] = {}
    col_meta: dict[str, dict] = {}
    for name in names:
        values = _column_numpy(table, name, final_path)
        if name == "precision_xy":
            continue  # handled below
        out = _FROM_CANONICAL.get(name, name)
        clash = [n for n in names if n != name and _FROM_CANONICAL.get(n, n) == out]
        if clash:
            raise FormatError(f"columns {name!r} and {clash[0]!r} would both be Picasso field "
                              f"{out!r}; rename one first", path=final_path, column=name)
        if name in PIXEL_FIELDS:
            nm = np.asarray(values, dtype=np.float64)
            values = _compact_float(nm / px)
            with np.errstate(over="ignore", invalid="ignore"):
                lost = np.isfinite(nm) & ~np.isfinite(values.astype(np.float64) * px)
            if lost.any():
                raise FormatError(f"column {name!r} holds {int(lost.sum())} value(s) too large to "
                                  f"store in pixels of {px:g} nm and read back",
                                  path=final_path, column=name)
        elif name == "frame":
            if values.size and (values.min() < 0 or values.max() >= 2 ** 32):
                values = values.astype(np.int64)
            else:
                values = values.astype(np.uint32)
        arrays[out] = values
        m = {k.decode(): v.decode() for k, v in (table.schema.field(name).metadata or {}).items()}
        if name in COLUMNS:
            col_meta[out] = {"original_name": m.get("original_name", name)}
        else:
            col_meta[out] = {k: m[k] for k in ("unit", "original_name", "description") if k in m}
            if name in PIXEL_FIELDS:  # stored in px: the reader restores the Arrow type
                col_meta[out]["type"] = str(table.schema.field(name).type)
    if "precision_xy" in names:
        prec = np.asarray(_column_numpy(table, "precision_xy", final_path), dtype=np.float64)
        if "lpx" not in names and "lpy" not in names:
            arrays["lpx"] = arrays["lpy"] = _compact_float(prec / px)
            # derived for Picasso only: the reader drops them again (no YAML anchors)
            col_meta["lpx"] = {"unit": "nm", "derived_from": "precision_xy"}
            col_meta["lpy"] = {"unit": "nm", "derived_from": "precision_xy"}
            m = table.schema.field("precision_xy").metadata or {}
            col_meta["precision_xy"] = {"original_name": m.get(b"original_name",
                                                               b"precision_xy").decode()}
        else:
            derived = None
            if "lpx" in names and "lpy" in names:
                derived = (arrays["lpx"].astype(np.float64) * px +
                           arrays["lpy"].astype(np.float64) * px) / 2.0
            if derived is None or not np.array_equal(derived, prec, equal_nan=True):
                arrays["precision_xy"] = prec
    dtype = np.dtype([(k, v.dtype) for k, v in arrays.items()])
    locs = np.empty(table.num_rows, dtype=dtype)
    for k, v in arrays.items():
        locs[k] = v
    with h5py.File(path, "w") as fh:
        fh.create_dataset("locs", data=locs)

    meta = metadata(table)
    info = [d for d in (meta.get("picasso_info") or []) if isinstance(d, dict)]
    if not info:
        xs = arrays["x"].astype(np.float64)
        ys = arrays["y"].astype(np.float64)
        frames = arrays.get("frame")
        info = [{
            "Byte Order": "<", "Data Type": "uint16", "File": final_path.name,
            "Frames": int(frames.max()) + 1 if frames is not None and frames.size else 0,
            "Height": int(np.ceil(np.nanmax(ys))) + 1 if ys.size else 0,
            "Width": int(np.ceil(np.nanmax(xs))) + 1 if xs.size else 0,
        }]
    own = {
        "Generated by": f"smlmspine {__version__}",
        "Pixelsize": px,
        "smlmspine": {"columns": col_meta, "history": meta.get("history") or [],
                      "source": meta.get("source"), "format": meta.get("format")},
    }
    # The sidecar goes to a temporary file too; the registry renames both at the end
    # (commit_files), so a failed write leaves no new .yaml and an old one untouched.
    yml = sidecar_path(final_path)
    tmp_yaml = temporary_beside(yml)
    try:
        with open(tmp_yaml, "w", encoding="utf-8") as fh:
            yaml.safe_dump_all(info + [own], fh, default_flow_style=False, sort_keys=False)
    except BaseException:
        tmp_yaml.unlink(missing_ok=True)
        raise
    return [(tmp_yaml, yml)]
