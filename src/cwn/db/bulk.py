"""Append an Arrow table to a database table in bulk, on either backend.

ORM objects per row would cost more than the work that produced the rows: SQLite gets one
`executemany` per chunk (columns converted once, not per row), PostgreSQL one `COPY` whose
CSV Arrow writes and the server parses, both in C.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection

from cwn.events.timetext import utc_text

CHUNK_ROWS = 100_000


def _sqlite_columns(table: pa.Table) -> list[list[Any]]:
    """Columns as Python lists, timestamps as SQLAlchemy's SQLite text format."""
    out: list[list[Any]] = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = utc_text(col)
        out.append(col.to_pylist())
    return out


def insert_table(conn: Connection, name: str, table: pa.Table) -> None:
    """Append `table`, whose columns are named as the database table's, to table `name`,
    inside the caller's transaction."""
    if table.num_rows == 0:
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        _copy_pg(raw, name, table)
        return
    names = table.column_names
    sql = f"INSERT INTO {name} ({','.join(names)}) VALUES ({','.join('?' * len(names))})"
    cur = raw.cursor()
    try:
        for start in range(0, table.num_rows, CHUNK_ROWS):
            cols = _sqlite_columns(table.slice(start, CHUNK_ROWS))
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
    opts = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for start in range(0, table.num_rows, CHUNK_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(table.slice(start, CHUNK_ROWS), buf, opts)
            copy.write(buf.getvalue())
