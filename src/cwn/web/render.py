"""Server-side rendering: one Jinja environment, and the context every page gets
(translation in the viewer's language, the CSRF field, the viewer, date formatting)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from cwn.web import csrf
from cwn.web.deps import Viewer, language
from cwn.web.i18n import gettext, ngettext

TEMPLATES = Path(__file__).parent / "templates"

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                  extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)


def fmt_dt(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def _context(request: Request, viewer: Viewer | None, lang: str | None) -> dict[str, Any]:
    lang = lang or (viewer.language if viewer else language(request))
    token = csrf.token_for(request.app.state.secret_key, csrf.seed(request))
    translate: Callable[[str], str] = partial(gettext, lang)
    plural: Callable[[str, str, int], str] = partial(ngettext, lang)
    return {
        "request": request, "viewer": viewer, "lang": lang, "_": translate,
        "gettext": translate, "ngettext": plural, "csrf_token": token, "fmt_dt": fmt_dt,
        "csrf_field": lambda: Markup(f'<input type="hidden" name="{csrf.FIELD}" '
                                     f'value="{token}">'),
        "settings": request.app.state.svc.settings,
    }


def _finish(request: Request, response: HTMLResponse) -> HTMLResponse:
    secure = request.app.state.svc.settings.secure_cookies
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(csrf.COOKIE, request.state.csrf_seed, httponly=True,
                            samesite="lax", secure=secure, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def page(request: Request, template: str, viewer: Viewer | None, *, status_code: int = 200,
         lang: str | None = None, **ctx: Any) -> HTMLResponse:
    html = env.get_template(template).render(**_context(request, viewer, lang), **ctx)
    return _finish(request, HTMLResponse(html, status_code=status_code))


def fragment(request: Request, template: str, viewer: Viewer | None, *,
             status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """An htmx partial: the same context, no layout."""
    return page(request, template, viewer, status_code=status_code, **ctx)


def translate(request: Request, viewer: Viewer | None, message: str) -> str:
    return gettext(viewer.language if viewer else language(request), message)
