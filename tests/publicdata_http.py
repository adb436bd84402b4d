"""A real HTTP server on 127.0.0.1 (port 0) serving recorded answers, for live-lookup tests.

Tests talk to it over real sockets through the same httpx code as production, and count
requests per path to prove what was (not) fetched.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, body ends when the connection closes
    delay: float = 0.0

    @classmethod
    def json(cls, obj: Any, status: int = 200,
             content_type: str = "application/rdap+json") -> Reply:
        return cls(status, json.dumps(obj).encode("utf-8"), content_type)

    @classmethod
    def text(cls, text: str, status: int = 200,
             content_type: str | None = "text/plain; charset=utf-8") -> Reply:
        return cls(status, text.encode("utf-8"), content_type)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status, b"", None, {"Location": location})


class LoopbackServer:
    """`routes` maps a request path (or a prefix ending in '*') to its reply; anything else
    is an RDAP-style 404. Routes may be changed while the server runs."""

    def __init__(self, routes: dict[str, Reply] | None = None) -> None:
        self.routes: dict[str, Reply] = dict(routes or {})
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.hits[path] += 1
                    reply = server.route(path)
                if reply is None:
                    reply = Reply(404, b'{"errorCode": 404, "title": "Not Found"}',
                                  "application/rdap+json")
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                if reply.content_type is not None:
                    self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.send_length:
                    self.send_header("Content-Length", str(len(reply.body)))
                else:
                    self.close_connection = True
                self.end_headers()
                # the client may hang up on purpose (size limit)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, path: str) -> Reply | None:
        """Exact path, else the longest route ending in '*' that prefixes it (an RIR answers
        every address of a network with the same object)."""
        if path in self.routes:
            return self.routes[path]
        prefixes = [r for r in self.routes if r.endswith("*") and path.startswith(r[:-1])]
        return self.routes[max(prefixes, key=len)] if prefixes else None

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(self.hits.values()) if path is None else self.hits[path]

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeClock:
    """Wall clock for TTL tests and monotonic clock + sleep for rate-limit tests, in one:
    `sleep` advances time instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.mono = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now = self.now + timedelta(**kwargs)

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds
