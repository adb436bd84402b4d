"""`cwn serve` as an operator starts it: a real process with several workers on a real port,
which answers pages and the API, stops cleanly on SIGTERM, and refuses a taken port with
one line instead of a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from cwn.access import tokens
from cwn.config import Settings
from cwn.db.models import Organization
from cwn.wiring import build

pytestmark = pytest.mark.xdist_group("serve")


def _cwn() -> list[str]:
    exe = Path(sys.executable).with_name("cwn")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "cwn.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: Settings, port: int, workers: int) -> dict[str, str]:
    return {**os.environ, "CWN_HOME": str(settings.home), "CWN_DATABASE_URL": settings.db_url,
            "CWN_WEB_HOST": "127.0.0.1", "CWN_WEB_PORT": str(port),
            "CWN_WEB_WORKERS": str(workers)}


def _get(url: str, headers: dict[str, str] | None = None,
         timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    org_token: str
    source_token: str


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    svc = build(settings)
    with svc.sessions() as s:
        s.add(Organization(id="bakery", name="Bakkerij"))
        s.flush()
        _, raw = tokens.create(s, actor="test", org_id="bakery", scopes=["read"])
        _, source = tokens.create(s, actor="test", source="shadowserver-test")
        s.commit()
    svc.close()
    port = _free_port()
    env = {**_env(settings, port, 2), "CWN_API_MAX_UPLOAD_MB": "1"}
    log = settings.home / "serve.log"
    proc = subprocess.Popen([*_cwn(), "serve"], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"cwn serve exited: {log.read_text()!r}")
        try:
            if _get(base + "/healthz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("cwn serve did not come up in 60 s")
        time.sleep(0.2)
    try:
        yield Served(proc, base, raw, source)
    finally:
        _stop_tree(proc)


def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM as an init system sends it; whatever is left after 30 s is killed, workers
    included (killing only the parent would orphan them)."""
    if proc.poll() is not None:
        return
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=30)
    for p in alive:
        p.kill()
    proc.wait(timeout=10)


def test_serve_answers_pages_and_the_api_from_every_worker(
        served: Served) -> None:
    proc, base, raw = served.proc, served.base, served.org_token
    status, body = _get(base + "/api/v1/me", {"Authorization": f"Bearer {raw}"})
    assert status == 200 and json.loads(body)["org_id"] == "bakery"
    status, body = _get(base + "/api/v1/me")
    assert status == 401 and json.loads(body)["error"]
    status, body = _get(base + "/login")
    assert status == 200 and b"<form" in body
    # Two workers, each its own process; new connections reach both over time.
    assert len(psutil.Process(proc.pid).children(recursive=True)) >= 2
    for _ in range(20):
        assert _get(base + "/api/v1/cases?per_page=5",
                    {"Authorization": f"Bearer {raw}"})[0] == 200


def test_a_source_submits_through_the_server_and_an_oversize_body_is_413(
        served: Served, shared_data: Path) -> None:
    """Streaming uploads go through the server's own request-body handling: the report is
    spooled and ingested, and a body over the cap is cut off with a JSON 413."""
    base = served.base
    auth = {"Authorization": f"Bearer {served.source_token}"}
    csv = (shared_data / "shadowserver" / "csv" / "scan_dns.csv").read_bytes()
    name = "2019-01-01-scan_dns-test-test.csv"
    with httpx.Client(base_url=base, timeout=60) as http:
        first = http.post("/api/v1/submissions", headers=auth,
                          files={"file": (name, csv, "text/csv")})
        assert first.status_code == 201, first.text
        assert (first.json()["status"], first.json()["events"]) == ("ingested", 100)
        again = http.post("/api/v1/submissions", headers=auth,
                          files={"file": (name, csv, "text/csv")})
        assert again.status_code == 201 and again.json()["duplicate"] is True
        big = csv + b"\n".join([csv.splitlines()[-1]] * 40_000)  # well over 1 MB
        assert len(big) > 2 * 1024 * 1024
        over = http.post("/api/v1/submissions", headers=auth,
                         files={"file": (name.replace("2019", "2020"), big, "text/csv")})
        assert over.status_code == 413 and over.json()["error"]
        assert http.get("/healthz").status_code == 200


def test_sigterm_stops_every_worker(served: Served) -> None:
    proc, base = served.proc, served.base
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(_workers(proc)) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    with pytest.raises(OSError):
        _get(base + "/healthz")


def test_workers_follow_a_killed_parent_down(served: Served) -> None:
    """`kill -9` of `cwn serve` (an OOM kill, a crashed supervisor) must not leave workers
    serving from an orphaned process that no init system knows about."""
    children = psutil.Process(served.proc.pid).children(recursive=True)
    assert children
    served.proc.kill()
    served.proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive
    with pytest.raises(OSError):
        _get(served.base + "/healthz")


def test_workers_still_starting_when_the_parent_is_killed_exit_too(settings: Settings) -> None:
    """The race behind a flaky run: `kill -9` while a worker was still importing the app,
    before it could ask the kernel to be told of its parent's death."""
    build(settings).close()  # the schema exists, as after `cwn init`
    proc = subprocess.Popen([*_cwn(), "serve"], env=_env(settings, _free_port(), 2),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(_workers(proc)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "no workers started"
            time.sleep(0.01)
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.kill()
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=30)
    for p in alive:
        p.kill()
    assert not alive


def _workers(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The serving processes: not multiprocessing's resource tracker beside them, nor a
    killed worker the supervisor has not reaped yet."""
    found = []
    for child in psutil.Process(proc.pid).children():
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # a zombie or just gone
            pass
    return found


def test_a_worker_that_dies_is_replaced_and_shutdown_still_works(served: Served) -> None:
    """A respawned worker must serve and must also stop on SIGTERM: one forked from the
    supervisor once inherited its signal handler and hung every later shutdown."""
    worker = _workers(served.proc)[0]
    worker.kill()
    deadline = time.monotonic() + 30
    while True:
        now = _workers(served.proc)
        if len(now) >= 2 and worker.pid not in {p.pid for p in now}:
            break
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.2)
    # The replacement is a fresh interpreter: a connection the kernel hands to its socket
    # waits until it has imported the app, which on a loaded machine takes seconds.
    answered = 0
    while answered < 10:
        try:
            status, _ = _get(served.base + "/api/v1/me",
                             {"Authorization": f"Bearer {served.org_token}"}, timeout=30)
        except OSError:
            assert time.monotonic() < deadline + 30, "the server stopped answering"
            time.sleep(0.2)
            continue
        assert status == 200
        answered += 1
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(now, timeout=10)
    assert not alive


def test_a_taken_port_is_one_line_and_a_non_zero_exit(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([*_cwn(), "serve"], env=_env(settings, port, 2),
                             capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"127.0.0.1:{port} is already in use" in lines[0]
    assert "Traceback" not in out.stderr + out.stdout
