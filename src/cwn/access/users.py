"""Accounts: invitation, self-sign-up with operator approval, password and TOTP set-up,
and sign-in. Every change is audited (entity `user`), secrets never are."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cwn.access import passwords, totp
from cwn.access.errors import AccessError
from cwn.access.secrets import SecretBox, random_token, token_hash
from cwn.config import Settings
from cwn.db.base import new_id, utcnow
from cwn.db.models import Organization
from cwn.db.models_partners import Partner
from cwn.db.models_web import ADMIN_ROLES, ROLES, Invitation, User
from cwn.registry.audit import record

_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
TOTP_PURPOSE = "totp-seed"


def snapshot(u: User) -> dict[str, Any]:
    return {"email": u.email, "name": u.name, "role": u.role, "org_id": u.org_id,
            "partner_id": u.partner_id, "status": u.status, "language": u.language,
            "totp_enabled": u.totp_enabled}


def needs_totp(user: User) -> bool:
    return user.role in ADMIN_ROLES


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise AccessError("bad_email", f"not an e-mail address: {email!r}", 422)
    return email


def _check_role(s: Session, role: str, org_id: str | None, partner_id: str | None) -> None:
    if role not in ROLES:
        raise AccessError("bad_role", f"unknown role {role!r}; one of {', '.join(ROLES)}", 422)
    if role in ("org_admin", "org_user"):
        if not org_id or s.get(Organization, org_id) is None:
            raise AccessError("unknown_org", f"role {role} needs an existing organisation "
                              f"(got {org_id!r})", 422)
        if partner_id:
            raise AccessError("bad_role", "an organisation role has no partner", 422)
    elif role == "partner_admin":
        if not partner_id or s.get(Partner, partner_id) is None:
            raise AccessError("unknown_partner",
                              f"role {role} needs an existing partner (got {partner_id!r})",
                              422)
        if org_id:
            raise AccessError("bad_role", "a partner role has no organisation", 422)
    elif org_id or partner_id:
        raise AccessError("bad_role", "an operator belongs to no organisation or partner", 422)


def invite(s: Session, settings: Settings, *, email: str, role: str, actor: str,
           org_id: str | None = None, partner_id: str | None = None,
           name: str | None = None, language: str | None = None) -> tuple[User, str]:
    """Create an invited account and its one-time link token (returned once, stored hashed).
    Inviting an address that was invited but never accepted sends a fresh link."""
    email = normal_email(email)
    _check_role(s, role, org_id, partner_id)
    user = s.scalar(select(User).where(User.email == email))
    if user is not None and user.status != "invited":
        raise AccessError("user_exists", f"{email} already has an account", 409)
    if user is not None and (user.org_id, user.partner_id) != (org_id, partner_id):
        # An open invitation is never moved to another organisation or partner.
        raise AccessError("user_exists", f"{email} was already invited elsewhere", 409)
    if user is None:
        org = s.get(Organization, org_id) if org_id else None
        lang = language or (org.language if org else None) or "nl"
        user = User(id=new_id(), email=email, name=name, role=role, org_id=org_id,
                    partner_id=partner_id, status="invited", language=lang,
                    created_by=actor, created_at=utcnow())
        s.add(user)
        s.flush()  # the invitation's foreign key needs the row first
        record(s, actor, "create", "user", email, None, snapshot(user))
    else:
        before = snapshot(user)
        user.role, user.org_id, user.partner_id = role, org_id, partner_id
        record(s, actor, "update", "user", email, before, snapshot(user))
    raw = random_token()
    s.add(Invitation(token_hash=token_hash(raw), user_id=user.id, created_by=actor,
                     created_at=utcnow(),
                     expires_at=utcnow() + timedelta(days=settings.invitation_days)))
    s.flush()
    return user, raw


def invitation(s: Session, raw: str) -> tuple[Invitation, User]:
    inv = s.get(Invitation, token_hash(raw)) if raw else None
    if inv is None or inv.used_at is not None or inv.expires_at <= utcnow():
        raise AccessError("invitation_invalid", "this invitation link is unknown, used or "
                          "expired; ask for a new one", 404)
    user = s.get(User, inv.user_id)
    if user is None or user.status != "invited":
        raise AccessError("invitation_invalid", "this invitation link is no longer valid", 404)
    return inv, user


def accept(s: Session, raw: str, password: str) -> User:
    inv, user = invitation(s, raw)
    passwords.require_strong(password, user.email)
    before = snapshot(user)
    user.password_hash = passwords.hash_password(password)
    user.status = "active"
    inv.used_at = utcnow()
    record(s, f"user:{user.email}", "update", "user", user.email, before,
           {**snapshot(user), "event": "invitation_accepted"})
    return user


def signup(s: Session, *, email: str, password: str, name: str, organisation: str,
           kvk: str | None, note: str | None, language: str) -> User:
    """Self-sign-up: an organisation admin account that waits for an operator, who links it
    to an existing organisation or creates one."""
    email = normal_email(email)
    if s.scalar(select(User).where(User.email == email)) is not None:
        raise AccessError("user_exists", f"{email} already has an account", 409)
    passwords.require_strong(password, email)
    kvk = (kvk or "").strip() or None
    if kvk is not None and not re.fullmatch(r"\d{8}", kvk):
        raise AccessError("bad_kvk", "a KvK number has 8 digits", 422)
    organisation = organisation.strip()
    if not organisation or not name.strip():
        raise AccessError("missing_fields", "name and organisation are required", 422)
    user = User(id=new_id(), email=email, name=name.strip()[:255], role="org_admin",
                status="pending", language=language if language in ("nl", "en") else "nl",
                password_hash=passwords.hash_password(password), created_by="self-signup",
                signup_note=_signup_note(organisation, kvk, note), created_at=utcnow())
    s.add(user)
    record(s, f"user:{email}", "create", "user", email, None, snapshot(user))
    return user


def _signup_note(organisation: str, kvk: str | None, note: str | None) -> str:
    lines = [f"organisation: {organisation[:255]}"]
    if kvk:
        lines.append(f"kvk: {kvk}")
    if note and note.strip():
        lines.append(f"note: {note.strip()[:2000]}")
    return "\n".join(lines)


def signup_fields(user: User) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (user.signup_note or "").splitlines():
        key, _, value = line.partition(": ")
        out[key] = value
    return out


def approve(s: Session, user_id: str, actor: str, *, org_id: str | None = None) -> User:
    """Activate a pending sign-up, linked to `org_id`, or to a new organisation named as in
    the sign-up (id `kvk:<number>` when a KvK number was given)."""
    user = s.get(User, user_id)
    if user is None or user.status != "pending":
        raise AccessError("not_pending", "no pending sign-up with that id", 404)
    fields = signup_fields(user)
    if org_id:
        if s.get(Organization, org_id) is None:
            raise AccessError("unknown_org", f"unknown organisation {org_id!r}", 422)
    else:
        org_id = f"kvk:{fields['kvk']}" if fields.get("kvk") else f"org:{user.id[:8]}"
        if s.get(Organization, org_id) is None:
            org = Organization(id=org_id, name=fields.get("organisation") or user.email,
                               kvk=fields.get("kvk"), language=user.language)
            s.add(org)
            record(s, actor, "create", "organization", org_id, None,
                   {"id": org_id, "name": org.name, "kvk": org.kvk, "source": "signup"})
    before = snapshot(user)
    user.org_id, user.status, user.approved_by = org_id, "active", actor
    record(s, actor, "update", "user", user.email, before, snapshot(user))
    return user


def reject(s: Session, user_id: str, actor: str) -> User:
    user = s.get(User, user_id)
    if user is None or user.status != "pending":
        raise AccessError("not_pending", "no pending sign-up with that id", 404)
    before = snapshot(user)
    user.status = "disabled"
    record(s, actor, "update", "user", user.email, before, snapshot(user))
    return user


def set_status(s: Session, user: User, status: str, actor: str) -> None:
    before = snapshot(user)
    user.status = status
    record(s, actor, "update", "user", user.email, before, snapshot(user))


def set_language(s: Session, user: User, language: str) -> None:
    if language not in ("nl", "en") or language == user.language:
        return
    before = snapshot(user)
    user.language = language
    record(s, f"user:{user.email}", "update", "user", user.email, before, snapshot(user))


def authenticate(s: Session, email: str, password: str) -> User | None:
    """The active or invited-then-accepted account these credentials open, or None. A
    pending sign-up gets an error that says so (it has chosen its password already)."""
    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None:
        return None
    if user.status == "pending":
        raise AccessError("pending_approval", "your sign-up is waiting for approval by the "
                          "CWN desk", 403)
    if user.status != "active":
        return None
    if passwords.needs_rehash(user.password_hash or ""):
        user.password_hash = passwords.hash_password(password)
    return user


def change_password(s: Session, settings: Settings, user: User, current: str, new: str, *,
                    ip: str | None) -> None:
    """A signed-in person's own change. The current password is asked again (a session
    left open on a shared computer must not be enough) and wrong guesses count towards the
    sign-in throttle. The caller ends the account's other sessions."""
    from cwn.access import throttle

    if throttle.blocked(s, settings, user.email, ip):
        raise AccessError("throttled", "Too many failed attempts. Wait a quarter of an hour "
                          "and try again.", 429)
    if not passwords.verify_password(user.password_hash, current):
        throttle.failed(s, user.email, ip)
        raise AccessError("wrong_password", "The current password is not right.", 422)
    passwords.require_strong(new, user.email)
    before = snapshot(user)
    user.password_hash = passwords.hash_password(new)
    record(s, f"user:{user.email}", "update", "user", user.email, before,
           {**snapshot(user), "event": "password_changed"})


