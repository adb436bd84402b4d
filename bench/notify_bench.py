"""Notify at national scale: 100,000 organisations with a new case each, rendered as mail and
delivered to a local SMTP server (aiosmtpd, in its own process so it does not share our GIL).

Figures: ingest time (parse → attribute → store), routing + rendering into the outbox,
delivery rate, messages/s over the whole notify (target ≥ 300/s), and the time from the
start of ingest to the last message the server accepted.

    python bench/notify_bench.py [--orgs 100000] [--workers 4] [--database-url URL]

`run_bench()` is the entry point for `make bench`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cwn.config import Settings
from cwn.db.base import Base
from cwn.db.models import Contact
from cwn.db.models_notify import NOTIFY_TABLES
from cwn.notify import Notifier, NotifyConfig
from cwn.registry.bulk import load_bulk
from cwn.wiring import build

console = Console()
BASE_NET = 11 << 24  # 11.0.0.0: org i owns 11.x.y.0/24 with x.y = i


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smtp_server(port: int, count: Any, last: Any, ready: Any) -> None:
    """A counting SMTP sink: how many messages were accepted, and when the last one was."""
    import asyncio

    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with count.get_lock():
                count.value += 1
            last.value = time.time()
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        asyncio.run(asyncio.sleep(10**7))
    finally:
        controller.stop()


def _ipv4(ints: np.ndarray) -> pa.Array:
    parts = [pa.array(((ints >> s) & 255).astype(np.int64)).cast(pa.string())
             for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def _registry(n: int) -> tuple[pa.Table, pa.Table]:
    idx = np.arange(n, dtype=np.int64)
    ids = pc.binary_join_element_wise("org", pc.utf8_lpad(pa.array(idx).cast(pa.string()), 6,
                                                          "0"), "")
    nets = BASE_NET + (idx << 8)
    orgs = pa.table({
        "id": ids,
        "name": pc.binary_join_element_wise("Bench organisation ", pa.array(idx)
                                            .cast(pa.string()), ""),
        "language": pa.array(np.where(idx % 10 == 0, "en", "nl")),
    })
    assets = pa.table({
        "org_id": ids, "type": pa.repeat(pa.scalar("cidr"), n),
        "value": pc.binary_join_element_wise(_ipv4(nets), "24", "/"),
        "ip_version": pa.repeat(pa.scalar(4, pa.int16()), n),
        "ip_hi": pa.nulls(n, pa.int64()), "ip_lo": pa.array(nets),
        "prefixlen": pa.repeat(pa.scalar(24, pa.int16()), n),
        "asn": pa.nulls(n, pa.int64()),
    })
    return orgs, assets


def _report(path: Path, n: int) -> None:
    """A Shadowserver scan_rdp report with one vulnerable host in every organisation."""
    idx = np.arange(n, dtype=np.int64)
    ips = BASE_NET + (idx << 8) + 10
    rep = lambda v: pa.repeat(pa.scalar(v), n)  # noqa: E731
    table = pa.table({
        "timestamp": rep("2026-11-22 03:14:15"), "ip": _ipv4(ips), "protocol": rep("tcp"),
        "port": rep(3389),
        "hostname": pc.binary_join_element_wise("rdp", pa.array(idx).cast(pa.string()),
                                                ".example.nl", ""),
        "tag": rep("rdp"), "asn": rep(64512), "geo": rep("NL"), "region": rep("NOORD-HOLLAND"),
        "city": rep("AMSTERDAM"), "naics": rep(517311), "sic": rep(0),
        "rdp_protocol": rep("RDP"), "cert_length": rep(2048),
        "subject_common_name": rep("host"), "issuer_common_name": rep("host"),
        "cert_valid_from": rep("2026-01-01 00:00:00"),
        "cert_valid_to": rep("2027-01-01 00:00:00"), "sha256_fingerprint": rep("AB" * 32),
        "severity": rep("high"),
    })
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))


def run_bench(n_orgs: int = 100_000, *, database_url: str | None = None,
              out: Path = Path("bench/out/notify"), workers: int = 4) -> list[tuple[str, str]]:
    """Run the benchmark; returns (figure, value) rows."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    figures: list[tuple[str, str]] = []
    ctx = mp.get_context("spawn")
    count, last, ready = ctx.Value("q", 0), ctx.Value("d", 0.0), ctx.Event()
    port = _free_port()
    server = ctx.Process(target=_smtp_server, args=(port, count, last, ready), daemon=True)
    server.start()
    ready.wait(30)
    try:
        settings = Settings(home=out / "home", database_url=database_url,
                            smtp_url=f"smtp://127.0.0.1:{port}")
        svc = build(settings)
        Base.metadata.create_all(svc.engine, tables=NOTIFY_TABLES, checkfirst=True)
        backend = svc.engine.dialect.name
        console.log(f"registry: {n_orgs:,} organisations with a contact each ({backend})")
        orgs, assets = _registry(n_orgs)
        load_bulk(svc.engine, orgs, assets)
        with svc.engine.begin() as conn:
            rows = [{"org_id": o, "email": f"security@{o}.example.nl", "priority": 10}
                    for o in orgs.column("id").to_pylist()]
            for start in range(0, len(rows), 20_000):
                conn.execute(insert(Contact), rows[start:start + 20_000])
        report = out / "2026-11-22-scan_rdp-nl-bench.csv"
        _report(report, n_orgs)

        console.log("ingest → notify → deliver")
        t0 = time.perf_counter()
        wall0 = time.time()
        summary = svc.pipeline().ingest_paths([report])
        t_ingest = time.perf_counter() - t0
        f = summary.files[0]
        figures.append(("ingest", f"{t_ingest:.1f} s ({f.events:,} events, "
                                  f"{f.attributed:,} attributed)"))
        notifier = Notifier.from_services(
            svc, config=NotifyConfig(mail_domain="bench.test", workers=workers))
        t1 = time.perf_counter()
        result = notifier.run(workers=workers)
        t_notify = time.perf_counter() - t1
        deadline = time.time() + 60
        while count.value < result.queued and time.time() < deadline:
            time.sleep(0.05)
        d = result.delivery
        assert d is not None
        figures.append(("cases opened", f"{result.cases.opened if result.cases else 0:,}"))
        figures.append(("route + render into outbox",
                        f"{result.route_seconds:.1f} s "
                        f"({result.queued / max(result.route_seconds, 1e-9):,.0f} messages/s)"))
        figures.append(("delivery", f"{d.sent:,} sent in {d.seconds:.1f} s "
                                    f"({d.sent / max(d.seconds, 1e-9):,.0f} messages/s, "
                                    f"{workers} connections)"))
        figures.append(("notify overall", f"{t_notify:.1f} s, "
                                          f"{d.sent / max(t_notify, 1e-9):,.0f} messages/s "
                                          "(target ≥ 300/s)"))
        figures.append(("server accepted", f"{count.value:,} messages"))
        figures.append(("ingest start → last message accepted",
                        f"{last.value - wall0:.1f} s"))
        svc.close()
    finally:
        server.terminate()
        server.join(10)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orgs", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--database-url", default=None, help="default: SQLite under --out")
    ap.add_argument("--out", type=Path, default=Path("bench/out/notify"))
    args = ap.parse_args()
    figures = run_bench(args.orgs, database_url=args.database_url, out=args.out,
                        workers=args.workers)
    table = Table(title="cwn notify bench", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in figures:
        table.add_row(k, v)
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
