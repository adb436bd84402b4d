"""Partner endpoints: the cases delivered under a partner's agreements, and feedback."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from cwn.cli.partners import record_feedback
from cwn.web import partnerview
from cwn.web.deps import DB, Reader, Writer, require_partner

router = APIRouter(tags=["partners"])


class PartnerCasePage(BaseModel):
    items: list[partnerview.PartnerCase]
    page: int
    per_page: int
    total: int


class PartnerFeedbackIn(BaseModel):
    status: Literal["forwarded", "not_our_customer", "customer_notified", "fixed"]
    note: str | None = Field(default=None, max_length=2000)


class Accepted(BaseModel):
    case_id: str
    status: str


@router.get("/partner/cases", response_model=PartnerCasePage,
            summary="Cases delivered to the partner under its agreements")
def partner_cases(s: DB, caller: Reader, page: int = Query(1, ge=1, le=100_000),
                  per_page: int = Query(50, ge=1, le=500)) -> PartnerCasePage:
    partner_id = require_partner(caller)
    total, rows = partnerview.cases(s.connection(), partner_id, page=page, per_page=per_page)
    return PartnerCasePage(items=rows, page=page,
                           per_page=per_page, total=total)


@router.post("/partner/cases/{case_id}/feedback", response_model=Accepted, status_code=201,
             summary="Tell the desk what happened to a delivered case",
             responses={404: {"description": "Not a case delivered to this partner"}})
def partner_case_feedback(s: DB, caller: Writer, case_id: str,
                          body: PartnerFeedbackIn) -> Accepted:
    partner_id = require_partner(caller)
    conn = s.connection()
    if not partnerview.delivered_to(conn, partner_id, case_id):
        raise HTTPException(404, f"no case {case_id!r} was delivered to this partner")
    record_feedback(conn, case_id, partner_id, body.status, body.note, "api", caller.actor)
    s.commit()
    return Accepted(case_id=case_id, status=body.status)
