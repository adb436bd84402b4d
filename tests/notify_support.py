"""A real SMTP server on loopback (aiosmtpd) and builders for notify tests.

Imported by the notify, deliver and feedback tests (`from notify_support import ...`;
`tests/` is on pytest's `pythonpath`): the
server records every accepted message with its envelope, and can be told to refuse or defer
chosen recipients, so tests assert on what a mail server really received.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pyarrow as pa
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, insert

from cwn.archive.events import EventArchive
from cwn.config import Settings
from cwn.db.models import Contact, Organization, Report
from cwn.db.models_notify import NOTIFY_TABLES
from cwn.events.batch import conform
from cwn.events.fingerprint import fingerprints


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Recorder:
    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 …"
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        answer = self.refuse.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@dataclass
class SmtpServer:
    host: str
    port: int
    recorder: Recorder

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages


def start_controller(handler: object, **kwargs: Any) -> tuple[Controller, int]:
    """Start aiosmtpd on a free loopback port. A port found free can be taken by a
    parallel test before we bind it, so a failed start is retried on a new port."""
    for attempt in range(20):
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        try:
            controller.start()
            return controller, port
        except (OSError, RuntimeError):
            if attempt == 19:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def mail_server() -> Iterator[SmtpServer]:
    """aiosmtpd on loopback that records every message it accepts."""
    recorder = Recorder()
    controller, port = start_controller(recorder)
    try:
        yield SmtpServer("127.0.0.1", port, recorder)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with mail_server() as server:
        yield server


def create_notify_tables(engine: Engine) -> None:
    """Until the lead's migration has them: create only this feature's tables."""
    from cwn.db.base import Base

    Base.metadata.create_all(engine, tables=NOTIFY_TABLES, checkfirst=True)


# -- registry and events without the attribution index ------------------------------------


def add_org(engine: Engine, org_id: str, *, name: str | None = None, language: str = "nl",
            contacts: Sequence[dict[str, Any]] = ()) -> list[int]:
    with engine.begin() as conn:
        conn.execute(insert(Organization).values(id=org_id, name=name or f"{org_id} B.V.",
                                                 language=language))
        ids = []
        for c in contacts:
            res = conn.execute(insert(Contact).values(org_id=org_id, **c)
                               .returning(Contact.id))
            ids.append(int(res.scalar_one()))
    return ids


_counter = iter(range(10**9))


def add_report(engine: Engine, archive: EventArchive, events: Sequence[dict[str, Any]], *,
               report_type: str = "scan_smb", date: str = "2026-01-10",
               feed: str = "shadowserver", parsed_at: datetime | None = None) -> str:
    """Store events as the ingest pipeline would: the Parquet archive plus the report row.

    Each event is a dict of catalogue fields plus `organization`; defaults make it a
    vulnerable SMB finding on the given `source.ip`.
    """
    n = next(_counter)
    sha = f"{n:064x}"
    rows = []
    for i, ev in enumerate(events):
        row = {
            "time.source": datetime.fromisoformat(f"{date}T08:00:00+00:00"),
            "time.observation": datetime.fromisoformat(f"{date}T09:00:00+00:00"),
            "classification.taxonomy": "vulnerable",
            "classification.type": "vulnerable-system",
            "classification.identifier": "smb",
            "protocol.transport": "tcp",
            "source.port": 445,
            "severity": "medium",
            "tlp": "AMBER",
            "feed.name": feed,
            "report_type": report_type,
            "_report": sha,
            "_row": i + 1,
            **ev,
        }
        rows.append(row)
    table = conform(pa.Table.from_pylist(rows))
    table = table.set_column(table.schema.get_field_index("fingerprint"), "fingerprint",
                             fingerprints(table))
    archive.write(table, date=date, feed=feed, sha256=sha)
    with engine.begin() as conn:
        conn.execute(insert(Report).values(
            sha256=sha, file_name=f"{date}-{report_type}.csv", feed_name=feed,
            parser="shadowserver", report_type=report_type, report_date=date, size=1,
            rows=len(rows), events=len(rows), attributed=len(rows), parser_version="1",
            received_at=parsed_at or datetime.now(UTC),
            parsed_at=parsed_at or datetime.now(UTC)))
    return sha


class Clock:
    """A settable clock for the notifier (reminders, digests, back-off)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings_with_smtp(settings: Settings, url: str | None) -> Settings:
    return settings.model_copy(update={"smtp_url": url})
