"""Repeat policy and preference routing, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cwn.route.policy import ReminderPolicy, _Rule
from cwn.route.recipients import OrgRouting, Prefs, Recipient, judge, route_case

NOW = datetime(2026, 1, 10, tzinfo=UTC)


def test_reminder_defaults_follow_severity_and_the_most_specific_rule_wins() -> None:
    p = ReminderPolicy()
    assert [p.days("o", "scan_smb", s) for s in ("critical", "high", "medium", "low", "info")] \
        == [7, 7, 30, 90, 90]
    p = ReminderPolicy([_Rule(None, "scan_smb", None, 14), _Rule("acme", None, None, 3),
                        _Rule("acme", "scan_smb", "high", 1), _Rule(None, None, "low", 60)])
    assert p.days("other", "scan_smb", "medium") == 14
    assert p.days("acme", "scan_rdp", "medium") == 3
    assert p.days("acme", "scan_smb", "high") == 1
    assert p.days("other", "scan_rdp", "low") == 60
    assert p.interval("other", None, "critical") == timedelta(days=7)


def test_preferences_judge_with_reasons() -> None:
    kw = {"taxonomy": "vulnerable", "report_type": "scan_smb", "now": NOW}
    assert judge(Prefs(), severity="low", **kw) is None  # type: ignore[arg-type]
    assert judge(Prefs(), severity="info", **kw) == "below_threshold"  # type: ignore[arg-type]
    assert judge(Prefs(min_severity="high"), severity="medium",
                 **kw) == "below_threshold"  # type: ignore[arg-type]
    assert judge(Prefs(opted_out=True), severity="high", **kw) == "opted_out"  # type: ignore[arg-type]
    assert judge(Prefs(paused_until=NOW + timedelta(hours=1)), severity="high",
                 **kw) == "paused"  # type: ignore[arg-type]
    assert judge(Prefs(paused_until=NOW - timedelta(hours=1)), severity="high",
                 **kw) is None  # type: ignore[arg-type]
    assert judge(Prefs(taxonomies=frozenset({"malicious-code"})), severity="high",
                 **kw) == "not_subscribed"  # type: ignore[arg-type]
    assert judge(Prefs(report_types=frozenset({"scan_smb"})), severity="high",
                 **kw) is None  # type: ignore[arg-type]


def test_the_primary_tier_receives_and_a_bounce_reaches_the_next() -> None:
    r = OrgRouting("acme", "Acme", "nl", Prefs(), [
        Recipient(1, "a@acme.nl", 10, "nl", Prefs()),
        Recipient(2, "b@acme.nl", 10, "en", Prefs()),
        Recipient(3, "c@acme.nl", 20, "nl", Prefs()),
    ])
    got = route_case(r, taxonomy="vulnerable", report_type="x", severity="high", now=NOW)
    assert [v.recipient.email for v in got if v.recipient] == ["a@acme.nl", "b@acme.nl"]
    got = route_case(r, taxonomy="vulnerable", report_type="x", severity="high", now=NOW,
                     exclude=frozenset({"a@acme.nl", "b@acme.nl"}))
    assert [v.recipient.email for v in got if v.recipient] == ["c@acme.nl"]
    assert [v.reason for v in route_case(None, taxonomy=None, report_type=None,
                                         severity="high", now=NOW)] == ["no_contact"]
