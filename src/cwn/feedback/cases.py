"""What a recipient tells us about a case (portal, API or the key link in its mail), and
what all that feedback says about each source.

Feedback is stored twice on purpose: as a `CaseFeedback` row, which the desk reads and
answers, and as a `CaseDecision(action="feedback", reason=kind)` in the case's history,
which is where everything that happened to a case is counted, so the source statistics
(`cwn feeds stats`, the operator console) see it beside the routing decisions.

- `fixed` and `false_positive` resolve the case. A later report that still lists the
  finding reopens it through the ordinary notify logic (`cwn.route.cases.fold_events`), so a
  premature "fixed" costs nothing but a new notification.
- `not_ours` from a registered organisation is flagged for the operator (its registration
  may be wrong, which only the desk can judge); from an unsolicited recipient (the address
  came from public data) it is the existing re-routing: the address loses confidence and
  the case goes to the owner's next contact candidate (`Notifier.not_ours`).
- `question` is free text kept for the desk.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    case,
    cast,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.attribute.public import is_public_owner
from cwn.db.models import AuditEntry
from cwn.db.models_notify import Case, CaseDecision, Notification, NotificationCase
from cwn.db.models_web import CaseFeedback

if TYPE_CHECKING:
    from cwn.notify import Notifier

KINDS: tuple[str, ...] = ("fixed", "false_positive", "not_ours", "question")
"""What a recipient can say about a case, in the order the form offers them."""

VIAS: tuple[str, ...] = ("portal", "api", "link")
"""Where feedback came in: a signed-in member, an API token, or the key link of a mail."""

MAX_TEXT = 4000
"""Characters of free text kept per feedback (a question, or a remark with the others)."""

_RESOLVING = {"fixed": "recipient_fixed", "false_positive": "false_positive"}
"""Kinds that resolve an open case, and the reason its history records."""


@dataclass(slots=True)
class FeedbackResult:
    """What recording one piece of feedback did, for the page or API answer."""

    feedback_id: int
    case_id: str
    kind: str
    state: str  # the case's state afterwards
    resolved: bool = False  # this feedback resolved an open case
    flagged: bool = False  # waits for the operator (not ours from a registered organisation)
    rerouted_to: list[str] = field(default_factory=list)  # new notifications (unsolicited)


def _connection(conn_or_session: Connection | Session) -> Connection:
    if isinstance(conn_or_session, Session):
        return conn_or_session.connection()
    return conn_or_session


def record_feedback(
    conn_or_session: Connection | Session,
    case_id: str,
    org_id: str,
    kind: str,
    text: str | None,
    actor: str,
    via: str,
    *,
    notifier: Notifier | None = None,
    now: datetime | None = None,
) -> FeedbackResult:
    """Record `kind` feedback on `org_id`'s case `case_id`, in the caller's transaction.

    Raises `AccessError`: 404 when the case is not `org_id`'s (whether it exists elsewhere
    is not revealed), 400 for an unknown kind or a question without text. `notifier` is
    needed only to re-route an unsolicited recipient's "not ours"; without it the feedback
    is flagged for the operator like a registered organisation's.
    """
    kind = (kind or "").strip().lower().replace("-", "_")
    if kind not in KINDS:
        raise AccessError("feedback_kind", f"unknown feedback kind {kind!r}; expected one of "
                          + ", ".join(KINDS))
    if via not in VIAS:
        raise ValueError(f"unknown feedback channel {via!r}")
    body = (text or "").strip()[:MAX_TEXT] or None
    if kind == "question" and body is None:
        raise AccessError("feedback_text", "A question needs some text.")
    conn = _connection(conn_or_session)
    at = now or datetime.now(UTC)
    cid = case_id.strip().upper()
    row = conn.execute(select(Case.id, Case.state).where(
        Case.id == cid, Case.org_id == org_id)).first()
    if row is None:
        raise AccessError("unknown_case", f"unknown case {case_id!r}", 404)
    state = str(row[1])
    res = conn.execute(insert(CaseFeedback).values(
        case_id=cid, org_id=org_id, kind=kind, text=body, actor=actor[:128], via=via, at=at)
        .returning(CaseFeedback.id))
    result = FeedbackResult(int(res.scalar_one()), cid, kind, state)
    decisions = [{"case_id": cid, "run_id": None, "at": at, "action": "feedback",
                  "reason": kind, "recipient": None, "notification_id": None,
                  "detail": f"{actor} via {via}" + (f": {body}" if body else "")}]
    if kind in _RESOLVING and state == "open":
        conn.execute(update(Case).where(Case.id == cid, Case.state == "open").values(
            state="resolved", resolved_at=at, updated_at=at, next_reminder_at=None))
        decisions.append({"case_id": cid, "run_id": None, "at": at, "action": "resolved",
                          "reason": _RESOLVING[kind], "recipient": None,
                          "notification_id": None, "detail": f"{actor} via {via}"})
        result.state, result.resolved = "resolved", True
    conn.execute(insert(CaseDecision), decisions)
    conn.execute(insert(AuditEntry).values(
        at=at, actor=actor[:128], action="create", entity="case_feedback", entity_id=cid,
        before={"state": state},
        after={"state": result.state, "kind": kind, "via": via, "text": body}))
    if kind == "not_ours":
        if is_public_owner(org_id) and notifier is not None:
            result.rerouted_to = _reroute(conn, notifier, cid)
        else:
            result.flagged = True
    elif kind == "question":
        result.flagged = True
    return result


def _reroute(conn: Connection, notifier: Notifier, case_id: str) -> list[str]:
    """`cwn cases feedback CASE not-ours` for the address the case was last told to."""
    last = conn.execute(
        select(Notification.id, Notification.recipient)
        .join(NotificationCase, NotificationCase.notification_id == Notification.id)
        .where(NotificationCase.case_id == case_id,
               Notification.state.in_(("queued", "sent")))
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(1)).first()
    if last is None:
        return []
    return notifier.not_ours(conn, str(last[0]), str(last[1]))


# -- what the desk and the operator read ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    id: int
    case_id: str
    org_id: str
    kind: str
    text: str | None
    actor: str
    via: str
    at: datetime
    answered_at: datetime | None
    answer: str | None


def _feedback_rows() -> Select[Any]:
    """The columns of a FeedbackRow, in its order."""
    return select(*(getattr(CaseFeedback, f.name) for f in fields(FeedbackRow)))


def open_feedback(conn_or_session: Connection | Session, *, limit: int = 200
                  ) -> list[FeedbackRow]:
    """Feedback waiting for the desk: "not ours" and questions nobody answered yet."""
    conn = _connection(conn_or_session)
    rows = conn.execute(_feedback_rows()
        .where(CaseFeedback.kind.in_(("not_ours", "question")),
               CaseFeedback.answered_at.is_(None))
        .order_by(CaseFeedback.at, CaseFeedback.id).limit(limit)).all()
    return [FeedbackRow(**r._asdict()) for r in rows]


def answer_feedback(conn_or_session: Connection | Session, feedback_id: int, answer: str,
                    *, now: datetime | None = None) -> bool:
    """The desk's answer to a question or a "not ours"; False when there is no such row."""
    conn = _connection(conn_or_session)
    res = conn.execute(update(CaseFeedback).where(CaseFeedback.id == feedback_id).values(
        answer=answer.strip()[:MAX_TEXT], answered_at=now or datetime.now(UTC)))
    return bool(res.rowcount)


