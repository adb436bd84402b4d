"""Bounces: RFC 3464 delivery-status notifications back to the notification they are about.

The notification is found by the VERP return path (`bounces+<notification-id>@domain`, the
address the DSN is sent to) or, failing that, by the original Message-ID quoted in the DSN.
A hard bounce (5.x.x) disables the address and hands the notification's cases to the
organisation's next contact; soft bounces (4.x.x, "delayed") count up to a threshold first.
Each DSN is recorded once (by digest), so ingesting the same mailbox twice changes nothing.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select

from cwn.db.models_notify import Bounce, Notification

if TYPE_CHECKING:
    from cwn.notify import Notifier

_VERP = re.compile(r"bounces\+([0-9a-fA-F-]{36})@", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


@dataclass(slots=True)
class DsnRecipient:
    address: str
    action: str
    status: str | None
    diagnostic: str | None

    @property
    def kind(self) -> str | None:
        """hard, soft, or None for a success/relay report that is not a bounce."""
        if self.status:
            if self.status.startswith("5"):
                return "hard"
            if self.status.startswith("4"):
                return "soft"
            if self.status.startswith("2"):
                return None
        action = self.action.lower()
        if action == "failed":
            return "hard"
        if action == "delayed":
            return "soft"
        return None


@dataclass(slots=True)
class Dsn:
    source: str
    raw: bytes
    notification_id: str | None = None
    original_message_id: str | None = None
    recipients: list[DsnRecipient] = field(default_factory=list)


def _addr(value: str) -> str:
    # "rfc822; user@example.nl" → user@example.nl
    return value.split(";", 1)[-1].strip().strip("<>").strip()


def parse_dsn(raw: bytes, source: str = "") -> Dsn | None:
    """The recipients and statuses of a delivery-status report; None if it is not one."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    dsn = Dsn(source=source, raw=raw)
    for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "Return-Path"):
        for value in msg.get_all(name) or []:
            m = _VERP.search(str(value))
            if m:
                dsn.notification_id = m.group(1).lower()
                break
        if dsn.notification_id:
            break
    found_status = False
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            found_status = True
            blocks = part.get_payload()
            if not isinstance(blocks, list):
                blocks = [email.message_from_string(str(blocks))]
            for block in blocks[1:] if len(blocks) > 1 else blocks:
                if not isinstance(block, Message):
                    continue
                rcpt = block.get("Final-Recipient") or block.get("Original-Recipient")
                if not rcpt:
                    continue
                status = block.get("Status")
                m = _STATUS.search(str(status or ""))
                dsn.recipients.append(DsnRecipient(
                    address=_addr(str(rcpt)), action=str(block.get("Action", "")).strip(),
                    status=m.group(0) if m else None,
                    diagnostic=" ".join(str(block.get("Diagnostic-Code", "")).split()) or None))
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                mid = payload[0].get("Message-ID")
                verp = [payload[0].get("X-CWN-Notification-ID")]
            else:
                text = part.get_payload(decode=True) or b""
                inner = email.message_from_bytes(bytes(text) if not isinstance(text, bytes)
                                                 else text, policy=email.policy.compat32)
                mid = inner.get("Message-ID")
                verp = [inner.get("X-CWN-Notification-ID")]
            if mid and not dsn.original_message_id:
                m2 = _MSGID.search(str(mid))
                dsn.original_message_id = m2.group(0) if m2 else str(mid).strip()
            if not dsn.notification_id and verp[0]:
                dsn.notification_id = str(verp[0]).strip()
    if not found_status:
        return None
    return dsn


def read_messages(paths: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    """(source, raw message) from files, directories (recursive) and mbox files."""
    for path in paths:
        if path.is_dir():
            yield from read_messages(sorted(p for p in path.rglob("*") if p.is_file()
                                            and not p.name.startswith(".")))
            continue
        data = path.read_bytes()
        if path.suffix.lower() == ".mbox" or data.startswith(b"From "):
            box = mailbox.mbox(str(path), create=False)
            try:
                for i, key in enumerate(box.iterkeys()):
                    yield f"{path}#{i}", box.get_bytes(key)
            finally:
                box.close()
        else:
            yield str(path), data


@dataclass(slots=True)
class BounceOutcome:
    source: str
    recipient: str | None = None
    kind: str | None = None
    status: str | None = None
    notification_id: str | None = None
    action: str = "ignored"  # ignored | duplicate | unmatched | counted | disabled+rerouted
    rerouted_to: list[str] = field(default_factory=list)


def ingest_bounces(notifier: Notifier, paths: Iterable[Path]) -> list[BounceOutcome]:
    """Record and act on every DSN under `paths`; one transaction per message."""
    outcomes: list[BounceOutcome] = []
    threshold = notifier.config.soft_bounce_threshold
    for source, raw in read_messages(paths):
        dsn = parse_dsn(raw, source)
        if dsn is None or not dsn.recipients:
            outcomes.append(BounceOutcome(source, action="ignored"))
            continue
        for rcpt in dsn.recipients:
            out = BounceOutcome(source, recipient=rcpt.address, kind=rcpt.kind,
                                status=rcpt.status)
            outcomes.append(out)
            if rcpt.kind is None:
                continue
            digest = hashlib.sha256(rcpt.address.lower().encode() + b"\0" + raw).hexdigest()
            with notifier.engine.begin() as conn:
                if conn.execute(select(Bounce.id).where(Bounce.digest == digest)).first():
                    out.action = "duplicate"
                    continue
                note = None
                if dsn.notification_id:
                    note = conn.execute(select(Notification.id, Notification.org_id,
                                               Notification.recipient)
                                        .where(Notification.id == dsn.notification_id)).first()
                if note is None and dsn.original_message_id:
                    note = conn.execute(select(Notification.id, Notification.org_id,
                                               Notification.recipient)
                                        .where(Notification.message_id
                                               == dsn.original_message_id)).first()
                out.notification_id = note[0] if note else None
                action = "unmatched" if note is None else "counted"
                if note is not None:
                    hard = rcpt.kind == "hard"
                    if not hard:
                        prior = conn.execute(select(func.count()).select_from(Bounce).where(
                            func.lower(Bounce.recipient) == rcpt.address.lower(),
                            Bounce.kind == "soft")).scalar() or 0
                        hard = prior + 1 >= threshold
                    if hard:
                        out.rerouted_to = notifier.reroute(
                            conn, note[0], rcpt.address,
                            reason=f"{rcpt.kind} bounce {rcpt.status or ''} "
                                   f"{rcpt.diagnostic or ''}".strip())
                        action = "disabled+rerouted"
                out.action = action
                conn.execute(insert(Bounce).values(
                    digest=digest, notification_id=out.notification_id,
                    org_id=note[1] if note else None, recipient=rcpt.address,
                    kind=rcpt.kind, status=rcpt.status, diagnostic=rcpt.diagnostic,
                    action_taken=action, source=source[:1024],
                    details={"original_message_id": dsn.original_message_id,
                             "action": rcpt.action},
                    received_at=notifier.clock()))
    return outcomes
