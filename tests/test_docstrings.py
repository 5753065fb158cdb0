"""Every public function, class and method has a complete numpydoc docstring.

"Public" means exported through the ``__all__`` of a public module (a module path with no
``_``-prefixed part), plus the public methods defined on those classes. Each must have:

- a docstring;
- a ``Parameters`` section naming every parameter of its signature (``self``/``cls``
  excepted; ``*args``/``**kwargs`` by their names), and no parameter the signature does
  not have (unless it takes ``**kwargs``, whose keys may be listed); classes may list
  their constructor arguments under ``Parameters`` or ``Attributes``;
- a ``Returns`` section when it returns a value (a ``return <value>`` in its body or a
  non-``None`` return annotation), a ``Yields`` section when it yields.

The problems are reported per source file (one test per file), so that the output
lists what is still to be written and where.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest

import smlmspine

ROOT = Path(smlmspine.__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# numpydoc parsing (only what the checks need: section names and parameter names)

_HEADER = re.compile(r"^([A-Z][A-Za-z ]+)\n(-{3,})$", re.MULTILINE)


def sections(doc: str) -> dict[str, str]:
    """``{"Parameters": body, ...}`` of a cleaned docstring (``inspect.cleandoc``)."""
    found = list(_HEADER.finditer(doc))
    out = {}
    for i, m in enumerate(found):
        if len(m.group(2)) < len(m.group(1)) - 1:
            continue
        end = found[i + 1].start() if i + 1 < len(found) else len(doc)
        out[m.group(1).strip()] = doc[m.end():end]
    return out


def documented_names(body: str) -> set[str]:
    """Names of the entries of a Parameters/Attributes section (``a, b : float`` -> a, b)."""
    names = set()
    for line in body.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        head = line.split(" : ", 1)[0].rstrip(":").strip()
        for name in head.split(","):
            name = name.strip().lstrip("*")
            if name:
                names.add(name)
    return names


# ---------------------------------------------------------------------------------------
# what a callable takes and gives

def _function_node(func) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    return None


def _own_nodes(node):
    """The nodes of a function body, not descending into nested functions/classes."""
    stack = list(node.body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield n
        stack.extend(ast.iter_child_nodes(n))


def gives(func) -> str | None:
    """``"Yields"``, ``"Returns"`` or None (returns nothing) for a function."""
    node = _function_node(inspect.unwrap(func))
    if node is not None:
        own = list(_own_nodes(node))
        if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in own):
            return "Yields"
        if any(isinstance(n, ast.Return) and n.value is not None
               and not (isinstance(n.value, ast.Constant) and n.value.value is None)
               for n in own):
            return "Returns"
        if node.returns is None:
            return None
        annotation = ast.unparse(node.returns)
    else:
        annotation = inspect.signature(func).return_annotation
        if annotation is inspect.Signature.empty:
            return None
    return None if str(annotation) in ("None", "NoReturn", "typing.NoReturn") else "Returns"


def parameters(func, *, skip_first: bool = False) -> list[inspect.Parameter]:
    params = list(inspect.signature(func).parameters.values())
    if skip_first and params:
        params = params[1:]
    return params


def _check_parameters(doc_sections, params, *, allowed=("Parameters",)) -> list[str]:
    problems = []
    if not params:
        return problems
    present = [s for s in allowed if s in doc_sections]
    if not present:
        return [f"no {' or '.join(allowed)} section ({', '.join(p.name for p in params)})"]
    names = set().union(*(documented_names(doc_sections[s]) for s in present))
    missing = [p.name for p in params if p.name not in names]
    if missing:
        problems.append(f"parameters not documented: {', '.join(missing)}")
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        extra = sorted(names - {p.name for p in params})
        if extra and "Parameters" in present:
            stale = extra if allowed == ("Parameters",) else sorted(
                documented_names(doc_sections["Parameters"]) - {p.name for p in params})
            if stale:
                problems.append(f"documented parameters not in the signature: {', '.join(stale)}")
    return problems


def check_function(func, *, method: bool = False) -> list[str]:
    """Problems of one function's docstring (empty when complete)."""
    doc = inspect.getdoc(func)
    if not doc:
        return ["no docstring"]
    secs = sections(doc)
    problems = _check_parameters(secs, parameters(func, skip_first=method))
    what = gives(func)
    if what == "Returns" and "Returns" not in secs:
        problems.append("no Returns section")
    if what == "Yields" and "Yields" not in secs and "Returns" not in secs:
        problems.append("no Yields section")
    return problems


