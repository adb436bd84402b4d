"""A partner sees the cases delivered under its own agreements and reports back on them;
it never sees another partner's deliveries or an organisation's other cases."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from cwn.db.models_notify import Case, CaseDecision, Notification, NotificationCase
from cwn.db.models_partners import Agreement, Partner, PartnerFeedback
from cwn.wiring import Services
from web_support import api_token, bearer, csrf, login, make_org, make_user

App = tuple[TestClient, Services]
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _world(svc: Services) -> None:
    make_org(svc, "bakery", "Bakkerij", [("cidr", "192.0.2.0/24")])
    with svc.sessions() as s:
        for pid in ("isp", "csirt"):
            s.add(Partner(id=pid, name=pid.upper(), type="isp", functions=[], sectors=[],
                          regions=[]))
            s.flush()
            s.add(Agreement(id=f"{pid}-1", partner_id=pid, scope={}, format="csv"))
        for cid in ("CWN-2026-000001", "CWN-2026-000002", "CWN-2026-000003"):
            s.add(Case(id=cid, org_id="bakery", fingerprint=cid[-6:], report_type="scan_rdp",
                       severity="high", tlp="AMBER", state="open", first_seen=T0,
                       last_seen=T0, events_count=1))
        for nid, owner, cid in (("n1", "partner:isp-1", "CWN-2026-000001"),
                                ("n2", "partner:csirt-1", "CWN-2026-000002"),
                                ("n3", "bakery", "CWN-2026-000003")):
            s.add(Notification(id=nid, org_id=owner, recipient="x@example.nl", language="nl",
                               state="sent", created_at=T0))
            s.flush()
            s.add(NotificationCase(notification_id=nid, case_id=cid))
        s.commit()


def test_the_partner_page_lists_only_its_own_deliveries_and_takes_feedback(
        web_app: App) -> None:
    client, svc = web_app
    _world(svc)
    _, seed = make_user(svc, "noc@isp.nl", "partner_admin", partner_id="isp")
    login(client, "noc@isp.nl", seed=seed)
    page = client.get("/partner")
    assert page.status_code == 200
    assert "CWN-2026-000001" in page.text
    assert "CWN-2026-000002" not in page.text and "CWN-2026-000003" not in page.text
    token = csrf(client, "/partner")
    r = client.post("/partner/cases/CWN-2026-000002/feedback",
                    data={"status": "fixed", "csrf_token": token})
    assert r.status_code == 404  # the CSIRT's delivery, not ours
    r = client.post("/partner/cases/CWN-2026-000001/feedback",
                    data={"status": "fixed", "csrf_token": token})
    assert r.status_code == 303
    with svc.sessions() as s:
        case = s.get(Case, "CWN-2026-000001")
        assert case is not None and case.state == "resolved"
        fb = s.scalars(select(PartnerFeedback)).all()
        assert [(f.partner_id, f.status, f.source) for f in fb] == [("isp", "fixed", "portal")]
        assert s.scalar(select(CaseDecision.reason).where(
            CaseDecision.action == "partner_feedback")) == "fixed"
    # An organisation page is not a partner's.
    assert client.get("/inbox").status_code == 403


def test_the_partner_api_is_scoped_to_the_token_holder(web_app: App) -> None:
    client, svc = web_app
    _world(svc)
    isp = api_token(svc, partner_id="isp")
    org = api_token(svc, org_id="bakery")
    r = client.get("/api/v1/partner/cases", headers=bearer(isp))
    assert r.status_code == 200
    assert [c["id"] for c in r.json()["items"]] == ["CWN-2026-000001"]
    assert client.get("/api/v1/partner/cases", headers=bearer(org)).status_code == 403
    r = client.post("/api/v1/partner/cases/CWN-2026-000003/feedback", headers=bearer(isp),
                    json={"status": "forwarded"})
    assert r.status_code == 404
    r = client.post("/api/v1/partner/cases/CWN-2026-000001/feedback", headers=bearer(isp),
                    json={"status": "nonsense"})
    assert r.status_code == 422
    r = client.post("/api/v1/partner/cases/CWN-2026-000001/feedback", headers=bearer(isp),
                    json={"status": "customer_notified", "note": "called them"})
    assert r.status_code == 201
    again = client.get("/api/v1/partner/cases", headers=bearer(isp)).json()["items"][0]
    assert again["feedback"] == "customer_notified"
