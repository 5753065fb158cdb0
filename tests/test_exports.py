"""Every package ``__init__`` re-exports lazily through one mechanism, and nothing else.

- Shape (read with :mod:`ast`): docstring, ``from .._lazy import lazy_exports as
  _lazy_exports``, a ``_LAZY`` table, ``__all__``, ``__getattr__, __dir__ = ...`` (the
  top level adds ``__version__`` and the ``_SUBMODULES`` tuple its table is built from). No functions, classes or other imports: real code
  lives in private modules.
- Every ``__all__`` name resolves, to the object its ``_LAZY`` entry names.
- ``dir(package)`` is ``__all__`` plus module dunders: no stray public names
  (``annotations``, ``importlib``, helper imports).
- No public name is also the name of a submodule of the same package (after
  ``import package.name`` the attribute would be the module, not the export).
- One public name, one object: no name is exported by two public modules as different
  objects (the few on purpose are listed in ``SAME_NAME_ALLOWED`` with the reason).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "smlmspine"
INITS = sorted(ROOT.rglob("__init__.py"))
PACKAGES = [".".join(p.parent.relative_to(ROOT.parent).parts) for p in INITS]


def _init(package: str) -> Path:
    return ROOT.parent.joinpath(*package.split("."), "__init__.py")


def _submodules(package: str) -> set[str]:
    folder = _init(package).parent
    return ({p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
            | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()})


def _lazy_table(package: str) -> dict[str, str]:
    tree = ast.parse(_init(package).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["_LAZY"]:
            mod = importlib.import_module(package)
            return dict(mod._LAZY)
    raise AssertionError(f"{package}: no _LAZY table")


def test_every_package_is_listed():
    assert {"smlmspine", "smlmspine.io", "smlmspine.cli", "smlmspine.drift",
            "smlmspine.morphology", "smlmspine.coupling", "smlmspine.simulate"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_init_only_reexports_through_lazy_exports(package):
    tree = ast.parse(_init(package).read_text(encoding="utf-8"))
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), \
        f"{package}: no module docstring"
    allowed_targets = {"_LAZY", "__all__"}
    if package == "smlmspine":
        allowed_targets |= {"__version__", "_SUBMODULES"}
    seen = set()
    for node in body[1:]:
        where = f"{package} line {node.lineno}"
        if isinstance(node, ast.ImportFrom):
            assert node.module and node.module.endswith("_lazy") and \
                [(a.name, a.asname) for a in node.names] == [("lazy_exports", "_lazy_exports")], \
                f"{where}: an __init__ imports only lazy_exports (as _lazy_exports)"
            seen.add("import")
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if names:
                assert set(names) <= allowed_targets, f"{where}: stray assignment {names}"
                seen.update(names)
            else:
                (target,) = node.targets
                assert isinstance(target, ast.Tuple) and \
                    [e.id for e in target.elts] == ["__getattr__", "__dir__"], \
                    f"{where}: only '__getattr__, __dir__ = _lazy_exports(...)'"
                assert isinstance(node.value, ast.Call) and node.value.func.id == "_lazy_exports"
                seen.add("getattr")
        else:
            pytest.fail(f"{where}: {type(node).__name__} in an __init__ (move code to a "
                        "private module)")
    assert {"import", "_LAZY", "__all__", "getattr"} <= seen, f"{package}: missing {seen}"


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve_to_their_targets(package):
    mod = importlib.import_module(package)
    table = _lazy_table(package)
    expected_all = sorted(table) + (["__version__"] if package == "smlmspine" else [])
    assert sorted(mod.__all__) == sorted(expected_all)
    for name, target in table.items():
        if name in _submodules(package):
            continue  # test_no_export_shadowed_by_a_submodule
        module, _, attr = target.partition(":")
        want = importlib.import_module(module, package)
        if attr:
            want = getattr(want, attr)
        assert getattr(mod, name) is want, f"{package}.{name} is not {target}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_stray_public_names(package):
    mod = importlib.import_module(package)
    public = {n for n in dir(mod) if not n.startswith("_")}
    assert public == {n for n in mod.__all__ if not n.startswith("_")}, \
        f"{package}: stray {sorted(public - set(mod.__all__))}"
    # After resolving everything, the namespace holds only exports, submodules and
    # private names.
    for name in mod.__all__:
        getattr(mod, name)
    stray = ({n for n in vars(mod) if n.isidentifier() and not n.startswith("_")}
             - set(mod.__all__) - _submodules(package))  # pytest may add '@py_builtins' 
    assert not stray, f"{package}: stray names {sorted(stray)}"


def test_no_export_shadowed_by_a_submodule():
    clashes = []
    for package in PACKAGES:
        for name, target in _lazy_table(package).items():
            if name in _submodules(package) and ":" in target:
                clashes.append(f"{package}.{name} exports {target} but is also the submodule "
                               f"{package}.{name}")
    assert not clashes, "\n".join(clashes)


def test_import_smlmspine_loads_no_stage():
    code = ("import sys, smlmspine; "
            "print(sorted(m for m in sys.modules if m.startswith('smlmspine')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['smlmspine', 'smlmspine._lazy']"
    code = "import smlmspine; print([n for n in dir(smlmspine) if not n.startswith('_')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "annotations" not in out and "importlib" not in out and "'read'" in out


def _public_modules() -> list[str]:
    """Every importable public module: no path component starts with an underscore."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            out.append(".".join(parts))
    return out


#: Public names exported by two public modules as different objects, on purpose. Each
#: entry is (name, the modules) -> why importing one for the other cannot go unnoticed.
SAME_NAME_ALLOWED = {
    ("synapses", frozenset({"smlmspine.simulate", "smlmspine.simulate.synapses"})):
        "smlmspine.simulate.synapses is the module, its function is synapses.synapses "
        "(documented in smlmspine.simulate)",
    ("LENGTH_UNITS_NM", frozenset({"smlmspine.io.arrowfiles", "smlmspine.io.smlmzip"})):
        "same meaning (nm per length unit), each reader's own vocabulary; to be merged "
        "with io._text.LENGTH_UNITS_NM",
}


def test_one_public_name_one_object():
    """No public name is exported by two modules as different objects (one name, one
    meaning): e.g. ``simulate.DriftModel`` (settings) beside ``drift.DriftModel`` (an
    estimate), or ``envelope.SPINE_COLUMNS`` beside ``morphology.SPINE_COLUMNS``."""
    owners: dict[str, dict[str, object]] = {}
    for name_ in _public_modules():
        mod = importlib.import_module(name_)
        for name in getattr(mod, "__all__", ()):
            if not name.startswith("_"):
                owners.setdefault(name, {})[name_] = getattr(mod, name)
    clashes = []
    for name, where in sorted(owners.items()):
        if len({id(obj) for obj in where.values()}) > 1 and \
                (name, frozenset(where)) not in SAME_NAME_ALLOWED:
            clashes.append(f"{name}: " + ", ".join(f"{m}.{name}" for m in sorted(where)))
    assert not clashes, "one public name, several objects:\n" + "\n".join(clashes)
    # the renames of issue 16 item 4 stay done: the old names are gone
    import smlmspine.envelope as envelope
    import smlmspine.simulate as simulate

    assert not hasattr(simulate, "DriftModel") and hasattr(simulate, "SimulatedDrift")
    assert not hasattr(envelope, "SPINE_COLUMNS")
    assert "extent_nm" in envelope.ISOLATED_SPINE_COLUMNS
    assert "length_nm" not in envelope.ISOLATED_SPINE_COLUMNS
