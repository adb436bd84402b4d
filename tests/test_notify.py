"""The notify state machine end to end, against a real SMTP server on loopback.

Every test runs on SQLite and on PostgreSQL (the `engine` fixture) and asserts on what the
mail server received: headers, language, the events listed and the CSV attachment.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cwn.archive.events import EventArchive
from cwn.config import Settings
from cwn.db.models import Contact, Organization
from cwn.db.models_notify import Case, CaseDecision, Notification, NotifyPolicy, Preference
from cwn.notify import Notifier, NotifyConfig
from cwn.render.formats.csv import read_csv_events
from notify_support import (  # noqa: F401  (smtp_server is a fixture)
    Clock,
    SmtpServer,
    add_org,
    add_report,
    create_notify_tables,
    smtp_server,
)

T0 = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)


class Env:
    def __init__(self, engine: Engine, settings: Settings, server: SmtpServer) -> None:
        self.engine = engine
        self.settings = settings.model_copy(update={"smtp_url": server.url})
        self.server = server
        self.archive = EventArchive(settings.events_dir)
        self.clock = Clock(T0)
        self.notifier = Notifier(engine, self.archive, self.settings, clock=self.clock,
                                 config=NotifyConfig(mail_domain="cert.test", workers=1))

    def report(self, events: list[dict[str, object]], **kw: object) -> str:
        return add_report(self.engine, self.archive, events, **kw)  # type: ignore[arg-type]

    def decisions(self, case_id: str) -> list[tuple[str, str | None, str | None]]:
        with self.engine.connect() as conn:
            return [(r.action, r.reason, r.recipient) for r in conn.execute(
                select(CaseDecision).where(CaseDecision.case_id == case_id)
                .order_by(CaseDecision.id))]


@pytest.fixture
def env(engine: Engine, settings: Settings, smtp_server: SmtpServer) -> Iterator[Env]:  # noqa: F811
    create_notify_tables(engine)
    yield Env(engine, settings, smtp_server)


def lang_of(msg: EmailMessage) -> str:
    """The language a recipient reads (Content-Language, else the salutation)."""
    if msg["Content-Language"]:
        return str(msg["Content-Language"])
    body = msg.get_body(("plain",))
    assert body is not None
    text_ = body.get_content()
    return "nl" if "Geachte" in text_ else "en" if "Dear" in text_ else "?"


def _case_row(env: Env, org: str, ip: str) -> dict[str, object]:
    """The case of `org`'s finding on `ip` (events are in the Parquet archive)."""
    fps = {fp for t in env.archive.scan('"organization" = ? AND "source.ip" = ?', [org, ip])
           for fp in t.column("fingerprint").to_pylist()}
    assert len(fps) == 1
    with env.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM cases WHERE org_id = :o AND fingerprint = :f"),
                           {"o": org, "f": fps.pop()}).mappings().first()
    assert row is not None
    return dict(row)


def test_new_cases_are_mailed_once_in_the_recipients_language_with_their_events(
        env: Env) -> None:
    add_org(env.engine, "acme", language="nl",
            contacts=[{"email": "cert@acme.nl", "priority": 10}])
    add_org(env.engine, "globex", language="en",
            contacts=[{"email": "soc@globex.com", "priority": 10, "language": "en"}])
    env.report([{"source.ip": "192.0.2.1", "organization": "acme"},
                {"source.ip": "192.0.2.2", "organization": "acme"},
                {"source.ip": "198.51.100.7", "organization": "globex",
                 "severity": "high"}])

    report = env.notifier.run()

    assert report.cases is not None and report.cases.opened == 3
    assert report.delivery is not None and report.delivery.sent == 2
    assert len(env.server.messages) == 2
    acme = env.server.recorder.to("cert@acme.nl")
    assert len(acme) == 1
    msg = acme[0].message
    assert msg["Auto-Submitted"] == "auto-generated"
    assert lang_of(msg) == "nl"
    nid = str(msg["X-CWN-Notification-ID"])
    assert acme[0].mail_from == f"bounces+{nid}@cert.test"
    assert msg["Message-ID"] == f"<{nid}@cert.test>"
    case_ids = [c.strip() for c in str(msg["X-CWN-Case-IDs"]).split(",")]
    assert len(case_ids) == 2 and all(re.fullmatch(r"CWN-2026-\d{6}", c) for c in case_ids)
    assert case_ids[0] in str(msg["Subject"])
    csv_parts = [p for p in msg.iter_attachments() if p.get_content_type() == "text/csv"]
    assert len(csv_parts) == 1
    events = read_csv_events(csv_parts[0].get_payload(decode=True))
    assert sorted(events.column("source.ip").to_pylist()) == ["192.0.2.1", "192.0.2.2"]
    body = msg.get_body(("plain",))
    assert body is not None and "192.0.2.1" in body.get_content()

    globex = env.server.recorder.to("soc@globex.com")[0].message
    assert lang_of(globex) == "en"
    g_events = read_csv_events(next(iter(globex.iter_attachments()))
                               .get_payload(decode=True))
    assert g_events.column("source.ip").to_pylist() == ["198.51.100.7"]

    # A second run over nothing new sends nothing.
    again = env.notifier.run()
    assert again.delivery is not None and again.delivery.sent == 0
    assert len(env.server.messages) == 2


