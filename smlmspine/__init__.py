"""smlmspine: from SMLM point clouds of neurons to trustworthy spine numbers and shapes.

Stages are plain-function modules that take a localization table (``pyarrow.Table``,
coordinates in nm) and return new tables or results::

    io -> drift/merge -> cluster -> envelope -> morphology -> coupling
    simulate (ground truth)

Submodules are imported lazily so that ``import smlmspine`` stays fast.

Examples
--------
>>> import smlmspine
>>> smlmspine.schema.COLUMNS["x"].unit
'nm'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .errors import FormatError, ParameterError, SchemaError, SmlmSpineError  # noqa: E402

# Public submodules, loaded on first attribute access.
_SUBMODULES = (
    "schema", "errors", "io", "simulate", "minflux", "filtering", "drift", "merge", "cluster",
    "envelope", "morphology", "coupling", "pipeline", "cli", "testing",
)
# Public functions re-exported from submodules: name -> "module:attribute".
_LAZY_FUNCTIONS = {
    "read": "io:read",
    "write": "io:write",
    "validate": "schema:validate",
}

__all__ = ["__version__", "SmlmSpineError", "FormatError", "SchemaError", "ParameterError",
           *_LAZY_FUNCTIONS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _LAZY_FUNCTIONS:
        module, attr = _LAZY_FUNCTIONS[name].split(":")
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'smlmspine' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
