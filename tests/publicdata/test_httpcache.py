"""Disk cache expiry by answer kind, the per-host token bucket, and the never-raising GET."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cwn.publicdata.httpcache import HttpCache, RateLimiter, default_cache_root, http_get
from publicdata_http import FakeClock, LoopbackServer, Reply, closed_port_url

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_cache(root: Path, clock: FakeClock, ttl: float = 3600, neg: float = 600,
               err: float = 60) -> HttpCache:
    return HttpCache(root, "test", ttl_seconds=ttl, negative_ttl_seconds=neg,
                     error_ttl_seconds=err, clock=clock)


def test_round_trip_and_layout(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    cache = make_cache(tmp_path, clock)
    assert cache.get("ip:192.0.2.1") is None
    body = {"handle": "X", "list": [1, 2], "naïve": "ü"}
    cache.put("ip:192.0.2.1", url="http://h/ip/192.0.2.1", status=200, body=body,
              content_type="application/rdap+json")
    entry = cache.get("ip:192.0.2.1")
    assert entry is not None
    assert (entry.body, entry.status, entry.url, entry.fetched_at, entry.error) == \
        (body, 200, "http://h/ip/192.0.2.1", T0, None)
    assert entry.content_type == "application/rdap+json"
    files = list((tmp_path / "test").rglob("*.json"))
    assert len(files) == 1 and not list((tmp_path / "test").rglob("*.tmp"))
    assert default_cache_root(Path("/h")) == Path("/h/publicdata/cache")


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"key": "other", "url": "u"}',
                                     b'{"key": "k", "url": "u", "status": "x", '
                                     b'"fetched_at": "2026-06-01T12:00:00+00:00"}',
                                     b'{"key": "k", "url": "u", "status": 200, '
                                     b'"fetched_at": "yesterday"}'])
def test_damaged_entry_counts_as_absent(tmp_path: Path, garbage: bytes) -> None:
    cache = make_cache(tmp_path, FakeClock(T0))
    cache.put("k", url="u", status=200, body=1)
    path = next((tmp_path / "test").rglob("*.json"))
    path.write_bytes(garbage)
    assert cache.get("k") is None


# (status, error, age in seconds, still fresh?) with ttl 3600 / negative 600 / error 60
TTL_CASES = [
    (200, None, 3599, True), (200, None, 3600, False),
    (404, "not found", 599, True), (404, "not found", 601, False),
    (200, "wrong content type", 599, True), (200, "wrong content type", 601, False),
    (0, "ConnectError", 59, True), (0, "ConnectError", 61, False),
    (503, "HTTP 503", 59, True), (503, "HTTP 503", 61, False),
    (429, "HTTP 429", 61, False),
]


@pytest.mark.parametrize(("status", "error", "age", "fresh"), TTL_CASES)
def test_expiry_depends_on_answer_kind(tmp_path: Path, status: int, error: str | None,
                                       age: float, fresh: bool) -> None:
    clock = FakeClock(T0)
    cache = make_cache(tmp_path, clock)
    cache.put("k", url="u", status=status, error=error)
    clock.advance(seconds=age)
    assert (cache.get("k") is not None) is fresh


def test_ttl_is_applied_at_read_time(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    make_cache(tmp_path, clock, ttl=3600).put("k", url="u", status=200, body="x")
    clock.advance(hours=2)
    assert make_cache(tmp_path, clock, ttl=3600).get("k") is None
    assert make_cache(tmp_path, clock, ttl=3 * 3600).get("k") is not None


def test_rate_limiter_spaces_requests_per_host() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(5.0, monotonic=clock.monotonic, sleep=clock.sleep)
    start = clock.mono
    waits = [limiter.acquire("a") for _ in range(11)]
    assert waits[0] == 0.0
    assert clock.mono - start == pytest.approx(2.0)  # 10 intervals of 0.2 s
    assert limiter.acquire("b") == 0.0  # another host has its own bucket
    clock.mono += 10.0  # idle time refills the bucket, but only up to the burst
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.2)


def test_rate_limiter_burst_and_disabled() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(2.0, burst=3, monotonic=clock.monotonic, sleep=clock.sleep)
    assert [limiter.acquire("h") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]
    off = RateLimiter(0, monotonic=clock.monotonic, sleep=clock.sleep)
    assert sum(off.acquire("h") for _ in range(100)) == 0.0


def test_rate_limiter_is_thread_safe_in_real_time() -> None:
    limiter = RateLimiter(50.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            limiter.acquire("h")
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 24
    assert max(stamps) - began >= 23 / 50 * 0.9  # 24 slots at 50/s need 0.46 s
    stamps.sort()
    # the k-th request cannot have been let through before k intervals passed (a stamp can
    # only be late, never early, so this holds however the threads are scheduled)
    for k, stamp in enumerate(stamps):
        assert stamp - began >= k / 50 - 0.005


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer({
        "/ok": Reply.text("hello"),
        "/big": Reply.text("x" * 5000),
        "/big-unannounced": Reply(200, b"y" * 50_000, "text/plain", send_length=False),
        "/slow": Reply(200, b"late", "text/plain", delay=1.0),
        "/moved": Reply.redirect("/ok"),
    }) as srv:
        yield srv


GET_CASES = [
    ("/ok", 200, b"hello", None),
    ("/moved", 200, b"hello", None),
    ("/missing", 404, b'{"errorCode": 404, "title": "Not Found"}', None),
    ("/big", 200, None, "answer larger than 1000 bytes"),
    ("/big-unannounced", 200, None, "answer larger than 1000 bytes"),
]


@pytest.mark.parametrize(("path", "status", "body", "error"), GET_CASES)
def test_http_get(server: LoopbackServer, path: str, status: int, body: bytes | None,
                  error: str | None) -> None:
    with httpx.Client(follow_redirects=True) as client:
        got = http_get(client, RateLimiter(0), server.base_url + path, max_bytes=1000)
    assert (got.status, got.body, got.error) == (status, body, error)
    if path == "/moved":
        assert got.url == server.base_url + "/ok"


def test_http_get_failures_never_raise(server: LoopbackServer) -> None:
    with httpx.Client(timeout=0.2) as client:
        refused = http_get(client, RateLimiter(0), closed_port_url() + "/x", max_bytes=10)
        slow = http_get(client, RateLimiter(0), server.base_url + "/slow", max_bytes=10)
        bad = http_get(client, RateLimiter(0), "http://[::1/x", max_bytes=10)
        noscheme = http_get(client, RateLimiter(0), "ftp://127.0.0.1/x", max_bytes=10)
    assert refused.status == 0 and refused.error and refused.error.startswith("ConnectError")
    assert slow.status == 0 and slow.error and "Timeout" in slow.error
    assert bad.status == 0 and bad.error and bad.error.startswith("invalid URL")
    assert noscheme.status == 0 and noscheme.error
    for got in (refused, slow, bad, noscheme):
        assert got.error is not None and "\n" not in got.error
