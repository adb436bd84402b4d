"""The operator console: what came in (reports, quarantine, gaps in attribution), who is in
the network (partners, agreements), what went out (notifications, bounces), and the
accounts (sign-up approval, users, the audit log).

Every route needs the operator role. Lists page with htmx: a pager link asks for the same
URL with `HX-Target: list` and gets only the table back. Buttons that change an account
answer htmx with the changed row (errors included, with status 200, because htmx does not
swap error responses); without JavaScript the forms post and redirect as usual.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from cwn.access import sessions, users
from cwn.access.errors import AccessError
from cwn.db.base import utcnow
from cwn.db.models import Organization
from cwn.db.models_partners import Partner
from cwn.db.models_web import ROLES, User
from cwn.deliver.mailer import MailError
from cwn.feedback.cases import source_stats
from cwn.web import charts, console, paging, trends
from cwn.web.deps import DB, Operator
from cwn.web.i18n import N_, gettext
from cwn.web.invitations import send_approval, send_invitation
from cwn.web.pages.account import ROLE_LABELS
from cwn.web.render import fragment, page, translate

log = logging.getLogger("cwn.web.operator")

router = APIRouter()

Page = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=paging.MAX_PER_PAGE)]
Filter = Annotated[str, Query(max_length=255)]

STATUS_LABELS = {"invited": N_("invited"), "pending": N_("waiting for approval"),
                 "active": N_("active"), "disabled": N_("disabled")}


def _link(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None or "" drops one)."""
    params = {k: v for k, v in request.query_params.items() if k not in changes}
    params.update({k: str(v) for k, v in changes.items() if v not in (None, "")})
    return request.url.path + ("?" + urlencode(params) if params else "")


def _list(request: Request, viewer: Operator, template: str, part: str,
          **ctx: Any) -> HTMLResponse:
    """The whole page, or only its list when htmx asks for it (paging, filters)."""
    ctx["link"] = lambda **kw: _link(request, **kw)
    ctx.setdefault("role_labels", ROLE_LABELS)
    ctx.setdefault("status_labels", STATUS_LABELS)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "list":
        return fragment(request, part, viewer, **ctx)
    return page(request, template, viewer, **ctx)


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# -- dashboard and ingest -------------------------------------------------------------------------
@router.get("/operator")
def dashboard(request: Request, s: DB, viewer: Operator) -> HTMLResponse:
    labels, series = trends.intake(s)
    named = [charts.Series(translate(request, viewer, x.name), x.values, x.css)
             for x in series]
    chart = charts.bars(labels, named, title=translate(
        request, viewer, "Events received per day, last 30 days"), bar_width=6, gap=4)
    return page(request, "operator/dashboard.html", viewer, o=console.overview(s),
                feeds=console.feeds(s)[:10], chart=chart)


@router.get("/operator/reports")
def reports(request: Request, s: DB, viewer: Operator, feed: Filter = "",
            report_type: Filter = "", page_: Annotated[Page, Query(alias="page")] = 1,
            per_page: PerPage = paging.DEFAULT_PER_PAGE) -> HTMLResponse:
    listing = console.reports(s, feed=feed or None, report_type=report_type or None,
                              page=page_, per_page=per_page)
    return _list(request, viewer, "operator/reports.html", "operator/_reports.html",
                 reports=listing, feeds=console.feeds(s), feed=feed, report_type=report_type,
                 stats=source_stats(s, since=utcnow() - timedelta(days=90)))


@router.get("/operator/quarantine")
def quarantine(request: Request, s: DB, viewer: Operator, report: Filter = "",
               reason: Filter = "", page_: Annotated[Page, Query(alias="page")] = 1,
               per_page: PerPage = paging.DEFAULT_PER_PAGE) -> HTMLResponse:
    listing = console.quarantine(s, report=report or None, reason=reason or None,
                                 page=page_, per_page=per_page)
    return _list(request, viewer, "operator/quarantine.html", "operator/_quarantine.html",
                 rows=listing, report=report, reason=reason,
                 the_report=console.report(s, report) if report else None,
                 reasons=console.quarantine_reasons(s, report=report or None))


