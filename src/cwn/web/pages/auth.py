"""Sign-in (password, then TOTP), invitation acceptance, self-sign-up, sign-out and the
language switch."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cwn.access import sessions, throttle, totp, users
from cwn.access.errors import AccessError
from cwn.access.secrets import SecretBox
from cwn.db.base import utcnow
from cwn.db.models_web import User, WebSession
from cwn.web import csrf
from cwn.web.deps import DB, LANG_COOKIE, SESSION_COOKIE, MaybeViewer, current, language
from cwn.web.i18n import LANGUAGES, gettext
from cwn.web.render import page

router = APIRouter()


def safe_next(value: str | None) -> str:
    """Only same-site paths: an open redirect would make our sign-in a phishing tool."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _box(request: Request) -> SecretBox:
    return SecretBox(request.app.state.secret_key)


def _set_session(request: Request, response: Response, raw: str) -> None:
    settings = request.app.state.svc.settings
    response.set_cookie(SESSION_COOKIE, raw, httponly=True, samesite="lax",
                        secure=settings.secure_cookies, path="/",
                        max_age=settings.session_hours * 3600)
    # A fresh CSRF seed at every privilege change.
    response.set_cookie(csrf.COOKIE, csrf.random_token(24), httponly=True, samesite="lax",
                        secure=settings.secure_cookies, path="/")


def _signed_in_redirect(request: Request, s: DB, user: User, next_url: str) -> Response:
    """Password accepted: either straight in, or on to the second factor."""
    stage = "password" if (user.totp_enabled or users.needs_totp(user)) else "full"
    raw = sessions.start(s, request.app.state.svc.settings, user, stage=stage,
                         ip=_ip(request), user_agent=request.headers.get("user-agent"))
    if stage == "full":
        user.last_login_at = utcnow()
    s.commit()
    target = (("/login/totp" if user.totp_enabled else "/login/totp-setup")
              + f"?next={next_url}") if stage == "password" else next_url
    response = RedirectResponse(target, status_code=303)
    _set_session(request, response, raw)
    return response


@router.get("/login")
def login_form(request: Request, viewer: MaybeViewer, next: str = "/") -> Response:
    if viewer is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "auth/login.html", None, next=safe_next(next))


