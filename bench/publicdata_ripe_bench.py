"""RIPE Database import and lookup at real size: ~4M nested inetnums, as the real dump has.

Synthesises RIPE-style split dumps (gzip, dummified like the public ones): /16 allocations
held by an LIR organisation whose abuse-c role has the mailbox, /24 assignments (a third with
their own abuse-c) and /29 sub-assignments under some of them, which only find a mailbox by
walking up to the parent; plus /32-/48 inet6nums and aut-nums. Then times the parser alone,
`import_ripe`, `RipeData.load`, and 1,000,000 IP lookups (end to end from text, and the
interval search alone). `--scale 0.1` for a quick look; `--scale 1` is ~4M inetnums.
"""

from __future__ import annotations

import argparse
import gzip
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cwn.attribute.ipcodec import parse_ips
from cwn.publicdata.ripe import RipeData, import_ripe
from cwn.publicdata.rpsl import iter_objects
from cwn.publicdata.store import PublicDataStore

ALLOCS_AT_SCALE_1 = 16_600  # x ~241 blocks each = ~4M inetnums
ASSIGN_PER_ALLOC = 120  # /24s out of the 256 in a /16
SUB_PER_ASSIGN = 6  # /29s in 1 of 6 assignments


def _s(a: np.ndarray | pa.Array) -> pa.Array:
    return pc.cast(a if isinstance(a, pa.Array) else pa.array(a), pa.string())


def _ip(ints: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(*(_s((ints >> s) & 0xFF) for s in (24, 16, 8, 0)), ".")


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _write(path: Path, objects: pa.Array) -> int:
    """Objects already end in a blank line, so the string data buffer is the file body."""
    objects = objects.combine_chunks() if isinstance(objects, pa.ChunkedArray) else objects
    offsets = np.frombuffer(objects.buffers()[1], np.int32, len(objects) + 1, objects.offset * 4)
    body = memoryview(objects.buffers()[2])[offsets[0]:offsets[-1]]
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"#\n# The contents of this file are subject to\n"
                b"# RIPE Database Terms and Conditions\n#\n\n")
        f.write(body)
    return len(objects)


