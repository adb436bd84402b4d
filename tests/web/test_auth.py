"""Accounts and sign-in: invitation, password + TOTP, throttling, CSRF, sessions, and the
audit trail of every account change."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from cwn.access import users
from cwn.access.secrets import SecretBox, load_secret_key
from cwn.access.totp import code_for
from cwn.db.models import AuditEntry
from cwn.db.models_web import User
from cwn.wiring import Services
from web_support import PASSWORD, api_token, bearer, csrf, fresh_code, login, make_org, make_user

App = tuple[TestClient, Services]


def _box(svc: Services) -> SecretBox:
    return SecretBox(load_secret_key(svc.settings.secret_key, svc.settings.home))


def test_an_invited_admin_sets_a_password_and_totp_then_signs_in(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery", "Bakkerij", [("domain", "bakkerij.nl")])
    with svc.sessions() as s:
        _, raw = users.invite(s, svc.settings, email="Anna@Bakkerij.nl", role="org_admin",
                                 org_id="bakery", actor="cli")
        s.commit()
    page = client.get(f"/invite/{raw}")
    assert page.status_code == 200 and "anna@bakkerij.nl" in page.text
    token = csrf(client, f"/invite/{raw}")
    r = client.post(f"/invite/{raw}", data={"password": PASSWORD, "password2": PASSWORD,
                                            "name": "Anna", "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/login/totp-setup")
    setup = client.get(r.headers["location"])
    seed = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert seed and "<svg" in setup.text
    wrong = client.post("/login/totp-setup", data={"code": "000000", "next": "/",
                                                   "csrf_token": csrf(client, "/login")})
    assert wrong.status_code == 401
    ok = client.post("/login/totp-setup", data={"code": code_for(seed.group(1)), "next": "/",
                                                "csrf_token": csrf(client, "/login")})
    assert ok.status_code == 303
    assert client.get("/account").status_code == 200
    # The link is single-use.
    assert client.get(f"/invite/{raw}").status_code == 404
    with svc.sessions() as s:
        u = s.scalar(select(User).where(User.email == "anna@bakkerij.nl"))
        assert u is not None and u.totp_enabled and u.status == "active"
        assert u.password_hash and u.password_hash.startswith("$argon2id$")
        assert PASSWORD not in str(u.totp_sealed)
        events = [(e.action, (e.after or {}).get("event")) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.entity == "user").order_by(AuditEntry.id))]
    assert events == [("create", None), ("update", "invitation_accepted"),
                      ("update", "totp_enabled")]


def test_an_admin_without_the_second_factor_is_not_signed_in(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    _, seed = make_user(svc, "a@bakkerij.nl", "org_admin", org_id="bakery")
    assert seed
    r = client.post("/login", data={"email": "a@bakkerij.nl", "password": PASSWORD,
                                    "next": "/inbox", "csrf_token": csrf(client)})
    assert r.status_code == 303 and r.headers["location"].startswith("/login/totp")
    # Half-way: no page opens yet.
    assert client.get("/account").status_code == 303
    code = fresh_code(seed)
    r = client.post("/login/totp", data={"code": code, "next": "/inbox",
                                         "csrf_token": csrf(client, "/login/totp")})
    assert r.status_code == 303 and r.headers["location"] == "/inbox"
    assert client.get("/account").status_code == 200


def test_a_totp_code_is_accepted_only_once(web_app: App, client_factory) -> None:  # type: ignore[no-untyped-def]
    client, svc = web_app
    make_org(svc, "bakery")
    _, seed = make_user(svc, "a@bakkerij.nl", "org_admin", org_id="bakery")
    assert seed
    now = time.time()
    login(client, "a@bakkerij.nl", seed=seed)
    other = client_factory()
    r = other.post("/login", data={"email": "a@bakkerij.nl", "password": PASSWORD,
                                   "next": "/", "csrf_token": csrf(other)})
    assert r.status_code == 303
    replay = other.post("/login/totp", data={"code": code_for(seed, now), "next": "/",
                                             "csrf_token": csrf(other, "/login/totp")})
    assert replay.status_code == 401


def test_wrong_passwords_are_throttled_per_account(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    token = csrf(client)
    for _ in range(svc.settings.login_max_failures):
        r = client.post("/login", data={"email": "u@bakkerij.nl", "password": "nope",
                                        "csrf_token": token})
        assert r.status_code == 401
    r = client.post("/login", data={"email": "u@bakkerij.nl", "password": PASSWORD,
                                    "csrf_token": token})
    assert r.status_code == 429  # even the right password waits out the window


def test_forms_without_the_csrf_token_are_refused(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    client.get("/login")
    r = client.post("/login", data={"email": "u@bakkerij.nl", "password": PASSWORD})
    assert r.status_code == 403
    r = client.post("/login", data={"email": "u@bakkerij.nl", "password": PASSWORD,
                                    "csrf_token": "0" * 64})
    assert r.status_code == 403


def test_cookies_are_secure_httponly_and_sign_out_ends_the_session(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    r = client.post("/login", data={"email": "u@bakkerij.nl", "password": PASSWORD,
                                    "csrf_token": csrf(client)})
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("cwn_session"))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    session_value = client.cookies.get("cwn_session")
    assert client.get("/account").status_code == 200
    client.post("/logout", data={"csrf_token": csrf(client, "/account")})
    client.cookies.set("cwn_session", session_value or "", domain="testserver")
    assert client.get("/account").status_code == 303  # the old cookie opens nothing


def test_self_sign_up_waits_for_the_operator(web_app: App) -> None:
    client, svc = web_app
    client.headers["Accept-Language"] = "en"
    r = client.post("/signup", data={"name": "Piet", "email": "piet@garage.nl",
                                     "organisation": "Garage Piet", "kvk": "12345678",
                                     "password": PASSWORD, "csrf_token": csrf(client)})
    assert r.status_code == 200
    r = client.post("/login", data={"email": "piet@garage.nl", "password": PASSWORD,
                                    "csrf_token": csrf(client)})
    assert r.status_code == 403 and "approval" in r.text
    with svc.sessions() as s:
        u = s.scalar(select(User).where(User.email == "piet@garage.nl"))
        assert u is not None
        users.approve(s, u.id, "user:op@cwn.nl")
        s.commit()
        assert u.org_id == "kvk:12345678"
    r = client.post("/login", data={"email": "piet@garage.nl", "password": PASSWORD,
                                    "csrf_token": csrf(client)})
    assert r.status_code == 303 and r.headers["location"].startswith("/login/totp-setup")


def test_weak_passwords_and_bad_input_get_a_4xx_not_a_500(web_app: App) -> None:
    client, _ = web_app
    token = csrf(client)
    r = client.post("/signup", data={"name": "P", "email": "p@x.nl", "organisation": "X",
                                     "password": "short", "csrf_token": token})
    assert r.status_code == 422
    r = client.post("/signup", data={"name": "P", "email": "not-an-address",
                                     "organisation": "X", "password": PASSWORD,
                                     "csrf_token": token})
    assert r.status_code == 422
    assert client.get("/invite/bogus").status_code == 404
    assert client.post("/login", data={"csrf_token": token}).status_code == 422


def test_the_language_follows_the_choice(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False, language="en")
    login(client, "u@bakkerij.nl")
    assert 'lang="en"' in client.get("/account").text
    client.get("/lang/nl?next=/account")
    page = client.get("/account").text
    assert 'lang="nl"' in page
    with svc.sessions() as s:
        u = s.scalar(select(User).where(User.email == "u@bakkerij.nl"))
        assert u is not None and u.language == "nl"


def test_open_redirects_are_refused(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    r = client.post("/login", data={"email": "u@bakkerij.nl", "password": PASSWORD,
                                    "next": "https://evil.example/", "csrf_token": csrf(client)})
    assert r.headers["location"] == "/"


def test_api_tokens_are_hashed_scoped_and_revocable(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    raw = api_token(svc, org_id="bakery", scopes=["read"])
    r = client.get("/api/v1/me", headers=bearer(raw))
    assert r.status_code == 200 and r.json()["org_id"] == "bakery"
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=bearer(raw + "x")).status_code == 401
    from cwn.access import tokens
    from cwn.db.models_web import ApiToken

    with svc.sessions() as s:
        tok = s.scalar(select(ApiToken))
        assert tok is not None
        prefix, token_id, secret = raw.split("_")
        assert prefix == "cwn" and token_id == tok.id and len(secret) == 64
        assert secret not in tok.token_hash
        tokens.revoke(s, tok.id, "cli")
        s.commit()
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 401


def test_a_nul_byte_anywhere_is_a_4xx_not_a_500(web_app: App) -> None:
    """PostgreSQL cannot store or even compare text with a NUL byte; the app refuses it
    before the database sees it, in forms, paths and queries alike."""
    client, svc = web_app
    token = csrf(client)
    r = client.post("/login", data={"email": "a\x00@b.nl", "password": "x", "csrf_token": token})
    assert r.status_code == 400
    raw = api_token(svc, org_id=None, source="feed-x")
    assert client.get("/api/v1/me?x=%00", headers=bearer(raw)).status_code == 400


def test_a_partner_admin_lands_on_the_partner_page(web_app: App) -> None:
    from cwn.db.models_partners import Partner

    client, svc = web_app
    with svc.sessions() as s:
        s.add(Partner(id="isp", name="ISP", type="isp", functions=[], sectors=[], regions=[]))
        s.commit()
    _, seed = make_user(svc, "noc@isp.nl", "partner_admin", partner_id="isp")
    login(client, "noc@isp.nl", seed=seed)
    assert client.get("/").headers["location"] == "/partner"


def test_expired_sessions_open_nothing_and_are_dropped_at_the_next_sign_in(
        web_app: App) -> None:
    from datetime import timedelta

    from sqlalchemy import func, update

    from cwn.db.base import utcnow
    from cwn.db.models_web import WebSession

    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    login(client, "u@bakkerij.nl")
    with svc.sessions() as s:
        s.execute(update(WebSession).values(expires_at=utcnow() - timedelta(minutes=1)))
        s.commit()
    assert client.get("/account").status_code == 303
    login(client, "u@bakkerij.nl")
    with svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1