def test_seen_again_is_quiet_until_the_reminder_interval_and_says_why(env: Env) -> None:
    add_org(env.engine, "acme", contacts=[{"email": "cert@acme.nl"}])
    add_org(env.engine, "fast", contacts=[{"email": "cert@fast.nl"}])
    with env.engine.begin() as conn:  # "fast" wants reminders for scan_smb after one day
        conn.execute(insert(NotifyPolicy).values(org_id="fast", report_type="scan_smb",
                                                 reminder_days=1))
    ev = [{"source.ip": "192.0.2.1", "organization": "acme"},
          {"source.ip": "192.0.2.9", "organization": "fast"}]
    env.report(ev, date="2026-01-10")
    env.notifier.run()
    assert len(env.server.messages) == 2

    env.clock.now = T0 + timedelta(days=1, hours=1)
    env.report(ev, date="2026-01-11")
    env.notifier.run()
    assert len(env.server.recorder.to("cert@acme.nl")) == 1  # medium: 30 days
    assert len(env.server.recorder.to("cert@fast.nl")) == 2  # policy: 1 day
    acme_case = _case_row(env, "acme", "192.0.2.1")
    assert ("suppressed", "repeat_window", None) in env.decisions(str(acme_case["id"]))

    env.clock.now = T0 + timedelta(days=31)
    env.report(ev, date="2026-02-10")
    env.notifier.run()
    reminders = env.server.recorder.to("cert@acme.nl")
    assert len(reminders) == 2
    assert str(acme_case["id"]) in str(reminders[1].message["Subject"])
    assert _case_row(env, "acme", "192.0.2.1")["notify_count"] == 2


def test_a_finding_missing_from_a_later_report_is_resolved_and_reopens(env: Env) -> None:
    add_org(env.engine, "acme", contacts=[{"email": "cert@acme.nl"}])
    a = {"source.ip": "192.0.2.1", "organization": "acme"}
    b = {"source.ip": "192.0.2.2", "organization": "acme"}
    env.report([a, b], date="2026-01-10")
    env.notifier.run()
    env.clock.now = T0 + timedelta(days=1)
    env.report([a], date="2026-01-11")
    # Another report type does not resolve scan_smb cases.
    env.report([{"source.ip": "192.0.2.3", "organization": "acme",
                 "classification.identifier": "rdp"}], report_type="scan_rdp",
               date="2026-01-12")
    report = env.notifier.run()
    assert report.resolved == 1
    case_b = _case_row(env, "acme", "192.0.2.2")
    assert case_b["state"] == "resolved" and case_b["resolved_at"] is not None
    assert _case_row(env, "acme", "192.0.2.1")["state"] == "open"
    assert ("resolved", "absent_from_later_report", None) in env.decisions(str(case_b["id"]))

    env.clock.now = T0 + timedelta(days=3)
    env.report([a, b], date="2026-01-13")
    before = len(env.server.messages)
    report = env.notifier.run()
    case_b = _case_row(env, "acme", "192.0.2.2")
    assert case_b["state"] == "open" and case_b["reopened_count"] == 1
    assert report.cases is not None and report.cases.reopened == 1
    new = env.server.messages[before:]
    assert len(new) == 1 and str(case_b["id"]) in str(new[0].message["X-CWN-Case-IDs"])
    assert "reopened" in [d[0] for d in env.decisions(str(case_b["id"]))]


