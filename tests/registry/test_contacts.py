"""An organisation's contacts: validated changes that are audited and scoped to the
organisation, confirmation by an admin or by the contact's own link, and reminders mailed
(through a real SMTP server) to contacts nobody confirmed for a while."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cwn.access.errors import AccessError
from cwn.cli.contacts import app as contacts_app
from cwn.config import Settings
from cwn.db.models import AuditEntry, Contact, Organization
from cwn.db.models_notify import Preference
from cwn.db.models_web import ContactConfirmation
from cwn.registry import contacts
from cwn.registry.preferences import set_preferences
from notify_support import (  # noqa: F401  (smtp_server is a fixture)
    Received,
    SmtpServer,
    smtp_server,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LINK = re.compile(r"https://portal\.cwn\.example/contacts/confirm/([A-Za-z0-9_-]{40,})")


def _orgs(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        s.add(Organization(id="org-a", name="Alpha B.V.", language="nl"))
        s.add(Organization(id="org-b", name="Beta Ltd", language="en"))


def _imported(engine: Engine, org_id: str, email: str, created: datetime,
              **kw: Any) -> int:
    """A contact as the operator's registry import leaves it: no confirmation row."""
    with Session(engine) as s, s.begin():
        c = Contact(org_id=org_id, email=email, created_at=created, **kw)
        s.add(c)
        s.flush()
        return c.id


def _body(mail: Received) -> str:
    part = mail.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _link(mail: Received) -> str:
    found = LINK.search(_body(mail))
    assert found is not None
    return found.group(1)


def _audit(engine: Engine, entity: str = "contact") -> list[AuditEntry]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.entity == entity)
                              .order_by(AuditEntry.id)))


@pytest.fixture
def orgs(engine: Engine) -> Engine:
    _orgs(engine)
    return engine


@pytest.fixture
def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:  # noqa: F811
    return settings.model_copy(update={"smtp_url": smtp_server.url,
                                       "public_url": "https://portal.cwn.example/"})


# -- changes ----------------------------------------------------------------------------------


def test_an_added_contact_is_normalised_confirmed_by_its_adder_and_audited(orgs: Engine) -> None:
    with Session(orgs) as s, s.begin():
        c = contacts.add(s, "org-a", email=" SOC@Alpha.NL ", role="Abuse",
                         roles=["security", "abuse", "technical"], language="en", priority=5,
                         actor="user:admin@alpha.nl")
    assert (c.email, c.role, c.roles, c.language, c.priority) == (
        "SOC@alpha.nl", "abuse", ["security", "technical"], "en", 5)
    assert c.confirmed_by == "user:admin@alpha.nl" and c.confirmed_at is not None
    [entry] = _audit(orgs)
    assert (entry.action, entry.entity_id, entry.actor) == (
        "create", "org-a:SOC@alpha.nl", "user:admin@alpha.nl")
    assert entry.after is not None and entry.after["roles"] == ["security", "technical"]


BAD_CONTACT_VALUES: list[tuple[str, Any, str]] = [
    ("email", "not-an-address", "bad_email"),
    ("email", "a@b", "bad_email"),
    ("role", "ceo", "bad_role"),
    ("roles", ["security", "boss"], "bad_role"),
    ("language", "de", "bad_language"),
    ("priority", -1, "bad_priority"),
    ("priority", "soon", "bad_priority"),
    ("enabled", "yes", "bad_enabled"),
]


def test_bad_values_are_refused_with_422_and_nothing_is_stored(orgs: Engine) -> None:
    for field, value, key in BAD_CONTACT_VALUES:
        args: dict[str, Any] = {"email": "soc@alpha.nl", field: value}
        with Session(orgs) as s, s.begin(), pytest.raises(AccessError) as err:
            contacts.add(s, "org-a", actor="t", **args)
        assert (err.value.status, err.value.key) == (422, key), (field, value)
    with Session(orgs) as s:
        assert s.scalars(select(Contact)).all() == []


