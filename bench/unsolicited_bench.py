"""`make bench`, unsolicited path: attribute 1,000,000 unregistered events against
RIPE-scale public data (~4M nested inetnums, as the real dump has).

Figures printed: the RIPE import and load times (once per refresh, not per event), the
public-owner attribution of a 1M-event batch on its own (target ≥ 50,000 events/s once the
data is loaded), and a whole `cwn ingest` of a 1M-row Shadowserver report whose addresses no
organisation registered (parse → registry index → public owners → Parquet). `--scale 0.1`
for a quick look.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import publicdata_ripe_bench as ripe_bench
import synth

from cwn.attribute.public import PublicAttribution
from cwn.config import Settings
from cwn.events.batch import EVENT_SCHEMA
from cwn.publicdata.csirts import import_csirts
from cwn.publicdata.ripe import import_ripe
from cwn.publicdata.store import PublicDataStore
from cwn.wiring import build

console = Console()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = ~4M inetnums")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="cwn-unsolicited-bench-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    figures: list[tuple[str, str]] = []
    try:
        console.log(f"synthesising RIPE split dumps (scale {args.scale})")
        (work / "dumps").mkdir()
        counts = ripe_bench.synthesise(work / "dumps", args.scale)
        home = work / "home"
        settings = Settings(home=home)
        store = PublicDataStore(settings.publicdata_dir)
        console.log("importing the RIPE Database dumps")
        t = time.perf_counter()
        import_ripe(sorted((work / "dumps").glob("ripe.db.*.gz")), store)
        dt = time.perf_counter() - t
        total = sum(counts.values())
        figures.append(("RIPE import", f"{total:,} objects in {dt:.1f} s "
                                       f"({total / dt:,.0f} objects/s)"))
        csirts = work / "csirts.csv"
        csirts.write_text("country,name,email\nDE,CERT-Bund,certbund@bsi.example.de\n")
        import_csirts(csirts, store)

        t = time.perf_counter()
        public = PublicAttribution.load(store)
        assert public is not None and public.ripe is not None
        figures.append(("public data load", f"{time.perf_counter() - t:.2f} s"))

        blocks = public.ripe.blocks
        v4 = blocks.filter(pc.equal(blocks.column("version"), 4))
        lo = v4.column("start_lo").to_numpy().astype(np.int64)
        size = v4.column("end_lo").to_numpy().astype(np.int64) - lo + 1
        assets = pa.table({"ip_version": pa.repeat(pa.scalar(4, pa.int16()), v4.num_rows),
                           "ip_lo": pa.array(lo),
                           "prefixlen": pa.array((32 - np.log2(size)).astype(np.int16))})
        report = work / "2026-11-22-scan_rdp-nl-bench.csv"
        synth.scan_report(report, args.rows, assets, hit_ratio=0.9)

        names = EVENT_SCHEMA.names
        ips = pacsv.read_csv(report).column("ip")
        n = len(ips)
        batch = pa.Table.from_arrays(
            [ips if name == "source.ip" else pa.nulls(n, EVENT_SCHEMA.field(name).type)
             for name in names], schema=EVENT_SCHEMA)
        console.log(f"attributing {n:,} unregistered events")
        t = time.perf_counter()
        out = public.attribute(batch)
        dt = time.perf_counter() - t
        owned = n - out.column("organization").null_count
        figures.append(("public-owner attribution", f"{n / dt:,.0f} events/s  "
                        f"(target ≥ 50,000; {owned:,} of {n:,} owned)"))

        svc = build(settings)
        console.log("ingesting the report (nobody registered: every owner is public)")
        t = time.perf_counter()
        summary = svc.pipeline().ingest_paths([report])
        dt = time.perf_counter() - t
        f = summary.files[0]
        figures.append(("ingest end to end (public owners)",
                        f"{f.events / dt:,.0f} events/s ({f.public:,} public-owned, "
                        f"{dt:.1f} s)"))
        figures.append(("peak RSS", f"{ripe_bench._peak_mb():,.0f} MB"))
        svc.close()
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    table = Table(title="cwn bench: unsolicited attribution", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in figures:
        table.add_row(k, v)
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