def case_feedback(conn_or_session: Connection | Session, case_id: str, org_id: str
                  ) -> list[FeedbackRow]:
    """Everything `org_id` said about its case, oldest first (with the desk's answers)."""
    conn = _connection(conn_or_session)
    rows = conn.execute(_feedback_rows()
        .where(CaseFeedback.case_id == case_id, CaseFeedback.org_id == org_id)
        .order_by(CaseFeedback.at, CaseFeedback.id)).all()
    return [FeedbackRow(**r._asdict()) for r in rows]


# -- source statistics ---------------------------------------------------------------------

PARTNER_KINDS: tuple[str, ...] = ("fixed", "customer_notified", "forwarded",
                                  "not_our_customer")
"""What partners report back per case (`cwn partners feedback`)."""


@dataclass(slots=True)
class SourceStats:
    """What became of one report type's cases: the feedback a source gets from the desk.

    Feedback counts are cases (a case with two questions counts once)."""

    report_type: str
    cases: int = 0
    notified: int = 0
    resolved: int = 0
    partner: dict[str, int] = field(default_factory=dict)  # PARTNER_KINDS
    recipient: dict[str, int] = field(default_factory=dict)  # KINDS

    def __post_init__(self) -> None:
        for k in PARTNER_KINDS:
            self.partner.setdefault(k, 0)
        for k in KINDS:
            self.recipient.setdefault(k, 0)


def source_stats(conn_or_session: Connection | Session, since: datetime | None = None
                 ) -> list[SourceStats]:
    """Per report type (most cases first), for cases created since `since` (all without):
    cases, notified, resolved, partner feedback and recipient feedback. A "not ours" counts
    whether it came through the portal/API or the desk's `cwn cases feedback`."""
    conn = _connection(conn_or_session)
    rt = func.coalesce(Case.report_type, literal_column("'-'"))
    cond = [Case.created_at >= since] if since is not None else []
    rows = conn.execute(
        select(rt.label("rt"), func.count().label("n"),
               func.sum(case((Case.notify_count > 0, 1), else_=0)),
               func.sum(case((Case.state == "resolved", 1), else_=0)))
        .where(*cond).group_by(rt).order_by(func.count().desc(), rt)).all()
    out = {str(r[0]): SourceStats(str(r[0]), int(r[1]), int(r[2] or 0), int(r[3] or 0))
           for r in rows}
    label = case(
        (CaseDecision.action == "partner_feedback",
         literal_column("'partner:'") + cast(CaseDecision.reason, String)),
        (CaseDecision.reason == "not_ours", literal_column("'not_ours'")),
        else_=CaseDecision.reason)
    fb = conn.execute(
        select(rt, label, func.count(func.distinct(CaseDecision.case_id)))
        .select_from(CaseDecision).join(Case, Case.id == CaseDecision.case_id)
        .where(*cond, or_(CaseDecision.action.in_(("partner_feedback", "feedback")),
                          (CaseDecision.action == "undelivered")
                          & (CaseDecision.reason == "not_ours")))
        .group_by(rt, label)).all()
    for report_type, kind, n in fb:
        stats = out.get(str(report_type))
        if stats is None or kind is None:
            continue
        kind = str(kind)
        if kind.startswith("partner:"):
            stats.partner[kind.split(":", 1)[1]] = int(n)
        else:
            stats.recipient[kind] = int(n)
    return list(out.values())
