"""`cwn events export`: events out of the archive, in IntelMQ JSON, CSV or STIX 2.1."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from cwn.cli.console import err_console, fail, services

app = typer.Typer(help="Work with stored events.", no_args_is_help=True)


class Format(StrEnum):
    intelmq = "intelmq"
    csv = "csv"
    stix = "stix"


@app.command("export")
def export(
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.intelmq,
    output: Annotated[Path | None, typer.Option(help="File to write; default stdout.")] = None,
    org: Annotated[str | None, typer.Option(help="Only events of this organisation.")] = None,
    report_type: Annotated[str | None, typer.Option(help="Only this report type.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events seen at or after this ISO date/time.")
    ] = None,
    unattributed: Annotated[
        bool, typer.Option(help="Only events without an owner.")
    ] = False,
    raw: Annotated[bool, typer.Option(help="Include the raw source record (IntelMQ).")] = True,
) -> None:
    """Export archived events with their owner (`extra.organization`, `extra.matched_asset`)."""
    import cwn.render.formats.csv as csv_fmt
    import cwn.render.formats.intelmq as intelmq_fmt
    import cwn.render.formats.stix as stix_fmt

    where: list[str] = []
    params: list[object] = []
    if org:
        where.append('"organization" = ?')
        params.append(org)
    if unattributed:
        where.append('"organization" IS NULL')
    if report_type:
        where.append('"report_type" = ?')
        params.append(report_type)
    if since:
        try:
            params.append(datetime.fromisoformat(since))
        except ValueError:
            fail(f"--since: not an ISO date or date-time: {since!r}")
        where.append('"time.source" >= ?')
    svc = services()
    batches = svc.events.scan(" AND ".join(where) or None, params)
    out: BinaryIO
    if output is None:
        out = sys.stdout.buffer
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        out = output.open("wb")
    try:
        if fmt is Format.intelmq:
            n = intelmq_fmt.write_intelmq(batches, out, include_raw=raw)
        elif fmt is Format.csv:
            n = csv_fmt.write_csv(batches, out)
        else:
            n = stix_fmt.write_stix(batches, out)
    finally:
        if output is not None:
            out.close()
    svc.close()
    err_console.print(f"exported {n:,} events" + (f" to {output}" if output else ""))
