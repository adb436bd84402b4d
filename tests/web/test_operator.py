"""The operator console over a real installation (sample reports ingested by the real
pipeline): every page renders what is stored, only operators get in, and account decisions
(sign-up approval, TOTP reset, disabling, invitations) take effect and are audited."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cwn.access import users
from cwn.db.models import AuditEntry, Organization
from cwn.db.models_web import User, WebSession
from cwn.wiring import Services
from web.console_seed import SCAN_DNS_NAME, Seeded, seed
from web_support import PASSWORD, csrf, login, make_user

App = tuple[TestClient, Services]
OPERATOR = "desk@cwn.example"
PAGES = ["/operator", "/operator/reports", "/operator/quarantine", "/operator/unattributed",
         "/operator/partners", "/operator/partners/isp-example", "/operator/notifications",
         "/operator/signups", "/operator/users", "/operator/audit"]
HX = {"HX-Request": "true", "HX-Target": "list"}


Desk = tuple[TestClient, Services, Seeded, str]


def _desk(web_app: App, shared_data: Path, tmp_path: Path, ingest: bool) -> Desk:
    client, svc = web_app
    seeded = seed(svc, shared_data, tmp_path, ingest=ingest)
    uid, totp_seed = make_user(svc, OPERATOR, "operator")
    login(client, OPERATOR, PASSWORD, totp_seed)
    return client, svc, seeded, uid


@pytest.fixture
def desk(web_app: App, shared_data: Path, tmp_path: Path) -> Desk:
    """A seeded installation with ingested reports, and a signed-in operator (the last
    item is the operator's user id)."""
    return _desk(web_app, shared_data, tmp_path, ingest=True)


@pytest.fixture
def accounts(web_app: App, shared_data: Path, tmp_path: Path) -> Desk:
    """The same without the reports, for the tests of account decisions."""
    return _desk(web_app, shared_data, tmp_path, ingest=False)


def token(client: TestClient) -> str:
    return csrf(client, "/operator")


def test_every_console_page_shows_what_is_stored_and_the_gaps_in_attribution(desk: Desk) -> None:
    client, _, seeded, _ = desk
    html = {}
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "<html" in r.text
        html[path] = r.text
    dash = html["/operator"]
    assert re.search(r'id="stat-reports">3<', dash)
    assert re.search(r'id="stat-quarantined">1<', dash)
    assert re.search(r'id="stat-signups">1<', dash)
    assert 'href="/operator/claims"' in dash
    assert SCAN_DNS_NAME in html["/operator/reports"]
    assert seeded.scan_dns[:12] in html["/operator/reports"]
    assert 'id="source-stats"' in html["/operator/reports"]
    assert "invalid source.ip" in html["/operator/quarantine"]
    assert "indicator-for-c2-ip-address.json" in html["/operator/quarantine"]
    assert "Example ISP B.V." in html["/operator/partners"]
    assert "AGR-ISP-1" in html["/operator/partners/isp-example"]
    assert "J. de Vries" in html["/operator/partners/isp-example"]
    notif = html["/operator/notifications"]
    assert "ict@bakkerij.example.nl" in notif and "550 5.1.1 no such user" in notif
    assert "contact_disabled" in notif
    assert "info@nieuw.example.nl" in html["/operator/signups"]
    assert "Bakkerij Jansen (bakkerij)" in html["/operator/signups"]  # the KvK match
    assert "medewerker@bakkerij.example.nl" in html["/operator/users"]
    assert "test:import" in html["/operator/audit"]
    # the Shadowserver report is dated 2019 (by its file name), not in the last 30 days;
    # the IntelMQ events carry no report date, so they count as received today
    recent = client.get("/operator/unattributed")
    assert "192.88.99.0/24" in recent.text and "<td>scan_dns</td>" not in recent.text
    everything = client.get("/operator/unattributed?days=0")
    assert everything.status_code == 200
    assert "192.88.99.0/24" in everything.text and "<td>scan_dns</td>" in everything.text
    assert "198.51.100.0/24" in everything.text
    assert client.get("/operator/unattributed?days=-1").status_code == 422


def test_lists_page_with_htmx_and_filter(desk: Desk) -> None:
    client, _, seeded, _ = desk
    full = client.get("/operator/reports?per_page=1&page=2")
    assert "<html" in full.text and seeded.intelmq[:12] in full.text
    part = client.get("/operator/reports?per_page=1&page=2", headers=HX)
    assert part.status_code == 200 and "<html" not in part.text
    assert seeded.intelmq[:12] in part.text and seeded.stix[:12] not in part.text
    assert 'hx-get="/operator/reports?per_page=1&amp;page=3"' in part.text
    assert "Page 2 of 3" in part.text
    by_feed = client.get("/operator/reports?feed=intelmq-test", headers=HX)
    assert seeded.intelmq[:12] in by_feed.text and seeded.scan_dns[:12] not in by_feed.text
    audit = client.get("/operator/audit?entity=organization", headers=HX)
    assert "bakkerij" in audit.text and "<html" not in audit.text
    assert client.get("/operator/reports?page=0").status_code == 422
    assert client.get("/operator/reports?per_page=501").status_code == 422
    assert client.get("/operator/partners/nobody").status_code == 404


def test_only_operators_get_in(web_app: App, shared_data: Path, tmp_path: Path,
                               client_factory: Callable[[], TestClient]) -> None:
    _, svc = web_app
    seeded = seed(svc, shared_data, tmp_path, ingest=False)
    for role in ("org_admin", "org_user", "partner_admin"):
        client = client_factory()
        kw = ({"partner_id": "isp-example"} if role == "partner_admin"
              else {"org_id": "bakkerij"})
        _, totp_seed = make_user(svc, f"{role}@example.nl", role,
                                 totp=role != "org_user", **kw)
        login(client, f"{role}@example.nl", PASSWORD, totp_seed)
        for path in PAGES:
            assert client.get(path).status_code == 403, (role, path)
        t = csrf(client, "/account")
        for path, data in [
                (f"/operator/signups/{seeded.signup_id}/approve", {"target": "new"}),
                (f"/operator/signups/{seeded.signup_id}/reject", {}),
                (f"/operator/users/{seeded.member_id}/reset-totp", {}),
                (f"/operator/users/{seeded.member_id}/status", {"status": "disabled"}),
                ("/operator/users/invite", {"email": "x@example.nl", "role": "operator"})]:
            r = client.post(path, data={**data, "csrf_token": t})
            assert r.status_code == 403, (role, path)
    with svc.sessions() as s:
        signup = s.get(User, seeded.signup_id)
        member = s.get(User, seeded.member_id)
        assert signup is not None and signup.status == "pending"
        assert member is not None and member.status == "active"
        assert s.scalar(select(func.count()).select_from(User)) == 5


def test_signed_out_visitors_are_sent_to_sign_in(web_app: App) -> None:
    client, _ = web_app
    r = client.get("/operator/users")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_approving_a_sign_up_into_the_organisation_it_named(accounts: Desk) -> None:
    client, svc, seeded, _ = accounts
    r = client.post(f"/operator/signups/{seeded.signup_id}/approve",
                    data={"target": "existing", "org_id": "bakkerij",
                          "csrf_token": token(client)}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert "Approved: info@nieuw.example.nl is now an administrator of Bakkerij Jansen." \
        in r.text
    with svc.sessions() as s:
        u = s.get(User, seeded.signup_id)
        assert u is not None
        assert (u.status, u.org_id, u.approved_by) == ("active", "bakkerij", f"user:{OPERATOR}")
        last = s.scalars(select(AuditEntry).where(AuditEntry.entity == "user")
                         .order_by(AuditEntry.id.desc())).first()
    assert last is not None and last.actor == f"user:{OPERATOR}"
    assert (last.before or {})["status"] == "pending" and (last.after or {})["status"] == "active"
    assert "No sign-ups are waiting." in client.get("/operator/signups").text
    again = client.post(f"/operator/signups/{seeded.signup_id}/approve",
                        data={"target": "new", "csrf_token": token(client)})
    assert again.status_code == 404


def test_approving_a_sign_up_as_a_new_organisation_without_javascript(accounts: Desk) -> None:
    client, svc, _, _ = accounts
    with svc.sessions() as s:
        new = users.signup(s, email="it@groente.example.nl", password=PASSWORD,
                           name="Gert Groen", organisation="Groenteboer Groen", kvk=None,
                           note=None, language="nl")
        s.commit()
        new_id = new.id
    missing = client.post(f"/operator/signups/{new_id}/approve",
                          data={"target": "existing", "org_id": " ",
                                "csrf_token": token(client)})
    assert missing.status_code == 422
    assert "Choose the organisation to link this account to." in missing.text
    r = client.post(f"/operator/signups/{new_id}/approve",
                    data={"target": "new", "csrf_token": token(client)})
    assert r.status_code == 303 and r.headers["location"].startswith("/operator/signups?done=")
    assert "Groenteboer Groen" in client.get(r.headers["location"]).text
    with svc.sessions() as s:
        u = s.get(User, new_id)
        assert u is not None and u.status == "active" and u.org_id
        org = s.get(Organization, u.org_id)
        assert org is not None and org.name == "Groenteboer Groen"
        created = s.scalars(select(AuditEntry).where(AuditEntry.entity == "organization",
                                                     AuditEntry.entity_id == org.id)).all()
    assert [e.actor for e in created] == [f"user:{OPERATOR}"]


def test_rejecting_a_sign_up(accounts: Desk) -> None:
    client, svc, seeded, _ = accounts
    forged = client.post(f"/operator/signups/{seeded.signup_id}/reject", data={})
    assert forged.status_code == 403  # no CSRF token: nothing happens
    with svc.sessions() as s:
        u = s.get(User, seeded.signup_id)
        assert u is not None and u.status == "pending"
    r = client.post(f"/operator/signups/{seeded.signup_id}/reject",
                    data={"csrf_token": token(client)}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Rejected: info@nieuw.example.nl cannot sign in." in r.text
    with svc.sessions() as s:
        u = s.get(User, seeded.signup_id)
        assert u is not None and u.status == "disabled" and u.org_id is None
    # a rejected sign-up cannot be switched on behind the approval's back
    enable = client.post(f"/operator/users/{seeded.signup_id}/status",
                         data={"status": "active", "csrf_token": token(client)})
    assert enable.status_code == 422


def test_resetting_a_lost_second_factor_is_audited_and_signs_the_person_out(
        accounts: Desk, client_factory: Callable[[], TestClient]) -> None:
    client, svc, _, _ = accounts
    uid, totp_seed = make_user(svc, "beheer@bakkerij.example.nl", "org_admin",
                               org_id="bakkerij")
    browser = client_factory()
    login(browser, "beheer@bakkerij.example.nl", PASSWORD, totp_seed)
    assert browser.get("/account").status_code == 200
    r = client.post(f"/operator/users/{uid}/reset-totp", data={"csrf_token": token(client)},
                    headers={"HX-Request": "true"})
    assert r.status_code == 200 and f'id="user-{uid}"' in r.text
    assert "Two-step sign-in reset for beheer@bakkerij.example.nl" in r.text
    with svc.sessions() as s:
        u = s.get(User, uid)
        assert u is not None and not u.totp_enabled and u.totp_sealed is None
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == u.email)
                          .order_by(AuditEntry.id.desc())).first()
        assert s.scalar(select(func.count()).select_from(WebSession)
                        .where(WebSession.user_id == uid)) == 0
    assert entry is not None and entry.actor == f"user:{OPERATOR}"
    assert (entry.after or {})["event"] == "totp_reset"
    assert (entry.before or {})["totp_enabled"] is True
    assert browser.get("/account").status_code == 303  # signed out


def test_disabling_and_enabling_an_account(accounts: Desk) -> None:
    client, svc, seeded, operator_id = accounts
    off = client.post(f"/operator/users/{seeded.member_id}/status",
                      data={"status": "disabled", "csrf_token": token(client)})
    assert off.status_code == 303
    with svc.sessions() as s:
        u = s.get(User, seeded.member_id)
        assert u is not None and u.status == "disabled"
    # never chose a password (made without one by the seed): cannot simply be re-enabled
    on = client.post(f"/operator/users/{seeded.member_id}/status",
                     data={"status": "active", "csrf_token": token(client)},
                     headers={"HX-Request": "true"})
    assert on.status_code == 200 and "never chose a password" in on.text
    uid, _ = make_user(svc, "oud@bakkerij.example.nl", "org_user", org_id="bakkerij",
                       totp=False)
    for status in ("disabled", "active"):
        r = client.post(f"/operator/users/{uid}/status",
                        data={"status": status, "csrf_token": token(client)})
        assert r.status_code == 303
    with svc.sessions() as s:
        u = s.get(User, uid)
        assert u is not None and u.status == "active"
        changes = [((e.before or {}).get("status"), (e.after or {}).get("status"))
                   for e in s.scalars(select(AuditEntry).where(
                       AuditEntry.entity_id == "oud@bakkerij.example.nl",
                       AuditEntry.actor == f"user:{OPERATOR}").order_by(AuditEntry.id))]
    assert changes == [("active", "disabled"), ("disabled", "active")]
    me = client.post(f"/operator/users/{operator_id}/status",
                     data={"status": "disabled", "csrf_token": token(client)})
    assert me.status_code == 422 and "your own account" in me.text
    bad = client.post(f"/operator/users/{uid}/status",
                      data={"status": "deleted", "csrf_token": token(client)})
    assert bad.status_code == 422
    assert client.post("/operator/users/nobody/status",
                       data={"status": "disabled", "csrf_token": token(client)}
                       ).status_code == 404


def test_inviting_a_partner_administrator_mails_the_link(accounts: Desk) -> None:
    client, svc, _, _ = accounts
    r = client.post("/operator/users/invite",
                    data={"email": "Soc@ISP.example.nl", "role": "partner_admin",
                          "partner_id": "isp-example", "org_id": "bakkerij",
                          "csrf_token": token(client)})
    assert r.status_code == 200, r.text[:500]
    link = re.search(r'id="invited">.*?<code>(https?://[^<]+/invite/[^<]+)</code>', r.text)
    assert link
    mails = list(svc.settings.outbox_dir.rglob("*.eml"))
    assert len(mails) == 1
    assert link.group(1).split("/invite/")[1] in mails[0].read_text().replace("=\n", "")
    with svc.sessions() as s:
        u = s.scalar(select(User).where(User.email == "soc@isp.example.nl"))
        assert u is not None
        assert (u.role, u.partner_id, u.org_id, u.status) == ("partner_admin", "isp-example",
                                                               None, "invited")
    # an invitation that cannot be: the role needs an organisation
    bad = client.post("/operator/users/invite",
                      data={"email": "x@example.nl", "role": "org_user",
                            "csrf_token": token(client)})
    assert bad.status_code == 422 and "needs an existing organisation" in bad.text
