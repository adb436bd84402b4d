"""Registry import: strict validation, upsert in place, audit trail, one transaction."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cwn.db.models import Asset, AuditEntry, Contact, Organization, RegistryState
from cwn.registry.format import RegistryFormatError, parse_document
from cwn.registry.importer import import_registry
from cwn.registry.netaddr import decode_network, parse_cidr

ACME: dict[str, Any] = {
    "id": "acme", "name": "Acme B.V.", "kvk": "01234567", "sector": "energy/electricity",
    "sbi": "D", "municipality": "GM0363", "province": "PV27", "language": "nl",
    "size": "small", "maturity": 2,
    "assets": [{"type": "cidr", "value": "192.0.2.0/24"},
               {"type": "cidr", "value": "2001:db8::/32"},
               {"type": "asn", "value": 64500}, {"type": "domain", "value": "acme.nl"}],
    "contacts": [{"email": "security@acme.nl", "role": "security", "language": "nl",
                  "priority": 10}],
}


def doc(*orgs: dict[str, Any]) -> dict[str, Any]:
    return {"organizations": [copy.deepcopy(o) for o in orgs]}


def run_import(engine: Engine, data: dict[str, Any], actor: str = "test") -> Any:
    with Session(engine) as session, session.begin():
        return import_registry(session, parse_document(data), actor=actor)


def version(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(RegistryState.version)) or 0)


def errors_of(data: dict[str, Any]) -> str:
    with pytest.raises(RegistryFormatError) as exc:
        parse_document(data)
    return "\n".join(exc.value.errors)


# -- validation -----------------------------------------------------------------------------


def test_a_bad_kvk_names_the_org_and_the_field() -> None:
    msg = errors_of(doc({**ACME, "kvk": "123"}))
    assert "'acme'" in msg and "kvk" in msg and "8 digits" in msg


def test_kvk_must_be_a_string_so_leading_zeros_survive() -> None:
    assert "kvk" in errors_of(doc({**ACME, "kvk": 1234567}))
    assert parse_document(doc(ACME)).organizations[0].kvk == "01234567"


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("municipality", "0363", "GM"),
    ("province", "PV19", "PV20"),
    ("province", "PV32", "PV20"),
    ("sbi", "W", "A-V"),
    ("language", "de", "language"),
    ("sector", "energy/electricity/extra", "sector/subsector"),
    ("size", "huge", "size"),
])
def test_field_rules_give_helpful_messages(field: str, value: str, hint: str) -> None:
    msg = errors_of(doc({**ACME, field: value}))
    assert "'acme'" in msg and field in msg and hint in msg


def test_cidr_with_host_bits_is_an_error_naming_the_value() -> None:
    bad = {**ACME, "assets": [{"type": "cidr", "value": "192.0.2.1/24"}]}
    msg = errors_of(doc(bad))
    assert "192.0.2.1/24" in msg and "host bits" in msg and "'acme'" in msg


def test_values_are_normalised() -> None:
    org = {"id": "x", "name": "X", "sbi": "d", "sector": "Energy",
           "assets": [{"type": "cidr", "value": "2001:DB8:0::/32"},
                      {"type": "asn", "value": "AS64500"},
                      {"type": "domain", "value": "Bücher.Example."}],
           "contacts": [{"email": "Sec@ACME.NL"}]}
    o = parse_document(doc(org)).organizations[0]
    assert [a.value for a in o.assets] == ["2001:db8::/32", 64500, "xn--bcher-kva.example"]
    assert (o.sbi, o.sector, o.contacts[0].email) == ("D", "energy", "Sec@acme.nl")


@pytest.mark.parametrize("asset", [
    {"type": "asn", "value": 0}, {"type": "asn", "value": 4294967296},
    {"type": "asn", "value": "ASx"}, {"type": "domain", "value": "https://acme.nl/"},
    {"type": "domain", "value": "localhost"}, {"type": "cidr", "value": "acme"},
    {"type": "url", "value": "x"},
])
def test_bad_assets_are_rejected(asset: dict[str, Any]) -> None:
    assert "'acme'" in errors_of(doc({**ACME, "assets": [asset]}))


def test_bad_email_and_unknown_fields_and_duplicates() -> None:
    assert "email" in errors_of(doc({**ACME, "contacts": [{"email": "not-an-address"}]}))
    assert "kvkk" in errors_of(doc({**ACME, "kvkk": "12345678"}))
    assert "more than once" in errors_of(doc(ACME, ACME))
    dup = {**ACME, "assets": [{"type": "asn", "value": 1}, {"type": "asn", "value": "AS1"}]}
    assert "duplicate" in errors_of(doc(dup))


# -- import ---------------------------------------------------------------------------------


def test_import_creates_verified_operator_assets_and_audits(engine: Engine) -> None:
    summary = run_import(engine, doc(ACME))

    assert (summary.orgs_created, summary.assets_added, summary.contacts_added) == (1, 4, 1)
    assert version(engine) == summary.version == 1
    with Session(engine) as s:
        org = s.get(Organization, "acme")
        assert org is not None
        assert (org.kvk, org.sector, org.subsector) == ("01234567", "energy", "electricity")
        assets = {a.value: a for a in s.scalars(select(Asset))}
        assert set(assets) == {"192.0.2.0/24", "2001:db8::/32", "AS64500", "acme.nl"}
        assert all(a.verified and a.verified_by == "operator-import" and a.source == "import"
                   for a in assets.values())
        v6 = assets["2001:db8::/32"]
        assert decode_network(6, v6.ip_hi, v6.ip_lo, 32) == "2001:db8::/32"
        assert (v6.ip_hi, v6.ip_lo) == parse_cidr("2001:db8::/32")[1:3]
        assert assets["192.0.2.0/24"].ip_lo == 0xC0000200
        assert assets["AS64500"].asn == 64500
        audit = s.scalars(select(AuditEntry)).all()
        assert {(a.action, a.entity) for a in audit} == {
            ("create", "organization"), ("create", "asset"), ("create", "contact")}
        assert len(audit) == 6 and all(a.actor == "test" for a in audit)


def test_reimport_updates_in_place_and_audits_before_after(engine: Engine) -> None:
    run_import(engine, doc(ACME))
    changed = copy.deepcopy(ACME)
    changed["name"] = "Acme Holding B.V."
    changed["assets"] = [{"type": "cidr", "value": "192.0.2.0/24"},
                         {"type": "domain", "value": "acme.com"}]
    changed["contacts"] = [{"email": "security@acme.nl", "role": "security", "priority": 5},
                           {"email": "noc@acme.nl", "role": "technical"}]

    summary = run_import(engine, doc(changed), actor="alice")

    assert (summary.orgs_created, summary.orgs_updated) == (0, 1)
    assert (summary.assets_added, summary.assets_removed) == (1, 3)
    assert (summary.contacts_added, summary.contacts_updated) == (1, 1)
    assert version(engine) == 2
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Organization)) == 1
        assert s.get(Organization, "acme").name == "Acme Holding B.V."  # type: ignore[union-attr]
        assert {a.value for a in s.scalars(select(Asset))} == {"192.0.2.0/24", "acme.com"}
        contact = s.scalars(select(Contact).where(Contact.email == "security@acme.nl")).one()
        assert (contact.priority, contact.language) == (5, None)
        upd = s.scalars(select(AuditEntry).where(
            AuditEntry.actor == "alice", AuditEntry.entity == "organization")).one()
        assert upd.action == "update" and upd.entity_id == "acme"
        assert upd.before["name"] == "Acme B.V." and upd.after["name"] == "Acme Holding B.V."
        deleted = s.scalars(select(AuditEntry).where(
            AuditEntry.actor == "alice", AuditEntry.action == "delete")).all()
        assert {d.entity_id for d in deleted} == {
            "acme:cidr:2001:db8::/32", "acme:asn:AS64500", "acme:domain:acme.nl"}
        assert all(d.after is None and d.before for d in deleted)


def test_identical_reimport_changes_nothing(engine: Engine) -> None:
    run_import(engine, doc(ACME))
    summary = run_import(engine, doc(ACME))
    assert summary.orgs_unchanged == 1 and not summary.changed and str(summary) != ""
    assert version(engine) == 1
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 6


def test_an_org_absent_from_the_file_is_left_untouched(engine: Engine) -> None:
    other = {"id": "beta", "name": "Beta", "assets": [{"type": "asn", "value": 1}]}
    run_import(engine, doc(ACME, other))
    run_import(engine, doc({**ACME, "name": "Acme 2"}))
    with Session(engine) as s:
        beta = s.get(Organization, "beta")
        assert beta is not None and [a.value for a in beta.assets] == ["AS1"]


def test_a_listed_self_registered_claim_becomes_verified_and_unlisted_claims_stay(
    engine: Engine,
) -> None:
    run_import(engine, doc(ACME))
    with Session(engine) as s, s.begin():
        s.add_all([Asset(org_id="acme", type="domain", value="acme.org", source="portal"),
                   Asset(org_id="acme", type="domain", value="acme.eu", source="portal")])
    listed = {**ACME, "assets": [*ACME["assets"], {"type": "domain", "value": "acme.org"}]}
    summary = run_import(engine, doc(listed))
    assert summary.assets_updated == 1
    with Session(engine) as s:
        assets = {a.value: a for a in s.scalars(select(Asset))}
        assert assets["acme.org"].verified and assets["acme.org"].verified_by == "operator-import"
        assert not assets["acme.eu"].verified and assets["acme.eu"].source == "portal"


def test_a_failure_inside_the_transaction_imports_nothing(engine: Engine) -> None:
    run_import(engine, doc(ACME))
    new = {"id": "new", "name": "New"}
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        import_registry(session, parse_document(doc(new, {**ACME, "contacts": []})), "t")
        raise RuntimeError("simulated failure after the import, inside the transaction")
    with Session(engine) as s:
        assert s.get(Organization, "new") is None
        assert s.scalar(select(func.count()).select_from(Contact)) == 1
    assert version(engine) == 1
