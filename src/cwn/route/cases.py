"""Events → cases, in bulk: a run's new events are folded into cases with set operations.

A run can carry a million events, so nothing here touches one event at a time in Python:
DuckDB aggregates the new reports' Parquet files per (organisation, fingerprint), the result
goes into `case_staging` in one bulk insert, existing cases are updated by one UPDATE … FROM,
new cases are
inserted by one INSERT … SELECT that numbers them with ROW_NUMBER() from a block of case
numbers reserved in `case_counters`. All of it runs inside the caller's transaction, which
also writes the routing decisions and the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.sql.elements import TextClause

from cwn.archive.events import EventArchive
from cwn.db.base import UTCDateTime
from cwn.db.bulk import insert_table
from cwn.db.models_notify import CaseCounter
from cwn.events.fields import SEVERITIES, TLP_LEVELS


def _rank_sql(expr: str, scale: tuple[str, ...], default: int,
              aliases: dict[str, int] | None = None) -> str:
    """`CASE expr WHEN 'name' THEN rank ... END` over one of the catalogue's ordered scales."""
    ranks = {name: i for i, name in enumerate(scale)} | (aliases or {})
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in ranks.items())
    return f"CASE {expr} {whens} ELSE {default} END"


def _name_sql(expr: str, scale: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(scale) if i)
    return f"CASE {expr} {whens} ELSE '{scale[0]}' END"


_SEV_RANK_SQL = _rank_sql("lower(e.severity)", SEVERITIES, SEVERITIES.index("medium"))
_TLP_RANK_SQL = _rank_sql("upper(e.tlp)", TLP_LEVELS, TLP_LEVELS.index("AMBER"), {"WHITE": 0})
_SEV_NAME_SQL = _name_sql("s.sev_rank", SEVERITIES)
_TLP_NAME_SQL = _name_sql("s.tlp_rank", TLP_LEVELS)


@dataclass(slots=True)
class CaseRun:
    """What folding one run's reports into cases did."""

    run_id: str
    reports: list[str] = field(default_factory=list)
    staged: int = 0
    opened: int = 0
    updated: int = 0
    reopened: int = 0
    resolved: int = 0


def _t(sql: str) -> TextClause:
    """Text SQL whose :now goes through UTCDateTime (SQLite stores datetimes as text)."""
    if ":now" not in sql:
        return text(sql)
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime))


def case_number_sql(dialect: str) -> str:
    """`CWN-YYYY-NNNNNN` from :prefix, :base and the row number, on either backend."""
    n = "(:base + ROW_NUMBER() OVER (ORDER BY s.id))"
    if dialect == "sqlite":
        return f":prefix || printf('%06d', {n})"
    return (f":prefix || CASE WHEN {n} < 1000000 THEN lpad(CAST({n} AS TEXT), 6, '0') "
            f"ELSE CAST({n} AS TEXT) END")


def reserve_case_numbers(conn: Connection, year: int, n: int) -> int:
    """Reserve `n` numbers for `year`; returns the last number used before the block."""
    row = conn.execute(select(CaseCounter.value).where(CaseCounter.year == year)
                       .with_for_update()).first()
    if row is None:
        conn.execute(insert(CaseCounter).values(year=year, value=n))
        return 0
    conn.execute(update(CaseCounter).where(CaseCounter.year == year)
                 .values(value=CaseCounter.value + n))
    return int(row[0])


def claim_reports(conn: Connection, run_id: str, now: datetime) -> list[str]:
    """Take every parsed report no run has folded in yet; the mark commits with the run."""
    conn.execute(_t(
        "INSERT INTO notify_reports (report_sha256, run_id, processed_at) "
        "SELECT r.sha256, CAST(:run AS VARCHAR(36)), :now FROM reports r "
        "WHERE r.parsed_at IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM notify_reports n WHERE n.report_sha256 = r.sha256)"),
        {"run": run_id, "now": now})
    return [r[0] for r in conn.execute(
        text("SELECT report_sha256 FROM notify_reports WHERE run_id = :run "
             "ORDER BY report_sha256"), {"run": run_id})]


_STAGE_SQL = (
    "SELECT e.organization AS org_id, e.fingerprint AS fingerprint, "
    "MAX(COALESCE(e.report_type, m.report_type)) AS report_type, "
    'MAX(e."classification.identifier") AS identifier, '
    'MAX(e."classification.taxonomy") AS taxonomy, '
    f"CAST(MAX({_SEV_RANK_SQL}) AS SMALLINT) AS sev_rank, "
    f"CAST(MAX({_TLP_RANK_SQL}) AS SMALLINT) AS tlp_rank, "
    'MIN(e."time.source") AS first_seen, MAX(e."time.source") AS last_seen, '
    "MAX(m.report_date) AS report_date, COUNT(*) AS n_events "
    "FROM read_parquet({files}, filename=true, union_by_name=true, hive_partitioning=false) e "
    "JOIN reps m ON m.file = e.filename "
    "WHERE e.organization IS NOT NULL AND e.fingerprint IS NOT NULL "
    "GROUP BY e.organization, e.fingerprint "
    # DuckDB groups in parallel: order the result so case numbers do not depend on threads
    "ORDER BY e.organization, e.fingerprint")


