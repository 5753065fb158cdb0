"""The ``smlmspine`` command: a thin layer over the package functions.

Each command group lives in its own module ``smlmspine/cli/_<group>.py`` that defines
``register(subparsers)``; every subcommand sets ``func(args) -> int``. Errors of the
:class:`~smlmspine.errors.SmlmSpineError` family are printed as one line on stderr with
exit status 2, never as a traceback.
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "main": "._main:main",
    "build_parser": "._main:build_parser",
    "console_main": "._main:console_main",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
