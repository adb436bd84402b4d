"""Import a registry document: upsert organisations, their assets and contacts, with audit.

Semantics (docs/registry-format.md):

* An organisation in the file is created, or updated in place (by id) when it exists.
* Its operator-imported assets and its contacts are made to match the file exactly: missing
  ones are added, ones no longer listed are removed. Assets that came from elsewhere (e.g.
  self-registered in the portal, `source != "import"`) are left alone unless the file lists
  them, which verifies them.
* An organisation absent from the file is left untouched (the file is not a full snapshot;
  delete organisations explicitly).
* Every create/update/delete writes an `AuditEntry` with before/after; the registry version
  is bumped once per import that changed anything.
* Everything runs in the caller's transaction: an error leaves the database unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cwn.db.base import utcnow
from cwn.db.models import Asset, Contact, Organization
from cwn.registry.audit import (
    ORG_FIELDS,
    asset_key,
    asset_snapshot,
    bump_version,
    contact_key,
    contact_snapshot,
    org_snapshot,
    record,
)
from cwn.registry.format import AssetIn, ContactIn, OrganizationIn, RegistryDocument
from cwn.registry.netaddr import parse_cidr

VERIFIED_BY = "operator-import"
SOURCE = "import"
_CHUNK = 500


@dataclass
class ImportSummary:
    orgs_created: int = 0
    orgs_updated: int = 0
    orgs_unchanged: int = 0
    assets_added: int = 0
    assets_removed: int = 0
    assets_updated: int = 0
    contacts_added: int = 0
    contacts_removed: int = 0
    contacts_updated: int = 0
    version: int | None = None
    """The registry version after the import (None when nothing changed)."""
    changed_orgs: list[str] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        return self.version is not None

    def rows(self) -> list[tuple[str, int]]:
        return [("organisations created", self.orgs_created),
                ("organisations updated", self.orgs_updated),
                ("organisations unchanged", self.orgs_unchanged),
                ("assets added", self.assets_added),
                ("assets removed", self.assets_removed),
                ("assets updated", self.assets_updated),
                ("contacts added", self.contacts_added),
                ("contacts removed", self.contacts_removed),
                ("contacts updated", self.contacts_updated)]

    def __str__(self) -> str:
        parts = [f"{n} {label}" for label, n in self.rows() if n]
        return ", ".join(parts) or "no changes"


def _org_values(o: OrganizationIn) -> dict[str, object]:
    sector, subsector = o.sector_parts
    return {"id": o.id, "name": o.name, "kvk": o.kvk, "sector": sector, "subsector": subsector,
            "sbi": o.sbi, "municipality": o.municipality, "province": o.province,
            "language": o.language, "size": o.size, "maturity": o.maturity}


def _new_asset(org_id: str, a: AssetIn) -> Asset:
    asset = Asset(org_id=org_id, type=a.type, value=a.db_value, verified=True,
                  verified_by=VERIFIED_BY, source=SOURCE, created_at=utcnow())
    if a.type == "cidr":
        n = parse_cidr(str(a.value))
        asset.ip_version, asset.ip_hi, asset.ip_lo, asset.prefixlen = (
            n.ip_version, n.ip_hi, n.ip_lo, n.prefixlen)
    elif a.type == "asn":
        asset.asn = int(a.value)
    return asset


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def import_registry(session: Session, doc: RegistryDocument, actor: str) -> ImportSummary:
    """Upsert `doc` into the registry in the session's transaction (see module docstring)."""
    summary = ImportSummary()
    existing: dict[str, Organization] = {}
    for ids in _chunks([o.id for o in doc.organizations], _CHUNK):
        stmt = (select(Organization).where(Organization.id.in_(ids))
                .options(selectinload(Organization.assets), selectinload(Organization.contacts)))
        existing.update({o.id: o for o in session.scalars(stmt)})

    for o in doc.organizations:
        values = _org_values(o)
        org = existing.get(o.id)
        org_changed = False
        if org is None:
            org = Organization(**values, created_at=utcnow(), updated_at=utcnow())
            session.add(org)
            record(session, actor, "create", "organization", o.id, None, org_snapshot(org))
            summary.orgs_created += 1
            org_changed = True
            current_assets: dict[tuple[str, str], Asset] = {}
            current_contacts: dict[str, Contact] = {}
        else:
            before = org_snapshot(org)
            if any(before[k] != values[k] for k in ORG_FIELDS):
                for k in ORG_FIELDS:
                    setattr(org, k, values[k])
                org.updated_at = utcnow()
                record(session, actor, "update", "organization", o.id, before,
                       org_snapshot(org))
                summary.orgs_updated += 1
                org_changed = True
            current_assets = {(a.type, a.value): a for a in org.assets}
            current_contacts = {c.email.lower(): c for c in org.contacts}

        if _sync_assets(session, actor, org, o.assets, current_assets, summary):
            org_changed = True
        if _sync_contacts(session, actor, org, o.contacts, current_contacts, summary):
            org_changed = True
        if org_changed:
            summary.changed_orgs.append(o.id)
        if existing.get(o.id) is not None and not org_changed:
            summary.orgs_unchanged += 1

    if summary.changed_orgs:
        session.flush()
        summary.version = bump_version(session)
    return summary


