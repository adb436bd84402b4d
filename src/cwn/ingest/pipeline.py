"""collect → parse → normalise → attribute → store, for whole files, in bulk.

Each file is one unit of work: archived raw first (so nothing is lost), parsed into Arrow
batches, fingerprinted and attributed column-wise, then written to the Parquet event archive,
with the report row (counts) and quarantined rows in the database in one transaction. The
events are not copied into the database row by row: the notify run folds them into cases
straight from Parquet (`cwn.route.cases`). A file that cannot be used is reported and skipped; the
other files of the run still go through.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, delete, insert, select, update

from cwn.archive.events import EventArchive
from cwn.archive.raw import RawArchive
from cwn.db.models import Report
from cwn.events.fields import SEVERITIES
from cwn.events.fingerprint import fingerprints
from cwn.ingest import detect as detect_mod
from cwn.ingest import intelmq, stix
from cwn.ingest.result import ParseResult, Quarantined, UnusableInput
from cwn.ingest.shadowserver import parser as shadowserver
from cwn.ingest.shadowserver.schema import ReportTable, load_table
from cwn.ingest.store import delete_report_rows, insert_quarantine

if TYPE_CHECKING:
    from cwn.attribute.index import AssetIndex
    from cwn.attribute.public import PublicAttribution

PARSER_VERSION = "1"

DEFAULT_SEVERITY_BY_TAXONOMY: dict[str, str] = {
    "malicious-code": "high",
    "intrusions": "high",
    "fraud": "high",
    "availability": "medium",
    "intrusion-attempts": "medium",
    "vulnerable": "medium",
    "information-content-security": "high",
    "abusive-content": "low",
    "information-gathering": "low",
    "other": "low",
    "test": "info",
}
"""When neither the source nor the report table gives a severity."""


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class FileOutcome:
    path: str
    status: str  # ingested | duplicate | unusable
    sha256: str | None = None
    parser: str | None = None
    report_type: str | None = None
    rows: int = 0
    events: int = 0
    quarantined: int = 0
    attributed: int = 0
    public: int = 0  # of `attributed`: owners found in public data (unsolicited)
    error: str | None = None
    top_orgs: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class IngestSummary:
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, attr: str) -> int:
        return sum(int(getattr(f, attr)) for f in self.files)

    @property
    def unusable(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "unusable"]

    @property
    def unattributed(self) -> int:
        return self.total("events") - self.total("attributed")

    def top_orgs(self, n: int = 10) -> list[tuple[str, int]]:
        merged: dict[str, int] = {}
        for f in self.files:
            for org, count in f.top_orgs.items():
                merged[org] = merged.get(org, 0) + count
        return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


Progress = Callable[[str, str], None]
"""Called with (file name, stage) so a CLI can show what is happening."""


def _fill(col: pa.ChunkedArray | pa.Array, value: object) -> pa.Array:
    return pc.fill_null(col, pa.scalar(value, col.type))


class IngestPipeline:
    def __init__(
        self,
        engine: Engine,
        raw: RawArchive,
        archive: EventArchive,
        index: Callable[[], AssetIndex],
        *,
        schema_dir: Path | None = None,
        default_tlp: str = "AMBER",
        keep_raw: bool = False,
        piece_rows: int = 200_000,
        parse_threads: int = 2,
        public: Callable[[], PublicAttribution | None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.raw = raw
        self.archive = archive
        self.index = index
        self.schema_dir = schema_dir
        self.default_tlp = default_tlp
        self.keep_raw = keep_raw
        self.piece_rows = piece_rows
        self.parse_threads = max(1, parse_threads)
        self.public = public
        self.clock = clock
        self._table: ReportTable | None = None

    @property
    def table(self) -> ReportTable:
        """The Shadowserver report table, with operator-loaded schemas, read once per run."""
        if self._table is None:
            self._table = load_table(self.schema_dir)
        return self._table

    # -- entry points -------------------------------------------------------------------
    def ingest_paths(
        self,
        paths: Iterable[Path],
        *,
        feed: str | None = None,
        report_type: str | None = None,
        progress: Progress | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary()
        for path in expand(paths):
            try:
                data = path.read_bytes()
            except OSError as exc:
                summary.files.append(FileOutcome(str(path), "unusable", error=str(exc)))
                continue
            outcome = self.ingest_bytes(
                data, path.name, feed=feed, report_type=report_type, progress=progress
            )
            outcome.path = str(path)
            summary.files.append(outcome)
        summary.seconds = time.perf_counter() - started
        return summary

    def ingest_bytes(
        self,
        data: bytes,
        file_name: str,
        *,
        feed: str | None = None,
        report_type: str | None = None,
        progress: Progress | None = None,
    ) -> FileOutcome:
        note = progress or (lambda _f, _s: None)
        sha = self.raw.put(data) if data else None
        if sha is not None and self._known(sha):
            return FileOutcome(file_name, "duplicate", sha256=sha)
        try:
            note(file_name, "parse")
            found = detect_mod.detect(data, file_name, report_type=report_type,
                                      known=self.table.report_types)
            assert sha is not None
            report_date = found.report_date or self.clock().date().isoformat()
            return self._store(sha, file_name, found.parser, report_date,
                               self._parse(found, file_name, feed), feed, note)
        except UnusableInput as exc:
            return FileOutcome(file_name, "unusable", sha256=sha, error=str(exc))

    def reparse(self, sha256s: Iterable[str] | None = None,
                progress: Progress | None = None) -> IngestSummary:
        """Run archived reports through today's parsers, replacing what they produced."""
        started = time.perf_counter()
        summary = IngestSummary()
        with self.engine.connect() as conn:
            query = select(Report)
            if sha256s is not None:
                query = query.where(Report.sha256.in_(list(sha256s)))
            reports = conn.execute(query).all()
        note = progress or (lambda _f, _s: None)
        for rep in reports:
            data = self.raw.get(rep.sha256)
            try:
                found = detect_mod.detect(
                    data, rep.file_name, known=self.table.report_types,
                    report_type=rep.report_type if rep.parser == "shadowserver" else None)
                report_date = (rep.report_date or found.report_date
                               or self.clock().date().isoformat())
                summary.files.append(self._store(
                    rep.sha256, rep.file_name, found.parser, report_date,
                    self._parse(found, rep.file_name, rep.feed_name), rep.feed_name, note))
            except UnusableInput as exc:
                summary.files.append(FileOutcome(rep.file_name, "unusable", sha256=rep.sha256,
                                                 error=str(exc)))
        summary.seconds = time.perf_counter() - started
        return summary

    # -- stages -------------------------------------------------------------------------
    def _known(self, sha: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Report.sha256).where(Report.sha256 == sha)).first() \
                is not None

    def _parse(self, found: detect_mod.Detected, file_name: str,
               feed: str | None) -> Iterator[ParseResult]:
        """Parse results piece by piece (large CSV reports are cut on record boundaries)."""
        observed = self.clock()
        if found.parser == "intelmq":
            yield intelmq.parse(found.data, file_name=file_name, observed=observed,
                                feed_name=feed)
            return
        if found.parser == "stix":
            yield stix.parse(found.data, file_name=file_name, observed=observed, feed_name=feed)
            return
        assert found.report_type is not None
        report_type = found.report_type

        def parse_piece(piece: bytes) -> ParseResult:
            return shadowserver.parse(piece, report_type=report_type, file_name=file_name,
                                      observed=observed, table=self.table,
                                      keep_raw=self.keep_raw)

        # Parsing is mostly Arrow and DuckDB kernels, which release the GIL: two pieces in
        # flight keep both cores busy while the consumer attributes and writes.
        pieces = shadowserver.split_records(found.data, self.piece_rows)
        with ThreadPoolExecutor(max_workers=self.parse_threads) as pool:
            pending: collections.deque[Future[ParseResult]] = collections.deque()
            offset = 0
            for piece in pieces:
                pending.append(pool.submit(parse_piece, piece))
                if len(pending) > self.parse_threads:
                    result = self._placed(pending.popleft().result(), offset, feed)
                    offset += result.rows
                    yield result
            while pending:
                result = self._placed(pending.popleft().result(), offset, feed)
                offset += result.rows
                yield result

    @staticmethod
    def _placed(result: ParseResult, offset: int, feed: str | None) -> ParseResult:
        """A piece's result with rows numbered from the start of the file (`offset` is the
        number of records in the pieces before it)."""
        events = result.events
        if offset:
            rows = pc.add(events.column("_row"), offset)
            events = events.set_column(events.schema.get_field_index("_row"), "_row", rows)
            result.quarantine = [replace(q, row=q.row + offset) for q in result.quarantine]
        if feed:
            events = events.set_column(
                events.schema.get_field_index("feed.name"), "feed.name",
                pa.repeat(pa.scalar(feed, pa.string()), events.num_rows))
            result.feed_name = feed
        result.events = events
        return result

    def enrich(self, events: pa.Table, sha: str) -> pa.Table:
        """Fill cwn's bookkeeping columns: report, fingerprint, TLP and severity defaults."""
        n = events.num_rows
        sev = events.column("severity")
        by_tax = pc.fill_null(
            pc.index_in(events.column("classification.taxonomy"),
                        pa.array(list(DEFAULT_SEVERITY_BY_TAXONOMY))), -1)
        defaults = pa.array([*DEFAULT_SEVERITY_BY_TAXONOMY.values(), "medium"])
        default_sev = pc.take(defaults, pc.if_else(pc.equal(by_tax, -1), len(defaults) - 1,
                                                    by_tax))
        assert all(s in SEVERITIES for s in defaults.to_pylist())
        updates = {
            "_report": pa.repeat(pa.scalar(sha, pa.string()), n),
            "fingerprint": fingerprints(events),
            "tlp": _fill(events.column("tlp"), self.default_tlp),
            "severity": pc.coalesce(sev, default_sev),
        }
        for name, col in updates.items():
            events = events.set_column(events.schema.get_field_index(name), name, col)
        return events

    def _store(self, sha: str, file_name: str, parser: str, report_date: str,
               pieces: Iterator[ParseResult], feed: str | None, note: Progress) -> FileOutcome:
        """Attribute each piece and hand it to the writer thread, which streams it into the
        database and Parquet while the next piece is parsed. One transaction per file."""
        first = next(pieces)  # an unusable file fails here, before anything is written
        feed_name = first.feed_name or feed
        writer = _ReportWriter(self, sha, file_name, feed_name, parser, report_date, first)
        orgs: list[pa.ChunkedArray] = []
        rows = events_n = quarantined = public_n = 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            done = pool.submit(writer.run)
            try:
                for result in itertools.chain([first], pieces):
                    events = self.enrich(result.events, sha)
                    note(file_name, "attribute")
                    events = self.index().attribute(events)
                    public = self.public() if self.public is not None else None
                    if public is not None:
                        events = public.attribute(events)
                        kinds = pc.value_counts(events.column("match_kind").drop_null())
                        public_n += sum(int(c) for v, c in zip(
                            kinds.field("values").to_pylist(),
                            kinds.field("counts").to_pylist(), strict=True)
                            if v in ("ripe", "csirt", "as"))
                    orgs.append(events.column("organization"))
                    rows += result.rows
                    events_n += events.num_rows
                    quarantined += len(result.quarantine)
                    note(file_name, "store")
                    writer.put((events, result.quarantine))
                    if done.done():  # the writer failed: stop feeding it
                        break
            except BaseException:
                writer.put(None)  # roll the report back; the producer's error wins
                with contextlib.suppress(Exception):
                    done.result()
                raise
            all_orgs = pa.chunked_array([c for o in orgs for c in o.chunks], pa.string())
            attributed = len(all_orgs) - all_orgs.null_count
            writer.put(_Totals(rows, events_n, quarantined, attributed))
            done.result()
        return FileOutcome(file_name, "ingested", sha256=sha, parser=parser,
                           report_type=first.report_type, rows=rows, events=events_n,
                           quarantined=quarantined, attributed=attributed, public=public_n,
                           top_orgs=_top_counts(all_orgs, 10))


