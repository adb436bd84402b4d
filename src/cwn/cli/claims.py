"""`cwn claims …`: the operator's side of asset claims (what waits for review, approve,
reject). Organisations claim and prove in the portal or the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.cli.console import console, fail, services
from cwn.db.models_web import AssetClaim
from cwn.registry import claims as registry_claims

app = typer.Typer(help="Asset claims of organisations and their verification.",
                  no_args_is_help=True)


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(
        help="pending | review | verified | rejected | withdrawn (default: all)")] = None,
    org: Annotated[str | None, typer.Option(help="Only this organisation's claims.")] = None,
) -> None:
    """Claims, newest first; `--state review` is what waits for the operator."""
    if state is not None and state not in registry_claims.STATES:
        fail(f"unknown state {state!r}; use one of {', '.join(registry_claims.STATES)}")
    svc = services()
    try:
        with svc.sessions() as s:
            found = registry_claims.list_claims(s, org_id=org, state=state)
            rows = [(c.id, c.org_id, c.type, c.value, c.state,
                     registry_claims.method_label(c.method) if c.proven_at else "-",
                     ", ".join(f"{o.get('org_id')}:{o.get('value')}"
                               for o in c.overlaps or []) or "-",
                     f"{c.created_at:%Y-%m-%d}") for c in found]
    finally:
        svc.close()
    t = Table(title=f"Claims ({len(rows)})", title_justify="left")
    for col in ("id", "organisation", "type", "value", "state", "proof", "overlaps",
                "claimed"):
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*row)
    console.print(t)


@app.command("approve")
def approve(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (`cwn claims list`).")],
    note: Annotated[str | None, typer.Option(help="Why; the organisation sees it.")] = None,
    actor: Annotated[str, typer.Option(help="Recorded in the audit log.")] = "cli",
) -> None:
    """Verify the claim: its asset counts for notifications from now on."""
    _decide("verified", lambda s: registry_claims.approve(s, claim_id, actor=actor,
                                                           note=note))


@app.command("reject")
def reject(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (`cwn claims list`).")],
    reason: Annotated[str, typer.Option(help="Why; the organisation sees it.")],
    actor: Annotated[str, typer.Option(help="Recorded in the audit log.")] = "cli",
) -> None:
    """Refuse the claim; the unverified asset it created is removed."""
    _decide("rejected", lambda s: registry_claims.reject(s, claim_id, actor=actor,
                                                          reason=reason))


def _decide(outcome: str, decide: Callable[[Session], AssetClaim]) -> None:
    """Run one operator decision in its own transaction; refusals are one line."""
    svc = services()
    try:
        with svc.sessions.begin() as s:
            c = decide(s)
            value, org = c.value, c.org_id
    except AccessError as exc:
        fail(exc.message)
    finally:
        svc.close()
    console.print(f"{outcome}: {value} of {org}")
