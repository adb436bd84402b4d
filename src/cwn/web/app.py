"""The portal and REST API application (`cwn serve`).

One FastAPI app: server-rendered pages (Jinja2 + htmx) for people, `/api/v1` for
machines. Errors never leave as a bare 500: refused operations and bad requests become
4xx with a message in the asker's terms (JSON under `/api`, a page elsewhere).
"""

from __future__ import annotations

import html
import logging
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cwn.access.errors import AccessError
from cwn.access.secrets import load_secret_key
from cwn.config import Settings
from cwn.web.deps import LoginRequired, csrf_guard, language
from cwn.wiring import Services, build

log = logging.getLogger("cwn.web")

STATIC = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"

_API_TAGS = [
    {"name": "me", "description": "Who the token belongs to."},
    {"name": "cases", "description": "The organisation's cases, notifications and events."},
    {"name": "assets", "description": "Assets and claims, and their verification."},
    {"name": "preferences", "description": "Contacts and notification preferences."},
    {"name": "submissions", "description": "Threat data handed in by sources."},
    {"name": "partners", "description": "Cases delivered to a partner, and its feedback."},
]


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _error(request: Request, status: int, key: str, detail: str,
           headers: dict[str, str] | None = None) -> Response:
    if _is_api(request):
        return JSONResponse({"error": key, "detail": detail}, status_code=status,
                            headers=headers)
    if request.headers.get("hx-request"):
        return HTMLResponse(f'<p class="error" role="alert">{html.escape(detail)}</p>',
                            status_code=status, headers=headers)
    from cwn.web.render import page

    return page(request, "error.html", None, status_code=status, status=status,
                detail=detail, lang=language(request))


_KEYS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large",
         415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        target = f"/login?next={quote(exc.next_url, safe='')}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(AccessError)
    async def access_error(request: Request, exc: AccessError) -> Response:
        detail = exc.message
        if not _is_api(request):
            from cwn.web.render import translate

            detail = translate(request, None, exc.message)
        return _error(request, exc.status, exc.key, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if not _is_api(request):
            from cwn.web.render import translate

            detail = translate(request, None, detail)
        return _error(request, exc.status_code, _KEYS.get(exc.status_code, "error"), detail,
                      getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, "invalid_request", _validation_message(exc))

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        # The last line of defence behind the request models: a value the database cannot
        # store (too long for its column on PostgreSQL, a NUL byte, out of range) is the
        # asker's to fix, not our failure.
        log.info("refused unstorable value on %s: %s", request.url.path, exc.orig)
        return _error(request, 422, "invalid_request",
                      "a value is too long or cannot be stored; shorten or correct it")

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> Response:
        return _error(request, 422, "invalid_request", "a number is out of range")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", incident, request.method,
                      request.url.path)
        return _error(request, 500, "internal_error",
                      f"something went wrong on our side (incident {incident})")


def _routers() -> tuple[list[APIRouter], list[APIRouter]]:
    from cwn.web.api import assets as api_assets
    from cwn.web.api import cases as api_cases
    from cwn.web.api import me as api_me
    from cwn.web.api import partner as api_partner
    from cwn.web.api import prefs as api_prefs
    from cwn.web.api import submit as api_submit
    from cwn.web.pages import (
        account,
        assets,
        auth,
        contacts,
        inbox,
        operator,
        partner,
        password,
    )

    pages = [auth.router, password.router, account.router, inbox.router, assets.router,
             contacts.router, operator.router, partner.router]
    apis = [api_me.router, api_cases.router, api_assets.router, api_prefs.router,
            api_submit.router, api_partner.router]
    return pages, apis


_PAGE_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
     b"script-src 'self'; frame-ancestors 'none'; form-action 'self'"),
]
_ALL_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class RefuseNul:
    """A NUL byte in the path or query is never meaningful and PostgreSQL cannot even
    compare text with one (psycopg raises, which would be a 500): refuse it up front."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and ("\x00" in str(scope.get("path", ""))
                                        or b"%00" in bytes(scope.get("query_string", b""))):
            body = b'{"error":"bad_request","detail":"the request contains a NUL byte"}'
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Plain ASGI (not BaseHTTPMiddleware, which costs every API request a task hop)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(_ALL_HEADERS)
        if not str(scope.get("path", "")).startswith("/api/"):
            extra += _PAGE_HEADERS

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(svc: Services) -> FastAPI:
    app = FastAPI(
        title="cwn API",
        version="1",
        description="REST API of the Cyberweerbaarheidsnetwerk notification platform: "
        "organisations read their cases, notifications and events, manage assets and "
        "preferences, and give feedback; sources submit threat data. Authenticate with "
        "`Authorization: Bearer <token>` (`cwn tokens create`).",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        openapi_tags=_API_TAGS,
    )
    app.state.svc = svc
    app.state.secret_key = load_secret_key(svc.settings.secret_key, svc.settings.home)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    pages, apis = _routers()
    # The API first: routes are matched in order, and machines poll the API far more often
    # than people open pages (no page lives under /api/v1, so the order decides nothing).
    for router in apis:
        app.include_router(router, prefix=API_PREFIX)
    for router in pages:
        app.include_router(router, dependencies=[Depends(csrf_guard)],
                           include_in_schema=False)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        from cwn.web.apidocs import docs_page

        return docs_page(request, app.openapi())

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"ok": True}

    app.add_middleware(RefuseNul)
    app.add_middleware(SecurityHeaders)
    _document_error_body(app)
    return app


_ERROR_BODY = {"title": "Error", "type": "object", "required": ["error", "detail"],
               "properties": {"error": {"type": "string", "title": "Error"},
                              "detail": {"type": "string", "title": "Detail"}}}


def _document_error_body(app: FastAPI) -> None:
    """FastAPI documents 422 as its own list-of-errors body; ours is `{error, detail}`
    (see `install_error_handlers`), so the published schema says so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate().get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = _ERROR_BODY
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """The factory `cwn serve` hands to the server (each worker builds its own services).

    Everything imported so far lives as long as the process: frozen out of the garbage
    collector, a full collection no longer walks it (measured: +25% requests/s on a bare
    route, and shorter pauses in the latency tail)."""
    import gc

    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from cwn.web.server import die_with_parent

    die_with_parent()
    settings = Settings()
    app = create_app(build(settings))
    app.add_middleware(ProxyHeadersMiddleware,
                       trusted_hosts=[h.strip() for h in
                                      settings.web_forwarded_allow_ips.split(",")])
    gc.collect()
    gc.freeze()
    return app