def begin_totp(s: Session, box: SecretBox, user: User) -> str:
    """A new seed for an account that has none confirmed yet (shown as a QR code)."""
    if user.totp_enabled:
        raise AccessError("totp_exists", "the second factor is already set up", 409)
    seed = totp.new_seed()
    user.totp_sealed = box.seal(seed, TOTP_PURPOSE)
    return seed


def pending_seed(box: SecretBox, user: User) -> str | None:
    return box.open(user.totp_sealed, TOTP_PURPOSE) if user.totp_sealed else None


def check_totp(s: Session, box: SecretBox, user: User, code: str) -> bool:
    """Check a code; the first good code confirms a seed being set up (audited)."""
    seed = pending_seed(box, user)
    if seed is None:
        return False
    step = totp.check(seed, code, user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    if not user.totp_enabled:
        before = snapshot(user)
        user.totp_enabled = True
        record(s, f"user:{user.email}", "update", "user", user.email, before,
               {**snapshot(user), "event": "totp_enabled"})
    return True


def reset_totp(s: Session, user: User, actor: str) -> None:
    """An operator's reset for a lost phone: the next sign-in sets up a new seed."""
    before = snapshot(user)
    user.totp_sealed, user.totp_enabled, user.totp_last_step = None, False, None
    record(s, actor, "update", "user", user.email, before,
           {**snapshot(user), "event": "totp_reset"})
