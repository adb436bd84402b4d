"""The organisation's contacts, notification preferences and portal users, plus the public
page behind a contact's confirmation link.

Organisation admins change, organisation users read. Every query is scoped by the viewer's
own organisation: an id from another organisation is "not found", never "forbidden", so
ids reveal nothing. Refused input re-shows the page with the reason in the viewer's language
(the registry's messages are English and may carry values; the portal shows a fixed,
translated sentence per error key instead).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from cwn.access import sessions, users
from cwn.access.errors import AccessError
from cwn.db.models import Organization
from cwn.db.models_web import User
from cwn.deliver.mailer import MailError
from cwn.events.fields import SEVERITIES
from cwn.registry import contacts as registry_contacts
from cwn.registry import preferences as registry_prefs
from cwn.registry.contacts import CONTACT_ROLES
from cwn.registry.preferences import TAXONOMY_NAMES
from cwn.web.deps import DB, MaybeViewer, OrgAdmin, OrgMember, Viewer, services
from cwn.web.i18n import N_, gettext
from cwn.web.invitations import send_invitation
from cwn.web.render import page

log = logging.getLogger(__name__)
router = APIRouter()

ROLE_LABELS = {"security": N_("Security"), "abuse": N_("Abuse desk"),
               "technical": N_("Technical"), "management": N_("Management"),
               "privacy": N_("Privacy"), "other": N_("Other")}
TAXONOMY_LABELS = {
    "abusive-content": N_("Abusive content (spam)"),
    "malicious-code": N_("Malicious code (infections, malware)"),
    "information-gathering": N_("Information gathering (scanning)"),
    "intrusion-attempts": N_("Intrusion attempts"),
    "intrusions": N_("Intrusions (compromised systems)"),
    "availability": N_("Availability (DDoS)"),
    "information-content-security": N_("Information security (data leaks)"),
    "fraud": N_("Fraud (phishing)"),
    "vulnerable": N_("Vulnerable systems"),
    "other": N_("Other"),
    "test": N_("Test messages"),
}
SEVERITY_LABELS = {"info": N_("information"), "low": N_("low"), "medium": N_("medium"),
                   "high": N_("high"), "critical": N_("critical")}
USER_ROLE_LABELS = {"org_admin": N_("Organisation administrator"),
                    "org_user": N_("Organisation user")}
USER_STATUS_LABELS = {"invited": N_("invited"), "active": N_("active"),
                      "disabled": N_("disabled"), "pending": N_("pending")}
ERRORS = {
    "bad_email": N_("That is not a valid e-mail address."),
    "bad_role": N_("Choose a role from the list."),
    "bad_language": N_("Choose Dutch or English."),
    "bad_priority": N_("The priority must be a whole number from 0 to 1000000 (lower is "
                       "told first)."),
    "contact_exists": N_("This address is already one of your contacts."),
    "bad_taxonomies": N_("Choose kinds of incidents from the list."),
    "no_taxonomies": N_("Choose at least one kind of incident, or opt out."),
    "bad_min_severity": N_("Choose a minimum severity from the list."),
    "bad_mode": N_("Choose immediate or daily digest."),
    "bad_paused_until": N_("A pause must end on a date in the future."),
    "bad_opted_out": N_("Choose whether to receive notifications."),
    "user_exists": N_("This address already has an account."),
    "own_account": N_("You cannot disable your own account."),
    "mail_failed": N_("The invitation could not be mailed; nothing was changed. Please try "
                      "again later."),
}
# Refusals re-raised to the app's error page are translated by their message: list those
# messages here so they are extracted into the catalogue.
_ERROR_PAGE_MESSAGES = (N_("no such contact"), N_("no such user"),
                        N_("this confirmation link is unknown, already used or replaced by "
                           "a newer one"))
_LABELS: dict[str, Any] = {"role_labels": ROLE_LABELS, "taxonomy_labels": TAXONOMY_LABELS,
                           "severity_labels": SEVERITY_LABELS,
                           "user_role_labels": USER_ROLE_LABELS,
                           "user_status_labels": USER_STATUS_LABELS,
                           "contact_roles": CONTACT_ROLES, "taxonomies": TAXONOMY_NAMES,
                           "severities": SEVERITIES}


def _message(lang: str, exc: AccessError) -> str:
    return gettext(lang, ERRORS.get(exc.key, exc.message))


def _org_id(viewer: Viewer) -> str:
    assert viewer.org_id is not None  # org_member / org_admin guarantee it
    return viewer.org_id


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# -- the public confirmation link -------------------------------------------------------------
# Declared before /contacts/{contact_id}/… so "confirm" is never read as a contact id.


@router.get("/contacts/confirm/{token}")
def confirm_link(request: Request, s: DB, viewer: MaybeViewer, token: str) -> HTMLResponse:
    """Only shows a button: mail scanners open links, and opening must change nothing."""
    c = registry_contacts.by_token(s, token)
    org = s.get(Organization, c.org_id)
    return page(request, "contacts/confirm.html", viewer, contact=c, org=org, done=False,
                **_LABELS)


@router.post("/contacts/confirm/{token}")
def confirm_link_post(request: Request, s: DB, viewer: MaybeViewer, token: str
                      ) -> HTMLResponse:
    c = registry_contacts.confirm_by_token(s, token)
    s.commit()
    org = s.get(Organization, c.org_id)
    return page(request, "contacts/confirm.html", viewer, contact=c, org=org, done=True,
                **_LABELS)


# -- contacts ---------------------------------------------------------------------------------


def _contacts_page(request: Request, s: DB, viewer: Viewer, *, status_code: int = 200,
                   error: str | None = None, form: dict[str, Any] | None = None
                   ) -> HTMLResponse:
    org_id = _org_id(viewer)
    settings = services(request).settings
    return page(request, "contacts/index.html", viewer, status_code=status_code,
                contacts=registry_contacts.list_contacts(s, org_id),
                org=s.get(Organization, org_id), can_edit=viewer.role == "org_admin",
                confirm_days=settings.contact_confirm_days, now=datetime.now(UTC),
                error=error, form=form or {}, done=request.query_params.get("done"),
                **_LABELS)


@router.get("/contacts")
def contacts_list(request: Request, s: DB, viewer: OrgMember) -> HTMLResponse:
    return _contacts_page(request, s, viewer)


def _contact_fields(email: str, role: str, roles: list[str], language: str, priority: str,
                    enabled: str) -> dict[str, Any]:
    return {"email": email, "role": role, "roles": roles, "language": language or None,
            "priority": priority.strip() or "100", "enabled": enabled == "1"}


@router.post("/contacts")
def contacts_add(request: Request, s: DB, viewer: OrgAdmin,
                 email: Annotated[str, Form(max_length=400)] = "",
                 role: Annotated[str, Form(max_length=32)] = "security",
                 roles: Annotated[list[str] | None, Form()] = None,
                 language: Annotated[str, Form(max_length=8)] = "",
                 priority: Annotated[str, Form(max_length=12)] = "100",
                 enabled: Annotated[str, Form(max_length=4)] = "1") -> Response:
    fields = _contact_fields(email, role, roles or [], language, priority, enabled)
    try:
        registry_contacts.add(s, _org_id(viewer), actor=viewer.actor, **fields)
        s.commit()
    except AccessError as exc:
        s.rollback()
        return _contacts_page(request, s, viewer, status_code=exc.status,
                              error=_message(viewer.language, exc), form=fields)
    return _see_other("/contacts?done=added")


@router.get("/contacts/{contact_id}/edit")
def contacts_edit(request: Request, s: DB, viewer: OrgAdmin, contact_id: int) -> HTMLResponse:
    c = registry_contacts.info(s, _org_id(viewer), contact_id)
    return page(request, "contacts/edit.html", viewer, contact=c, error=None,
                form={"email": c.email, "role": c.role, "roles": c.roles,
                      "language": c.language, "priority": c.priority, "enabled": c.enabled},
                **_LABELS)


@router.post("/contacts/{contact_id}/edit")
def contacts_update(request: Request, s: DB, viewer: OrgAdmin, contact_id: int,
                    email: Annotated[str, Form(max_length=400)] = "",
                    role: Annotated[str, Form(max_length=32)] = "security",
                    roles: Annotated[list[str] | None, Form()] = None,
                    language: Annotated[str, Form(max_length=8)] = "",
                    priority: Annotated[str, Form(max_length=12)] = "100",
                    enabled: Annotated[str, Form(max_length=4)] = "") -> Response:
    org_id = _org_id(viewer)
    fields = _contact_fields(email, role, roles or [], language, priority, enabled)
    try:
        registry_contacts.update(s, org_id, contact_id, actor=viewer.actor, **fields)
        s.commit()
    except AccessError as exc:
        s.rollback()
        if exc.status == 404:
            raise
        c = registry_contacts.info(s, org_id, contact_id)
        return page(request, "contacts/edit.html", viewer, status_code=exc.status,
                    contact=c, error=_message(viewer.language, exc), form=fields, **_LABELS)
    return _see_other("/contacts?done=saved")


@router.post("/contacts/{contact_id}/remove")
def contacts_remove(s: DB, viewer: OrgAdmin, contact_id: int) -> Response:
    registry_contacts.remove(s, _org_id(viewer), contact_id, actor=viewer.actor)
    s.commit()
    return _see_other("/contacts?done=removed")


@router.post("/contacts/{contact_id}/confirm")
def contacts_confirm(s: DB, viewer: OrgAdmin, contact_id: int) -> Response:
    registry_contacts.confirm(s, _org_id(viewer), contact_id, actor=viewer.actor)
    s.commit()
    return _see_other("/contacts?done=confirmed")


# -- preferences ------------------------------------------------------------------------------


def _prefs_page(request: Request, s: DB, viewer: Viewer, *, status_code: int = 200,
                error: str | None = None, error_scope: str | None = None) -> HTMLResponse:
    org_id = _org_id(viewer)
    return page(request, "contacts/preferences.html", viewer, status_code=status_code,
                org=s.get(Organization, org_id),
                org_prefs=registry_prefs.org_preferences(s, org_id),
                contact_prefs=registry_prefs.contact_preferences(s, org_id),
                can_edit=viewer.role == "org_admin", error=error, error_scope=error_scope,
                done=request.query_params.get("done"), **_LABELS)


@router.get("/preferences")
def preferences(request: Request, s: DB, viewer: OrgMember) -> HTMLResponse:
    return _prefs_page(request, s, viewer)


def _pause(value: str) -> datetime | str | None:
    """A date from the form: the pause lasts until the start of that day (UTC)."""
    value = value.strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return value  # the registry refuses it with its message
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


@router.post("/preferences")
def preferences_save(request: Request, s: DB, viewer: OrgAdmin,
                     scope: Annotated[str, Form(max_length=24)] = "org",
                     taxonomy_choice: Annotated[str, Form(max_length=12)] = "all",
                     taxonomies: Annotated[list[str] | None, Form()] = None,
                     min_severity: Annotated[str, Form(max_length=16)] = "",
                     mode: Annotated[str, Form(max_length=16)] = "",
                     language: Annotated[str, Form(max_length=8)] = "",
                     receive: Annotated[str, Form(max_length=8)] = "",
                     paused_until: Annotated[str, Form(max_length=32)] = "",
                     reset: Annotated[str, Form(max_length=4)] = "") -> Response:
    """One scope's form: `scope` is `org` or a contact id. For a contact, an empty field
    (or "as the organisation") stores NULL, which inherits the organisation's value."""
    org_id = _org_id(viewer)
    contact_id: int | None = None
    if scope != "org":
        if not scope.isdigit():
            raise AccessError("contact_not_found", "no such contact", 404)
        contact_id = int(scope)
    try:
        if reset and contact_id is not None:
            registry_prefs.reset(s, org_id, contact_id, actor=viewer.actor)
        else:
            registry_prefs.set_preferences(
                s, org_id, contact_id, actor=viewer.actor,
                taxonomies=(taxonomies or []) if taxonomy_choice == "chosen" else None,
                min_severity=min_severity or None, mode=mode or None,
                language=language or None,
                opted_out={"yes": False, "no": True}.get(receive),
                paused_until=_pause(paused_until))
        s.commit()
    except AccessError as exc:
        s.rollback()
        if exc.status == 404:
            raise
        return _prefs_page(request, s, viewer, status_code=exc.status,
                           error=_message(viewer.language, exc), error_scope=scope)
    return _see_other("/preferences?done=saved" + (f"#contact-{contact_id}"
                                                   if contact_id is not None else ""))


