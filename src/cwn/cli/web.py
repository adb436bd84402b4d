"""`cwn serve`, `cwn users …` and `cwn tokens …`: running the portal and managing who may
use it from the command line (the first operator is invited here)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cwn.access import tokens, users
from cwn.access.errors import AccessError
from cwn.cli.console import console, fail, services
from cwn.db.models_web import ROLES, User

users_app = typer.Typer(help="Portal accounts: invite, approve sign-ups, reset TOTP.",
                        no_args_is_help=True)
tokens_app = typer.Typer(help="REST API tokens: create, list, revoke.", no_args_is_help=True)

ACTOR = "cli"


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (CWN_WEB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (CWN_WEB_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes "
                                                "(CWN_WEB_WORKERS).")] = None,
) -> None:
    """Run the portal and the REST API (Granian, one process per worker)."""
    import os

    from cwn.web.server import PortInUse, ServeOptions
    from cwn.web.server import serve as run_server

    svc = services()  # creates/upgrades the database once, before the workers start
    settings = svc.settings
    svc.close()
    host = host or settings.web_host
    port = port or settings.web_port
    workers = workers or settings.web_workers
    os.environ.setdefault("CWN_HOME", str(settings.home))
    if settings.database_url:
        os.environ.setdefault("CWN_DATABASE_URL", settings.database_url)
    console.print(f"cwn portal on http://{host}:{port}/ (API docs /api/docs), "
                  f"{workers} worker(s)")
    try:
        run_server(ServeOptions(host=host, port=port, workers=workers))
    except PortInUse as exc:
        fail(f"cannot serve: {exc.strerror}")


def _fail(exc: AccessError) -> None:
    fail(exc.message)


@users_app.command("invite")
def users_invite(
    email: Annotated[str, typer.Argument(help="The person's e-mail address.")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "org_admin",
    org: Annotated[str | None, typer.Option("--org", help="Organisation id.")] = None,
    partner: Annotated[str | None, typer.Option("--partner", help="Partner id.")] = None,
    name: Annotated[str | None, typer.Option(help="Their name.")] = None,
    mail: Annotated[bool, typer.Option(help="Mail the link (else only print it).")] = True,
) -> None:
    """Invite a person: prints the one-time sign-up link and mails it (NL and EN)."""
    from cwn.web.invitations import send_invitation

    svc = services()
    try:
        with svc.sessions() as s:
            try:
                user, raw = users.invite(s, svc.settings, email=email, role=role, org_id=org,
                                         partner_id=partner, name=name, actor=ACTOR)
            except AccessError as exc:
                _fail(exc)
            s.commit()
            link = f"{svc.settings.public_url.rstrip('/')}/invite/{raw}"
            if mail:
                send_invitation(svc.settings, user, link)
    finally:
        svc.close()
    console.print(f"invited {user.email} as {user.role}"
                  + (f" of {user.org_id}" if user.org_id else "")
                  + (f" of partner {user.partner_id}" if user.partner_id else ""))
    console.print(f"link (valid {svc.settings.invitation_days} days): {link}")


@users_app.command("list")
def users_list(
    status: Annotated[str | None, typer.Option(help="invited|pending|active|disabled")] = None,
) -> None:
    """Every account, or those in one state (pending = waiting for approval)."""
    from sqlalchemy import select

    svc = services()
    try:
        with svc.sessions() as s:
            q = select(User).order_by(User.created_at)
            if status:
                q = q.where(User.status == status)
            rows = list(s.scalars(q))
    finally:
        svc.close()
    t = Table(title=f"Users ({len(rows)})", title_justify="left")
    for col in ("id", "email", "role", "organisation / partner", "status", "TOTP",
                "last sign-in"):
        t.add_column(col)
    for u in rows:
        t.add_row(u.id[:8], u.email, u.role, u.org_id or u.partner_id or "-", u.status,
                  "on" if u.totp_enabled else "off",
                  u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "-")
    console.print(t)


def _user(s: object, ident: str) -> User:
    from sqlalchemy import or_, select
    from sqlalchemy.orm import Session

    assert isinstance(s, Session)
    found = list(s.scalars(select(User).where(or_(User.email == ident.strip().lower(),
                                                   User.id.startswith(ident)))))
    if len(found) != 1:
        fail(f"no single user matches {ident!r}")
    return found[0]


@users_app.command("approve")
def users_approve(
    user: Annotated[str, typer.Argument(help="E-mail address or id of the sign-up.")],
    org: Annotated[str | None, typer.Option("--org", help="Link to this existing "
                                            "organisation (default: create it from the "
                                            "sign-up).")] = None,
) -> None:
    """Approve a self-sign-up."""
    svc = services()
    try:
        with svc.sessions() as s:
            u = _user(s, user)
            try:
                users.approve(s, u.id, ACTOR, org_id=org)
            except AccessError as exc:
                _fail(exc)
            s.commit()
            console.print(f"approved {u.email} for {u.org_id}")
            from cwn.db.models import Organization
            from cwn.deliver.mailer import MailError
            from cwn.web.invitations import send_approval

            found = s.get(Organization, u.org_id) if u.org_id else None
            try:
                send_approval(svc.settings, u, found.name if found else str(u.org_id))
            except MailError as exc:
                console.print(f"[yellow]the approval mail could not be sent: {exc}[/]")
    finally:
        svc.close()


@users_app.command("reset-totp")
def users_reset_totp(user: Annotated[str, typer.Argument(help="E-mail address or id.")]
                     ) -> None:
    """Forget a user's second factor (lost phone); they set up a new one at next sign-in."""
    from cwn.access import sessions

    svc = services()
    try:
        with svc.sessions() as s:
            u = _user(s, user)
            users.reset_totp(s, u, ACTOR)
            sessions.end_all(s, u.id)
            s.commit()
            console.print(f"second factor of {u.email} reset; their sessions ended")
    finally:
        svc.close()