def synthesise(folder: Path, scale: float, seed: int = 11) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    n_alloc = max(1, int(ALLOCS_AT_SCALE_1 * scale))
    slots = rng.choice(np.arange(1 << 8, 224 << 8), n_alloc, replace=False).astype(np.uint64)
    alloc_start = slots << np.uint64(16)
    org = np.arange(n_alloc)

    # /24 assignments: ASSIGN_PER_ALLOC distinct /24s per /16.
    third = np.argsort(rng.random((n_alloc, 256)), axis=1)[:, :ASSIGN_PER_ALLOC]
    a_start = (alloc_start[:, None] + (third.astype(np.uint64) << np.uint64(8))).ravel()
    a_alloc = np.repeat(org, ASSIGN_PER_ALLOC)
    a_own = rng.random(len(a_start)) < 1 / 3  # own abuse-c
    # /29 sub-assignments in every sixth /24.
    parent24 = a_start[::6]
    sub = (parent24[:, None] + (np.arange(SUB_PER_ASSIGN, dtype=np.uint64) * np.uint64(8)))
    s_start = sub.ravel()

    status = pa.array(["ALLOCATED PA"] * n_alloc + ["ASSIGNED PA"] * (len(a_start)
                                                                     + len(s_start)))
    start = np.concatenate([alloc_start, a_start, s_start])
    size = np.concatenate([np.full(n_alloc, 1 << 16), np.full(len(a_start), 256),
                           np.full(len(s_start), 8)]).astype(np.uint64)
    n = len(start)
    abuse_c = np.full(n, "", dtype=object)
    own_rows = n_alloc + np.flatnonzero(a_own)
    abuse_c[own_rows] = [f"abuse-c:        AR{i}-RIPE\n" for i in range(len(own_rows))]
    org_line = np.full(n, "", dtype=object)
    org_line[:n_alloc] = [f"org:            ORG-L{i}-RIPE\n" for i in range(n_alloc)]
    inetnum = _join(
        "inetnum:        ", _ip(start), " - ", _ip(start + size - np.uint64(1)), "\n",
        "netname:        NET-", _s(np.arange(n)), "\n",
        "descr:          Synthetic customer\n",
        pa.array(np.where(np.arange(n) < n_alloc, "                (continued)\n",
                          "descr:          second descr line\n")),
        "country:        NL # dummified dumps keep comments\n",
        pa.array(org_line, pa.string()),
        "admin-c:        DUMY-RIPE\ntech-c:         DUMY-RIPE\n",
        pa.array(abuse_c, pa.string()),
        "status:         ", status, "\n",
        "mnt-by:         MNT-", _s(np.concatenate([org, a_alloc, a_alloc[::6].repeat(
            SUB_PER_ASSIGN)])), "\n",
        "created:        2012-01-01T00:00:00Z\nlast-modified:  2020-01-01T00:00:00Z\n",
        "source:         RIPE # Filtered\n\n")
    counts = {"inetnum": _write(folder / "ripe.db.inetnum.gz", inetnum)}

    n6 = max(1, n_alloc // 10)
    v6 = _join("inet6num:       2001:", _s(pc.utf8_lpad(_s(np.char.mod("%x", np.arange(n6))),
                                                      4, "0")), "::/32\n",
               "netname:        V6-", _s(np.arange(n6)), "\n",
               "org:            ORG-L", _s(np.arange(n6)), "-RIPE\n",
               "status:         ALLOCATED-BY-RIR\nsource:         RIPE\n\n")
    counts["inet6num"] = _write(folder / "ripe.db.inet6num.gz", v6)
    counts["organisation"] = _write(folder / "ripe.db.organisation.gz", _join(
        "organisation:   ORG-L", _s(org), "-RIPE\n",
        "org-name:       Synthetic LIR ", _s(org), "\n",
        "org-type:       LIR\naddress:        ***\nphone:          +31 ...\n",
        "e-mail:         ***@ripe.net\n",
        "abuse-c:        AL", _s(org), "-RIPE\nsource:         RIPE # Filtered\n\n"))
    roles = np.arange(len(own_rows))
    counts["role"] = _write(folder / "ripe.db.role.gz", pa.concat_arrays([
        _join("role:           LIR abuse ", _s(org), "\nnic-hdl:        AL", _s(org),
              "-RIPE\nabuse-mailbox:  abuse@lir", _s(org), ".example\n",
              "address:        ***\nsource:         RIPE # Filtered\n\n"),
        _join("role:           Customer abuse ", _s(roles), "\nnic-hdl:        AR", _s(roles),
              "-RIPE\nabuse-mailbox:  abuse@customer", _s(roles), ".example\n",
              "source:         RIPE # Filtered\n\n")]))
    n_as = max(1, n_alloc * 2)
    counts["aut-num"] = _write(folder / "ripe.db.aut-num.gz", _join(
        "aut-num:        AS", _s(np.arange(n_as) + 1000), "\nas-name:        AS-", _s(
            np.arange(n_as)), "\norg:            ORG-L", _s(np.arange(n_as) % n_alloc),
        "-RIPE\nsource:         RIPE\n\n"))
    return counts


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = ~4M inetnums")
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="synthesise into (and keep) this folder")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="ripe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        counts = synthesise(work, args.scale)
        total = sum(counts.values())
        size = sum(p.stat().st_size for p in work.glob("ripe.db.*.gz"))
        print(f"synthesised {counts} ({size / 1e6:.0f} MB gzip) "
              f"in {time.perf_counter() - t:.1f}s; peak RSS so far {_peak_mb():,.0f} MB")

        t = time.perf_counter()
        parsed = sum(1 for _ in iter_objects(work / "ripe.db.inetnum.gz",
                                             classes={"inetnum"}))
        dt = time.perf_counter() - t
        print(f"parser alone (gzip inetnum file): {parsed:,} objects in {dt:.1f}s "
              f"= {parsed / dt:,.0f} objects/s")

        store = PublicDataStore(work / "store")
        paths = sorted(work.glob("ripe.db.*.gz"), reverse=True)
        t = time.perf_counter()
        summary = import_ripe(paths, store)
        dt = time.perf_counter() - t
        print(f"import_ripe: {total:,} objects in {dt:.1f}s = {total / dt:,.0f} objects/s; "
              f"counts {summary.counts}; skipped {summary.skipped}")

        t = time.perf_counter()
        data = RipeData.load(store)
        assert data is not None
        print(f"RipeData.load: {time.perf_counter() - t:.2f}s")

        rng = np.random.default_rng(3)
        blocks = data.blocks
        pick = rng.integers(0, blocks.num_rows, args.lookups)
        v4 = blocks.column("version").to_numpy()[pick] == 4
        lo = blocks.column("start_lo").to_numpy()[pick]
        width = blocks.column("end_lo").to_numpy()[pick] - lo + np.uint64(1)
        addr = lo + (rng.random(args.lookups) * width).astype(np.uint64)
        addr[~v4] = rng.integers(1 << 24, 224 << 24, int((~v4).sum()))  # misses, mostly
        ips = _ip(addr)

        t = time.perf_counter()
        out = data.lookup_ips(ips)
        dt = time.perf_counter() - t
        hits = out.num_rows - out.column("block").null_count
        print(f"lookup_ips end to end (text -> table): {args.lookups:,} in {dt:.2f}s = "
              f"{args.lookups / dt:,.0f}/s ({hits:,} hits)")
        p = parse_ips(ips)
        t = time.perf_counter()
        data.index.lookup(p.version, p.hi, np.where(p.version == 4, p.v4.astype(np.uint64), p.lo))
        dt = time.perf_counter() - t
        print(f"interval search alone: {args.lookups / dt:,.0f}/s")
        asns = pa.array(rng.integers(900, 1000 + 2 * blocks.num_rows // 241, args.lookups))
        t = time.perf_counter()
        data.lookup_asns(asns)
        dt = time.perf_counter() - t
        print(f"lookup_asns: {args.lookups / dt:,.0f}/s")
        print(f"peak RSS: {_peak_mb():,.0f} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
