"""`cwn serve`: the portal and API under Granian, a Rust HTTP server for Python apps.

Why not uvicorn (which the tests still use in-thread): under load its workers share one
listening socket, and whichever wakes first accepts every pending connection. API clients
keep their connections open, so an early imbalance lasts. Measured with 100 connections
on two workers: per-connection rates of 12 against 42 requests/s, and p99 0.5–1.5 s while
the median was 50 ms. On Linux, Granian gives each worker its own SO_REUSEPORT socket, so
the kernel's hash splits the connections: an even split in most runs, 35/65 in some. It
does the socket work in Rust, and its 1–2 s stalls were gone. It also respawns a worker
that dies.

Granian does not read proxy headers; `app_from_env` adds that middleware itself. Its
workers do not watch their parent either: a `kill -9` of `cwn serve` left them serving.
`die_with_parent` makes each worker follow its parent down.
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import signal
import socket
import sys
from dataclasses import dataclass

APP = "cwn.web.app:app_from_env"
_SERVE_PID = "CWN_SERVE_PID"  # set by `serve` for its workers
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    app: str = APP


class PortInUse(OSError):
    """Another program listens on the port (the one-line error `cwn serve` prints)."""


def check_port_free(host: str, port: int) -> None:
    """Fail before any worker starts, with a message a person can act on."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                          socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(exc.errno, f"{host}:{port} is already in use") from None
        raise
    finally:
        probe.close()


def die_with_parent() -> None:
    """In a worker of `cwn serve` on Linux: end when the supervising process dies, however
    it died. Elsewhere, or when the app runs under some other server, nothing changes.

    The kernel sends SIGKILL the moment the parent dies (`PR_SET_PDEATHSIG`). SIGTERM was
    tried first: a worker asked to stop gracefully with its supervisor gone sometimes hung
    in Granian's shutdown (every thread waiting on a futex, so not even a Python watchdog
    thread could run) and stayed as an orphan. Open requests on it are cut, as they are
    with the supervisor gone anyway. A worker whose parent died before this was set up
    exits at once."""
    expected = os.environ.get(_SERVE_PID)
    if not sys.platform.startswith("linux") or expected is None:
        return
    if expected != str(os.getppid()):
        os._exit(1)  # `cwn serve` is gone already: this worker would serve for nobody
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if expected != str(os.getppid()):  # it died between the check and prctl
        os._exit(1)


def serve(opts: ServeOptions) -> None:
    """Blocks until SIGINT or SIGTERM; open requests are finished first."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    check_port_free(opts.host, opts.port)
    os.environ[_SERVE_PID] = str(os.getpid())  # workers inherit it: see die_with_parent
    # Fresh interpreters, not forks: a worker Granian respawned by fork inherited the
    # supervisor's SIGTERM handler, ignored SIGTERM and hung every later shutdown.
    multiprocessing.set_start_method("spawn", force=True)
    Server(opts.app, address=opts.host, port=opts.port, interface=Interfaces.ASGI,
           workers=opts.workers, factory=True, websockets=False, backlog=2048,
           log_level=LogLevels.warning, respawn_failed_workers=True,
           respawn_interval=1.0).serve()