def test_every_case_not_told_has_its_reason(env: Env) -> None:
    add_org(env.engine, "nobody")
    add_org(env.engine, "optout", contacts=[{"email": "a@optout.nl"}])
    add_org(env.engine, "paused", contacts=[{"email": "a@paused.nl"}])
    add_org(env.engine, "picky", contacts=[{"email": "a@picky.nl"}])
    [sub] = add_org(env.engine, "subs", contacts=[{"email": "a@subs.nl"}])
    with env.engine.begin() as conn:
        for values in ({"org_id": "optout", "opted_out": True},
                       {"org_id": "paused", "paused_until": T0 + timedelta(days=5)},
                       {"org_id": "picky", "min_severity": "high"},
                       {"org_id": "subs", "contact_id": sub, "taxonomies": ["malicious-code"]}):
            conn.execute(insert(Preference).values(**values))
    env.report([{"source.ip": f"192.0.2.{i}", "organization": org}
                for i, org in enumerate(["nobody", "optout", "paused", "picky", "subs"], 1)])
    report = env.notifier.run()
    assert env.server.messages == []
    assert report.reasons() == {"no_contact": 1, "opted_out": 1, "paused": 1,
                                "below_threshold": 1, "not_subscribed": 1}
    for i, (org, reason) in enumerate([("nobody", "no_contact"), ("optout", "opted_out"),
                                       ("paused", "paused"), ("picky", "below_threshold"),
                                       ("subs", "not_subscribed")], 1):
        case = _case_row(env, org, f"192.0.2.{i}")
        assert ("suppressed", reason) in [d[:2] for d in env.decisions(str(case["id"]))]
        assert case["last_notified_at"] is None

    # Once a contact exists, the never-told case is told the next time it is seen.
    with env.engine.begin() as conn:
        conn.execute(insert(Contact).values(org_id="nobody", email="new@nobody.nl"))
    env.clock.now = T0 + timedelta(days=1)
    env.report([{"source.ip": "192.0.2.1", "organization": "nobody"}], date="2026-01-11")
    env.notifier.run()
    assert len(env.server.recorder.to("new@nobody.nl")) == 1


def test_digest_recipients_get_one_message_per_day(env: Env) -> None:
    [cid] = add_org(env.engine, "acme", contacts=[{"email": "cert@acme.nl"}])
    with env.engine.begin() as conn:
        conn.execute(insert(Preference).values(org_id="acme", contact_id=cid, mode="digest",
                                               language="en"))
    env.report([{"source.ip": "192.0.2.1", "organization": "acme"}], date="2026-01-10")
    env.notifier.run()
    env.clock.now = T0 + timedelta(hours=3)
    env.report([{"source.ip": "192.0.2.2", "organization": "acme"}],
               report_type="scan_rdp", date="2026-01-10")
    env.notifier.run()
    assert env.server.messages == []
    env.clock.now = datetime(2026, 1, 11, 6, 5, tzinfo=UTC)
    env.notifier.run()
    assert len(env.server.messages) == 1
    msg = env.server.messages[0].message
    assert lang_of(msg) == "en"
    assert len(str(msg["X-CWN-Case-IDs"]).split(",")) == 2
    att = read_csv_events(next(iter(msg.iter_attachments())).get_payload(decode=True))
    assert sorted(att.column("source.ip").to_pylist()) == ["192.0.2.1", "192.0.2.2"]
    env.notifier.run()
    assert len(env.server.messages) == 1


def test_dry_run_changes_nothing(env: Env) -> None:
    add_org(env.engine, "acme", contacts=[{"email": "cert@acme.nl"}])
    add_org(env.engine, "nobody")
    env.report([{"source.ip": "192.0.2.1", "organization": "acme"},
                {"source.ip": "192.0.2.2", "organization": "nobody"}])
    dry = env.notifier.run(dry_run=True)
    assert [p.recipient for p in dry.planned] == ["cert@acme.nl"]
    assert [s.reason for s in dry.suppressed] == ["no_contact"]
    assert env.server.messages == []
    with env.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM cases")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM notifications")).scalar() == 0
    env.notifier.run()
    assert len(env.server.messages) == 1


