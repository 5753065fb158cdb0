"""The documentation site builds with warnings as errors, and documents every public name.

``docs/`` is built with Sphinx (``-E -W --keep-going``, nitpicky) into a temporary
folder: a broken reference (Markdown link, cross-reference in a docstring), a docstring
that does not parse, or a public function without a docstring fails the build. The
API pages are generated from every public module's ``__all__`` at build time; the test
checks that each exported function and class got an entry. Needs the ``docs`` extra
(``pip install -e '.[docs]'``, installed by ``scripts/setup.sh``).
"""

from __future__ import annotations

import html
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:  # scripts/setup.sh installs the docs extra: its absence is an error, not a skip
    import myst_parser  # noqa: F401
    import numpydoc  # noqa: F401
    import sphinx  # noqa: F401
except ImportError as exc:
    raise ImportError(f"{exc}: the docs extra is needed (pip install -e '.[docs]'; "
                      "scripts/setup.sh installs it)") from exc

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import smlmspine_reference  # noqa: E402


def _sphinx(srcdir: Path, outdir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(outdir / ".doctrees"), *extra, str(srcdir), str(outdir / "html")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    proc = _sphinx(DOCS, out)
    return proc, out / "html"


def test_site_builds_without_warnings(site):
    proc, _ = site
    assert proc.returncode == 0, (
        f"sphinx exited {proc.returncode}:\n{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}")


def test_every_public_name_has_an_entry(site):
    proc, html_dir = site
    assert (html_dir / "index.html").exists(), proc.stderr[-3000:]
    anchors = set()
    for page in (html_dir / "api").glob("*.html"):
        anchors |= {html.unescape(a) for a in re.findall(r'\bid="([^"]+)"', page.read_text())}
    missing = []
    for module_name, rows in smlmspine_reference.api_inventory().items():
        for attr, obj, home in rows:
            if inspect.ismodule(obj):
                continue
            name = getattr(obj, "__name__", attr) if home != module_name else attr
            if f"{home}.{name}" not in anchors:
                missing.append(f"{module_name}.{attr} (expected at {home}.{name})")
    assert not missing, "public names without an API entry:\n  " + "\n  ".join(missing)


def test_cli_and_schema_pages_are_complete(site):
    _, html_dir = site
    cli = (html_dir / "cli" / "index.html").read_text()
    from smlmspine.cli import build_parser

    commands = [a for a in build_parser()._actions if a.__class__.__name__ ==
                "_SubParsersAction"][0].choices
    for command in commands:
        assert f"smlmspine {command}" in cli, command
    for schema in (ROOT / "data_schemas").glob("*.json"):
        assert (html_dir / "schemas" / f"{schema.stem}.html").exists(), schema.name


# ---------------------------------------------------------------------------------------
# the build does fail on what it should (a small project using the same extension)

def _mini_project(tmp_path: Path, body: str, module: str) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "mini_mod.py").write_text(textwrap.dedent(module))
    (src / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(src)!r}, {str(DOCS / "_ext")!r}]
        extensions = ["myst_parser", "sphinx.ext.autodoc", "numpydoc", "smlmspine_reference"]
        smlmspine_generate = False
        nitpicky = True
        numpydoc_show_class_members = False
        """))
    (src / "index.md").write_text(textwrap.dedent(body))
    return src


MODULE = '''
def documented(x):
    """Return x.

    Parameters
    ----------
    x : float
        A value.

    Returns
    -------
    float
    """
    return x


def undocumented(x):
    return x
'''


def test_mini_project_builds(tmp_path):
    src = _mini_project(tmp_path, """
        # Mini

        ```{eval-rst}
        .. autofunction:: mini_mod.documented
        ```

        See {py:func}`mini_mod.documented`.
        """, MODULE)
    proc = _sphinx(src, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("body, message", [
    ("```{eval-rst}\n.. autofunction:: mini_mod.undocumented\n```\n",
     "public function mini_mod.undocumented has no docstring"),
    ("See {py:func}`mini_mod.no_such_function`.\n", "reference target not found"),
    ("See [the page](no_such_page.md).\n", "no_such_page"),
])
def test_build_fails_on(tmp_path, body, message):
    src = _mini_project(tmp_path, "# Mini\n\n" + body, MODULE)
    proc = _sphinx(src, tmp_path / "out")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
