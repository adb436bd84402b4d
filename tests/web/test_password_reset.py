"""A forgotten password: the link comes by mail (Dutch and English), works once and for a
while, voids older links, signs the account out everywhere, leaves the second factor in
place, and the request never tells who has an account."""

from __future__ import annotations

import email
import email.policy
import re
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cwn.access import resets
from cwn.access.errors import AccessError
from cwn.db.base import utcnow
from cwn.db.models import AuditEntry
from cwn.db.models_web import PasswordReset, User, WebSession
from cwn.wiring import Services
from web_support import PASSWORD, csrf, fresh_code, login, make_org, make_user, outbox_mails

App = tuple[TestClient, Services]
NEW = "a much better passphrase 2026"


def _mails(svc: Services) -> list[email.message.EmailMessage]:
    return outbox_mails(svc.settings)


def _ask(client: TestClient, address: str) -> str:
    r = client.post("/password/forgot", data={"email": address,
                                              "csrf_token": csrf(client, "/password/forgot")})
    assert r.status_code == 200
    return r.text


def _link(msg: email.message.EmailMessage) -> str:
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = set(re.findall(r"https?://\S+/password/reset/(\S+)", body))
    assert len(found) == 1  # the same link in the Dutch and the English half
    return found.pop()


def test_an_admin_resets_the_password_and_still_needs_the_second_factor(
        web_app: App, client_factory) -> None:  # type: ignore[no-untyped-def]
    client, svc = web_app
    make_org(svc, "bakery")
    uid, seed = make_user(svc, "anna@bakkerij.nl", "org_admin", org_id="bakery")
    other_browser = client_factory()
    login(other_browser, "anna@bakkerij.nl", seed=seed)
    assert other_browser.get("/account").status_code == 200

    assert 'href="/password/forgot"' in client.get("/login").text
    _ask(client, "Anna@Bakkerij.nl ")
    [msg] = _mails(svc)
    assert msg["To"] == "anna@bakkerij.nl"
    assert "Kies een nieuw wachtwoord" in str(msg["Subject"])
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body.index("Iemand, waarschijnlijk u") < body.index("Someone, probably you")
    token = _link(msg)

    form = client.get(f"/password/reset/{token}")
    assert form.status_code == 200 and "anna@bakkerij.nl" in form.text
    differ = client.post(f"/password/reset/{token}", data={
        "password": NEW, "password2": NEW + "x",
        "csrf_token": csrf(client, f"/password/reset/{token}")})
    assert differ.status_code == 422
    weak = client.post(f"/password/reset/{token}", data={
        "password": "short", "password2": "short",
        "csrf_token": csrf(client, f"/password/reset/{token}")})
    assert weak.status_code == 422 and "too weak" in weak.text
    done = client.post(f"/password/reset/{token}", data={
        "password": NEW, "password2": NEW,
        "csrf_token": csrf(client, f"/password/reset/{token}")})
    assert done.status_code == 200 and "Password changed" in done.text

    # Signed out everywhere; the link is spent; the old password is gone.
    assert other_browser.get("/account").status_code == 303
    assert client.get(f"/password/reset/{token}").status_code == 404
    old = client.post("/login", data={"email": "anna@bakkerij.nl", "password": PASSWORD,
                                      "next": "/", "csrf_token": csrf(client)})
    assert old.status_code == 401
    # The new password opens only the first step: the phone is still needed.
    r = client.post("/login", data={"email": "anna@bakkerij.nl", "password": NEW,
                                    "next": "/", "csrf_token": csrf(client)})
    assert r.status_code == 303 and r.headers["location"].startswith("/login/totp")
    assert seed  # the next step's code: this step's was spent by the other browser
    r = client.post("/login/totp", data={"code": fresh_code(seed, time.time() + 30),
                                         "next": "/",
                                         "csrf_token": csrf(client, r.headers["location"])})
    assert r.status_code == 303 and client.get("/account").status_code == 200

    with svc.sessions() as s:
        events = [(e.actor, (e.after or {}).get("event")) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.entity == "user").order_by(AuditEntry.id))]
        stored = s.scalar(select(PasswordReset.token_hash))
        user = s.get(User, uid)
        assert user is not None and user.totp_enabled
    assert ("user:anna@bakkerij.nl", "password_reset_requested") in events
    assert ("user:anna@bakkerij.nl", "password_reset") in events
    assert stored and token not in stored  # only the hash is kept
    assert not any(NEW in str(e) or token in str(e) for e in events)


