"""The world of the authorisation matrix, shared with the form fuzzing: who may use which
route (`ROUTES`), two organisations with real data beside every other kind of caller
(the `world` fixture), and one way to call a route with the right CSRF or API token."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Mount

from cwn.access.secrets import load_secret_key
from cwn.db.models import Contact
from cwn.db.models_notify import Notification
from cwn.db.models_partners import Partner
from cwn.feedback.casekey import case_key
from cwn.registry import claims as registry_claims
from cwn.wiring import Services
from inbox_support import build_world
from web_support import api_token, bearer, csrf, login, make_user

App = tuple[TestClient, Services]

A, B = "acme", "globex"

# -- who may use which route ----------------------------------------------------------------

PUBLIC = "public"          # anyone; shows nothing of an organisation without a secret
CASE_KEY = "case_key"      # the case's members, or anyone holding the case's key
SIGNED_IN = "signed_in"    # any signed-in person, about their own account
ORG_MEMBER = "org_member"  # organisation admins and users, their own organisation only
ORG_ADMIN = "org_admin"    # organisation admins, their own organisation only
OPERATOR = "operator"      # the CWN desk
API_ANY = "api_any"        # any valid token, about itself
API_READ = "api_read"      # organisation tokens with the read scope, own organisation
API_WRITE = "api_write"    # organisation tokens with the write scope, own organisation
API_SUBMIT = "api_submit"  # source tokens (submit scope)
PARTNER = "partner"        # partner administrators, cases delivered to their partner only
API_PARTNER = "api_partner"  # partner tokens, cases delivered to their partner only


@dataclass(frozen=True)
class Rule:
    kind: str
    body: dict[str, Any] | None = None  # a valid form (pages) or JSON body (API)
    # B's body when it names A's things (e.g. A's contact in a form field): refused.
    b_body: Callable[[World], dict[str, Any]] | None = None
    b_refusals: tuple[int, ...] = (403, 404)  # what B may get for naming A's things


_CONTACT_FORM = {"email": "new-contact@example.org", "role": "security", "language": "en",
                 "priority": "100", "enabled": "1"}

ROUTES: dict[tuple[str, str], Rule] = {
    # infrastructure and documentation
    ("GET", "/openapi.json"): Rule(PUBLIC),
    ("GET", "/api/docs"): Rule(PUBLIC),
    ("GET", "/healthz"): Rule(PUBLIC),
    ("MOUNT", "/static"): Rule(PUBLIC),
    # signing in and out, invitations, sign-up, language
    ("GET", "/"): Rule(PUBLIC),
    ("GET", "/login"): Rule(PUBLIC),
    ("POST", "/login"): Rule(PUBLIC, {"email": "nobody@example.org", "password": "x" * 12}),
    ("GET", "/login/totp"): Rule(PUBLIC),
    ("POST", "/login/totp"): Rule(PUBLIC, {"code": "123456"}),
    ("GET", "/login/totp-setup"): Rule(PUBLIC),
    ("POST", "/login/totp-setup"): Rule(PUBLIC, {"code": "123456"}),
    ("POST", "/logout"): Rule(PUBLIC),
    ("GET", "/invite/{token}"): Rule(PUBLIC),
    ("POST", "/invite/{token}"): Rule(PUBLIC, {"password": "x" * 16, "password2": "x" * 16}),
    ("GET", "/password/forgot"): Rule(PUBLIC),
    ("POST", "/password/forgot"): Rule(PUBLIC, {"email": "nobody@example.org"}),
    ("GET", "/password/reset/{token}"): Rule(PUBLIC),
    ("POST", "/password/reset/{token}"): Rule(PUBLIC, {"password": "x" * 16,
                                                       "password2": "x" * 16}),
    ("GET", "/signup"): Rule(PUBLIC),
    ("POST", "/signup"): Rule(PUBLIC, {"name": "N", "email": "n@example.org",
                                       "organisation": "N", "password": "x" * 16}),
    ("GET", "/lang/{code}"): Rule(PUBLIC),
    ("GET", "/claims/confirm/{token}"): Rule(PUBLIC),
    ("POST", "/claims/confirm/{token}"): Rule(PUBLIC),
    ("GET", "/contacts/confirm/{token}"): Rule(PUBLIC),
    ("POST", "/contacts/confirm/{token}"): Rule(PUBLIC),
    ("GET", "/case"): Rule(PUBLIC),
    # own account
    ("GET", "/account"): Rule(SIGNED_IN),
    ("POST", "/account/language"): Rule(SIGNED_IN, {"language": "en"}),
    ("POST", "/account/password"): Rule(SIGNED_IN, {"current": "x" * 16, "password": "y" * 16,
                                                     "password2": "y" * 16}),
    ("POST", "/account/sessions/end-others"): Rule(SIGNED_IN),
    ("POST", "/account/tokens"): Rule(ORG_ADMIN, {"name": "matrix"}),
    ("POST", "/account/tokens/{token_id}/revoke"): Rule(ORG_ADMIN),
    # the organisation's cases
    ("GET", "/inbox"): Rule(ORG_MEMBER),
    ("GET", "/notifications"): Rule(ORG_MEMBER),
    ("GET", "/case/{case_id}"): Rule(CASE_KEY),
    ("POST", "/case/{case_id}/feedback"): Rule(CASE_KEY, {"kind": "fixed", "text": "done"}),
    # assets and claims
    ("GET", "/assets"): Rule(ORG_MEMBER),
    ("POST", "/assets/claims"): Rule(ORG_ADMIN, {"type": "domain",
                                                 "value": "matrix-b.nl"}),
    ("GET", "/assets/claims/{claim_id}"): Rule(ORG_MEMBER),
    ("POST", "/assets/claims/{claim_id}/check/dns"): Rule(ORG_ADMIN),
    ("POST", "/assets/claims/{claim_id}/check/securitytxt"): Rule(ORG_ADMIN),
    ("POST", "/assets/claims/{claim_id}/rir"): Rule(ORG_ADMIN),
    ("POST", "/assets/claims/{claim_id}/review"): Rule(ORG_ADMIN),
    ("POST", "/assets/claims/{claim_id}/withdraw"): Rule(ORG_ADMIN),
    # contacts, preferences, users
    ("GET", "/contacts"): Rule(ORG_MEMBER),
    ("POST", "/contacts"): Rule(ORG_ADMIN, _CONTACT_FORM),
    ("GET", "/contacts/{contact_id}/edit"): Rule(ORG_ADMIN),
    ("POST", "/contacts/{contact_id}/edit"): Rule(ORG_ADMIN, _CONTACT_FORM),
    ("POST", "/contacts/{contact_id}/remove"): Rule(ORG_ADMIN),
    ("POST", "/contacts/{contact_id}/confirm"): Rule(ORG_ADMIN),
    ("GET", "/preferences"): Rule(ORG_MEMBER),
    ("POST", "/preferences"): Rule(ORG_ADMIN, {"scope": "org", "mode": "digest"},
                                   b_body=lambda w: {"scope": str(w.a.contact_id),
                                                     "mode": "digest"}),
    ("GET", "/users"): Rule(ORG_ADMIN),
    ("POST", "/users/invite"): Rule(ORG_ADMIN, {"email": "matrix-invite@example.org",
                                                "role": "org_user"},
                                    b_body=lambda w: {"email": w.a.invited_email,
                                                      "role": "org_admin"},
                                    b_refusals=(403, 404, 409)),
    ("POST", "/users/{user_id}/disable"): Rule(ORG_ADMIN),
    ("POST", "/users/{user_id}/enable"): Rule(ORG_ADMIN),
    # the operator console
    ("GET", "/operator"): Rule(OPERATOR),
    ("GET", "/operator/reports"): Rule(OPERATOR),
    ("GET", "/operator/quarantine"): Rule(OPERATOR),
    ("GET", "/operator/unattributed"): Rule(OPERATOR),
    ("GET", "/operator/partners"): Rule(OPERATOR),
    ("GET", "/operator/partners/{partner_id}"): Rule(OPERATOR),
    ("GET", "/operator/notifications"): Rule(OPERATOR),
    ("GET", "/operator/audit"): Rule(OPERATOR),
    ("GET", "/operator/signups"): Rule(OPERATOR),
    ("POST", "/operator/signups/{user_id}/approve"): Rule(OPERATOR, {"target": "new"}),
    ("POST", "/operator/signups/{user_id}/reject"): Rule(OPERATOR),
    ("GET", "/operator/users"): Rule(OPERATOR),
    ("POST", "/operator/users/{user_id}/reset-totp"): Rule(OPERATOR),
    ("POST", "/operator/users/{user_id}/status"): Rule(OPERATOR, {"status": "disabled"}),
    ("POST", "/operator/users/invite"): Rule(OPERATOR, {"email": "op-invite@example.org",
                                                        "role": "org_user", "org_id": A}),
    ("GET", "/operator/claims"): Rule(OPERATOR),
    ("POST", "/operator/claims/{claim_id}/approve"): Rule(OPERATOR, {"note": "ok"}),
    ("POST", "/operator/claims/{claim_id}/reject"): Rule(OPERATOR, {"reason": "no"}),
    # partners (intermediaries): the cases delivered to them
    ("GET", "/partner"): Rule(PARTNER),
    ("POST", "/partner/cases/{case_id}/feedback"): Rule(PARTNER, {"status": "fixed"}),
    ("GET", "/api/v1/partner/cases"): Rule(API_PARTNER),
    ("POST", "/api/v1/partner/cases/{case_id}/feedback"): Rule(API_PARTNER,
                                                               {"status": "fixed"}),
    # REST API
    ("GET", "/api/v1/me"): Rule(API_ANY),
    ("GET", "/api/v1/cases"): Rule(API_READ),
    ("GET", "/api/v1/cases/{case_id}"): Rule(API_READ),
    ("GET", "/api/v1/cases/{case_id}/events"): Rule(API_READ),
    ("POST", "/api/v1/cases/{case_id}/feedback"): Rule(API_WRITE, {"kind": "fixed"}),
    ("GET", "/api/v1/notifications"): Rule(API_READ),
    ("GET", "/api/v1/notifications/{notification_id}"): Rule(API_READ),
    ("GET", "/api/v1/events"): Rule(API_READ),
    ("GET", "/api/v1/assets"): Rule(API_READ),
    ("GET", "/api/v1/assets/claims"): Rule(API_READ),
    ("POST", "/api/v1/assets/claims"): Rule(API_WRITE, {"type": "domain",
                                                        "value": "matrix-api.nl"}),
    ("GET", "/api/v1/assets/claims/{claim_id}"): Rule(API_READ),
    ("POST", "/api/v1/assets/claims/{claim_id}/verify"): Rule(API_WRITE, {"method": "dns"}),
    ("DELETE", "/api/v1/assets/claims/{claim_id}"): Rule(API_WRITE),
    ("GET", "/api/v1/preferences"): Rule(API_READ),
    ("PUT", "/api/v1/preferences"): Rule(API_WRITE, {"mode": "digest"}),
    ("GET", "/api/v1/contacts"): Rule(API_READ),
    ("GET", "/api/v1/contacts/{contact_id}"): Rule(API_READ),
    ("POST", "/api/v1/contacts"): Rule(API_WRITE, {"email": "api-contact@example.org"}),
    ("PATCH", "/api/v1/contacts/{contact_id}"): Rule(API_WRITE, {"priority": 5}),
    ("DELETE", "/api/v1/contacts/{contact_id}"): Rule(API_WRITE),
    ("POST", "/api/v1/submissions"): Rule(API_SUBMIT),
    ("GET", "/api/v1/submissions/{sha256}"): Rule(API_SUBMIT),
}

PAGE_KINDS = {SIGNED_IN, ORG_MEMBER, ORG_ADMIN, OPERATOR, PARTNER}
ORG_KINDS = {ORG_MEMBER, ORG_ADMIN, CASE_KEY}
API_ORG_KINDS = {API_READ, API_WRITE}

# -- the world ------------------------------------------------------------------------------


@dataclass
class Org:
    id: str
    admin_email: str
    user_email: str
    invited_email: str
    case_id: str = ""
    case_key: str = ""
    claim_id: str = ""
    claim_value: str = ""
    contact_id: int = 0
    contact_email: str = ""
    notification_id: str = ""
    user_id: str = ""  # an org_user: the target of user management
    token_id: str = ""
    admin: TestClient | None = None
    user: TestClient | None = None
    token: str = ""       # read + write
    read_token: str = ""  # read only
    markers: set[str] = field(default_factory=set)  # strings only A's data contains


@dataclass
class World:
    svc: Services
    a: Org
    b: Org
    anon: TestClient
    operator: TestClient
    partner: TestClient
    partner_token: str
    source_token: str
    csrf: dict[int, str] = field(default_factory=dict)  # id(client) -> token

    def params(self) -> dict[str, str]:
        """Path parameters: A's real ids (tokens of links are unknown ones)."""
        return {"case_id": self.a.case_id, "claim_id": self.a.claim_id,
                "contact_id": str(self.a.contact_id), "user_id": self.a.user_id,
                "notification_id": self.a.notification_id, "token_id": self.a.token_id,
                "partner_id": "matrix-isp", "code": "nl", "token": "x" * 32,
                "sha256": "0" * 64}


