"""`python bench/coverage_bench.py`: network coverage at national scale.

A synthetic registry of 2M organisations (NIS2 subsectors, provinces, some missing or junk
values), sector CSIRTs, regional partners, named-organisation agreements and ISPs whose
asn/prefix scopes the caller resolved to ~1M covered organisations; 200k notified ids.
Prints the time of compute_coverage and of the heat map, so a per-organisation loop that
creeps into the hot path shows up as a number.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cwn.network import NIS2_SECTORS, PROVINCES, compute_coverage, heatmap_svg

SUBSECTORS = [f"{s}/sub{n}" for s in NIS2_SECTORS for n in range(3)] + ["bakeries", ""]


def _ids(numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise("org-", pa.array(numbers).cast(pa.string()), "")


def _registry(rng: np.random.Generator, n: int) -> pa.Table:
    sectors = pa.array([*SUBSECTORS, None]).take(
        pa.array(rng.integers(0, len(SUBSECTORS) + 1, size=n)))
    provinces = pa.array([*PROVINCES, "PV99", None]).take(
        pa.array(rng.integers(0, len(PROVINCES) + 2, size=n)))
    return pa.table({"id": _ids(np.arange(n)), "sector": sectors, "province": provinces})


def _agreements(rng: np.random.Generator, n: int, isps: int, per_isp: int) -> pa.Table:
    partner: list[str] = []
    kind: list[str] = []
    value: list[str] = []
    covered: list[list[str] | None] = []
    for sector in list(NIS2_SECTORS)[::2]:
        partner.append(f"csirt-{sector}")
        kind.append("sector")
        value.append(sector)
        covered.append(None)
    for code in list(PROVINCES)[:6]:
        partner.append(f"region-{code}")
        kind.append("region")
        value.append(code)
        covered.append(None)
    for k, org in enumerate(rng.integers(0, n, size=1000)):
        partner.append(f"msp-{k % 50}")
        kind.append("organisation")
        value.append(f"org-{org}")
        covered.append(None)
    table = pa.table({"partner_id": partner, "kind": kind, "value": value,
                      "covered_orgs": pa.array(covered, pa.list_(pa.string()))})
    flat = _ids(rng.integers(0, n, size=isps * per_isp))
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, isps * per_isp + 1, per_isp,
                                                        dtype=np.int32)), flat)
    isp_table = pa.table({"partner_id": [f"isp-{k}" for k in range(isps)],
                          "kind": ["asn"] * isps,
                          "value": [str(64500 + k) for k in range(isps)],
                          "covered_orgs": lists})
    return pa.concat_tables([table, isp_table])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--organisations", type=int, default=2_000_000)
    ap.add_argument("--isps", type=int, default=200)
    ap.add_argument("--per-isp", type=int, default=5_000)
    ap.add_argument("--notified", type=int, default=200_000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    orgs = _registry(rng, args.organisations)
    agreements = _agreements(rng, args.organisations, args.isps, args.per_isp)
    notified = _ids(rng.integers(0, int(args.organisations * 1.05), size=args.notified))

    t = time.perf_counter()
    cells = compute_coverage(orgs, agreements, notified)
    coverage = time.perf_counter() - t
    t = time.perf_counter()
    svg = heatmap_svg(cells)
    heatmap = time.perf_counter() - t
    print(f"organisations {orgs.num_rows:,}  agreement rows {agreements.num_rows:,}  "
          f"covered_orgs {args.isps * args.per_isp:,}  notified ids {len(notified):,}")
    print(f"compute_coverage {coverage:.2f} s  ({len(cells)} cells, "
          f"{sum(c.direct_only for c in cells):,} notified without partner)")
    print(f"heatmap_svg      {heatmap * 1000:.1f} ms  ({len(svg):,} bytes)")


if __name__ == "__main__":
    main()
