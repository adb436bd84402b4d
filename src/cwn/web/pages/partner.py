"""The partner admin's page: its agreements, the cases delivered under them, and its
feedback on each (forwarded, not our customer, customer notified, fixed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cwn.cli.partners import record_feedback
from cwn.web import partnerview
from cwn.web.deps import DB, PartnerAdmin
from cwn.web.i18n import N_
from cwn.web.render import page

router = APIRouter()

FEEDBACK_LABELS = {"forwarded": N_("Forwarded to the customer"),
                   "not_our_customer": N_("Not our customer"),
                   "customer_notified": N_("Customer notified"), "fixed": N_("Fixed")}


@router.get("/partner")
def partner_home(request: Request, s: DB, viewer: PartnerAdmin, page_no: int = 1
                 ) -> HTMLResponse:
    assert viewer.partner_id is not None
    page_no = max(1, min(page_no, 100_000))
    conn = s.connection()
    partner, agreements = partnerview.partner_facts(conn, viewer.partner_id)
    total, rows = partnerview.cases(conn, viewer.partner_id, page=page_no)
    return page(request, "partner/index.html", viewer, partner=partner[0] if partner else None,
                agreements=[a[0] for a in agreements], cases=rows, total=total,
                page_no=page_no, per_page=50, kinds=FEEDBACK_LABELS)


@router.post("/partner/cases/{case_id}/feedback")
def partner_feedback(s: DB, viewer: PartnerAdmin, case_id: str,
                     status: Annotated[str, Form(max_length=32)],
                     note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    assert viewer.partner_id is not None
    conn = s.connection()
    if not partnerview.delivered_to(conn, viewer.partner_id, case_id):
        raise HTTPException(404, "no such case was delivered to your organisation")
    if status not in partnerview.FEEDBACK:
        raise HTTPException(422, "unknown feedback; use one of the buttons")
    record_feedback(conn, case_id, viewer.partner_id, status, note or None, "portal",
                    viewer.actor)
    s.commit()
    return RedirectResponse("/partner", status_code=303)
