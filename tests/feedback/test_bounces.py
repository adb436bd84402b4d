"""Bounces: RFC 3464 reports found back by VERP or Message-ID, hard vs soft, fall-through."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from cwn.archive.events import EventArchive
from cwn.config import Settings
from cwn.db.models import Contact
from cwn.db.models_notify import Bounce, Notification
from cwn.feedback.bounces import ingest_bounces, parse_dsn
from cwn.notify import Notifier, NotifyConfig
from notify_support import (  # noqa: F401  (smtp_server is a fixture)
    Clock,
    SmtpServer,
    add_org,
    add_report,
    create_notify_tables,
    smtp_server,
)

T0 = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)


def dsn(to: str, recipient: str, status: str, *, message_id: str = "<x@y>",
        action: str | None = None) -> bytes:
    action = action or ("failed" if status.startswith("5") else "delayed")
    return (
        f"From: MAILER-DAEMON@mx.acme.nl\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\nMessage-ID: <dsn-" + status + recipient + ">\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.nl\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status} mailbox problem\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nSubject: [TLP:AMBER] CWN-2026-000001\r\n\r\n"
        "--B--\r\n").encode()


class Env:
    def __init__(self, engine: Engine, settings: Settings, server: SmtpServer) -> None:
        self.engine = engine
        self.server = server
        self.archive = EventArchive(settings.events_dir)
        self.notifier = Notifier(engine, self.archive,
                                 settings.model_copy(update={"smtp_url": server.url}),
                                 clock=Clock(T0),
                                 config=NotifyConfig(mail_domain="cert.test", workers=1))


@pytest.fixture
def env(engine: Engine, settings: Settings, smtp_server: SmtpServer  # noqa: F811
        ) -> Iterator[Env]:
    create_notify_tables(engine)
    e = Env(engine, settings, smtp_server)
    add_org(engine, "acme", contacts=[{"email": "cert@acme.nl", "priority": 10},
                                      {"email": "it@acme.nl", "priority": 20,
                                       "language": "en"}])
    add_report(engine, e.archive, [{"source.ip": "192.0.2.1", "organization": "acme"},
                                   {"source.ip": "192.0.2.2", "organization": "acme"}])
    e.notifier.run()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["cert@acme.nl"]]
    yield e


def _first(env: Env) -> tuple[str, str]:
    with env.engine.connect() as conn:
        n = conn.execute(select(Notification.id, Notification.message_id)).one()
    return n[0], n[1]


def _enabled(env: Env) -> dict[str, bool]:
    with env.engine.connect() as conn:
        return dict(conn.execute(select(Contact.email, Contact.enabled)).all())  # type: ignore[arg-type]


def test_parse_dsn_reads_recipient_status_and_original_message() -> None:
    d = parse_dsn(dsn("bounces+0b0e8d9e-1c1e-4a57-9b1a-3a2b8f0c9d11@cert.test", "a@b.nl",
                      "5.1.1", message_id="<abc@cert.test>"))
    assert d is not None
    assert d.notification_id == "0b0e8d9e-1c1e-4a57-9b1a-3a2b8f0c9d11"
    assert d.original_message_id == "<abc@cert.test>"
    [r] = d.recipients
    assert (r.address, r.status, r.kind) == ("a@b.nl", "5.1.1", "hard")
    assert parse_dsn(b"Subject: hello\r\n\r\nnot a bounce\r\n") is None


def test_hard_bounce_disables_the_address_and_falls_through_to_the_next_contact(
        env: Env, tmp_path: Path) -> None:
    nid, _mid = _first(env)
    path = tmp_path / "bounce.eml"
    path.write_bytes(dsn(f"bounces+{nid}@cert.test", "cert@acme.nl", "5.1.1"))

    [out] = ingest_bounces(env.notifier, [path])
    assert (out.kind, out.action, out.notification_id) == ("hard", "disabled+rerouted", nid)
    assert len(out.rerouted_to) == 1
    assert _enabled(env) == {"cert@acme.nl": False, "it@acme.nl": True}
    env.notifier.outbox().deliver()
    assert [m.rcpt_tos for m in env.server.messages] == [["cert@acme.nl"], ["it@acme.nl"]]
    first, second = (m.message for m in env.server.messages)
    assert first["X-CWN-Case-IDs"] == second["X-CWN-Case-IDs"]
    assert second["X-CWN-Notification-ID"] == out.rerouted_to[0]
    with env.engine.connect() as conn:
        states = dict(conn.execute(select(Notification.id, Notification.state)).all())
        reasons = conn.execute(text(
            "SELECT DISTINCT action, reason FROM case_decisions "
            "WHERE action IN ('undelivered', 'rerouted')")).all()
    assert states[nid] == "bounced" and states[out.rerouted_to[0]] == "sent"
    assert set(reasons) == {("undelivered", "bounced"), ("rerouted", None)}

    # The same report again changes nothing.
    [again] = ingest_bounces(env.notifier, [path])
    assert again.action == "duplicate"


def test_bounce_found_by_original_message_id_when_verp_is_lost(env: Env, tmp_path: Path
                                                               ) -> None:
    nid, mid = _first(env)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "b.eml").write_bytes(dsn("postmaster@cert.test", "cert@acme.nl", "5.2.1",
                                      message_id=mid))
    [out] = ingest_bounces(env.notifier, [inbox])
    assert out.notification_id == nid and out.action == "disabled+rerouted"


def test_soft_bounces_count_to_the_threshold_before_disabling(env: Env, tmp_path: Path
                                                              ) -> None:
    nid, _ = _first(env)
    box = mailbox.mbox(str(tmp_path / "bounces.mbox"))
    for i in range(3):
        box.add(dsn(f"bounces+{nid}@cert.test", "cert@acme.nl", f"4.2.{i}"))
    box.close()
    outs = ingest_bounces(env.notifier, [tmp_path / "bounces.mbox"])
    assert [o.action for o in outs] == ["counted", "counted", "disabled+rerouted"]
    assert all(o.kind == "soft" for o in outs)
    assert _enabled(env)["cert@acme.nl"] is False
    with env.engine.connect() as conn:
        assert conn.execute(select(Bounce.kind)).scalars().all() == ["soft"] * 3


def test_bounce_for_the_last_contact_leaves_the_reason_no_contact(env: Env, tmp_path: Path
                                                                  ) -> None:
    nid, _ = _first(env)
    (tmp_path / "1.eml").write_bytes(dsn(f"bounces+{nid}@cert.test", "cert@acme.nl", "5.1.1"))
    [out] = ingest_bounces(env.notifier, [tmp_path / "1.eml"])
    second = out.rerouted_to[0]
    (tmp_path / "2.eml").write_bytes(dsn(f"bounces+{second}@cert.test", "it@acme.nl", "5.1.1"))
    [out2] = ingest_bounces(env.notifier, [tmp_path / "2.eml"])
    assert out2.rerouted_to == []
    with env.engine.connect() as conn:
        reasons = conn.execute(text(
            "SELECT reason FROM case_decisions WHERE action = 'suppressed'")).scalars().all()
    assert reasons == ["no_contact", "no_contact"]
