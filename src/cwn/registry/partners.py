"""Partners and their distribution agreements in the registry JSON format (the `partners`
key; docs/registry-format.md): strict models, and an importer that updates in place and
audits every change, like the organisations' importer."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cwn.db.base import utcnow
from cwn.db.models import AuditEntry
from cwn.db.models_partners import Agreement, Partner, PartnerContact
from cwn.registry.format import EMAIL_RE, ORG_ID_RE, PROVINCES, parse_asn
from cwn.registry.netaddr import parse_cidr

PARTNER_TYPES = ("sector-csirt", "isp", "hoster", "msp", "mssp", "software-supplier",
                 "branch-organisation", "isac", "regional", "source")
FUNCTIONS = ("dsn", "information-sharing", "incident-handling", "knowledge-exchange",
             "training-exercises")
FORMATS = ("csv", "jsonl", "intelmq", "xarf", "stix")
CADENCES = ("immediate", "hourly", "daily")
MODES = ("partner_only", "partner_and_org", "copy")
TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")


def provinces(values: list[str]) -> list[str]:
    bad = [r for r in values if r.upper() not in PROVINCES]
    if bad:
        raise ValueError(f"unknown province code {bad[0]!r} (PV20..PV31)")
    return [r.upper() for r in values]


def sector_keys(values: list[str]) -> list[str]:
    """NIS2 sector keys: a subsector (`energy/gas`) counts as its sector."""
    return [s.strip().lower().split("/", 1)[0] for s in values]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Served(_Strict):
    """Shared by a partner's domains and an agreement's scope: provinces and NIS2 sectors,
    normalised the same way."""

    @field_validator("regions", check_fields=False)
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        return provinces(v)

    @field_validator("sectors", check_fields=False)
    @classmethod
    def _sectors(cls, v: list[str]) -> list[str]:
        return sector_keys(v)


class PartnerContactIn(_Strict):
    email: str
    role: str = "abuse"
    language: Literal["nl", "en"] | None = None
    available_24_7: bool = False
    priority: int = Field(default=10, ge=0, le=1000)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not EMAIL_RE.match(v):
            raise ValueError(f"not an e-mail address: {v!r}")
        return v.lower()


class ScopeIn(_Served):
    asns: list[int] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    organisations: list[str] = Field(default_factory=list)
    sectors: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    consumer_prefixes: list[str] = Field(default_factory=list)
    """Consumer ranges: their cases go to the ISP only, whatever the mode."""

    @field_validator("asns", mode="before")
    @classmethod
    def _asns(cls, v: Any) -> Any:
        return [parse_asn(x) for x in v] if isinstance(v, list) else v

    @field_validator("prefixes", "consumer_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        return [parse_cidr(p).text for p in v]



class AgreementIn(_Strict):
    id: str
    scope: ScopeIn = Field(default_factory=ScopeIn)
    taxonomies: list[str] | None = None
    report_types: list[str] | None = None
    tlp_ceiling: Literal[TLPS] = "AMBER"  # type: ignore[valid-type]
    format: Literal[FORMATS] = "csv"  # type: ignore[valid-type]
    cadence: Literal[CADENCES] = "daily"  # type: ignore[valid-type]
    mode: Literal[MODES] = "partner_and_org"  # type: ignore[valid-type]
    valid_from: date | None = None
    valid_until: date | None = None
    signed_by: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ORG_ID_RE.match(v):
            raise ValueError(f"not a valid agreement id: {v!r}")
        return v

    @model_validator(mode="after")
    def _dates(self) -> AgreementIn:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self


class PartnerIn(_Served):
    id: str
    name: str = Field(min_length=1, max_length=512)
    type: Literal[PARTNER_TYPES]  # type: ignore[valid-type]
    maturity: int | None = Field(default=None, ge=1, le=5)
    status: Literal["prospect", "active", "suspended", "ended"] = "active"
    functions: list[Literal[FUNCTIONS]] = Field(default_factory=list)  # type: ignore[valid-type]
    sectors: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    supplier_role: str | None = None
    language: Literal["nl", "en"] = "nl"
    contacts: list[PartnerContactIn] = Field(default_factory=list)
    agreements: list[AgreementIn] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ORG_ID_RE.match(v):
            raise ValueError(f"not a valid partner id: {v!r}")
        return v



class PartnersDocument(_Strict):
    model_config = ConfigDict(extra="ignore")  # the registry's other keys are not ours
    partners: list[PartnerIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> PartnersDocument:
        ids = [p.id for p in self.partners]
        agreements = [a.id for p in self.partners for a in p.agreements]
        for kind, values in (("partner", ids), ("agreement", agreements)):
            dup = {v for v in values if values.count(v) > 1}
            if dup:
                raise ValueError(f"duplicate {kind} id {sorted(dup)[0]!r}")
        return self


def _partner_values(p: PartnerIn) -> dict[str, Any]:
    return {"name": p.name, "type": p.type, "maturity": p.maturity, "status": p.status,
            "functions": list(p.functions), "sectors": p.sectors, "regions": p.regions,
            "supplier_role": p.supplier_role, "language": p.language}


def _agreement_values(a: AgreementIn) -> dict[str, Any]:
    return {"scope": a.scope.model_dump(), "taxonomies": a.taxonomies,
            "report_types": a.report_types, "tlp_ceiling": a.tlp_ceiling, "format": a.format,
            "cadence": a.cadence, "mode": a.mode, "valid_from": a.valid_from,
            "valid_until": a.valid_until, "signed_by": a.signed_by}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}


def import_partners(session: Session, doc: PartnersDocument, actor: str) -> dict[str, int]:
    """Create or update every partner, its contacts and agreements; audited. Agreements of
    a partner that are missing from the document are ended (deleted), also audited."""
    counts = {"partners": 0, "agreements": 0, "contacts": 0, "changed": 0}
    now = utcnow()

    def audit(action: str, entity: str, entity_id: str, before: Any, after: Any) -> None:
        session.add(AuditEntry(at=now, actor=actor, action=action, entity=entity,
                               entity_id=entity_id, before=before, after=after))
        counts["changed"] += 1

    for p in doc.partners:
        counts["partners"] += 1
        row = session.get(Partner, p.id)
        values = _partner_values(p)
        if row is None:
            session.add(Partner(id=p.id, **values, created_at=now, updated_at=now))
            audit("create", "partner", p.id, None, values)
        else:
            before = {k: getattr(row, k) for k in values}
            if before != values:
                for k, v in values.items():
                    setattr(row, k, v)
                row.updated_at = now
                audit("update", "partner", p.id, before, values)
        session.flush()
        old_contacts = {c.email: c for c in session.scalars(
            select(PartnerContact).where(PartnerContact.partner_id == p.id))}
        for c in p.contacts:
            counts["contacts"] += 1
            cvals = c.model_dump()
            have = old_contacts.pop(c.email, None)
            if have is None:
                session.add(PartnerContact(partner_id=p.id, **cvals))
                audit("create", "partner_contact", f"{p.id}:{c.email}", None, cvals)
            elif {k: getattr(have, k) for k in cvals} != cvals:
                before = {k: getattr(have, k) for k in cvals}
                for k, v in cvals.items():
                    setattr(have, k, v)
                audit("update", "partner_contact", f"{p.id}:{c.email}", before, cvals)
        for email, gone in old_contacts.items():
            session.delete(gone)
            audit("delete", "partner_contact", f"{p.id}:{email}", {"email": email}, None)
        old_agreements = {a.id: a for a in session.scalars(
            select(Agreement).where(Agreement.partner_id == p.id))}
        for a in p.agreements:
            counts["agreements"] += 1
            avals = _agreement_values(a)
            have_a = old_agreements.pop(a.id, None)
            if have_a is None:
                other = session.get(Agreement, a.id)
                if other is not None:
                    raise ValueError(f"agreement {a.id!r} belongs to partner "
                                     f"{other.partner_id!r}")
                session.add(Agreement(id=a.id, partner_id=p.id, **avals))
                audit("create", "agreement", a.id, None, _jsonable(avals))
            else:
                before = {k: getattr(have_a, k) for k in avals}
                if before != avals:
                    for k, v in avals.items():
                        setattr(have_a, k, v)
                    audit("update", "agreement", a.id, _jsonable(before), _jsonable(avals))
        for aid in old_agreements:
            session.execute(delete(Agreement).where(Agreement.id == aid))
            audit("delete", "agreement", aid, {"id": aid}, None)
    return counts