def test_a_refused_recipient_falls_through_to_the_next_contact(env: Env) -> None:
    add_org(env.engine, "acme", contacts=[{"email": "gone@acme.nl", "priority": 10},
                                          {"email": "backup@acme.nl", "priority": 20}])
    env.server.recorder.refuse["gone@acme.nl"] = "550 5.1.1 no such user"
    env.report([{"source.ip": "192.0.2.1", "organization": "acme"}])
    report = env.notifier.run()
    assert report.delivery is not None and report.delivery.bounced == 1
    assert [m.rcpt_tos for m in env.server.messages] == [["backup@acme.nl"]]
    with env.engine.connect() as conn:
        enabled = dict(conn.execute(select(Contact.email, Contact.enabled)).all())
        states = sorted(conn.execute(select(Notification.state)).scalars())
    assert enabled == {"gone@acme.nl": False, "backup@acme.nl": True}
    assert states == ["bounced", "sent"]


def test_temporary_failures_back_off_then_give_up(env: Env) -> None:
    add_org(env.engine, "acme", contacts=[{"email": "slow@acme.nl"}])
    env.server.recorder.refuse["slow@acme.nl"] = "451 4.3.0 try again later"
    env.report([{"source.ip": "192.0.2.1", "organization": "acme"}])
    report = env.notifier.run()
    assert report.delivery is not None and report.delivery.deferred == 1
    with env.engine.connect() as conn:
        d = conn.execute(text("SELECT state, attempts, next_attempt_at FROM deliveries")).one()
    assert d[0] == "deferred" and d[1] == 1
    # Not due yet: nothing is tried.
    env.clock.now = T0 + timedelta(minutes=1)
    assert env.notifier.run().delivery.deferred == 0  # type: ignore[union-attr]
    env.clock.now = T0 + timedelta(minutes=6)
    assert env.notifier.run().delivery.deferred == 1  # type: ignore[union-attr]
    env.clock.now = T0 + timedelta(days=4)
    assert env.notifier.run().delivery.failed == 1  # type: ignore[union-attr]
    with env.engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM deliveries")).scalar() == "failed"
        assert conn.execute(text("SELECT state FROM notifications")).scalar() == "failed"
    # Then the server recovers: the same message, byte for byte, is never retried again.
    env.server.recorder.refuse.clear()
    assert env.notifier.run().delivery.sent == 0  # type: ignore[union-attr]


def test_case_ids_are_unique_and_sequential_per_year(env: Env) -> None:
    add_org(env.engine, "acme")
    env.report([{"source.ip": f"192.0.2.{i}", "organization": "acme"} for i in range(1, 6)])
    env.notifier.run()
    env.report([{"source.ip": f"192.0.2.{i}", "organization": "acme"} for i in range(1, 9)],
               date="2026-01-11")
    env.notifier.run()
    with env.engine.connect() as conn:
        ids = sorted(conn.execute(select(Case.id)).scalars())
    assert ids == [f"CWN-2026-{i:06d}" for i in range(1, 9)]


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(env: Env, tmp_path: Path, db_url: str) -> tuple[CliRunner, typer.Typer]:
    from cwn.cli import notify as cmd

    app = typer.Typer()
    app.command("notify")(cmd.notify)
    app.command("run")(cmd.run)
    app.add_typer(cmd.cases_app, name="cases")
    app.add_typer(cmd.notifications_app, name="notifications")
    app.add_typer(cmd.bounces_app, name="bounces")
    runner = CliRunner(env={"CWN_HOME": str(env.settings.home), "CWN_DATABASE_URL": db_url,
                            "CWN_SMTP_URL": env.server.url, "CWN_MAIL_DOMAIN": "cert.test",
                            "COLUMNS": "200"})
    return runner, app


