"""An organisation's own contacts: kept by its admins in the portal, and confirmed now and
then so that notifications do not go to a mailbox nobody reads any more.

A contact's confirmation state lives beside it in `contact_confirmations` (one row per
contact, created on first need), so the registry import format stays as it is. Contacts
imported by the operator have no row until they are confirmed or reminded: their age counts
from `contacts.created_at`.

Reminders go out when the last confirmation is older than `contact_confirm_days`, at most once
per `REMINDER_GAP` per contact, to the contact address itself: it is the mailbox that must
still work. The mail carries a one-time link; opening it (GET) only shows a button, because
mail scanners fetch links, and the POST behind the button confirms.

Every change is audited (entity `contact`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.access.secrets import random_token, token_hash
from cwn.config import Settings
from cwn.db.base import utcnow
from cwn.db.models import Contact, Organization
from cwn.db.models_notify import Preference
from cwn.db.models_web import ContactConfirmation
from cwn.registry.audit import Snapshot, contact_key, contact_snapshot, record
from cwn.registry.format import EMAIL_RE

log = logging.getLogger(__name__)

CONTACT_ROLES: tuple[str, ...] = ("security", "abuse", "technical", "management", "privacy",
                                  "other")
LANGUAGES: tuple[str, ...] = ("nl", "en")
REMINDER_GAP = timedelta(days=14)
"""A contact is not reminded more often than this, however long it stays unconfirmed."""
MAX_PRIORITY = 1_000_000

ROLE_LABELS: dict[str, tuple[str, str]] = {
    "security": ("beveiliging", "security"),
    "abuse": ("abuse", "abuse"),
    "technical": ("techniek", "technical"),
    "management": ("management", "management"),
    "privacy": ("privacy", "privacy"),
    "other": ("overig", "other"),
}


class _Unset:
    """Marks an argument that was not given (None is a value: "clear" or "inherit")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """A contact as the portal and the API show it."""

    id: int
    org_id: str
    email: str
    role: str
    roles: list[str]  # extra roles beyond `role`
    language: str | None
    priority: int
    enabled: bool
    created_at: datetime
    confirmed_at: datetime | None
    confirmed_by: str | None
    reminded_at: datetime | None

    @property
    def last_confirmed(self) -> datetime:
        """What the reminder clock counts from."""
        return self.confirmed_at or self.created_at


@dataclass(frozen=True, slots=True)
class DueContact:
    contact_id: int
    org_id: str
    org_name: str
    email: str
    role: str
    roles: list[str]
    language: str
    priority: int
    last_confirmed: datetime
    reminded_at: datetime | None


# -- validation -----------------------------------------------------------------------------


def _bad(key: str, message: str) -> AccessError:
    return AccessError(key, message, 422)


def normal_email(value: Any) -> str:
    """The importer's normal form: the local part as given, the domain in lower case."""
    if not isinstance(value, str):
        raise _bad("bad_email", "the e-mail address must be text")
    v = value.strip()
    if not v or len(v) > 320 or not EMAIL_RE.match(v):
        raise _bad("bad_email", f"not an e-mail address: {v[:80]!r}")
    local, _, domain = v.rpartition("@")
    return f"{local}@{domain.lower()}"


def _role(value: Any) -> str:
    v = value.strip().lower() if isinstance(value, str) else value
    if v not in CONTACT_ROLES:
        raise _bad("bad_role", f"unknown contact role {value!r}; one of "
                   f"{', '.join(CONTACT_ROLES)}")
    return str(v)