def aggregate_reports(archive: EventArchive, reports: list[tuple[str, str, str | None,
                                                                   str | None]]) -> pa.Table:
    """(organisation, fingerprint) aggregates of the events of `reports` (sha256, report
    date, feed, report type), read from the Parquet archive by DuckDB."""
    paths = [(str(archive.path_for(d, f, sha)), d, rt) for sha, d, f, rt in reports]
    paths = [p for p in paths if Path(p[0]).is_file()]
    if not paths:
        return pa.table({})
    reps = pa.table({"file": [p[0] for p in paths], "report_date": [p[1] for p in paths],
                     "report_type": [p[2] for p in paths]})
    files = "[" + ", ".join("'" + p[0].replace("'", "''") + "'" for p in paths) + "]"
    con = duckdb.connect()
    try:
        con.register("reps", reps)
        return con.sql(_STAGE_SQL.format(files=files)).to_arrow_table()
    finally:
        con.close()


def fold_events(conn: Connection, run_id: str, now: datetime,
                archive: EventArchive) -> CaseRun:
    """Open, update and reopen the cases for the events of the reports this run claimed."""
    run = CaseRun(run_id)
    run.reports = claim_reports(conn, run_id, now)
    if not run.reports:
        return run
    p = {"run": run_id, "now": now}
    reports = [(r[0], r[1], r[2], r[3]) for r in conn.execute(text(
        "SELECT r.sha256, r.report_date, r.feed_name, r.report_type FROM reports r "
        "JOIN notify_reports n ON n.report_sha256 = r.sha256 WHERE n.run_id = :run "
        "ORDER BY r.sha256"), p)]
    staged = aggregate_reports(archive, reports)
    if staged.num_rows:
        staged = staged.append_column("run_id", pa.repeat(pa.scalar(run_id), staged.num_rows))
        insert_table(conn, "case_staging", staged)
    run.staged = int(conn.execute(text(
        "SELECT COUNT(*) FROM case_staging WHERE run_id = :run"), p).scalar() or 0)
    if not run.staged:
        return run
    # Existing cases: link, then update them all in one statement.
    conn.execute(text(
        "UPDATE case_staging SET "
        "case_id = (SELECT c.id FROM cases c WHERE c.org_id = case_staging.org_id "
        "AND c.fingerprint = case_staging.fingerprint), "
        "prev_state = (SELECT c.state FROM cases c WHERE c.org_id = case_staging.org_id "
        "AND c.fingerprint = case_staging.fingerprint) WHERE run_id = :run"), p)
    run.reopened = int(conn.execute(text(
        "SELECT COUNT(*) FROM case_staging WHERE run_id = :run AND prev_state = 'resolved'"),
        p).scalar() or 0)
    run.updated = int(conn.execute(text(
        "SELECT COUNT(*) FROM case_staging WHERE run_id = :run AND case_id IS NOT NULL"),
        p).scalar() or 0)
    if run.updated:
        conn.execute(_t(
            "UPDATE cases SET "
            f"severity = {_SEV_NAME_SQL}, tlp = {_TLP_NAME_SQL}, "
            "last_seen = CASE WHEN COALESCE(s.last_seen, :now) > cases.last_seen "
            "  THEN COALESCE(s.last_seen, :now) ELSE cases.last_seen END, "
            "last_report_date = CASE WHEN cases.last_report_date IS NULL "
            "  OR s.report_date > cases.last_report_date "
            "  THEN s.report_date ELSE cases.last_report_date END, "
            "events_count = cases.events_count + s.n_events, "
            "reopened_count = cases.reopened_count + "
            "  CASE WHEN cases.state = 'resolved' THEN 1 ELSE 0 END, "
            "next_reminder_at = CASE WHEN cases.state = 'resolved' THEN NULL "
            "  ELSE cases.next_reminder_at END, "
            "state = 'open', resolved_at = NULL, updated_at = :now "
            "FROM case_staging s WHERE cases.id = s.case_id AND s.run_id = :run"), p)
        conn.execute(_t(
            "INSERT INTO case_decisions (case_id, run_id, at, action, reason) "
            "SELECT s.case_id, CAST(:run AS VARCHAR(36)), :now, 'reopened', 'seen_again' "
            "FROM case_staging s "
            "WHERE s.run_id = :run AND s.prev_state = 'resolved'"), p)
    run.opened = run.staged - run.updated
    if run.opened:
        base = reserve_case_numbers(conn, now.year, run.opened)
        number = case_number_sql(conn.dialect.name)
        conn.execute(_t(
            "INSERT INTO cases (id, org_id, fingerprint, report_type, identifier, taxonomy, "
            "severity, tlp, state, first_seen, last_seen, last_report_date, events_count, "
            "notify_count, reopened_count, created_at, updated_at) "
            f"SELECT {number}, s.org_id, s.fingerprint, s.report_type, s.identifier, "
            f"s.taxonomy, {_SEV_NAME_SQL}, {_TLP_NAME_SQL}, 'open', "
            "COALESCE(s.first_seen, :now), COALESCE(s.last_seen, :now), s.report_date, "
            "s.n_events, 0, 0, :now, :now "
            "FROM case_staging s WHERE s.run_id = :run AND s.case_id IS NULL"),
            {**p, "prefix": f"CWN-{now.year}-", "base": base})
        conn.execute(text(
            "UPDATE case_staging SET prev_state = 'new', "
            "case_id = (SELECT c.id FROM cases c WHERE c.org_id = case_staging.org_id "
            "AND c.fingerprint = case_staging.fingerprint) "
            "WHERE run_id = :run AND case_id IS NULL"), p)
        conn.execute(_t(
            "INSERT INTO case_decisions (case_id, run_id, at, action) "
            "SELECT s.case_id, CAST(:run AS VARCHAR(36)), :now, 'opened' FROM case_staging s "
            "WHERE s.run_id = :run AND s.prev_state = 'new'"), p)
    return run


