"""REST API tokens: per organisation, partner or source; scoped, revocable, stored hashed.

The token reads `cwn_<id>_<secret>`: the id is public (lists, audit), the secret is 256
random bits in hex (no `_`, so the three parts split unambiguously and a secret scanner can
match the shape), and only SHA-256 of the whole token is kept.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.access.secrets import token_hash
from cwn.db.base import utcnow
from cwn.db.models import Organization
from cwn.db.models_partners import Partner
from cwn.db.models_web import ApiToken
from cwn.registry.audit import record

SCOPES = ("read", "write", "submit")
"""read: the holder's cases, notifications, events, assets, preferences; write: feedback,
claims and preferences; submit: hand in threat data (sources)."""

_TOUCH_EVERY = timedelta(minutes=5)  # last_used_at without a write per request


def snapshot(t: ApiToken) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "org_id": t.org_id, "partner_id": t.partner_id,
            "source": t.source, "scopes": list(t.scopes or []),
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked": t.revoked_at is not None}


def create(s: Session, *, actor: str, org_id: str | None = None,
           partner_id: str | None = None, source: str | None = None,
           scopes: list[str] | None = None, name: str = "",
           expires_days: int | None = None) -> tuple[ApiToken, str]:
    holders = [h for h in (org_id, partner_id, source) if h]
    if len(holders) != 1:
        raise AccessError("bad_holder", "a token belongs to exactly one of: an organisation, "
                          "a partner, a source", 422)
    if org_id and s.get(Organization, org_id) is None:
        raise AccessError("unknown_org", f"unknown organisation {org_id!r}", 422)
    if partner_id and s.get(Partner, partner_id) is None:
        raise AccessError("unknown_partner", f"unknown partner {partner_id!r}", 422)
    if scopes is None:
        scopes = ["submit"] if source else ["read", "write"]
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise AccessError("bad_scope", f"unknown scope(s) {bad}; one or more of "
                          f"{', '.join(SCOPES)}", 422)
    if source and set(scopes) != {"submit"}:
        raise AccessError("bad_scope", "a source token has the submit scope only", 422)
    tid = secrets.token_hex(6)
    raw = f"cwn_{tid}_{secrets.token_hex(32)}"
    tok = ApiToken(id=tid, token_hash=token_hash(raw), name=name[:255], org_id=org_id,
                   partner_id=partner_id, source=source,
                   scopes=[sc for sc in SCOPES if sc in scopes], created_by=actor,
                   created_at=utcnow(),
                   expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None)
    s.add(tok)
    record(s, actor, "create", "api_token", tid, None, snapshot(tok))
    return tok, raw


@dataclass(frozen=True)
class TokenHolder:
    """Who a valid token speaks for (what a request needs, not the stored row)."""

    token_id: str
    org_id: str | None
    partner_id: str | None
    source: str | None
    scopes: list[str]

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"token:{self.token_id}"


_AUTH = select(ApiToken.id, ApiToken.org_id, ApiToken.partner_id, ApiToken.source,
               ApiToken.scopes, ApiToken.expires_at, ApiToken.revoked_at,
               ApiToken.last_used_at).where(ApiToken.token_hash == bindparam("token_hash"))
"""Built once: this runs on every API request, and building and cache-keying a statement
costs more than the indexed lookup itself."""


def authenticate(s: Session, raw: str | None) -> TokenHolder | None:
    if not raw or not raw.startswith("cwn_") or len(raw) > 200:
        return None
    # Core, not an ORM entity: this runs on every API request.
    tok = s.connection().execute(_AUTH, {"token_hash": token_hash(raw)}).first()
    now = utcnow()
    if tok is None or tok.revoked_at is not None or (tok.expires_at and tok.expires_at <= now):
        return None
    if tok.last_used_at is None or now - tok.last_used_at >= _TOUCH_EVERY:
        s.execute(update(ApiToken).where(ApiToken.id == tok.id).values(last_used_at=now))
        s.commit()
    return TokenHolder(token_id=tok.id, org_id=tok.org_id, partner_id=tok.partner_id,
                       source=tok.source, scopes=list(tok.scopes or []))


def revoke(s: Session, token_id: str, actor: str, *, org_id: str | None = None) -> ApiToken:
    """Revoke a token; with `org_id`, only one of that organisation's own."""
    tok = s.get(ApiToken, token_id)
    if tok is None or (org_id is not None and tok.org_id != org_id):
        raise AccessError("unknown_token", f"unknown token {token_id!r}", 404)
    if tok.revoked_at is None:
        before = snapshot(tok)
        tok.revoked_at = utcnow()
        record(s, actor, "update", "api_token", tok.id, before, snapshot(tok))
    return tok


def listing(s: Session, *, org_id: str | None = None) -> list[ApiToken]:
    q = select(ApiToken).order_by(ApiToken.created_at)
    if org_id is not None:
        q = q.where(ApiToken.org_id == org_id)
    return list(s.scalars(q))


def is_active(t: ApiToken, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return t.revoked_at is None and (t.expires_at is None or t.expires_at > now)
