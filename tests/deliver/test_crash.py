"""Crash safety: `python -m cwn.notify` SIGKILLed mid-run, then run again, loses nothing and
sends nothing twice — checked on a real SMTP server by Message-ID.

The process is stopped at named steps (`CWN_TEST_HOOK=step:n:pause` makes it wait there and
tell us), then killed from outside with SIGKILL. The one window where a repeat is possible
(the server said 250, we died before committing) is tested too, and documented: at most one
repeat, with the same Message-ID and bytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from cwn.archive.events import EventArchive
from cwn.config import Settings
from notify_support import (  # noqa: F401  (smtp_server is a fixture)
    SmtpServer,
    add_org,
    add_report,
    create_notify_tables,
    smtp_server,
)

pytestmark = pytest.mark.slow


def _setup(engine: Engine, settings: Settings, n: int) -> None:
    create_notify_tables(engine)
    for i in range(n):
        add_org(engine, f"org{i:03d}", language="nl" if i % 2 else "en",
                contacts=[{"email": f"cert@org{i:03d}.nl"}])
    add_report(engine, EventArchive(settings.events_dir),
               [{"source.ip": f"192.0.2.{i + 1}", "organization": f"org{i:03d}"}
                for i in range(n)])


def _env(settings: Settings, db_url: str, server: SmtpServer, tmp: Path,
         hook: str | None, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWN_")}
    env.update({"CWN_HOME": str(settings.home), "CWN_DATABASE_URL": db_url,
                "CWN_SMTP_URL": server.url, "CWN_MAIL_DOMAIN": "cert.test",
                "CWN_DELIVERY_WORKERS": str(workers),
                "CWN_TEST_HOOK_FILE": str(tmp / "paused")})
    if hook:
        env["CWN_TEST_HOOK"] = hook
    return env


def _notify(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cwn.notify"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_unlocked(engine: Engine) -> None:
    """PostgreSQL drops a killed client's row locks once it notices the closed socket; the
    rerun should not race that (it would skip the locked row, leaving it to the next run)."""
    if engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + 20
    while True:
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT id FROM deliveries FOR UPDATE NOWAIT"))
                conn.execute(text("SELECT 1 FROM notify_reports FOR UPDATE NOWAIT"))
            return
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _kill_when(proc: subprocess.Popen[bytes], ready: object, timeout: float = 60,
               settle: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"notify ended before the kill point: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("kill point never reached")
        time.sleep(0.02)
    time.sleep(settle)  # other delivery threads reach their next checkpoint and stop there
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def _rerun(env: dict[str, str], engine: Engine) -> None:
    _wait_unlocked(engine)
    env = {k: v for k, v in env.items() if k != "CWN_TEST_HOOK"}
    res = subprocess.run([sys.executable, "-m", "cwn.notify"], env=env, capture_output=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-3000:]


def _expected(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT message_id, state FROM deliveries")).all()
    assert {r[1] for r in rows} == {"sent"}
    return {r[0] for r in rows}


@pytest.mark.parametrize(("hook", "workers"), [
    ("route_start:1", 1),
    ("before_route_commit:1", 1),
    ("after_route_commit:1", 1),
    ("before_send:1", 1),
    ("before_send:4", 1),
    ("after_commit:3", 1),
    ("before_send:3", 2),
    ("after_commit:5", 2),
])
def test_killed_at_a_named_step_then_rerun_sends_every_message_exactly_once(
    engine: Engine, settings: Settings, db_url: str, smtp_server: SmtpServer,  # noqa: F811
    tmp_path: Path, hook: str, workers: int,
) -> None:
    n = 8
    _setup(engine, settings, n)
    env = _env(settings, db_url, smtp_server, tmp_path, f"{hook}:pause", workers)
    marker = tmp_path / "paused"
    proc = _notify(env)
    _kill_when(proc, marker.exists)

    _rerun(env, engine)

    ids = Counter(m.message_id for m in smtp_server.messages)
    assert all(c == 1 for c in ids.values()), ids
    assert set(ids) == _expected(engine)
    assert len(ids) == n
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(
        f"cert@org{i:03d}.nl" for i in range(n))


def test_the_residual_window_repeats_at_most_the_one_message_in_flight(
    engine: Engine, settings: Settings, db_url: str, smtp_server: SmtpServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Killed after the server's 250 but before our commit: that message goes out again,
    identical (same Message-ID, same bytes); nothing else repeats and nothing is lost."""
    n = 5
    _setup(engine, settings, n)
    env = _env(settings, db_url, smtp_server, tmp_path, "after_send:2:pause", 1)
    proc = _notify(env)
    _kill_when(proc, (tmp_path / "paused").exists)
    _rerun(env, engine)

    ids = Counter(m.message_id for m in smtp_server.messages)
    assert set(ids) == _expected(engine) and len(ids) == n
    repeated = [mid for mid, c in ids.items() if c > 1]
    assert len(repeated) == 1 and ids[repeated[0]] == 2
    copies = [m.data for m in smtp_server.messages if m.message_id == repeated[0]]
    assert copies[0] == copies[1]


def test_killed_from_outside_after_some_messages_loses_nothing(
    engine: Engine, settings: Settings, db_url: str, smtp_server: SmtpServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An unannounced SIGKILL at whatever point the process happens to be: no message is
    lost, and at most the one in flight is repeated."""
    n = 150
    _setup(engine, settings, n)
    env = _env(settings, db_url, smtp_server, tmp_path, None, 2)
    proc = _notify(env)
    _kill_when(proc, lambda: len(smtp_server.messages) >= 5, settle=0)
    _rerun(env, engine)
    ids = Counter(m.message_id for m in smtp_server.messages)
    assert set(ids) == _expected(engine) and len(ids) == n
    assert sum(c - 1 for c in ids.values()) <= 2  # one in flight per connection
