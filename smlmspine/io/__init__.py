"""Readers and writers: every format into (and out of) the canonical localization table.

One module per format family registers itself in :mod:`smlmspine.io._registry`;
:func:`read` detects the format from the file content and :func:`write` picks the
writer from the extension. Use ``smlmspine formats`` to list them.
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "read": "._registry:read",
    "write": "._registry:write",
    "detect_format": "._registry:detect_format",
    "readers": "._registry:readers",
    "writers": "._registry:writers",
    "Reader": "._registry:Reader",
    "Writer": "._registry:Writer",
    "register_reader": "._registry:register_reader",
    "register_writer": "._registry:register_writer",
    "atomic_output": "._registry:atomic_output",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
