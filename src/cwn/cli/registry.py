"""`cwn registry import|export`: the organisation registry as a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from cwn.cli.console import console, err_console
from cwn.config import Settings
from cwn.db.engine import make_engine, session_factory, upgrade


def fail(message: str, code: int = 2) -> NoReturn:
    """One red line (never wrapped, never a traceback), then exit with `code`."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


app = typer.Typer(help="Import and export the organisation registry (JSON).",
                  no_args_is_help=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="Registry JSON file (docs/registry-format.md)."),
    actor: str = typer.Option("cli", help="Who is importing (recorded in the audit log)."),
) -> None:
    """Create or update the organisations in FILE with their assets and contacts."""
    from cwn.registry.format import RegistryFormatError, read_document
    from cwn.registry.importer import import_registry

    try:
        doc = read_document(file)
    except RegistryFormatError as exc:
        fail(f"{file}: {exc}")
    engine = make_engine(Settings().db_url)
    try:
        upgrade(engine)
        with session_factory(engine).begin() as session:
            summary = import_registry(session, doc, actor=actor)
    except Exception as exc:
        fail(f"{file}: import failed, nothing changed: {exc.__class__.__name__}: "
             f"{str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        engine.dispose()
    table = Table(title=f"Registry import: {file.name}")
    table.add_column("change")
    table.add_column("count", justify="right")
    for label, n in summary.rows():
        table.add_row(label, str(n))
    table.add_row("registry version", str(summary.version) if summary.changed else "unchanged")
    console.print(table)


@app.command("export")
def export(
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default stdout)."),
) -> None:
    """Write the registry as JSON in the import format."""
    from cwn.registry.exporter import export_registry

    engine = make_engine(Settings().db_url)
    try:
        upgrade(engine)
        with session_factory(engine)() as session:
            doc = export_registry(session)
    finally:
        engine.dispose()
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"exported {len(doc['organizations'])} organisations to {output}")
