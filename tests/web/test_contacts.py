"""Contacts, preferences and users in the portal and the API: admins change, users read,
the public confirmation link needs a button press, and one organisation never sees or
changes another's contacts, preferences or users (404)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cwn.config import Settings
from cwn.db.models import AuditEntry, Contact
from cwn.db.models_notify import Preference
from cwn.db.models_partners import Partner
from cwn.db.models_web import User
from cwn.registry import contacts
from cwn.route.recipients import load_routing, route_case
from cwn.wiring import Services
from notify_support import (  # noqa: F401  (smtp_server is a fixture)
    Received,
    SmtpServer,
    smtp_server,
)
from web_support import api_token, bearer, csrf, login, make_org, make_user

App = tuple[TestClient, Services]
PUBLIC = "https://portal.cwn.example"


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer) -> Settings:  # noqa: F811
    """The app's mail goes to a real SMTP server on loopback."""
    return settings.model_copy(update={"smtp_url": smtp_server.url, "public_url": PUBLIC})


def _body(mail: Received) -> str:
    part = mail.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _two_orgs(svc: Services) -> dict[str, int]:
    make_org(svc, "alpha", "Alpha B.V.")
    make_org(svc, "beta", "Beta B.V.")
    with svc.sessions() as s:
        a = contacts.add(s, "alpha", email="soc@alpha.nl", priority=1, actor="test")
        b = contacts.add(s, "beta", email="soc@beta.nl", priority=1, actor="test")
        s.commit()
    return {"alpha": a.id, "beta": b.id}


def _admin(client: TestClient, svc: Services, org: str) -> None:
    _, seed = make_user(svc, f"admin@{org}.nl", "org_admin", org_id=org)
    login(client, f"admin@{org}.nl", seed=seed)


def _post(client: TestClient, path: str, data: dict[str, object], page: str = "/contacts"
          ) -> object:
    return client.post(path, data={**data, "csrf_token": csrf(client, page)})


# -- contacts in the portal ------------------------------------------------------------------


def test_an_admin_adds_changes_confirms_and_removes_a_contact(web_app: App) -> None:
    client, svc = web_app
    _two_orgs(svc)
    _admin(client, svc, "alpha")
    r = client.post("/contacts", data={"email": "CERT@Alpha.nl", "role": "security",
                                       "roles": ["abuse", "technical"], "language": "en",
                                       "priority": "5", "enabled": "1",
                                       "csrf_token": csrf(client, "/contacts")})
    assert r.status_code == 303, r.text[:300]
    listing = client.get("/contacts").text
    assert "CERT@alpha.nl" in listing and "soc@beta.nl" not in listing
    with svc.sessions() as s:
        cid = s.scalar(select(Contact.id).where(Contact.email == "CERT@alpha.nl"))
    assert cid is not None
    assert client.get(f"/contacts/{cid}/edit").status_code == 200
    r = client.post(f"/contacts/{cid}/edit", data={
        "email": "cert@alpha.nl", "role": "abuse", "priority": "7", "language": "",
        "csrf_token": csrf(client, "/contacts")})
    assert r.status_code == 303
    assert client.post(f"/contacts/{cid}/confirm",
                       data={"csrf_token": csrf(client, "/contacts")}).status_code == 303
    with svc.sessions() as s:
        c = contacts.info(s, "alpha", cid)
    assert (c.email, c.role, c.roles, c.priority, c.enabled, c.language) == (
        "cert@alpha.nl", "abuse", [], 7, False, None)
    assert c.confirmed_by == "user:admin@alpha.nl"
    assert client.post(f"/contacts/{cid}/remove",
                       data={"csrf_token": csrf(client, "/contacts")}).status_code == 303
    with svc.sessions() as s:
        assert s.get(Contact, cid) is None
        actions = [(e.action, e.actor) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.entity == "contact",
                                     AuditEntry.entity_id.in_(["alpha:CERT@alpha.nl",
                                                               "alpha:cert@alpha.nl"]))
            .order_by(AuditEntry.id))]
    assert [a for a, _ in actions] == ["create", "update", "update", "delete"]
    assert {who for _, who in actions} == {"user:admin@alpha.nl"}