def test_an_address_is_a_contact_of_an_organisation_only_once(orgs: Engine) -> None:
    with Session(orgs) as s, s.begin():
        contacts.add(s, "org-a", email="soc@alpha.nl", actor="t")
        contacts.add(s, "org-b", email="soc@alpha.nl", actor="t")  # another org may
        with pytest.raises(AccessError) as err:
            contacts.add(s, "org-a", email="SOC@ALPHA.nl", actor="t")
    assert err.value.status == 409


def test_update_changes_only_given_fields_and_a_new_address_voids_the_pending_link(
        orgs: Engine, mail_settings: Settings, smtp_server: SmtpServer) -> None:  # noqa: F811
    cid = _imported(orgs, "org-a", "old@alpha.nl", NOW - timedelta(days=200), priority=10)
    with Session(orgs) as s, s.begin():
        assert contacts.send_reminders(mail_settings, s, NOW) == 1
    raw = _link(smtp_server.messages[0])
    with Session(orgs) as s, s.begin():
        c = contacts.update(s, "org-a", cid, email="new@alpha.nl", roles="privacy technical",
                            actor="user:admin@alpha.nl")
    assert (c.email, c.roles, c.priority, c.role) == (
        "new@alpha.nl", ["privacy", "technical"], 10, "security")
    assert c.confirmed_by == "user:admin@alpha.nl"
    with Session(orgs) as s, pytest.raises(AccessError) as err:
        contacts.by_token(s, raw)
    assert err.value.status == 404
    [entry] = [e for e in _audit(orgs) if e.action == "update"]
    assert entry.before is not None and entry.after is not None
    assert (entry.before["email"], entry.after["email"]) == ("old@alpha.nl", "new@alpha.nl")


def test_an_update_that_changes_nothing_is_not_audited(orgs: Engine) -> None:
    with Session(orgs) as s, s.begin():
        c = contacts.add(s, "org-a", email="soc@alpha.nl", priority=3, actor="t")
        contacts.update(s, "org-a", c.id, priority=3, role="security", actor="t")
    assert [e.action for e in _audit(orgs)] == ["create"]


def test_another_organisations_contact_is_not_found(orgs: Engine) -> None:
    with Session(orgs) as s, s.begin():
        c = contacts.add(s, "org-a", email="soc@alpha.nl", actor="t")
    calls = [lambda s: contacts.update(s, "org-b", c.id, priority=1, actor="t"),
             lambda s: contacts.remove(s, "org-b", c.id, actor="t"),
             lambda s: contacts.confirm(s, "org-b", c.id, actor="t"),
             lambda s: contacts.info(s, "org-b", c.id),
             lambda s: contacts.info(s, "org-a", 999_999)]
    for call in calls:
        with Session(orgs) as s, s.begin(), pytest.raises(AccessError) as err:
            call(s)
        assert err.value.status == 404
    with Session(orgs) as s:
        assert [x.email for x in contacts.list_contacts(s, "org-b")] == []
        assert [x.priority for x in contacts.list_contacts(s, "org-a")] == [100]


def test_removing_a_contact_removes_its_preferences_too_and_audits_both(orgs: Engine) -> None:
    with Session(orgs) as s, s.begin():
        keep = contacts.add(s, "org-a", email="keep@alpha.nl", actor="t")
        c = contacts.add(s, "org-a", email="soc@alpha.nl", actor="t")
        set_preferences(s, "org-a", c.id, mode="digest", actor="t")
        set_preferences(s, "org-a", None, min_severity="high", actor="t")
    with Session(orgs) as s, s.begin():
        contacts.remove(s, "org-a", c.id, actor="user:admin@alpha.nl")
    with Session(orgs) as s:
        assert [x.id for x in contacts.list_contacts(s, "org-a")] == [keep.id]
        prefs = s.scalars(select(Preference)).all()
        assert [(p.contact_id, p.min_severity) for p in prefs] == [(None, "high")]
        assert s.get(ContactConfirmation, c.id) is None
    deleted = [(e.entity, e.entity_id) for e in _audit(orgs) + _audit(orgs, "preference")
               if e.action == "delete"]
    assert sorted(deleted) == [("contact", "org-a:soc@alpha.nl"),
                               ("preference", "org-a:soc@alpha.nl")]


