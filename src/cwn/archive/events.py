"""The event archive: one Parquet file per report, partitioned by date and feed.

Parquet holds every field of every event (extras and raw included) for analytics with
DuckDB and for full-fidelity exports; the database keeps only what later stages query.
Naming the file after the report's SHA-256 makes a re-parse replace, never duplicate.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cwn.events.batch import EVENT_SCHEMA

_SLUG = re.compile(r"[^a-z0-9_.-]+")


def feed_slug(feed: str | None) -> str:
    return _SLUG.sub("-", (feed or "unknown").lower()).strip("-") or "unknown"


class ParquetSink:
    """Writes a report's events piece by piece; the file appears (atomically) on `commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_suffix(f".tmp{os.getpid()}")
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.tmp, EVENT_SCHEMA, compression="zstd")
        self._writer.write_table(table)

    def commit(self) -> Path:
        if self._writer is None:
            self.write(EVENT_SCHEMA.empty_table())
        assert self._writer is not None
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


class EventArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, date: str, feed: str | None, sha256: str) -> Path:
        return self.root / f"date={date}" / f"feed={feed_slug(feed)}" / f"{sha256}.parquet"

    def write(self, table: pa.Table, *, date: str, feed: str | None, sha256: str) -> Path:
        path = self.path_for(date, feed, sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        return path

    def sink(self, *, date: str, feed: str | None, sha256: str) -> ParquetSink:
        """A streaming writer: pieces of one report become row groups of one file."""
        return ParquetSink(self.path_for(date, feed, sha256))

    def remove(self, sha256: str) -> None:
        for path in self.root.glob(f"date=*/feed=*/{sha256}.parquet"):
            path.unlink()

    def files(self) -> list[Path]:
        return sorted(self.root.glob("date=*/feed=*/*.parquet"))

    def scan(
        self,
        where: str | None = None,
        params: list[object] | None = None,
        batch_rows: int = 100_000,
    ) -> Iterator[pa.Table]:
        """Stream event batches (optionally filtered with a DuckDB SQL condition)."""
        files = self.files()
        if not files:
            return
        con = duckdb.connect()
        try:
            file_list = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            sql = (
                f"SELECT * FROM read_parquet([{file_list}], union_by_name=true, "
                "hive_partitioning=false)"
            )
            if where:
                sql += f" WHERE {where}"
            sql += ' ORDER BY "_report", "_row"'
            reader = con.sql(sql, params=params or None).to_arrow_reader(batch_rows)
            for rb in reader:
                yield pa.Table.from_batches([rb]).cast(EVENT_SCHEMA)
        finally:
            con.close()
