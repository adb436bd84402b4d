"""Login throttling: failed attempts per account and per client address in a sliding
window, kept in the database so every `cwn serve` worker sees the same counts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cwn.config import Settings
from cwn.db.base import utcnow
from cwn.db.models_web import LoginAttempt


def _keys(email: str, ip: str | None) -> tuple[str, str | None]:
    return f"user:{email.strip().lower()}", (f"ip:{ip}" if ip else None)


def blocked(s: Session, settings: Settings, email: str, ip: str | None) -> bool:
    since = utcnow() - timedelta(minutes=settings.login_window_minutes)
    user_key, ip_key = _keys(email, ip)

    def count(key: str) -> int:
        return int(s.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.key == key, LoginAttempt.at >= since)) or 0)

    if count(user_key) >= settings.login_max_failures:
        return True
    return ip_key is not None and count(ip_key) >= settings.login_max_failures_ip


def failed(s: Session, email: str, ip: str | None) -> None:
    user_key, ip_key = _keys(email, ip)
    now = utcnow()
    s.add(LoginAttempt(key=user_key, at=now))
    if ip_key:
        s.add(LoginAttempt(key=ip_key, at=now))


def succeeded(s: Session, settings: Settings, email: str) -> None:
    """A good sign-in clears the account's failures; old rows of everyone are pruned."""
    user_key, _ = _keys(email, None)
    s.execute(delete(LoginAttempt).where(LoginAttempt.key == user_key))
    s.execute(delete(LoginAttempt).where(
        LoginAttempt.at < utcnow() - timedelta(minutes=settings.login_window_minutes)))
