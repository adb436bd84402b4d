"""Forgotten password: ask for a link, then choose a new password through it (see
`cwn.access.resets` for what this guards against)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from cwn.access import resets
from cwn.access.errors import AccessError
from cwn.deliver.mailer import MailError
from cwn.web.deps import DB, MaybeViewer, language
from cwn.web.i18n import gettext
from cwn.web.invitations import send_password_reset
from cwn.web.render import page

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/password/forgot")
def forgot_form(request: Request, viewer: MaybeViewer) -> HTMLResponse:
    return page(request, "auth/forgot.html", viewer, email="")


@router.post("/password/forgot")
def forgot(request: Request, s: DB, viewer: MaybeViewer,
           email: Annotated[str, Form(max_length=320)]) -> HTMLResponse:
    settings = request.app.state.svc.settings
    ip = request.client.host if request.client else None
    made = resets.request(s, settings, email, ip=ip)
    s.commit()
    if made is not None:
        user, raw = made
        try:
            send_password_reset(settings, user, raw, ip)
        except MailError as exc:  # the answer stays the same: it must not tell who exists
            log.warning("password reset mail to %s failed: %s", user.email, exc)
    return page(request, "auth/forgot_done.html", viewer,
                minutes=settings.password_reset_minutes,
                cooldown=int(resets.COOLDOWN.total_seconds() // 60))


@router.get("/password/reset/{token}")
def reset_form(request: Request, s: DB, viewer: MaybeViewer, token: str) -> HTMLResponse:
    _, user = resets.link(s, token)
    return page(request, "auth/reset.html", viewer, lang=language(request, user),
                token=token, email=user.email)


@router.post("/password/reset/{token}")
def reset(request: Request, s: DB, viewer: MaybeViewer, token: str,
          password: Annotated[str, Form(max_length=1024)],
          password2: Annotated[str, Form(max_length=1024)]) -> HTMLResponse:
    _, user = resets.link(s, token)
    lang = language(request, user)
    if password != password2:
        return page(request, "auth/reset.html", viewer, status_code=422, lang=lang,
                    token=token, email=user.email,
                    error=gettext(lang, "The two passwords differ."))
    try:
        resets.complete(s, request.app.state.svc.settings, token, password)
    except AccessError as exc:
        return page(request, "auth/reset.html", viewer, status_code=exc.status, lang=lang,
                    token=token, email=user.email, error=gettext(lang, exc.message))
    s.commit()
    return page(request, "auth/reset_done.html", None, lang=lang)
