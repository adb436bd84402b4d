"""Preferences of an organisation and its contacts: only values the router knows are
stored, NULL keeps meaning "inherit", the effective values shown are the ones routing uses,
and every change is audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.db.models import AuditEntry, Organization
from cwn.db.models_notify import Preference
from cwn.registry import contacts
from cwn.registry.preferences import (
    TAXONOMY_NAMES,
    contact_preferences,
    org_preferences,
    reset,
    set_preferences,
)
from cwn.route.recipients import load_routing, route_case

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def org(engine: Engine) -> tuple[Engine, int, int]:
    """org-a with a Dutch-speaking SOC (told first) and an English-speaking fallback."""
    with Session(engine) as s, s.begin():
        s.add(Organization(id="org-a", name="Alpha B.V.", language="nl"))
        s.add(Organization(id="org-b", name="Beta Ltd", language="en"))
        s.flush()
        soc = contacts.add(s, "org-a", email="soc@alpha.nl", priority=1, actor="t")
        it = contacts.add(s, "org-a", email="it@alpha.nl", priority=1, language="en",
                          actor="t")
    return engine, soc.id, it.id


def _verdicts(engine: Engine, **case: Any) -> dict[str, str | None]:
    args = {"taxonomy": "vulnerable", "report_type": "scan_smb", "severity": "medium",
            "now": NOW, **case}
    with engine.connect() as conn:
        routing = load_routing(conn, ["org-a"])["org-a"]
    return {v.recipient.email: v.reason for v in route_case(routing, **args)
            if v.recipient is not None}


def test_defaults_until_something_is_set(org: tuple[Engine, int, int]) -> None:
    engine, _soc, _it = org
    with Session(engine) as s:
        state = org_preferences(s, "org-a")
        per_contact = contact_preferences(s, "org-a")
    assert state.inherits and state.effective.min_severity == "low"
    assert state.effective.taxonomies is None and state.effective.mode == "immediate"
    assert [(cp.contact.email, cp.prefs.language) for cp in per_contact] == [
        ("soc@alpha.nl", "nl"), ("it@alpha.nl", "en")]


def test_org_settings_are_inherited_and_a_contact_can_override_them(
        org: tuple[Engine, int, int]) -> None:
    engine, soc, it = org
    with Session(engine) as s, s.begin():
        set_preferences(s, "org-a", None, actor="user:admin@alpha.nl",
                        taxonomies=["Vulnerable", "malicious-code"], min_severity="high",
                        mode="digest")
        state = set_preferences(s, "org-a", it, actor="user:admin@alpha.nl",
                                min_severity="medium", language="nl")
    assert state.stored["min_severity"] == "medium" and state.stored["mode"] is None
    assert state.effective.min_severity == "medium" and state.effective.mode == "digest"
    assert state.effective.taxonomies == frozenset({"vulnerable", "malicious-code"})
    assert state.language == "nl"
    with Session(engine) as s:
        shown = {cp.contact.id: cp.prefs.effective for cp in contact_preferences(s, "org-a")}
    # The router agrees with what the portal shows.
    assert _verdicts(engine) == {"soc@alpha.nl": "below_threshold", "it@alpha.nl": None}
    assert _verdicts(engine, taxonomy="fraud", severity="critical") == {
        "soc@alpha.nl": "not_subscribed", "it@alpha.nl": "not_subscribed"}
    assert shown[soc].min_severity == "high" and shown[it].min_severity == "medium"


def test_opt_out_and_pause(org: tuple[Engine, int, int]) -> None:
    engine, soc, _it = org
    with Session(engine) as s, s.begin():
        set_preferences(s, "org-a", soc, opted_out=True, actor="t")
        set_preferences(s, "org-a", None, paused_until=date(2099, 1, 1), actor="t")
    assert _verdicts(engine) == {"soc@alpha.nl": "opted_out", "it@alpha.nl": "paused"}
    with Session(engine) as s:
        paused = org_preferences(s, "org-a").effective.paused_until
    assert paused == datetime(2099, 1, 1, tzinfo=UTC)


def test_fields_not_given_are_kept_and_none_means_inherit(
        org: tuple[Engine, int, int]) -> None:
    engine, soc, _it = org
    with Session(engine) as s, s.begin():
        set_preferences(s, "org-a", soc, mode="digest", report_types=["scan_smb"], actor="t")
        set_preferences(s, "org-a", soc, min_severity="critical", actor="t")
        state = set_preferences(s, "org-a", soc, report_types=None, actor="t")
    assert (state.stored["mode"], state.stored["min_severity"]) == ("digest", "critical")
    assert state.stored["report_types"] is None
    with Session(engine) as s, s.begin():
        state = reset(s, "org-a", soc, actor="t")
    assert state.inherits
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Preference)) == 0  # no empty rows
        actions = [e.action for e in s.scalars(select(AuditEntry).where(
            AuditEntry.entity == "preference").order_by(AuditEntry.id))]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity == "preference")
                          .order_by(AuditEntry.id)).first()
    assert actions == ["create", "update", "update", "delete"]
    assert entry is not None and entry.entity_id == "org-a:soc@alpha.nl"
    assert entry.after is not None and entry.after["report_types"] == ["scan_smb"]


def test_setting_the_same_values_again_is_not_a_change(org: tuple[Engine, int, int]) -> None:
    engine, _soc, _it = org
    for _ in range(2):
        with Session(engine) as s, s.begin():
            set_preferences(s, "org-a", None, taxonomies=list(TAXONOMY_NAMES), actor="t")
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.entity == "preference"))
    assert n == 1


BAD_PREFERENCES: list[tuple[dict[str, Any], str]] = [
    ({"taxonomies": ["vulnerable", "gossip"]}, "bad_taxonomies"),
    ({"taxonomies": "vulnerable"}, "bad_taxonomies"),
    ({"taxonomies": []}, "no_taxonomies"),
    ({"report_types": ["scan smb; drop"]}, "bad_report_types"),
    ({"min_severity": "urgent"}, "bad_min_severity"),
    ({"mode": "weekly"}, "bad_mode"),
    ({"language": "fr"}, "bad_language"),
    ({"opted_out": "yes"}, "bad_opted_out"),
    ({"paused_until": "next tuesday"}, "bad_paused_until"),
    ({"paused_until": "2001-01-01"}, "bad_paused_until"),
]


def test_unknown_values_are_refused_with_422(org: tuple[Engine, int, int]) -> None:
    engine, soc, _it = org
    for fields, key in BAD_PREFERENCES:
        with Session(engine) as s, s.begin(), pytest.raises(AccessError) as err:
            set_preferences(s, "org-a", soc, actor="t", **fields)
        assert (err.value.status, err.value.key) == (422, key), fields
        assert err.value.message
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Preference)) == 0


def test_another_organisations_contact_cannot_be_set(org: tuple[Engine, int, int]) -> None:
    engine, soc, _it = org
    with Session(engine) as s, s.begin(), pytest.raises(AccessError) as err:
        set_preferences(s, "org-b", soc, mode="digest", actor="t")
    assert err.value.status == 404
    with Session(engine) as s, pytest.raises(AccessError) as err:
        org_preferences(s, "org-x")
    assert err.value.status == 404


def test_a_pause_in_the_past_is_refused_but_one_ending_tomorrow_is_kept(
        org: tuple[Engine, int, int]) -> None:
    engine, _soc, _it = org
    soon = datetime.now(UTC) + timedelta(days=1)
    with Session(engine) as s, s.begin():
        state = set_preferences(s, "org-a", None, paused_until=soon.isoformat(), actor="t")
    assert state.stored["paused_until"] == soon
