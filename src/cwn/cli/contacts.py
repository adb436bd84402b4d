"""`cwn contacts …`: organisations' contacts and the reminders that keep them confirmed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cwn.cli.console import console, fail, services

app = typer.Typer(help="Organisations' contacts and their confirmation reminders.",
                  no_args_is_help=True)


def _day(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d") if dt is not None else "-"


@app.command("remind")
def remind(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list who would be "
                                          "reminded; send nothing, change nothing.")] = False,
    days: Annotated[int | None, typer.Option(min=1, help="Remind contacts not confirmed for "
                                             "this many days (default: the "
                                             "`contact_confirm_days` setting).")] = None,
) -> None:
    """Mail every contact that has not been confirmed for a while a one-time confirmation
    link (at most once per 14 days per contact)."""
    from cwn.db.base import utcnow
    from cwn.registry.contacts import due_for_reminder, send_reminders

    svc = services()
    now = utcnow()
    limit = days if days is not None else svc.settings.contact_confirm_days
    try:
        with svc.sessions.begin() as session:
            due = due_for_reminder(session, now, limit)
            if dry_run:
                t = Table(title=f"Contacts to remind (not confirmed for {limit} days)",
                          title_justify="left")
                for col in ("organisation", "contact", "role", "language", "last confirmed",
                            "last reminded"):
                    t.add_column(col)
                for d in due:
                    t.add_row(escape(d.org_id), escape(d.email), d.role, d.language,
                              _day(d.last_confirmed), _day(d.reminded_at))
                console.print(t)
                console.print(f"would remind: {len(due)} (dry run, nothing sent)")
                return
            sent = send_reminders(svc.settings, session, now, due=due)
    finally:
        svc.close()
    console.print(f"reminded: {sent}" + (f", failed: {len(due) - sent} (tried again next run)"
                                         if sent < len(due) else ""))
    if sent < len(due):
        raise typer.Exit(1)


@app.command("list")
def list_(org_id: Annotated[str, typer.Argument(help="Organisation id.")]) -> None:
    """An organisation's contacts, first-told first, with their confirmation state."""
    from cwn.access.errors import AccessError
    from cwn.registry.preferences import contact_preferences

    svc = services()
    try:
        with svc.sessions() as session:
            rows = contact_preferences(session, org_id)
    except AccessError as exc:
        fail(exc.message)
    finally:
        svc.close()
    t = Table(title=f"Contacts of {escape(org_id)}", title_justify="left")
    for col in ("id", "email", "roles", "language", "priority", "enabled", "confirmed",
                "reminded", "preferences"):
        t.add_column(col)
    for row in rows:
        c, p = row.contact, row.prefs
        t.add_row(str(c.id), escape(c.email), ", ".join([c.role, *c.roles]), p.language,
                  str(c.priority), "yes" if c.enabled else "no",
                  _day(c.confirmed_at) + ("" if c.confirmed_at else " (added "
                                          + _day(c.created_at) + ")"),
                  _day(c.reminded_at), "inherited" if p.inherits else "own")
    console.print(t)
    if not rows:
        console.print("no contacts: notifications go to contacts found in public data")
