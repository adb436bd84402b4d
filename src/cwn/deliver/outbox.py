"""The outbox state machine: deliveries go queued → sent | deferred | bounced | failed.

Rows are written, with the rendered message, in the routing transaction (cwn.notify); this
module only sends them. One message is one short transaction: the row is claimed (on
PostgreSQL `FOR UPDATE SKIP LOCKED`, so several workers share the outbox; SQLite has one
writer, and cwn holds a process lock there), handed to the channel, and marked sent only after
the server accepted it. A crash before the mark leaves the row queued for the next run.

The residual window: a crash between the server's acceptance and our commit sends that one
message again on the next run (SMTP is at-least-once; the repeat has the same Message-ID, so
receivers and our tests can recognise it).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, bindparam, text
from sqlalchemy.sql.elements import TextClause

from cwn.db.base import UTCDateTime

# -- channels ------------------------------------------------------------------------------


class DeliveryError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryFailure(DeliveryError):
    """Try again later (4xx, connection trouble)."""


class PermanentFailure(DeliveryError):
    """The receiving side refused for good (5xx): handled like a hard bounce."""


class Channel(Protocol):
    name: str

    def send(self, *, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        """Hand one message over; return only once the other side has accepted it."""

    def close(self) -> None: ...


# -- crash points for tests ----------------------------------------------------------------

_hook_lock = threading.Lock()
_hook_counts: dict[str, int] = {}
_frozen = threading.Event()


def checkpoint(step: str) -> None:
    """Named crash point: `CWN_TEST_HOOK=step:n:action` acts on the n-th pass of `step`.

    `kill` SIGKILLs this process; `pause` writes `CWN_TEST_HOOK_FILE` and sleeps until the
    test kills it, and every other thread stops at its next checkpoint, so the kill finds
    each delivery thread at a named step rather than in the middle of a send. Nothing
    happens without the variable, so production pays one environment lookup.
    """
    spec = os.environ.get("CWN_TEST_HOOK")
    if not spec:
        return
    if _frozen.is_set() and step != "after_send":  # never park inside the residual window
        while True:
            time.sleep(1)
    name, _, rest = spec.partition(":")
    if name != step:
        return
    nth, _, action = rest.partition(":")
    with _hook_lock:
        _hook_counts[step] = _hook_counts.get(step, 0) + 1
        hit = _hook_counts[step] == int(nth or "1")
        if hit and action == "pause":
            _frozen.set()
    if not hit:
        return
    if action == "pause":
        marker = os.environ.get("CWN_TEST_HOOK_FILE")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        while True:
            time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)


# -- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off from `base`, capped at `cap`, given up after `give_up`."""

    base: timedelta = timedelta(minutes=5)
    cap: timedelta = timedelta(hours=4)
    give_up: timedelta = timedelta(days=3)

    def delay(self, attempts: int) -> timedelta:
        return min(self.base * (2 ** max(attempts - 1, 0)), self.cap)


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryStats) -> None:
        self.sent += other.sent
        self.deferred += other.deferred
        self.bounced += other.bounced
        self.failed += other.failed
        self.errors.extend(other.errors)


OnPermanent = Callable[[Connection, str, str, PermanentFailure], None]
"""Called in the delivery's transaction with (conn, notification id, recipient, error)."""

_COLS = "id, notification_id, recipient, return_path, message_id, eml, attempts, " \
        "first_attempt_at"


def _t(sql: str) -> TextClause:
    """Text SQL whose datetime parameters go through UTCDateTime on both backends."""
    names = [n for n in ("now", "next", "first") if f":{n}" in sql]
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime) for n in names))


