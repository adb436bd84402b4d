"""Tables of the portal and the REST API: accounts, sessions, API tokens, asset claims,
contact confirmation and case feedback.

Secrets never sit here in the clear: passwords are argon2 hashes, session ids, invitation
and confirmation links and API tokens are stored as SHA-256 of a 256-bit random value (a
hash that cannot be brute-forced, and cheap to look up on every request), and TOTP seeds
are sealed with the installation's secret key (they must be read back to check a code).
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
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cwn.db.base import Base, BigIntPK, UTCDateTime, utcnow

ROLES = ("operator", "partner_admin", "org_admin", "org_user")
"""Account roles, most powerful first."""

ADMIN_ROLES = frozenset({"operator", "partner_admin", "org_admin"})
"""Roles that must sign in with a second factor (TOTP)."""


class User(Base):
    """A person with a portal account. `org_id` is set for organisation roles, `partner_id`
    for partner admins; operators have neither.

    States: invited (link sent, no password yet) | pending (self-signed-up, waiting for an
    operator) | active | disabled.
    """

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_org", "org_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"))
    partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="invited")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_sealed: Mapped[str | None] = mapped_column(String(255))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # no code is accepted twice
    language: Mapped[str] = mapped_column(String(8), default="nl")
    signup_note: Mapped[str | None] = mapped_column(Text)  # self-sign-up: who they say they are
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    approved_by: Mapped[str | None] = mapped_column(String(128))
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Invitation(Base):
    """A one-time link that lets an invited user set a password (and TOTP)."""

    __tablename__ = "invitations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordReset(Base):
    """A one-time link, mailed on request, that lets an active user choose a new password.
    Only the hash of the token is stored; the second factor is not reset by it."""

    __tablename__ = "password_resets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))  # who asked, for the audit trail


class WebSession(Base):
    """A signed-in browser. `stage` is `password` between the password and the TOTP step,
    `full` after; only `full` sessions may do anything."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16), default="password")
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class LoginAttempt(Base):
    """Failed sign-ins, per account and per client address: the throttle counts these."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))  # "user:<email>" | "ip:<address>"
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for the REST API, held by one organisation, one partner, or a source.

    The token is shown once (`cwn_<id>_<secret>`); `id` is public and names the token in
    lists and the audit log, `token_hash` is what a request is checked against.
    """

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    source: Mapped[str | None] = mapped_column(String(128))  # feed name for submissions
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AssetClaim(Base):
    """An organisation's claim on a CIDR, AS number or domain, and how it was proven.

    States: pending (waiting for proof) | review (overlaps another organisation's assets, or
    proof was asked of the operator) | verified | rejected | withdrawn. The claimed asset
    exists as an unverified `assets` row from the start (so it shows in the portal) and
    only counts for attribution once verified.
    """

    __tablename__ = "asset_claims"
    __table_args__ = (Index("ix_asset_claims_org", "org_id", "state"),
                      Index("ix_asset_claims_state", "state"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(8))  # cidr | asn | domain
    value: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    method: Mapped[str | None] = mapped_column(String(16))  # dns|securitytxt|rir|operator
    challenge: Mapped[str] = mapped_column(String(64))  # what goes in the TXT / security.txt
    confirm_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    rir_contact: Mapped[str | None] = mapped_column(String(320))
    overlaps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    last_check: Mapped[str | None] = mapped_column(Text)  # why the last proof attempt failed
    proven_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # `method` succeeded
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # link expiry base
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class ContactConfirmation(Base):
    """When a contact was last confirmed as still right, and the pending confirmation link.

    Kept beside `contacts` (one row per contact) so the registry import format and its
    round trip stay as they are."""

    __tablename__ = "contact_confirmations"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), default="mail")  # mail | webhook (later)
    roles: Mapped[list[str] | None] = mapped_column(JSON)  # extra roles beyond contacts.role
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str | None] = mapped_column(String(128))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaseFeedback(Base):
    """What an organisation told us about one of its cases (portal or API)."""

    __tablename__ = "case_feedback"
    __table_args__ = (Index("ix_case_feedback_case", "case_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # fixed|false_positive|not_ours|question
    text: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))  # user:<email> | token:<id>
    via: Mapped[str] = mapped_column(String(8))  # portal | api
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer: Mapped[str | None] = mapped_column(Text)


class Submission(Base):
    """One file a source handed in through the API (`POST /api/v1/submissions`), kept per
    submitter: the same file from two sources is one report but two submissions, and each
    source may ask after its own (and only its own)."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_holder_sha", "holder", "sha256"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    sha256: Mapped[str | None] = mapped_column(String(64))  # None: an empty upload
    holder: Mapped[str] = mapped_column(String(160))  # source:<name> | org:<id> | partner:<id>
    token_id: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # ingested | duplicate | unusable
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
