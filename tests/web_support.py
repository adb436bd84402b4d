"""Helpers for the portal and API tests: organisations, users with a real TOTP seed,
signing in through the real forms, and API tokens."""

from __future__ import annotations

import email
import email.policy
import re
import time

from fastapi.testclient import TestClient

from cwn.access import passwords, tokens
from cwn.access.secrets import SecretBox, load_secret_key
from cwn.access.totp import code_for, new_seed
from cwn.access.users import TOTP_PURPOSE
from cwn.config import Settings
from cwn.db.base import new_id, utcnow
from cwn.db.models import Asset, Organization
from cwn.db.models_web import User
from cwn.registry.audit import bump_version
from cwn.registry.format import AssetIn
from cwn.registry.importer import _new_asset
from cwn.wiring import Services

PASSWORD = "correct horse battery staple"


def make_org(svc: Services, org_id: str, name: str | None = None,
             assets: list[tuple[str, str]] | None = None, *, verified: bool = True,
             language: str = "nl") -> None:
    with svc.sessions() as s:
        s.add(Organization(id=org_id, name=name or org_id, language=language))
        s.flush()
        for type_, value in assets or []:
            asset: Asset = _new_asset(org_id, AssetIn(type=type_, value=value))  # type: ignore[arg-type]
            asset.verified = verified
            asset.verified_by = "operator-import" if verified else None
            s.add(asset)
        bump_version(s)
        s.commit()


def make_user(svc: Services, email: str, role: str, *, org_id: str | None = None,
              partner_id: str | None = None, password: str = PASSWORD, totp: bool = True,
              language: str = "en") -> tuple[str, str | None]:
    """An active account; returns (user id, TOTP seed or None)."""
    seed = new_seed() if totp else None
    box = SecretBox(load_secret_key(svc.settings.secret_key, svc.settings.home))
    with svc.sessions() as s:
        uid = new_id()
        s.add(User(id=uid, email=email, role=role, org_id=org_id, partner_id=partner_id,
                   status="active", password_hash=passwords.hash_password(password),
                   totp_sealed=box.seal(seed, TOTP_PURPOSE) if seed else None,
                   totp_enabled=seed is not None, language=language, created_by="test",
                   created_at=utcnow()))
        s.commit()
    return uid, seed


def csrf(client: TestClient, path: str = "/login") -> str:
    """The CSRF token the page at `path` puts in its forms."""
    html = client.get(path).text
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert m, f"no CSRF field on {path}"
    return m.group(1)


def fresh_code(seed: str, after: float | None = None) -> str:
    """A code for the current step (each code is accepted once: wait for the next step
    when the previous sign-in used this one)."""
    return code_for(seed, time.time() if after is None else after)


def login(client: TestClient, email: str, password: str = PASSWORD,
          seed: str | None = None, *, step_offset: int = 0) -> None:
    r = client.post("/login", data={"email": email, "password": password, "next": "/",
                                    "csrf_token": csrf(client)})
    assert r.status_code == 303, r.text[:500]
    if seed is None:
        return
    assert r.headers["location"].startswith("/login/totp"), r.headers["location"]
    token = csrf(client, r.headers["location"])
    r = client.post("/login/totp", data={"code": fresh_code(seed, time.time() + 30 *
                                                            step_offset),
                                         "next": "/", "csrf_token": token})
    assert r.status_code == 303, r.text[:500]


def api_token(svc: Services, *, org_id: str | None = None, partner_id: str | None = None,
              source: str | None = None, scopes: list[str] | None = None) -> str:
    with svc.sessions() as s:
        _, raw = tokens.create(s, actor="test", org_id=org_id, partner_id=partner_id,
                               source=source, scopes=scopes)
        s.commit()
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def outbox_mails(settings: Settings) -> list[email.message.EmailMessage]:
    """The mails written to the outbox folder (no SMTP configured), oldest name first."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(settings.outbox_dir.rglob("*.eml"))]
