"""`cwn feeds`: the Shadowserver report table and operator-loaded schemas."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cwn.cli.console import console, fail
from cwn.config import Settings
from cwn.ingest.result import UnusableInput

app = typer.Typer(help="Feed catalogue and report schemas.", no_args_is_help=True)


@app.command("update-schema")
def update_schema(
    source: Annotated[str, typer.Argument(help="Path or http(s) URL of a report schema JSON.")],
) -> None:
    """Load Shadowserver's published report schema (IntelMQ format) to extend the table."""
    from cwn.ingest.shadowserver.schema import update_schema as load

    settings = Settings()
    try:
        n = load(source, settings.schema_dir)
    except UnusableInput as exc:
        fail(str(exc))
    console.print(f"loaded {n} report types from {source} into {settings.schema_dir}")


@app.command("list")
def list_reports() -> None:
    """Show every known Shadowserver report type and its classification."""
    from cwn.ingest.shadowserver.schema import load_table

    table = load_table(Settings().schema_dir)
    out = Table(title="Shadowserver report types")
    for col in ("report type", "feed name", "taxonomy", "type", "identifier"):
        out.add_column(col)
    for rtype in sorted(table.report_types):
        spec = table.spec(rtype)
        c = spec.constants
        out.add_row(rtype, spec.feed_name, c.get("classification.taxonomy", ""),
                    c.get("classification.type", ""), c.get("classification.identifier", ""))
    console.print(out)


@app.command("stats")
def stats(days: int = typer.Option(90, help="Cases first seen in the last N days.")) -> None:
    """What happened to each source's findings: cases, notified, and what recipients and
    partners reported back (the feedback a source gets from the desk)."""
    from datetime import UTC, datetime, timedelta

    from cwn.cli.console import services
    from cwn.feedback.cases import source_stats

    svc = services()
    try:
        with svc.engine.connect() as conn:
            rows = source_stats(conn, datetime.now(UTC) - timedelta(days=days))
    finally:
        svc.close()
    t = Table(title=f"Source statistics (cases of the last {days} days)", title_justify="left")
    # Partner feedback first, then what recipients said (portal, API, mail link, desk).
    cols = [("partner fixed", "partner", "fixed"),
            ("customer notified", "partner", "customer_notified"),
            ("forwarded", "partner", "forwarded"),
            ("not our customer", "partner", "not_our_customer"),
            ("not ours", "recipient", "not_ours"), ("fixed", "recipient", "fixed"),
            ("false positive", "recipient", "false_positive"),
            ("question", "recipient", "question")]
    t.add_column("report type", no_wrap=True)
    for col in ("cases", "notified", "resolved", *(c[0] for c in cols)):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r.report_type, str(r.cases), str(r.notified), str(r.resolved),
                  *(str(getattr(r, side)[k]) for _, side, k in cols))
    console.print(t)
