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
