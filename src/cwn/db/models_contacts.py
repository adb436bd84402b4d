"""Tables of contact resolution for owners found in public data (unsolicited notification).

Whom to tell about an unregistered owner is decided from several sources of differing
trust. Every candidate is kept with its source, confidence and fetch time so `cwn cases
show` can explain the choice; operator overrides live in their own table, which public-data
imports never touch, so manual fixes survive every refresh; what the desk learned about an
address (hard bounces, "not ours" replies, an operator block) lowers its confidence.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cwn.db.base import Base, BigIntPK, UTCDateTime, utcnow


class ContactCandidate(Base):
    __tablename__ = "contact_candidates"
    __table_args__ = (Index("ix_contact_candidates_owner", "owner_id", "rank"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(160))
    email: Mapped[str] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(16))  # override|securitytxt|rdap|ripe|csirt
    confidence: Mapped[float] = mapped_column(Float)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rank: Mapped[int] = mapped_column(SmallInteger)  # 0 = chosen; -1 = not usable
    reason: Mapped[str | None] = mapped_column(String(64))  # why not usable / lowered
    detail: Mapped[str | None] = mapped_column(Text)  # where it came from (URL, block, …)
    language: Mapped[str] = mapped_column(String(8), default="nl")
    owner_name: Mapped[str | None] = mapped_column(String(512))
    resolved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactOverride(Base):
    """An operator's word: a contact for a block, AS or domain; a blocked address; or a
    consumer range whose subscribers are reached through their ISP only."""

    __tablename__ = "contact_overrides"
    __table_args__ = (Index("ix_contact_overrides_scope", "scope", "value"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))  # cidr | asn | domain | email
    value: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(12))  # contact | block | isp_only
    email: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AddressFlag(Base):
    """What feedback taught us about an address, whoever listed it."""

    __tablename__ = "address_flags"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    not_ours: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
