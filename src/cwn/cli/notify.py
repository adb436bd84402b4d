"""`cwn notify`, `cwn run`, `cwn cases …`, `cwn notifications …`, `cwn bounces ingest`.

Operators ask two questions of this part of cwn: "what went out?" and "why was X not told?";
every command answers from the stored decisions, never by recomputing them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.table import Table
from sqlalchemy import func, select, text

from cwn.archive.events import EventArchive
from cwn.cli.console import console, err_console, fail, services
from cwn.db.models import Organization
from cwn.db.models_contacts import ContactCandidate
from cwn.db.models_notify import Case, CaseDecision, Delivery, Notification, NotificationCase
from cwn.notify import Notifier, RunReport

cases_app = typer.Typer(help="Cases: one per organisation and finding.", no_args_is_help=True)
notifications_app = typer.Typer(help="Notifications and their delivery.", no_args_is_help=True)
bounces_app = typer.Typer(help="Delivery-status reports (bounces).", no_args_is_help=True)


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"


def print_run(report: RunReport) -> None:
    cases = report.cases
    title = "Notify (dry run: nothing changed)" if report.dry_run else "Notify"
    t = Table(title=f"{title} summary", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("reports folded in", f"{len(cases.reports) if cases else 0:,}")
    t.add_row("cases opened", f"{cases.opened if cases else 0:,}")
    t.add_row("cases seen again", f"{(cases.updated - cases.reopened) if cases else 0:,}")
    t.add_row("cases reopened", f"{cases.reopened if cases else 0:,}")
    t.add_row("cases resolved", f"{report.resolved:,}")
    t.add_row("notifications planned", f"{len(report.planned):,}")
    if not report.dry_run:
        t.add_row("messages queued", f"{report.queued:,}")
    if report.render_failed:
        t.add_row("render failures", f"{report.render_failed:,}")
    for reason, n in sorted(report.reasons().items()):
        t.add_row(f"not told: {reason}", f"{n:,}")
    if report.delivery is not None:
        d = report.delivery
        rate = d.sent / d.seconds if d.seconds > 0 else 0.0
        t.add_row("sent", f"{d.sent:,} ({rate:,.0f}/s)")
        t.add_row("deferred / bounced / failed", f"{d.deferred} / {d.bounced} / {d.failed}")
    else:
        t.add_row("due in outbox", f"{report.due_in_outbox:,}")
    console.print(t)
    if report.dry_run and report.planned:
        p = Table(title="Would send", title_justify="left")
        for col in ("recipient", "organisation", "language", "mode", "cases"):
            p.add_column(col)
        for item in report.planned[:200]:
            p.add_row(item.recipient, item.org_id, item.language, item.mode,
                      ", ".join(item.case_ids[:5]) + (" …" if len(item.case_ids) > 5 else ""))
        console.print(p)
    if report.dry_run and report.suppressed:
        s = Table(title="Would not tell", title_justify="left")
        for col in ("case", "organisation", "recipient", "reason"):
            s.add_column(col)
        for sup in report.suppressed[:200]:
            s.add_row(sup.case_id, sup.org_id, sup.recipient or "-", sup.reason)
        console.print(s)
    if report.delivery is not None:
        for e in report.delivery.errors[:20]:
            err_console.print(f"[yellow]delivery:[/] {e}")


def notify(
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Show what would be sent; change nothing.")]
    = False,
) -> None:
    """Fold new events into cases, route them, and deliver what is due."""
    svc = services()
    try:
        report = Notifier.from_services(svc).run(dry_run=dry_run)
    finally:
        svc.close()
    print_run(report)


def run(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest.")],
    feed: Annotated[str | None, typer.Option(help="Feed name to record.")] = None,
    report_type: Annotated[
        str | None, typer.Option("--report-type", help="Shadowserver report type override.")
    ] = None,
) -> None:
    """Ingest files, then notify."""
    from cwn.cli.ingest import ingest_with_progress

    svc = services()
    try:
        ok = ingest_with_progress(svc, paths, feed=feed, report_type=report_type)
        report = Notifier.from_services(svc).run()
    finally:
        svc.close()
    print_run(report)
    if not ok:
        raise typer.Exit(1)


# -- cases ---------------------------------------------------------------------------------


@cases_app.command("list")
def cases_list(
    org: Annotated[str | None, typer.Option("--org", help="Organisation id.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="open or resolved.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 100,
) -> None:
    """Cases, newest first."""
    svc = services()
    try:
        q = select(Case).order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)
        if org:
            q = q.where(Case.org_id == org)
        if state:
            q = q.where(Case.state == state)
        with svc.sessions() as s:
            rows = s.scalars(q).all()
    finally:
        svc.close()
    t = Table(title="Cases", title_justify="left")
    t.add_column("case", no_wrap=True)  # IDs are looked up: never fold them
    for col in ("organisation", "report type", "severity", "state", "first seen",
                "last seen", "events", "told"):
        t.add_column(col)
    for c in rows:
        t.add_row(c.id, c.org_id, c.report_type or "-", c.severity, c.state,
                  _when(c.first_seen), _when(c.last_seen), str(c.events_count),
                  str(c.notify_count))
    console.print(t)


def case_events(archive: EventArchive, org_id: str, fingerprint: str, limit: int = 50
                ) -> tuple[int, list[tuple[Any, ...]]]:
    """How many events a case has, and the newest `limit` of them, from the Parquet archive
    (the database keeps cases, not events)."""
    found = [t.select(["time.source", "source.ip", "source.port", "protocol.transport",
                       "_report"])
             for t in archive.scan('"organization" = ? AND "fingerprint" = ?',
                                   [org_id, fingerprint])]
    if not found:
        return 0, []
    table = pa.concat_tables(found)
    newest = table.sort_by([("time.source", "descending")]).slice(0, limit)
    return table.num_rows, [tuple(r.values()) for r in newest.to_pylist()]


@cases_app.command("show")
def cases_show(case_id: Annotated[str, typer.Argument(help="Case ID, e.g. CWN-2026-000123.")]
               ) -> None:
    """A case: its events, its history, and why each recipient was or was not told."""
    svc = services()
    try:
        with svc.sessions() as s:
            case = s.get(Case, case_id.strip().upper())
            if case is None:
                fail(f"unknown case {case_id!r}")
            org = s.get(Organization, case.org_id)
            candidates = s.scalars(select(ContactCandidate).where(
                ContactCandidate.owner_id == case.org_id)
                .order_by(ContactCandidate.rank < 0, ContactCandidate.rank,
                          ContactCandidate.id)).all()
            n_events, events = case_events(svc.events, case.org_id, case.fingerprint)
            history = s.scalars(select(CaseDecision).where(CaseDecision.case_id == case.id)
                                .order_by(CaseDecision.id)).all()
            notes = s.execute(
                select(Notification.id, Notification.recipient, Notification.state,
                       Notification.mode, Notification.created_at, Notification.sent_at)
                .join(NotificationCase, NotificationCase.notification_id == Notification.id)
                .where(NotificationCase.case_id == case.id)
                .order_by(Notification.created_at)).all()
    finally:
        svc.close()
    head = Table(title=f"Case {case.id}", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    owner_name = org.name if org else (candidates[0].owner_name if candidates else None)
    kind = "registered" if org else "found in public data (unsolicited)"
    for k, v in (("organisation", f"{case.org_id} ({owner_name or '?'}; {kind})"),
                 ("report type", case.report_type or "-"),
                 ("identifier", case.identifier or "-"), ("taxonomy", case.taxonomy or "-"),
                 ("severity", case.severity), ("TLP", case.tlp), ("state", case.state),
                 ("first seen", _when(case.first_seen)), ("last seen", _when(case.last_seen)),
                 ("resolved", _when(case.resolved_at)),
                 ("last notified", _when(case.last_notified_at)),
                 ("next reminder", _when(case.next_reminder_at)),
                 ("fingerprint", case.fingerprint)):
        head.add_row(k, v)
    console.print(head)
    ev = Table(title=f"Events ({n_events:,}, newest 50)", title_justify="left")
    for col in ("time (UTC)", "source.ip", "port", "transport", "report"):
        ev.add_column(col)
    for e in events:
        ev.add_row(_when(e[0]), e[1] or "-", str(e[2] or "-"), e[3] or "-", e[4][:12])
    console.print(ev)
    if candidates:
        c = Table(title="Contact candidates (rank 0 is told; why the others are not)",
                  title_justify="left")
        for col in ("rank", "address", "source", "confidence", "fetched", "why / from"):
            c.add_column(col)
        for cand in candidates:
            why = cand.reason or ("chosen: first usable source in policy order" if
                                  cand.rank == 0 else "fallback after a bounce or not-ours")
            c.add_row("-" if cand.rank < 0 else str(cand.rank), cand.email, cand.source,
                      f"{cand.confidence:.2f}", _when(cand.fetched_at),
                      f"{why}; {cand.detail or ''}"[:120])
        console.print(c)
    h = Table(title="History and decisions", title_justify="left")
    for col in ("at", "action", "reason", "recipient", "notification", "detail"):
        h.add_column(col)
    for d in history:
        h.add_row(_when(d.at), d.action, d.reason or "", d.recipient or "",
                  (d.notification_id or "")[:8], (d.detail or "")[:60])
    console.print(h)
    n = Table(title="Recipients told", title_justify="left")
    for col in ("notification", "recipient", "mode", "state", "created", "sent"):
        n.add_column(col)
    for row in notes:
        n.add_row(row[0], row[1], row[3], row[2], _when(row[4]), _when(row[5]))
    console.print(n)


# -- notifications -------------------------------------------------------------------------


@cases_app.command("feedback")
def cases_feedback(
    case_id: Annotated[str, typer.Argument(help="Case ID, e.g. CWN-2026-000123.")],
    verdict: Annotated[str, typer.Argument(help="not-ours: the told address says the "
                                           "finding is not theirs.")],
    address: Annotated[str | None, typer.Option(help="The address that answered (default: "
                                                "the last one told).")] = None,
) -> None:
    """Record a recipient's answer. "not-ours" lowers the confidence of that address and
    hands the case to the owner's next contact candidate."""
    if verdict != "not-ours":
        fail(f"unknown verdict {verdict!r}; expected not-ours")
    svc = services()
    try:
        notifier = Notifier.from_services(svc)
        with svc.engine.begin() as conn:
            query = select(Notification.id, Notification.recipient).join(
                NotificationCase, NotificationCase.notification_id == Notification.id).where(
                NotificationCase.case_id == case_id.strip().upper())
            if address:
                query = query.where(func.lower(Notification.recipient) == address.lower())
            row = conn.execute(query.order_by(Notification.created_at.desc()).limit(1)).first()
            if row is None:
                fail(f"case {case_id!r} was not told to {address or 'anyone'}")
            created = notifier.not_ours(conn, row[0], row[1])
        notifier.close()
    finally:
        svc.close()
    console.print(f"{row[1]}: not ours recorded; "
                  + (f"re-routed as {', '.join(created)}" if created
                     else "no other usable contact (reason stored)"))


