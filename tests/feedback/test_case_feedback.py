"""Feedback from recipients on their cases: what each kind does to the case, who sees it,
and how it reaches the source statistics. Cases come from the real pipeline (registry,
public data, Shadowserver reports, notify) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cwn.access.errors import AccessError
from cwn.cli.main import app
from cwn.config import Settings
from cwn.db.models_contacts import AddressFlag
from cwn.db.models_notify import Case, CaseDecision, Notification
from cwn.db.models_web import CaseFeedback
from cwn.feedback.casekey import KEY_LENGTH, case_key, check_case_key
from cwn.feedback.cases import (
    answer_feedback,
    case_feedback,
    open_feedback,
    record_feedback,
    source_stats,
)
from cwn.notify import Notifier
from cwn.wiring import Services, build
from inbox_support import (
    ACME_IPS,
    ISP_ABUSE,
    World,
    build_world,
    case_for_ip,
    ingest,
    mails,
    notify,
)


@pytest.fixture
def svc(settings: Settings) -> Iterator[Services]:
    s = build(settings)
    yield s
    s.close()


@pytest.fixture
def world(svc: Services, tmp_path: Path) -> World:
    return build_world(svc, tmp_path)


def state(svc: Services, case_id: str) -> tuple[str, object]:
    with svc.engine.connect() as conn:
        row = conn.execute(select(Case.state, Case.resolved_at).where(Case.id == case_id)).one()
    return str(row[0]), row[1]


def history(svc: Services, case_id: str) -> list[tuple[str, str | None]]:
    with svc.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(
            select(CaseDecision.action, CaseDecision.reason)
            .where(CaseDecision.case_id == case_id).order_by(CaseDecision.id))]


def test_fixed_resolves_the_case_and_a_later_report_that_still_shows_it_reopens_it(
        svc: Services, world: World, tmp_path: Path) -> None:
    case_id = case_for_ip(svc, "acme", ACME_IPS[0])
    assert len(mails(svc, "security@acme.nl")) == 1

    with svc.engine.begin() as conn:
        res = record_feedback(conn, case_id, "acme", "fixed", "patched it",
                              "user:it@acme.nl", "portal")

    assert res.resolved and res.state == "resolved" and not res.flagged
    st, resolved_at = state(svc, case_id)
    assert st == "resolved" and resolved_at is not None
    assert history(svc, case_id)[-2:] == [("feedback", "fixed"), ("resolved", "recipient_fixed")]
    with svc.engine.connect() as conn:
        [fb] = case_feedback(conn, case_id, "acme")
    assert (fb.kind, fb.text, fb.actor, fb.via) == ("fixed", "patched it", "user:it@acme.nl",
                                                    "portal")
    from cwn.db.models import AuditEntry

    with svc.engine.connect() as conn:
        audit = conn.execute(select(AuditEntry.actor, AuditEntry.before, AuditEntry.after)
                             .where(AuditEntry.entity == "case_feedback")).one()
    assert audit[0] == "user:it@acme.nl" and audit[1] == {"state": "open"}
    assert audit[2]["state"] == "resolved" and audit[2]["kind"] == "fixed"

    ingest(svc, tmp_path / "later", [ACME_IPS[0]], date="2026-11-21")
    notify(svc)

    assert state(svc, case_id)[0] == "open"
    assert ("reopened", "seen_again") in history(svc, case_id)
    again = mails(svc, "security@acme.nl")
    assert len(again) == 2 and case_id in str(again[1]["X-CWN-Case-IDs"])


def test_false_positive_resolves_with_that_reason_and_twice_changes_nothing_more(
        svc: Services, world: World) -> None:
    case_id = world.case("globex")
    with svc.engine.begin() as conn:
        first = record_feedback(conn, case_id, "globex", "false-positive", None,
                                "token:abc", "api")
        second = record_feedback(conn, case_id, "globex", "false_positive", None,
                                 "token:abc", "api")
    assert first.resolved and not second.resolved and second.state == "resolved"
    assert history(svc, case_id)[-3:] == [("feedback", "false_positive"),
                                          ("resolved", "false_positive"),
                                          ("feedback", "false_positive")]


def test_not_ours_from_a_registered_organisation_is_flagged_for_the_operator(
        svc: Services, world: World) -> None:
    case_id = world.case("acme")
    with svc.sessions.begin() as session:  # an ORM session works as well as a connection
        res = record_feedback(session, case_id, "acme", "not_ours", "this range was sold",
                              "user:it@acme.nl", "portal",
                              notifier=Notifier.from_services(svc))
    assert res.flagged and res.rerouted_to == [] and res.state == "open"
    with svc.engine.connect() as conn:
        waiting = open_feedback(conn)
        assert [(f.case_id, f.kind, f.org_id) for f in waiting] == [(case_id, "not_ours", "acme")]
        states = conn.execute(select(Notification.state)).scalars().all()
    assert "rejected" not in states  # nobody was re-routed
    with svc.engine.begin() as conn:
        assert answer_feedback(conn, waiting[0].id, "We will check the registration.")
        assert open_feedback(conn) == []
        assert case_feedback(conn, case_id, "acme")[0].answer == \
            "We will check the registration."


def test_not_ours_from_an_unsolicited_recipient_is_re_routed_like_the_desk_command(
        svc: Services, world: World) -> None:
    owner = world.public_owner()
    case_id = world.case(owner)
    assert len(mails(svc, ISP_ABUSE)) == 1

    with svc.engine.begin() as conn:
        res = record_feedback(conn, case_id, owner, "not_ours", None, f"key:{case_id}", "link",
                              notifier=Notifier.from_services(svc))

    assert not res.flagged
    with svc.engine.connect() as conn:
        told = conn.execute(select(Notification.state).where(
            Notification.recipient == ISP_ABUSE)).scalars().all()
        flag = conn.execute(select(AddressFlag.not_ours).where(
            AddressFlag.email == ISP_ABUSE)).scalar_one()
    assert told == ["rejected"] and flag == 1
    assert ("undelivered", "not_ours") in history(svc, case_id)


def test_questions_need_text_unknown_kinds_are_refused_and_another_orgs_case_is_unknown(
        svc: Services, world: World) -> None:
    acme_case, globex_case = world.case("acme"), world.case("globex")
    with svc.engine.begin() as conn:
        with pytest.raises(AccessError) as exc:
            record_feedback(conn, acme_case, "acme", "question", "  ", "user:x", "portal")
        assert exc.value.status == 400
        with pytest.raises(AccessError) as exc:
            record_feedback(conn, acme_case, "acme", "delete", None, "user:x", "portal")
        assert exc.value.status == 400 and "fixed" in exc.value.message
        with pytest.raises(AccessError) as exc:  # globex's case, asked as acme
            record_feedback(conn, globex_case, "acme", "fixed", None, "user:x", "portal")
        assert exc.value.status == 404
        q = record_feedback(conn, acme_case.lower(), "acme", "question",
                            "What is SMB?" + "x" * 5000, "user:x", "portal")
    assert q.flagged and q.case_id == acme_case and state(svc, globex_case)[0] == "open"
    with svc.engine.connect() as conn:
        texts = conn.execute(select(CaseFeedback.text)).scalars().all()
    assert len(texts) == 1 and texts[0] is not None and len(texts[0]) == 4000


def test_source_statistics_count_each_kind_per_report_type_in_the_cli_too(
        svc: Services, world: World, settings: Settings) -> None:
    a1, a2 = world.by_org["acme"]
    with svc.engine.begin() as conn:
        record_feedback(conn, a1, "acme", "fixed", None, "user:x", "portal")
        record_feedback(conn, a2, "acme", "question", "why?", "user:x", "portal")
        record_feedback(conn, a2, "acme", "question", "and?", "user:x", "portal")
        record_feedback(conn, world.case("globex"), "globex", "not_ours", None, "t", "api")
        stats = {s.report_type: s for s in source_stats(conn)}
    rdp = stats["scan_rdp"]
    assert (rdp.cases, rdp.notified, rdp.resolved) == (4, 4, 1)
    assert rdp.recipient == {"fixed": 1, "false_positive": 0, "not_ours": 1, "question": 1}
    assert set(rdp.partner.values()) == {0}

    runner = CliRunner(env={"CWN_HOME": str(settings.home), "CWN_DATABASE_URL": settings.db_url,
                            "COLUMNS": "250"})
    res = runner.invoke(app, ["feeds", "stats"])
    assert res.exit_code == 0, res.output
    header = next(line for line in res.output.splitlines() if "report type" in line)
    row = next(line for line in res.output.splitlines() if "scan_rdp" in line)
    cols = [c.strip() for c in header.strip("┃ ").split("┃")]
    vals = dict(zip(cols, [c.strip() for c in row.strip("│ ").split("│")], strict=True))
    assert (vals["fixed"], vals["not ours"], vals["question"], vals["false positive"]) == \
        ("1", "1", "1", "0")


def test_a_case_key_opens_exactly_its_own_case() -> None:
    secret, other = b"k" * 32, b"j" * 32
    key = case_key(secret, "CWN-2026-000001")
    assert len(key) == KEY_LENGTH >= 22 and key.replace("-", "").replace("_", "").isalnum()
    assert check_case_key(secret, "cwn-2026-000001 ", key)
    assert not check_case_key(secret, "CWN-2026-000002", key)
    assert not check_case_key(other, "CWN-2026-000001", key)
    assert not check_case_key(secret, "CWN-2026-000001", key[:-1])
    assert not check_case_key(secret, "CWN-2026-000001", None)
    assert not check_case_key(secret, "CWN-2026-000001", "é" * KEY_LENGTH)


def test_the_mail_links_to_the_case_page_with_the_case_key(svc: Services, world: World
                                                           ) -> None:
    from cwn.access.secrets import load_secret_key

    [msg] = mails(svc, "soc@globex.example")
    case_id = world.case("globex")
    secret = load_secret_key(svc.settings.secret_key, svc.settings.home)
    body = msg.get_body(("plain",))
    assert body is not None
    link = f"http://localhost:8080/case/{case_id}?key={case_key(secret, case_id)}"
    assert link in body.get_content()