def _roles(value: Any, main: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [x for x in value.replace(",", " ").split() if x]
    if not isinstance(value, list | tuple | set | frozenset):
        raise _bad("bad_role", "extra roles must be a list of role names")
    out = sorted({_role(v) for v in value} - {main})
    return out


def _language(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if value not in LANGUAGES:
        raise _bad("bad_language", f"unknown language {value!r}; one of nl, en")
    return str(value)


def _priority(value: Any) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        p = int(value)
    except (TypeError, ValueError):
        raise _bad("bad_priority", f"the priority must be a whole number, got {value!r}"
                   ) from None
    if not 0 <= p <= MAX_PRIORITY:
        raise _bad("bad_priority", f"the priority must be between 0 and {MAX_PRIORITY} "
                   "(lower is told first)")
    return p


def _enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad("bad_enabled", "enabled must be true or false")
    return value


# -- reading --------------------------------------------------------------------------------


def _info(c: Contact, conf: ContactConfirmation | None) -> ContactInfo:
    return ContactInfo(
        id=c.id, org_id=c.org_id, email=c.email, role=c.role,
        roles=list(conf.roles or []) if conf is not None else [],
        language=c.language, priority=c.priority, enabled=c.enabled, created_at=c.created_at,
        confirmed_at=conf.confirmed_at if conf is not None else None,
        confirmed_by=conf.confirmed_by if conf is not None else None,
        reminded_at=conf.reminded_at if conf is not None else None)


def list_contacts(session: Session, org_id: str) -> list[ContactInfo]:
    """The organisation's contacts, first-told first."""
    rows = session.execute(
        select(Contact, ContactConfirmation)
        .outerjoin(ContactConfirmation, ContactConfirmation.contact_id == Contact.id)
        .where(Contact.org_id == org_id)
        .order_by(Contact.priority, Contact.id)).all()
    return [_info(c, conf) for c, conf in rows]


def get(session: Session, org_id: str, contact_id: int) -> Contact:
    """The contact, if it belongs to `org_id`; another organisation's contact is as unknown
    as one that does not exist (404), so ids reveal nothing."""
    ok = isinstance(contact_id, int) and 0 < contact_id < 2**63
    c = session.get(Contact, contact_id) if ok else None
    if c is None or c.org_id != org_id:
        raise AccessError("contact_not_found", "no such contact", 404)
    return c


def info(session: Session, org_id: str, contact_id: int) -> ContactInfo:
    c = get(session, org_id, contact_id)
    return _info(c, session.get(ContactConfirmation, c.id))


def snapshot(c: Contact, conf: ContactConfirmation | None) -> Snapshot:
    """The audit form: the registry's contact snapshot plus the extra roles."""
    return {**contact_snapshot(c), "roles": list(conf.roles or []) if conf else []}


def _confirmation(session: Session, contact_id: int) -> ContactConfirmation:
    conf = session.get(ContactConfirmation, contact_id)
    if conf is None:
        conf = ContactConfirmation(contact_id=contact_id, channel="mail", roles=None)
        session.add(conf)
    return conf


def _taken(session: Session, org_id: str, email: str, but: int | None = None) -> bool:
    q = select(Contact.id).where(Contact.org_id == org_id,
                                 func.lower(Contact.email) == email.lower())
    if but is not None:
        q = q.where(Contact.id != but)
    return session.scalar(q.limit(1)) is not None


# -- changing -------------------------------------------------------------------------------


def add(session: Session, org_id: str, *, email: Any, actor: str, role: Any = "security",
        roles: Any = None, language: Any = None, priority: Any = 100, enabled: Any = True
        ) -> ContactInfo:
    """A new contact. Whoever adds it vouches for it, so it starts confirmed by them."""
    if session.get(Organization, org_id) is None:
        raise AccessError("unknown_org", f"unknown organisation {org_id!r}", 404)
    email = normal_email(email)
    role = _role(role)
    extra = _roles(roles, role)
    if _taken(session, org_id, email):
        raise AccessError("contact_exists", f"{email} is already a contact", 409)
    c = Contact(org_id=org_id, email=email, role=role, source="portal",
                language=_language(language), priority=_priority(priority),
                enabled=_enabled(enabled), created_at=utcnow())
    session.add(c)
    session.flush()
    now = utcnow()
    conf = ContactConfirmation(contact_id=c.id, channel="mail", roles=extra or None,
                               confirmed_at=now, confirmed_by=actor)
    session.add(conf)
    session.flush()
    record(session, actor, "create", "contact", contact_key(org_id, email), None,
           snapshot(c, conf))
    return _info(c, conf)


def update(session: Session, org_id: str, contact_id: int, *, actor: str, email: Any = UNSET,
           role: Any = UNSET, roles: Any = UNSET, language: Any = UNSET, priority: Any = UNSET,
           enabled: Any = UNSET) -> ContactInfo:
    """Change the given fields. A new address counts as confirmed by the person who typed
    it, and any confirmation link sent to the old one stops working."""
    c = get(session, org_id, contact_id)
    conf = session.get(ContactConfirmation, c.id)
    before = snapshot(c, conf)
    new: dict[str, Any] = {}
    if email is not UNSET:
        new["email"] = normal_email(email)
        if new["email"] != c.email and _taken(session, org_id, new["email"], but=c.id):
            raise AccessError("contact_exists", f"{new['email']} is already a contact", 409)
    if role is not UNSET:
        new["role"] = _role(role)
    if language is not UNSET:
        new["language"] = _language(language)
    if priority is not UNSET:
        new["priority"] = _priority(priority)
    if enabled is not UNSET:
        new["enabled"] = _enabled(enabled)
    main = new.get("role", c.role)
    current_extra = list(conf.roles or []) if conf else []
    extra = _roles(roles, main) if roles is not UNSET else sorted(set(current_extra) - {main})
    if extra != current_extra:
        conf = conf or _confirmation(session, c.id)
        conf.roles = extra or None
    if "email" in new and new["email"] != c.email:
        conf = conf or _confirmation(session, c.id)
        conf.confirmed_at, conf.confirmed_by, conf.token_hash = utcnow(), actor, None
    for k, v in new.items():
        setattr(c, k, v)
    session.flush()
    after = snapshot(c, conf)
    if after != before:
        record(session, actor, "update", "contact", contact_key(org_id, before["email"]),
               before, after)
    return _info(c, conf)


def remove(session: Session, org_id: str, contact_id: int, *, actor: str) -> None:
    """Delete a contact with its own preferences and confirmation state (both audited)."""
    c = get(session, org_id, contact_id)
    conf = session.get(ContactConfirmation, c.id)
    before = snapshot(c, conf)
    prefs = session.scalars(select(Preference).where(Preference.org_id == org_id,
                                                     Preference.contact_id == c.id)).all()
    from cwn.registry.preferences import row_snapshot

    for p in prefs:
        record(session, actor, "delete", "preference", contact_key(org_id, c.email),
               row_snapshot(p), None)
        session.delete(p)
    if conf is not None:
        session.delete(conf)
    session.flush()
    session.delete(c)
    session.flush()
    record(session, actor, "delete", "contact", contact_key(org_id, before["email"]), before,
           None)


# -- confirmation ---------------------------------------------------------------------------


def confirm(session: Session, org_id: str, contact_id: int, *, actor: str,
            now: datetime | None = None) -> ContactInfo:
    """The organisation's admin says in the portal that this contact is still right."""
    c = get(session, org_id, contact_id)
    return _confirm(session, c, actor, now or utcnow(), via="portal")


def _confirm(session: Session, c: Contact, actor: str, now: datetime, *, via: str
             ) -> ContactInfo:
    conf = _confirmation(session, c.id)
    before = {**snapshot(c, conf), "confirmed_at": _iso(conf.confirmed_at)}
    conf.confirmed_at, conf.confirmed_by, conf.token_hash = now, actor, None
    session.flush()
    record(session, actor, "update", "contact", contact_key(c.org_id, c.email), before,
           {**snapshot(c, conf), "confirmed_at": _iso(now), "event": "confirmed", "via": via})
    return _info(c, conf)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def by_token(session: Session, raw: str) -> ContactInfo:
    """The contact a confirmation link is for (nothing changes: this is the GET)."""
    c, conf = _by_token(session, raw)
    return _info(c, conf)


def _by_token(session: Session, raw: str) -> tuple[Contact, ContactConfirmation]:
    conf = None
    if raw and len(raw) <= 200:
        conf = session.scalar(select(ContactConfirmation).where(
            ContactConfirmation.token_hash == token_hash(raw)))
    c = session.get(Contact, conf.contact_id) if conf is not None else None
    if conf is None or c is None:
        raise AccessError("confirmation_invalid", "this confirmation link is unknown, already "
                          "used or replaced by a newer one", 404)
    return c, conf


def confirm_by_token(session: Session, raw: str, *, now: datetime | None = None
                     ) -> ContactInfo:
    """The contact itself clicked the button behind the mailed link; the link is then used."""
    c, _conf = _by_token(session, raw)
    return _confirm(session, c, f"contact:{c.email}", now or utcnow(), via="link")


# -- reminders ------------------------------------------------------------------------------


def due_for_reminder(session: Session, now: datetime, days: int) -> list[DueContact]:
    """Enabled contacts not confirmed for `days` days and not reminded in the last
    `REMINDER_GAP`, oldest confirmation first. One query, however many contacts."""
    cutoff = now - timedelta(days=days)
    last = func.coalesce(ContactConfirmation.confirmed_at, Contact.created_at)
    rows = session.execute(
        select(Contact.id, Contact.org_id, Organization.name, Organization.language,
               Contact.email, Contact.role, Contact.language, Contact.priority,
               Contact.created_at, ContactConfirmation.confirmed_at,
               ContactConfirmation.reminded_at, ContactConfirmation.roles)
        .join(Organization, Organization.id == Contact.org_id)
        .outerjoin(ContactConfirmation, ContactConfirmation.contact_id == Contact.id)
        .where(Contact.enabled.is_(True),
               or_(and_(ContactConfirmation.confirmed_at.is_not(None),
                        ContactConfirmation.confirmed_at < cutoff),
                   and_(ContactConfirmation.confirmed_at.is_(None),
                        Contact.created_at < cutoff)),
               or_(ContactConfirmation.reminded_at.is_(None),
                   ContactConfirmation.reminded_at <= now - REMINDER_GAP))
        .order_by(last, Contact.id)).all()
    out = []
    for r in rows:
        lang = r[6] or r[3] or "nl"
        out.append(DueContact(
            contact_id=r[0], org_id=r[1], org_name=r[2], email=r[4], role=r[5],
            roles=list(r[11] or []), language=lang if lang in LANGUAGES else "en",
            priority=r[7], last_confirmed=r[9] or r[8], reminded_at=r[10]))
    return out


def confirm_url(settings: Settings, raw: str) -> str:
    return f"{settings.public_url.rstrip('/')}/contacts/confirm/{raw}"


def reminder_mail(settings: Settings, due: DueContact, raw: str) -> tuple[str, str]:
    """(subject, text) of a reminder: Dutch first, then English."""
    from cwn.deliver import letters

    roles = [due.role, *due.roles]
    return letters.render(
        "contact_reminder", email=due.email, org=due.org_name, desk=settings.desk_name,
        roles={lang: ", ".join(ROLE_LABELS.get(r, (r, r))[i] for r in roles)
               for i, lang in enumerate(("nl", "en"))},
        since=due.last_confirmed.strftime("%Y-%m-%d"), link=confirm_url(settings, raw),
        portal=f"{settings.public_url.rstrip('/')}/contacts", days=REMINDER_GAP.days)


def send_reminders(settings: Settings, session: Session, now: datetime | None = None, *,
                   days: int | None = None, dry_run: bool = False,
                   due: Sequence[DueContact] | None = None) -> int:
    """Mail every due contact a fresh one-time link; returns how many mails went out (or,
    with `dry_run`, would go out). A contact whose mail fails keeps its state and is tried
    again on the next run; the others still get theirs.

    Each sent reminder is flushed at once, so a link in a delivered mail always has its
    token in the caller's transaction.
    """
    from cwn.deliver.mailer import MailError, send_mail

    now = now or utcnow()
    todo = list(due) if due is not None else due_for_reminder(
        session, now, days if days is not None else settings.contact_confirm_days)
    if dry_run:
        return len(todo)
    sent = 0
    for d in todo:
        raw = random_token()
        subject, text = reminder_mail(settings, d, raw)
        try:
            send_mail(settings, to=d.email, subject=subject, text=text)
        except MailError as exc:
            log.warning("contact reminder to %s failed: %s", d.email, exc)
            continue
        conf = _confirmation(session, d.contact_id)
        conf.token_hash, conf.reminded_at = token_hash(raw), now
        session.flush()
        sent += 1
    return sent

