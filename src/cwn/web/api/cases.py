"""`/api/v1/cases`, `/notifications`, `/events`: an organisation's inbox for machines.

Every endpoint is scoped to the token's organisation; another organisation's case or
notification is "not found" (a 404 never tells whether it exists elsewhere). List
responses are built with one pydantic validation and written straight to JSON (this is
the API's busiest path: a ticketing system polls it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cwn.access.errors import AccessError
from cwn.events.fields import SEVERITIES
from cwn.feedback.cases import KINDS, MAX_TEXT, case_feedback, record_feedback
from cwn.render.advice.library import default_library
from cwn.web import inbox
from cwn.web.deps import DB, Reader, Writer, require_org, services

router = APIRouter(tags=["cases"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such case for this organisation"}}
_AUTH: dict[int | str, dict[str, Any]] = {401: {"description": "No or bad token"},
         403: {"description": "Missing scope, or not an organisation token"}}

Severity = Literal["info", "low", "medium", "high", "critical"]
assert tuple(Severity.__args__) == SEVERITIES  # type: ignore[attr-defined]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=inbox.MAX_PER_PAGE, description="Items per page.")]


def _page_json(items: bytes, page: int, per_page: int, total: int) -> Response:
    """A list page around items the database already wrote as JSON (`list_cases_json`;
    tests hold them to the response model): building and validating 50 rows in Python
    again would cost more than the whole query."""
    tail = orjson.dumps({"page": page, "per_page": per_page, "total": total})
    return Response(b'{"items":' + items + b"," + tail[1:], media_type="application/json")


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(by_alias=True), status_code=status_code,
                    media_type="application/json")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bad(exc: ValueError) -> HTTPException:
    return HTTPException(400, str(exc))


# -- models --------------------------------------------------------------------------------


class CaseSummary(BaseModel):
    id: str = Field(description="Case id as quoted in mails: CWN-YYYY-NNNNNN.")
    report_type: str | None = Field(None, description="Source report type, e.g. scan_rdp.")
    identifier: str | None = Field(None, description="classification.identifier")
    taxonomy: str | None = Field(None, description="classification.taxonomy")
    severity: str
    tlp: str = Field(description="TLP label of the case's data (strictest of its events).")
    state: Literal["open", "resolved"]
    first_seen: datetime
    last_seen: datetime
    events_count: int
    notify_count: int = Field(description="How often the organisation was told.")
    last_notified_at: datetime | None = None
    resolved_at: datetime | None = None


class CaseList(BaseModel):
    items: list[CaseSummary]
    page: int
    per_page: int
    total: int


class HistoryItem(BaseModel):
    at: datetime
    action: str = Field(description="opened, reopened, resolved, notified, digest, "
                        "rerouted, feedback, partner_feedback")
    reason: str | None = None
    recipient: str | None = None
    notification_id: str | None = None


class FeedbackItem(BaseModel):
    id: int
    kind: str
    text: str | None = None
    actor: str
    via: str
    at: datetime
    answer: str | None = Field(None, description="The desk's answer, if any.")
    answered_at: datetime | None = None


class AdviceOut(BaseModel):
    language: Literal["nl", "en"]
    title: str
    summary: str
    why: str
    steps: list[str]
    check: str
    references: list[str]


class CaseNotification(BaseModel):
    id: str
    recipient: str
    state: str
    mode: str
    created_at: datetime
    sent_at: datetime | None = None


class CaseDetail(CaseSummary):
    reopened_count: int
    created_at: datetime
    updated_at: datetime
    advice: AdviceOut
    history: list[HistoryItem]
    notifications: list[CaseNotification]
    feedback: list[FeedbackItem]


class EventOut(BaseModel):
    """One event under its IntelMQ field names."""

    model_config = ConfigDict(populate_by_name=True)

    time_source: datetime | None = Field(None, alias="time.source")
    source_ip: str | None = Field(None, alias="source.ip")
    source_port: int | None = Field(None, alias="source.port")
    protocol_transport: str | None = Field(None, alias="protocol.transport")
    source_asn: int | None = Field(None, alias="source.asn")
    source_fqdn: str | None = Field(None, alias="source.fqdn")
    source_reverse_dns: str | None = Field(None, alias="source.reverse_dns")
    classification_taxonomy: str | None = Field(None, alias="classification.taxonomy")
    classification_type: str | None = Field(None, alias="classification.type")
    classification_identifier: str | None = Field(None, alias="classification.identifier")
    report_type: str | None = None
    feed_name: str | None = Field(None, alias="feed.name")
    severity: str | None = None
    tlp: str | None = None
    case_id: str | None = Field(None, description="The organisation's case of this event.")


class EventList(BaseModel):
    items: list[EventOut]
    page: int
    per_page: int
    total: int


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["fixed", "false_positive", "not_ours", "question"] = Field(
        description="fixed and false_positive resolve the case (a later report that still "
        "shows the finding reopens it); not_ours asks the desk to check who owns it; "
        "question is free text for the desk.")
    text: str | None = Field(None, max_length=MAX_TEXT, pattern=r"^[^\x00]*$",
                             description="Required for a question; optional otherwise.")


class FeedbackOut(BaseModel):
    id: int
    case_id: str
    kind: str
    state: Literal["open", "resolved"]
    resolved: bool = Field(description="This feedback resolved the case.")
    flagged: bool = Field(description="Waits for the desk (a question or not ours).")


class NotificationSummary(BaseModel):
    id: str
    recipient: str
    language: str
    mode: str = Field(description="immediate, digest or hourly")
    state: str = Field(description="pending, queued, sent, failed, bounced, rerouted, rejected")
    case_count: int
    subject: str | None = None
    created_at: datetime
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    rerouted_from: str | None = None
    case_ids: list[str]


class NotificationList(BaseModel):
    items: list[NotificationSummary]
    page: int
    per_page: int
    total: int


class NotificationDetail(NotificationSummary):
    cases: list[CaseSummary]


assert set(KINDS) == set(FeedbackIn.model_fields["kind"].annotation.__args__)  # type: ignore[union-attr]


# -- cases ---------------------------------------------------------------------------------


@router.get("/cases", response_model=CaseList, summary="The organisation's cases",
            description="Most recently seen first. Filters combine; `q` matches part of a "
            "case id or of the finding's identifier; `since`/`until` bound last_seen.",
            responses=_AUTH)
async def list_cases(
    s: DB, caller: Reader,
    page: Page = 1, per_page: PerPage = 50,
    state: Literal["open", "resolved"] | None = None,
    report_type: Annotated[str | None, Query(max_length=128)] = None,
    severity: Severity | None = None,
    taxonomy: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None, until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    org_id = require_org(caller)
    try:
        f = inbox.CaseFilter.parse(state=state, report_type=report_type, severity=severity,
                                   taxonomy=taxonomy, since=_utc(since), until=_utc(until),
                                   q=q)
        # Two indexed queries of a few hundred microseconds: run on the event loop (a
        # worker is one process per core), not through the thread pool.
        items, total = inbox.list_cases_json(s, org_id, f, page=page, per_page=per_page)
    except inbox.InboxInputError as exc:
        raise _bad(exc) from None
    return _page_json(items, page, per_page, total)


def _case_or_404(s: DB, org_id: str, case_id: str) -> dict[str, Any]:
    case = inbox.get_case(s, org_id, case_id)
    if case is None:
        raise HTTPException(404, f"unknown case {case_id[:40]!r}")
    return case


def _advice(report_type: str | None, identifier: str | None, lang: str) -> dict[str, Any]:
    adv = default_library().for_event(report_type, identifier)
    t = adv.text(lang)
    return {"language": lang, "title": t.title, "summary": t.summary, "why": t.why,
            "steps": list(t.steps), "check": t.check, "references": list(adv.references)}


@router.get("/cases/{case_id}", response_model=CaseDetail, summary="One case",
            description="With the advice (`lang` nl or en), its history, the notifications "
            "that reported it and the organisation's feedback.",
            responses={**_AUTH, **_NOT_FOUND})
def get_case(s: DB, caller: Reader, case_id: str,
             lang: Literal["nl", "en"] = "en") -> Response:
    org_id = require_org(caller)
    case = _case_or_404(s, org_id, case_id)
    detail = {
        **case,
        "advice": _advice(case["report_type"], case["identifier"], lang),
        "history": inbox.case_history(s, case["id"], show_recipients=True),
        "notifications": inbox.case_notifications(s, org_id, case["id"]),
        "feedback": [{"id": f.id, "kind": f.kind, "text": f.text, "actor": f.actor,
                      "via": f.via, "at": f.at, "answer": f.answer,
                      "answered_at": f.answered_at}
                     for f in case_feedback(s, case["id"], org_id)],
    }
    return _json(CaseDetail.model_validate(detail))


@router.get("/cases/{case_id}/events", response_model=EventList,
            summary="The events of one case", description="Newest first, from the archive.",
            responses={**_AUTH, **_NOT_FOUND})
def case_events(request: Request, s: DB, caller: Reader, case_id: str,
                page: Page = 1, per_page: PerPage = 50) -> Response:
    org_id = require_org(caller)
    case = _case_or_404(s, org_id, case_id)
    total, rows = inbox.case_events(services(request).events, org_id, case["fingerprint"],
                                    limit=per_page, offset=(page - 1) * per_page)
    for r in rows:
        r["case_id"] = case["id"]
    return _json(EventList.model_validate(
        {"items": rows, "page": page, "per_page": per_page, "total": total}))


@router.post("/cases/{case_id}/feedback", response_model=FeedbackOut, status_code=201,
             summary="Tell the desk about a case",
             responses={**_AUTH, **_NOT_FOUND,
                        400: {"description": "A question without text"}})
def post_feedback(request: Request, s: DB, caller: Writer, case_id: str,
                  body: FeedbackIn) -> Response:
    org_id = require_org(caller)
    _case_or_404(s, org_id, case_id)
    try:
        res = record_feedback(s, case_id, org_id, body.kind, body.text, caller.actor, "api")
    except AccessError:
        s.rollback()
        raise
    s.commit()
    return _json(FeedbackOut(id=res.feedback_id, case_id=res.case_id, kind=res.kind,
                             state=res.state,
                             resolved=res.resolved, flagged=res.flagged), 201)


# -- notifications -------------------------------------------------------------------------


@router.get("/notifications", response_model=NotificationList,
            summary="The organisation's notifications", description="Newest first.",
            responses=_AUTH)
def list_notifications(s: DB, caller: Reader, page: Page = 1, per_page: PerPage = 50,
                       state: Annotated[str | None, Query(max_length=16)] = None
                       ) -> Response:
    org_id = require_org(caller)
    result = inbox.list_notifications(s, org_id, page=page, per_page=per_page, state=state)
    return _json(NotificationList.model_validate(
        {"items": result.items, "page": page, "per_page": per_page, "total": result.total}))


@router.get("/notifications/{notification_id}", response_model=NotificationDetail,
            summary="One notification with its cases",
            responses={**_AUTH, 404: {"description": "No such notification"}})
def get_notification(s: DB, caller: Reader, notification_id: str) -> Response:
    org_id = require_org(caller)
    item = inbox.get_notification(s, org_id, notification_id[:64])
    if item is None:
        raise HTTPException(404, f"unknown notification {notification_id[:64]!r}")
    item["case_ids"] = [c["id"] for c in item["cases"]]
    return _json(NotificationDetail.model_validate(item))


# -- events --------------------------------------------------------------------------------


@router.get("/events", response_model=EventList, summary="The organisation's events",
            description="Newest first (time.source), from the Parquet archive. `case_id` "
            "narrows to one case; `ip` to one source address.",
            responses={**_AUTH, **_NOT_FOUND})
def list_events(
    request: Request, s: DB, caller: Reader, page: Page = 1, per_page: PerPage = 50,
    report_type: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None, until: datetime | None = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    case_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    org_id = require_org(caller)
    since, until = _utc(since), _utc(until)
    if since and until and since > until:
        raise HTTPException(400, "since must not be after until")
    fingerprint = None
    if case_id:
        fingerprint = inbox.case_fingerprint(s, org_id, case_id)
        if fingerprint is None:
            raise HTTPException(404, f"unknown case {case_id!r}")
    f = inbox.EventFilter(report_type=report_type or None, since=since, until=until,
                          ip=(ip or "").strip() or None, fingerprint=fingerprint)
    result = inbox.list_events(s, services(request).events, org_id, f, page=page,
                               per_page=per_page)
    return _json(EventList.model_validate(
        {"items": result.items, "page": page, "per_page": per_page, "total": result.total}))