def test_bad_contact_input_is_shown_in_the_page_with_4xx(web_app: App) -> None:
    client, svc = web_app
    _two_orgs(svc)
    _admin(client, svc, "alpha")
    bad = client.post("/contacts", data={"email": "not an address", "priority": "x",
                                         "csrf_token": csrf(client, "/contacts")})
    assert bad.status_code == 422 and "not a valid e-mail address" in bad.text
    assert 'value="not an address"' in bad.text  # the form keeps what was typed
    dup = client.post("/contacts", data={"email": "soc@alpha.nl",
                                         "csrf_token": csrf(client, "/contacts")})
    assert dup.status_code == 409 and "already one of your contacts" in dup.text
    no_csrf = client.post("/contacts", data={"email": "x@alpha.nl"})
    assert no_csrf.status_code == 403
    with svc.sessions() as s:
        assert len(contacts.list_contacts(s, "alpha")) == 1


def test_an_org_user_reads_but_cannot_change(web_app: App) -> None:
    client, svc = web_app
    ids = _two_orgs(svc)
    _, seed = make_user(svc, "reader@alpha.nl", "org_user", org_id="alpha")
    login(client, "reader@alpha.nl", seed=seed)
    page = client.get("/contacts")
    assert page.status_code == 200 and "soc@alpha.nl" in page.text
    assert "Add a contact" not in page.text
    prefs = client.get("/preferences")
    assert prefs.status_code == 200 and "<fieldset disabled>" in prefs.text
    token = csrf(client, "/contacts")
    for path, data in (("/contacts", {"email": "x@alpha.nl"}),
                       (f"/contacts/{ids['alpha']}/remove", {}),
                       ("/preferences", {"scope": "org", "min_severity": "high"}),
                       ("/users/invite", {"email": "friend@alpha.nl"})):
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403
    assert client.get("/users").status_code == 403
    with svc.sessions() as s:
        assert s.scalars(select(Preference)).all() == []


# -- preferences in the portal ----------------------------------------------------------------


