"""`python bench/publicdata_intervals_bench.py`: IntervalIndex build and lookup at RIR scale.

Synthetic nested ranges (random CIDR prefixes nest or are disjoint, like BGP tables and
inetnum trees), mostly IPv4 with a share of IPv6; random query addresses. Prints build,
save/load and lookup figures, so a regression in the hot path shows up as a number.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cwn.publicdata.intervals import IntervalIndex


def _ranges(rng: np.random.Generator, n4: int, n6: int,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    plen4 = rng.choice(np.arange(8, 33), size=n4,
                       p=_weights(np.arange(8, 33), peak=24)).astype(np.uint64)
    addr4 = rng.integers(0, 2**32, size=n4, dtype=np.uint64)
    host4 = (np.uint64(1) << (np.uint64(32) - plen4)) - np.uint64(1)
    s4 = addr4 & ~host4 & np.uint64(0xFFFFFFFF)
    e4 = s4 | host4
    plen6 = rng.integers(19, 65, size=n6).astype(np.uint64)  # within the high half
    hi6 = rng.integers(0, 2**61, size=n6, dtype=np.uint64) | np.uint64(0x2000000000000000)
    host6 = (np.uint64(1) << (np.uint64(64) - plen6)) - np.uint64(1)
    sh6 = hi6 & ~host6
    eh6 = sh6 | host6
    version = np.concatenate([np.full(n4, 4, np.int8), np.full(n6, 6, np.int8)])
    zeros6 = np.zeros(n6, np.uint64)
    return (version, np.concatenate([np.zeros(n4, np.uint64), sh6]),
            np.concatenate([s4, zeros6]), np.concatenate([np.zeros(n4, np.uint64), eh6]),
            np.concatenate([e4, np.full(n6, 2**64 - 1, np.uint64)]))


def _weights(lengths: np.ndarray, peak: int) -> np.ndarray:
    w = np.exp(-0.5 * ((lengths - peak) / 3.0) ** 2) + 0.01
    return w / w.sum()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranges", type=int, default=4_000_000)
    ap.add_argument("--v6-share", type=float, default=0.05)
    ap.add_argument("--queries", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    n6 = int(args.ranges * args.v6_share)
    cols = _ranges(rng, args.ranges - n6, n6)

    t = time.perf_counter()
    ix = IntervalIndex.build(*cols)
    build = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ix.npz"
        t = time.perf_counter()
        ix.save(path)
        save = time.perf_counter() - t
        t = time.perf_counter()
        ix = IntervalIndex.load(path)
        load = time.perf_counter() - t
        size = path.stat().st_size

    q6 = args.queries // 20
    q4 = args.queries - q6
    version = np.concatenate([np.full(q4, 4, np.int8), np.full(q6, 6, np.int8)])
    hi = np.concatenate([np.zeros(q4, np.uint64),
                         rng.integers(0, 2**61, size=q6, dtype=np.uint64)
                         | np.uint64(0x2000000000000000)])
    lo = np.concatenate([rng.integers(0, 2**32, size=q4, dtype=np.uint64),
                         rng.integers(0, 2**63, size=q6, dtype=np.uint64)])
    t = time.perf_counter()
    found = ix.lookup(version, hi, lo)
    look = time.perf_counter() - t
    depth = 0
    p = ix.parent[found[found >= 0]]
    while len(p):
        depth += 1
        p = ix.parent[p[p >= 0]]
    print(f"ranges            {args.ranges:>12,} ({n6:,} IPv6)")
    print(f"build             {build:>12.2f} s")
    print(f"save / load       {save:>8.2f} s / {load:.2f} s ({size / 1e6:.0f} MB)")
    print(f"lookup            {look:>12.3f} s for {args.queries:,} "
          f"({args.queries / look:,.0f} /s; {np.count_nonzero(found >= 0):,} found, "
          f"max parent depth {depth})")


if __name__ == "__main__":
    main()
