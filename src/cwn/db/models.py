"""The relational schema. Columnar event history lives in Parquet; this holds what the later
stages (attribution, cases, notification, portal) query and update.
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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cwn.db.base import Base, BigIntPK, UTCDateTime, utcnow


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    kvk: Mapped[str | None] = mapped_column(String(8), index=True)
    sector: Mapped[str | None] = mapped_column(String(128))
    subsector: Mapped[str | None] = mapped_column(String(128))
    sbi: Mapped[str | None] = mapped_column(String(8))
    municipality: Mapped[str | None] = mapped_column(String(8))
    province: Mapped[str | None] = mapped_column(String(8))
    size: Mapped[str | None] = mapped_column(String(32))
    maturity: Mapped[int | None] = mapped_column(SmallInteger)
    language: Mapped[str] = mapped_column(String(8), default="nl")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    assets: Mapped[list[Asset]] = relationship(
        back_populates="organization", cascade="all, delete-orphan"
    )
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="organization", cascade="all, delete-orphan"
    )


class Asset(Base):
    """An IP network, AS number or domain an organisation owns.

    IP networks carry their first address as integers so the attribution index can be built
    in bulk without parsing text: IPv4 in `ip_lo`; IPv6 split into two 64-bit halves, each
    stored with its sign bit flipped so signed BIGINT order equals address order.
    """

    __tablename__ = "assets"
    __table_args__ = (
        # Also serves lookups by org_id (leading column): no separate index to maintain.
        UniqueConstraint("org_id", "type", "value", name="uq_assets_org_type_value"),
        Index("ix_assets_type_value", "type", "value"),
        # Overlap checks on claims: a range or point lookup instead of a scan of every asset.
        Index("ix_assets_net", "ip_version", "ip_hi", "ip_lo"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(8))  # cidr | asn | domain
    value: Mapped[str] = mapped_column(String(255))  # canonical text form
    ip_version: Mapped[int | None] = mapped_column(SmallInteger)
    ip_hi: Mapped[int | None] = mapped_column(BigInteger)
    ip_lo: Mapped[int | None] = mapped_column(BigInteger)
    prefixlen: Mapped[int | None] = mapped_column(SmallInteger)
    asn: Mapped[int | None] = mapped_column(BigInteger)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_by: Mapped[str | None] = mapped_column(String(32))  # operator-import, dns, ...
    source: Mapped[str] = mapped_column(String(32), default="import")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="assets")


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("org_id", "email", name="uq_contacts_org_email"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32), default="security")
    language: Mapped[str | None] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # import: the operator's registry file owns it (a re-import may remove it);
    # portal: the organisation added it itself, and registry imports leave it alone.
    source: Mapped[str] = mapped_column(String(16), default="import", server_default="import")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="contacts")


class AuditEntry(Base):
    """Every change to the registry: who, what, before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))  # create | update | delete
    entity: Mapped[str] = mapped_column(String(32))  # organization | asset | contact
    entity_id: Mapped[str] = mapped_column(String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RegistryState(Base):
    """A counter bumped by every registry change: the attribution index is rebuilt when the
    version it was built from is older."""

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Base):
    """One input file, archived content-addressed under `archive/raw/`."""

    __tablename__ = "reports"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(512))
    feed_name: Mapped[str | None] = mapped_column(String(255))
    parser: Mapped[str] = mapped_column(String(32))  # shadowserver | intelmq | ...
    report_type: Mapped[str | None] = mapped_column(String(128), index=True)
    report_date: Mapped[str | None] = mapped_column(String(10))
    size: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    quarantined: Mapped[int] = mapped_column(BigInteger, default=0)
    attributed: Mapped[int] = mapped_column(BigInteger, default=0)
    parser_version: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    parsed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QuarantinedRow(Base):
    """A row that could not become an event, kept with its reason so nothing is lost."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    report_sha256: Mapped[str] = mapped_column(
        ForeignKey("reports.sha256", ondelete="CASCADE"), index=True
    )
    row: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)

