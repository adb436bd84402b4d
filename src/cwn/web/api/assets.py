"""Assets and claims of the token's organisation, and their verification.

`GET /assets` lists the organisation's assets (verified ones count for notifications;
unverified ones are claims still waiting for proof). A claim is made with
`POST /assets/claims`, proven with `POST /assets/claims/{id}/verify` (DNS TXT record,
security.txt line, or a link mailed to the RIR abuse contact) or by the CWN desk, and
withdrawn with `DELETE`. Another organisation's claim does not exist for a token (404).
A claim that overlaps another organisation's assets waits for the desk; which organisation
that is, is not shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from cwn.db.models import Asset
from cwn.db.models_web import AssetClaim
from cwn.registry import claims as registry_claims
from cwn.web.deps import DB, Reader, Writer, require_org, services

router = APIRouter(tags=["assets"])

Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: Responses = {404: {"description": "No such claim in your organisation"}}
_REFUSED: Responses = {401: {"description": "No or bad token"},
                       403: {"description": "Not an organisation token, or the scope is "
                             "missing"},
                       422: {"description": "A value is not accepted; `detail` says which"}}


class ClaimRef(BaseModel):
    id: str
    state: str


class AssetOut(BaseModel):
    type: Literal["cidr", "asn", "domain"]
    value: str = Field(description="Canonical form: `192.0.2.0/24`, `AS64500`, `acme.nl`.")
    verified: bool = Field(description="Only verified assets lead to notifications.")
    verified_by: str | None = Field(description="operator-import, dns, securitytxt, rir or "
                                    "operator.")
    source: str = Field(description="import (the CWN desk's registry) or portal (a claim).")
    claim: ClaimRef | None = Field(default=None, description="The claim that created it.")


class AssetPage(BaseModel):
    items: list[AssetOut]
    page: int
    per_page: int
    total: int


class DnsProof(BaseModel):
    name: str = Field(description="Publish a TXT record at this name (or on the domain).")
    value: str


class ClaimOut(BaseModel):
    id: str
    type: str
    value: str
    state: Literal["pending", "review", "verified", "rejected", "withdrawn"] = Field(
        description="pending: waiting for proof; review: the CWN desk decides; verified: "
        "counts for notifications.")
    method: str | None = Field(description="How it was (or is being) proven.")
    overlaps_other_organisation: bool = Field(
        description="It overlaps assets of another organisation, so the CWN desk decides.")
    dns: DnsProof | None = Field(description="Domains: the TXT record that proves it.")
    securitytxt_line: str | None = Field(description="Domains: the line to add to "
                                         "/.well-known/security.txt.")
    rir_contact: str | None = Field(description="Where the confirmation link was mailed.")
    link_expires_at: datetime | None
    last_check: str | None = Field(description="The outcome of the last proof attempt.")
    note: str | None = Field(description="The desk's note or reason.")
    created_at: datetime
    decided_at: datetime | None


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["cidr", "asn", "domain"]
    value: str = Field(min_length=1, max_length=255,
                       examples=["192.0.2.0/24", "AS64500", "acme.nl"])


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["dns", "securitytxt", "rir"]


class VerifyOut(BaseModel):
    proven: bool = Field(description="The proof was found (or, for rir, always false: the "
                         "link was mailed and waits for the abuse contact).")
    message: str
    claim: ClaimOut


def claim_out(c: AssetClaim) -> ClaimOut:
    domain = c.type == "domain"
    name, _ = registry_claims.dns_record_names(c)
    return ClaimOut(
        id=c.id, type=c.type, value=c.value, state=c.state,
        method=c.method, overlaps_other_organisation=bool(c.overlaps),
        dns=DnsProof(name=name, value=registry_claims.TXT_PREFIX + c.challenge)
        if domain else None,
        securitytxt_line=f"{registry_claims.SECURITYTXT_FIELD}: {c.challenge}"
        if domain else None,
        rir_contact=c.rir_contact, link_expires_at=registry_claims.expires_at(c),
        last_check=c.last_check, note=c.note, created_at=c.created_at,
        decided_at=c.decided_at)


@router.get("/assets", response_model=AssetPage, responses=_REFUSED)
def list_assets(s: DB, caller: Reader, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                per_page: Annotated[int, Query(ge=1, le=500)] = 50) -> AssetPage:
    """The organisation's assets; unverified ones are open claims."""
    org_id = require_org(caller)
    total = s.scalar(select(func.count()).select_from(Asset).where(Asset.org_id == org_id))
    rows = s.scalars(select(Asset).where(Asset.org_id == org_id)
                     .order_by(Asset.type, Asset.value)
                     .offset((page - 1) * per_page).limit(per_page)).all()
    ids = [a.id for a in rows]
    refs = {c.asset_id: ClaimRef(id=c.id, state=c.state) for c in s.scalars(
        select(AssetClaim).where(AssetClaim.org_id == org_id, AssetClaim.asset_id.in_(ids)))
    } if ids else {}
    items = [AssetOut(type=a.type, value=a.value,
                      verified=bool(a.verified), verified_by=a.verified_by, source=a.source,
                      claim=refs.get(a.id)) for a in rows]
    return AssetPage(items=items, page=page, per_page=per_page, total=int(total or 0))


