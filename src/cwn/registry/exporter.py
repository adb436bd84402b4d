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
    doc: dict[str, Any] = {"organizations": orgs}
    partners = export_partners(session)
    if partners:
        doc["partners"] = partners
    return doc


def export_partners(session: Session) -> list[dict[str, Any]]:
    """Partners with their contacts and agreements, as `cwn partners import` reads them."""
    from cwn.db.models_partners import Agreement, Partner, PartnerContact

    out = []
    for p in session.scalars(select(Partner).order_by(Partner.id)):
        d: dict[str, Any] = {"id": p.id, "name": p.name, "type": p.type, "status": p.status,
                             "functions": list(p.functions or []),
                             "sectors": list(p.sectors or []),
                             "regions": list(p.regions or []), "language": p.language}
        if p.maturity is not None:
            d["maturity"] = p.maturity
        if p.supplier_role:
            d["supplier_role"] = p.supplier_role
        d["contacts"] = [
            {"email": c.email, "role": c.role, "available_24_7": c.available_24_7,
             "priority": c.priority, **({"language": c.language} if c.language else {})}
            for c in session.scalars(select(PartnerContact).where(
                PartnerContact.partner_id == p.id).order_by(PartnerContact.priority,
                                                            PartnerContact.email))]
        d["agreements"] = [
            {"id": a.id, "scope": a.scope or {}, "taxonomies": a.taxonomies,
             "report_types": a.report_types, "tlp_ceiling": a.tlp_ceiling,
             "format": a.format, "cadence": a.cadence, "mode": a.mode,
             "valid_from": a.valid_from.isoformat() if a.valid_from else None,
             "valid_until": a.valid_until.isoformat() if a.valid_until else None,
             "signed_by": a.signed_by}
            for a in session.scalars(select(Agreement).where(
                Agreement.partner_id == p.id).order_by(Agreement.id))]
        out.append(d)
    return out
