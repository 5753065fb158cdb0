"""Test-session settings shared by tests/ and the doctests of smlmspine/.

The package's memory budget defaults to a quarter of the machine's memory; tests pin it
to 1 GB so that what they refuse (and the doctests' messages) do not depend on the
machine. A test that needs another budget sets ``SMLMSPINE_MEMORY_BUDGET_GB`` itself.
"""

import os
import tempfile

import pytest

os.environ["SMLMSPINE_MEMORY_BUDGET_GB"] = "1"


@pytest.fixture(autouse=True)
def _doctest_temporary_files(request, monkeypatch):
    """A doctest's ``tempfile.mkdtemp()`` and temporary files go under pytest's own
    temporary directory (pytest keeps the last few runs' and removes the rest), not into
    the system's /tmp, where every run of the suite left ~25 directories behind."""
    if isinstance(request.node, pytest.DoctestItem):
        path = request.getfixturevalue("tmp_path")
        monkeypatch.setattr(tempfile, "tempdir", str(path))
