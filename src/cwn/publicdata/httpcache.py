"""Disk cache, per-host rate limit and a never-raising GET for the live lookups.

RDAP servers and websites are other people's infrastructure: RIRs throttle or block clients
that hammer them, and a CERT looks up the same networks and domains over and over. So every
answer (including "not found" and failures) is kept on disk under
`CWN_HOME/publicdata/cache/<namespace>/` and reused until it expires, and requests to one
host are spaced by a token bucket shared by all threads of the process.

Expiry is decided when an entry is read, from its `fetched_at` and what kind of answer it is,
so changing a TTL in the configuration applies to entries already on disk:

* positive answers live `ttl_seconds`;
* negative answers (the server answered, but "not found" or something unusable) live
  `negative_ttl_seconds`, shorter, because a resource may appear later;
* transient failures (no connection, timeout, HTTP 429/5xx) live `error_ttl_seconds`,
  shortest, so an outage does not hide a source for a day but is not retried on every event.

The clock is injectable (`Callable[[], datetime]`) so expiry can be tested without sleeping.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_cache_root(home: Path) -> Path:
    """Where live-lookup caches live for a cwn installation (`Settings.home`)."""
    return home / "publicdata" / "cache"


def one_line(text: str, limit: int = 300) -> str:
    """Errors end up in one CLI line and one JSON field: no newlines, bounded length."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    key: str
    url: str
    status: int  # HTTP status of the answer; 0 when no HTTP answer was received
    fetched_at: datetime
    body: Any  # JSON-serialisable payload (parsed JSON, or text)
    error: str | None = None
    content_type: str | None = None

    @property
    def negative(self) -> bool:
        return self.error is not None

    @property
    def transient(self) -> bool:
        """A failure that says nothing about the resource, only about this moment."""
        return self.error is not None and (self.status == 0 or self.status == 429
                                           or self.status >= 500)


class HttpCache:
    """One JSON file per key, written atomically (temp file + rename) so concurrent threads
    or processes never read half an entry; the worst race costs one extra request."""

    def __init__(self, root: Path, namespace: str, *, ttl_seconds: float,
                 negative_ttl_seconds: float, error_ttl_seconds: float,
                 clock: Clock = utc_now) -> None:
        self.directory = root / namespace
        self.ttl = timedelta(seconds=ttl_seconds)
        self.negative_ttl = timedelta(seconds=negative_ttl_seconds)
        self.error_ttl = timedelta(seconds=error_ttl_seconds)
        self.clock = clock

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.directory / digest[:2] / f"{digest}.json"

    def lifetime(self, entry: CacheEntry) -> timedelta:
        if entry.transient:
            return self.error_ttl
        return self.negative_ttl if entry.negative else self.ttl

    def fresh(self, entry: CacheEntry) -> bool:
        return self.clock() < entry.fetched_at + self.lifetime(entry)

    def get(self, key: str) -> CacheEntry | None:
        """The entry for `key` if present and not expired; a damaged file counts as absent."""
        try:
            raw = json.loads(self._path(key).read_bytes())
            entry = CacheEntry(key=raw["key"], url=raw["url"], status=int(raw["status"]),
                               fetched_at=datetime.fromisoformat(raw["fetched_at"]),
                               body=raw.get("body"), error=raw.get("error"),
                               content_type=raw.get("content_type"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if entry.key != key or not self.fresh(entry):
            return None
        return entry

    def put(self, key: str, *, url: str, status: int, body: Any = None,
            error: str | None = None, content_type: str | None = None) -> CacheEntry:
        entry = CacheEntry(key=key, url=url, status=status, fetched_at=self.clock(), body=body,
                           error=error, content_type=content_type)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        payload = {"key": key, "url": url, "status": status,
                   "fetched_at": entry.fetched_at.isoformat(), "error": error,
                   "content_type": content_type, "body": body}
        try:
            tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk must not turn a lookup into a crash
        return entry


class RateLimiter:
    """Token bucket per host. A caller reserves its token under the lock and sleeps outside
    it, so threads are served in arrival order and never sleep holding the lock.
    `rate_per_second <= 0` disables limiting."""

    def __init__(self, rate_per_second: float, *, burst: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate_per_second
        self.burst = max(1.0, burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # host -> (tokens, at)

    def acquire(self, host: str) -> float:
        """Wait for a request slot to `host`; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._monotonic()
            tokens, at = self._buckets.get(host, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate) - 1.0
            self._buckets[host] = (tokens, now)
            wait = -tokens / self.rate if tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # final URL after redirects
    status: int  # 0: no HTTP answer
    content_type: str | None
    body: bytes | None
    error: str | None


def http_get(client: httpx.Client, limiter: RateLimiter, url: str, *, max_bytes: int,
             headers: Mapping[str, str] | None = None) -> Fetched:
    """GET `url` without ever raising: transport failures, oversized bodies and bad URLs
    come back as `error`. The body is streamed and cut off at `max_bytes`, so a hostile
    server cannot make us buffer gigabytes."""
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError) as exc:
        return Fetched(url, 0, None, None, one_line(f"invalid URL: {exc}"))
    limiter.acquire(host)
    try:
        with client.stream("GET", url, headers=headers) as response:
            final = str(response.url)
            ctype = response.headers.get("content-type")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                return Fetched(final, response.status_code, ctype, None,
                               f"answer larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return Fetched(final, response.status_code, ctype, None,
                                   f"answer larger than {max_bytes} bytes")
                chunks.append(chunk)
            return Fetched(final, response.status_code, ctype, b"".join(chunks), None)
    except httpx.HTTPError as exc:
        return Fetched(url, 0, None, None, one_line(f"{type(exc).__name__}: {exc}"))
