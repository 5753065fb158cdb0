"""Generate the reference pages of the documentation site from the code.

Three generated parts, rewritten at every build (``builder-inited``) and ignored by git:

- ``docs/api/``: one page per public module (a module path without a ``_`` part), with
  every name of its ``__all__``: functions, classes (with their public methods) and
  constants, each documented once at its home module (the public module its defining
  module lives in) and linked from the modules that re-export it;
- ``docs/cli/index.md``: every ``smlmspine`` command and subcommand, with the help text
  of :func:`smlmspine.cli.build_parser`'s parsers;
- ``docs/schemas/``: one page per ``data_schemas/*.json`` document (table, description,
  where it is defined and written, columns with type and unit).

Also a Sphinx extension: ``smlmspine_reference`` in ``extensions`` regenerates the pages
before the sources are read and warns about every public object without a docstring
(with ``-W`` the build then fails).

Run ``python docs/_ext/smlmspine_reference.py`` to write the pages without building.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
SCHEMAS = ROOT / "data_schemas"
HELP_WIDTH = "88"


# ---------------------------------------------------------------------------------------
# helpers

def _write(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps Sphinx's cache valid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _prune(directory: Path, keep: set[Path]) -> None:
    """Remove generated files of ``directory`` that this run did not write."""
    if directory.is_dir():
        for path in directory.iterdir():
            if path.is_file() and path not in keep:
                path.unlink()


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


# ---------------------------------------------------------------------------------------
# API reference

def public_modules() -> list[str]:
    """Names of the public modules: ``smlmspine`` and every submodule without ``_`` parts."""
    import smlmspine

    names = ["smlmspine"]
    for info in pkgutil.walk_packages(smlmspine.__path__, "smlmspine."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _kind(obj) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def _home(obj, exporters: list[str]) -> str:
    """The public module an object is documented in: the exporting module whose name is
    the longest prefix of the module that defines it (else the first exporter)."""
    defined = getattr(obj, "__module__", None) or ""
    prefixes = [m for m in exporters if defined == m or defined.startswith(m + ".")]
    return max(prefixes, key=len) if prefixes else exporters[0]


def api_inventory() -> dict[str, list[tuple[str, object, str]]]:
    """``{module: [(name, object, home module), ...]}`` in ``__all__`` order."""
    modules = {name: importlib.import_module(name) for name in public_modules()}
    exporters: dict[int, list[str]] = {}
    for name, module in modules.items():
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if _kind(obj) != "data":
                exporters.setdefault(id(obj), []).append(name)
    out = {}
    for name, module in modules.items():
        rows = []
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            home = name if _kind(obj) == "data" else _home(obj, exporters[id(obj)])
            rows.append((attr, obj, home))
        out[name] = rows
    return out


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def api_page(module_name: str, rows) -> str:
    """reStructuredText of one module's page."""
    lines = [_title(f"``{module_name}``"),
             f".. automodule:: {module_name}\n   :no-members:\n"]
    here = [(a, o) for a, o, home in rows if home == module_name and _kind(o) != "module"]
    elsewhere = [(a, o, home) for a, o, home in rows
                 if home != module_name and _kind(o) != "module"]
    submodules = [(a, o) for a, o, _ in rows if _kind(o) == "module"]
    if here:
        lines.append(".. currentmodule:: " + module_name + "\n")
        lines.append(".. autosummary::\n   :nosignatures:\n")
        lines += [f"   {attr}" for attr, _ in here]
        lines.append("")
    if submodules:
        lines.append(_title("Submodules", "-"))
        lines += [f"- :mod:`{obj.__name__}`" for _, obj in submodules]
        lines.append("")
    if elsewhere:
        lines.append(_title("Re-exported here", "-"))
        lines.append("Documented in their home module:\n")
        for attr, obj, home in elsewhere:
            role = {"class": "class", "exception": "exc", "function": "func"}[_kind(obj)]
            lines.append(f"- ``{module_name}.{attr}``: :{role}:`{home}.{obj.__name__}`")
        lines.append("")
    for attr, obj in here:
        kind = _kind(obj)
        target = f"{module_name}.{attr}"
        if kind == "exception":
            lines.append(f".. autoexception:: {target}\n   :members:\n   :show-inheritance:\n")
        elif kind == "class":
            lines.append(f".. autoclass:: {target}\n   :members:\n")
        elif kind == "function":
            lines.append(f".. autofunction:: {target}\n")
        else:
            lines.append(f".. autodata:: {target}\n   :no-value:\n")
    return "\n".join(lines)