@notifications_app.command("list")
def notifications_list(
    org: Annotated[str | None, typer.Option("--org", help="Organisation id.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="pending, queued, sent, …")]
    = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 100,
) -> None:
    """Notifications, newest first."""
    svc = services()
    try:
        q = (select(Notification, Delivery.state, Delivery.attempts)
             .outerjoin(Delivery, Delivery.notification_id == Notification.id)
             .order_by(Notification.created_at.desc(), Notification.id).limit(limit))
        if org:
            q = q.where(Notification.org_id == org)
        if state:
            q = q.where(Notification.state == state)
        with svc.sessions() as s:
            rows = s.execute(q).all()
            counts = Counter(dict(s.execute(
                select(Notification.state, func.count()).group_by(Notification.state)).all()))
    finally:
        svc.close()
    t = Table(title="Notifications " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
              title_justify="left")
    t.add_column("notification", no_wrap=True)
    for col in ("organisation", "recipient", "lang", "mode", "cases", "state",
                "delivery", "created"):
        t.add_column(col)
    for n, dstate, attempts in rows:
        t.add_row(n.id, n.org_id, n.recipient, n.language, n.mode, str(n.case_count), n.state,
                  f"{dstate or '-'} ({attempts or 0} tries)", _when(n.created_at))
    console.print(t)


@notifications_app.command("show")
def notifications_show(notification_id: Annotated[str, typer.Argument(help="Notification ID.")]
                       ) -> None:
    """A notification: recipient, cases, delivery state and errors."""
    svc = services()
    try:
        with svc.sessions() as s:
            n = s.get(Notification, notification_id.strip().lower())
            if n is None:
                fail(f"unknown notification {notification_id!r}")
            d = s.scalars(select(Delivery).where(Delivery.notification_id == n.id)).first()
            cases = s.execute(text(
                "SELECT c.id, c.report_type, c.severity, c.state FROM notification_cases nc "
                "JOIN cases c ON c.id = nc.case_id WHERE nc.notification_id = :n ORDER BY c.id"),
                {"n": n.id}).all()
    finally:
        svc.close()
    t = Table(title=f"Notification {n.id}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    rows = [("organisation", n.org_id), ("recipient", n.recipient), ("language", n.language),
            ("mode", n.mode), ("state", n.state), ("subject", n.subject or "-"),
            ("message id", n.message_id or "-"), ("created", _when(n.created_at)),
            ("due", _when(n.due_at)), ("sent", _when(n.sent_at)),
            ("rerouted from", n.rerouted_from or "-")]
    if d is not None:
        rows += [("delivery", f"{d.state}, {d.attempts} attempt(s)"),
                 ("return path", d.return_path), ("next attempt", _when(d.next_attempt_at)),
                 ("last error", d.last_error or "-"), ("size", f"{len(d.eml):,} bytes")]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    c = Table(title=f"Cases ({len(cases)})", title_justify="left")
    for col in ("case", "report type", "severity", "state"):
        c.add_column(col)
    for r in cases:
        c.add_row(r[0], r[1] or "-", r[2], r[3])
    console.print(c)


# -- bounces -------------------------------------------------------------------------------


@bounces_app.command("ingest")
def bounces_ingest(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, mbox files or directories.")],
) -> None:
    """Read delivery-status reports: disable dead addresses and re-route their cases."""
    from cwn.feedback.bounces import ingest_bounces

    missing = [p for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or directory: {missing[0]}")
    svc = services()
    try:
        notifier = Notifier.from_services(svc)
        with notifier.lock():  # SQLite: never deliver beside a running `cwn notify`
            outcomes = ingest_bounces(notifier, paths)
            delivery = notifier.outbox().deliver(workers=1)
    finally:
        svc.close()
    t = Table(title="Bounces", title_justify="left")
    for col in ("source", "recipient", "kind", "status", "notification", "action", "rerouted"):
        t.add_column(col)
    for o in outcomes:
        t.add_row(Path(o.source).name, o.recipient or "-", o.kind or "-", o.status or "-",
                  (o.notification_id or "-")[:8], o.action, str(len(o.rerouted_to)))
    console.print(t)
    if delivery.sent:
        console.print(f"re-routed notifications sent: {delivery.sent}")
