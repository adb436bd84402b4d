"""The authorisation matrix: every route of the portal and the API, against every kind of
caller.

Two organisations, A (`acme`) and B (`globex`), each have real cases and notifications
(registry import, a Shadowserver report through the ingest pipeline, a notify run),
contacts, a claim, users and API tokens; there is also an operator, a partner with its
administrator and token, and a source token. Every route the app serves is listed in
`ROUTES` with who may use it; a route that is not listed fails the test, so a new route
is covered the day it is added. For each route, with path parameters taken from A's real
ids:

- anonymous callers are sent to the sign-in page (pages) or get 401 (API);
- B's administrator, B's tokens and B's users never read or change anything of A's: a
  request naming A's things gets 403 or 404 and shows none of A's data, a list shows only
  B's own things, and A's rows in the database are unchanged afterwards;
- organisation users cannot do administrators' actions, organisation members cannot open
  the operator console, the operator is no organisation member;
- partner and source tokens cannot read organisation data, organisation tokens cannot
  submit, and a read-only token cannot write;
- and, so that none of the refusals above passes by accident, A's own callers do get the
  pages (positive controls), and every refused form carried a valid CSRF token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import MetaData, Table, select

from authz_world import (
    API_ANY,
    API_ORG_KINDS,
    API_PARTNER,
    API_SUBMIT,
    API_WRITE,
    CASE_KEY,
    OPERATOR,
    ORG_ADMIN,
    ORG_KINDS,
    ORG_MEMBER,
    PAGE_KINDS,
    PARTNER,
    PUBLIC,
    ROUTES,
    SIGNED_IN,
    A,
    App,
    World,
    _app_routes,
    _call,
    _fill,
    _leaks,
    _refused,
    _to_login,
)

# -- A's rows, to prove nobody else changed them ---------------------------------------------

_VOLATILE_TABLES = {"web_sessions", "login_attempts", "audit_log"}
_VOLATILE_COLUMNS = {"last_used_at", "last_seen_at", "last_login_at", "totp_last_step",
                     "updated_at"}


def _a_rows(world: World) -> dict[str, list[str]]:
    """Every row that belongs to A (by org, case, contact, claim or user), as text."""
    md = MetaData()
    md.reflect(world.svc.engine)
    keys = {"org_id": {A}, "case_id": {world.a.case_id}, "contact_id": {world.a.contact_id},
            "claim_id": {world.a.claim_id}, "user_id": {world.a.user_id}}
    out: dict[str, list[str]] = {}
    with world.svc.engine.connect() as conn:
        for name, table in md.tables.items():
            if name in _VOLATILE_TABLES:
                continue
            out.update(_rows_of(conn, table, keys))
    return out


def _rows_of(conn: Any, table: Table, keys: dict[str, set[Any]]) -> dict[str, list[str]]:
    out = {}
    for col, values in keys.items():
        if col in table.c:
            rows = conn.execute(select(table).where(table.c[col].in_(values))).mappings()
            out[f"{table.name}.{col}"] = sorted(json.dumps(
                {k: str(v) for k, v in r.items() if k not in _VOLATILE_COLUMNS})
                for r in rows)
    return out


def test_every_route_is_classified(web_app: App) -> None:
    client, _ = web_app
    routes = _app_routes(client.app)
    missing = [r for r in routes if r not in ROUTES]
    assert not missing, ("routes without an authorisation rule (add them to ROUTES in "
                         f"{Path(__file__).name}): {missing}")
    gone = [r for r in ROUTES if r not in routes]
    assert not gone, f"ROUTES lists routes the app does not have: {gone}"


def test_nobody_reaches_what_is_not_theirs(world: World) -> None:
    routes = [r for r in _app_routes(world.anon.app) if r[0] != "MOUNT"]
    params = world.params()
    before = _a_rows(world)
    problems: list[str] = []

    def expect(ok: bool, what: str, method: str, path: str, r: httpx.Response) -> None:
        if not ok:
            problems.append(f"{method} {path} {what}: got {r.status_code} "
                            f"{r.headers.get('location', '')} {r.text[:200]!r}")

    for method, template in routes:
        rule = ROUTES[(method, template)]
        path = _fill(template, params)
        has_ids = "{" in template
        body = rule.body
        a = world.a
        b = world.b
        assert a.admin and a.user and b.admin and b.user
        if rule.kind == PUBLIC:
            r = _call(world, world.anon, method, path, body=body)
            expect(not _leaks(world, r, path), "(anonymous) shows A's data", method, path, r)
            continue
        if rule.kind in PAGE_KINDS | {CASE_KEY}:
            r = _call(world, world.anon, method, path, body=body)
            expect(_to_login(r) or (rule.kind == CASE_KEY and _refused(r)),
                   "(anonymous) is not sent to sign in", method, path, r)
            expect(not _leaks(world, r, path), "(anonymous) shows A's data", method, path, r)
        if rule.kind in (ORG_MEMBER, ORG_ADMIN):
            for who, c in (("operator", world.operator), ("partner admin", world.partner)):
                r = _call(world, c, method, path, body=body)
                expect(r.status_code == 403, f"({who}) is not refused", method, path, r)
        if rule.kind == ORG_ADMIN:
            r = _call(world, a.user, method, path, body=body)
            expect(r.status_code == 403, "(A's org user) may do an admin action",
                   method, path, r)
        if rule.kind == OPERATOR:
            for who, c in (("A's admin", a.admin), ("A's user", a.user),
                           ("partner admin", world.partner)):
                r = _call(world, c, method, path, body=body)
                expect(r.status_code == 403, f"({who}) opens the operator console",
                       method, path, r)
        if rule.kind in ORG_KINDS:
            if rule.kind == CASE_KEY:
                r = _call(world, world.anon, method, path, body=body,
                          query={"key": b.case_key})
                expect(_refused(r), "(B's case key) opens A's case", method, path, r)
                expect(not _leaks(world, r, path), "(B's case key) shows A's data",
                       method, path, r)
            for who, c in (("B's admin", b.admin), ("B's user", b.user)):
                b_body = rule.b_body(world) if rule.b_body else body
                r = _call(world, c, method, path, body=b_body)
                if has_ids or rule.b_body:
                    expect(r.status_code in rule.b_refusals, f"({who}) reaches A's", method,
                           path, r)
                elif method == "GET" and not (rule.kind == ORG_ADMIN and who == "B's user"):
                    expect(r.status_code == 200, f"({who}) cannot open its own", method,
                           path, r)
                expect(not _leaks(world, r, path),
                       f"({who}) sees A's data {_leaks(world, r, path)}", method, path, r)
        if rule.kind == PARTNER:
            for who, c in (("A's admin", a.admin), ("A's user", a.user),
                           ("operator", world.operator)):
                r = _call(world, c, method, path, body=body)
                expect(r.status_code == 403, f"({who}) opens the partner pages", method,
                       path, r)
            r = _call(world, world.partner, method, path, body=body)
            expect(_refused(r) if has_ids else r.status_code == 200,
                   "(partner admin) reaches a case not delivered to it", method, path, r)
            expect(not _leaks(world, r, path), "(partner admin) sees A's data", method, path,
                   r)
        if rule.kind == API_PARTNER:
            for who, tok in (("A's token", a.token), ("source token", world.source_token)):
                r = _call(world, world.anon, method, path, body=body, token=tok)
                expect(r.status_code == 403, f"({who}) uses the partner API", method, path, r)
            r = _call(world, world.anon, method, path, body=body, token=world.partner_token)
            expect(_refused(r) if has_ids else r.status_code == 200,
                   "(partner token) reaches a case not delivered to it", method, path, r)
            expect(not _leaks(world, r, path), "(partner token) sees A's data", method, path,
                   r)
        if rule.kind in API_ORG_KINDS | {API_ANY, API_SUBMIT, API_PARTNER}:
            r = _call(world, world.anon, method, path, body=body)
            expect(r.status_code == 401, "(no token) is not 401", method, path, r)
        if rule.kind in API_ORG_KINDS:
            for who, tok in (("partner token", world.partner_token),
                             ("source token", world.source_token)):
                r = _call(world, world.anon, method, path, body=body, token=tok)
                expect(r.status_code == 403, f"({who}) reads organisation data",
                       method, path, r)
            if rule.kind == API_WRITE:
                r = _call(world, world.anon, method, path, body=body, token=a.read_token)
                expect(r.status_code == 403, "(A's read-only token) writes", method, path, r)
            r = _call(world, world.anon, method, path, body=body, token=b.token)
            if has_ids:
                expect(_refused(r), "(B's token) reaches A's", method, path, r)
            elif method == "GET":
                expect(r.status_code == 200, "(B's token) cannot read its own", method,
                       path, r)
            expect(not _leaks(world, r, path),
                   f"(B's token) sees A's data {_leaks(world, r, path)}", method, path, r)
        if rule.kind == API_SUBMIT:
            for who, tok in (("A's token", a.token), ("partner token", world.partner_token)):
                r = _call(world, world.anon, method, path, body=body, token=tok)
                expect(r.status_code == 403, f"({who}) submits", method, path, r)

    after = _a_rows(world)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        problems.append(f"A's data was changed by others' requests: {changed}")

    # Positive controls: A's own callers open what the refusals above kept from others.
    for method, template in routes:
        rule = ROUTES[(method, template)]
        if method != "GET":
            continue
        path = _fill(template, params)
        a = world.a
        r = None
        if rule.kind in (ORG_MEMBER, SIGNED_IN):
            r = _call(world, a.user, method, path)  # type: ignore[arg-type]
        elif rule.kind == ORG_ADMIN:
            r = _call(world, a.admin, method, path)  # type: ignore[arg-type]
        elif rule.kind == OPERATOR:
            r = _call(world, world.operator, method, path)
        elif rule.kind == CASE_KEY:
            r = _call(world, world.anon, method, path, query={"key": a.case_key})
            expect(r.status_code == 200, "(A's case key) does not open A's case", method,
                   path, r)
            r = _call(world, a.user, method, path)  # type: ignore[arg-type]
        elif rule.kind in API_ORG_KINDS | {API_ANY}:
            r = _call(world, world.anon, method, path, token=a.read_token)
        if r is not None:
            expect(r.status_code == 200, "(its rightful caller) is refused", method, path, r)

    assert not problems, f"{len(problems)} authorisation problems:\n" + "\n".join(problems)
