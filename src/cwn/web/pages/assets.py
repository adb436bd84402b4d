"""The organisation's assets and claims, the public page behind the RIR confirmation link,
and the operator's review of claims.

Organisation members see; organisation admins claim, prove and withdraw. Every query is
scoped by the viewer's organisation: another organisation's claim is "not found" (404),
never "forbidden", so ids reveal nothing, and a claimant never learns *whose* assets its
claim overlaps (only the operator sees that). The proof buttons are htmx: the claim panel
is replaced in place with the outcome; without JavaScript the same forms post and the whole
page comes back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.db.models import Asset, Organization
from cwn.db.models_web import AssetClaim
from cwn.registry import claims as registry_claims
from cwn.web.deps import DB, MaybeViewer, Operator, OrgAdmin, OrgMember, Viewer, services
from cwn.web.i18n import N_, gettext
from cwn.web.render import fragment, page

router = APIRouter()

STATE_LABELS = {"pending": N_("waiting for proof"), "review": N_("with the CWN desk"),
                "verified": N_("verified"), "rejected": N_("rejected"),
                "withdrawn": N_("withdrawn")}
TYPE_LABELS = {"cidr": N_("IP network"), "asn": N_("AS number"), "domain": N_("Domain")}
METHOD_LABELS = {"dns": N_("DNS TXT record"), "securitytxt": N_("security.txt"),
                 "rir": N_("RIR abuse contact"), "operator": N_("CWN desk"),
                 "operator-import": N_("CWN desk")}
ERRORS = {
    "claim_invalid": N_("This value cannot be claimed."),
    "claim_duplicate": N_("This is already one of your assets."),
    "claim_limit": N_("You have too many open claims; finish or withdraw some first."),
    "claim_not_found": N_("This claim does not exist."),
    "claim_closed": N_("This claim is closed; nothing more can be done with it."),
    "claim_method": N_("This kind of proof does not fit this kind of asset."),
    "claim_in_review": N_("This claim is already waiting for the CWN desk."),
    "claim_mail_recent": N_("The abuse contact was mailed less than an hour ago; please "
                            "wait before mailing again."),
    "claim_no_rir_contact": N_("No RIR abuse contact is known for this claim; ask the CWN "
                               "desk to verify it instead."),
    "mail_failed": N_("The mail could not be sent; please try again later."),
    "reason_required": N_("Give a reason: the organisation sees it."),
    "link_invalid": N_("This confirmation link is not valid: it was used, has expired, or "
                       "the claim was withdrawn."),
}
_LABELS: dict[str, Any] = {"state_labels": STATE_LABELS, "type_labels": TYPE_LABELS,
                           "method_labels": METHOD_LABELS}


def _message(lang: str, exc: AccessError) -> str:
    """A translated sentence per refusal; the English detail (it carries the value and the
    precise rule) follows when it says more than the sentence."""
    text = gettext(lang, ERRORS.get(exc.key, exc.message))
    if exc.key in ("claim_invalid", "claim_method") and exc.message not in text:
        text = f"{text} ({exc.message})"
    return text


def _org_id(viewer: Viewer) -> str:
    assert viewer.org_id is not None  # org_member / org_admin guarantee it
    return viewer.org_id


def _htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# -- the organisation's assets ----------------------------------------------------------------


def _assets_page(request: Request, s: Session, viewer: Viewer, *, status_code: int = 200,
                 error: str | None = None, form: dict[str, str] | None = None
                 ) -> HTMLResponse:
    org_id = _org_id(viewer)
    assets = s.scalars(select(Asset).where(Asset.org_id == org_id, Asset.verified.is_(True))
                       .order_by(Asset.type, Asset.value)).all()
    return page(request, "assets/index.html", viewer, status_code=status_code,
                org=s.get(Organization, org_id), assets=assets,
                claims=registry_claims.list_claims(s, org_id=org_id),
                can_edit=viewer.role == "org_admin", error=error, form=form or {},
                done=request.query_params.get("done"), **_LABELS)


@router.get("/assets")
def assets_index(request: Request, s: DB, viewer: OrgMember) -> HTMLResponse:
    return _assets_page(request, s, viewer)


@router.post("/assets/claims")
def claim_post(request: Request, s: DB, viewer: OrgAdmin,
               type: Annotated[str, Form()] = "",
               value: Annotated[str, Form()] = "") -> Response:
    try:
        c = registry_claims.claim(s, org_id=_org_id(viewer), type=type, value=value,
                                  actor=viewer.actor)
    except AccessError as exc:
        s.rollback()
        return _assets_page(request, s, viewer, status_code=exc.status,
                            error=_message(viewer.language, exc),
                            form={"type": type, "value": value})
    s.commit()
    return RedirectResponse(f"/assets/claims/{c.id}", status_code=303)


# -- one claim --------------------------------------------------------------------------------


def _claim_view(request: Request, s: Session, viewer: Viewer, c: AssetClaim, *,
                message: str | None = None, error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    """The claim panel as an htmx fragment, or the whole page."""
    settings = services(request).settings
    hint = None
    if c.type != "domain" and c.state in registry_claims.OPEN_STATES:
        hint = registry_claims.rir_contact_hint(settings, c)
    dns_name, _ = registry_claims.dns_record_names(c)
    ctx: dict[str, Any] = dict(
        claim=c, message=message, error=error, rir_hint=hint, dns_name=dns_name,
        dns_value=registry_claims.TXT_PREFIX + c.challenge,
        securitytxt_line=f"{registry_claims.SECURITYTXT_FIELD}: {c.challenge}",
        link_expires=registry_claims.expires_at(c), can_edit=viewer.role == "org_admin",
        is_open=c.state in registry_claims.OPEN_STATES, **_LABELS)
    if _htmx(request):
        # htmx does not swap 4xx answers: the outcome (also a refusal) is shown in place
        return fragment(request, "assets/_claim.html", viewer, **ctx)
    return page(request, "assets/claim.html", viewer, status_code=status_code, **ctx)


@router.get("/assets/claims/{claim_id}")
def claim_page(request: Request, s: DB, viewer: OrgMember, claim_id: str) -> HTMLResponse:
    c = registry_claims.get_claim(s, claim_id, _org_id(viewer))
    return _claim_view(request, s, viewer, c)


def _act(request: Request, s: Session, viewer: Viewer, claim_id: str, action: str
         ) -> HTMLResponse:
    settings = services(request).settings
    org_id = _org_id(viewer)
    lang = viewer.language
    try:
        if action == "dns":
            res = registry_claims.check_dns(s, claim_id, org_id=org_id, actor=viewer.actor,
                                            settings=settings)
        elif action == "securitytxt":
            res = registry_claims.check_securitytxt(s, claim_id, org_id=org_id,
                                                    actor=viewer.actor, settings=settings)
        elif action == "rir":
            c = registry_claims.send_rir_confirmation(s, claim_id, org_id=org_id,
                                                      actor=viewer.actor, settings=settings)
            s.commit()
            return _claim_view(request, s, viewer, c, message=gettext(
                lang, "A confirmation link was mailed to {email}. The claim is verified "
                "as soon as they confirm.").format(email=c.rir_contact))
        else:
            c = registry_claims.request_review(s, claim_id, org_id=org_id, actor=viewer.actor)
            s.commit()
            return _claim_view(request, s, viewer, c, message=gettext(
                lang, "The CWN desk will look at your claim."))
    except AccessError as exc:
        s.rollback()
        if exc.key == "claim_not_found":
            raise
        c = registry_claims.get_claim(s, claim_id, org_id)
        return _claim_view(request, s, viewer, c, error=_message(lang, exc),
                           status_code=exc.status)
    s.commit()
    if res.claim.state == "verified":
        msg = gettext(lang, "Proof found: {value} is verified.").format(value=res.claim.value)
    elif res.proven:
        msg = gettext(lang, "Proof found. Because it overlaps assets of another "
                      "organisation, the CWN desk decides.")
    else:
        msg = gettext(lang, "No proof found yet.")
    return _claim_view(request, s, viewer, res.claim, message=msg)


@router.post("/assets/claims/{claim_id}/check/dns")
def check_dns(request: Request, s: DB, viewer: OrgAdmin, claim_id: str) -> HTMLResponse:
    return _act(request, s, viewer, claim_id, "dns")


@router.post("/assets/claims/{claim_id}/check/securitytxt")
def check_securitytxt(request: Request, s: DB, viewer: OrgAdmin, claim_id: str
                      ) -> HTMLResponse:
    return _act(request, s, viewer, claim_id, "securitytxt")


@router.post("/assets/claims/{claim_id}/rir")
def mail_rir(request: Request, s: DB, viewer: OrgAdmin, claim_id: str) -> HTMLResponse:
    return _act(request, s, viewer, claim_id, "rir")


@router.post("/assets/claims/{claim_id}/review")
def ask_desk(request: Request, s: DB, viewer: OrgAdmin, claim_id: str) -> HTMLResponse:
    return _act(request, s, viewer, claim_id, "review")


@router.post("/assets/claims/{claim_id}/withdraw")
def withdraw(request: Request, s: DB, viewer: OrgAdmin, claim_id: str) -> Response:
    try:
        registry_claims.withdraw(s, claim_id, org_id=_org_id(viewer), actor=viewer.actor)
    except AccessError as exc:
        s.rollback()
        if exc.key == "claim_not_found":
            raise
        c = registry_claims.get_claim(s, claim_id, _org_id(viewer))
        return _claim_view(request, s, viewer, c, error=_message(viewer.language, exc),
                           status_code=exc.status)
    s.commit()
    if _htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/assets?done=withdrawn"})
    return RedirectResponse("/assets?done=withdrawn", status_code=303)


# -- the public confirmation link (RIR abuse contact) -----------------------------------------


def _confirm_page(request: Request, s: Session, viewer: Viewer | None, token: str, *,
                  done: bool = False, claim: AssetClaim | None = None,
                  error: str | None = None, status_code: int = 200) -> HTMLResponse:
    org = s.get(Organization, claim.org_id) if claim is not None else None
    return page(request, "assets/confirm.html", viewer, status_code=status_code, claim=claim,
                org=org, done=done, error=error, token=token, **_LABELS)


@router.get("/claims/confirm/{token}")
def confirm_link(request: Request, s: DB, viewer: MaybeViewer, token: str) -> HTMLResponse:
    """Only shows a button: mail scanners open links, and opening must change nothing."""
    try:
        c = registry_claims.claim_for_link(s, token)
    except AccessError as exc:
        return _confirm_page(request, s, viewer, token, error=_message(_lang(request, viewer),
                                                                       exc), status_code=404)
    return _confirm_page(request, s, viewer, token, claim=c)


@router.post("/claims/confirm/{token}")
def confirm_link_post(request: Request, s: DB, viewer: MaybeViewer, token: str
                      ) -> HTMLResponse:
    try:
        res = registry_claims.confirm_by_link(s, token)
    except AccessError as exc:
        s.rollback()
        return _confirm_page(request, s, viewer, token, error=_message(_lang(request, viewer),
                                                                       exc), status_code=404)
    s.commit()
    return _confirm_page(request, s, viewer, token, claim=res.claim, done=True)


def _lang(request: Request, viewer: Viewer | None) -> str:
    from cwn.web.deps import language

    return viewer.language if viewer else language(request)


# -- the operator's review --------------------------------------------------------------------


def _review_page(request: Request, s: Session, viewer: Viewer, *, error: str | None = None,
                 status_code: int = 200) -> HTMLResponse:
    state = request.query_params.get("state") or "review"
    if state not in registry_claims.STATES:
        state = "review"
    found = registry_claims.list_claims(s, state=state)[:500]
    orgs = {o.id: o.name for o in s.scalars(select(Organization).where(
        Organization.id.in_({c.org_id for c in found})))} if found else {}
    return page(request, "assets/review.html", viewer, status_code=status_code,
                claims=found, orgs=orgs, state=state, states=registry_claims.STATES,
                error=error, done=request.query_params.get("done"), **_LABELS)


@router.get("/operator/claims")
def review(request: Request, s: DB, viewer: Operator) -> HTMLResponse:
    return _review_page(request, s, viewer)


@router.post("/operator/claims/{claim_id}/approve")
def approve(request: Request, s: DB, viewer: Operator, claim_id: str,
            note: Annotated[str, Form()] = "") -> Response:
    try:
        registry_claims.approve(s, claim_id, actor=viewer.actor, note=note or None)
    except AccessError as exc:
        s.rollback()
        return _review_page(request, s, viewer, error=_message(viewer.language, exc),
                            status_code=exc.status)
    s.commit()
    return RedirectResponse("/operator/claims?done=approved", status_code=303)


@router.post("/operator/claims/{claim_id}/reject")
def reject(request: Request, s: DB, viewer: Operator, claim_id: str,
           reason: Annotated[str, Form()] = "") -> Response:
    try:
        registry_claims.reject(s, claim_id, actor=viewer.actor, reason=reason)
    except AccessError as exc:
        s.rollback()
        return _review_page(request, s, viewer, error=_message(viewer.language, exc),
                            status_code=exc.status)
    s.commit()
    return RedirectResponse("/operator/claims?done=rejected", status_code=303)
