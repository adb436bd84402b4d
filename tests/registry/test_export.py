"""Registry export: the import format, round-tripping."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cwn.demo import DATA
from cwn.registry.exporter import export_registry
from cwn.registry.format import parse_document
from cwn.registry.importer import import_registry

FULL: dict[str, Any] = {"organizations": [
    {"id": "zeta", "name": "Zeta", "language": "en",
     "assets": [{"type": "domain", "value": "zeta.example"}], "contacts": []},
    {"id": "acme", "name": "Acme B.V.", "kvk": "01234567", "sector": "energy/electricity",
     "sbi": "D", "municipality": "GM0363", "province": "PV27", "language": "nl",
     "size": "small", "maturity": 2,
     "assets": [{"type": "cidr", "value": "2001:db8::/32"},
                {"type": "cidr", "value": "192.0.2.0/24"},
                {"type": "asn", "value": 64500}, {"type": "domain", "value": "acme.nl"}],
     "contacts": [{"email": "noc@acme.nl", "role": "technical", "priority": 20},
                  {"email": "security@acme.nl", "role": "security", "language": "nl",
                   "priority": 10}]},
]}


def roundtrip(engine: Engine, data: dict[str, Any]) -> dict[str, Any]:
    with Session(engine) as s, s.begin():
        import_registry(s, parse_document(data), actor="test")
    with Session(engine) as s:
        return export_registry(s)


def test_import_then_export_is_the_same_document_modulo_ordering(engine: Engine) -> None:
    exported = roundtrip(engine, FULL)

    assert exported == parse_document(FULL).canonical()
    assert [o["id"] for o in exported["organizations"]] == ["acme", "zeta"]
    assert exported["organizations"][0]["assets"][0] == {"type": "asn", "value": 64500}
    json.dumps(exported)  # plain JSON


def test_the_export_imports_again_without_changes(engine: Engine) -> None:
    demo = json.loads((DATA / "registry.json").read_text(encoding="utf-8"))
    exported = roundtrip(engine, demo)
    assert exported == parse_document(demo).canonical()
    with Session(engine) as s, s.begin():
        summary = import_registry(s, parse_document(exported), actor="test")
    assert not summary.changed and summary.orgs_unchanged == len(demo["organizations"])
