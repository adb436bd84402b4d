"""`cwn partners …`: the network's intermediaries, their agreements, what they report back,
and where the network has gaps."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection, func, insert, select, text, update

from cwn.cli.console import console, fail, services
from cwn.db.models import AuditEntry
from cwn.db.models_notify import Case, CaseDecision
from cwn.db.models_partners import Agreement, Partner, PartnerContact, PartnerFeedback

app = typer.Typer(help="Partners (intermediaries) and their distribution agreements.",
                  no_args_is_help=True)

FEEDBACK = ("forwarded", "not_our_customer", "customer_notified", "fixed")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSON with a `partners` list "
                                         "(docs/registry-format.md).")],
    actor: Annotated[str, typer.Option(help="Recorded in the audit log.")] = "cli",
) -> None:
    """Create or update partners, their contacts and agreements (audited)."""
    from pydantic import ValidationError

    from cwn.registry.partners import PartnersDocument, import_partners

    try:
        doc = PartnersDocument.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{file}: not valid JSON: {exc}")
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        fail(f"{file}: {loc}: {err['msg'].removeprefix('Value error, ')}")
    svc = services()
    try:
        with svc.sessions.begin() as session:
            counts = import_partners(session, doc, actor=actor)
    except ValueError as exc:
        fail(f"{file}: import failed, nothing changed: {exc}")
    finally:
        svc.close()
    console.print(f"partners: {counts['partners']}, agreements: {counts['agreements']}, "
                  f"contacts: {counts['contacts']}, changes: {counts['changed']}")


@app.command("list")
def list_() -> None:
    svc = services()
    with svc.engine.connect() as conn:
        partners = conn.execute(select(Partner).order_by(Partner.id)).all()
        n_agreements = dict(conn.execute(select(Agreement.partner_id, func.count())
                                         .group_by(Agreement.partner_id)).all())
    svc.close()
    t = Table(title="Partners", title_justify="left")
    for col in ("id", "name", "type", "status", "maturity", "sectors", "regions",
                "agreements"):
        t.add_column(col)
    for p in partners:
        t.add_row(p.id, p.name, p.type, p.status, str(p.maturity or "-"),
                  ", ".join(p.sectors or []) or "-", ", ".join(p.regions or []) or "-",
                  str(n_agreements.get(p.id, 0)))
    console.print(t)


@app.command("show")
def show(partner_id: Annotated[str, typer.Argument(help="Partner id.")]) -> None:
    """A partner: profile, contacts, agreements, deliveries and what it reported back."""
    svc = services()
    with svc.engine.connect() as conn:
        p = conn.execute(select(Partner).where(Partner.id == partner_id)).first()
        if p is None:
            svc.close()
            fail(f"unknown partner {partner_id!r}")
        contacts = conn.execute(select(PartnerContact).where(
            PartnerContact.partner_id == partner_id).order_by(PartnerContact.priority)).all()
        agreements = conn.execute(select(Agreement).where(
            Agreement.partner_id == partner_id).order_by(Agreement.id)).all()
        sent = conn.execute(text(
            "SELECT n.org_id, n.state, COUNT(*), SUM(n.case_count) FROM notifications n "
            "WHERE n.org_id LIKE :p GROUP BY n.org_id, n.state"),
            {"p": "partner:%"}).all()
        ids = {f"partner:{a.id}" for a in agreements}
        feedback = conn.execute(select(PartnerFeedback.status, func.count()).where(
            PartnerFeedback.partner_id == partner_id).group_by(PartnerFeedback.status)).all()
    svc.close()
    head = Table(title=f"Partner {p.id}", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    for k, v in (("name", p.name), ("type", p.type), ("status", p.status),
                 ("maturity", str(p.maturity or "-")),
                 ("functions", ", ".join(p.functions or []) or "-"),
                 ("sectors served", ", ".join(p.sectors or []) or "-"),
                 ("regions served", ", ".join(p.regions or []) or "-"),
                 ("supplier role", p.supplier_role or "-"), ("language", p.language)):
        head.add_row(k, v)
    console.print(head)
    c = Table(title="Contacts", title_justify="left")
    for col in ("email", "role", "language", "24/7", "priority", "enabled"):
        c.add_column(col)
    for x in contacts:
        c.add_row(x.email, x.role, x.language or "-", "yes" if x.available_24_7 else "no",
                  str(x.priority), "yes" if x.enabled else "no")
    console.print(c)
    a = Table(title="Agreements", title_justify="left")
    for col in ("id", "scope", "content", "TLP ceiling", "format", "cadence", "mode",
                "valid", "signed by"):
        a.add_column(col)
    for ag in agreements:
        scope = "; ".join(f"{k}: {', '.join(map(str, v))}"
                          for k, v in (ag.scope or {}).items() if v)
        content = "; ".join(f"{k}: {', '.join(v)}" for k, v in (
            ("taxonomies", ag.taxonomies), ("report types", ag.report_types)) if v) or "all"
        a.add_row(ag.id, scope or "-", content, ag.tlp_ceiling, ag.format, ag.cadence,
                  ag.mode, f"{ag.valid_from or '…'} – {ag.valid_until or '…'}",
                  ag.signed_by or "-")
    console.print(a)
    d = Table(title="Bulk deliveries", title_justify="left")
    for col in ("agreement", "state", "notifications", "cases"):
        d.add_column(col)
    for owner, state, n, cases in sent:
        if owner in ids:
            d.add_row(owner.split(":", 1)[1], state, str(n), str(cases or 0))
    console.print(d)
    if feedback:
        console.print("feedback: " + ", ".join(f"{s} {n}" for s, n in feedback))


def record_feedback(conn: Connection, case_id: str, partner_id: str, status: str,
                    note: str | None, source: str, actor: str) -> None:
    """Store a partner's word on a case; "fixed" resolves the case."""
    now = datetime.now(UTC)
    case = conn.execute(select(Case.id, Case.state).where(Case.id == case_id)).first()
    if case is None:
        raise ValueError(f"unknown case {case_id!r}")
    if status not in FEEDBACK:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(FEEDBACK)}")
    conn.execute(insert(PartnerFeedback).values(case_id=case_id, partner_id=partner_id,
                                                status=status, note=note, source=source,
                                                at=now))
    conn.execute(insert(CaseDecision).values(
        case_id=case_id, run_id=None, at=now, action="partner_feedback", reason=status,
        recipient=None, notification_id=None, detail=f"{partner_id}: {note or ''}"[:2000]))
    if status == "fixed" and case.state != "resolved":
        conn.execute(update(Case).where(Case.id == case_id).values(
            state="resolved", resolved_at=now, updated_at=now))
    conn.execute(insert(AuditEntry).values(
        at=now, actor=actor, action="create", entity="partner_feedback", entity_id=case_id,
        before=None, after={"partner": partner_id, "status": status, "note": note}))