# -- users ------------------------------------------------------------------------------------


def _users_page(request: Request, s: DB, viewer: Viewer, *, status_code: int = 200,
                error: str | None = None, form: dict[str, Any] | None = None) -> HTMLResponse:
    org_id = _org_id(viewer)
    people = s.scalars(select(User).where(User.org_id == org_id)
                       .order_by(User.email)).all()
    return page(request, "contacts/users.html", viewer, status_code=status_code,
                users=people, org=s.get(Organization, org_id), error=error,
                form=form or {}, done=request.query_params.get("done"), **_LABELS)


@router.get("/users")
def users_list(request: Request, s: DB, viewer: OrgAdmin) -> HTMLResponse:
    return _users_page(request, s, viewer)


@router.post("/users/invite")
def users_invite(request: Request, s: DB, viewer: OrgAdmin,
                 email: Annotated[str, Form(max_length=400)] = "",
                 name: Annotated[str, Form(max_length=255)] = "",
                 role: Annotated[str, Form(max_length=16)] = "org_user",
                 language: Annotated[str, Form(max_length=8)] = "") -> Response:
    org_id = _org_id(viewer)
    form = {"email": email, "name": name, "role": role, "language": language}
    settings = services(request).settings
    try:
        if role not in USER_ROLE_LABELS:
            raise AccessError("bad_role", f"unknown role {role!r}", 422)
        address = users.normal_email(email)
        existing = s.scalar(select(User).where(User.email == address))
        # `invite` re-sends to an unaccepted invitation and moves it to the given
        # organisation: never let that take a person invited by another organisation.
        if existing is not None and existing.org_id != org_id:
            raise AccessError("user_exists", f"{address} already has an account", 409)
        user, raw = users.invite(s, settings, email=address, role=role, actor=viewer.actor,
                                 org_id=org_id, name=name.strip() or None,
                                 language=language if language in ("nl", "en") else None)
        link = f"{settings.public_url.rstrip('/')}/invite/{raw}"
        try:
            send_invitation(settings, user, link)
        except MailError as exc:
            log.warning("invitation mail to %s failed: %s", address, exc)
            raise AccessError("mail_failed", "the invitation could not be mailed", 502
                              ) from exc
        s.commit()
    except AccessError as exc:
        s.rollback()
        return _users_page(request, s, viewer, status_code=exc.status,
                           error=_message(viewer.language, exc), form=form)
    return _see_other("/users?done=invited")


def _org_user(s: DB, viewer: Viewer, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None or user.org_id != _org_id(viewer):
        raise AccessError("user_not_found", "no such user", 404)
    return user


@router.post("/users/{user_id}/disable")
def users_disable(request: Request, s: DB, viewer: OrgAdmin, user_id: str) -> Response:
    user = _org_user(s, viewer, user_id)
    if user.id == viewer.user.id:
        return _users_page(request, s, viewer, status_code=409, error=_message(
            viewer.language, AccessError("own_account", "", 409)))
    if user.status != "disabled":
        users.set_status(s, user, "disabled", viewer.actor)
        sessions.end_all(s, user.id)
        s.commit()
    return _see_other("/users?done=disabled")


@router.post("/users/{user_id}/enable")
def users_enable(s: DB, viewer: OrgAdmin, user_id: str) -> Response:
    """Undo a disable: back to active, or to invited when no password was ever set."""
    user = _org_user(s, viewer, user_id)
    if user.status == "disabled":
        users.set_status(s, user, "active" if user.password_hash else "invited",
                         viewer.actor)
        s.commit()
    return _see_other("/users?done=enabled")
