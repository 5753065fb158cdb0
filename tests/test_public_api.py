"""Every exported name of every public module resolves (lazy exports included)."""

import importlib

import pytest

import smlmspine

MODULES = ["smlmspine"] + [f"smlmspine.{m}" for m in smlmspine._SUBMODULES]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_resolves(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    missing = [attr for attr in exported if getattr(module, attr, None) is None]
    assert not missing, f"{name}.__all__ names that do not resolve: {missing}"
