"""Bulk writes of event batches and quarantined rows into the database.

ORM objects per event would cost more than the whole parse; instead each batch goes in as
one executemany (SQLite) or one COPY (PostgreSQL), column-wise from Arrow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, delete, insert

from cwn.db.models import EVENT_DB_COLUMNS, Event, QuarantinedRow
from cwn.events.timetext import utc_text
from cwn.ingest.result import Quarantined

_CHUNK = 100_000


def _db_table(events: pa.Table) -> pa.Table:
    """Select and rename the batch columns the events table keeps."""
    cols = {db: events.column(src) for src, db in EVENT_DB_COLUMNS.items()}
    return pa.table(cols)


def _sqlite_columns(table: pa.Table) -> list[list[Any]]:
    """Columns as Python lists, timestamps as SQLAlchemy's SQLite text format."""
    out: list[list[Any]] = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = utc_text(col)
        out.append(col.to_pylist())
    return out


def insert_events(conn: Connection, events: pa.Table) -> None:
    if events.num_rows == 0:
        return
    table = _db_table(events)
    names = table.column_names
    dialect = conn.dialect.name
    raw = conn.connection.driver_connection
    if dialect == "postgresql":
        _copy_pg(raw, "events", table)
        return
    placeholders = ",".join("?" * len(names))
    sql = f"INSERT INTO events ({','.join(names)}) VALUES ({placeholders})"
    cur = raw.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, table.num_rows, _CHUNK):
            cols = _sqlite_columns(table.slice(start, _CHUNK))
            cur.executemany(sql, zip(*cols, strict=True))
    finally:
        cur.close()


def _copy_pg(raw: Any, name: str, table: pa.Table) -> None:
    """COPY FROM STDIN in CSV: Arrow writes the CSV, PostgreSQL parses it in C."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.binary_join_element_wise(utc_text(col), "+00", "")
        cols.append(col)
    table = pa.Table.from_arrays(cols, names=table.column_names)
    names = ",".join(f'"{n}"' for n in table.column_names)
    sql = f"COPY {name} ({names}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for start in range(0, table.num_rows, _CHUNK):
            buf = io.BytesIO()
            pacsv.write_csv(
                table.slice(start, _CHUNK),
                buf,
                pacsv.WriteOptions(include_header=False, quoting_style="needed"),
            )
            copy.write(buf.getvalue())


def delete_report_rows(conn: Connection, sha256: str) -> None:
    """Forget what a report produced, before it is parsed again."""
    conn.execute(delete(Event).where(Event.report_sha256 == sha256))
    conn.execute(delete(QuarantinedRow).where(QuarantinedRow.report_sha256 == sha256))


def insert_quarantine(conn: Connection, sha256: str, rows: Sequence[Quarantined]) -> None:
    if not rows:
        return
    conn.execute(
        insert(QuarantinedRow),
        [{"report_sha256": sha256, "row": q.row, "reason": q.reason, "content": q.content}
         for q in rows],
    )