# -- confirmation and reminders ---------------------------------------------------------------


def test_due_counts_from_the_import_date_when_never_confirmed(orgs: Engine) -> None:
    old = _imported(orgs, "org-a", "old@alpha.nl", NOW - timedelta(days=91))
    _imported(orgs, "org-a", "fresh@alpha.nl", NOW - timedelta(days=89))
    _imported(orgs, "org-b", "off@beta.example", NOW - timedelta(days=400), enabled=False)
    with Session(orgs) as s, s.begin():
        added = contacts.add(s, "org-b", email="soc@beta.example", actor="t")
        s.execute(update(ContactConfirmation).where(
            ContactConfirmation.contact_id == added.id).values(
                confirmed_at=NOW - timedelta(days=120)))
    with Session(orgs) as s:
        due = contacts.due_for_reminder(s, NOW, 90)
    assert [(d.contact_id, d.language) for d in due] == [(added.id, "en"), (old, "nl")]
    assert due[1].last_confirmed == NOW - timedelta(days=91)


def test_reminder_is_bilingual_and_its_link_confirms_once(
        orgs: Engine, mail_settings: Settings, smtp_server: SmtpServer) -> None:  # noqa: F811
    cid = _imported(orgs, "org-a", "soc@alpha.nl", NOW - timedelta(days=100), role="abuse")
    with Session(orgs) as s, s.begin():
        assert contacts.send_reminders(mail_settings, s, NOW) == 1
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["soc@alpha.nl"]
    msg = mail.message
    body = _body(mail)
    assert "Klopt dit contactadres nog?" in str(msg["Subject"])
    assert "Is this contact address still right?" in str(msg["Subject"])
    nl, en = body.index("Klopt dit adres nog?"), body.index("Is this address still right?")
    assert nl < en and "Alpha B.V." in body
    links = LINK.findall(body)
    assert len(links) == 2 and len(set(links)) == 1  # the same link in both languages
    raw = links[0]

    with Session(orgs) as s:  # opening the link (GET) changes nothing
        assert contacts.by_token(s, raw).email == "soc@alpha.nl"
        conf = s.get(ContactConfirmation, cid)
        assert conf is not None and conf.confirmed_at is None and conf.reminded_at == NOW
    with Session(orgs) as s, s.begin():
        c = contacts.confirm_by_token(s, raw, now=NOW + timedelta(hours=2))
    assert c.confirmed_at == NOW + timedelta(hours=2)
    assert c.confirmed_by == "contact:soc@alpha.nl"
    for attempt in (contacts.by_token, contacts.confirm_by_token):
        with Session(orgs) as s, pytest.raises(AccessError) as err:
            attempt(s, raw)
        assert err.value.status == 404
    [entry] = _audit(orgs)
    assert entry.after is not None and entry.after["event"] == "confirmed"
    assert entry.after["via"] == "link"
    with Session(orgs) as s:  # confirmed: not due again for another 90 days
        assert contacts.due_for_reminder(s, NOW + timedelta(days=89), 90) == []
        assert len(contacts.due_for_reminder(s, NOW + timedelta(days=91), 90)) == 1


def test_an_unconfirmed_contact_is_reminded_at_most_once_per_14_days(
        orgs: Engine, mail_settings: Settings, smtp_server: SmtpServer) -> None:  # noqa: F811
    _imported(orgs, "org-b", "soc@beta.example", NOW - timedelta(days=365))
    for day, expected in ((0, 1), (1, 0), (13, 0), (14, 1), (20, 0), (28, 1)):
        with Session(orgs) as s, s.begin():
            sent = contacts.send_reminders(mail_settings, s, NOW + timedelta(days=day))
        assert sent == expected, day
    assert len(smtp_server.messages) == 3
    first, second = (_link(m) for m in smtp_server.messages[:2])
    with Session(orgs) as s:  # a newer reminder replaces the older link
        with pytest.raises(AccessError):
            contacts.by_token(s, first)
        with pytest.raises(AccessError):
            contacts.by_token(s, second)