@router.get("/operator/unattributed")
def unattributed(request: Request, viewer: Operator,
                 days: Annotated[int, Query(ge=0, le=36_500)] = 30,
                 top: Annotated[int, Query(ge=1, le=200)] = 20) -> HTMLResponse:
    """`days=0` means the whole archive."""
    svc = request.app.state.svc
    since = (utcnow() - timedelta(days=days)).date() if days else None
    summary = console.unattributed(svc.events, since=since, top=top)
    return page(request, "operator/unattributed.html", viewer, u=summary, days=days,
                since=since)


# -- partners -------------------------------------------------------------------------------------
@router.get("/operator/partners")
def partners(request: Request, s: DB, viewer: Operator) -> HTMLResponse:
    return page(request, "operator/partners.html", viewer, partners=console.partners(s))


@router.get("/operator/partners/{partner_id}")
def partner(request: Request, s: DB, viewer: Operator, partner_id: str) -> HTMLResponse:
    detail = console.partner(s, partner_id)
    if detail is None:
        raise HTTPException(404, "no partner with this id")
    return page(request, "operator/partner.html", viewer, d=detail)


# -- notifications --------------------------------------------------------------------------------
@router.get("/operator/notifications")
def notifications(request: Request, s: DB, viewer: Operator, state: Filter = "",
                  org: Filter = "", page_: Annotated[Page, Query(alias="page")] = 1,
                  per_page: PerPage = paging.DEFAULT_PER_PAGE,
                  bounce_page: Page = 1) -> HTMLResponse:
    return _list(request, viewer, "operator/notifications.html",
                 "operator/_notifications.html",
                 rows=console.notifications(s, state=state or None, org_id=org or None,
                                            page=page_, per_page=per_page),
                 bounces=console.bounces(s, page=bounce_page, per_page=20),
                 states=console.notification_states(s), state=state, org=org)


# -- audit ----------------------------------------------------------------------------------------
@router.get("/operator/audit")
def audit(request: Request, s: DB, viewer: Operator, entity: Filter = "", actor: Filter = "",
          entity_id: Filter = "", page_: Annotated[Page, Query(alias="page")] = 1,
          per_page: PerPage = paging.DEFAULT_PER_PAGE) -> HTMLResponse:
    listing = console.audit(s, entity=entity or None, actor=actor or None,
                            entity_id=entity_id or None, page=page_, per_page=per_page)
    return _list(request, viewer, "operator/audit.html", "operator/_audit.html",
                 rows=listing, entities=console.audit_entities(s), entity=entity,
                 actor=actor, entity_id=entity_id, changed=console.changed_fields)


# -- self-sign-ups --------------------------------------------------------------------------------
@router.get("/operator/signups")
def signups(request: Request, s: DB, viewer: Operator, done: Filter = "") -> HTMLResponse:
    return page(request, "operator/signups.html", viewer, signups=console.pending_signups(s),
                done=done)


def _signup_answer(request: Request, s: DB, viewer: Operator, user_id: str,
                   message: str, error: str | None = None, status: int = 200) -> Response:
    """htmx gets the sign-up's card back (with the outcome); a plain form a redirect, or the
    page with the error."""
    if _is_htmx(request):
        pending = [p for p in console.pending_signups(s) if p.id == user_id]
        return fragment(request, "operator/_signup.html", viewer,
                        p=pending[0] if pending else None, message=message, error=error,
                        user_id=user_id)
    if error:
        return page(request, "operator/signups.html", viewer, status_code=status,
                    signups=console.pending_signups(s), error=error, done="")
    return RedirectResponse(_link_done("/operator/signups", message), status_code=303)


def _link_done(path: str, message: str) -> str:
    return f"{path}?{urlencode({'done': message})}"


