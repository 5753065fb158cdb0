"""Lazy public attributes for packages whose modules import heavy dependencies."""

from __future__ import annotations

import importlib
from typing import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, namespace: dict, targets: Mapping[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import ``".module:attribute"`` targets
    on first access and cache them in the package namespace.

    Examples
    --------
    >>> ns = {}
    >>> getattr_, dir_ = lazy_exports("smlmspine", ns, {"read": ".io:read"})
    >>> getattr_("read").__name__, "read" in ns
    ('read', True)
    """

    def __getattr__(name: str):
        target = targets.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = target.split(":")
        value = getattr(importlib.import_module(module, package), attr)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(targets))

    return __getattr__, __dir__
