"""`cwn publicdata …`: import public ownership data, see how fresh it is, look addresses up,
and keep the operator's overrides (which no import ever touches)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import delete, insert, select

from cwn.cli.console import console, fail, services
from cwn.db.models import AuditEntry
from cwn.db.models_contacts import AddressFlag, ContactOverride
from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.store import ImportSummary, PublicDataStore

app = typer.Typer(help="Public data about who holds an address, and whom to tell.",
                  no_args_is_help=True)
override_app = typer.Typer(help="Operator overrides: they win over any imported data.",
                           no_args_is_help=True)
app.add_typer(override_app, name="override")

KINDS = ("ipasn", "asnames", "delegated", "ripe", "csirts")


def _importer(kind: str) -> Callable[[list[Path], PublicDataStore], list[ImportSummary]]:
    from cwn.publicdata import csirts, delegated, pyasn, ripe

    def each(fn: Callable[[Path, PublicDataStore], ImportSummary]
             ) -> Callable[[list[Path], PublicDataStore], list[ImportSummary]]:
        return lambda paths, store: [fn(p, store) for p in paths]

    def ripe_all(paths: list[Path], store: PublicDataStore) -> list[ImportSummary]:
        total = sum(p.stat().st_size for p in paths)
        with Progress(TextColumn("RIPE Database"), BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("ripe", total=total)
            return [ripe.import_ripe(paths, store,
                                     progress=lambda done: bar.update(task, completed=done))]

    return {"ipasn": each(pyasn.import_ipasn), "asnames": each(pyasn.import_asnames),
            "delegated": each(delegated.import_delegated), "csirts": each(csirts.import_csirts),
            "ripe": ripe_all}[kind]


@app.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}.")],
    paths: Annotated[list[Path], typer.Argument(help="Files (gzip is fine). For ripe: the "
                                                "split dumps in any order, or one dump.")],
) -> None:
    """Import (or refresh) one kind of public data; the previous import stays in place
    until the new one is complete."""
    if kind not in KINDS:
        fail(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        fail(f"no such file: {missing[0]}")
    svc = services()
    try:
        summaries = _importer(kind)(paths, svc.publicdata())
    except PublicDataError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
    finally:
        svc.close()
    for s in summaries:
        console.print(f"[bold]{s.kind}[/] ({s.part}): {s.rows:,} rows imported, "
                      f"{s.skipped:,} skipped; data date {s.source_date or 'unknown'}")
        for note in s.notes[:5]:
            console.print(f"  note: {note}")


@app.command()
def status() -> None:
    """What is imported, from where, and how old it is."""
    svc = services()
    rows = svc.publicdata().status()
    svc.close()
    if not rows:
        console.print("no public data imported yet (cwn publicdata import KIND PATH)")
        return
    t = Table(title="Public data", title_justify="left")
    for col in ("kind", "part", "rows", "data date", "imported", "source"):
        t.add_column(col)
    for m in rows:
        t.add_row(m["kind"], m["part"], f"{m.get('rows', 0):,}", m.get("source_date") or "-",
                  str(m.get("imported_at", ""))[:19], os.path.basename(str(m.get("source"))))
    console.print(t)


@app.command()
def lookup(ips: Annotated[list[str], typer.Argument(help="IP addresses.")]) -> None:
    """Who holds these addresses according to the imported data (offline)."""
    svc = services()
    public = svc.public()
    svc.close()
    if public is None:
        fail("no public data imported yet (cwn publicdata import KIND PATH)")
    from cwn.events.batch import EVENT_SCHEMA

    n = len(ips)
    events = EVENT_SCHEMA.empty_table().to_pydict()
    for name in events:
        events[name] = [None] * n
    events["source.ip"] = ips
    table = public.attribute(pa.Table.from_pydict(events, schema=EVENT_SCHEMA))
    t = Table(title="Public owners", title_justify="left")
    for col in ("address", "owner", "matched", "kind", "origin AS"):
        t.add_column(col)
    for row in table.select(["source.ip", "organization", "matched_asset", "match_kind",
                             "source.asn"]).to_pylist():
        t.add_row(*(str(v) if v is not None else "-" for v in row.values()))
    console.print(t)


# -- overrides ------------------------------------------------------------------------------


def _actor() -> str:
    return os.environ.get("CWN_ACTOR") or os.environ.get("USER") or "operator"


@override_app.command("add")
def override_add(
    cidr: Annotated[str | None, typer.Option(help="Address block, e.g. 192.0.2.0/24.")] = None,
    asn: Annotated[int | None, typer.Option(help="AS number.")] = None,
    domain: Annotated[str | None, typer.Option(help="Domain (covers its subdomains).")] = None,
    contact: Annotated[str | None, typer.Option(help="Tell this address for the scope.")
                       ] = None,
    block: Annotated[str | None, typer.Option(help="Never use this e-mail address.")] = None,
    isp_only: Annotated[bool, typer.Option("--isp-only", help="Consumer range: tell only "
                                            "the ISP, never the subscriber.")] = False,
    note: Annotated[str | None, typer.Option(help="Why (kept with the override).")] = None,
) -> None:
    """Set a contact per block, AS or domain; block an address; or mark a range ISP-only."""
    scopes = [(k, v) for k, v in (("cidr", cidr), ("asn", asn), ("domain", domain)) if v]
    if block:
        if scopes or contact or isp_only:
            fail("--block takes an e-mail address on its own")
        scope, value, action, email = "email", block.strip().lower(), "block", None
    else:
        if len(scopes) != 1:
            fail("give exactly one of --cidr, --asn, --domain")
        scope, raw = scopes[0]
        value = str(raw).strip().lower()
        if scope == "cidr":
            try:
                value = str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                fail(f"not an address block: {raw!r}")
        if isp_only == bool(contact):
            fail("give either --contact EMAIL or --isp-only")
        if isp_only and scope != "cidr":
            fail("--isp-only applies to an address block (--cidr)")
        action, email = ("isp_only", None) if isp_only else ("contact", contact)
        if email is not None and ("@" not in email or any(c in email for c in " \r\n")):
            fail(f"not an e-mail address: {email!r}")
    if block is not None and "@" not in value:
        fail(f"not an e-mail address: {block!r}")
    svc = services()
    now = datetime.now(UTC)
    after = {"scope": scope, "value": value, "action": action, "email": email, "note": note}
    with svc.engine.begin() as conn:
        new_id = conn.execute(insert(ContactOverride).values(
            **after, created_by=_actor(), created_at=now)).inserted_primary_key
        conn.execute(insert(AuditEntry).values(
            at=now, actor=_actor(), action="create", entity="contact_override",
            entity_id=str(new_id[0] if new_id else "?"), before=None, after=after))
        if action == "block":
            conn.execute(delete(AddressFlag).where(AddressFlag.email == value))
            conn.execute(insert(AddressFlag).values(email=value, disabled=True,
                                                    reason="blocked_by_operator",
                                                    hard_bounces=0, not_ours=0,
                                                    updated_at=now))
    svc.close()
    console.print(f"override {new_id[0] if new_id else '?'} added: {scope} {value} → {action}"
                  + (f" {email}" if email else ""))


@override_app.command("list")
def override_list() -> None:
    svc = services()
    with svc.engine.connect() as conn:
        rows = conn.execute(select(ContactOverride).order_by(ContactOverride.id)).all()
    svc.close()
    t = Table(title="Contact overrides", title_justify="left")
    for col in ("id", "scope", "value", "action", "contact", "by", "at", "note"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r.id), r.scope, r.value, r.action, r.email or "-", r.created_by,
                  str(r.created_at)[:19], r.note or "")
    console.print(t)


@override_app.command("remove")
def override_remove(override_id: Annotated[int, typer.Argument(help="Override id.")]) -> None:
    svc = services()
    now = datetime.now(UTC)
    with svc.engine.begin() as conn:
        row = conn.execute(select(ContactOverride).where(
            ContactOverride.id == override_id)).first()
        if row is None:
            svc.close()
            fail(f"no override {override_id}")
        before = {"scope": row.scope, "value": row.value, "action": row.action,
                  "email": row.email, "note": row.note}
        conn.execute(delete(ContactOverride).where(ContactOverride.id == override_id))
        if row.action == "block":
            conn.execute(delete(AddressFlag).where(AddressFlag.email == row.value,
                                                   AddressFlag.reason == "blocked_by_operator"))
        conn.execute(insert(AuditEntry).values(
            at=now, actor=_actor(), action="delete", entity="contact_override",
            entity_id=str(override_id), before=before, after=None))
    svc.close()
    console.print(f"override {override_id} removed")
