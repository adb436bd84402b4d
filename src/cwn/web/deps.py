"""Request dependencies: the database session, who is asking (portal viewer or API
caller), and the role and scope checks every route declares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cwn.access import sessions, tokens
from cwn.db.models_web import User, WebSession
from cwn.web import csrf
from cwn.web.i18n import LANGUAGES, pick
from cwn.wiring import Services

SESSION_COOKIE = "cwn_session"
LANG_COOKIE = "cwn_lang"


class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def services(request: Request) -> Services:
    svc: Services = request.app.state.svc
    return svc


async def db(request: Request) -> AsyncIterator[Session]:
    """An ORM session per request. An async generator, so opening and closing it costs no
    thread-pool hop (a session connects lazily, on first use, wherever that runs)."""
    s = services(request).sessions()
    if request.method == "GET" and request.url.path.startswith("/api/") and \
            s.get_bind().dialect.name == "postgresql":
        # A read: no BEGIN and no ROLLBACK round trips. Nothing is lost: under READ
        # COMMITTED every statement takes its own snapshot inside a transaction too.
        s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield s
    finally:
        s.close()


DB = Annotated[Session, Depends(db)]


@dataclass
class Viewer:
    user: User
    session: WebSession
    language: str

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def org_id(self) -> str | None:
        return self.user.org_id

    @property
    def partner_id(self) -> str | None:
        return self.user.partner_id

    @property
    def is_operator(self) -> bool:
        return self.user.role == "operator"

    @property
    def actor(self) -> str:
        return f"user:{self.user.email}"


def language(request: Request, user: User | None = None) -> str:
    """The user's preference, else the language cookie, else Accept-Language."""
    if user is not None and user.language in LANGUAGES:
        return user.language
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LANGUAGES:
        return str(cookie)
    return pick(request.headers.get("accept-language"))


def current(request: Request, s: Session) -> tuple[WebSession, User] | None:
    """The signed-in session (any stage), cached on the request."""
    if hasattr(request.state, "auth"):
        cached: tuple[WebSession, User] | None = request.state.auth
        return cached
    found = sessions.load(s, services(request).settings, request.cookies.get(SESSION_COOKIE))
    request.state.auth = found
    return found


async def optional_viewer(request: Request, s: DB) -> Viewer | None:
    """Runs on the event loop: two primary-key lookups are cheaper than a thread hop."""
    found = current(request, s)
    if found is None or found[0].stage != "full":
        return None
    return Viewer(user=found[1], session=found[0], language=language(request, found[1]))


def _next_url(request: Request) -> str:
    url = request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


async def signed_in(request: Request, s: DB) -> Viewer:
    viewer = await optional_viewer(request, s)
    if viewer is None:
        raise LoginRequired(_next_url(request))
    return viewer


def _role(*roles: str) -> Callable[..., Awaitable[Viewer]]:
    async def check(viewer: Annotated[Viewer, Depends(signed_in)]) -> Viewer:
        if viewer.role not in roles:
            raise HTTPException(403, "your role may not open this page")
        if viewer.role.startswith("org_") and not viewer.org_id:
            raise HTTPException(403, "your account is not linked to an organisation")
        if viewer.role == "partner_admin" and not viewer.partner_id:
            raise HTTPException(403, "your account is not linked to a partner")
        return viewer
    return check


operator = _role("operator")
org_member = _role("org_admin", "org_user")
org_admin = _role("org_admin")
partner_admin = _role("partner_admin")

SignedIn = Annotated[Viewer, Depends(signed_in)]
Operator = Annotated[Viewer, Depends(operator)]
OrgMember = Annotated[Viewer, Depends(org_member)]
OrgAdmin = Annotated[Viewer, Depends(org_admin)]
PartnerAdmin = Annotated[Viewer, Depends(partner_admin)]
MaybeViewer = Annotated[Viewer | None, Depends(optional_viewer)]


async def csrf_guard(request: Request) -> None:
    """Every state-changing portal request must carry the form's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if not await csrf.valid(request, request.app.state.secret_key):
        raise HTTPException(403, "the form has expired or did not come from this site; "
                            "reload the page and try again")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        if any(isinstance(v, str) and "\x00" in v for v in form.values()):
            raise HTTPException(400, "the form contains a NUL byte")


# -- API ---------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API token: `cwn tokens create`.")


ApiCaller = tokens.TokenHolder
"""What an API route knows of its caller: the token holder and its scopes."""


def api_caller(scope: str) -> Callable[..., Awaitable[ApiCaller]]:
    async def check(
        s: DB,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiCaller:
        # On the event loop: one indexed lookup by hash costs less than a thread-pool hop.
        tok = tokens.authenticate(s, credentials.credentials if credentials else None)
        if tok is None:
            raise HTTPException(401, "a valid API token is required (Authorization: Bearer "
                                "cwn_…)", headers={"WWW-Authenticate": "Bearer"})
        if scope and scope not in (tok.scopes or []):
            raise HTTPException(403, f"this token lacks the {scope!r} scope")
        return tok
    return check


def require_partner(caller: ApiCaller) -> str:
    if not caller.partner_id:
        raise HTTPException(403, "this endpoint is for partner tokens")
    return caller.partner_id


def require_org(caller: ApiCaller) -> str:
    if not caller.org_id:
        raise HTTPException(403, "this endpoint is for organisation tokens")
    return caller.org_id


Reader = Annotated[ApiCaller, Depends(api_caller("read"))]
Writer = Annotated[ApiCaller, Depends(api_caller("write"))]
Submitter = Annotated[ApiCaller, Depends(api_caller("submit"))]
AnyToken = Annotated[ApiCaller, Depends(api_caller(""))]