@router.post("/login")
def login(request: Request, s: DB, email: Annotated[str, Form(max_length=320)],
          password: Annotated[str, Form(max_length=1024)],
          next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    settings = request.app.state.svc.settings
    lang = language(request)
    next_url = safe_next(next)
    if throttle.blocked(s, settings, email, _ip(request)):
        return page(request, "auth/login.html", None, status_code=429, next=next_url,
                    email=email, error=gettext(lang, "Too many failed attempts. Wait a "
                                               "quarter of an hour and try again."))
    try:
        user = users.authenticate(s, email, password)
    except AccessError as exc:
        return page(request, "auth/login.html", None, status_code=exc.status, next=next_url,
                    email=email, error=gettext(lang, exc.message))
    if user is None:
        throttle.failed(s, email, _ip(request))
        s.commit()
        return page(request, "auth/login.html", None, status_code=401, next=next_url,
                    email=email, error=gettext(lang, "Wrong e-mail address or password."))
    throttle.succeeded(s, settings, email)
    return _signed_in_redirect(request, s, user, next_url)


def _half_session(request: Request, s: DB) -> tuple[WebSession, User] | None:
    found = current(request, s)
    if found is None or found[0].stage != "password":
        return None
    return found


def _finish_totp(request: Request, s: DB, ws: WebSession, user: User, next_url: str
                 ) -> Response:
    settings = request.app.state.svc.settings
    throttle.succeeded(s, settings, user.email)
    raw = sessions.promote(s, ws, settings, _ip(request), request.headers.get("user-agent"))
    user.last_login_at = utcnow()
    s.commit()
    response = RedirectResponse(next_url, status_code=303)
    _set_session(request, response, raw)
    return response


@router.get("/login/totp")
def totp_form(request: Request, s: DB, next: str = "/") -> Response:
    if _half_session(request, s) is None:
        return RedirectResponse("/login", status_code=303)
    return page(request, "auth/totp.html", None, next=safe_next(next))


@router.post("/login/totp")
def totp_check(request: Request, s: DB, code: Annotated[str, Form(max_length=20)],
               next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    found = _half_session(request, s)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    ws, user = found
    settings = request.app.state.svc.settings
    lang = language(request, user)
    if throttle.blocked(s, settings, user.email, _ip(request)):
        return page(request, "auth/totp.html", None, status_code=429, next=safe_next(next),
                    error=gettext(lang, "Too many failed attempts. Wait a quarter of an "
                                  "hour and try again."))
    if not user.totp_enabled or not users.check_totp(s, _box(request), user, code):
        throttle.failed(s, user.email, _ip(request))
        s.commit()
        return page(request, "auth/totp.html", None, status_code=401, next=safe_next(next),
                    error=gettext(lang, "That code is not right. Codes change every 30 "
                                  "seconds; use the newest one."))
    return _finish_totp(request, s, ws, user, safe_next(next))


def _setup_context(request: Request, s: DB, user: User) -> dict[str, Any]:
    box = _box(request)
    seed = users.pending_seed(box, user)
    if seed is None:
        seed = users.begin_totp(s, box, user)
        s.commit()
    uri = totp.provisioning_uri(seed, user.email)
    return {"seed": seed, "qr": totp.qr_svg(uri)}


@router.get("/login/totp-setup")
def totp_setup_form(request: Request, s: DB, viewer: MaybeViewer, next: str = "/"
                    ) -> Response:
    found = _half_session(request, s)
    user = found[1] if found else (viewer.user if viewer else None)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.totp_enabled:
        return RedirectResponse("/login/totp" if found else "/account", status_code=303)
    return page(request, "auth/totp_setup.html", viewer, next=safe_next(next),
                **_setup_context(request, s, user))


@router.post("/login/totp-setup")
def totp_setup(request: Request, s: DB, viewer: MaybeViewer,
               code: Annotated[str, Form(max_length=20)],
               next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    found = _half_session(request, s)
    user = found[1] if found else (viewer.user if viewer else None)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.totp_enabled:
        return RedirectResponse("/account", status_code=303)
    settings = request.app.state.svc.settings
    if throttle.blocked(s, settings, user.email, _ip(request)):
        return page(request, "auth/totp_setup.html", viewer, status_code=429,
                    next=safe_next(next), error=gettext(language(request, user),
                                                        "Too many failed attempts. Wait a "
                                                        "quarter of an hour and try again."),
                    **_setup_context(request, s, user))
    if not users.check_totp(s, _box(request), user, code):
        throttle.failed(s, user.email, _ip(request))
        s.commit()
        return page(request, "auth/totp_setup.html", viewer, status_code=401,
                    next=safe_next(next), error=gettext(language(request, user),
                                                        "That code is not right. Check the "
                                                        "clock of your phone and try again."),
                    **_setup_context(request, s, user))
    if found is not None:
        return _finish_totp(request, s, found[0], user, safe_next(next))
    s.commit()
    return RedirectResponse("/account", status_code=303)


@router.post("/logout")
def logout(request: Request, s: DB) -> Response:
    sessions.end(s, request.cookies.get(SESSION_COOKIE))
    s.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/invite/{token}")
def invite_form(request: Request, s: DB, token: str) -> HTMLResponse:
    _, user = users.invitation(s, token)
    return page(request, "auth/invite.html", None, lang=language(request, user),
                invited=user, token=token)


@router.post("/invite/{token}")
def invite_accept(request: Request, s: DB, token: str,
                  password: Annotated[str, Form(max_length=1024)],
                  password2: Annotated[str, Form(max_length=1024)],
                  name: Annotated[str, Form(max_length=255)] = "") -> Response:
    _, invited = users.invitation(s, token)
    lang = language(request, invited)
    if password != password2:
        return page(request, "auth/invite.html", None, status_code=422, lang=lang,
                    invited=invited, token=token,
                    error=gettext(lang, "The two passwords differ."))
    try:
        user = users.accept(s, token, password)
    except AccessError as exc:
        return page(request, "auth/invite.html", None, status_code=exc.status, lang=lang,
                    invited=invited, token=token, error=gettext(lang, exc.message))
    if name.strip():
        user.name = name.strip()
    return _signed_in_redirect(request, s, user, "/")


@router.get("/signup")
def signup_form(request: Request, viewer: MaybeViewer) -> HTMLResponse:
    return page(request, "auth/signup.html", viewer, form={})


@router.post("/signup")
def signup(request: Request, s: DB, name: Annotated[str, Form(max_length=255)],
           email: Annotated[str, Form(max_length=320)],
           organisation: Annotated[str, Form(max_length=255)],
           password: Annotated[str, Form(max_length=1024)],
           kvk: Annotated[str, Form(max_length=20)] = "",
           note: Annotated[str, Form(max_length=4000)] = "") -> HTMLResponse:
    lang = language(request)
    form = {"name": name, "email": email, "organisation": organisation, "kvk": kvk,
            "note": note}
    try:
        users.signup(s, email=email, password=password, name=name, organisation=organisation,
                     kvk=kvk, note=note, language=lang)
    except AccessError as exc:
        if exc.key == "user_exists":  # do not reveal which addresses have accounts
            return page(request, "auth/signup_done.html", None)
        return page(request, "auth/signup.html", None, status_code=exc.status, form=form,
                    error=gettext(lang, exc.message))
    s.commit()
    return page(request, "auth/signup_done.html", None)


@router.get("/lang/{code}")
def switch_language(request: Request, s: DB, viewer: MaybeViewer, code: str,
                    next: str = "/") -> Response:
    if code not in LANGUAGES:
        return RedirectResponse(safe_next(next), status_code=303)
    if viewer is not None:
        users.set_language(s, viewer.user, code)
        s.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, code, samesite="lax", path="/", max_age=365 * 86400,
                        secure=request.app.state.svc.settings.secure_cookies)
    return response