def _constructor_params(cls) -> list[inspect.Parameter] | None:
    """Constructor parameters when a smlmspine class defines the constructor, else None."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass) or "__new__" in vars(klass):
            if not (klass.__module__.startswith("smlmspine") or klass.__module__ == __name__):
                return None  # a constructor inherited from Python or another library
            try:
                return list(inspect.signature(cls).parameters.values())
            except (TypeError, ValueError):
                return None
    return None


def _public_methods(cls):
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            yield name, value.__func__, isinstance(value, classmethod)
        elif inspect.isfunction(value):
            yield name, value, True


def check_class(cls) -> dict[str, list[str]]:
    """``{qualified name: problems}`` for a class and its own public methods."""
    out = {}
    doc = inspect.getdoc(cls) if cls.__doc__ else None
    if dataclasses.is_dataclass(cls) and doc and doc.startswith(f"{cls.__name__}("):
        doc = None  # the signature dataclasses writes when there is no docstring
    if not doc:
        problems = ["no docstring"]
    else:
        params = _constructor_params(cls) or []
        problems = _check_parameters(sections(doc), params, allowed=("Parameters", "Attributes"))
    out[cls.__qualname__] = problems
    for name, func, bound in _public_methods(cls):
        out[f"{cls.__qualname__}.{name}"] = check_function(func, method=bound)
    return out


# ---------------------------------------------------------------------------------------
# the public surface

def public_modules() -> list[str]:
    names = ["smlmspine"]
    for info in pkgutil.walk_packages(smlmspine.__path__, "smlmspine."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


@functools.lru_cache(maxsize=None)
def public_objects() -> dict[str, list[tuple[str, object]]]:
    """``{source file: [(public name, object), ...]}`` of every exported function/class."""
    seen = {}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            obj = getattr(obj, "py_func", obj)  # numba dispatchers
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("smlmspine"):
                continue
            seen.setdefault(id(obj), (f"{module_name}.{attr}", obj))
    by_file: dict[str, list] = {}
    for name, obj in seen.values():
        path = Path(inspect.getsourcefile(inspect.unwrap(obj))).resolve().relative_to(ROOT).as_posix()
        by_file.setdefault(path, []).append((name, obj))
    return dict(sorted(by_file.items()))


def problems_of(objects) -> list[str]:
    lines = []
    for public_name, obj in sorted(objects, key=lambda item: item[0]):
        if inspect.isclass(obj):
            for qualname, problems in check_class(obj).items():
                lines += [f"{qualname}: {p}" for p in problems]
        else:
            lines += [f"{obj.__qualname__}: {p}" for p in check_function(obj)]
    return lines


def _files():
    return list(public_objects())


@pytest.mark.parametrize("path", _files())
def test_public_docstrings_complete(path):
    problems = problems_of(public_objects()[path])
    assert not problems, (f"{path}: {len(problems)} incomplete docstring(s):\n  "
                          + "\n  ".join(problems))


def test_public_surface_is_found():
    """The walk reaches every stage (a broken walk would make the test above vacuous)."""
    files = public_objects()
    for stage in ("io", "drift", "cluster", "envelope", "morphology", "coupling",
                  "simulate"):
        assert any(path.startswith(f"smlmspine/{stage}/") for path in files), stage
    assert "smlmspine/pipeline.py" in files
    assert sum(len(v) for v in files.values()) > 100


# ---------------------------------------------------------------------------------------
# the checker itself finds what it should

def _complete(points, *, radius_nm=1.0):
    """Count points.

    Parameters
    ----------
    points : (N, 3) ndarray
        Coordinates in nm.
    radius_nm : float
        Radius in nm.

    Returns
    -------
    int
    """
    return len(points)


def _no_sections(points, *, radius_nm=1.0):
    """Count points."""
    return len(points)


def _partial(points, *, radius_nm=1.0):
    """Count points.

    Parameters
    ----------
    points, other : ndarray
        Coordinates.
    """
    if radius_nm:
        return None
    return len(points)


def _generator(n):
    """Numbers.

    Parameters
    ----------
    n : int
        How many.
    """
    yield from range(n)


def _nothing(path):
    """Write nothing.

    Parameters
    ----------
    path : str
        Where.
    """
    def inner():
        return 1
    inner()
    return None


@dataclasses.dataclass(frozen=True)
class _Result:
    """A result.

    Attributes
    ----------
    volume_nm3 : float
        Volume in nm^3.
    """

    volume_nm3: float
    area_nm2: float

    def ratio(self, other):
        """Ratio of volumes."""
        return self.volume_nm3 / other.volume_nm3


@dataclasses.dataclass(frozen=True)
class _Bare:
    value: float


def test_checker_flags_what_is_missing():
    assert check_function(_complete) == []
    assert check_function(_no_sections) == ["no Parameters section (points, radius_nm)",
                                            "no Returns section"]
    assert check_function(_partial) == ["parameters not documented: radius_nm",
                                        "documented parameters not in the signature: other",
                                        "no Returns section"]
    assert check_function(_generator) == ["no Yields section"]
    assert check_function(_nothing) == []
    assert check_class(_Result) == {
        "_Result": ["parameters not documented: area_nm2"],
        "_Result.ratio": ["no Parameters section (other)", "no Returns section"]}
    assert check_class(_Bare) == {"_Bare": ["no docstring"]}


def test_sections_parser():
    doc = inspect.getdoc(_complete)
    secs = sections(doc)
    assert list(secs) == ["Parameters", "Returns"]
    assert documented_names(secs["Parameters"]) == {"points", "radius_nm"}
    assert documented_names("*args : int\n    x\n**kwargs\n    y\n") == {"args", "kwargs"}
