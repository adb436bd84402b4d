"""The API's case list is rendered as JSON by the database itself (SQLite's json_object,
PostgreSQL's json_build_object). It must say exactly what the documented model says of the
same rows: every field, null for a missing time, no fraction on a whole second, text that
needs escaping, and every filter shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from cwn.config import Settings
from cwn.db.models import Organization
from cwn.db.models_notify import Case
from cwn.web import inbox
from cwn.web.api.cases import CaseSummary
from cwn.wiring import Services, build

T0 = datetime(2026, 11, 20, 8, 30, 0, tzinfo=UTC)  # a whole second: no fraction


def _case(i: int, **over: Any) -> dict[str, Any]:
    row = {"id": f"CWN-2026-{i:06d}", "org_id": "acme", "fingerprint": f"{i:032x}",
           "report_type": "scan_rdp", "identifier": "rdp", "taxonomy": "vulnerable",
           "severity": "high", "tlp": "AMBER", "state": "open",
           "first_seen": T0 - timedelta(days=3), "last_seen": T0 - timedelta(minutes=i),
           "last_report_date": "2026-11-20", "events_count": i, "notify_count": 0,
           "reopened_count": 0, "last_notified_at": None, "resolved_at": None,
           "created_at": T0, "updated_at": T0}
    return {**row, **over}


@pytest.fixture
def svc(settings: Settings) -> Services:
    s = build(settings)
    rows = [
        _case(1),
        _case(2, last_seen=T0 - timedelta(minutes=2, microseconds=1), state="resolved",
              resolved_at=T0 + timedelta(microseconds=500_000), notify_count=3,
              last_notified_at=datetime(2026, 11, 21, 23, 59, 59, 999_999, tzinfo=UTC)),
        _case(3, identifier='ssl-"poodle"\\ \u00e9\u00e9n', report_type="scan_ssl_poodle",
              severity="critical", events_count=2_000_000_000, taxonomy=None),
        _case(4, report_type=None, identifier=None, tlp="RED"),
    ]
    with s.engine.begin() as conn:
        conn.execute(insert(Organization).values(id="acme", name="Acme"))
        conn.execute(insert(Organization).values(id="other", name="Other"))
        conn.execute(insert(Case), rows)
        conn.execute(insert(Case), [_case(9, org_id="other", fingerprint="f" * 32)])
    yield s
    s.close()


def _documented(svc: Services, f: inbox.CaseFilter, page: int, per_page: int) -> list[Any]:
    with svc.sessions() as s:
        rows = inbox.list_cases(s, "acme", f, page=page, per_page=per_page).items
    return [CaseSummary.model_validate(r).model_dump(mode="json") for r in rows]


FILTERS = [
    inbox.CaseFilter(),
    inbox.CaseFilter(state="resolved"),
    inbox.CaseFilter(severity="critical", report_type="scan_ssl_poodle"),
    inbox.CaseFilter(q="poodle"),
    inbox.CaseFilter(q="000002"),
    inbox.CaseFilter(since=T0 - timedelta(minutes=2, microseconds=1), until=T0),
    inbox.CaseFilter(taxonomy="vulnerable"),
]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: repr(f)[11:60])
def test_the_database_writes_what_the_model_says(svc: Services, f: inbox.CaseFilter) -> None:
    with svc.sessions() as s:
        items, total = inbox.list_cases_json(s, "acme", f, per_page=50)
        expected_total = inbox.list_cases(s, "acme", f, per_page=50).total
    got = json.loads(items)
    assert total == expected_total == len(got)
    assert got == _documented(svc, f, 1, 50)


def test_times_nulls_escapes_and_paging(svc: Services) -> None:
    with svc.sessions() as s:
        items, total = inbox.list_cases_json(s, "acme", per_page=2, page=1)
        first = json.loads(items)
        items2, _ = inbox.list_cases_json(s, "acme", per_page=2, page=2)
        beyond, total3 = inbox.list_cases_json(s, "acme", per_page=2, page=9)
    assert total == total3 == 4 and beyond == b"[]"
    assert [c["id"] for c in first + json.loads(items2)] == [
        "CWN-2026-000001", "CWN-2026-000002", "CWN-2026-000003", "CWN-2026-000004"]
    one, two = first
    assert one["last_seen"] == "2026-11-20T08:29:00Z" and one["resolved_at"] is None
    assert two["resolved_at"] == "2026-11-20T08:30:00.500000Z"
    assert two["last_notified_at"] == "2026-11-21T23:59:59.999999Z"
    assert two["last_seen"] == "2026-11-20T08:27:59.999999Z"
    three = json.loads(items2)[0]
    assert three["identifier"] == 'ssl-"poodle"\\ \u00e9\u00e9n' and three["taxonomy"] is None
    assert three["events_count"] == 2_000_000_000
    assert all(set(c) == set(CaseSummary.model_fields) for c in first)