class ClaimPage(BaseModel):
    items: list[ClaimOut]
    page: int
    per_page: int
    total: int


@router.get("/assets/claims", response_model=ClaimPage, responses=_REFUSED)
def list_claims(s: DB, caller: Reader,
                state: Annotated[Literal["pending", "review", "verified", "rejected",
                                         "withdrawn"] | None, Query()] = None,
                page: Annotated[int, Query(ge=1)] = 1,
                per_page: Annotated[int, Query(ge=1, le=500)] = 50) -> ClaimPage:
    """The organisation's claims, newest first."""
    found = registry_claims.list_claims(s, org_id=require_org(caller), state=state)
    chunk = found[(page - 1) * per_page: page * per_page]
    return ClaimPage(items=[claim_out(c) for c in chunk], page=page, per_page=per_page,
                     total=len(found))


@router.post("/assets/claims", response_model=ClaimOut, status_code=201,
             responses={**_REFUSED, 400: {"description": "The value cannot be claimed"},
                        409: {"description": "Already one of your assets"}})
def create_claim(s: DB, caller: Writer, body: ClaimIn) -> ClaimOut:
    """Claim a network, AS number or domain; prove it next (see `verify`)."""
    c = registry_claims.claim(s, org_id=require_org(caller), type=body.type,
                              value=body.value, actor=caller.actor)
    s.commit()
    return claim_out(c)


@router.get("/assets/claims/{claim_id}", response_model=ClaimOut,
            responses={**_REFUSED, **_NOT_FOUND})
def get_claim(s: DB, caller: Reader, claim_id: str) -> ClaimOut:
    return claim_out(registry_claims.get_claim(s, claim_id, require_org(caller)))


@router.post("/assets/claims/{claim_id}/verify", response_model=VerifyOut,
             responses={**_REFUSED, **_NOT_FOUND,
                        400: {"description": "The method does not fit this kind of asset"},
                        409: {"description": "The claim is closed"},
                        429: {"description": "The abuse contact was mailed recently"}})
def verify_claim(request: Request, s: DB, caller: Writer, claim_id: str,
                 body: VerifyIn) -> VerifyOut:
    """Check the DNS record or the security.txt line now, or mail the confirmation link to
    the RIR abuse contact of the block or AS (networks and AS numbers)."""
    org_id = require_org(caller)
    settings = services(request).settings
    if body.method == "rir":
        c = registry_claims.send_rir_confirmation(s, claim_id, org_id=org_id,
                                                  actor=caller.actor, settings=settings)
        s.commit()
        return VerifyOut(proven=False, message=c.last_check or "", claim=claim_out(c))
    check = (registry_claims.check_dns if body.method == "dns"
             else registry_claims.check_securitytxt)
    res = check(s, claim_id, org_id=org_id, actor=caller.actor, settings=settings)
    s.commit()
    return VerifyOut(proven=res.proven, message=res.message, claim=claim_out(res.claim))


@router.delete("/assets/claims/{claim_id}", status_code=204,
               responses={**_REFUSED, **_NOT_FOUND, 409: {"description": "Already closed"}})
def withdraw_claim(s: DB, caller: Writer, claim_id: str) -> Response:
    """Withdraw the claim; a verified asset it created stops counting at once."""
    registry_claims.withdraw(s, claim_id, org_id=require_org(caller), actor=caller.actor)
    s.commit()
    return Response(status_code=204)
