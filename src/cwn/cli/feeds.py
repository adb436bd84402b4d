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

    from sqlalchemy import text

    from cwn.cli.console import services

    svc = services()
    since = datetime.now(UTC) - timedelta(days=days)
    with svc.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT COALESCE(c.report_type, '-') AS rt, COUNT(*) AS cases, "
            "SUM(CASE WHEN c.notify_count > 0 THEN 1 ELSE 0 END) AS notified, "
            "SUM(CASE WHEN c.state = 'resolved' THEN 1 ELSE 0 END) AS resolved "
            "FROM cases c WHERE c.created_at >= :s GROUP BY COALESCE(c.report_type, '-') "
            "ORDER BY cases DESC"), {"s": since}).all()
        feedback = conn.execute(text(
            "SELECT COALESCE(c.report_type, '-'), d.reason, COUNT(*) FROM case_decisions d "
            "JOIN cases c ON c.id = d.case_id WHERE c.created_at >= :s AND ("
            "d.action = 'partner_feedback' OR d.reason = 'not_ours') "
            "GROUP BY COALESCE(c.report_type, '-'), d.reason"), {"s": since}).all()
    svc.close()
    per: dict[str, dict[str, int]] = {}
    for rt, reason, n in feedback:
        per.setdefault(rt, {})[reason] = int(n)
    t = Table(title=f"Source statistics (cases of the last {days} days)", title_justify="left")
    for col in ("report type", "cases", "notified", "resolved", "fixed",
                "customer notified", "forwarded", "not our customer", "not ours"):
        t.add_column(col, justify="left" if col == "report type" else "right")
    for rt, cases, notified, resolved in rows:
        f = per.get(rt, {})
        t.add_row(rt, str(cases), str(notified or 0), str(resolved or 0),
                  *(str(f.get(k, 0)) for k in ("fixed", "customer_notified", "forwarded",
                                                "not_our_customer", "not_ours")))
    console.print(t)