def test_cli_notify_dry_run_then_notify_then_look_at_cases_and_notifications(
        env: Env, cli: tuple[CliRunner, typer.Typer]) -> None:
    runner, app = cli
    add_org(env.engine, "acme", contacts=[{"email": "cert@acme.nl"}])
    add_org(env.engine, "nobody")
    env.report([{"source.ip": "192.0.2.1", "organization": "acme"},
                {"source.ip": "192.0.2.2", "organization": "nobody"}])

    res = runner.invoke(app, ["notify", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "Would send" in res.output and "cert@acme.nl" in res.output
    assert "no_contact" in res.output
    assert env.server.messages == []

    res = runner.invoke(app, ["notify"])
    assert res.exit_code == 0, res.output
    assert len(env.server.messages) == 1
    case_id = str(env.server.messages[0].message["X-CWN-Case-IDs"])
    nid = str(env.server.messages[0].message["X-CWN-Notification-ID"])

    res = runner.invoke(app, ["cases", "list", "--org", "acme", "--state", "open"])
    assert res.exit_code == 0 and case_id in res.output
    res = runner.invoke(app, ["cases", "show", case_id])
    assert res.exit_code == 0, res.output
    for word in ("192.0.2.1", "opened", "notified", "cert@acme.nl", "sent"):
        assert word in res.output
    other = _case_row(env, "nobody", "192.0.2.2")["id"]
    res = runner.invoke(app, ["cases", "show", str(other)])
    assert "no_contact" in res.output

    res = runner.invoke(app, ["notifications", "list"])
    assert res.exit_code == 0 and nid in res.output
    res = runner.invoke(app, ["notifications", "show", nid])
    assert res.exit_code == 0 and case_id in res.output and f"bounces+{nid}" in res.output

    for args in (["cases", "show", "CWN-1999-000001"], ["notifications", "show", "nope"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2
        assert "unknown" in res.output and len(res.output.strip().splitlines()) == 1


def test_cli_run_ingests_a_shadowserver_report_and_mails_the_owner(
        env: Env, cli: tuple[CliRunner, typer.Typer], tmp_path: Path, shared_data: Path) -> None:
    from cwn.registry.format import RegistryDocument
    from cwn.registry.importer import import_registry

    runner, app = cli
    doc = {"organizations": [{
        "id": "acme", "name": "Acme B.V.", "language": "nl",
        "assets": [{"type": "cidr", "value": "192.168.0.0/24"}],
        "contacts": [{"email": "security@acme.nl", "role": "security", "language": "nl"}]}]}
    with Session(env.engine) as session, session.begin():
        import_registry(session, RegistryDocument.model_validate(doc), actor="test")
    feed = tmp_path / "2019-01-01-scan_smb-test-geo.csv"
    shutil.copy(shared_data / "shadowserver" / "csv" / "scan_smb.csv", feed)

    res = runner.invoke(app, ["run", str(feed)])

    assert res.exit_code == 0, res.output
    [got] = env.server.messages
    assert got.rcpt_tos == ["security@acme.nl"]
    msg = got.message
    att = read_csv_events(next(iter(msg.iter_attachments())).get_payload(decode=True))
    assert sorted(att.column("source.ip").to_pylist()) == [
        "192.168.0.1", "192.168.0.2", "192.168.0.3"]
    # Ingesting the same file again is a duplicate: nothing new is sent.
    res = runner.invoke(app, ["run", str(feed)])
    assert res.exit_code == 0, res.output
    assert len(env.server.messages) == 1


def test_many_notifications_render_on_a_process_pool_with_the_same_result(env: Env) -> None:
    n = 240
    with env.engine.begin() as conn:
        conn.execute(insert(Organization), [{"id": f"o{i:03d}", "name": f"Org {i}",
                                             "language": "nl"} for i in range(n)])
        conn.execute(insert(Contact), [{"org_id": f"o{i:03d}", "email": f"c@o{i:03d}.nl"}
                                       for i in range(n)])
    env.report([{"source.ip": f"10.0.{i // 200}.{i % 200 + 1}", "organization": f"o{i:03d}"}
                for i in range(n)])
    notifier = Notifier(env.engine, env.archive, env.settings, clock=env.clock,
                        config=NotifyConfig(mail_domain="cert.test", workers=2,
                                            render_workers=2))
    report = notifier.run()
    assert report.queued == n and report.delivery is not None and report.delivery.sent == n
    assert len(env.server.messages) == n
    for m in env.server.messages[:: n // 8]:
        [rcpt] = m.rcpt_tos
        i = int(rcpt[3:6])
        att = read_csv_events(next(iter(m.message.iter_attachments())).get_payload(decode=True))
        assert att.column("source.ip").to_pylist() == [f"10.0.{i // 200}.{i % 200 + 1}"]
