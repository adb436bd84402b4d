"""Malformed forms never make a page answer 500.

Every form the portal accepts (every page route that takes a POST, from the authorisation
matrix's `ROUTES`), posted by its rightful caller with a valid CSRF token, with each field
in turn empty, huge, of the wrong kind, or full of odd Unicode, with a field missing and
with an unknown field added. Each answer must be a page or a 4xx (a redirect or a form
that says what is wrong), never a server error. The API has schemathesis for the same.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from authz_world import (
    CASE_KEY,
    OPERATOR,
    ORG_ADMIN,
    ORG_MEMBER,
    PARTNER,
    PUBLIC,
    ROUTES,
    SIGNED_IN,
    World,
    _app_routes,
    _call,
    _fill,
)

ODD_VALUES = ["", " ", "x" * 5000, "-1", "9" * 40, "1e309", "NaN", "[]", "{\"a\": 1}",
              "\u202e\U0001f600<script>alert(1)</script>", "\u00e9\u0301" * 50,
              "../../../etc/passwd", "' OR 1=1 --", "2026-13-45T99:99", "0x10", "true"]
# Sign-out ends the session the rest of the run needs; it takes no fields anyway.
SKIP = {("POST", "/logout")}


def _caller(world: World, kind: str) -> TestClient | None:
    a = world.a
    return {PUBLIC: world.anon, SIGNED_IN: a.user, ORG_MEMBER: a.user, ORG_ADMIN: a.admin,
            CASE_KEY: a.user, OPERATOR: world.operator, PARTNER: world.partner}.get(kind)


def _variants(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}, {**body, "unexpected_field": "x" * 300}]
    for name in body:
        out.append({k: v for k, v in body.items() if k != name})
        out.extend({**body, name: odd} for odd in ODD_VALUES)
    return out


def test_no_form_input_makes_a_page_fail(world: World) -> None:
    params = world.params()
    posted = 0
    for method, template in _app_routes(world.anon.app):
        if method != "POST" or template.startswith("/api/") or (method, template) in SKIP:
            continue
        rule = ROUTES[(method, template)]
        client = _caller(world, rule.kind)
        assert client is not None, f"no rightful caller for {rule.kind}"
        path = _fill(template, params)
        for body in _variants(dict(rule.body or {})):
            _call(world, client, method, path, body=body)  # asserts < 500 and CSRF passed
            posted += 1
    assert posted > 300  # the forms were really exercised