def test_preferences_set_in_the_portal_are_what_routing_applies(web_app: App) -> None:
    client, svc = web_app
    ids = _two_orgs(svc)
    _admin(client, svc, "alpha")
    token = csrf(client, "/preferences")
    r = client.post("/preferences", data={
        "scope": "org", "taxonomy_choice": "chosen", "taxonomies": ["vulnerable", "fraud"],
        "min_severity": "medium", "mode": "digest", "csrf_token": token})
    assert r.status_code == 303
    r = client.post("/preferences", data={
        "scope": str(ids["alpha"]), "taxonomy_choice": "all", "min_severity": "high",
        "paused_until": "2099-01-01", "csrf_token": token})
    assert r.status_code == 303
    page = client.get("/preferences").text
    assert 'value="2099-01-01"' in page
    with svc.engine.connect() as conn:
        routing = load_routing(conn, ["alpha"])["alpha"]
    [verdict] = route_case(routing, taxonomy="vulnerable", report_type="scan_smb",
                           severity="critical", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert verdict.reason == "paused"
    assert verdict.recipient is not None and verdict.recipient.prefs.mode == "digest"
    assert verdict.recipient.prefs.taxonomies == frozenset({"vulnerable", "fraud"})
    # Back to the organisation's settings.
    r = client.post("/preferences", data={"scope": str(ids["alpha"]), "reset": "1",
                                          "csrf_token": token})
    assert r.status_code == 303
    with svc.sessions() as s:
        rows = s.scalars(select(Preference)).all()
        assert [(p.contact_id, p.min_severity) for p in rows] == [(None, "medium")]


def test_bad_preferences_are_refused_in_the_page(web_app: App) -> None:
    client, svc = web_app
    _two_orgs(svc)
    _admin(client, svc, "alpha")
    token = csrf(client, "/preferences")
    for data, text in (({"taxonomy_choice": "chosen"}, "at least one kind of incident"),
                       ({"taxonomy_choice": "chosen", "taxonomies": ["gossip"]},
                        "kinds of incidents from the list"),
                       ({"min_severity": "urgent"}, "minimum severity from the list"),
                       ({"paused_until": "2001-01-01"}, "must end on a date in the future"),
                       ({"paused_until": "tomorrow"}, "must end on a date in the future")):
        r = client.post("/preferences", data={"scope": "org", **data, "csrf_token": token})
        assert r.status_code == 422 and text in r.text, (data, r.status_code)
    with svc.sessions() as s:
        assert s.scalars(select(Preference)).all() == []


# -- the confirmation link --------------------------------------------------------------------


def test_the_mailed_link_shows_a_button_and_confirms_once(
        web_app: App, smtp_server: SmtpServer) -> None:  # noqa: F811
    client, svc = web_app
    ids = _two_orgs(svc)
    later = datetime.now(UTC) + timedelta(days=200)
    with svc.sessions() as s:
        assert contacts.send_reminders(svc.settings, s, later) == 2
        s.commit()
    [mail] = smtp_server.recorder.to("soc@alpha.nl")
    found = re.search(re.escape(PUBLIC) + r"/contacts/confirm/([\w-]+)", _body(mail))
    assert found is not None
    path = f"/contacts/confirm/{found.group(1)}"
    page = client.get(path)  # what a mail scanner does: nothing changes
    assert page.status_code == 200 and "Alpha B.V." in page.text and "<button" in page.text
    with svc.sessions() as s:
        assert contacts.info(s, "alpha", ids["alpha"]).confirmed_by == "test"
    done = client.post(path, data={"csrf_token": csrf(client, path)})
    assert done.status_code == 200 and "is confirmed" in done.text
    with svc.sessions() as s:
        assert contacts.info(s, "alpha", ids["alpha"]).confirmed_by == "contact:soc@alpha.nl"
        assert contacts.info(s, "beta", ids["beta"]).confirmed_by == "test"
    assert client.get(path).status_code == 404
    assert client.post(path, data={"csrf_token": csrf(client, "/login")}).status_code == 404
    assert client.get("/contacts/confirm/nonsense").status_code == 404


# -- users ------------------------------------------------------------------------------------


def test_an_admin_invites_a_colleague_and_disables_a_user(
        web_app: App, smtp_server: SmtpServer,  # noqa: F811
        client_factory: Callable[[], TestClient]) -> None:
    client, svc = web_app
    _two_orgs(svc)
    _admin(client, svc, "alpha")
    r = client.post("/users/invite", data={"email": "Colleague@Alpha.nl", "name": "Co",
                                           "role": "org_user",
                                           "csrf_token": csrf(client, "/users")})
    assert r.status_code == 303, r.text[:300]
    [mail] = smtp_server.recorder.to("colleague@alpha.nl")
    body = _body(mail)
    assert body.index("uitgenodigd") < body.index("You have been invited")
    link = re.search(re.escape(PUBLIC) + r"(/invite/[\w-]+)", body)
    assert link is not None and client_factory().get(link.group(1)).status_code == 200
    with svc.sessions() as s:
        invited = s.scalar(select(User).where(User.email == "colleague@alpha.nl"))
        assert invited is not None
        assert (invited.org_id, invited.role, invited.status) == ("alpha", "org_user",
                                                                  "invited")
    # A user of the organisation is disabled; their signed-in session ends with it.
    uid, seed = make_user(svc, "leaver@alpha.nl", "org_user", org_id="alpha")
    leaver = client_factory()
    login(leaver, "leaver@alpha.nl", seed=seed)
    assert leaver.get("/contacts").status_code == 200
    assert "leaver@alpha.nl" in client.get("/users").text
    r = client.post(f"/users/{uid}/disable", data={"csrf_token": csrf(client, "/users")})
    assert r.status_code == 303
    assert leaver.get("/contacts").status_code == 303  # back to the sign-in page
    with svc.sessions() as s:
        admin_id = s.scalar(select(User.id).where(User.email == "admin@alpha.nl"))
    token = csrf(client, "/users")
    own = client.post(f"/users/{admin_id}/disable", data={"csrf_token": token})
    assert own.status_code == 409
    bad = client.post("/users/invite", data={"email": "nope", "csrf_token": token})
    assert bad.status_code == 422 and "not a valid e-mail address" in bad.text
    bad = client.post("/users/invite", data={"email": "x@alpha.nl", "role": "operator",
                                             "csrf_token": csrf(client, "/contacts")})
    assert bad.status_code == 422


# -- one organisation never reaches another's ------------------------------------------------


def test_another_organisations_contacts_preferences_and_users_are_not_found(
        web_app: App, smtp_server: SmtpServer) -> None:  # noqa: F811
    client, svc = web_app
    ids = _two_orgs(svc)
    alpha_user, _ = make_user(svc, "someone@alpha.nl", "org_user", org_id="alpha")
    with svc.sessions() as s:  # invited by alpha, not accepted yet
        from cwn.access import users

        users.invite(s, svc.settings, email="pending@alpha.nl", role="org_user",
                     org_id="alpha", actor="test")
        s.commit()
    _admin(client, svc, "beta")
    a = ids["alpha"]
    token = csrf(client, "/contacts")
    assert client.get(f"/contacts/{a}/edit").status_code == 404
    for path, data in ((f"/contacts/{a}/edit", {"email": "mine@beta.nl"}),
                       (f"/contacts/{a}/remove", {}),
                       (f"/contacts/{a}/confirm", {}),
                       ("/preferences", {"scope": str(a), "min_severity": "high"}),
                       ("/preferences", {"scope": str(a), "reset": "1"}),
                       (f"/users/{alpha_user}/disable", {}),
                       (f"/users/{alpha_user}/enable", {})):
        r = client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 404, (path, r.status_code)
    taken = client.post("/users/invite", data={"email": "pending@alpha.nl",
                                               "role": "org_admin", "csrf_token": token})
    assert taken.status_code == 409
    for page in ("/contacts", "/preferences", "/users"):
        text = client.get(page).text
        assert "@alpha.nl" not in text.replace("admin@beta.nl", ""), page
    with svc.sessions() as s:
        c = contacts.info(s, "alpha", a)
        assert (c.email, c.confirmed_by) == ("soc@alpha.nl", "test")
        assert s.scalars(select(Preference)).all() == []
        pending = s.scalar(select(User).where(User.email == "pending@alpha.nl"))
        someone = s.get(User, alpha_user)
        assert pending is not None and (pending.org_id, pending.role) == ("alpha", "org_user")
        assert someone is not None and someone.status == "active"
    assert smtp_server.messages == []
    # The same through the API, with a beta token that may write.
    beta = bearer(api_token(svc, org_id="beta", scopes=["read", "write"]))
    listed = client.get("/api/v1/contacts", headers=beta).json()
    assert [c["email"] for c in listed["items"]] == ["soc@beta.nl"]
    assert client.get(f"/api/v1/contacts/{a}", headers=beta).status_code == 404
    assert client.patch(f"/api/v1/contacts/{a}", json={"priority": 1},
                        headers=beta).status_code == 404
    assert client.delete(f"/api/v1/contacts/{a}", headers=beta).status_code == 404
    prefs = client.get("/api/v1/preferences", headers=beta).json()
    assert [c["email"] for c in prefs["contacts"]] == ["soc@beta.nl"]


def test_an_operator_is_not_an_organisation_member(web_app: App) -> None:
    client, svc = web_app
    _two_orgs(svc)
    _, seed = make_user(svc, "op@cwn.example", "operator")
    login(client, "op@cwn.example", seed=seed)
    for page in ("/contacts", "/preferences", "/users"):
        assert client.get(page).status_code == 403


# -- the API ----------------------------------------------------------------------------------


def test_api_contacts_crud_with_scopes_and_pagination(web_app: App) -> None:
    client, svc = web_app
    _two_orgs(svc)
    write = bearer(api_token(svc, org_id="alpha", scopes=["read", "write"]))
    read = bearer(api_token(svc, org_id="alpha", scopes=["read"]))
    assert client.post("/api/v1/contacts", json={"email": "x@alpha.nl"},
                       headers=read).status_code == 403
    assert client.get("/api/v1/contacts").status_code == 401
    made = client.post("/api/v1/contacts", headers=write, json={
        "email": "noc@alpha.nl", "role": "technical", "roles": ["abuse"], "priority": 2})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["email"], body["roles"], body["priority"]) == ("noc@alpha.nl", ["abuse"], 2)
    assert body["confirmed_at"] is not None
    dup = client.post("/api/v1/contacts", headers=write, json={"email": "NOC@alpha.nl"})
    assert dup.status_code == 409 and dup.json()["error"] == "contact_exists"
    bad = client.post("/api/v1/contacts", headers=write, json={"email": "nope"})
    assert bad.status_code == 422 and "e-mail" in bad.json()["detail"]
    bad = client.post("/api/v1/contacts", headers=write, json={"email": "a@alpha.nl",
                                                               "role": "boss"})
    assert bad.status_code == 422
    page1 = client.get("/api/v1/contacts?per_page=1", headers=read).json()
    page2 = client.get("/api/v1/contacts?per_page=1&page=2", headers=read).json()
    assert (page1["total"], page1["items"][0]["email"], page2["items"][0]["email"]) == (
        2, "soc@alpha.nl", "noc@alpha.nl")
    assert client.get("/api/v1/contacts?per_page=501", headers=read).status_code == 422
    cid = body["id"]
    patched = client.patch(f"/api/v1/contacts/{cid}", headers=write,
                           json={"enabled": False, "language": "en"})
    assert patched.status_code == 200
    assert (patched.json()["enabled"], patched.json()["language"],
            patched.json()["role"]) == (False, "en", "technical")
    assert client.patch(f"/api/v1/contacts/{cid}", headers=read,
                        json={"enabled": True}).status_code == 403
    assert client.patch(f"/api/v1/contacts/{10**30}", headers=write,
                        json={"enabled": True}).status_code in (404, 422)
    assert client.delete(f"/api/v1/contacts/{cid}", headers=write).status_code == 204
    assert client.delete(f"/api/v1/contacts/{cid}", headers=write).status_code == 404
    with svc.sessions() as s:
        actors = {e.actor for e in s.scalars(select(AuditEntry).where(
            AuditEntry.entity == "contact", AuditEntry.entity_id == "alpha:noc@alpha.nl"))}
    assert len(actors) == 1 and actors.pop().startswith("token:")


