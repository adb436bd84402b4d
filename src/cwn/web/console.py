"""Read-only queries behind the operator console.

Every list is one SQL statement (plus one COUNT for paging) and every figure over events is
one DuckDB aggregate over the Parquet archive: the console must stay quick on an archive of
hundreds of millions of events, so nothing here walks rows in Python beyond the one page it
returns. The functions take a SQLAlchemy `Connection` or ORM `Session` (the portal's request
session) and return plain rows, so the CLI or the API can show the same figures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
from sqlalchemy import Connection, Row, Select, and_, func, literal, or_, select
from sqlalchemy.orm import Session

from cwn.archive.events import EventArchive
from cwn.db.base import utcnow
from cwn.db.models import AuditEntry, Organization, QuarantinedRow, Report
from cwn.db.models_notify import Bounce, Delivery, Notification
from cwn.db.models_partners import Agreement, Partner, PartnerContact
from cwn.db.models_web import AssetClaim, User
from cwn.web.paging import DEFAULT_PER_PAGE, Page, clamp_page

Conn = Connection | Session
AnyRow = Row[*tuple[Any, ...]]
AnySelect = Select[*tuple[Any, ...]]
def _paged(conn: Conn, query: AnySelect, page: int | None,
           per_page: int | None) -> Page[AnyRow]:
    p, n = clamp_page(page, per_page)
    total = int(conn.execute(
        select(func.count()).select_from(query.order_by(None).subquery())).scalar() or 0)
    rows = list(conn.execute(query.limit(n).offset((p - 1) * n)).all())
    return Page(rows, p, n, total)


def _count(conn: Conn, query: AnySelect) -> int:
    return int(conn.execute(query).scalar() or 0)


# -- dashboard ------------------------------------------------------------------------------------
def overview(conn: Conn, *, now: datetime | None = None) -> dict[str, int]:
    """The dashboard's figures. Event totals come from the report rows the pipeline keeps,
    not from the archive, so the dashboard never scans Parquet."""
    now = now or utcnow()
    day_ago = now - timedelta(days=1)
    week_ago = now - timedelta(days=7)
    sums = conn.execute(select(
        func.count(), func.coalesce(func.sum(Report.events), 0),
        func.coalesce(func.sum(Report.attributed), 0),
        func.coalesce(func.sum(Report.quarantined), 0),
        func.coalesce(func.sum(Report.events), 0) - func.coalesce(func.sum(Report.attributed),
                                                                  0),
    ).select_from(Report)).one()
    notif = dict(conn.execute(
        select(Notification.state, func.count()).group_by(Notification.state)).all())
    users = dict(conn.execute(
        select(User.status, func.count()).group_by(User.status)).all())
    return {
        "reports": int(sums[0]),
        "reports_24h": _count(conn, select(func.count()).where(Report.received_at >= day_ago)),
        "events": int(sums[1]),
        "attributed": int(sums[2]),
        "quarantined": int(sums[3]),
        "unattributed": int(sums[4]),
        "organizations": _count(conn, select(func.count()).select_from(Organization)),
        "partners": _count(conn, select(func.count()).select_from(Partner)),
        "agreements": _count(conn, select(func.count()).select_from(Agreement)),
        "notifications": sum(int(v) for v in notif.values()),
        "notifications_queued": int(notif.get("queued", 0)) + int(notif.get("pending", 0)),
        "notifications_failed": int(notif.get("failed", 0)) + int(notif.get("bounced", 0)),
        "bounces_7d": _count(conn, select(func.count()).where(Bounce.received_at >= week_ago)),
        "users": sum(int(v) for v in users.values()),
        "signups_pending": int(users.get("pending", 0)),
        "claims_open": _count(conn, select(func.count()).where(
            AssetClaim.state.in_(("pending", "review")))),
        "claims_review": _count(conn, select(func.count()).where(AssetClaim.state == "review")),
    }


# -- reports and quarantine -----------------------------------------------------------------------
_REPORT_COLUMNS = (
    Report.sha256, Report.file_name, Report.feed_name, Report.parser, Report.report_type,
    Report.report_date, Report.size, Report.rows, Report.events, Report.quarantined,
    Report.attributed, Report.received_at, Report.parsed_at,
)


def reports(conn: Conn, *, feed: str | None = None, report_type: str | None = None,
            page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE) -> Page[AnyRow]:
    """Ingested reports, newest first (columns of `reports`). `feed=""` means reports that
    came without a feed name."""
    q = select(*_REPORT_COLUMNS)
    if feed is not None:
        q = q.where(Report.feed_name.is_(None) if feed == "" else Report.feed_name == feed)
    if report_type:
        q = q.where(Report.report_type == report_type)
    return _paged(conn, q.order_by(Report.received_at.desc(), Report.sha256), page, per_page)


def report(conn: Conn, sha256: str) -> AnyRow | None:
    return conn.execute(select(*_REPORT_COLUMNS).where(Report.sha256 == sha256)).first()


def feeds(conn: Conn) -> list[AnyRow]:
    """Per feed: reports, last ingest and totals (feed_name, reports, last_received, rows,
    events, quarantined, attributed), most recently active first."""
    last = func.max(Report.received_at).label("last_received")
    return list(conn.execute(
        select(Report.feed_name, func.count().label("reports"), last,
               func.sum(Report.rows).label("rows"), func.sum(Report.events).label("events"),
               func.sum(Report.quarantined).label("quarantined"),
               func.sum(Report.attributed).label("attributed"))
        .group_by(Report.feed_name).order_by(last.desc(), Report.feed_name)).all())


def quarantine(conn: Conn, *, report: str | None = None, reason: str | None = None,
               page: int | None = 1,
               per_page: int | None = DEFAULT_PER_PAGE) -> Page[AnyRow]:
    """Quarantined rows with their file (id, report_sha256, file_name, feed_name, row, reason,
    content), in file order. `reason` matches case-insensitively anywhere in the reason."""
    q = (select(QuarantinedRow.id, QuarantinedRow.report_sha256, Report.file_name,
                Report.feed_name, QuarantinedRow.row, QuarantinedRow.reason,
                QuarantinedRow.content)
         .join(Report, Report.sha256 == QuarantinedRow.report_sha256))
    if report:
        q = q.where(QuarantinedRow.report_sha256 == report)
    if reason:
        q = q.where(func.lower(QuarantinedRow.reason).contains(reason.lower(), autoescape=True))
    return _paged(conn, q.order_by(QuarantinedRow.report_sha256, QuarantinedRow.row,
                                   QuarantinedRow.id), page, per_page)


def quarantine_reasons(conn: Conn, *, report: str | None = None,
                       limit: int = 20) -> list[tuple[str, int]]:
    """The most frequent quarantine reasons (for the filter's suggestions)."""
    n = func.count().label("n")
    q = select(QuarantinedRow.reason, n).group_by(QuarantinedRow.reason)
    if report:
        q = q.where(QuarantinedRow.report_sha256 == report)
    return [(str(r), int(c)) for r, c in
            conn.execute(q.order_by(n.desc(), QuarantinedRow.reason).limit(limit))]


# -- unattributed events (Parquet archive) --------------------------------------------------------
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(slots=True)
class Unattributed:
    """Events no organisation was found for, summarised: where attribution has gaps."""

    files: int = 0
    events: int = 0
    total: int = 0
    by_report_type: list[tuple[str | None, int]] = field(default_factory=list)
    top_asns: list[tuple[int | None, str | None, int]] = field(default_factory=list)
    top_networks: list[tuple[str, int]] = field(default_factory=list)
    top_countries: list[tuple[str | None, int]] = field(default_factory=list)


def _archive_files(archive: EventArchive, since: date | None) -> list[str]:
    """Parquet files, pruned by their date partition before DuckDB opens any."""
    out = []
    for path in archive.files():
        m = _DATE_DIR.match(path.parent.parent.name)
        if since is not None and m and m.group(1) < since.isoformat():
            continue
        out.append(str(path))
    return out


_UNATTRIBUTED_SQL = """
CREATE TEMP VIEW ev AS
SELECT report_type, "source.ip" AS ip, "source.asn" AS asn, "source.as_name" AS as_name,
       "source.network" AS network, "source.geolocation.cc" AS cc, organization
FROM read_parquet({files}, union_by_name=true, hive_partitioning=false);
CREATE TEMP TABLE un AS SELECT * FROM ev WHERE organization IS NULL;
"""

_NETWORK_SQL = (
    # The feed's own network when it has one, else the IPv4 /24 around the address, so a
    # cluster of unowned addresses shows up as one line.
    "SELECT COALESCE(network, "
    r"NULLIF(regexp_extract(ip, '^(\d+\.\d+\.\d+)\.\d+$', 1), '') || '.0/24') AS net, "
    "COUNT(*) AS n FROM un GROUP BY net HAVING net IS NOT NULL ORDER BY n DESC, net LIMIT ?")


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def unattributed(archive: EventArchive, *, since: date | None = None,
                 top: int = 20) -> Unattributed:
    """Counts of unattributed events by report type, and the source ASNs, networks and
    countries they come from most, over the archive (or the partitions since `since`)."""
    files = _archive_files(archive, since)
    out = Unattributed(files=len(files))
    if not files:
        return out
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    con = duckdb.connect()
    try:
        con.execute(_UNATTRIBUTED_SQL.format(files=listed))
        out.total = _one(con, "SELECT COUNT(*) FROM ev")
        out.events = _one(con, "SELECT COUNT(*) FROM un")
        out.by_report_type = [(r, int(n)) for r, n in con.execute(
            "SELECT report_type, COUNT(*) AS n FROM un GROUP BY report_type "
            "ORDER BY n DESC, report_type NULLS LAST").fetchall()]
        out.top_asns = [(None if a is None else int(a), name, int(n)) for a, name, n in
                        con.execute(
            "SELECT asn, MAX(as_name), COUNT(*) AS n FROM un WHERE asn IS NOT NULL "
            "GROUP BY asn ORDER BY n DESC, asn LIMIT ?", [top]).fetchall()]
        out.top_networks = [(str(net), int(n)) for net, n in
                            con.execute(_NETWORK_SQL, [top]).fetchall()]
        out.top_countries = [(cc, int(n)) for cc, n in con.execute(
            "SELECT upper(cc) AS c, COUNT(*) AS n FROM un WHERE cc IS NOT NULL GROUP BY c "
            "ORDER BY n DESC, c LIMIT ?", [top]).fetchall()]
    finally:
        con.close()
    return out


# -- partners -------------------------------------------------------------------------------------
def partners(conn: Conn) -> list[AnyRow]:
    """Partners with their number of agreements and contacts (id, name, type, status,
    maturity, functions, sectors, regions, agreements, contacts), by name."""
    agreements = (select(Agreement.partner_id, func.count().label("n"))
                  .group_by(Agreement.partner_id).subquery())
    contacts = (select(PartnerContact.partner_id, func.count().label("n"))
                .group_by(PartnerContact.partner_id).subquery())
    return list(conn.execute(
        select(Partner.id, Partner.name, Partner.type, Partner.status, Partner.maturity,
               Partner.functions, Partner.sectors, Partner.regions,
               func.coalesce(agreements.c.n, 0).label("agreements"),
               func.coalesce(contacts.c.n, 0).label("contacts"))
        .outerjoin(agreements, agreements.c.partner_id == Partner.id)
        .outerjoin(contacts, contacts.c.partner_id == Partner.id)
        .order_by(Partner.name, Partner.id)).all())


@dataclass(slots=True)
class PartnerDetail:
    partner: AnyRow
    agreements: list[AnyRow]
    contacts: list[AnyRow]
    admins: list[AnyRow]


def partner(conn: Conn, partner_id: str) -> PartnerDetail | None:
    """One partner with its agreements, contacts and portal admins; None when unknown."""
    p = conn.execute(select(*Partner.__table__.c).where(Partner.id == partner_id)).first()
    if p is None:
        return None
    agreements = list(conn.execute(select(*Agreement.__table__.c)
                                   .where(Agreement.partner_id == partner_id)
                                   .order_by(Agreement.id)).all())
    contacts = list(conn.execute(
        select(*PartnerContact.__table__.c).where(PartnerContact.partner_id == partner_id)
        .order_by(PartnerContact.priority, PartnerContact.email)).all())
    admins = list(conn.execute(
        select(User.id, User.email, User.name, User.status, User.last_login_at)
        .where(User.partner_id == partner_id).order_by(User.email)).all())
    return PartnerDetail(p, agreements, contacts, admins)


# -- notifications and bounces --------------------------------------------------------------------
def notifications(conn: Conn, *, state: str | None = None, org_id: str | None = None,
                  page: int | None = 1,
                  per_page: int | None = DEFAULT_PER_PAGE) -> Page[AnyRow]:
    """Notifications, newest first, with their delivery (id, org_id, recipient, language,
    mode, state, case_count, subject, created_at, sent_at, delivery_state, attempts,
    last_error, next_attempt_at, channel)."""
    q = (select(Notification.id, Notification.org_id, Notification.recipient,
                Notification.language, Notification.mode, Notification.state,
                Notification.case_count, Notification.subject, Notification.created_at,
                Notification.sent_at, Delivery.state.label("delivery_state"),
                Delivery.attempts, Delivery.last_error, Delivery.next_attempt_at,
                Delivery.channel)
         .outerjoin(Delivery, Delivery.notification_id == Notification.id))
    if state:
        q = q.where(Notification.state == state)
    if org_id:
        q = q.where(Notification.org_id == org_id)
    return _paged(conn, q.order_by(Notification.created_at.desc(), Notification.id),
                  page, per_page)


def notification_states(conn: Conn) -> list[tuple[str, int]]:
    n = func.count().label("n")
    return [(str(s), int(c)) for s, c in conn.execute(
        select(Notification.state, n).group_by(Notification.state)
        .order_by(n.desc(), Notification.state))]


def bounces(conn: Conn, *, kind: str | None = None, page: int | None = 1,
            per_page: int | None = DEFAULT_PER_PAGE) -> Page[AnyRow]:
    """Bounces received, newest first (id, received_at, recipient, org_id, kind, status,
    diagnostic, action_taken, notification_id)."""
    q = select(Bounce.id, Bounce.received_at, Bounce.recipient, Bounce.org_id, Bounce.kind,
               Bounce.status, Bounce.diagnostic, Bounce.action_taken, Bounce.notification_id)
    if kind:
        q = q.where(Bounce.kind == kind)
    return _paged(conn, q.order_by(Bounce.received_at.desc(), Bounce.id.desc()),
                  page, per_page)


# -- audit log ------------------------------------------------------------------------------------
def audit(conn: Conn, *, entity: str | None = None, actor: str | None = None,
          entity_id: str | None = None, page: int | None = 1,
          per_page: int | None = DEFAULT_PER_PAGE) -> Page[AnyRow]:
    """Audit entries, newest first (id, at, actor, action, entity, entity_id, before,
    after). `actor` and `entity_id` match case-insensitively anywhere."""
    q = select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action,
               AuditEntry.entity, AuditEntry.entity_id, AuditEntry.before, AuditEntry.after)
    if entity:
        q = q.where(AuditEntry.entity == entity)
    if actor:
        q = q.where(func.lower(AuditEntry.actor).contains(actor.lower(), autoescape=True))
    if entity_id:
        q = q.where(func.lower(AuditEntry.entity_id).contains(entity_id.lower(),
                                                               autoescape=True))
    return _paged(conn, q.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()),
                  page, per_page)


