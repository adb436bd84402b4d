"""The organisation's inbox: its cases, notifications and events, for the portal pages and
the REST API alike (one set of queries, so both show the same thing).

Every function takes the organisation id and scopes by it in SQL; there is no way to ask
for "a case" without saying whose. Lists select only the columns they show (Core `select`,
no ORM objects per row) and paginate with offset and a count: the inbox's order is
`(org_id, last_seen)`, which an index serves. Events are not in the database but in the
Parquet archive, read with DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import duckdb
from sqlalchemy import Connection, Integer, String, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from cwn.archive.events import EventArchive
from cwn.db.base import UTCDateTime
from cwn.db.models_notify import Case, CaseDecision, Notification, NotificationCase
from cwn.events.fields import SEVERITIES, TLP_LEVELS
from cwn.web.paging import MAX_PER_PAGE, Page

Db = Connection | Session

STATES: tuple[str, ...] = ("open", "resolved")
CASE_EVENTS_SHOWN = 100
"""Events on the case page (newest first); the page says how many there are in all."""


class InboxInputError(ValueError):
    """A filter value that cannot be right (the pages and the API answer 400/422)."""


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """The inbox filters; None means "any". `since`/`until` bound `last_seen`; `q` is a
    case id (or part of one) or part of the finding's identifier."""

    state: str | None = None
    report_type: str | None = None
    severity: str | None = None
    taxonomy: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in STATES:
            raise InboxInputError(f"state must be one of {', '.join(STATES)}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise InboxInputError(f"severity must be one of {', '.join(SEVERITIES)}")
        if self.since and self.until and self.since > self.until:
            raise InboxInputError("since must not be after until")

    @classmethod
    def parse(cls, **values: Any) -> CaseFilter:
        """From query parameters: blank strings mean "any"."""
        clean: dict[str, Any] = {k: (v.strip() or None) if isinstance(v, str) else v
                                 for k, v in values.items()}
        for name in ("severity", "state"):
            if isinstance(clean.get(name), str):
                clean[name] = clean[name].lower()
        return cls(**clean)

    def is_empty(self) -> bool:
        return not any((self.state, self.report_type, self.severity, self.taxonomy,
                        self.since, self.until, self.q))


def check_paging(page: int, per_page: int) -> tuple[int, int]:
    if page < 1:
        raise InboxInputError("page starts at 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InboxInputError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    return page, per_page


def normalise_case_id(case_id: str) -> str:
    return case_id.strip().upper()


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# -- cases ---------------------------------------------------------------------------------

LIST_COLUMNS = (Case.id, Case.report_type, Case.identifier, Case.taxonomy, Case.severity,
                Case.tlp, Case.state, Case.first_seen, Case.last_seen, Case.events_count,
                Case.notify_count, Case.last_notified_at, Case.resolved_at)
"""What a case list shows (and the API's case summary)."""
_LIST_KEYS = tuple(c.key for c in LIST_COLUMNS)

DETAIL_COLUMNS = (*LIST_COLUMNS, Case.org_id, Case.fingerprint, Case.reopened_count,
                  Case.created_at, Case.updated_at)


_EQUAL_FILTERS = {"state": Case.state, "report_type": Case.report_type,
                  "severity": Case.severity, "taxonomy": Case.taxonomy}


def _case_params(org_id: str, f: CaseFilter) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The filter's shape (which filters are set) and its bound values. Statements are
    built once per shape (`_case_statements`): building and cache-keying a SQLAlchemy
    statement per request cost more than running it."""
    params: dict[str, Any] = {"org_id": org_id}
    for name in ("state", "report_type", "severity", "taxonomy", "since", "until"):
        value = getattr(f, name)
        if value:
            params[name] = value
    if f.q:
        text = f.q.strip()[:100]
        params["q_id"] = _like(text.upper())
        params["q_identifier"] = _like(text.lower())
    return tuple(params), params


@lru_cache(maxsize=256)
def _case_statements(shape: tuple[str, ...], dialect: str | None) -> tuple[Any, Any]:
    """(count, page) statements for one filter shape, with bound parameters only. With a
    `dialect`, the page's rows are JSON objects rendered by that database (`_json_row`)."""
    cond: list[Any] = [Case.org_id == bindparam("org_id")]
    cond += [_EQUAL_FILTERS[name] == bindparam(name) for name in shape if name in _EQUAL_FILTERS]
    if "since" in shape:
        cond.append(Case.last_seen >= bindparam("since", type_=Case.last_seen.type))
    if "until" in shape:
        cond.append(Case.last_seen <= bindparam("until", type_=Case.last_seen.type))
    if "q_id" in shape:
        cond.append(or_(Case.id.like(bindparam("q_id"), escape="\\"),
                        func.lower(Case.identifier).like(bindparam("q_identifier"),
                                                         escape="\\")))
    count = select(func.count()).select_from(Case).where(*cond)
    columns = (_json_row(dialect),) if dialect else LIST_COLUMNS
    page = (select(*columns).where(*cond).order_by(Case.last_seen.desc(), Case.id.desc())
            .limit(bindparam("limit", type_=Integer))
            .offset(bindparam("offset", type_=Integer)))
    return count, page


def _json_time(column: Any, dialect: str) -> str:
    """SQL for RFC 3339 UTC text of a timestamp column, written the way pydantic writes a
    datetime (no fraction when it is zero); NULL stays NULL. SQLite keeps UTCDateTime as
    `YYYY-MM-DD HH:MM:SS.ffffff` text, PostgreSQL as timestamptz."""
    col = f"{column.table.name}.{column.name}"
    if dialect == "sqlite":
        return (f"CASE WHEN substr({col}, 20) = '.000000' "
                f"THEN replace(substr({col}, 1, 19), ' ', 'T') || 'Z' "
                f"ELSE replace({col}, ' ', 'T') || 'Z' END")
    utc = f"({col} AT TIME ZONE 'UTC')"
    return (f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN to_char({utc}, 'US') = "
            f"'000000' THEN '' ELSE '.' || to_char({utc}, 'US') END || 'Z'")


def _json_row(dialect: str) -> Any:
    """One case summary as JSON text, built by the database: the API's busiest list then
    costs Python one string per row instead of thirteen values, a dict and a timestamp
    conversion each (measured: the row work was a third of a request)."""
    parts: list[str] = []
    for c in LIST_COLUMNS:
        value = (_json_time(c, dialect) if isinstance(c.type, UTCDateTime)
                 else f"{c.table.name}.{c.name}")
        parts += [f"'{c.key}'", value]
    if dialect == "sqlite":
        return literal_column(f"json_object({', '.join(parts)})", String)
    if dialect == "postgresql":
        return literal_column(f"json_build_object({', '.join(parts)})::text", String)
    raise NotImplementedError(f"no JSON rendering for {dialect}")


@lru_cache(maxsize=256)
def _combined_pg(shape: tuple[str, ...]) -> Any:
    """PostgreSQL: the total and the page's JSON items in one statement, so one round
    trip and one snapshot (the items joined by commas, in the page's order)."""
    count, page = _case_statements(shape, "postgresql")
    rows = page.with_only_columns(_json_row("postgresql").label("j"), Case.last_seen,
                                  Case.id).subquery()
    items = select(func.string_agg(rows.c.j, aggregate_order_by(
        literal_column("','"), rows.c.last_seen.desc(), rows.c.id.desc())))
    return select(count.scalar_subquery(), items.scalar_subquery())


def _core(db: Db) -> Connection:
    """The session's connection: Core statements skip the ORM's per-statement work."""
    return db.connection() if isinstance(db, Session) else db


def _case_page(db: Db, org_id: str, f: CaseFilter | None, page: int, per_page: int,
               as_json: bool) -> tuple[list[Any], int]:
    page, per_page = check_paging(page, per_page)
    conn = _core(db)
    shape, params = _case_params(org_id, f or CaseFilter())
    if as_json and conn.dialect.name == "postgresql":
        total_, joined = conn.execute(_combined_pg(shape), {
            **params, "limit": per_page, "offset": (page - 1) * per_page}).one()
        return ([joined] if joined else []), int(total_ or 0)
    count, page_q = _case_statements(shape, conn.dialect.name if as_json else None)
    total = int(conn.execute(count, params).scalar() or 0)
    if total <= (page - 1) * per_page:
        return [], total
    result = conn.execute(page_q, {**params, "limit": per_page,
                                   "offset": (page - 1) * per_page})
    if as_json:
        return list(result.scalars()), total
    return [dict(zip(_LIST_KEYS, r, strict=True)) for r in result], total


def list_cases(db: Db, org_id: str, f: CaseFilter | None = None, *, page: int = 1,
               per_page: int = 50) -> Page[dict[str, Any]]:
    """The organisation's cases, most recently seen first."""
    items, total = _case_page(db, org_id, f, page, per_page, as_json=False)
    return Page(items, page, per_page, total)


def list_cases_json(db: Db, org_id: str, f: CaseFilter | None = None, *, page: int = 1,
                    per_page: int = 50) -> tuple[bytes, int]:
    """The same page as `list_cases`, as a JSON array of case summaries (the API's
    `CaseSummary`), and the total."""
    items, total = _case_page(db, org_id, f, page, per_page, as_json=True)
    return ("[" + ",".join(items) + "]").encode(), total


def get_case(db: Db, org_id: str, case_id: str) -> dict[str, Any] | None:
    """One case of the organisation, or None (also when it is another organisation's)."""
    row = db.execute(select(*DETAIL_COLUMNS).where(
        Case.id == normalise_case_id(case_id), Case.org_id == org_id)).first()
    return dict(row._mapping) if row is not None else None


def case_org(db: Db, case_id: str) -> str | None:
    """Whose case this is: only for checking a case key, never shown."""
    return db.execute(select(Case.org_id).where(
        Case.id == normalise_case_id(case_id))).scalar()


@dataclass(frozen=True, slots=True)
class Facets:
    """The values the inbox's filter menus offer (those the organisation has)."""

    report_types: list[str] = field(default_factory=list)
    taxonomies: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=lambda: list(SEVERITIES))
    open: int = 0
    resolved: int = 0


def facets(db: Db, org_id: str) -> Facets:
    rows = db.execute(select(Case.report_type, Case.taxonomy, Case.state, func.count())
                      .where(Case.org_id == org_id)
                      .group_by(Case.report_type, Case.taxonomy, Case.state)).all()
    return Facets(report_types=sorted({r[0] for r in rows if r[0]}),
                  taxonomies=sorted({r[1] for r in rows if r[1]}),
                  open=sum(int(r[3]) for r in rows if r[2] == "open"),
                  resolved=sum(int(r[3]) for r in rows if r[2] == "resolved"))


HISTORY_ACTIONS = ("opened", "reopened", "resolved", "notified", "digest", "rerouted",
                   "feedback", "partner_feedback")
"""Decisions a recipient may see about its own case. Suppression reasons name other
parties (partners, other contacts, the public candidates) and stay with the desk."""


def case_history(db: Db, case_id: str, *, show_recipients: bool) -> list[dict[str, Any]]:
    """The case's history as the recipient may see it, oldest first. Addresses (which
    contact was told) only for signed-in members of the organisation."""
    rows = db.execute(select(CaseDecision.at, CaseDecision.action, CaseDecision.reason,
                             CaseDecision.recipient, CaseDecision.notification_id)
                      .where(CaseDecision.case_id == case_id,
                             CaseDecision.action.in_(HISTORY_ACTIONS))
                      .order_by(CaseDecision.id)).all()
    out = []
    for r in rows:
        item = dict(r._mapping)
        if not show_recipients:
            item["recipient"] = None
            item["notification_id"] = None
        out.append(item)
    return out


def case_notifications(db: Db, org_id: str, case_id: str) -> list[dict[str, Any]]:
    """The organisation's notifications that reported this case."""
    q = (select(Notification.id, Notification.recipient, Notification.language,
                Notification.mode, Notification.state, Notification.created_at,
                Notification.sent_at, Notification.subject)
         .join(NotificationCase, NotificationCase.notification_id == Notification.id)
         .where(NotificationCase.case_id == normalise_case_id(case_id),
                Notification.org_id == org_id)
         .order_by(Notification.created_at, Notification.id))
    return [dict(r._mapping) for r in db.execute(q)]


def mailed_reports(db: Db, case_id: str) -> list[str]:
    """The reports whose events went out in a mail about this case: what a key holder (who
    only has the mail) may see of the case's events."""
    rows = db.execute(
        select(NotificationCase.run_id).join(
            Notification, Notification.id == NotificationCase.notification_id)
        .where(NotificationCase.case_id == case_id, NotificationCase.run_id.is_not(None),
               Notification.state.in_(("queued", "sent", "bounced", "rejected")))
        .distinct()).scalars().all()
    if not rows:
        return []
    from cwn.db.models_notify import NotifyReport

    return list(db.execute(select(NotifyReport.report_sha256).where(
        NotifyReport.run_id.in_(list(rows)))).scalars().all())


# -- notifications -------------------------------------------------------------------------

NOTIFICATION_COLUMNS = (Notification.id, Notification.recipient, Notification.language,
                        Notification.mode, Notification.state, Notification.case_count,
                        Notification.subject, Notification.created_at, Notification.queued_at,
                        Notification.sent_at, Notification.rerouted_from)


def list_notifications(db: Db, org_id: str, *, page: int = 1, per_page: int = 50,
                       state: str | None = None) -> Page[Any]:
    """The organisation's notifications, newest first, each with its case ids."""
    page, per_page = check_paging(page, per_page)
    cond: list[Any] = [Notification.org_id == org_id]
    if state:
        cond.append(Notification.state == state)
    total = int(db.execute(select(func.count()).select_from(Notification)
                           .where(*cond)).scalar() or 0)
    items = [dict(r._mapping) for r in db.execute(
        select(*NOTIFICATION_COLUMNS).where(*cond)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(per_page).offset((page - 1) * per_page))]
    ids = [i["id"] for i in items]
    by_note: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for nid, cid in db.execute(select(NotificationCase.notification_id,
                                          NotificationCase.case_id)
                                   .where(NotificationCase.notification_id.in_(ids))
                                   .order_by(NotificationCase.case_id)):
            by_note[nid].append(cid)
    for i in items:
        i["case_ids"] = by_note[i["id"]]
    return Page(items, page, per_page, total)


def get_notification(db: Db, org_id: str, notification_id: str) -> dict[str, Any] | None:
    """One notification of the organisation with summaries of its cases."""
    row = db.execute(select(*NOTIFICATION_COLUMNS).where(
        Notification.id == notification_id.strip().lower(),
        Notification.org_id == org_id)).first()
    if row is None:
        return None
    item = dict(row._mapping)
    item["cases"] = [dict(r._mapping) for r in db.execute(
        select(*LIST_COLUMNS).join(NotificationCase, NotificationCase.case_id == Case.id)
        .where(NotificationCase.notification_id == item["id"], Case.org_id == org_id)
        .order_by(Case.id))]
    return item


# -- events (the Parquet archive) ----------------------------------------------------------

EVENT_COLUMNS: tuple[str, ...] = (
    "time.source", "source.ip", "source.port", "protocol.transport", "source.asn",
    "source.fqdn", "source.reverse_dns", "classification.taxonomy", "classification.type",
    "classification.identifier", "report_type", "feed.name", "severity", "tlp",
    "fingerprint")
"""The event fields the inbox and the API show (IntelMQ names)."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    report_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ip: str | None = None
    fingerprint: str | None = None
    reports: Sequence[str] | None = None  # only these reports (what a key holder was sent)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _event_query(archive: EventArchive, org_id: str, f: EventFilter
                 ) -> tuple[str, list[Any]] | None:
    files = archive.files()
    if f.reports is not None:
        # Files are named after their report's sha256: read only those (a case page that
        # shows what was mailed never scans the whole archive).
        wanted = set(f.reports)
        files = [p for p in files if p.stem in wanted]
    if not files:
        return None
    file_list = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    where = ['"organization" = ?']
    params: list[Any] = [org_id]
    if f.fingerprint is not None:
        where.append('"fingerprint" = ?')
        params.append(f.fingerprint)
    if f.report_type:
        where.append('"report_type" = ?')
        params.append(f.report_type)
    if f.since:
        where.append('"time.source" >= ?')
        params.append(f.since)
    if f.until:
        where.append('"time.source" <= ?')
        params.append(f.until)
    if f.ip:
        where.append('"source.ip" = ?')
        params.append(f.ip)
    if f.reports is not None:
        where.append('"_report" IN (' + ", ".join("?" * len(f.reports)) + ")")
        params.extend(f.reports)
    cols = ", ".join(_q(c) for c in EVENT_COLUMNS)
    sql = (f"SELECT {cols}, COUNT(*) OVER () AS _total FROM read_parquet([{file_list}], "
           f"union_by_name=true, hive_partitioning=false) WHERE {' AND '.join(where)} "
           'ORDER BY "time.source" DESC NULLS LAST, "_report", "_row"')
    return sql, params


def _events(archive: EventArchive, org_id: str, f: EventFilter, limit: int, offset: int
            ) -> tuple[int, list[dict[str, Any]]]:
    built = _event_query(archive, org_id, f)
    if built is None:
        return 0, []
    sql, params = built
    con = duckdb.connect()
    try:
        table = con.sql(f"{sql} LIMIT {int(limit)} OFFSET {int(offset)}",
                        params=params).to_arrow_table()
        if table.num_rows == 0 and offset:
            n = con.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()
            return int(n[0]) if n else 0, []
    finally:
        con.close()
    if table.num_rows == 0:
        return 0, []
    total = int(table.column("_total")[0].as_py())
    return total, table.drop_columns(["_total"]).to_pylist()


def case_events(archive: EventArchive, org_id: str, fingerprint: str, *,
                reports: Sequence[str] | None = None, limit: int = CASE_EVENTS_SHOWN,
                offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """(how many events the case has, the newest `limit` of them)."""
    return _events(archive, org_id, EventFilter(fingerprint=fingerprint, reports=reports),
                   limit, offset)


def list_events(db: Db, archive: EventArchive, org_id: str, f: EventFilter, *,
                page: int = 1, per_page: int = 50) -> Page[Any]:
    """The organisation's events, newest first, each with the id of its case."""
    page, per_page = check_paging(page, per_page)
    total, rows = _events(archive, org_id, f, per_page, (page - 1) * per_page)
    fps = sorted({r["fingerprint"] for r in rows if r.get("fingerprint")})
    cases: dict[str, str] = {}
    if fps:
        cases = {fp: cid for fp, cid in db.execute(
            select(Case.fingerprint, Case.id).where(
                Case.org_id == org_id, Case.fingerprint.in_(bindparam("fps", expanding=True))),
            {"fps": fps})}
    for r in rows:
        r["case_id"] = cases.get(r.get("fingerprint") or "")
    return Page(rows, page, per_page, total)


def case_fingerprint(db: Db, org_id: str, case_id: str) -> str | None:
    return db.execute(select(Case.fingerprint).where(
        Case.id == normalise_case_id(case_id), Case.org_id == org_id)).scalar()


def tlp_rank(level: str | None) -> int:
    """Position on the TLP scale (CLEAR lowest); unknown labels count as the strictest."""
    value = (level or "").upper()
    value = "CLEAR" if value == "WHITE" else value
    return TLP_LEVELS.index(value) if value in TLP_LEVELS else len(TLP_LEVELS)