def test_dry_run_and_a_refusing_server_change_nothing(
        orgs: Engine, mail_settings: Settings, smtp_server: SmtpServer) -> None:  # noqa: F811
    cid = _imported(orgs, "org-a", "gone@alpha.nl", NOW - timedelta(days=100))
    _imported(orgs, "org-a", "soc@alpha.nl", NOW - timedelta(days=100))
    with Session(orgs) as s, s.begin():
        assert contacts.send_reminders(mail_settings, s, NOW, dry_run=True) == 2
    assert smtp_server.messages == []
    smtp_server.recorder.refuse["gone@alpha.nl"] = "550 5.1.1 no such user"
    with Session(orgs) as s, s.begin():
        assert contacts.send_reminders(mail_settings, s, NOW) == 1
    with Session(orgs) as s:
        assert s.get(ContactConfirmation, cid) is None  # tried again on the next run
        assert [d.email for d in contacts.due_for_reminder(s, NOW, 90)] == ["gone@alpha.nl"]


def test_an_admin_confirms_in_the_portal(orgs: Engine) -> None:
    cid = _imported(orgs, "org-a", "soc@alpha.nl", NOW - timedelta(days=100))
    with Session(orgs) as s, s.begin():
        c = contacts.confirm(s, "org-a", cid, actor="user:admin@alpha.nl", now=NOW)
    assert (c.confirmed_at, c.confirmed_by) == (NOW, "user:admin@alpha.nl")
    with Session(orgs) as s:
        assert contacts.due_for_reminder(s, NOW, 90) == []


# -- command line -----------------------------------------------------------------------------


def test_cli_lists_and_reminds(orgs: Engine, mail_settings: Settings,
                               smtp_server: SmtpServer) -> None:  # noqa: F811
    _imported(orgs, "org-a", "soc@alpha.nl", datetime(2020, 1, 1, tzinfo=UTC))
    runner = CliRunner(env={"CWN_HOME": str(mail_settings.home),
                            "CWN_DATABASE_URL": mail_settings.db_url,
                            "CWN_SMTP_URL": smtp_server.url, "COLUMNS": "200"})
    listed = runner.invoke(contacts_app, ["list", "org-a"])
    assert listed.exit_code == 0, listed.output
    assert "soc@alpha.nl" in listed.output and "2020-01-01" in listed.output
    missing = runner.invoke(contacts_app, ["list", "org-x"])
    assert missing.exit_code == 2 and "unknown organisation" in missing.output
    dry = runner.invoke(contacts_app, ["remind", "--dry-run"])
    assert dry.exit_code == 0 and "would remind: 1" in dry.output
    assert smtp_server.messages == []
    real = runner.invoke(contacts_app, ["remind"])
    assert real.exit_code == 0 and "reminded: 1" in real.output, real.output
    again = runner.invoke(contacts_app, ["remind"])
    assert "reminded: 0" in again.output
    assert [m.rcpt_tos for m in smtp_server.messages] == [["soc@alpha.nl"]]


def test_a_contact_added_in_the_portal_survives_a_registry_reimport(engine) -> None:  # type: ignore[no-untyped-def]
    """The operator's registry file owns its own contacts; what an organisation added
    itself is not removed when the file is imported again without it."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from cwn.db.models import Contact
    from cwn.registry import contacts
    from cwn.registry.format import parse_document
    from cwn.registry.importer import import_registry

    doc = parse_document({"organizations": [{
        "id": "bakery", "name": "Bakkerij",
        "contacts": [{"email": "imported@bakkerij.nl"}]}]})
    with Session(engine) as s:
        import_registry(s, doc, actor="op")
        contacts.add(s, "bakery", email="self@bakkerij.nl", actor="user:a@bakkerij.nl")
        s.commit()
        import_registry(s, parse_document({"organizations": [{
            "id": "bakery", "name": "Bakkerij", "contacts": []}]}), actor="op")
        s.commit()
        left = sorted(s.scalars(select(Contact.email).where(Contact.org_id == "bakery")))
    assert left == ["self@bakkerij.nl"]
