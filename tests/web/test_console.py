"""The operator console's queries, over a real ingest of sample reports (SQLite and
PostgreSQL): what the console shows must agree with what the pipeline stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from cwn.config import Settings
from cwn.db.models import Report
from cwn.web import console, paging
from cwn.wiring import Services, build
from web.console_seed import SCAN_DNS_NAME, Seeded, seed


@pytest.fixture
def svc(settings: Settings) -> Iterator[Services]:
    s = build(settings)
    yield s
    s.close()


@pytest.fixture
def seeded(svc: Services, shared_data: Path, tmp_path: Path) -> Seeded:
    return seed(svc, shared_data, tmp_path)


# One installation per test (ingest and registry are the slow part); each test checks a
# group of queries against it, each check reading as its own specification below.


def test_what_came_in_reports_feeds_and_quarantine_agree_with_the_pipeline(
        svc: Services, seeded: Seeded) -> None:
    _dashboard_figures_are_the_sums_of_the_stored_reports(svc, seeded)
    _reports_are_listed_newest_first_and_page(svc, seeded)
    _feeds_sum_their_reports(svc, seeded)
    _quarantine_keeps_the_row_and_filters_by_report_and_reason(svc, seeded)


def test_unattributed_events_are_summarised_from_the_parquet_archive(
        svc: Services, shared_data: Path, tmp_path: Path) -> None:
    empty = console.unattributed(svc.events)
    assert (empty.files, empty.events, empty.by_report_type) == (0, 0, [])
    seeded = seed(svc, shared_data, tmp_path)
    _unattributed_events_are_summarised_from_the_archive(svc, seeded)
    _unattributed_prunes_old_date_partitions(svc, seeded)


def test_partners_notifications_audit_and_accounts(svc: Services, seeded: Seeded) -> None:
    _partners_with_their_agreements_and_contacts(svc, seeded)
    _notifications_show_their_delivery_and_bounces(svc, seeded)
    _audit_log_newest_first_with_filters(svc, seeded)
    _pending_signups_come_with_the_organisations_they_may_belong_to(svc, seeded)
    _users_of_every_role_filter_by_role_state_and_text(svc, seeded)


def _dashboard_figures_are_the_sums_of_the_stored_reports(svc: Services,
                                                             seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        o = console.overview(conn)
        stored = conn.execute(select(Report.events, Report.attributed,
                                     Report.quarantined)).all()
    assert o["reports"] == 3 == o["reports_24h"]
    assert o["events"] == sum(r.events for r in stored) > 100
    assert 0 < o["attributed"] == sum(r.attributed for r in stored) < o["events"]
    assert o["unattributed"] == o["events"] - o["attributed"]
    assert o["quarantined"] == 1
    assert (o["partners"], o["agreements"], o["organizations"]) == (1, 1, 1)
    assert (o["notifications"], o["notifications_failed"], o["bounces_7d"]) == (1, 1, 0)
    assert (o["users"], o["signups_pending"], o["claims_open"]) == (2, 1, 0)


def _reports_are_listed_newest_first_and_page(svc: Services, seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        everything = console.reports(conn)
        first = console.reports(conn, per_page=2)
        second = console.reports(conn, page=2, per_page=2)
        intelmq = console.reports(conn, feed="intelmq-test")
        shadowserver = console.reports(conn, feed="DNS Open Resolvers")
        scan_dns = console.reports(conn, report_type="scan_dns")
    assert [r.sha256 for r in everything.items] == [seeded.stix, seeded.intelmq,
                                                    seeded.scan_dns]
    assert (first.total, first.pages, first.has_next, second.has_prev) == (3, 2, True, True)
    assert [r.sha256 for r in first.items + second.items] == \
        [r.sha256 for r in everything.items]
    assert [r.sha256 for r in intelmq.items] == [seeded.intelmq]
    assert intelmq.items[0].events == 25
    assert [r.file_name for r in shadowserver.items] == [SCAN_DNS_NAME]
    assert [r.sha256 for r in scan_dns.items] == [seeded.scan_dns]


def test_paging_parameters_are_clamped() -> None:
    assert paging.clamp_page(0, 0) == (1, 1)
    assert paging.clamp_page(-3, 10_000) == (1, 500)
    assert paging.clamp_page(None, None) == (1, 50)


def _feeds_sum_their_reports(svc: Services, seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        by_feed = {r.feed_name: r for r in console.feeds(conn)}
        scan = console.report(conn, seeded.scan_dns)
    assert set(by_feed) == {"DNS Open Resolvers", "intelmq-test", "stix-test"}
    assert scan is not None
    dns = by_feed["DNS Open Resolvers"]
    assert (dns.reports, dns.events, dns.attributed) == (1, scan.events, scan.attributed)
    assert by_feed["stix-test"].quarantined == 1


def _quarantine_keeps_the_row_and_filters_by_report_and_reason(svc: Services,
                                                                   seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        all_rows = console.quarantine(conn)
        of_stix = console.quarantine(conn, report=seeded.stix)
        of_csv = console.quarantine(conn, report=seeded.scan_dns)
        by_reason = console.quarantine(conn, reason="INVALID SOURCE.IP")
        no_match = console.quarantine(conn, reason="100%_")
        reasons = console.quarantine_reasons(conn)
    assert all_rows.total == 1 == of_stix.total == by_reason.total
    row = of_stix.items[0]
    assert row.file_name == "indicator-for-c2-ip-address.json"
    assert row.feed_name == "stix-test"
    assert row.reason == "invalid source.ip: '10.0.0.256'"
    assert row.content and "0badadd7" in row.content  # the STIX object, as received
    assert (of_csv.total, no_match.total) == (0, 0)
    assert reasons == [(row.reason, 1)]


def _unattributed_events_are_summarised_from_the_archive(svc: Services,
                                                             seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        stored = {r.sha256: r for r in conn.execute(select(*Report.__table__.c))}
    expected = sum(r.events - r.attributed for r in stored.values())

    u = console.unattributed(svc.events)

    assert u.files == 3
    assert u.total == sum(r.events for r in stored.values())
    assert u.events == expected == sum(n for _, n in u.by_report_type)
    by_type = dict(u.by_report_type)
    scan = stored[seeded.scan_dns]
    assert by_type["scan_dns"] == scan.events - scan.attributed > 0
    # the org owns 198.51.100.0/25: the rest of that /24, and the IntelMQ sample's
    # 192.88.99.28, are where the gaps are
    nets = dict(u.top_networks)
    assert nets["192.88.99.0/24"] == 25
    assert nets["198.51.100.0/24"] == by_type["scan_dns"]
    assert u.top_asns and u.top_asns[0][2] >= u.top_asns[-1][2]
    assert all(asn is not None for asn, _, _ in u.top_asns)


def _unattributed_prunes_old_date_partitions(svc: Services, seeded: Seeded) -> None:
    assert console.unattributed(svc.events, since=date(2100, 1, 1)).files == 0
    assert console.unattributed(svc.events, since=date(2000, 1, 1)).files == 3


def _partners_with_their_agreements_and_contacts(svc: Services, seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        [p] = console.partners(conn)
        detail = console.partner(conn, "isp-example")
        unknown = console.partner(conn, "nobody")
    assert (p.id, p.agreements, p.contacts) == ("isp-example", 1, 1)
    assert detail is not None and unknown is None
    assert [a.id for a in detail.agreements] == ["AGR-ISP-1"]
    assert detail.agreements[0].scope["asns"] == [64500]
    assert detail.agreements[0].mode == "copy"
    assert [c.email for c in detail.contacts] == ["abuse@isp.example.nl"]


def _notifications_show_their_delivery_and_bounces(svc: Services, seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        page = console.notifications(conn)
        sent = console.notifications(conn, state="sent")
        states = console.notification_states(conn)
        bounced = console.bounces(conn)
        soft = console.bounces(conn, kind="soft")
    [n] = page.items
    assert (n.id, n.state, n.delivery_state, n.attempts) == (seeded.notification_id,
                                                             "bounced", "bounced", 1)
    assert n.last_error == "550 5.1.1 no such user"
    assert sent.total == 0
    assert states == [("bounced", 1)]
    assert [(b.recipient, b.kind, b.action_taken) for b in bounced.items] == [
        ("ict@bakkerij.example.nl", "hard", "contact_disabled")]
    assert soft.total == 0


def _audit_log_newest_first_with_filters(svc: Services, seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        everything = console.audit(conn, per_page=500)
        orgs = console.audit(conn, entity="organization")
        by_importer = console.audit(conn, actor="TEST:IMPORT")
        one_user = console.audit(conn, entity="user", entity_id="nieuw.example")
        entities = console.audit_entities(conn)
    ats = [e.at for e in everything.items]
    assert ats == sorted(ats, reverse=True)
    assert everything.items[0].actor == "test:operator"  # the invitation came last
    assert [e.entity_id for e in orgs.items] == ["bakkerij"]
    assert by_importer.total > 0 and all(e.actor == "test:import" for e in by_importer.items)
    assert [(e.action, e.after["status"]) for e in one_user.items] == [("create", "pending")]
    assert {"organization", "user"} <= set(entities)
    assert console.changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "b": (2, 3), "c": (None, 4)}


def _pending_signups_come_with_the_organisations_they_may_belong_to(
        svc: Services, seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        [s] = console.pending_signups(conn)
    assert (s.id, s.email, s.name, s.language) == (seeded.signup_id, "info@nieuw.example.nl",
                                                   "Nina Nieuw", "en")
    assert (s.organisation, s.kvk, s.note) == ("Bakkerij Jansen", "12345678",
                                               "we run the bakery's web shop")
    assert s.candidates == [("bakkerij", "Bakkerij Jansen")]


def _users_of_every_role_filter_by_role_state_and_text(svc: Services,
                                                           seeded: Seeded) -> None:
    with svc.engine.connect() as conn:
        everyone = console.users(conn)
        members = console.users(conn, role="org_user")
        pending = console.users(conn, status="pending")
        by_org = console.users(conn, q="BAKKERIJ")
        by_name = console.users(conn, q="nina")
        nobody = console.users(conn, q="%")
    assert [u.email for u in everyone.items] == ["info@nieuw.example.nl",
                                                 "medewerker@bakkerij.example.nl"]
    assert [(u.id, u.org_name) for u in members.items] == [(seeded.member_id,
                                                            "Bakkerij Jansen")]
    assert [u.id for u in pending.items] == [seeded.signup_id]
    assert [u.id for u in by_org.items] == [seeded.member_id]
    assert [u.id for u in by_name.items] == [seeded.signup_id]
    assert nobody.total == 0
