"""smlmspine: from SMLM point clouds of neurons to trustworthy spine numbers and shapes.

Stages are plain-function modules that take a localization table (``pyarrow.Table``,
coordinates in nm) and return new tables or results::

    io -> drift/merge -> cluster -> envelope -> morphology -> voxel -> coupling
    pipeline (one file), batch (many files on Dask), report (HTML)
    simulate (ground truth)

Submodules are imported lazily so that ``import smlmspine`` stays fast.

Examples
--------
>>> import smlmspine
>>> smlmspine.schema.COLUMNS["x"].unit
'nm'
"""

from ._lazy import lazy_exports as _lazy_exports

__version__ = "0.1.0"

# Public submodules (the stages and their helpers).
_SUBMODULES = ("schema", "errors", "io", "simulate", "minflux", "filtering", "drift", "merge",
               "cluster", "envelope", "morphology", "voxel", "coupling", "pipeline",
               "report", "cli", "testing")

# Public names -> ".module:attribute" (or ".module"), imported on first access.
_LAZY = {
    **{name: f".{name}" for name in _SUBMODULES},
    # functions
    "read": ".io:read",
    "write": ".io:write",
    "validate": ".schema:validate",
    # many files on Dask (a function: its module is the private smlmspine._batch)
    "batch": "._batch:batch",
    "BatchResult": "._batch:BatchResult",
    # errors
    "SmlmSpineError": ".errors:SmlmSpineError",
    "FormatError": ".errors:FormatError",
    "SchemaError": ".errors:SchemaError",
    "ParameterError": ".errors:ParameterError",
}

__all__ = ["__version__", *sorted(_LAZY)]

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY, extra=("__version__",))
