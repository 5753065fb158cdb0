"""Readers and writers: every format into (and out of) the canonical localization table.

One module per format family registers itself in :mod:`smlmspine.io._registry`;
:func:`read` detects the format from the file content and :func:`write` picks the
writer from the extension. Use ``smlmspine formats`` to list them.
"""

from __future__ import annotations

from ._registry import (Reader, Writer, atomic_output, detect_format, read, readers,
                        register_reader, register_writer, write, writers)

__all__ = ["read", "write", "detect_format", "readers", "writers", "Reader", "Writer",
           "register_reader", "register_writer", "atomic_output"]