@router.post("/operator/signups/{user_id}/approve")
def approve_signup(request: Request, s: DB, viewer: Operator, user_id: str,
                   target: Annotated[str, Form(pattern="^(existing|new)$")] = "new",
                   org_id: Annotated[str, Form(max_length=128)] = "") -> Response:
    """Link the sign-up to an existing organisation (`target=existing`, `org_id`) or create
    one from what the person told us (`target=new`)."""
    lang = viewer.language
    if target == "existing" and not org_id.strip():
        problem = gettext(lang, "Choose the organisation to link this account to.")
        return _signup_answer(request, s, viewer, user_id, "", problem, 422)
    try:
        user = users.approve(s, user_id, viewer.actor,
                             org_id=org_id.strip() if target == "existing" else None)
    except AccessError as exc:
        s.rollback()
        return _signup_answer(request, s, viewer, user_id, "", gettext(lang, exc.message),
                              exc.status)
    s.commit()
    org = s.get(Organization, user.org_id) if user.org_id else None
    org_name = org.name if org else str(user.org_id)
    message = gettext(lang, "Approved: {email} is now an administrator of {org}.").format(
        email=user.email, org=org_name)
    try:
        send_approval(request.app.state.svc.settings, user, org_name)
    except MailError as exc:
        log.warning("approval mail to %s failed: %s", user.email, exc)
        message += " " + gettext(lang, "The mail telling them could not be sent; let them "
                                 "know yourself.")
    return _signup_answer(request, s, viewer, user_id, message)


@router.post("/operator/signups/{user_id}/reject")
def reject_signup(request: Request, s: DB, viewer: Operator, user_id: str) -> Response:
    lang = viewer.language
    try:
        user = users.reject(s, user_id, viewer.actor)
    except AccessError as exc:
        s.rollback()
        return _signup_answer(request, s, viewer, user_id, "", gettext(lang, exc.message),
                              exc.status)
    s.commit()
    message = gettext(lang, "Rejected: {email} cannot sign in.").format(email=user.email)
    return _signup_answer(request, s, viewer, user_id, message)


# -- users ----------------------------------------------------------------------------------------
@router.get("/operator/users")
def users_page(request: Request, s: DB, viewer: Operator, role: Filter = "",
               status: Filter = "", q: Filter = "",
               page_: Annotated[Page, Query(alias="page")] = 1,
               per_page: PerPage = paging.DEFAULT_PER_PAGE) -> HTMLResponse:
    return _users(request, s, viewer, role=role, status=status, q=q, page_=page_,
                  per_page=per_page)


def _users(request: Request, s: DB, viewer: Operator, *, role: str = "", status: str = "",
           q: str = "", page_: int = 1, per_page: int = paging.DEFAULT_PER_PAGE,
           status_code: int = 200, **extra: Any) -> HTMLResponse:
    listing = console.users(s, role=role or None, status=status or None, q=q or None,
                            page=page_, per_page=per_page)
    orgs = s.execute(select(Organization.id, Organization.name)
                     .order_by(Organization.name).limit(2000)).all()
    partner_rows = s.execute(select(Partner.id, Partner.name).order_by(Partner.name)).all()
    if status_code != 200:
        return page(request, "operator/users.html", viewer, status_code=status_code,
                    rows=listing, role=role, status=status, q=q, roles=ROLES,
                    states=console.USER_STATES, orgs=orgs, partners=partner_rows,
                    role_labels=ROLE_LABELS, status_labels=STATUS_LABELS,
                    link=lambda **kw: _link(request, **kw), **extra)
    return _list(request, viewer, "operator/users.html", "operator/_users.html",
                 rows=listing, role=role, status=status, q=q, roles=ROLES,
                 states=console.USER_STATES, orgs=orgs, partners=partner_rows, **extra)


def _user_answer(request: Request, s: DB, viewer: Operator, user: User, message: str,
                 error: str | None = None, status: int = 200) -> Response:
    if _is_htmx(request):
        row = s.execute(console.users_query().where(User.id == user.id)).first()
        return fragment(request, "operator/_user_row.html", viewer, u=row, message=message,
                        error=error, role_labels=ROLE_LABELS, status_labels=STATUS_LABELS)
    if error:
        return _users(request, s, viewer, status_code=status, error=error)
    return RedirectResponse(_link_done("/operator/users", message), status_code=303)


