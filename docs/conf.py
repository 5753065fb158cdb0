"""Sphinx configuration of the smlmspine documentation site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (the ``docs``
extra, installed by ``scripts/setup.sh``). The Markdown pages of ``docs/`` are read as they are
(MyST); the API, CLI and data-schema pages are generated from the code at every build by
``docs/_ext/smlmspine_reference.py``.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import smlmspine  # noqa: E402

project = "smlmspine"
author = "smlmspine developers"
copyright = "smlmspine developers"
release = version = smlmspine.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "smlmspine_reference",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "figures/*.py", "**/.pytest_cache"]
templates_path = []

# MyST: the Markdown pages use GitHub-style heading anchors (docs/x.md#some-heading).
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "dollarmath"]
# Heading levels that skip one (H2 -> H4) in the hand-written pages are style, not errors.
suppress_warnings = ["myst.header"]

# autodoc / numpydoc
autodoc_member_order = "bysource"
autodoc_typehints = "none"            # types are written in the numpydoc sections
autodoc_default_options = {"exclude-members": "__init__, __new__"}
autosummary_generate = False
numpydoc_show_class_members = False   # methods are documented by autodoc's :members:
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Python cross-references must resolve (see smlmspine_reference.NITPICK_IGNORE_REGEX).
nitpicky = True
from smlmspine_reference import NITPICK_IGNORE_REGEX  # noqa: E402

nitpick_ignore_regex = NITPICK_IGNORE_REGEX

html_theme = "alabaster"
html_title = f"smlmspine {release}"
html_static_path = []
