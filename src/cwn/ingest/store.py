"""What an ingest writes to the database besides the report row: quarantined rows.

Events themselves are not stored row by row in the database: they live in the Parquet
archive, and the notify run folds them into cases with DuckDB (`cwn.route.cases`). A
database row per event was the most expensive step of ingest and grows without bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert

from cwn.db.models import QuarantinedRow
from cwn.ingest.result import Quarantined


def delete_report_rows(conn: Connection, sha256: str) -> None:
    """Forget what a report produced, before it is parsed again."""
    conn.execute(delete(QuarantinedRow).where(QuarantinedRow.report_sha256 == sha256))


def insert_quarantine(conn: Connection, sha256: str, rows: Sequence[Quarantined]) -> None:
    if not rows:
        return
    conn.execute(
        insert(QuarantinedRow),
        [{"report_sha256": sha256, "row": q.row, "reason": q.reason, "content": q.content}
         for q in rows],
    )
