"""`cwn registry import|export`: the organisation registry as a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cwn.cli.console import console, fail, services

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
    svc = services()
    try:
        with svc.sessions.begin() as session:
            summary = import_registry(session, doc, actor=actor)
            if doc.partners:
                from cwn.registry.partners import PartnersDocument, import_partners

                pcounts = import_partners(
                    session, PartnersDocument.model_validate({"partners": doc.partners}),
                    actor=actor)
                console.print(f"partners: {pcounts['partners']}, agreements: "
                              f"{pcounts['agreements']}, changes: {pcounts['changed']}")
    except Exception as exc:
        fail(f"{file}: import failed, nothing changed: {exc.__class__.__name__}: "
             f"{str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        svc.close()
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

    svc = services()
    try:
        with svc.sessions() as session:
            doc = export_registry(session)
    finally:
        svc.close()
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"exported {len(doc['organizations'])} organisations to {output}")