def write_api(outdir: Path) -> list[str]:
    """Write ``outdir/<module>.rst`` and ``outdir/index.rst``; return the module names."""
    inventory = api_inventory()
    written = set()
    for module_name, rows in inventory.items():
        path = outdir / f"{module_name}.rst"
        _write(path, api_page(module_name, rows))
        written.add(path)
    index = [_title("API reference"),
             "One page per public module, generated from the docstrings. Every name of a "
             "module's ``__all__`` is listed; each object is documented once, in the "
             "module it belongs to, and linked from the modules that re-export it.\n",
             ".. toctree::\n   :maxdepth: 1\n"]
    index += [f"   {name}" for name in inventory]
    _write(outdir / "index.rst", "\n".join(index) + "\n")
    written.add(outdir / "index.rst")
    _prune(outdir, written)
    return list(inventory)


# ---------------------------------------------------------------------------------------
# CLI reference

def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name)


def _command_sections(parser, prefix: str, level: int) -> list[str]:
    out = []
    for name, sub, summary in _subparsers(parser):
        command = f"{prefix} {name}"
        out.append(f"{'#' * level} `{command}`\n")
        if summary:
            out.append(f"{summary[0].upper()}{summary[1:]}.\n")
        out.append("```text\n" + sub.format_help().rstrip() + "\n```\n")
        out += _command_sections(sub, command, level + 1)
    return out


def cli_page() -> str:
    """MyST Markdown of the CLI reference."""
    from smlmspine.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH  # argparse wraps to the terminal width
    try:
        parser = build_parser()
        lines = ["# Command-line reference\n",
                 "Generated from the argument parser of the `smlmspine` command "
                 "({py:func}`smlmspine.cli.build_parser`); each command is a thin layer "
                 "over the package functions. A refused command prints one line on stderr "
                 "and exits with status 2, leaving no partial output "
                 "([reliability](../reliability.md)).\n",
                 "```text\n" + parser.format_help().rstrip() + "\n```\n"]
        lines += _command_sections(parser, "smlmspine", 2)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(lines)


def write_cli(outdir: Path) -> None:
    _write(outdir / "index.md", cli_page())
    _prune(outdir, {outdir / "index.md"})


# ---------------------------------------------------------------------------------------
# data schemas

def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def schema_page(doc: dict, source: str) -> str:
    """MyST Markdown of one ``data_schemas`` document."""
    module, _, attr = doc.get("defined_in", "").partition(":")
    lines = [f"# `{doc['table']}`\n", doc.get("description", "") + "\n",
             f"- JSON document: `data_schemas/{source}`"]
    if module:
        lines.append(f"- defined in: `{module}.{attr}`")
    for who in doc.get("written_by", []):
        lines.append(f"- written by: `{who}`")
    lines.append("")
    lines.append("| column | type | unit | description |")
    lines.append("|---|---|---|---|")
    for col in doc["columns"]:
        lines.append(f"| `{_cell(col['name'])}` | `{_cell(col['type'])}` | "
                     f"{_cell(col.get('unit', ''))} | {_cell(col.get('description', ''))} |")
    return "\n".join(lines) + "\n"


