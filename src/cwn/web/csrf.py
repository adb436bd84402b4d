"""CSRF protection for the portal's forms: a signed double-submit token.

The browser holds a random `cwn_csrf` cookie (HttpOnly, SameSite=Lax); every form carries
HMAC(installation key, cookie). A cross-site page can neither read the cookie nor compute
the HMAC, and the cookie is replaced at sign-in so a token from before does not carry over.
htmx sends the token as the `X-CSRF-Token` header (set once in base.html).
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from cwn.access.secrets import random_token

COOKIE = "cwn_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


def seed(request: Request) -> str:
    """This browser's cookie value, or a new one that `render` will set."""
    existing = getattr(request.state, "csrf_seed", None)
    if existing:
        return str(existing)
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 128:
        value = random_token(24)
        request.state.csrf_new = True
    request.state.csrf_seed = value
    return value


def token_for(key: bytes, seed_value: str) -> str:
    return hmac.new(key, b"csrf:" + seed_value.encode("utf-8"), hashlib.sha256).hexdigest()


async def valid(request: Request, key: bytes) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    sent = request.headers.get(HEADER)
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(FIELD)
            sent = value if isinstance(value, str) else None
    return bool(sent) and hmac.compare_digest(str(sent), token_for(key, cookie))