@dataclass(frozen=True, slots=True)
class _Totals:
    rows: int
    events: int
    quarantined: int
    attributed: int


class _ReportWriter:
    """Owns the database transaction and the Parquet file of one report, in its own thread.

    Parquet encoding and compression release the GIL, so writing piece n overlaps parsing
    piece n+1. The queue is small, so
    at most two pieces are in memory. The Parquet file is renamed into place just before the
    commit: a crash leaves either both or (after a rerun) a file the rerun replaces.
    """

    def __init__(self, pipeline: IngestPipeline, sha: str, file_name: str,
                 feed_name: str | None, parser: str, report_date: str,
                 first: ParseResult) -> None:
        self.p = pipeline
        self.sha, self.file_name, self.feed_name = sha, file_name, feed_name
        self.parser, self.report_date, self.report_type = parser, report_date, first.report_type
        self.queue: queue.Queue[tuple[pa.Table, list[Quarantined]] | _Totals | None] = \
            queue.Queue(maxsize=1)

    def put(self, item: tuple[pa.Table, list[Quarantined]] | _Totals | None) -> None:
        self.queue.put(item)

    def run(self) -> None:
        p, sha = self.p, self.sha
        sink = p.archive.sink(date=self.report_date, feed=self.feed_name, sha256=sha)
        try:
            with p.engine.begin() as conn:
                delete_report_rows(conn, sha)
                conn.execute(delete(Report).where(Report.sha256 == sha))
                now = p.clock()
                conn.execute(insert(Report).values(
                    sha256=sha, file_name=self.file_name, feed_name=self.feed_name,
                    parser=self.parser, report_type=self.report_type,
                    report_date=self.report_date, size=p.raw.path_for(sha).stat().st_size,
                    parser_version=PARSER_VERSION, received_at=now, parsed_at=now))
                while True:
                    item = self.queue.get()
                    if item is None:
                        raise _Aborted
                    if isinstance(item, _Totals):
                        conn.execute(update(Report).where(Report.sha256 == sha).values(
                            rows=item.rows, events=item.events, quarantined=item.quarantined,
                            attributed=item.attributed))
                        p.archive.remove(sha)
                        sink.commit()
                        return
                    events, quarantine = item
                    sink.write(events)
                    insert_quarantine(conn, sha, quarantine)
        except _Aborted:
            sink.abort()
        except BaseException:
            sink.abort()
            # Keep taking pieces until the producer's last word, so it never blocks on put.
            while not isinstance(self.queue.get(), _Totals | None):
                pass
            raise


class _Aborted(Exception):
    """The producer gave up; roll the report back."""


def _top_counts(values: pa.ChunkedArray, k: int) -> dict[str, int]:
    """The k most frequent non-null values (a report may name 100,000s of owners)."""
    counts = pc.value_counts(values.drop_null())
    if len(counts) == 0:
        return {}
    n = counts.field("counts").to_numpy()
    best = np.argsort(-n, kind="stable")[:k] if len(n) <= k else \
        np.argpartition(-n, k)[:k]
    names = pc.take(counts.field("values"), pa.array(best)).to_pylist()
    pairs = sorted(zip(names, n[best].tolist(), strict=True), key=lambda kv: (-kv[1], kv[0]))
    return dict(pairs)


def expand(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; directories walked recursively in name order (hidden files skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(p.startswith(".") for p in child.parts[-1:]):
                    yield child
        else:
            yield path