def _org(svc: Services, org_id: str, make: Callable[[], TestClient]) -> Org:
    o = Org(org_id, f"admin@{org_id}.test", f"user@{org_id}.test",
            f"invited@{org_id}.test")
    _, seed = make_user(svc, o.admin_email, "org_admin", org_id=org_id)
    o.user_id, _ = make_user(svc, o.user_email, "org_user", org_id=org_id, totp=False)
    o.admin, o.user = make(), make()
    login(o.admin, o.admin_email, seed=seed)
    login(o.user, o.user_email)
    from cwn.access import users

    with svc.sessions() as s:
        users.invite(s, svc.settings, email=o.invited_email, role="org_user", org_id=org_id,
                     actor="test")
        o.claim_value = f"claimed-by-{org_id}.nl"
        c = registry_claims.claim(s, org_id=org_id, type="domain", value=o.claim_value,
                                  actor="test")
        o.claim_id = c.id
        contact = s.scalars(select(Contact).where(Contact.org_id == org_id)
                            .order_by(Contact.id)).first()
        assert contact is not None
        o.contact_id, o.contact_email = contact.id, contact.email
        n = s.scalars(select(Notification).where(Notification.org_id == org_id)).first()
        assert n is not None
        o.notification_id = n.id
        s.commit()
    o.token = api_token(svc, org_id=org_id, scopes=["read", "write"])
    o.read_token = api_token(svc, org_id=org_id, scopes=["read"])
    o.token_id = o.token.split("_")[1]
    return o


