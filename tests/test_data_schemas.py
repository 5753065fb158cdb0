"""data_schemas/ documents every table smlmspine writes; keep it in step with the code."""

import importlib
import json
from pathlib import Path

import pytest

from smlmspine.schema import TABLE_REGISTRIES, ColumnSpec

DOCS = Path(__file__).resolve().parent.parent / "data_schemas"


def _load(target: str):
    module, attr = target.split(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if callable(obj) else obj


def _docs():
    return sorted(DOCS.glob("*.json"))


def test_every_registered_table_has_a_document():
    documented = {json.loads(p.read_text())["table"] for p in _docs()}
    missing = sorted(set(TABLE_REGISTRIES) - documented)
    assert not missing, f"tables without a data_schemas/ document: {missing}"


@pytest.mark.parametrize("doc_path", _docs(), ids=lambda p: p.name)
def test_document_matches_code(doc_path):
    doc = json.loads(doc_path.read_text())
    assert doc_path.stem == doc["table"]
    assert TABLE_REGISTRIES.get(doc["table"]) == doc["defined_in"], \
        f"{doc_path.name}: defined_in differs from smlmspine.schema.TABLE_REGISTRIES"
    registry = _load(doc["defined_in"])
    assert all(isinstance(v, ColumnSpec) for v in registry.values())
    code = [(s.name, str(s.type), s.unit) for s in registry.values()]
    documented = [(c["name"], c["type"], c["unit"]) for c in doc["columns"]]
    assert documented == code, f"{doc_path.name} disagrees with {doc['defined_in']}"
    assert all(c.get("description") for c in doc["columns"])
