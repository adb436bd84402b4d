"""Audit trail of registry changes and the registry version counter."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, update
from sqlalchemy.orm import Session

from cwn.db.base import utcnow
from cwn.db.models import Asset, AuditEntry, Contact, Organization, RegistryState

Snapshot = dict[str, Any]


def org_snapshot(org: Organization) -> Snapshot:
    return {k: getattr(org, k) for k in ORG_FIELDS}


ORG_FIELDS = ("id", "name", "kvk", "sector", "subsector", "sbi", "municipality", "province",
              "language", "size", "maturity")


def asset_snapshot(a: Asset) -> Snapshot:
    return {"org_id": a.org_id, "type": a.type, "value": a.value, "verified": a.verified,
            "verified_by": a.verified_by, "source": a.source}


def contact_snapshot(c: Contact) -> Snapshot:
    return {"org_id": c.org_id, "email": c.email, "role": c.role, "language": c.language,
            "priority": c.priority, "enabled": c.enabled}


def asset_key(org_id: str, type_: str, value: str) -> str:
    return f"{org_id}:{type_}:{value}"


def contact_key(org_id: str, email: str) -> str:
    return f"{org_id}:{email}"


def record(session: Session, actor: str, action: str, entity: str, entity_id: str,
           before: Snapshot | None, after: Snapshot | None) -> None:
    """Add one audit entry (flushed with the session's transaction)."""
    session.add(AuditEntry(actor=actor, action=action, entity=entity, entity_id=entity_id,
                           before=before, after=after, at=utcnow()))


def bump_version(conn: Session | Connection) -> int:
    """Increment `RegistryState.version` (creating the row if needed); returns the new one."""
    res = conn.execute(
        update(RegistryState).where(RegistryState.id == 1)
        .values(version=RegistryState.version + 1, changed_at=utcnow())
        .returning(RegistryState.version))
    v = res.scalar()
    if v is None:
        conn.execute(insert(RegistryState).values(id=1, version=1, changed_at=utcnow()))
        return 1
    return int(v)