def _user(s: DB, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise HTTPException(404, "no account with this id")
    return user


@router.post("/operator/users/{user_id}/reset-totp")
def reset_totp(request: Request, s: DB, viewer: Operator, user_id: str) -> Response:
    """For a lost phone: the next sign-in sets up a new second factor. Open sessions end,
    in case the phone was stolen rather than lost."""
    lang = viewer.language
    user = _user(s, user_id)
    users.reset_totp(s, user, viewer.actor)
    sessions.end_all(s, user.id)
    s.commit()
    message = gettext(lang, "Two-step sign-in reset for {email}: it is set up again at the "
                      "next sign-in.").format(email=user.email)
    return _user_answer(request, s, viewer, user, message)


@router.post("/operator/users/{user_id}/status")
def set_status(request: Request, s: DB, viewer: Operator, user_id: str,
               status: Annotated[str, Form(pattern="^(active|disabled)$")]) -> Response:
    lang = viewer.language
    user = _user(s, user_id)
    problem = None
    if user.id == viewer.user.id:
        problem = gettext(lang, "You cannot disable or enable your own account.")
    elif status == "active" and user.status != "disabled":
        problem = gettext(lang, "Only a disabled account can be enabled; approve sign-ups "
                          "on the sign-ups page.")
    elif status == "active" and user.role.startswith("org_") and not user.org_id:
        problem = gettext(lang, "This account has no organisation; approve it as a sign-up "
                          "instead.")
    elif status == "active" and not user.password_hash:
        problem = gettext(lang, "This account never chose a password; invite the person "
                          "again.")
    if problem:
        return _user_answer(request, s, viewer, user, "", problem, 422)
    if user.status != status:
        users.set_status(s, user, status, viewer.actor)
        if status == "disabled":
            sessions.end_all(s, user.id)
        s.commit()
    message = (gettext(lang, "{email} is disabled and signed out.") if status == "disabled"
               else gettext(lang, "{email} can sign in again.")).format(email=user.email)
    return _user_answer(request, s, viewer, user, message)


@router.post("/operator/users/invite")
def invite(request: Request, s: DB, viewer: Operator,
           email: Annotated[str, Form(max_length=320)],
           role: Annotated[str, Form(max_length=32)],
           org_id: Annotated[str, Form(max_length=128)] = "",
           partner_id: Annotated[str, Form(max_length=128)] = "",
           name: Annotated[str, Form(max_length=255)] = "",
           language: Annotated[str, Form(pattern="^(|nl|en)$")] = "") -> HTMLResponse:
    """Invite a person in any role; the one-time link is mailed (Dutch and English) and
    also shown, so the desk can hand it over another way when mail fails."""
    lang = viewer.language
    form = {"email": email, "role": role, "org_id": org_id, "partner_id": partner_id,
            "name": name, "language": language}
    try:
        user, raw = users.invite(
            s, request.app.state.svc.settings, email=email, role=role, actor=viewer.actor,
            org_id=org_id.strip() if role in ("org_admin", "org_user") else None,
            partner_id=partner_id.strip() if role == "partner_admin" else None,
            name=name.strip() or None, language=language or None)
    except AccessError as exc:
        s.rollback()
        return _users(request, s, viewer, status_code=exc.status, error=gettext(lang, exc.message),
                      form=form)
    s.commit()
    settings = request.app.state.svc.settings
    link = f"{settings.public_url.rstrip('/')}/invite/{raw}"
    mail_error = None
    try:
        send_invitation(settings, user, link)
    except (MailError, OSError) as exc:
        log.warning("invitation mail to %s failed: %s", user.email, exc)
        mail_error = str(exc)
    return _users(request, s, viewer, invited=user, invite_link=link, mail_error=mail_error)
