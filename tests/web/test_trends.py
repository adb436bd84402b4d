"""The trend charts: the numbers behind the bars come from the database, per day or per
week, and the chart is a well-formed SVG with a tooltip per bar."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from cwn.db.models_notify import Case
from cwn.web import charts, trends
from cwn.wiring import Services
from web_support import login, make_org, make_user

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


def _case(cid: str, first_seen: datetime, resolved: datetime | None = None) -> Case:
    return Case(id=cid, org_id="bakery", fingerprint=cid, report_type="scan_rdp",
                severity="high", tlp="AMBER", state="resolved" if resolved else "open",
                first_seen=first_seen, last_seen=first_seen, events_count=1,
                resolved_at=resolved)


def test_cases_are_counted_in_the_week_they_opened_and_resolved(
        web_app: tuple[TestClient, Services]) -> None:
    _, svc = web_app
    make_org(svc, "bakery")
    with svc.sessions() as s:
        s.add_all([_case("C1", NOW - timedelta(days=1)),
                   _case("C2", NOW - timedelta(days=8), resolved=NOW - timedelta(days=1)),
                   _case("C3", NOW - timedelta(days=8)),
                   _case("C4", NOW - timedelta(weeks=20))])  # before the window
        s.commit()
        labels, opened, resolved = trends.cases_per_week(s, "bakery", weeks=4, now=NOW)
    assert labels == ["11-02", "11-09", "11-16", "11-23"]
    assert opened == [0, 0, 2, 1] and resolved == [0, 0, 0, 1]


def test_the_chart_is_svg_with_a_tooltip_per_bar_and_a_legend() -> None:
    svg = str(charts.bars(["a", "b"], [charts.Series("opened", [3, 0], "chart-c"),
                                       charts.Series("resolved", [1, 2], "chart-b")],
                          title="per week"))
    root = ET.fromstring(svg[:svg.index("</svg>") + 6])
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 4
    tips = [r.find("{http://www.w3.org/2000/svg}title").text for r in rects]  # type: ignore[union-attr]
    assert tips == ["a: opened 3", "a: resolved 1", "b: opened 0", "b: resolved 2"]
    assert int(rects[0].get("height", "0")) > int(rects[1].get("height", "0")) > 0
    assert "legend chart-c" in svg


def test_the_inbox_and_the_console_show_their_trend(
        web_app: tuple[TestClient, Services], client_factory) -> None:  # type: ignore[no-untyped-def]
    client, svc = web_app
    make_org(svc, "bakery")
    _, seed = make_user(svc, "a@bakkerij.nl", "org_admin", org_id="bakery")
    login(client, "a@bakkerij.nl", seed=seed)
    assert 'aria-label="Cases opened and resolved per week"' in client.get("/inbox").text
    op = client_factory()
    _, op_seed = make_user(svc, "desk@cwn.nl", "operator")
    login(op, "desk@cwn.nl", seed=op_seed)
    assert 'aria-label="Events received per day, last 30 days"' in op.get("/operator").text