def test_the_answer_never_tells_who_has_an_account(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "anna@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    with svc.sessions() as s:
        s.add(User(id="pending-1", email="piet@bakkerij.nl", role="org_user",
                   status="pending", password_hash="x", language="en", created_by="test",
                   created_at=utcnow()))
        s.commit()
    answers = {a: _ask(client, a) for a in ("anna@bakkerij.nl", "nobody@bakkerij.nl",
                                            "piet@bakkerij.nl", "not an address")}

    def strip(html: str) -> str:
        return re.sub(r'name="csrf_token" value="[0-9a-f]+"', "", html)

    assert len({strip(a) for a in answers.values()}) == 1
    assert [str(m["To"]) for m in _mails(svc)] == ["anna@bakkerij.nl"]


def test_one_link_per_five_minutes_and_a_newer_link_voids_the_older(
        web_app: App) -> None:
    _, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "anna@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    t0 = utcnow()
    with svc.sessions() as s:
        first = resets.request(s, svc.settings, "anna@bakkerij.nl", ip="192.0.2.7", now=t0)
        again = resets.request(s, svc.settings, "anna@bakkerij.nl", ip="192.0.2.7",
                               now=t0 + timedelta(minutes=4))
        later = resets.request(s, svc.settings, "anna@bakkerij.nl", ip="192.0.2.7",
                               now=t0 + timedelta(minutes=6))
        s.commit()
        assert first is not None and again is None and later is not None
        with pytest.raises(AccessError) as voided:
            resets.link(s, first[1], now=t0 + timedelta(minutes=7))
        assert voided.value.status == 404
        resets.link(s, later[1], now=t0 + timedelta(minutes=7))  # the newest works
        with pytest.raises(AccessError) as expired:
            resets.link(s, later[1], now=t0 + timedelta(minutes=6 + 61))
        assert expired.value.status == 404


def test_a_disabled_account_gets_no_link_and_its_open_link_stops_working(
        web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    uid, _ = make_user(svc, "anna@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    with svc.sessions() as s:
        made = resets.request(s, svc.settings, "anna@bakkerij.nl", ip=None)
        assert made is not None
        s.get(User, uid).status = "disabled"  # type: ignore[union-attr]
        s.commit()
    assert client.get(f"/password/reset/{made[1]}").status_code == 404
    r = client.post(f"/password/reset/{made[1]}", data={
        "password": NEW, "password2": NEW, "csrf_token": csrf(client, "/password/forgot")})
    assert r.status_code == 404
    with svc.sessions() as s:
        assert resets.request(s, svc.settings, "anna@bakkerij.nl", ip=None,
                              now=utcnow() + timedelta(hours=1)) is None
        assert s.scalar(select(WebSession.id_hash)) is None


def test_bad_reset_requests_are_4xx_not_500(web_app: App) -> None:
    client, _ = web_app
    token = csrf(client, "/password/forgot")
    assert client.post("/password/forgot", data={"csrf_token": token}).status_code == 422
    assert client.post("/password/forgot", data={"email": "a@b.nl"}).status_code == 403
    assert client.post("/password/forgot", data={"email": "x" * 400 + "@b.nl",
                                                 "csrf_token": token}).status_code == 422
    assert client.get("/password/reset/nonsense").status_code == 404
    assert client.post("/password/reset/nonsense", data={
        "password": NEW, "password2": NEW, "csrf_token": token}).status_code == 404


# -- a signed-in person changes the password ------------------------------------------------


def _change(client: TestClient, current: str, new: str, again: str | None = None
            ) -> tuple[int, str]:
    r = client.post("/account/password", data={
        "current": current, "password": new, "password2": new if again is None else again,
        "csrf_token": csrf(client, "/account")})
    return r.status_code, r.text


def test_a_signed_in_person_changes_the_password_with_the_current_one(
        web_app: App, client_factory) -> None:  # type: ignore[no-untyped-def]
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    login(client, "u@bakkerij.nl")
    elsewhere = client_factory()
    login(elsewhere, "u@bakkerij.nl")
    assert "signed in on 1 other browser" in client.get("/account").text

    assert _change(client, "not my password", NEW)[0] == 422
    assert _change(client, PASSWORD, NEW, NEW + "!")[0] == 422
    status, text = _change(client, PASSWORD, "short")
    assert status == 422 and "too weak" in text
    status, text = _change(client, PASSWORD, NEW)
    assert status == 200 and "1 other browser was signed out" in text

    assert client.get("/account").status_code == 200  # this browser stays signed in
    assert elsewhere.get("/account").status_code == 303
    login(elsewhere, "u@bakkerij.nl", NEW)
    with svc.sessions() as s:
        events = [(e.after or {}).get("event") for e in s.scalars(
            select(AuditEntry).where(AuditEntry.entity == "user"))]
    assert "password_changed" in events


def test_guessing_the_current_password_is_throttled(web_app: App) -> None:
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    login(client, "u@bakkerij.nl")
    for _ in range(svc.settings.login_max_failures):
        assert _change(client, "a wrong guess", NEW)[0] == 422
    assert _change(client, PASSWORD, NEW)[0] == 429  # even the right one waits


def test_sign_out_everywhere_else_keeps_this_browser(
        web_app: App, client_factory) -> None:  # type: ignore[no-untyped-def]
    client, svc = web_app
    make_org(svc, "bakery")
    make_user(svc, "u@bakkerij.nl", "org_user", org_id="bakery", totp=False)
    login(client, "u@bakkerij.nl")
    others = [client_factory(), client_factory()]
    for other in others:
        login(other, "u@bakkerij.nl")
    r = client.post("/account/sessions/end-others",
                    data={"csrf_token": csrf(client, "/account")})
    assert r.status_code == 200 and "2 other browsers were signed out" in r.text
    assert client.get("/account").status_code == 200
    assert [o.get("/account").status_code for o in others] == [303, 303]
