"""`GET /api/v1/me`: what the presented token is, so a client can check its set-up."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cwn.db.models import Organization
from cwn.web.deps import DB, AnyToken

router = APIRouter(tags=["me"])


class Me(BaseModel):
    token_id: str = Field(description="Public id of the token (`cwn tokens list`).")
    scopes: list[str]
    org_id: str | None = None
    org_name: str | None = None
    partner_id: str | None = None
    source: str | None = None


@router.get("/me", response_model=Me, summary="The token's holder and scopes",
            responses={401: {"description": "No or bad token"}})
def me(s: DB, caller: AnyToken) -> Me:
    org = s.get(Organization, caller.org_id) if caller.org_id else None
    return Me(token_id=caller.token_id, scopes=caller.scopes, org_id=caller.org_id,
              org_name=org.name if org else None, partner_id=caller.partner_id,
              source=caller.source)