def write_schemas(outdir: Path) -> list[str]:
    """Write one page per ``data_schemas/*.json`` and an index; return the table names."""
    written = set()
    names = []
    for source in sorted(SCHEMAS.glob("*.json")):
        doc = json.loads(source.read_text(encoding="utf-8"))
        path = outdir / f"{source.stem}.md"
        _write(path, schema_page(doc, source.name))
        written.add(path)
        names.append(source.stem)
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8").split("\n", 1)[1]
    index = ["# Data schemas\n",
             "Every table smlmspine writes, as documented in `data_schemas/` (and checked "
             "against the code by `tests/test_data_schemas.py`).\n",
             readme.strip() + "\n",
             "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(names) + "\n```\n"]
    _write(outdir / "index.md", "\n".join(index))
    written.add(outdir / "index.md")
    _prune(outdir, written)
    return names


def generate(docs: Path = DOCS) -> None:
    """Write the API, CLI and schema pages under ``docs``."""
    write_api(docs / "api")
    write_cli(docs / "cli")
    write_schemas(docs / "schemas")


# ---------------------------------------------------------------------------------------
# Sphinx extension

def _generate(app) -> None:
    if app.config.smlmspine_generate:
        generate(Path(app.srcdir))


def _attribute_comment(name: str) -> list[str] | None:
    """The ``#:`` comment of a module constant, looked up in the module that names it
    and in its submodules (for a constant re-exported by a package)."""
    import sys

    from sphinx.pycode import ModuleAnalyzer

    module, _, attr = name.rpartition(".")
    candidates = [module] + sorted(m for m in list(sys.modules) if m.startswith(module + "."))
    for candidate in candidates:
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # noqa: BLE001 - no source for this module: try the next
            continue
        if ("", attr) in docs:
            return list(docs[("", attr)])
    return None


def _require_docstring(app, what, name, obj, options, lines) -> None:
    """Warn about a public function, class, method or exception without a docstring;
    give a re-exported constant its ``#:`` comment instead of its type's docstring."""
    if what == "data":
        type_doc = inspect.getdoc(type(obj)) or ""
        if "\n".join(lines).strip() == type_doc.strip():
            lines[:] = _attribute_comment(name) or []
        return
    if what not in ("function", "class", "method", "exception") or any(s.strip() for s in lines):
        return
    if name.rsplit(".", 1)[-1].startswith("_"):
        return
    from sphinx.util import logging

    logging.getLogger("smlmspine_reference").warning(
        f"public {what} {name} has no docstring", type="smlmspine", subtype="undocumented")


#: Labels of other projects' documentation referenced from docstrings, resolved offline
#: (no intersphinx inventory is downloaded at build time).
EXTERNAL_LABELS = {
    "arrays.dtypes": ("NumPy: data type objects",
                      "https://numpy.org/doc/stable/reference/arrays.dtypes.html"),
}

#: Python references that are not broken when they have no page here: other projects'
#: objects and the package's private helpers (named in docstrings for the reader).
NITPICK_IGNORE_REGEX = [
    (r"py:.*", r"(numpy|np|pyarrow|pa|scipy|sklearn|hdbscan|trimesh|open3d|shapely|networkx|"
               r"numba|h5py|yaml|matplotlib|tifffile|skimage|pandas|tempfile|pathlib|os|io|"
               r"json|zipfile|argparse|dataclasses|typing|collections|warnings)(\..*)?"),
    (r"py:.*", r"(.*\.)?_[A-Za-z0-9]\w*(\..*)?"),  # a private module, class or function
]


def _aliases() -> dict[str, str]:
    """``{re-exported full name: documented full name}`` and unique short names."""
    out, short = {}, {}
    for module_name, rows in api_inventory().items():
        for attr, obj, home in rows:
            if _kind(obj) in ("module", "data"):
                continue
            target = f"{home}.{getattr(obj, '__name__', attr)}"
            if home != module_name:
                out[f"{module_name}.{attr}"] = target
            short.setdefault(attr, set()).add(target)
            if inspect.isclass(obj):
                for name, value in vars(obj).items():
                    if not name.startswith("_") and callable(getattr(obj, name, None)):
                        short.setdefault(name, set()).add(f"{target}.{name}")
    for attr, targets in short.items():
        if len(targets) == 1:
            out.setdefault(attr, next(iter(targets)))
    return out


def _resolve_missing(app, env, node, contnode):
    """Resolve a reference Sphinx did not find: an external label, a re-exported name
    (to where it is documented) or an unqualified name that is unique in the package."""
    from docutils import nodes

    target = node.get("reftarget", "")
    if node.get("refdomain") == "std" and target in EXTERNAL_LABELS:
        title, url = EXTERNAL_LABELS[target]
        text = contnode.astext() if contnode is not None else title
        return nodes.reference(text, text, refuri=url, internal=False)
    if node.get("refdomain") != "py":
        return None
    if not hasattr(env, "_smlmspine_aliases"):
        env._smlmspine_aliases = _aliases()
    aliases = env._smlmspine_aliases
    resolved = aliases.get(target)
    if resolved is None:
        # a method or attribute named relative to its class (Class.method) or module
        head, _, tail = target.partition(".")
        if tail and head in aliases:
            resolved = f"{aliases[head]}.{tail}"
    if resolved is None or resolved == target:
        return _existing_name(node, contnode)
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], resolved,
                               node, contnode)


def _lookup(dotted: str):
    """The object a dotted name points at (importing modules as needed), else None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


def _existing_name(node, contnode):
    """A reference from a docstring to a name that exists next to the documented object
    (a module constant or private helper without a page) is shown as code, not linked;
    a reference to nothing stays unresolved (a warning, an error with ``-W``)."""
    source = str(node.source or "")
    if "docstring of " not in source:
        return None
    owner = source.rsplit("docstring of ", 1)[1].strip()
    target = node["reftarget"].lstrip(".~")
    scopes = []
    parts = owner.split(".")
    for i in range(len(parts), 0, -1):
        scopes.append(".".join(parts[:i]))
    for scope in scopes:
        if _lookup(f"{scope}.{target}") is not None:
            return contnode
    if "." in target and _lookup(target) is not None:
        return contnode
    return None


def setup(app):
    app.add_config_value("smlmspine_generate", True, "env")
    app.connect("builder-inited", _generate)
    app.connect("missing-reference", _resolve_missing)
    app.connect("autodoc-process-docstring", _require_docstring, priority=100)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    generate()
    print(f"wrote {DOCS / 'api'}, {DOCS / 'cli'}, {DOCS / 'schemas'}")
