"""`cwn status`: what the store holds, at a glance."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy import func, select

from cwn.cli.console import console, services
from cwn.db.models import Asset, Contact, Organization, QuarantinedRow, Report


def status() -> None:
    """Counts of the registry, reports, events and quarantine."""
    svc = services()
    with svc.engine.connect() as conn:
        def scalar(q: object) -> int:
            return int(conn.execute(q).scalar() or 0)  # type: ignore[call-overload]

        rows = [
            ("database", svc.settings.db_url.split("@")[-1]),
            ("home", str(svc.settings.home.resolve())),
            ("registry version", str(svc.registry_version())),
            ("organisations", f"{scalar(select(func.count()).select_from(Organization)):,}"),
            ("assets (verified)", f"{scalar(select(func.count()).select_from(Asset)):,} "
             f"({scalar(select(func.count()).where(Asset.verified.is_(True))):,})"),
            ("contacts", f"{scalar(select(func.count()).select_from(Contact)):,}"),
            ("reports", f"{scalar(select(func.count()).select_from(Report)):,}"),
            ("events", f"{scalar(select(func.sum(Report.events))):,}"),
            ("  attributed", f"{scalar(select(func.sum(Report.attributed))):,}"),
            ("  unattributed",
             f"{scalar(select(func.sum(Report.events - Report.attributed))):,}"),
            ("quarantined rows", f"{scalar(select(func.count()).select_from(QuarantinedRow)):,}"),
        ]
        last = conn.execute(select(func.max(Report.received_at))).scalar()
        rows.append(("last ingest", str(last) if last else "never"))
        by_type = conn.execute(
            select(Report.report_type, func.sum(Report.events)).group_by(Report.report_type)
            .order_by(func.sum(Report.events).desc()).limit(10)).all()
    table = Table(title="cwn status", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if by_type:
        t = Table(title="Events by report type (top 10)", title_justify="left")
        t.add_column("report type")
        t.add_column("events", justify="right")
        for rt, n in by_type:
            t.add_row(rt or "-", f"{n:,}")
        console.print(t)
    svc.close()