@users_app.command("disable")
def users_disable(user: Annotated[str, typer.Argument(help="E-mail address or id.")]) -> None:
    """Disable an account and end its sessions."""
    from cwn.access import sessions

    svc = services()
    try:
        with svc.sessions() as s:
            u = _user(s, user)
            users.set_status(s, u, "disabled", ACTOR)
            sessions.end_all(s, u.id)
            s.commit()
            console.print(f"{u.email} disabled")
    finally:
        svc.close()


@tokens_app.command("create")
def tokens_create(
    org: Annotated[str | None, typer.Option("--org", help="For this organisation.")] = None,
    partner: Annotated[str | None, typer.Option("--partner", help="For this partner.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="For this source (feed "
                                               "name); scope submit.")] = None,
    scope: Annotated[list[str] | None, typer.Option("--scope", help="read, write, submit "
                                                    "(repeatable).")] = None,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days.")] = None,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    svc = services()
    try:
        with svc.sessions() as s:
            try:
                tok, raw = tokens.create(s, actor=ACTOR, org_id=org, partner_id=partner,
                                         source=source, scopes=scope, name=name,
                                         expires_days=expires_days)
            except AccessError as exc:
                _fail(exc)
            s.commit()
    finally:
        svc.close()
    console.print(f"token {tok.id} ({', '.join(tok.scopes)}) for "
                  f"{tok.org_id or tok.partner_id or tok.source}; shown once:")
    print(raw)


@tokens_app.command("list")
def tokens_list(org: Annotated[str | None, typer.Option("--org")] = None) -> None:
    """API tokens (never their secret)."""
    svc = services()
    try:
        with svc.sessions() as s:
            rows = tokens.listing(s, org_id=org)
    finally:
        svc.close()
    t = Table(title=f"API tokens ({len(rows)})", title_justify="left")
    for col in ("id", "holder", "scopes", "name", "created", "last used", "state"):
        t.add_column(col)
    for tok in rows:
        t.add_row(tok.id, tok.org_id or f"partner:{tok.partner_id}" if tok.partner_id
                  else tok.org_id or f"source:{tok.source}", ", ".join(tok.scopes),
                  tok.name, tok.created_at.strftime("%Y-%m-%d"),
                  tok.last_used_at.strftime("%Y-%m-%d %H:%M") if tok.last_used_at else "-",
                  "active" if tokens.is_active(tok) else "revoked/expired")
    console.print(t)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token at once."""
    svc = services()
    try:
        with svc.sessions() as s:
            try:
                tokens.revoke(s, token_id, ACTOR)
            except AccessError as exc:
                _fail(exc)
            s.commit()
    finally:
        svc.close()
    console.print(f"token {token_id} revoked")
