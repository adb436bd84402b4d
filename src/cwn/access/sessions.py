"""Server-side portal sessions: the cookie holds a random id, the database its hash, so a
session can be ended (sign-out, disabled account) and a stolen database holds no cookie."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cwn.access.secrets import random_token, token_hash
from cwn.config import Settings
from cwn.db.base import utcnow
from cwn.db.models_web import User, WebSession

_TOUCH_EVERY = timedelta(minutes=1)  # sliding expiry without a write per request


def start(s: Session, settings: Settings, user: User, *, stage: str, ip: str | None,
          user_agent: str | None) -> str:
    raw = random_token()
    now = utcnow()
    # Expired sessions are useless; dropping them at each sign-in keeps the table small.
    s.execute(delete(WebSession).where(WebSession.expires_at < now))
    s.add(WebSession(id_hash=token_hash(raw), user_id=user.id, stage=stage,
                     csrf=random_token(24), created_at=now, last_seen_at=now,
                     expires_at=now + timedelta(hours=settings.session_hours),
                     ip=ip, user_agent=(user_agent or "")[:255]))
    return raw


def load(s: Session, settings: Settings, raw: str | None) -> tuple[WebSession, User] | None:
    if not raw:
        return None
    ws = s.get(WebSession, token_hash(raw))
    now = utcnow()
    if ws is None or ws.expires_at <= now:
        return None
    user = s.get(User, ws.user_id)
    if user is None or user.status != "active":
        return None
    if now - ws.last_seen_at >= _TOUCH_EVERY:
        ws.last_seen_at = now
        ws.expires_at = now + timedelta(hours=settings.session_hours)
        s.commit()
    return ws, user


def promote(s: Session, ws: WebSession, settings: Settings, ip: str | None,
            user_agent: str | None) -> str:
    """After the second factor: a fresh id (no session fixation) at stage `full`."""
    user = s.get(User, ws.user_id)
    assert user is not None
    s.delete(ws)
    return start(s, settings, user, stage="full", ip=ip, user_agent=user_agent)


def end(s: Session, raw: str | None) -> None:
    if raw:
        s.execute(delete(WebSession).where(WebSession.id_hash == token_hash(raw)))


def end_all(s: Session, user_id: str) -> None:
    s.execute(delete(WebSession).where(WebSession.user_id == user_id))


def end_others(s: Session, user_id: str, keep: WebSession) -> int:
    """Sign the account out of every other browser; returns how many sessions ended."""
    res = s.connection().execute(delete(WebSession).where(
        WebSession.user_id == user_id, WebSession.id_hash != keep.id_hash))
    return int(res.rowcount or 0)


def count_others(s: Session, user_id: str, keep: WebSession) -> int:
    return int(s.scalar(select(func.count()).select_from(WebSession).where(
        WebSession.user_id == user_id, WebSession.id_hash != keep.id_hash,
        WebSession.expires_at > utcnow())) or 0)
