"""The one lazy-export mechanism of every package ``__init__`` in smlmspine.

A package ``__init__`` holds its docstring, a ``_LAZY`` table ``{public name:
".module:attribute"}`` (or ``".module"`` for a submodule itself), ``__all__`` and::

    __getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)

Nothing is imported until a name is first used (``import smlmspine`` stays cheap and no
package ``__init__`` can close an import circle); the value is then cached in the
package namespace. ``dir(package)`` lists the public names and the module dunders only.
``tests/test_exports.py`` checks every package against this shape. (No ``typing``
import: it would double the cost of ``import smlmspine``.)
"""

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, namespace: dict, targets: "Mapping[str, str]", *,
                 extra: tuple[str, ...] = ()
                 ) -> "tuple[Callable[[str], object], Callable[[], list[str]]]":
    """Module ``__getattr__`` and ``__dir__`` for a package's lazy public names.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (relative targets resolve against it).
    namespace : dict
        The package's ``globals()``; resolved values are cached there.
    targets : mapping of str to str
        Public name -> ``".module:attribute"``, or ``".module"`` for the module itself.
    extra : tuple of str
        Public names defined in the ``__init__`` itself (e.g. ``__version__``), listed
        by ``__dir__``.

    Returns
    -------
    (__getattr__, __dir__)
        Functions to assign to the package's ``__getattr__`` and ``__dir__``.

    Examples
    --------
    >>> ns = {}
    >>> getattr_, dir_ = lazy_exports("smlmspine", ns, {"read": ".io:read", "io": ".io"})
    >>> getattr_("read").__name__, "read" in ns, getattr_("io").__name__
    ('read', True, 'smlmspine.io')
    >>> dir_()
    ['io', 'read']
    """

    def __getattr__(name: str):
        target = targets.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        value = importlib.import_module(module, package)
        if attr:
            value = getattr(value, attr)
        namespace[name] = value
        return value

    def __dir__():
        dunders = {n for n in namespace if n.startswith("__") and n.endswith("__")}
        return sorted(dunders | set(targets) | set(extra))

    return __getattr__, __dir__
