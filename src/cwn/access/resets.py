"""Forgotten passwords: a one-time link by mail, for active accounts only.

What it guards against:
- Finding out who has an account: the request always gets the same answer, whether a
  mail went out or not (the caller shows one page for every case).
- Mail-bombing a person: one link per account per `COOLDOWN`; asking again sooner sends
  nothing.
- A link found later in a mailbox: it expires (`password_reset_minutes`), works once, and
  a newer link makes older ones void.
- A session an attacker already holds: a reset signs the account out everywhere.
The second factor is not touched: an admin still needs their phone after a reset (a lost
phone is the operator's `reset-totp`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cwn.access import passwords, sessions, throttle
from cwn.access.errors import AccessError
from cwn.access.secrets import random_token, token_hash
from cwn.access.users import normal_email, snapshot
from cwn.config import Settings
from cwn.db.base import utcnow
from cwn.db.models_web import PasswordReset, User
from cwn.registry.audit import record

COOLDOWN = timedelta(minutes=5)


def request(s: Session, settings: Settings, email: str, *, ip: str | None,
            now: datetime | None = None) -> tuple[User, str] | None:
    """A new link for the active account of `email` (the raw token, shown once), or None
    when no mail should go out: no such account, not active, or a link was just sent."""
    try:
        address = normal_email(email)
    except AccessError:
        return None
    user = s.scalar(select(User).where(User.email == address))
    if user is None or user.status != "active" or not user.password_hash:
        return None
    now = now or utcnow()
    latest = s.scalar(select(func.max(PasswordReset.created_at))
                      .where(PasswordReset.user_id == user.id))
    if latest is not None and now - latest < COOLDOWN:
        return None
    s.execute(update(PasswordReset)
              .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
              .values(used_at=now))  # only the newest link works
    raw = random_token()
    s.add(PasswordReset(token_hash=token_hash(raw), user_id=user.id, created_at=now,
                        expires_at=now + timedelta(minutes=settings.password_reset_minutes),
                        ip=(ip or "")[:64] or None))
    record(s, f"user:{user.email}", "update", "user", user.email, None,
           {"event": "password_reset_requested", "ip": ip})
    s.flush()
    return user, raw


def link(s: Session, raw: str, *, now: datetime | None = None) -> tuple[PasswordReset, User]:
    reset = s.get(PasswordReset, token_hash(raw)) if raw else None
    if reset is None or reset.used_at is not None or reset.expires_at <= (now or utcnow()):
        raise AccessError("reset_invalid", "This link is unknown, used or expired; ask for a "
                          "new one.", 404)
    user = s.get(User, reset.user_id)
    if user is None or user.status != "active":
        raise AccessError("reset_invalid", "This link is no longer valid.", 404)
    return reset, user


def complete(s: Session, settings: Settings, raw: str, password: str) -> User:
    """Set the new password, void the link, and sign the account out everywhere."""
    reset, user = link(s, raw)
    passwords.require_strong(password, user.email)
    before = snapshot(user)
    user.password_hash = passwords.hash_password(password)
    reset.used_at = utcnow()
    sessions.end_all(s, user.id)
    throttle.succeeded(s, settings, user.email)
    record(s, f"user:{user.email}", "update", "user", user.email, before,
           {**snapshot(user), "event": "password_reset"})
    return user
