"""Trend figures for the charts: the desk's daily intake and an organisation's cases per
week. One grouped SQL query each; at most a few hundred rows come back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from cwn.db.models import Report
from cwn.db.models_notify import Case
from cwn.web.charts import Series
from cwn.web.i18n import N_


def _conn(db: Connection | Session) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def intake(db: Connection | Session, *, days: int = 30, now: datetime | None = None
           ) -> tuple[list[str], list[Series]]:
    """Events received, attributed and quarantined per day (by report arrival)."""
    today = (now or datetime.now(UTC)).date()
    first = today - timedelta(days=days - 1)
    day = func.date(Report.received_at)
    rows = _conn(db).execute(
        select(day, func.sum(Report.events), func.sum(Report.attributed),
               func.sum(Report.quarantined))
        .where(Report.received_at >= datetime.combine(first, datetime.min.time(), UTC))
        .group_by(day)).all()
    by_day = {_day(r[0]): r for r in rows}
    labels, events, attributed, quarantined = [], [], [], []
    for i in range(days):
        d = first + timedelta(days=i)
        r = by_day.get(d)
        labels.append(d.strftime("%m-%d"))
        events.append(int(r[1] or 0) if r else 0)
        attributed.append(int(r[2] or 0) if r else 0)
        quarantined.append(int(r[3] or 0) if r else 0)
    return labels, [Series(N_("events"), events, "chart-a"),
                    Series(N_("attributed"), attributed, "chart-b"),
                    Series(N_("quarantined"), quarantined, "chart-c")]


def cases_per_week(db: Connection | Session, org_id: str, *, weeks: int = 12,
                   now: datetime | None = None) -> tuple[list[str], list[int], list[int]]:
    """Cases opened and resolved per ISO week (Monday first), oldest week first."""
    today = (now or datetime.now(UTC)).date()
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time(), UTC)
    conn = _conn(db)
    opened_day, resolved_day = func.date(Case.first_seen), func.date(Case.resolved_at)
    opened_rows = conn.execute(select(opened_day, func.count()).where(
        Case.org_id == org_id, Case.first_seen >= since).group_by(opened_day)).all()
    resolved_rows = conn.execute(select(resolved_day, func.count()).where(
        Case.org_id == org_id, Case.resolved_at >= since).group_by(resolved_day)).all()

    def per_week(rows: Any) -> list[int]:
        out = [0] * weeks
        for d, n in rows:
            k = (_day(d) - first).days // 7
            if 0 <= k < weeks:
                out[k] += int(n)
        return out

    labels = [(first + timedelta(weeks=k)).strftime("%m-%d") for k in range(weeks)]
    return labels, per_week(opened_rows), per_week(resolved_rows)
