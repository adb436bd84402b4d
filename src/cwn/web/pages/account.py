"""The signed-in person's own account: language, password, other browsers, second factor,
and (organisation admins) the organisation's API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cwn.access import sessions, tokens, users
from cwn.access.errors import AccessError
from cwn.db.models import Organization
from cwn.web.deps import DB, OrgAdmin, SignedIn
from cwn.web.i18n import N_, gettext
from cwn.web.render import page

router = APIRouter()

ROLE_LABELS = {"operator": N_("CWN operator"), "partner_admin": N_("Partner administrator"),
               "org_admin": N_("Organisation administrator"),
               "org_user": N_("Organisation user")}


def _account(request: Request, s: DB, viewer: SignedIn, *, status_code: int = 200,
             **extra: Any) -> HTMLResponse:
    org = s.get(Organization, viewer.org_id) if viewer.org_id else None
    toks = tokens.listing(s, org_id=viewer.org_id) if viewer.role == "org_admin" else []
    return page(request, "account/index.html", viewer, status_code=status_code, org=org,
                tokens=toks, role_label=ROLE_LABELS.get(viewer.role, viewer.role),
                other_sessions=sessions.count_others(s, viewer.user.id, viewer.session),
                **extra)


@router.get("/account")
def account(request: Request, s: DB, viewer: SignedIn) -> HTMLResponse:
    return _account(request, s, viewer)


@router.post("/account/language")
def set_language(s: DB, viewer: SignedIn,
                 language: Annotated[str, Form(pattern="^(nl|en)$")]) -> Response:
    users.set_language(s, viewer.user, language)
    s.commit()
    return RedirectResponse("/account", status_code=303)


@router.post("/account/password")
def change_password(request: Request, s: DB, viewer: SignedIn,
                    current: Annotated[str, Form(max_length=1024)],
                    password: Annotated[str, Form(max_length=1024)],
                    password2: Annotated[str, Form(max_length=1024)]) -> HTMLResponse:
    """A new password signs the account out of every other browser."""
    lang = viewer.language
    if password != password2:
        return _account(request, s, viewer, status_code=422,
                        password_error=gettext(lang, "The two passwords differ."))
    ip = request.client.host if request.client else None
    try:
        users.change_password(s, request.app.state.svc.settings, viewer.user, current,
                              password, ip=ip)
    except AccessError as exc:
        s.commit()  # a wrong current password counts towards the throttle
        return _account(request, s, viewer, status_code=exc.status,
                        password_error=gettext(lang, exc.message))
    ended = sessions.end_others(s, viewer.user.id, viewer.session)
    s.commit()
    return _account(request, s, viewer, password_changed=True, ended=ended)


@router.post("/account/sessions/end-others")
def end_other_sessions(request: Request, s: DB, viewer: SignedIn) -> HTMLResponse:
    ended = sessions.end_others(s, viewer.user.id, viewer.session)
    s.commit()
    return _account(request, s, viewer, ended=ended)


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
