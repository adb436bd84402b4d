"""Partners and agreements in the registry format: strict validation, audited import that
updates in place, and an export that imports back without a change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cwn.db.models import AuditEntry
from cwn.db.models_partners import Agreement, Partner
from cwn.registry.exporter import export_partners
from cwn.registry.partners import PartnersDocument, import_partners

PARTNER: dict[str, Any] = {
    "id": "isp-example", "name": "Example ISP B.V.", "type": "isp", "maturity": 4,
    "functions": ["dsn"], "regions": ["pv27"], "language": "nl",
    "contacts": [{"email": "Abuse@ISP.example.nl", "available_24_7": True}],
    "agreements": [{"id": "AGR-1", "scope": {"asns": ["AS64500"],
                                             "prefixes": ["192.0.2.0/24"],
                                             "sectors": ["Energy/Gas"]},
                    "format": "xarf", "cadence": "hourly", "mode": "copy",
                    "valid_from": "2026-01-01", "signed_by": "J. de Vries"}]}


def _import(engine: Engine, partners: list[dict[str, Any]]) -> dict[str, int]:
    with Session(engine) as s, s.begin():
        return import_partners(s, PartnersDocument.model_validate({"partners": partners}),
                               actor="test")


def test_values_are_normalised_and_reimport_changes_nothing(engine: Engine) -> None:
    first = _import(engine, [PARTNER])
    again = _import(engine, [PARTNER])
    assert first["changed"] == 3 and again["changed"] == 0
    with Session(engine) as s:
        a = s.get(Agreement, "AGR-1")
        assert a is not None and a.scope["asns"] == [64500]
        assert a.scope["sectors"] == ["energy"] and a.cadence == "hourly"
        p = s.get(Partner, "isp-example")
        assert p is not None and p.regions == ["PV27"]
        n_audit = s.scalar(select(func.count()).select_from(AuditEntry))
    assert n_audit == 3


def test_export_imports_back_without_a_change(engine: Engine) -> None:
    _import(engine, [PARTNER])
    with Session(engine) as s:
        exported = json.loads(json.dumps(export_partners(s)))
    assert _import(engine, exported)["changed"] == 0


def test_an_agreement_left_out_is_ended_and_audited(engine: Engine) -> None:
    _import(engine, [PARTNER])
    counts = _import(engine, [{**PARTNER, "agreements": []}])
    assert counts["changed"] == 1
    with Session(engine) as s:
        assert s.get(Agreement, "AGR-1") is None


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "bank"}, "type"),
    ({"maturity": 9}, "maturity"),
    ({"contacts": [{"email": "nope"}]}, "e-mail"),
    ({"agreements": [{"id": "A", "format": "pdf"}]}, "format"),
    ({"agreements": [{"id": "A", "tlp_ceiling": "PURPLE"}]}, "tlp_ceiling"),
    ({"agreements": [{"id": "A", "scope": {"prefixes": ["192.0.2.1/24"]}}]}, "prefixes"),
    ({"agreements": [{"id": "A", "scope": {"regions": ["PV99"]}}]}, "province"),
    ({"agreements": [{"id": "A", "valid_from": "2026-02-01",
                      "valid_until": "2026-01-01"}]}, "valid_until"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_partner_documents_are_refused_with_the_field_named(
        change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        PartnersDocument.model_validate({"partners": [{**PARTNER, **change}]})
    assert message in str(err.value)
