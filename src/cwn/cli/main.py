"""The `cwn` command."""

from __future__ import annotations

import typer

from cwn.cli import (
    claims,
    contacts,
    events,
    feeds,
    ingest,
    partners,
    publicdata,
    quarantine,
    registry,
    status,
    web,
)
from cwn.cli import notify as notify_cli
from cwn.cli.console import console, services

app = typer.Typer(
    help="cwn: collect threat data, attribute it to its owners, and notify them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(registry.app, name="registry")
app.add_typer(events.app, name="events")
app.add_typer(feeds.app, name="feeds")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(publicdata.app, name="publicdata")
app.add_typer(partners.app, name="partners")
app.command()(ingest.ingest)
app.command()(ingest.reparse)
app.command()(status.status)
app.command("notify")(notify_cli.notify)
app.command("run")(notify_cli.run)
app.add_typer(notify_cli.cases_app, name="cases")
app.add_typer(notify_cli.notifications_app, name="notifications")
app.add_typer(notify_cli.bounces_app, name="bounces")
app.command()(web.serve)
app.add_typer(web.users_app, name="users")
app.add_typer(web.tokens_app, name="tokens")
app.add_typer(claims.app, name="claims")
app.add_typer(contacts.app, name="contacts")


@app.command()
def init() -> None:
    """Create or upgrade the database and the data directory."""
    svc = services()
    console.print(f"cwn store ready: {svc.settings.db_url.split('@')[-1]} "
                  f"(home {svc.settings.home.resolve()})")
    svc.close()


@app.command()
def demo() -> None:
    """The whole flow on a fresh home with the bundled demo registry and sample feeds."""
    from cwn.demo import run_demo

    run_demo()


if __name__ == "__main__":
    app()