def test_api_preferences_read_and_put(web_app: App) -> None:
    client, svc = web_app
    _two_orgs(svc)
    write = bearer(api_token(svc, org_id="alpha", scopes=["read", "write"]))
    read = bearer(api_token(svc, org_id="alpha", scopes=["read"]))
    start = client.get("/api/v1/preferences", headers=read).json()
    assert start["organisation"]["stored"]["min_severity"] is None
    assert start["organisation"]["effective"]["min_severity"] == "low"
    assert client.put("/api/v1/preferences", headers=read,
                      json={"mode": "digest"}).status_code == 403
    r = client.put("/api/v1/preferences", headers=write,
                   json={"mode": "digest", "taxonomies": ["vulnerable"]})
    assert r.status_code == 200, r.text
    r = client.put("/api/v1/preferences", headers=write, json={"min_severity": "high"})
    org = r.json()["organisation"]
    assert org["stored"]["mode"] == "digest" and org["stored"]["min_severity"] == "high"
    assert r.json()["contacts"][0]["effective"]["taxonomies"] == ["vulnerable"]
    for body in ({"taxonomies": ["gossip"]}, {"mode": "weekly"}, {"colour": "red"},
                 {"paused_until": "2001-01-01T00:00:00Z"}):
        bad = client.put("/api/v1/preferences", headers=write, json=body)
        assert bad.status_code == 422 and bad.json()["detail"], body
    r = client.put("/api/v1/preferences", headers=write, json={"mode": None})
    assert r.json()["organisation"]["effective"]["mode"] == "immediate"
    with svc.sessions() as s:
        s.add(Partner(id="isp", name="ISP B.V.", type="isp"))
        s.commit()
    partner = bearer(api_token(svc, partner_id="isp", scopes=["read", "write"]))
    assert client.get("/api/v1/preferences", headers=partner).status_code == 403
    assert client.get("/api/v1/contacts", headers=partner).status_code == 403
