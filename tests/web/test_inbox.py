"""The inbox in the portal and the API: case list, notifications, events, the case page
(signed in, or with the key from the mail) and feedback. Cases come from the real
pipeline: a registry import, public data, a Shadowserver report, a notify run.

Isolation is the first requirement: organisation B never reads A's cases, by any route,
including with the key of one of its own cases."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from cwn.db.models_notify import Case, Notification
from cwn.db.models_web import CaseFeedback
from cwn.web.api.cases import CaseList
from cwn.wiring import Services
from inbox_support import (
    ACME_IPS,
    GLOBEX_IPS,
    ISP_ABUSE,
    World,
    build_world,
    case_for_ip,
    mails,
)
from web_support import PASSWORD, api_token, bearer, login, make_user

App = tuple[TestClient, Services]


@pytest.fixture
def world(web_app: App, tmp_path: Path) -> World:
    return build_world(web_app[1], tmp_path)


def mailed_link(svc: Services, recipient: str, case_id: str | None = None) -> str:
    """Path and query of the case link in the last mail to `recipient`."""
    msg = mails(svc, recipient)[-1]
    body = msg.get_body(("plain",))
    assert body is not None
    links = re.findall(r"https?://\S+/case/\S+", body.get_content())
    assert links, "the mail has no case link"
    url = next(u for u in links if case_id is None or case_id in u)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def member(client: TestClient, svc: Services, org: str, email: str,
           language: str = "en") -> None:
    make_user(svc, email, "org_user", org_id=org, totp=False, language=language)
    login(client, email, PASSWORD)


def main(html: str) -> str:
    """The page's own content (the header's links carry the path)."""
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def page_csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert m
    return m.group(1)


def test_the_start_page_sends_each_role_to_its_own_place(web_app: App, client_factory) -> None:  # type: ignore[no-untyped-def]
    client, svc = web_app
    from web_support import make_org

    make_org(svc, "acme")
    assert client.get("/").headers["location"] == "/login"
    member(client, svc, "acme", "u@acme.nl")
    assert client.get("/").headers["location"] == "/inbox"
    op = client_factory()
    _, seed = make_user(svc, "op@cwn.example", "operator")
    login(op, "op@cwn.example", PASSWORD, seed)
    assert op.get("/").headers["location"] == "/operator"
    assert op.get("/inbox").status_code == 403  # an operator is not an org member


def test_a_member_filters_and_pages_the_inbox_and_sees_the_notifications(
        web_app: App, world: World) -> None:
    client, svc = web_app
    acme = world.by_org["acme"]
    globex = world.case("globex")
    assert client.get("/inbox").status_code == 303  # sign in first
    member(client, svc, "acme", "u@acme.nl")

    page = client.get("/inbox")
    assert page.status_code == 200
    assert all(c in page.text for c in acme) and globex not in page.text
    assert "scan_rdp" in page.text and "TLP:AMBER" in page.text

    frag = client.get("/inbox", params={"state": "all", "per_page": "1", "page": "2"},
                      headers={"HX-Request": "true", "HX-Target": "cases"})
    assert frag.status_code == 200 and "<html" not in frag.text
    assert "page 2 of 2" in frag.text and sum(c in frag.text for c in acme) == 1
    assert client.get("/inbox", params={"q": acme[1][-6:]}).text.count("/case/CWN-") == 1
    assert client.get("/inbox", params={"q": globex}).text.count("/case/CWN-") == 0
    resolved = client.get("/inbox", params={"state": "resolved"})
    assert "No cases match" in resolved.text
    assert client.get("/inbox", params={"since": "2026-13-01"}).status_code == 400
    assert client.get("/inbox", params={"severity": "apocalyptic"}).status_code == 400

    notes = client.get("/notifications")
    assert notes.status_code == 200 and "security@acme.nl" in notes.text
    assert all(c in notes.text for c in acme) and "soc@globex.example" not in notes.text

    lookup = client.get("/case", params={"case_id": f" {acme[0].lower()} "})
    assert lookup.status_code == 303 and lookup.headers["location"] == f"/case/{acme[0]}"


def test_a_member_opens_its_case_with_events_advice_history_and_gives_feedback(
        web_app: App, world: World) -> None:
    client, svc = web_app
    case_id = case_for_ip(svc, "acme", ACME_IPS[0])
    member(client, svc, "acme", "u@acme.nl", language="nl")

    page = client.get(f"/case/{case_id}")
    assert page.status_code == 200
    assert ACME_IPS[0] in page.text and ACME_IPS[1] not in page.text
    assert "TLP:AMBER" in page.text
    assert "security@acme.nl" in page.text  # members see which contact was told
    assert 'lang="nl"' in page.text
    for kind in ("fixed", "false_positive", "not_ours", "question"):
        assert f'value="{kind}"' in page.text

    token = page_csrf(page.text)
    no_csrf = client.post(f"/case/{case_id}/feedback", data={"kind": "fixed"})
    assert no_csrf.status_code == 403
    empty_q = client.post(f"/case/{case_id}/feedback", data={"kind": "question", "text": ""},
                          headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert empty_q.status_code == 400 and 'role="alert"' in empty_q.text
    done = client.post(f"/case/{case_id}/feedback", data={"kind": "fixed", "text": "patched"},
                       headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert done.status_code == 200 and "<html" not in done.text and "patched" in done.text
    with svc.engine.connect() as conn:
        st = conn.execute(select(Case.state).where(Case.id == case_id)).scalar_one()
        fb = conn.execute(select(CaseFeedback.actor, CaseFeedback.via)).one()
    assert st == "resolved" and tuple(fb) == ("user:u@acme.nl", "portal")


def test_the_key_in_the_mail_opens_that_case_only_and_shows_only_what_was_mailed(
        web_app: App, world: World) -> None:
    client, svc = web_app
    acme_case = world.by_org["acme"][0]
    link = mailed_link(svc, "security@acme.nl")
    assert acme_case in link and "key=" in link

    page = client.get(link)  # not signed in
    assert page.status_code == 200 and acme_case in page.text
    assert any(ip in page.text for ip in ACME_IPS)
    assert "security@acme.nl" not in page.text  # a key holder sees no addresses

    key = link.split("key=", 1)[1]
    missing = client.get(f"/case/{acme_case}")
    wrong = client.get(f"/case/{acme_case}?key={'A' * len(key)}")
    other = client.get(f"/case/{world.by_org['acme'][1]}?key={key}")  # another case's key
    unknown = client.get(f"/case/CWN-1999-000001?key={key}")
    assert {r.status_code for r in (missing, wrong, other, unknown)} == {404}
    assert len({main(r.text) for r in (missing, wrong, unknown)}) == 1

    # Feedback with the key, through the htmx form (CSRF cookie from the page).
    token = page_csrf(page.text)
    r = client.post(f"/case/{acme_case}/feedback", data={"kind": "question", "text": "Who?",
                                                          "key": key},
                    headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert r.status_code == 200 and "Who?" in r.text
    r = client.post(f"/case/{acme_case}/feedback", data={"kind": "fixed"},
                    headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert r.status_code == 404  # without the key, nothing

    # TLP:RED needs a signed-in member; the key is not enough.
    with svc.engine.begin() as conn:
        conn.execute(update(Case).where(Case.id == acme_case).values(tlp="RED"))
    assert client.get(link).status_code == 403
    member(client, svc, "acme", "u@acme.nl")
    red = client.get(f"/case/{acme_case}")
    assert red.status_code == 200 and "TLP:RED" in red.text


def test_an_unsolicited_recipient_says_not_ours_with_the_key_and_is_re_routed(
        web_app: App, world: World) -> None:
    client, svc = web_app
    owner = world.public_owner()
    case_id = world.case(owner)
    link = mailed_link(svc, ISP_ABUSE, case_id)
    page = client.get(link)
    assert page.status_code == 200
    r = client.post(f"/case/{case_id}/feedback",
                    data={"kind": "not_ours", "key": link.split("key=", 1)[1],
                          "csrf_token": page_csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/case/{case_id}?key=")
    with svc.engine.connect() as conn:
        states = conn.execute(select(Notification.state).where(
            Notification.recipient == ISP_ABUSE)).scalars().all()
    assert states == ["rejected"]


def test_the_api_lists_filters_and_details_the_organisations_cases(
        web_app: App, world: World) -> None:
    client, svc = web_app
    acme = world.by_org["acme"]
    h = bearer(api_token(svc, org_id="acme", scopes=["read", "write"]))

    r = client.get("/api/v1/cases", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2 and body["page"] == 1 and body["per_page"] == 50
    assert sorted(i["id"] for i in body["items"]) == acme
    assert {i["state"] for i in body["items"]} == {"open"}
    assert body["items"][0]["report_type"] == "scan_rdp"
    assert CaseList.model_validate(body).model_dump(mode="json") == body  # the documented shape
    paged = client.get("/api/v1/cases", params={"per_page": 1, "page": 2}, headers=h).json()
    assert paged["total"] == 2 and len(paged["items"]) == 1
    assert client.get("/api/v1/cases", params={"state": "resolved"}, headers=h).json()[
        "total"] == 0
    assert client.get("/api/v1/cases", params={"q": acme[0]}, headers=h).json()["total"] == 1
    assert client.get("/api/v1/cases", params={"since": "2099-01-01"},
                      headers=h).json()["total"] == 0
    assert client.get("/api/v1/cases", params={"per_page": 501}, headers=h).status_code == 422
    assert client.get("/api/v1/cases", params={"state": "x"}, headers=h).status_code == 422
    bad = client.get("/api/v1/cases", params={"since": "2026-02-01", "until": "2026-01-01"},
                     headers=h)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    assert client.get("/api/v1/cases").status_code == 401

    detail = client.get(f"/api/v1/cases/{acme[0]}", params={"lang": "nl"}, headers=h).json()
    assert detail["id"] == acme[0] and detail["advice"]["language"] == "nl"
    assert detail["advice"]["steps"] and detail["tlp"] == "AMBER"
    assert ("notified", "security@acme.nl") in [(x["action"], x["recipient"])
                                                 for x in detail["history"]]
    assert [n["recipient"] for n in detail["notifications"]] == ["security@acme.nl"]

    events = client.get(f"/api/v1/cases/{acme[0]}/events", headers=h).json()
    assert events["total"] == 1 and events["items"][0]["source.ip"] in ACME_IPS
    assert events["items"][0]["case_id"] == acme[0]

    notes = client.get("/api/v1/notifications", headers=h).json()
    assert notes["total"] == 1 and sorted(notes["items"][0]["case_ids"]) == acme
    nid = notes["items"][0]["id"]
    one = client.get(f"/api/v1/notifications/{nid}", headers=h).json()
    assert sorted(c["id"] for c in one["cases"]) == acme

    all_events = client.get("/api/v1/events", headers=h).json()
    assert sorted(e["source.ip"] for e in all_events["items"]) == sorted(ACME_IPS)
    assert {e["case_id"] for e in all_events["items"]} == set(acme)
    by_ip = client.get("/api/v1/events", params={"ip": ACME_IPS[1]}, headers=h).json()
    assert [e["source.ip"] for e in by_ip["items"]] == [ACME_IPS[1]]
    assert client.get("/api/v1/events", params={"report_type": "scan_smb"},
                      headers=h).json()["total"] == 0
    assert client.get("/api/v1/events", params={"case_id": acme[1]}, headers=h).json()[
        "total"] == 1

    fb = client.post(f"/api/v1/cases/{acme[0]}/feedback", json={"kind": "fixed"}, headers=h)
    assert fb.status_code == 201 and fb.json()["state"] == "resolved" and fb.json()["resolved"]
    q = client.post(f"/api/v1/cases/{acme[0]}/feedback", json={"kind": "question"}, headers=h)
    assert q.status_code == 400
    odd = client.post(f"/api/v1/cases/{acme[0]}/feedback", json={"kind": "nuke"}, headers=h)
    assert odd.status_code == 422
    ro = bearer(api_token(svc, org_id="acme", scopes=["read"]))
    assert client.post(f"/api/v1/cases/{acme[0]}/feedback", json={"kind": "fixed"},
                       headers=ro).status_code == 403


def test_organisation_b_never_reads_a_s_cases_by_any_route(
        web_app: App, world: World) -> None:
    client, svc = web_app
    a_case = world.by_org["acme"][0]
    b_case = world.case("globex")
    b_key = mailed_link(svc, "soc@globex.example").split("key=", 1)[1]
    with svc.engine.connect() as conn:
        a_note = conn.execute(select(Notification.id).where(
            Notification.recipient == "security@acme.nl")).scalar_one()

    h = bearer(api_token(svc, org_id="globex", scopes=["read", "write"]))
    for path in (f"/api/v1/cases/{a_case}", f"/api/v1/cases/{a_case}/events",
                 f"/api/v1/notifications/{a_note}"):
        assert client.get(path, headers=h).status_code == 404, path
    assert client.get("/api/v1/events", params={"case_id": a_case},
                      headers=h).status_code == 404
    assert client.post(f"/api/v1/cases/{a_case}/feedback", json={"kind": "fixed"},
                       headers=h).status_code == 404
    listed = client.get("/api/v1/cases", params={"q": a_case}, headers=h).json()
    assert listed["total"] == 0
    events = client.get("/api/v1/events", headers=h).json()
    assert [e["source.ip"] for e in events["items"]] == GLOBEX_IPS
    notes = client.get("/api/v1/notifications", headers=h).json()
    assert a_note not in [n["id"] for n in notes["items"]]

    member(client, svc, "globex", "u@globex.example")
    assert client.get(f"/case/{a_case}").status_code == 404
    assert client.get(f"/case/{a_case}?key={b_key}").status_code == 404
    assert client.get(f"/case/{b_case}").status_code == 200
    assert a_case not in client.get("/inbox", params={"state": "all"}).text
    assert a_case not in client.get("/notifications").text
    token = page_csrf(client.get(f"/case/{b_case}").text)
    r = client.post(f"/case/{a_case}/feedback", data={"kind": "fixed", "key": b_key},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 404
    with svc.engine.connect() as conn:
        assert conn.execute(select(Case.state).where(Case.id == a_case)).scalar_one() == "open"
