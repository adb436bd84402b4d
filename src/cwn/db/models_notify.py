"""Tables of the notification state machine: events → cases → notifications → deliveries.

Every step keeps its reasons (`case_decisions`), and the outbox (`deliveries`) is written in
the same transaction as the routing decision that made it (DESIGN.md decision 5), so a crash
neither loses nor duplicates a notification.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cwn.db.base import Base, BigIntPK, UTCDateTime, utcnow


class Case(Base):
    """One finding (fingerprint) at one organisation, followed over time.

    `id` is the human-friendly `CWN-YYYY-NNNNNN` that recipients quote back to us.
    `last_report_date` is what resolution compares against: a later report of the same type
    that lacks the finding resolves it.
    """

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("org_id", "fingerprint", name="uq_cases_org_fingerprint"),
        Index("ix_cases_type_state", "report_type", "state"),
        Index("ix_cases_org_state", "org_id", "state"),
        Index("ix_cases_org_last_seen", "org_id", "last_seen"),  # the inbox's order
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(32))
    report_type: Mapped[str | None] = mapped_column(String(128))
    identifier: Mapped[str | None] = mapped_column(String(255))
    taxonomy: Mapped[str | None] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16), default="medium")
    tlp: Mapped[str] = mapped_column(String(16), default="AMBER")
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_report_date: Mapped[str | None] = mapped_column(String(10))
    events_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notify_count: Mapped[int] = mapped_column(Integer, default=0)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseCounter(Base):
    """Next case number per year: numbers are handed out in blocks, one row lock per run."""

    __tablename__ = "case_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class CaseStaging(Base):
    """Scratch space for one notify run's aggregated (organisation, fingerprint) pairs, so the
    case upsert is a handful of set operations instead of one ORM object per event."""

    __tablename__ = "case_staging"
    __table_args__ = (Index("ix_case_staging_run_key", "run_id", "org_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    org_id: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(32))
    report_type: Mapped[str | None] = mapped_column(String(128))
    identifier: Mapped[str | None] = mapped_column(String(255))
    taxonomy: Mapped[str | None] = mapped_column(String(64))
    sev_rank: Mapped[int] = mapped_column(SmallInteger, default=2)
    tlp_rank: Mapped[int] = mapped_column(SmallInteger, default=2)
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report_date: Mapped[str | None] = mapped_column(String(10))
    n_events: Mapped[int] = mapped_column(BigInteger, default=0)
    case_id: Mapped[str | None] = mapped_column(String(32))
    prev_state: Mapped[str | None] = mapped_column(String(16))


class CaseDecision(Base):
    """The history of a case: opened, seen, resolved, reopened, notified, and every decision
    not to notify with its reason (repeat_window, below_threshold, not_subscribed,
    no_contact, opted_out, paused)."""

    __tablename__ = "case_decisions"
    __table_args__ = (Index("ix_case_decisions_case_at", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(16))  # opened|seen|reopened|resolved|notified|
    # suppressed|rerouted
    reason: Mapped[str | None] = mapped_column(String(32))
    recipient: Mapped[str | None] = mapped_column(String(320))
    notification_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str | None] = mapped_column(Text)


class NotifyReport(Base):
    """Which reports a notify run has turned into cases: the run's input cursor. Written in the
    routing transaction, so a crashed run leaves its reports to the next one."""

    __tablename__ = "notify_reports"

    report_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotifyPolicy(Base):
    """Reminder interval override; NULL columns match anything, the most specific row wins."""

    __tablename__ = "notify_policies"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str | None] = mapped_column(String(128), index=True)
    report_type: Mapped[str | None] = mapped_column(String(128))
    severity: Mapped[str | None] = mapped_column(String(16))
    reminder_days: Mapped[int] = mapped_column(Integer)


class Preference(Base):
    """What an organisation (contact_id NULL) or one of its contacts wants to receive.

    NULL means "inherit": contact row → organisation row → defaults (everything, severity
    ≥ low, immediate, the contact's language else the organisation's).
    """

    __tablename__ = "preferences"
    __table_args__ = (Index("ix_preferences_org_contact", "org_id", "contact_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"))
    taxonomies: Mapped[list[str] | None] = mapped_column(JSON)
    report_types: Mapped[list[str] | None] = mapped_column(JSON)
    min_severity: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str | None] = mapped_column(String(16))  # immediate | digest
    language: Mapped[str | None] = mapped_column(String(8))
    opted_out: Mapped[bool | None] = mapped_column(Boolean)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """One message to one recipient about some cases of one organisation.

    States: pending (a digest still collecting cases) → queued (rendered, in the outbox) →
    sent | failed | bounced; rerouted when a hard bounce handed its cases to another contact.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_state_due", "state", "due_at"),
        Index("ix_notifications_org", "org_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128))
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    recipient: Mapped[str] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(16), default="immediate")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    run_id: Mapped[str | None] = mapped_column(String(36))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    case_count: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    subject: Mapped[str | None] = mapped_column(String(998))
    rerouted_from: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationCase(Base):
    """Which cases a notification reports, and from which run's reports their events come."""

    __tablename__ = "notification_cases"

    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    run_id: Mapped[str | None] = mapped_column(String(36))


class Delivery(Base):
    """The outbox: the rendered message, byte for byte, so a retry is the identical message.

    States: queued → sent | deferred (retry at next_attempt_at) | bounced | failed.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    return_path: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    eml: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Bounce(Base):
    """A delivery-status notification we received, classified, kept once per message."""

    __tablename__ = "bounces"
    __table_args__ = (Index("ix_bounces_recipient", "recipient"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of recipient+DSN
    notification_id: Mapped[str | None] = mapped_column(String(36), index=True)
    org_id: Mapped[str | None] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(8))  # hard | soft
    status: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    action_taken: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(1024))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


NOTIFY_TABLES = [
    Case.__table__, CaseCounter.__table__, CaseStaging.__table__, CaseDecision.__table__,
    NotifyReport.__table__, NotifyPolicy.__table__, Preference.__table__,
    Notification.__table__, NotificationCase.__table__, Delivery.__table__, Bounce.__table__,
]
"""For tests and tools that create these tables before they are in the migration."""
