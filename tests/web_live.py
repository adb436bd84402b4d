"""A live portal for browser tests: the real app under a real uvicorn on a free loopback
port, with a real SMTP server (aiosmtpd) that keeps every mail and a real DNS server that
answers the TXT challenges of domain claims.

Import it as `from web_live import live_portal` (`tests/` is on pytest's pythonpath). The
server runs in a thread of the test process, so a test can use the same `Services`
(database, archives) as the portal while a browser drives the pages over HTTP.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from cwn.config import Settings
from cwn.web.app import create_app
from cwn.wiring import Services, build
from dns_server import DnsServer
from notify_support import Received, SmtpServer, mail_server


class ThreadedServer:
    """uvicorn serving one ASGI app from a daemon thread (signals stay with pytest)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        # Bound before the app exists: the app's settings (links in mails) need the port.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = int(self.sock.getsockname()[1])
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, app: object, timeout: float = 15.0) -> None:
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True,
                                       name=f"uvicorn:{self.port}")
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live portal did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class Live:
    """A running portal and the servers around it."""

    url: str  # http://localhost:<port>, no trailing slash
    svc: Services
    smtp: SmtpServer
    dns: DnsServer

    @property
    def settings(self) -> Settings:
        return self.svc.settings

    def mails_to(self, address: str, timeout: float = 10.0) -> list[Received]:
        """The messages delivered to `address`, waiting briefly for the first one."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.smtp.recorder.to(address)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def link_in(self, message: Received, path_prefix: str) -> str:
        """The first link in the mail's plain text that points into this portal at
        `path_prefix` (e.g. "/invite/")."""
        body = message.message.get_body(("plain",))
        assert body is not None, "the mail has no plain-text part"
        text = body.get_content()
        m = re.search(re.escape(self.url + path_prefix) + r"[^\s<>\"']*", text)
        assert m, f"no {self.url}{path_prefix}… link in the mail:\n{text[:2000]}"
        return m.group(0)


def live_settings(home: Path, *, database_url: str | None = None, **overrides: object
                  ) -> Settings:
    """Settings of a live portal under `home` (SQLite there unless `database_url`)."""
    values: dict[str, object] = {"home": home, "database_url": database_url, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def live_portal(home: Path, *, database_url: str | None = None, **overrides: object
                ) -> Iterator[Live]:
    """Start SMTP, DNS and the portal; links in mails point at the live URL.

    The URL uses `localhost`: browsers treat it as a secure context, so the portal's
    Secure cookies work over plain HTTP exactly as they do behind HTTPS in production."""
    with contextlib.ExitStack() as stack:
        smtp = stack.enter_context(mail_server())
        dns = stack.enter_context(DnsServer())
        server = ThreadedServer()
        stack.callback(server.sock.close)
        url = f"http://localhost:{server.port}"
        settings = live_settings(
            home, database_url=database_url, smtp_url=smtp.url, public_url=url,
            desk_url=url + "/case/{case_id}?key={key}",
            dns_nameserver=dns.address, **overrides)
        svc = build(settings)
        stack.callback(svc.close)
        server.start(create_app(svc))
        stack.callback(server.stop)  # before the services close
        yield Live(url=url, svc=svc, smtp=smtp, dns=dns)