def record_repeat_window(conn: Connection, run_id: str, now: datetime) -> int:
    """Store the reason for every case of this run that is inside its reminder window."""
    res = conn.execute(_t(
        "INSERT INTO case_decisions (case_id, run_id, at, action, reason) "
        "SELECT c.id, CAST(:run AS VARCHAR(36)), :now, 'suppressed', 'repeat_window' "
        "FROM case_staging s JOIN cases c ON c.id = s.case_id "
        "WHERE s.run_id = :run AND c.next_reminder_at IS NOT NULL AND c.next_reminder_at > :now"),
        {"run": run_id, "now": now})
    return int(res.rowcount or 0)


DUE_CASES_SQL = (
    "SELECT c.id, c.org_id, c.report_type, c.identifier, c.taxonomy, c.severity, c.tlp, "
    "c.first_seen, c.last_seen, s.prev_state "
    "FROM case_staging s JOIN cases c ON c.id = s.case_id "
    "WHERE s.run_id = :run AND (c.next_reminder_at IS NULL OR c.next_reminder_at <= :now) "
    "ORDER BY c.org_id, c.id")
"""The cases of this run that are new, reopened or past their reminder interval."""


def due_cases(conn: Connection, run_id: str, now: datetime) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(_t(DUE_CASES_SQL), {"run": run_id, "now": now})]


def resolve_missing(conn: Connection, run_id: str, now: datetime) -> int:
    """Resolve open cases that a later report of their type (this run's) no longer lists."""
    types = conn.execute(text(
        "SELECT r.report_type, MAX(r.report_date) FROM reports r "
        "JOIN notify_reports n ON n.report_sha256 = r.sha256 "
        "WHERE n.run_id = :run AND r.report_type IS NOT NULL AND r.report_date IS NOT NULL "
        "GROUP BY r.report_type"), {"run": run_id}).all()
    total = 0
    for report_type, date in types:
        q = {"run": run_id, "now": now, "rt": report_type, "d": date}
        cond = "state = 'open' AND report_type = :rt AND last_report_date < :d"
        conn.execute(_t(
            "INSERT INTO case_decisions (case_id, run_id, at, action, reason, detail) "
            "SELECT id, CAST(:run AS VARCHAR(36)), :now, 'resolved', 'absent_from_later_report', "
            "CAST(:d AS VARCHAR(10)) "
            f"FROM cases WHERE {cond}"), q)
        res = conn.execute(_t(
            f"UPDATE cases SET state = 'resolved', resolved_at = :now, updated_at = :now "
            f"WHERE {cond}"), q)
        total += int(res.rowcount or 0)
    return total


def clear_staging(conn: Connection, run_id: str) -> None:
    conn.execute(text("DELETE FROM case_staging WHERE run_id = :run"), {"run": run_id})


def count_cases(conn: Connection) -> int:
    from cwn.db.models_notify import Case

    return int(conn.execute(select(func.count()).select_from(Case)).scalar() or 0)