def _sync_assets(session: Session, actor: str, org: Organization, wanted: list[AssetIn],
                 current: dict[tuple[str, str], Asset], summary: ImportSummary) -> bool:
    changed = False
    wanted_keys = {(a.type, a.db_value) for a in wanted}
    for key, asset in list(current.items()):
        if key not in wanted_keys and asset.source == SOURCE:
            record(session, actor, "delete", "asset", asset_key(org.id, *key),
                   asset_snapshot(asset), None)
            org.assets.remove(asset)
            summary.assets_removed += 1
            changed = True
    for a in wanted:
        key = (a.type, a.db_value)
        found = current.get(key)
        if found is None:
            asset = _new_asset(org.id, a)
            org.assets.append(asset)
            record(session, actor, "create", "asset", asset_key(org.id, *key), None,
                   asset_snapshot(asset))
            summary.assets_added += 1
            changed = True
            continue
        asset = found
        if not (asset.verified and asset.verified_by == VERIFIED_BY
                  and asset.source == SOURCE):
            before = asset_snapshot(asset)
            asset.verified, asset.verified_by, asset.source = True, VERIFIED_BY, SOURCE
            record(session, actor, "update", "asset", asset_key(org.id, *key), before,
                   asset_snapshot(asset))
            summary.assets_updated += 1
            changed = True
    return changed


def _sync_contacts(session: Session, actor: str, org: Organization, wanted: list[ContactIn],
                   current: dict[str, Contact], summary: ImportSummary) -> bool:
    changed = False
    wanted_by_email = {c.email.lower(): c for c in wanted}
    for email, contact in list(current.items()):
        if email not in wanted_by_email and contact.source != "portal":
            record(session, actor, "delete", "contact", contact_key(org.id, contact.email),
                   contact_snapshot(contact), None)
            org.contacts.remove(contact)
            summary.contacts_removed += 1
            changed = True
    for email, c in wanted_by_email.items():
        existing = current.get(email)
        if existing is None:
            contact = Contact(org_id=org.id, email=c.email, role=c.role, language=c.language,
                              priority=c.priority, enabled=True, created_at=utcnow())
            org.contacts.append(contact)
            record(session, actor, "create", "contact", contact_key(org.id, c.email), None,
                   contact_snapshot(contact))
            summary.contacts_added += 1
            changed = True
            continue
        contact = existing
        before = contact_snapshot(contact)
        new = {"email": c.email, "role": c.role, "language": c.language,
               "priority": c.priority}
        if any(before[k] != v for k, v in new.items()):
            for k, v in new.items():
                setattr(contact, k, v)
            record(session, actor, "update", "contact", contact_key(org.id, c.email), before,
                   contact_snapshot(contact))
            summary.contacts_updated += 1
            changed = True
    return changed
