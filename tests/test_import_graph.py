"""The package's import graph has no circles.

Every ``import`` / ``from ... import`` statement in every module of ``smlmspine`` is read
with :mod:`ast`: those at module level and those inside functions and methods alike
(a deferred import still makes a circle, it only hides it until run time). Relative
imports are resolved against the importing module. ``from pkg import name`` points at
``pkg.name`` when that is a submodule, and at the module behind ``name`` when ``pkg``
exports it lazily (a ``"name": ".module:attribute"`` entry in the package's
``__init__``); otherwise at ``pkg`` itself. Imports under ``if TYPE_CHECKING:`` never
run and are left out. Importing ``a.b.c`` runs ``a/b/__init__.py`` first, so it is
also an edge to ``a.b`` (unless the importer lives inside ``a.b``: that ``__init__`` is
already running).

Stages depend on each other one way only: a second test collapses the graph onto the
top-level subpackages (``smlmspine.envelope``, ``smlmspine.morphology``, ...) and fails
on a circle there as well (e.g. envelope uses morphology and morphology uses envelope,
even when no single chain of module imports closes).

A circle fails the test with every module on it and the import lines that close it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "smlmspine"
PACKAGE = "smlmspine"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _lazy_targets(tree: ast.Module, package: str) -> dict[str, str]:
    """``name -> module`` of a package ``__init__``'s lazy-export table (string values
    ``".module:attribute"`` or ``".module"`` in a module-level dict literal)."""
    out = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if not isinstance(value, ast.Dict):
            continue
        for k, v in zip(value.keys, value.values):
            if (isinstance(k, ast.Constant) and isinstance(k.value, str)
                    and isinstance(v, ast.Constant) and isinstance(v.value, str)
                    and v.value.startswith(".")):
                target = v.value.split(":")[0]
                level = len(target) - len(target.lstrip("."))
                out[k.value] = _resolve(package, True, level, target.lstrip(".") or None)
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute name of ``from <level dots><name> import`` inside ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _append(lst: list[str], item: str) -> None:
    if item not in lst:
        lst.append(item)


def build_graph() -> tuple[dict[str, dict[str, list[str]]], dict[str, Path]]:
    """``{module: {imported module: ["file:line", ...]}}`` restricted to the package."""
    modules = _modules()
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in modules.items()}
    lazy = {m: _lazy_targets(t, m) for m, t in trees.items() if modules[m].name == "__init__.py"}
    graph: dict[str, dict[str, list[str]]] = {m: {} for m in modules}

    def add(src: str, dst: str, node: ast.stmt) -> None:
        if dst not in modules:
            return
        where = f"{modules[src].relative_to(ROOT.parent)}:{node.lineno}"
        # Importing a.b.c first runs the __init__ of a.b (and a): an edge to each parent
        # package the importer is not itself inside (those are already initialising).
        parts = dst.split(".")
        for i in range(2, len(parts)):
            parent = ".".join(parts[:i])
            if not (src == parent or src.startswith(parent + ".")):
                _append(graph[src].setdefault(parent, []), where + " (package __init__)")
        if dst != src:
            _append(graph[src].setdefault(dst, []), where)

    for mod, tree in trees.items():
        is_pkg = modules[mod].name == "__init__.py"
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        add(mod, alias.name, node)
                continue
            target = _resolve(mod, is_pkg, node.level, node.module)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    add(mod, sub, node)
                elif alias.name in lazy.get(target, {}):
                    add(mod, lazy[target][alias.name], node)
                else:
                    add(mod, target, node)
    return graph, modules


def strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v: str) -> None:
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(component: list[str], graph) -> str:
    members = set(component)
    lines = [f"circle of {len(component)} modules: {', '.join(component)}"]
    for src in component:
        for dst, where in sorted(graph[src].items()):
            if dst in members:
                lines.append(f"    {src} -> {dst}   ({', '.join(where)})")
    return "\n".join(lines)


def test_graph_sees_relative_function_level_and_lazy_imports():
    graph, modules = build_graph()
    assert len(modules) > 50
    # Module-level relative import (from ..schema import ...).
    assert "smlmspine.schema" in graph["smlmspine.simulate._dendrite"]
    # An import inside a function body (simulate.synapses imports coupling._region there).
    assert "smlmspine.coupling._region" in graph["smlmspine.simulate.synapses"]
    # The resolver itself on the forms the package uses.
    assert _resolve("smlmspine.cli._io", False, 2, "io") == "smlmspine.io"
    assert _resolve("smlmspine.io", True, 1, "_registry") == "smlmspine.io._registry"
    assert _resolve("smlmspine.io", True, 2, None) == "smlmspine"


def test_cycle_finder_finds_a_planted_circle():
    g = {"a": {"b": ["a:1"]}, "b": {"c": ["b:1"]}, "c": {"a": ["c:1"]}, "d": {"a": ["d:1"]}}
    assert strongly_connected(g) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b": []}, "b": {}}) == []


def test_no_import_circles():
    graph, _ = build_graph()
    circles = strongly_connected(graph)
    if circles:
        pytest.fail("import circles in smlmspine:\n" + "\n".join(_describe(c, graph)
                                                                  for c in circles))


def _package_graph(graph):
    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    out: dict[str, dict[str, list[str]]] = {}
    for src, dsts in graph.items():
        out.setdefault(top(src), {})
        for dst, where in dsts.items():
            if top(dst) != top(src) and top(dst) != PACKAGE:
                out[top(src)].setdefault(top(dst), []).extend(
                    f"{src} -> {dst} ({w})" for w in where)
    for dsts in list(out.values()):
        for d in dsts:
            out.setdefault(d, {})
    return out


def test_no_circles_between_subpackages():
    graph, _ = build_graph()
    pkg = _package_graph(graph)
    circles = strongly_connected(pkg)
    if circles:
        lines = []
        for comp in circles:
            lines.append(f"circle between {', '.join(comp)}:")
            for src in comp:
                for dst, where in sorted(pkg[src].items()):
                    if dst in comp:
                        lines += [f"    {w}" for w in where]
        pytest.fail("stages import each other both ways:\n" + "\n".join(lines))