class Outbox:
    def __init__(
        self,
        engine: Engine,
        channel_factory: Callable[[], Channel],
        *,
        clock: Callable[[], datetime],
        retry: RetryPolicy | None = None,
        on_permanent: OnPermanent | None = None,
    ) -> None:
        self.engine = engine
        self.channel_factory = channel_factory
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.on_permanent = on_permanent

    def due_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(_t(
                "SELECT COUNT(*) FROM deliveries WHERE state IN ('queued', 'deferred') "
                "AND next_attempt_at <= :now"), {"now": self.clock()}).scalar() or 0)

    def deliver(self, *, workers: int = 1, limit: int | None = None) -> DeliveryStats:
        """Send what is due; `workers` parallel connections (each its own DB connection)."""
        started = time.perf_counter()
        sqlite = self.engine.dialect.name == "sqlite"
        workers = max(1, workers)
        if workers == 1:
            stats = self._work(0, 1, sqlite, limit)
        else:
            results: list[DeliveryStats] = [DeliveryStats() for _ in range(workers)]
            per = None if limit is None else -(-limit // workers)

            def run(k: int) -> None:
                results[k] = self._work(k, workers, sqlite, per)

            threads = [threading.Thread(target=run, args=(k,), name=f"deliver-{k}")
                       for k in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stats = DeliveryStats()
            for r in results:
                stats.add(r)
        # Re-routed bounces add rows behind the cursors: another pass takes them.
        if (stats.sent or stats.bounced) and self.due_count() and (
                limit is None or stats.sent < limit):
            more = self.deliver(workers=workers, limit=None if limit is None
                                else limit - stats.sent)
            stats.add(more)
        stats.seconds = time.perf_counter() - started
        return stats

    def _work(self, k: int, n: int, sqlite: bool, limit: int | None) -> DeliveryStats:
        stats = DeliveryStats()
        channel: Channel | None = None
        done = 0
        after = 0  # rows are taken in id order; each worker keeps its own cursor
        buffer: deque[Row[Any]] = deque()
        try:
            with self.engine.connect() as conn:
                while limit is None or done < limit:
                    now = self.clock()
                    row: Row[Any] | None
                    if sqlite:
                        # One writer (the notify process lock): read ahead, split by id.
                        if not buffer:
                            buffer.extend(conn.execute(_t(
                                f"SELECT {_COLS} FROM deliveries WHERE state IN ('queued', "
                                "'deferred') AND next_attempt_at <= :now AND id > :after "
                                "AND id % :n = :k ORDER BY id LIMIT 200")
                                .columns(first_attempt_at=UTCDateTime),
                                {"now": now, "n": n, "k": k, "after": after}).all())
                            conn.rollback()
                            if not buffer:
                                break
                        row = buffer.popleft()
                        conn.begin()
                    else:
                        conn.begin()
                        # The mark "sent" need not wait for the WAL flush: a client crash
                        # cannot lose it, only a database crash can (and then the message
                        # goes out again, as in the residual window); a flush per message
                        # would cap delivery at the disk's sync rate.
                        conn.execute(text("SET LOCAL synchronous_commit = off"))
                        row = conn.execute(_t(
                            f"SELECT {_COLS} FROM deliveries WHERE state IN ('queued', "
                            "'deferred') AND next_attempt_at <= :now AND id > :after "
                            "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
                            .columns(first_attempt_at=UTCDateTime),
                            {"now": now, "after": after}).first()
                        if row is None:
                            conn.rollback()
                            break
                    assert row is not None
                    after = int(row.id)
                    done += 1
                    if channel is None:
                        channel = self.channel_factory()
                    checkpoint("before_send")
                    try:
                        channel.send(sender=row.return_path, recipient=row.recipient,
                                     data=bytes(row.eml), message_id=row.message_id)
                    except PermanentFailure as exc:
                        self._bounced(conn, row, exc, now)
                        stats.bounced += 1
                        stats.errors.append(f"{row.recipient}: {exc}")
                    except TemporaryFailure as exc:
                        if self._deferred(conn, row, exc, now):
                            stats.deferred += 1
                        else:
                            stats.failed += 1
                        stats.errors.append(f"{row.recipient}: {exc}")
                    else:
                        checkpoint("after_send")
                        conn.execute(_t(
                            "UPDATE deliveries SET state = 'sent', sent_at = :now, "
                            "attempts = attempts + 1, last_error = NULL, "
                            "first_attempt_at = COALESCE(first_attempt_at, :now) "
                            "WHERE id = :id"), {"now": now, "id": row.id})
                        conn.execute(_t(
                            "UPDATE notifications SET state = 'sent', sent_at = :now "
                            "WHERE id = :nid"), {"now": now, "nid": row.notification_id})
                        stats.sent += 1
                    conn.commit()
                    checkpoint("after_commit")
        finally:
            if channel is not None:
                channel.close()
        return stats

    def _deferred(self, conn: Connection, row: Row[Any], exc: TemporaryFailure,
                  now: datetime) -> bool:
        """Schedule the next try; False when the message has been trying for too long."""
        first = row.first_attempt_at or now
        attempts = int(row.attempts) + 1
        if now - first >= self.retry.give_up:
            conn.execute(_t(
                "UPDATE deliveries SET state = 'failed', attempts = :a, last_error = :err, "
                "first_attempt_at = :first WHERE id = :id"),
                {"a": attempts, "err": str(exc), "first": first, "id": row.id})
            conn.execute(text("UPDATE notifications SET state = 'failed' WHERE id = :nid"),
                         {"nid": row.notification_id})
            _case_note(conn, row.notification_id, "delivery_failed", str(exc),
                       row.recipient, now)
            return False
        conn.execute(_t(
            "UPDATE deliveries SET state = 'deferred', attempts = :a, last_error = :err, "
            "first_attempt_at = :first, next_attempt_at = :next WHERE id = :id"),
            {"a": attempts, "err": str(exc), "first": first,
             "next": now + self.retry.delay(attempts), "id": row.id})
        return True

    def _bounced(self, conn: Connection, row: Row[Any], exc: PermanentFailure,
                 now: datetime) -> None:
        conn.execute(_t(
            "UPDATE deliveries SET state = 'bounced', attempts = attempts + 1, "
            "last_error = :err, first_attempt_at = COALESCE(first_attempt_at, :now) "
            "WHERE id = :id"), {"err": str(exc), "now": now, "id": row.id})
        if self.on_permanent is not None:
            self.on_permanent(conn, row.notification_id, row.recipient,
                              exc)
        else:
            conn.execute(text("UPDATE notifications SET state = 'bounced' WHERE id = :nid"),
                         {"nid": row.notification_id})


def _case_note(conn: Connection, notification_id: str, reason: str, detail: str,
               recipient: str, now: datetime) -> None:
    conn.execute(_t(
        "INSERT INTO case_decisions (case_id, run_id, at, action, reason, recipient, "
        "notification_id, detail) SELECT case_id, NULL, :now, 'undelivered', "
        "CAST(:reason AS VARCHAR(32)), CAST(:rcpt AS VARCHAR(320)), CAST(:nid AS VARCHAR(36)), "
        "CAST(:detail AS TEXT) FROM notification_cases WHERE notification_id = :nid"),
        {"now": now, "reason": reason, "rcpt": recipient, "nid": notification_id,
         "detail": detail[:2000]})
