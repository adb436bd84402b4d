"""The organisation's inbox in the portal: the case list (htmx filters and paging), the
notifications, and the case page, which a notified recipient also opens from its mail
without an account (the link carries the case's key, `cwn.feedback.casekey`).

The case page never tells whether a case exists: an unknown id, another organisation's
case and a wrong key all get the same "not found". A key holder sees what the mail showed
(the events of the mailed reports, no addresses of other recipients); TLP:RED needs a
signed-in member of the organisation.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cwn.access.errors import AccessError
from cwn.attribute.public import is_public_owner
from cwn.feedback.casekey import check_case_key
from cwn.feedback.cases import KINDS, MAX_TEXT, case_feedback, record_feedback
from cwn.render.advice.library import default_library
from cwn.web import charts, inbox, trends
from cwn.web.deps import DB, MaybeViewer, OrgMember, Viewer, language, services
from cwn.web.i18n import N_, gettext
from cwn.web.render import fragment, page, translate

router = APIRouter()

KIND_LABELS = {"fixed": N_("We fixed it"), "false_positive": N_("This is a false positive"),
               "not_ours": N_("This system is not ours"),
               "question": N_("I have a question")}
STATE_LABELS = {"open": N_("Open"), "resolved": N_("Resolved")}
ACTION_LABELS = {"opened": N_("Case opened"), "reopened": N_("Seen again: case reopened"),
                 "resolved": N_("Resolved"), "notified": N_("Notification sent"),
                 "digest": N_("Added to a digest"), "rerouted": N_("Sent to another contact"),
                 "feedback": N_("Feedback received"),
                 "partner_feedback": N_("Feedback from a partner")}
REASON_LABELS = {"recipient_fixed": N_("fixed, according to you"),
                 "false_positive": N_("a false positive, according to you"),
                 "absent_from_later_report": N_("no longer seen in a later scan"),
                 "seen_again": N_("seen again in a later scan"),
                 "not_ours": N_("not yours, according to the recipient")}
SEVERITY_LABELS = {"info": N_("info"), "low": N_("low"), "medium": N_("medium"),
                   "high": N_("high"), "critical": N_("critical")}
NOT_FOUND = N_("No case with this number was found, or the key does not fit it.")
MEMBER_ROLES = ("org_admin", "org_user")


def _member_org(viewer: Viewer | None) -> str | None:
    if viewer is not None and viewer.role in MEMBER_ROLES and viewer.org_id:
        return viewer.org_id
    return None


@router.get("/")
def start(viewer: MaybeViewer) -> Response:
    if viewer is None:
        return RedirectResponse("/login", status_code=303)
    if _member_org(viewer):
        return RedirectResponse("/inbox", status_code=303)
    if viewer.is_operator:
        return RedirectResponse("/operator", status_code=303)
    if viewer.role == "partner_admin":
        return RedirectResponse("/partner", status_code=303)
    return RedirectResponse("/account", status_code=303)


# -- the case list -------------------------------------------------------------------------


def _day(value: str | None, *, end: bool = False) -> datetime | None:
    """A date from the filter form (YYYY-MM-DD); `until` includes the whole day."""
    if not value or not value.strip():
        return None
    try:
        d = datetime.strptime(value.strip()[:10], "%Y-%m-%d").date()
    except ValueError:
        raise HTTPException(400, N_("Dates are written as YYYY-MM-DD.")) from None
    at = datetime.combine(d, time.min, tzinfo=UTC)
    return at + timedelta(days=1) - timedelta(microseconds=1) if end else at


@router.get("/inbox")
def inbox_page(
    request: Request, s: DB, viewer: OrgMember,
    state: Annotated[str, Query(max_length=16)] = "open",
    report_type: Annotated[str, Query(max_length=128)] = "",
    severity: Annotated[str, Query(max_length=16)] = "",
    taxonomy: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    org_id = viewer.org_id
    assert org_id is not None
    state_filter = "" if state == "all" else state
    try:
        f = inbox.CaseFilter.parse(state=state_filter, report_type=report_type,
                                   severity=severity, taxonomy=taxonomy, since=_day(since),
                                   until=_day(until, end=True), q=q)
        result = inbox.list_cases(s, org_id, f, page=page_no, per_page=per_page)
    except inbox.InboxInputError as exc:
        raise HTTPException(400, str(exc)) from None
    params = {"state": state or "all", "report_type": report_type, "severity": severity,
              "taxonomy": taxonomy, "since": since, "until": until, "q": q}
    query = urlencode({k: v for k, v in params.items() if v})
    ctx: dict[str, Any] = {"result": result, "params": params, "query": query,
                           "state_labels": STATE_LABELS, "severity_labels": SEVERITY_LABELS}
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "cases":
        return fragment(request, "inbox/_cases.html", viewer, **ctx)
    labels, opened, resolved = trends.cases_per_week(s, org_id)
    chart = charts.bars(labels, [
        charts.Series(translate(request, viewer, N_("opened")), opened, "chart-c"),
        charts.Series(translate(request, viewer, N_("resolved")), resolved, "chart-b")],
        title=translate(request, viewer, "Cases opened and resolved per week"))
    return page(request, "inbox/index.html", viewer, facets=inbox.facets(s, org_id),
                chart=chart, **ctx)


@router.get("/notifications")
def notifications_page(
    request: Request, s: DB, viewer: OrgMember,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    assert viewer.org_id is not None
    result = inbox.list_notifications(s, viewer.org_id, page=page_no, per_page=50)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "notes":
        return fragment(request, "inbox/_notifications.html", viewer, result=result)
    return page(request, "inbox/notifications.html", viewer, result=result)


# -- the case page -------------------------------------------------------------------------


def _open_case(request: Request, s: DB, viewer: Viewer | None, case_id: str,
               key: str | None) -> tuple[dict[str, Any], str]:
    """The case and how the viewer may see it: "member" (signed in, the organisation's)
    or "key" (the key from the mail). Anything else is the same 404."""
    cid = inbox.normalise_case_id(case_id)[:40]
    org = _member_org(viewer)
    if org is not None:
        case = inbox.get_case(s, org, cid)
        if case is not None:
            return case, "member"
    # The key is checked before the database is asked, so a wrong key costs the same
    # whether the case exists or not.
    if key and check_case_key(request.app.state.secret_key, cid, key):
        owner = inbox.case_org(s, cid)
        case = inbox.get_case(s, owner, cid) if owner else None
        if case is not None:
            if inbox.tlp_rank(case["tlp"]) >= inbox.tlp_rank("RED"):
                raise HTTPException(403, N_("This case is TLP:RED. Sign in as a member of "
                                            "the organisation to open it."))
            return case, "key"
    raise HTTPException(404, NOT_FOUND)


def _advice(case: dict[str, Any], lang: str) -> dict[str, Any]:
    adv = default_library().for_event(case["report_type"], case["identifier"])
    return {"text": adv.text(lang), "references": adv.references}


def _case_context(request: Request, s: DB, viewer: Viewer | None, case: dict[str, Any],
                  access: str, key: str | None) -> dict[str, Any]:
    lang = viewer.language if viewer else language(request)
    reports = None if access == "member" else inbox.mailed_reports(s, case["id"])
    n_events, events = inbox.case_events(services(request).events, case["org_id"],
                                         case["fingerprint"], reports=reports)
    return {
        "case": case, "access": access, "key": key if access == "key" else None,
        "lang": lang, "advice": _advice(case, lang), "events": events, "n_events": n_events,
        "history": inbox.case_history(s, case["id"], show_recipients=access == "member"),
        "feedback": case_feedback(s, case["id"], case["org_id"]),
        "kinds": [(k, KIND_LABELS[k]) for k in KINDS], "state_labels": STATE_LABELS,
        "action_labels": ACTION_LABELS, "kind_labels": KIND_LABELS, "max_text": MAX_TEXT,
        "reason_labels": REASON_LABELS, "severity_labels": SEVERITY_LABELS,
    }


@router.get("/case")
def lookup(
    request: Request, viewer: MaybeViewer,
    case_id: Annotated[str, Query(max_length=40)] = "",
    key: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The look-up form; filled in, it goes to the case page."""
    cid = inbox.normalise_case_id(case_id)
    if not cid:
        return page(request, "inbox/lookup.html", viewer)
    target = f"/case/{quote(cid, safe='')}"
    if key.strip():
        target += "?" + urlencode({"key": key.strip()})
    return RedirectResponse(target, status_code=303)


@router.get("/case/{case_id}")
def case_page(
    request: Request, s: DB, viewer: MaybeViewer, case_id: str,
    key: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    case, access = _open_case(request, s, viewer, case_id, key)
    ctx = _case_context(request, s, viewer, case, access, key)
    return page(request, "inbox/case.html", viewer, lang=ctx.pop("lang"), **ctx)


@router.post("/case/{case_id}/feedback")
def case_feedback_post(
    request: Request, s: DB, viewer: MaybeViewer, case_id: str,
    kind: Annotated[str, Form(max_length=32)] = "",
    text: Annotated[str, Form(max_length=MAX_TEXT + 100)] = "",
    key: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    case, access = _open_case(request, s, viewer, case_id, key)
    lang = viewer.language if viewer else language(request)
    notifier = None
    if kind == "not_ours" and is_public_owner(case["org_id"]):
        from cwn.notify import Notifier

        notifier = Notifier.from_services(services(request))
    try:
        res = record_feedback(
            s, case["id"], case["org_id"], kind, text,
            viewer.actor if access == "member" and viewer else f"key:{case['id']}",
            "portal" if access == "member" else "link", notifier=notifier)
        s.commit()
    except AccessError as exc:
        s.rollback()
        if request.headers.get("hx-request"):
            return fragment(request, "inbox/_feedback.html", viewer, status_code=exc.status,
                            error=gettext(lang, exc.message), **_feedback_ctx(s, case, key))
        raise
    finally:
        if notifier is not None:
            notifier.close()
    if not request.headers.get("hx-request"):
        target = f"/case/{quote(case['id'], safe='')}"
        if access == "key" and key:
            target += "?" + urlencode({"key": key})
        return RedirectResponse(target + "#feedback", status_code=303)
    case = {**case, "state": res.state}
    return fragment(request, "inbox/_feedback.html", viewer, result=res,
                    **_feedback_ctx(s, case, key if access == "key" else None))


def _feedback_ctx(s: DB, case: dict[str, Any], key: str | None) -> dict[str, Any]:
    return {"case": case, "key": key, "feedback": case_feedback(s, case["id"], case["org_id"]),
            "kinds": [(k, KIND_LABELS[k]) for k in KINDS], "kind_labels": KIND_LABELS,
            "state_labels": STATE_LABELS, "max_text": MAX_TEXT}