@pytest.fixture
def world(web_app: App, client_factory: Callable[[], TestClient], tmp_path: Path) -> World:
    client, svc = web_app
    w = build_world(svc, tmp_path / "world", public=False)
    secret = load_secret_key(svc.settings.secret_key, svc.settings.home)
    a, b = _org(svc, A, client_factory), _org(svc, B, client_factory)
    for o in (a, b):
        o.case_id = w.case(o.id)
        o.case_key = case_key(secret, o.case_id)
    with svc.sessions() as s:
        s.add(Partner(id="matrix-isp", name="Matrix ISP", type="isp"))
        s.commit()
    _, op_seed = make_user(svc, "op@cwn.test", "operator")
    _, p_seed = make_user(svc, "admin@isp.test", "partner_admin", partner_id="matrix-isp")
    operator, partner = client_factory(), client_factory()
    login(operator, "op@cwn.test", seed=op_seed)
    login(partner, "admin@isp.test", seed=p_seed)
    world = World(svc, a, b, client, operator, partner,
                  api_token(svc, partner_id="matrix-isp", scopes=["read", "write"]),
                  api_token(svc, source="matrix-source"))
    for c in (client, operator, partner, a.admin, a.user, b.admin, b.user):
        assert c is not None
        world.csrf[id(c)] = csrf(c, "/login" if c is client else "/account")
    a.markers = {a.case_id, a.claim_id, a.claim_value, a.contact_email, a.notification_id,
                 a.admin_email, a.user_email, a.invited_email, a.user_id, a.token_id,
                 "Acme B.V.", "10.1.0.1", "10.1.0.2"}
    return world


