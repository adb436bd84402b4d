"""The network's intermediaries: partners, their contacts, their distribution agreements, and
what they report back per case.

Most organisations are reached through an intermediary (a sector CSIRT, ISP or hoster, MSP,
branch organisation) that signed a distribution agreement: the agreement, not the partner,
says which constituents (scope), which findings up to which TLP (content), in which format
and how often, and whether the organisation is still told itself (mode).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cwn.db.base import Base, BigIntPK, UTCDateTime, utcnow


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    type: Mapped[str] = mapped_column(String(32))
    maturity: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(32), default="active")
    functions: Mapped[list[str]] = mapped_column(JSON, default=list)
    sectors: Mapped[list[str]] = mapped_column(JSON, default=list)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    supplier_role: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="nl")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PartnerContact(Base):
    __tablename__ = "partner_contacts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"),
                                            index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(64), default="abuse")
    language: Mapped[str | None] = mapped_column(String(8))
    available_24_7: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(SmallInteger, default=10)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Agreement(Base):
    __tablename__ = "agreements"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"),
                                            index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    taxonomies: Mapped[list[str] | None] = mapped_column(JSON)
    report_types: Mapped[list[str] | None] = mapped_column(JSON)
    tlp_ceiling: Mapped[str] = mapped_column(String(16), default="AMBER")
    format: Mapped[str] = mapped_column(String(16), default="csv")
    cadence: Mapped[str] = mapped_column(String(16), default="daily")
    mode: Mapped[str] = mapped_column(String(24), default="partner_and_org")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    signed_by: Mapped[str | None] = mapped_column(String(255))


class PartnerFeedback(Base):
    __tablename__ = "partner_feedback"
    __table_args__ = (Index("ix_partner_feedback_case", "case_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="cli")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
