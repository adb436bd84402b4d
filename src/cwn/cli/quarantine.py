"""`cwn quarantine`: the rows that could not become events, with their reasons."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from cwn.cli.console import console, services
from cwn.db.models import QuarantinedRow, Report

app = typer.Typer(help="Rows that could not be parsed, kept with their reason.",
                  no_args_is_help=True)


@app.command("list")
def list_rows(
    report: Annotated[str | None, typer.Option(help="Only rows of this report (SHA-256).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
) -> None:
    """Show quarantined rows: file, row number, reason and the original content."""
    svc = services()
    query = (select(Report.file_name, QuarantinedRow.row, QuarantinedRow.reason,
                    QuarantinedRow.content)
             .join(Report, Report.sha256 == QuarantinedRow.report_sha256)
             .order_by(QuarantinedRow.id).limit(limit))
    if report:
        query = query.where(QuarantinedRow.report_sha256 == report)
    with svc.engine.connect() as conn:
        rows = conn.execute(query).all()
    table = Table(title=f"Quarantined rows (first {limit})", title_justify="left")
    for col in ("file", "row", "reason", "content"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(escape(r.file_name), str(r.row), escape(r.reason),
                      escape((r.content or "")[:200]))
    console.print(table if rows else "no quarantined rows")
    svc.close()
