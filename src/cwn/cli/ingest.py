"""`cwn ingest`, `cwn reparse`: feed files in, a readable summary out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cwn.cli.console import console, err_console, services
from cwn.ingest.pipeline import IngestSummary, expand
from cwn.wiring import Services


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[current]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def print_summary(summary: IngestSummary, title: str = "Ingest") -> None:
    files = summary.files
    counts = {s: sum(1 for f in files if f.status == s) for s in
              ("ingested", "duplicate", "unusable")}
    events = summary.total("events")
    table = Table(title=f"{title} summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("files", f"{len(files)} ({counts['ingested']} ingested, "
                  f"{counts['duplicate']} already known, {counts['unusable']} unusable)")
    table.add_row("rows", f"{summary.total('rows'):,}")
    table.add_row("events", f"{events:,}")
    table.add_row("quarantined", f"{summary.total('quarantined'):,}")
    public = summary.total("public")
    table.add_row("attributed", f"{summary.total('attributed'):,}")
    table.add_row("  registered owners", f"{summary.total('attributed') - public:,}")
    table.add_row("  public-data owners (unsolicited)", f"{public:,}")
    table.add_row("unattributed", f"{summary.unattributed:,}")
    rate = events / summary.seconds if summary.seconds > 0 else 0.0
    table.add_row("time", f"{summary.seconds:.2f} s ({rate:,.0f} events/s)")
    console.print(table)
    top = summary.top_orgs(10)
    if top:
        t = Table(title="Top organisations", title_justify="left")
        t.add_column("organisation")
        t.add_column("events", justify="right")
        for org, n in top:
            t.add_row(org, f"{n:,}")
        console.print(t)
    for f in summary.unusable:
        err_console.print(f"[bold red]unusable:[/] {escape(f.path)}: {escape(str(f.error))}",
                          soft_wrap=True)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest.")],
    feed: Annotated[str | None, typer.Option(help="Feed name to record.")] = None,
    report_type: Annotated[
        str | None, typer.Option("--report-type", help="Shadowserver report type override.")
    ] = None,
) -> None:
    """Collect, parse, normalise, attribute and store feed files."""
    svc = services()
    try:
        ok = ingest_with_progress(svc, paths, feed=feed, report_type=report_type)
    finally:
        svc.close()
    if not ok:
        raise typer.Exit(1)


def ingest_with_progress(svc: Services, paths: list[Path], *, feed: str | None = None,
                         report_type: str | None = None) -> bool:
    """Ingest files and directories with a progress bar and a summary (shared by
    `cwn ingest` and `cwn run`). False when any path was missing or unusable."""
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        err_console.print(f"[bold red]unusable:[/] {escape(str(p))}: no such file or directory",
                          soft_wrap=True)
    files = list(expand([p for p in paths if p.exists()]))
    with _progress() as progress:
        task = progress.add_task("ingest", total=len(files), current="")

        def note(name: str, stage: str) -> None:
            progress.update(task, current=f"{stage}: {name}")

        summary = IngestSummary()
        pipeline = svc.pipeline()  # one report table and index for the whole run
        for path in files:
            part = pipeline.ingest_paths([path], feed=feed, report_type=report_type,
                                         progress=note)
            summary.files.extend(part.files)
            summary.seconds += part.seconds
            progress.advance(task)
        progress.update(task, current="done")
    print_summary(summary)
    return not (summary.unusable or missing)


def reparse(
    reports: Annotated[
        list[str] | None, typer.Argument(help="Report SHA-256s; default: all reports.")
    ] = None,
) -> None:
    """Run archived reports through today's parsers, replacing their events."""
    svc = services()
    with _progress() as progress:
        task = progress.add_task("reparse", total=None, current="")
        summary = svc.pipeline().reparse(
            reports or None, progress=lambda n, s: progress.update(task, current=f"{s}: {n}"))
        progress.update(task, total=len(summary.files), completed=len(summary.files),
                        current="done")
    print_summary(summary, "Reparse")
    svc.close()
    if summary.unusable:
        raise typer.Exit(1)