# -- calling --------------------------------------------------------------------------------

CSRF_REFUSAL = "did not come from this site"


def _call(world: World, client: TestClient, method: str, path: str, *,
          body: dict[str, Any] | None = None, token: str | None = None,
          query: dict[str, str] | None = None) -> httpx.Response:
    if path.startswith("/api/"):
        headers = bearer(token) if token else {}
        kwargs: dict[str, Any] = {"headers": headers, "params": query}
        if body is not None:
            kwargs["json"] = body
        r = client.request(method, path, **kwargs)
    else:
        data = dict(body or {})
        if method != "GET":
            data["csrf_token"] = world.csrf[id(client)]
        r = client.request(method, path, params=query,
                           data=data if method != "GET" else None)
    assert r.status_code < 500, f"{method} {path}: {r.status_code}\n{r.text[:2000]}"
    assert CSRF_REFUSAL not in r.text, f"{method} {path}: the test's CSRF token was refused"
    return r


def _leaks(world: World, r: httpx.Response, path: str) -> set[str]:
    """A's data in an answer (what the caller put in the URL or the form itself does not
    count: a form shows back what was typed)."""
    text = r.text
    sent = path + " " + unquote_plus(r.request.content.decode("utf-8", "replace"))
    return {m for m in world.a.markers if m and m in text and m not in sent}


def _refused(r: httpx.Response) -> bool:
    return r.status_code in (403, 404)


def _to_login(r: httpx.Response) -> bool:
    return r.status_code == 303 and r.headers.get("location", "").startswith("/login")




def _app_routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for rc in iter_route_contexts(app.routes):
        if isinstance(rc.original_route, Mount):
            found.append(("MOUNT", rc.original_route.path))
            continue
        for method in sorted((rc.methods or set()) - {"HEAD"}):
            found.append((method, rc.path))
    return found


def _fill(path: str, params: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[0]
        assert name in params, f"no value for path parameter {name!r} of {path}: add it to " \
            "World.params"
        return params[name]
    return re.sub(r"\{([^}]+)\}", one, path)


