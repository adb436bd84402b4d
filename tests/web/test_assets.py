"""Assets and claims in the portal and the API: claiming, proving (DNS on a loopback DNS
server, the RIR abuse contact's link), the operator's review of overlapping claims, and one
organisation never seeing or touching another's claims (404, so ids leak nothing)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cwn.config import Settings
from cwn.db.models import Asset
from cwn.db.models_web import AssetClaim
from cwn.publicdata.ripe import import_ripe
from cwn.publicdata.store import PublicDataStore
from cwn.wiring import Services
from dns_server import DnsServer
from web_support import api_token, bearer, csrf, login, make_org, make_user, outbox_mails

App = tuple[TestClient, Services]
PUBLIC = "https://portal.cwn.example"
RPSL = """\
inetnum:        145.104.0.0 - 145.104.255.255
netname:        HOSTER-NET
country:        NL
abuse-c:        HOST1-TEST
status:         ASSIGNED PA
source:         TEST

role:           Hoster Abuse
nic-hdl:        HOST1-TEST
abuse-mailbox:  abuse@hoster.test-nl.nl
source:         TEST
"""


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, dns_server: DnsServer, tmp_path: Path) -> Settings:
    src = tmp_path / "ripe.db.test"
    src.write_text(RPSL, encoding="utf-8")
    import_ripe([src], PublicDataStore(settings.publicdata_dir))
    return settings.model_copy(update={"public_url": PUBLIC,
                                       "dns_nameserver": dns_server.address})


def _orgs(svc: Services) -> None:
    make_org(svc, "alpha", "Alpha B.V.")
    make_org(svc, "beta", "Beta B.V.", assets=[("cidr", "145.100.0.0/16")])


def _admin(client: TestClient, svc: Services, org: str) -> None:
    _, seed = make_user(svc, f"admin@{org}.nl", "org_admin", org_id=org)
    login(client, f"admin@{org}.nl", seed=seed)


def _claim_id(svc: Services, value: str) -> str:
    with svc.sessions() as s:
        cid = s.scalar(select(AssetClaim.id).where(AssetClaim.value == value))
    assert cid is not None
    return cid


def _owner(svc: Services, ip: str) -> str | None:
    return svc.index().attribute(pa.table({"source.ip": [ip]})).column(
        "organization").to_pylist()[0]


def _mails(settings: Settings) -> list[email.message.EmailMessage]:
    return outbox_mails(settings)


# -- the portal ------------------------------------------------------------------------------


def test_an_admin_claims_a_domain_and_proves_it_with_dns(web_app: App,
                                                         dns_server: DnsServer) -> None:
    client, svc = web_app
    _orgs(svc)
    _admin(client, svc, "alpha")
    r = client.post("/assets/claims", data={"type": "domain", "value": "Alpha-Shop.NL",
                                            "csrf_token": csrf(client, "/assets")})
    assert r.status_code == 303, r.text[:300]
    cid = _claim_id(svc, "alpha-shop.nl")
    assert r.headers["location"] == f"/assets/claims/{cid}"
    page = client.get(r.headers["location"]).text
    with svc.sessions() as s:
        challenge = s.get(AssetClaim, cid).challenge  # type: ignore[union-attr]
    assert f'_cwn-challenge.alpha-shop.nl. IN TXT "cwn-verification={challenge}"' in page
    assert "CWN-Verification: " + challenge in page
    token = csrf(client, f"/assets/claims/{cid}")
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    r = client.post(f"/assets/claims/{cid}/check/dns", headers=headers)
    assert r.status_code == 200 and "No proof found yet" in r.text
    assert "<html" not in r.text  # an htmx fragment
    dns_server.records["_cwn-challenge.alpha-shop.nl"] = [f"cwn-verification={challenge}"]
    r = client.post(f"/assets/claims/{cid}/check/dns", headers=headers)
    assert "is verified" in r.text
    listing = client.get("/assets").text
    assert "alpha-shop.nl" in listing and "DNS TXT record" in listing


def test_the_rir_abuse_contact_confirms_with_a_button_not_by_opening_the_link(
        web_app: App, client_factory: Callable[[], TestClient]) -> None:
    client, svc = web_app
    _orgs(svc)
    _admin(client, svc, "alpha")
    client.post("/assets/claims", data={"type": "cidr", "value": "145.104.0.0/20",
                                        "csrf_token": csrf(client, "/assets")})
    cid = _claim_id(svc, "145.104.0.0/20")
    page = client.get(f"/assets/claims/{cid}").text
    assert "Mail the abuse contact abuse@hoster.test-nl.nl" in page
    r = client.post(f"/assets/claims/{cid}/rir",
                    data={"csrf_token": csrf(client, f"/assets/claims/{cid}")})
    assert r.status_code == 200 and "was mailed to abuse@hoster.test-nl.nl" in r.text
    (mail,) = _mails(svc.settings)
    assert mail["To"] == "abuse@hoster.test-nl.nl"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(re.escape(PUBLIC) + r"(/claims/confirm/[\w-]+)", body)
    assert link is not None
    path = link.group(1)

    desk = client_factory()  # the abuse desk: not signed in
    shown = desk.get(path)
    assert shown.status_code == 200 and "Alpha B.V." in shown.text
    with svc.sessions() as s:
        assert s.get(AssetClaim, cid).state == "pending"  # type: ignore[union-attr]
    assert _owner(svc, "145.104.1.1") is None
    r = desk.post(path, data={"csrf_token": csrf(desk, path)})
    assert r.status_code == 200 and "Thank you" in r.text
    with svc.sessions() as s:
        c = s.get(AssetClaim, cid)
        assert c is not None and (c.state, c.method) == ("verified", "rir")
    assert _owner(svc, "145.104.1.1") == "alpha"  # now it counts for attribution
    again = desk.post(path, data={"csrf_token": csrf(desk, "/login")})
    assert again.status_code == 404 and "not valid" in again.text
    assert desk.get("/claims/confirm/nonsense").status_code == 404


def test_an_overlapping_claim_is_decided_by_the_operator_who_sees_whose_assets(
        web_app: App, client_factory: Callable[[], TestClient]) -> None:
    client, svc = web_app
    _orgs(svc)
    _admin(client, svc, "alpha")
    client.post("/assets/claims", data={"type": "cidr", "value": "145.100.12.0/24",
                                        "csrf_token": csrf(client, "/assets")})
    cid = _claim_id(svc, "145.100.12.0/24")
    mine = client.get(f"/assets/claims/{cid}").text
    assert "overlaps assets of another organisation" in mine
    assert "Beta" not in mine and "145.100.0.0/16" not in mine  # whose, is not told

    op = client_factory()
    _, seed = make_user(svc, "desk@cwn.nl", "operator")
    login(op, "desk@cwn.nl", seed=seed)
    review = op.get("/operator/claims").text
    assert "145.100.12.0/24" in review and "Beta B.V." in review and "145.100.0.0/16" in review
    token = csrf(op, "/operator/claims")
    r = op.post(f"/operator/claims/{cid}/reject", data={"reason": "", "csrf_token": token})
    assert r.status_code == 400 and "Give a reason" in r.text
    r = op.post(f"/operator/claims/{cid}/approve", data={"note": "subsidiary",
                                                         "csrf_token": token})
    assert r.status_code == 303
    with svc.sessions() as s:
        c = s.get(AssetClaim, cid)
        assert c is not None and (c.state, c.decided_by) == ("verified", "user:desk@cwn.nl")
    assert client.get("/operator/claims").status_code == 403  # an org admin is no operator


def test_another_organisation_never_sees_or_acts_on_a_claim(
        web_app: App, client_factory: Callable[[], TestClient]) -> None:
    client, svc = web_app
    _orgs(svc)
    _admin(client, svc, "alpha")
    client.post("/assets/claims", data={"type": "domain", "value": "alpha.nl",
                                        "csrf_token": csrf(client, "/assets")})
    cid = _claim_id(svc, "alpha.nl")
    other = client_factory()
    _admin(other, svc, "beta")
    assert "alpha.nl" not in other.get("/assets").text
    assert other.get(f"/assets/claims/{cid}").status_code == 404
    token = csrf(other, "/assets")
    for action in ("check/dns", "check/securitytxt", "rir", "review", "withdraw"):
        r = other.post(f"/assets/claims/{cid}/{action}", data={"csrf_token": token})
        assert r.status_code == 404, action
    beta = api_token(svc, org_id="beta", scopes=["read", "write"])
    api = "/api/v1/assets/claims/" + cid
    assert client.get(api, headers=bearer(beta)).status_code == 404
    assert client.post(api + "/verify", json={"method": "dns"},
                       headers=bearer(beta)).status_code == 404
    assert client.delete(api, headers=bearer(beta)).status_code == 404
    with svc.sessions() as s:
        assert s.get(AssetClaim, cid).state == "pending"  # type: ignore[union-attr]


def test_an_org_user_sees_assets_but_cannot_claim(web_app: App) -> None:
    client, svc = web_app
    _orgs(svc)
    make_user(svc, "user@alpha.nl", "org_user", org_id="alpha", totp=False)
    login(client, "user@alpha.nl")
    assert client.get("/assets").status_code == 200
    r = client.post("/assets/claims", data={"type": "domain", "value": "alpha.nl",
                                            "csrf_token": csrf(client, "/assets")})
    assert r.status_code == 403


def test_a_refused_claim_re_shows_the_form_with_the_reason(web_app: App) -> None:
    client, svc = web_app
    _orgs(svc)
    _admin(client, svc, "alpha")
    r = client.post("/assets/claims", data={"type": "cidr", "value": "10.0.0.0/8",
                                            "csrf_token": csrf(client, "/assets")})
    assert r.status_code == 400
    assert "This value cannot be claimed" in r.text and "private, reserved" in r.text
    assert 'value="10.0.0.0/8"' in r.text


# -- the API ---------------------------------------------------------------------------------


def test_the_api_claims_proves_lists_and_withdraws(web_app: App,
                                                   dns_server: DnsServer) -> None:
    client, svc = web_app
    _orgs(svc)
    tok = bearer(api_token(svc, org_id="alpha", scopes=["read", "write"]))
    r = client.post("/api/v1/assets/claims", json={"type": "domain", "value": "alpha.nl"},
                    headers=tok)
    assert r.status_code == 201, r.text
    claim = r.json()
    assert claim["state"] == "pending" and claim["dns"]["name"] == "_cwn-challenge.alpha.nl"
    assert claim["overlaps_other_organisation"] is False

    bad = client.post("/api/v1/assets/claims", json={"type": "cidr", "value": "10.0.0.0/8"},
                      headers=tok)
    assert bad.status_code == 400 and bad.json()["error"] == "claim_invalid"
    dup = client.post("/api/v1/assets/claims", json={"type": "domain", "value": "ALPHA.nl"},
                      headers=tok)
    assert dup.status_code == 409 and dup.json()["error"] == "claim_duplicate"
    assert client.post("/api/v1/assets/claims", json={"type": "x", "value": "y"},
                       headers=tok).status_code == 422

    listing = client.get("/api/v1/assets", headers=tok).json()
    assert listing["total"] == 1
    assert listing["items"][0] == {"type": "domain", "value": "alpha.nl", "verified": False,
                                   "verified_by": None, "source": "portal",
                                   "claim": {"id": claim["id"], "state": "pending"}}
    url = f"/api/v1/assets/claims/{claim['id']}"
    r = client.post(url + "/verify", json={"method": "dns"}, headers=tok)
    assert r.status_code == 200 and r.json()["proven"] is False
    dns_server.records["alpha.nl"] = [claim["dns"]["value"]]
    r = client.post(url + "/verify", json={"method": "dns"}, headers=tok)
    assert r.json()["proven"] is True and r.json()["claim"]["state"] == "verified"
    rir = client.post(url + "/verify", json={"method": "rir"}, headers=tok)
    assert rir.status_code == 409  # closed: already verified
    assert client.get("/api/v1/assets", headers=tok).json()["items"][0]["verified"] is True

    assert client.delete(url, headers=tok).status_code == 204
    assert client.get(url, headers=tok).json()["state"] == "withdrawn"
    assert client.get("/api/v1/assets", headers=tok).json()["total"] == 0
    with svc.sessions() as s:
        assert s.scalar(select(Asset).where(Asset.value == "alpha.nl")) is None


def test_the_api_needs_the_write_scope_and_an_organisation_token(web_app: App) -> None:
    client, svc = web_app
    _orgs(svc)
    read = bearer(api_token(svc, org_id="alpha", scopes=["read"]))
    r = client.post("/api/v1/assets/claims", json={"type": "domain", "value": "alpha.nl"},
                    headers=read)
    assert r.status_code == 403
    source = bearer(api_token(svc, source="feed-x", scopes=["submit"]))
    assert client.get("/api/v1/assets", headers=source).status_code == 403
    assert client.get("/api/v1/assets").status_code == 401
    tok = bearer(api_token(svc, org_id="alpha", scopes=["read", "write"]))
    r = client.post("/api/v1/assets/claims", json={"type": "cidr", "value": "145.104.0.0/20"},
                    headers=tok)
    cid = r.json()["id"]
    r = client.post(f"/api/v1/assets/claims/{cid}/verify", json={"method": "securitytxt"},
                    headers=tok)
    assert r.status_code == 400 and r.json()["error"] == "claim_method"