@app.command("feedback")
def feedback(
    case_id: Annotated[str, typer.Argument(help="Case ID.")],
    status: Annotated[str, typer.Argument(help=", ".join(FEEDBACK))],
    partner: Annotated[str, typer.Option(help="Partner id.")],
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
) -> None:
    """Record what a partner did with a case."""
    svc = services()
    try:
        with svc.engine.begin() as conn:
            if conn.execute(select(Partner.id).where(Partner.id == partner)).first() is None:
                fail(f"unknown partner {partner!r}")
            record_feedback(conn, case_id.strip().upper(), partner, status.replace("-", "_"),
                            note, "cli", "cli")
    except ValueError as exc:
        fail(str(exc))
    finally:
        svc.close()
    console.print(f"{case_id}: {status} recorded for {partner}")


@app.command("feedback-upload")
def feedback_upload(
    file: Annotated[Path, typer.Argument(help="CSV with columns case_id,status[,note].")],
    partner: Annotated[str, typer.Option(help="Partner id.")],
) -> None:
    """Record a partner's feedback file; bad rows are reported and skipped."""
    try:
        rows = list(csv.DictReader(io.StringIO(file.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        fail(f"{file}: cannot read: {exc}")
    if not rows or not {"case_id", "status"} <= set(rows[0]):
        fail(f"{file}: expected a CSV with columns case_id,status[,note]")
    svc = services()
    done, bad = 0, []
    try:
        with svc.engine.begin() as conn:
            if conn.execute(select(Partner.id).where(Partner.id == partner)).first() is None:
                fail(f"unknown partner {partner!r}")
            for i, row in enumerate(rows, start=2):
                try:
                    with conn.begin_nested():
                        record_feedback(conn, (row.get("case_id") or "").strip().upper(),
                                        partner, (row.get("status") or "").strip().lower()
                                        .replace("-", "_").replace(" ", "_"),
                                        row.get("note") or None, "upload", "cli")
                    done += 1
                except ValueError as exc:
                    bad.append(f"line {i}: {exc}")
    finally:
        svc.close()
    console.print(f"{done} feedback rows recorded, {len(bad)} skipped")
    for line in bad[:20]:
        console.print(f"  {line}")


@app.command("coverage")
def coverage(
    svg: Annotated[Path | None, typer.Option(help="Write the heat map here (SVG).")] = None,
    days: Annotated[int, typer.Option(help="Organisations notified in the last N days.")
                    ] = 90,
    language: Annotated[str, typer.Option(help="nl or en (chart labels).")] = "en",
) -> None:
    """Per NIS2 sector and province: which partners cover it, and how many notified
    organisations are reachable only directly (the gaps in the network)."""
    import pyarrow as pa

    from cwn.network.coverage import compute_coverage, coverage_table
    from cwn.network.heatmap import heatmap_svg

    svc = services()
    with svc.engine.connect() as conn:
        orgs = conn.execute(text("SELECT id, sector, province FROM organizations")).all()
        rules = _scope_rows(conn)
        since = datetime.now(UTC) - timedelta(days=days)
        notified = [r[0] for r in conn.execute(text(
            "SELECT DISTINCT c.org_id FROM notification_cases nc "
            "JOIN cases c ON c.id = nc.case_id JOIN notifications n "
            "ON n.id = nc.notification_id WHERE n.state = 'sent' AND n.sent_at >= :s"),
            {"s": since})]
    svc.close()
    organisations = pa.table({"id": [o[0] for o in orgs], "sector": [o[1] for o in orgs],
                              "province": [o[2] for o in orgs]},
                             schema=pa.schema([("id", pa.string()), ("sector", pa.string()),
                                               ("province", pa.string())]))
    cells = compute_coverage(organisations, rules, pa.array(notified, pa.string()))
    t = Table(title=f"Network coverage (notified in the last {days} days)",
              title_justify="left")
    rows = coverage_table(cells)
    for col in ("sector", "province", "partners", "organisations", "notified",
                "direct only"):
        t.add_column(col, justify="right" if col in ("organisations", "notified",
                                                    "direct only") else "left")
    for r in rows:
        partners = r["partners"]
        t.add_row(str(r["sector"]), str(r["province"]),
                  ", ".join(partners) if isinstance(partners, list | tuple) else str(partners),
                  str(r["organisations"]), str(r["notified"]), str(r["direct_only"]))
    console.print(t)
    if svg is not None:
        svg.write_text(heatmap_svg(cells, language=language), encoding="utf-8")
        console.print(f"heat map: {svg}")


def _scope_rows(conn: Connection) -> Any:
    """One row per (partner, scope kind, value) of the agreements in force, with the
    organisations an ASN or prefix scope covers (from their registry assets)."""
    import ipaddress

    import pyarrow as pa

    today = datetime.now(UTC).date()
    assets = conn.execute(text(
        "SELECT org_id, type, value, asn FROM assets WHERE verified")).all()
    by_asn: dict[int, set[str]] = {}
    nets: list[tuple[Any, str]] = []
    for org_id, typ, value, asn in assets:
        if typ == "asn" and asn is not None:
            by_asn.setdefault(int(asn), set()).add(org_id)
        elif typ == "cidr":
            try:
                nets.append((ipaddress.ip_network(value, strict=False), org_id))
            except ValueError:
                continue
    out: dict[str, list[Any]] = {"partner_id": [], "kind": [], "value": [], "covered_orgs": []}

    def add(pid: str, kind: str, value: str, covered: list[str]) -> None:
        out["partner_id"].append(pid)
        out["kind"].append(kind)
        out["value"].append(value)
        out["covered_orgs"].append(covered)

    for a in conn.execute(select(Agreement).join(Partner, Partner.id == Agreement.partner_id)
                          .where(Partner.status == "active")):
        if (a.valid_from and a.valid_from > today) or (a.valid_until and a.valid_until < today):
            continue
        scope = a.scope or {}
        for s in scope.get("sectors", []):
            add(a.partner_id, "sector", s, [])
        for r in scope.get("regions", []):
            add(a.partner_id, "region", r, [])
        for o in scope.get("organisations", []):
            add(a.partner_id, "organisation", o, [])
        for asn in scope.get("asns", []):
            add(a.partner_id, "asn", str(asn), sorted(by_asn.get(int(asn), set())))
        for p in scope.get("prefixes", []) + scope.get("consumer_prefixes", []):
            net = ipaddress.ip_network(p, strict=False)
            covered = sorted({o for n, o in nets if n.version == net.version
                              and n.subnet_of(net)})
            add(a.partner_id, "prefix", p, covered)
    return pa.table(out, schema=pa.schema([
        ("partner_id", pa.string()), ("kind", pa.string()), ("value", pa.string()),
        ("covered_orgs", pa.list_(pa.string()))]))
