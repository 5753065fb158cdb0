"""Declared dependencies match what the code imports.

The third-party imports of ``smlmspine`` (every ``import`` statement, at module level
and inside functions, read with :mod:`ast`) are mapped to their distributions and
compared with ``[project.dependencies]`` of ``pyproject.toml``:

- every distribution the package imports is declared there;
- every declared distribution is imported by the package, or listed in
  :data:`INDIRECT` with the reason the package needs it without importing it;
- the third-party imports of ``tests/`` are covered by the dependencies plus the
  ``test`` extra (and the ``docs`` extra for the documentation-build test).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Declared dependencies the package needs but does not import, with the reason.
INDIRECT: dict[str, str] = {
    "networkx": "trimesh.repair.fill_holes (envelope._repair) imports it",
    "rtree": "trimesh's closest-point queries and section polygons (envelope, morphology) import it",
}

#: Import names whose distribution cannot be looked up when it is not installed.
KNOWN = {"yaml": "pyyaml", "sklearn": "scikit-learn", "skimage": "scikit-image",
         "myst_parser": "myst-parser"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normalise(re.split(r"[\s<>=!~;\[]", spec.strip(), maxsplit=1)[0])


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _local_names(folder: Path) -> set[str]:
    return {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}


def third_party_imports(folder: Path) -> dict[str, set[str]]:
    """``{top-level import name: {file:line, ...}}`` of a source tree, stdlib and local
    modules (files of this repository: tests, benchmarks, docs extensions) left out."""
    local = {"smlmspine"} | set().union(*(_local_names(REPO / d) for d in
                                          ("tests", "benchmarks", "docs", "examples", "scripts")
                                          if (REPO / d).is_dir()))
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                found.setdefault(top, set()).add(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(import_name: str) -> str:
    dists = _installed().get(import_name)
    if dists:
        return _normalise(dists[0])
    return _normalise(KNOWN.get(import_name, import_name))


def test_the_walk_finds_imports_inside_functions():
    found = third_party_imports(REPO / "smlmspine")
    assert "numpy" in found and "pyarrow" in found
    # threadpoolctl is imported only inside a function (_parentwatch.exit_with)
    assert any("_parentwatch" in w for w in found.get("threadpoolctl", ()))
    assert "smlmspine" not in found and "json" not in found


def test_package_imports_are_declared_and_declarations_used():
    declared = {_requirement_name(s) for s in _pyproject()["project"]["dependencies"]}
    imported = {}
    for name, where in third_party_imports(REPO / "smlmspine").items():
        imported.setdefault(distribution(name), set()).update(where)
    undeclared = {d: sorted(w)[:3] for d, w in imported.items() if d not in declared}
    assert not undeclared, f"imported by smlmspine but not in [project.dependencies]: {undeclared}"
    unused = sorted(declared - set(imported) - set(INDIRECT))
    assert not unused, (f"declared in [project.dependencies] but never imported by smlmspine "
                        f"(move to the extra that needs it, or list in INDIRECT): {unused}")


def test_test_imports_are_covered_by_the_test_extra():
    project = _pyproject()["project"]
    extras = project.get("optional-dependencies", {})
    have = {_requirement_name(s) for s in project["dependencies"] + extras.get("test", [])}
    docs = {_requirement_name(s) for s in extras.get("docs", [])}
    missing = {}
    for name, where in third_party_imports(REPO / "tests").items():
        dist = distribution(name)
        if dist in have:
            continue
        if dist in docs and all("test_docs_build" in w for w in where):
            continue
        missing[dist] = sorted(where)[:3]
    assert not missing, f"imported by tests/ but in neither the dependencies nor the test extra: {missing}"


@pytest.mark.parametrize("extra", ["test", "docs"])
def test_extras_exist_and_setup_installs_them(extra):
    assert _pyproject()["project"]["optional-dependencies"][extra]
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    installs = re.findall(r"pip install[^\n]*-e\s+'\.\[([^\]]*)\]'", setup)
    assert installs and extra in installs[0].split(","), f"scripts/setup.sh does not install .[{extra}]"