def audit_entities(conn: Conn) -> list[str]:
    return [str(e) for e in conn.execute(
        select(AuditEntry.entity).distinct().order_by(AuditEntry.entity)).scalars()]


def changed_fields(before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """What an audit entry changed: key -> (before, after), only keys that differ."""
    b, a = before or {}, after or {}
    return {k: (b.get(k), a.get(k)) for k in sorted(set(b) | set(a)) if b.get(k) != a.get(k)}


# -- accounts -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Signup:
    """A pending self-sign-up and the existing organisations it may belong to."""

    id: str
    email: str
    name: str | None
    language: str
    created_at: datetime
    organisation: str
    kvk: str | None
    note: str | None
    candidates: list[tuple[str, str]] = field(default_factory=list)
    """(organisation id, name) of registered organisations with the same KvK number or name."""


def _signup_fields(note: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (note or "").splitlines():
        key, _, value = line.partition(": ")
        out.setdefault(key, value)
    return out


def pending_signups(conn: Conn, *, limit: int = 200) -> list[Signup]:
    """Self-sign-ups waiting for an operator, oldest first (first come, first served), with
    matching organisations found in one query."""
    rows = conn.execute(
        select(User.id, User.email, User.name, User.language, User.created_at,
               User.signup_note)
        .where(User.status == "pending").order_by(User.created_at, User.email)
        .limit(limit)).all()
    out: list[Signup] = []
    for r in rows:
        f = _signup_fields(r.signup_note)
        out.append(Signup(r.id, r.email, r.name, r.language, r.created_at,
                          f.get("organisation", ""), f.get("kvk") or None,
                          f.get("note") or None))
    kvks = sorted({s.kvk for s in out if s.kvk})
    names = sorted({s.organisation.lower() for s in out if s.organisation})
    if kvks or names:
        conds = []
        if kvks:
            conds.append(Organization.kvk.in_(kvks))
        if names:
            conds.append(func.lower(Organization.name).in_(names))
        found = conn.execute(select(Organization.id, Organization.name, Organization.kvk)
                             .where(or_(*conds)).order_by(Organization.id)).all()
        for s in out:
            s.candidates = [(o.id, o.name) for o in found
                            if (s.kvk and o.kvk == s.kvk)
                            or o.name.lower() == s.organisation.lower()]
    return out


USER_ROLES: Sequence[str] = ("operator", "partner_admin", "org_admin", "org_user")
USER_STATES: Sequence[str] = ("invited", "pending", "active", "disabled")


def users_query() -> AnySelect:
    """Accounts with their organisation's name (id, email, name, role, org_id, org_name,
    partner_id, status, totp_enabled, language, created_at, last_login_at)."""
    return (select(User.id, User.email, User.name, User.role, User.org_id,
                   Organization.name.label("org_name"), User.partner_id, User.status,
                   User.totp_enabled, User.language, User.created_at, User.last_login_at)
            .outerjoin(Organization, Organization.id == User.org_id))


def users(conn: Conn, *, role: str | None = None, status: str | None = None,
          q: str | None = None, page: int | None = 1,
          per_page: int | None = DEFAULT_PER_PAGE) -> Page[AnyRow]:
    """Accounts of every role (columns of `users_query`), by e-mail address. `q` matches
    the address, name or organisation id."""
    query = users_query()
    if role:
        query = query.where(User.role == role)
    if status:
        query = query.where(User.status == status)
    if q:
        needle = q.strip().lower()
        query = query.where(or_(
            User.email.contains(needle, autoescape=True),
            func.lower(func.coalesce(User.name, literal(""))).contains(needle, autoescape=True),
            and_(User.org_id.is_not(None),
                 func.lower(User.org_id).contains(needle, autoescape=True))))
    return _paged(conn, query.order_by(User.email), page, per_page)
