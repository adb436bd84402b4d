"""Export the registry in the import format (docs/registry-format.md).

Only operator-imported assets (`source == "import"`) are exported, so that export -> import
round-trips without turning portal claims into operator-verified assets.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cwn.db.models import Asset, Contact, Organization


def export_registry(session: Session) -> dict[str, Any]:
    """The whole registry as a registry document (organisations by id, lists sorted)."""
    assets: dict[str, list[dict[str, Any]]] = {}
    for a in session.execute(
        select(Asset.org_id, Asset.type, Asset.value, Asset.asn)
        .where(Asset.source == "import")
    ):
        value: Any = int(a.asn) if a.type == "asn" else a.value
        assets.setdefault(a.org_id, []).append({"type": a.type, "value": value})
    contacts: dict[str, list[dict[str, Any]]] = {}
    for c in session.execute(
        select(Contact.org_id, Contact.email, Contact.role, Contact.language, Contact.priority)
    ):
        d: dict[str, Any] = {"email": c.email, "role": c.role, "priority": c.priority}
        if c.language is not None:
            d["language"] = c.language
        contacts.setdefault(c.org_id, []).append(d)

    orgs = []
    for org in session.scalars(select(Organization).order_by(Organization.id)):
        d = {"id": org.id, "name": org.name}
        for k in ("kvk", "sbi", "municipality", "province", "language", "size", "maturity"):
            v = getattr(org, k)
            if v is not None:
                d[k] = v
        if org.sector:
            d["sector"] = f"{org.sector}/{org.subsector}" if org.subsector else org.sector
        d["assets"] = sorted(assets.get(org.id, []), key=lambda a: (a["type"], str(a["value"])))
        d["contacts"] = sorted(contacts.get(org.id, []),
                               key=lambda c: (c["priority"], c["email"]))
        orgs.append(d)
    return {"organizations": orgs}
