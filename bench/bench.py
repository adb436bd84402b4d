"""`make bench`: ingest and attribution at national scale, on this machine.

Figures printed: registry bulk-load rate, attribution index build time (from the database,
10M assets), end-to-end ingest rate for a 1M-row Shadowserver report (parse → normalise →
attribute → store in the database and Parquet), and the process's peak RSS.
Sizes can be scaled down for a quick look: `python bench/bench.py --orgs 20000 --assets 100000
--rows 10000`.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth

from cwn.attribute.index import AssetIndex
from cwn.attribute.loader import (
    build_from_table,
    read_assets,
    read_sqlite_in_child,
    sqlite_file,
)
from cwn.config import Settings
from cwn.registry.bulk import load_bulk
from cwn.wiring import build

console = Console()


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orgs", type=int, default=2_000_000)
    ap.add_argument("--assets", type=int, default=10_000_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--database-url", default=None, help="default: SQLite under bench/out")
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    figures: list[tuple[str, str]] = []

    def step(label: str) -> float:
        console.log(label)
        return time.perf_counter()

    t = step(f"generating registry: {args.orgs:,} organisations, {args.assets:,} assets")
    orgs, assets = synth.registry(args.orgs, args.assets)
    figures.append(("registry generated", f"{time.perf_counter() - t:.1f} s"))

    t = step(f"generating Shadowserver scan report: {args.rows:,} rows")
    report = args.out / "2026-11-22-scan_rdp-nl-bench.csv"
    synth.scan_report(report, args.rows, assets)
    figures.append(("report size", f"{report.stat().st_size / 1e6:.0f} MB"))

    settings = Settings(home=args.out / "home", database_url=args.database_url)
    svc = build(settings)
    backend = svc.engine.dialect.name
    t = step(f"bulk-loading the registry into {backend}")
    load_bulk(svc.engine, orgs, assets)
    dt = time.perf_counter() - t
    figures.append(("registry load", f"{dt:.1f} s ({assets.num_rows / dt:,.0f} assets/s)"))
    del orgs, assets

    t = step("reading the verified assets from the database")
    db_file = sqlite_file(svc.engine)
    child = read_sqlite_in_child(db_file, args.out) if db_file is not None else None
    if child is not None:  # what load_index does for a large SQLite registry
        table = child[1]
    else:
        with svc.engine.connect() as conn:
            table = read_assets(conn)
    read_s = time.perf_counter() - t
    t = step("building the attribution index")
    index = build_from_table(table, svc.registry_version())
    build_s = time.perf_counter() - t
    figures.append((f"index build ({table.num_rows:,} assets)",
                    f"{build_s:.1f} s  (target < 30 s)"))
    figures.append(("  + reading assets from the database", f"{read_s:.1f} s"))
    del table
    t = time.perf_counter()
    index.save(args.out / "index-cache")
    save_s = time.perf_counter() - t
    load_s = _timed(lambda: AssetIndex.load(args.out / "index-cache"))
    figures.append(("  cached index save / load", f"{save_s:.1f} s / {load_s:.1f} s"))
    svc._index, svc._index_version = index, svc.registry_version()

    t = step("ingesting the report (parse → normalise → attribute → store)")
    summary = svc.pipeline().ingest_paths([report])
    dt = time.perf_counter() - t
    f = summary.files[0]
    if f.status != "ingested":
        console.print(f"[red]ingest failed: {f.error}")
        return 1
    figures.append(("ingest end to end", f"{dt:.1f} s"))
    figures.append(("events/s", f"{f.events / dt:,.0f}  (target ≥ 100,000)"))
    figures.append(("events / attributed / quarantined",
                    f"{f.events:,} / {f.attributed:,} / {f.quarantined:,}"))
    figures.append(("peak RSS", f"{peak_rss_mb():,.0f} MB  (target < 4,096 MB)"))

    table = Table(title=f"cwn bench ({backend}, {Path('/proc/cpuinfo').exists() and 'linux'})",
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in figures:
        table.add_row(k, v)
    console.print(table)
    svc.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
