"""The signed-in person's own account: language, second factor, and (organisation
admins) the organisation's API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cwn.access import tokens, users
from cwn.db.models import Organization
from cwn.web.deps import DB, OrgAdmin, SignedIn
from cwn.web.i18n import N_
from cwn.web.render import page

router = APIRouter()

ROLE_LABELS = {"operator": N_("CWN operator"), "partner_admin": N_("Partner administrator"),
               "org_admin": N_("Organisation administrator"),
               "org_user": N_("Organisation user")}


def _account(request: Request, s: DB, viewer: SignedIn, **extra: Any) -> HTMLResponse:
    org = s.get(Organization, viewer.org_id) if viewer.org_id else None
    toks = tokens.listing(s, org_id=viewer.org_id) if viewer.role == "org_admin" else []
    return page(request, "account/index.html", viewer, org=org, tokens=toks,
                role_label=ROLE_LABELS.get(viewer.role, viewer.role), **extra)


@router.get("/account")
def account(request: Request, s: DB, viewer: SignedIn) -> HTMLResponse:
    return _account(request, s, viewer)


@router.post("/account/language")
def set_language(s: DB, viewer: SignedIn,
                 language: Annotated[str, Form(pattern="^(nl|en)$")]) -> Response:
    users.set_language(s, viewer.user, language)
    s.commit()
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens")
def create_token(request: Request, s: DB, viewer: OrgAdmin,
                 name: Annotated[str, Form(min_length=1, max_length=100)],
                 write: Annotated[str, Form()] = "") -> HTMLResponse:
    scopes = ["read", "write"] if write else ["read"]
    _, raw = tokens.create(s, actor=viewer.actor, org_id=viewer.org_id, scopes=scopes,
                           name=name)
    s.commit()
    return _account(request, s, viewer, new_token=raw)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(s: DB, viewer: OrgAdmin, token_id: str) -> Response:
    tokens.revoke(s, token_id, viewer.actor, org_id=viewer.org_id)
    s.commit()
    return RedirectResponse("/account", status_code=303)
