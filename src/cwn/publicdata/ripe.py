"""RIPE Database dumps: who holds an address block or AS and where its abuse reports go.

For an event nobody registered with us, the RIPE Database is the authoritative offline
answer. Resolution follows RIPE's own abuse-contact lookup: the block's `abuse-c` role,
else the `abuse-c` of the block's organisation, else the nearest enclosing block that has
one. Everything is resolved once at import (joins and a pointer-jumping walk up the block
tree, all in Arrow/numpy), so a lookup is just an interval search and a `take`.

Imported as kind "ripe": tables `blocks` (one row per inetnum/inet6num, row i = interval i
of the saved index) and `autnums`, plus the interval index as an `.npz` next to them so a
load does not rebuild the tree. The index file is named by a token stored in the `blocks`
schema, so a reader never pairs a table with the index of another import; a missing index is
rebuilt from the bounds kept in the table.
"""

from __future__ import annotations

import gc
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.intervals import IntervalIndex, cidr_bounds, range_bounds
from cwn.publicdata.rpsl import RpslStats, iter_objects
from cwn.publicdata.store import ImportSummary, PublicDataStore

KIND = "ripe"
PART = "default"
INDEX_KEY = b"cwn.ripe.index"
BATCH = 262_144  # objects per column batch: bounds the Python objects alive during a parse
_CLASSES = {"inetnum", "inet6num", "aut-num", "organisation", "role"}
_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")

IP_COLUMNS = ["block", "netname", "country", "org_id", "org_name", "abuse_mailbox",
              "abuse_source", "status"]
ASN_COLUMNS = ["asn", "as_name", "org_id", "org_name", "abuse_mailbox"]

_S = pa.string()
_BLOCK_RAW = pa.schema([("inet6", pa.bool_()), ("block", _S), ("netname", _S),
                        ("country", _S), ("org_id", _S), ("status", _S),
                        ("mnt_by", pa.list_(_S)), ("abuse_c", _S)])
_AUT_RAW = pa.schema([("aut_num", _S), ("as_name", _S), ("org_id", _S), ("abuse_c", _S),
                      ("mnt_by", pa.list_(_S))])
_ORG_RAW = pa.schema([("org_id", _S), ("org_name", _S), ("abuse_c", _S)])
_ROLE_RAW = pa.schema([("nic_hdl", _S), ("abuse_mailbox", _S)])


class _Columns:
    """Rows of one object class, turned into Arrow batches every BATCH rows so millions of
    parsed values do not stay alive as Python objects."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows: list[tuple[Any, ...]] = []
        self.batches: list[pa.RecordBatch] = []
        self._flushed = 0

    @property
    def count(self) -> int:
        return self._flushed + len(self.rows)

    def flush(self) -> None:
        if self.rows:
            self._flushed += len(self.rows)
            cols = zip(*self.rows, strict=True)
            self.batches.append(pa.record_batch(
                [pa.array(c, type=f.type) for c, f in zip(cols, self.schema, strict=True)],
                schema=self.schema))
            self.rows = []

    def table(self) -> pa.Table:
        """All rows as one table; the batches are handed over, not kept."""
        self.flush()
        batches, self.batches = self.batches, []
        return pa.Table.from_batches(batches, schema=self.schema).combine_chunks()


def import_ripe(paths: list[Path], store: PublicDataStore,
                progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Import split dumps (in any order) or one combined dump; replaces the previous import.
    `progress` receives the running number of file bytes read over all `paths` (compressed
    bytes for gzip), so a bar's total is the sum of the file sizes."""
    summary = ImportSummary(kind=KIND, part=PART, source=", ".join(str(p) for p in paths))
    raw = _Parsed()
    dates: list[date] = []
    done = 0
    for path in paths:
        st = RpslStats()
        report = None if progress is None else _offset(progress, done)
        with _gc_paused():
            raw.read(path, st, report)
        done += st.bytes_read
        summary.skipped += st.skipped_lines
        if st.skipped_lines:
            summary.notes.append(f"{path.name}: {st.skipped_lines} unreadable lines skipped")
        dates.append(_header_date(st.header) or _mtime_date(path))
    if not raw.blocks.count and not raw.auts.count:
        raise PublicDataError(f"{summary.source}: no inetnum, inet6num or aut-num objects")
    orgs, roles = raw.orgs.table(), raw.roles.table()
    summary.source_date = min(dates).isoformat() if dates else None
    summary.counts = {"aut-num": raw.auts.count, "organisation": orgs.num_rows,
                      "role": roles.num_rows}

    org_mailbox = _mailbox(orgs.column("abuse_c"), roles)
    blocks, bounds = _blocks(raw.blocks.table(), orgs, org_mailbox, roles, summary)
    index = IntervalIndex.build(*bounds)
    del bounds
    blocks = _inherit(blocks, index.parent)
    autnums = _autnums(raw.auts.table(), orgs, org_mailbox, roles, summary)

    summary.rows = blocks.num_rows + autnums.num_rows
    summary.counts.update({
        "blocks": blocks.num_rows, "autnums": autnums.num_rows,
        **{f"abuse_{k}": v for k, v in _value_counts(blocks.column("abuse_source")).items()},
    })
    token = uuid.uuid4().hex
    blocks = blocks.replace_schema_metadata({INDEX_KEY: token.encode()})
    final = store.write(summary, {"blocks": blocks, "autnums": autnums})
    tmp = final / f".intervals-{token}.tmp.npz"
    index.save(tmp)
    os.replace(tmp, final / f"intervals-{token}.npz")
    return summary


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The parse allocates millions of short-lived tuples and keeps row tuples alive, none
    in reference cycles; the cyclic collector would rescan them over and over (measured
    ~30% of the import time), so it is paused for the parse only."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _offset(progress: Callable[[int], None], done: int) -> Callable[[int], None]:
    return lambda n: progress(done + n)


class _Parsed:
    """The attributes this import needs, per class, straight from the parser."""

    def __init__(self) -> None:
        self.blocks = _Columns(_BLOCK_RAW)
        self.auts = _Columns(_AUT_RAW)
        self.orgs = _Columns(_ORG_RAW)
        self.roles = _Columns(_ROLE_RAW)

    def read(self, path: Path, st: RpslStats, progress: Callable[[int], None] | None) -> None:
        blocks, auts = self.blocks.rows, self.auts.rows
        orgs, roles = self.orgs.rows, self.roles.rows
        for obj in iter_objects(path, classes=_CLASSES, stats=st, progress=progress):
            f = obj.firsts()
            cls = obj.cls
            if cls == "inetnum" or cls == "inet6num":
                blocks.append((cls == "inet6num", obj.key, f.get("netname"), f.get("country"),
                               f.get("org"), f.get("status"), obj.all("mnt-by"),
                               f.get("abuse-c")))
                if len(blocks) >= BATCH:
                    self.blocks.flush()
                    blocks = self.blocks.rows
            elif cls == "aut-num":
                auts.append((obj.key, f.get("as-name"), f.get("org"), f.get("abuse-c"),
                             obj.all("mnt-by")))
                if len(auts) >= BATCH:
                    self.auts.flush()
                    auts = self.auts.rows
            elif cls == "organisation":
                orgs.append((obj.key, f.get("org-name"), f.get("abuse-c")))
            else:
                roles.append((f.get("nic-hdl"), f.get("abuse-mailbox")))


def _upper(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Handles (org ids, nic-hdls) are case-insensitive; an empty one is no handle."""
    out = pc.utf8_upper(values)
    out = pc.if_else(pc.equal(out, ""), pa.scalar(None, _S), out)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _find(handles: pa.Array | pa.ChunkedArray, known: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Position of each handle among `known` (first one wins), null when absent. A missing
    handle must not match an object that lacks its own (nulls are skipped)."""
    return pc.index_in(_upper(handles), value_set=_upper(known), skip_nulls=True)


def _mailbox(handles: pa.Array | pa.ChunkedArray, roles: pa.Table) -> pa.Array:
    """The abuse-mailbox of the role each handle names (null: no such role, or none)."""
    pos = _find(handles, roles.column("nic_hdl"))
    return _take(roles.column("abuse_mailbox"), pos)


def _take(values: pa.Array | pa.ChunkedArray, pos: pa.Array) -> pa.Array:
    out = values.take(pos)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _blocks(raw: pa.Table, orgs: pa.Table, org_mailbox: pa.Array, roles: pa.Table,
            summary: ImportSummary) -> tuple[pa.Table, tuple[npt.NDArray[Any], ...]]:
    """Parse ranges, drop unusable and duplicate blocks, sort by address, attach the
    block's own and its organisation's abuse mailbox."""
    n6 = int(pc.sum(raw.column("inet6")).as_py() or 0)
    summary.counts.update({"inetnum": raw.num_rows - n6, "inet6num": n6})
    version, s_hi, s_lo, e_hi, e_lo = _bounds(raw)
    ok = version != 0
    if not ok.all():
        bad = int((~ok).sum())
        summary.skipped += bad
        summary.notes.append(f"{bad} inetnum/inet6num with an unreadable range skipped")
    keep = np.flatnonzero(ok)
    order = keep[np.lexsort((e_lo[keep], e_hi[keep], s_lo[keep], s_hi[keep], version[keep]))]
    same = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        a, b = order[1:], order[:-1]
        same[1:] = ((version[a] == version[b]) & (s_hi[a] == s_hi[b]) & (s_lo[a] == s_lo[b])
                    & (e_hi[a] == e_hi[b]) & (e_lo[a] == e_lo[b]))
    if same.any():
        dup = int(same.sum())
        summary.skipped += dup
        summary.notes.append(f"{dup} duplicate inetnum/inet6num skipped (first one kept)")
        order = order[~same]
    t = raw.take(pa.array(order))
    bounds = (version[order], s_hi[order], s_lo[order], e_hi[order], e_lo[order])

    org_pos = _find(t.column("org_id"), orgs.column("org_id"))
    own = _mailbox(t.column("abuse_c"), roles)
    via_org = _take(org_mailbox, org_pos)
    source = pc.if_else(pc.is_valid(own), "block",
                        pc.if_else(pc.is_valid(via_org), "org", pa.scalar(None, _S)))
    table = pa.table({
        "version": pa.array(bounds[0], pa.int8()),
        "start_hi": bounds[1], "start_lo": bounds[2], "end_hi": bounds[3], "end_lo": bounds[4],
        "block": t.column("block"), "netname": t.column("netname"),
        "country": t.column("country"), "org_id": t.column("org_id"),
        "org_name": _take(orgs.column("org_name"), org_pos), "status": t.column("status"),
        "mnt_by": t.column("mnt_by"), "abuse_c": t.column("abuse_c"),
        "abuse_mailbox": pc.coalesce(own, via_org), "abuse_source": source,
    })
    return table, bounds


def _bounds(raw: pa.Table) -> tuple[npt.NDArray[Any], ...]:
    """inet6num keys are CIDR, inetnum keys `first - last`; a CIDR inetnum or a bare address
    (a one-address block) is read too. Unreadable ranges get version 0."""
    n = raw.num_rows
    out = [np.zeros(n, np.int8)] + [np.zeros(n, np.uint64) for _ in range(4)]
    keys = raw.column("block").combine_chunks()
    dash = pc.fill_null(pc.match_substring(keys, "-"), False).to_numpy(zero_copy_only=False)
    for sel, parse in ((dash, _range), (~dash, cidr_bounds)):
        rows = np.flatnonzero(sel)
        if len(rows):
            for o, p in zip(out, parse(keys.take(pa.array(rows))), strict=True):
                o[rows] = p
    return tuple(out)


def _range(texts: pa.Array) -> tuple[npt.NDArray[Any], ...]:
    halves = pc.split_pattern(texts, "-", max_splits=1)
    return range_bounds(pc.list_element(halves, 0), pc.list_element(halves, 1))


def _inherit(blocks: pa.Table, parent: npt.NDArray[np.int64]) -> pa.Table:
    """Blocks without a mailbox of their own take the nearest enclosing block's, by
    pointer jumping: each round either resolves a row or doubles how far up it looks, so a
    tree of depth d needs about log2(d) rounds of whole-array numpy operations."""
    n = blocks.num_rows
    has = blocks.column("abuse_mailbox").is_valid().to_numpy(zero_copy_only=False)
    provider = np.where(has, np.arange(n, dtype=np.int64), -1)
    up = np.asarray(parent, dtype=np.int64).copy()
    todo = np.flatnonzero((provider < 0) & (up >= 0))
    while len(todo):
        anc = up[todo]
        provider[todo] = provider[anc]
        up[todo] = up[anc]
        todo = todo[(provider[todo] < 0) & (up[todo] >= 0)]
    inherited = (provider >= 0) & ~has
    if not inherited.any():
        return blocks
    pos = pa.array(provider, mask=provider < 0)
    mailbox = _take(blocks.column("abuse_mailbox"), pos)
    source = pc.if_else(pa.array(inherited), "parent", blocks.column("abuse_source"))
    blocks = blocks.set_column(blocks.schema.get_field_index("abuse_mailbox"),
                               "abuse_mailbox", mailbox)
    return blocks.set_column(blocks.schema.get_field_index("abuse_source"),
                             "abuse_source", source)


def _autnums(raw: pa.Table, orgs: pa.Table, org_mailbox: pa.Array, roles: pa.Table,
             summary: ImportSummary) -> pa.Table:
    key = pc.utf8_upper(raw.column("aut_num"))
    ok = pc.fill_null(pc.match_substring_regex(key, r"^AS\d{1,10}$"), False)
    asn = pc.cast(pc.utf8_slice_codeunits(pc.if_else(ok, key, "AS-1"), 2), pa.int64())
    asn_np = asn.to_numpy(zero_copy_only=False)
    ok_np = ok.to_numpy(zero_copy_only=False) & (asn_np <= 0xFFFFFFFF)
    if not ok_np.all():
        bad = int((~ok_np).sum())
        summary.skipped += bad
        summary.notes.append(f"{bad} aut-num with an unreadable number skipped")
    keep = np.flatnonzero(ok_np)
    order = keep[np.argsort(asn_np[keep], kind="stable")]
    first = np.ones(len(order), dtype=bool)
    first[1:] = asn_np[order][1:] != asn_np[order][:-1]
    if not first.all():
        dup = int((~first).sum())
        summary.skipped += dup
        summary.notes.append(f"{dup} duplicate aut-num skipped (first one kept)")
    order = order[first]
    t = raw.take(pa.array(order))
    org_pos = _find(t.column("org_id"), orgs.column("org_id"))
    own = _mailbox(t.column("abuse_c"), roles)
    via_org = _take(org_mailbox, org_pos)
    return pa.table({
        "asn": pa.array(asn_np[order], pa.int64()), "as_name": t.column("as_name"),
        "org_id": t.column("org_id"), "org_name": _take(orgs.column("org_name"), org_pos),
        "mnt_by": t.column("mnt_by"), "abuse_c": t.column("abuse_c"),
        "abuse_mailbox": pc.coalesce(own, via_org),
        "abuse_source": pc.if_else(pc.is_valid(own), "autnum",
                                   pc.if_else(pc.is_valid(via_org), "org",
                                              pa.scalar(None, _S))),
    })


def _value_counts(values: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    counts = pc.value_counts(values)
    return {("none" if v is None else str(v)): int(c) for v, c in zip(
        counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)}


def _header_date(header: Iterable[str]) -> date | None:
    for line in header:
        m = _DATE.search(line)
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                continue
    return None


def _mtime_date(path: Path) -> date:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).date()


@dataclass
class RipeData:
    """The imported RIPE data, ready for bulk lookups."""

    blocks: pa.Table
    autnums: pa.Table
    index: IntervalIndex

    @classmethod
    def load(cls, store: PublicDataStore) -> RipeData | None:
        blocks = store.read(KIND, "blocks", part=PART)
        autnums = store.read(KIND, "autnums", part=PART)
        if blocks is None or autnums is None:
            return None
        token = (blocks.schema.metadata or {}).get(INDEX_KEY, b"").decode()
        path = store.folder(KIND, PART) / f"intervals-{token}.npz"
        index = None
        if token and path.is_file():
            try:
                index = IntervalIndex.load(path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                index = None  # damaged or from another version: the table has the bounds
        if index is None or len(index) != blocks.num_rows:
            index = IntervalIndex.build(*(blocks.column(c).to_numpy() for c in (
                "version", "start_hi", "start_lo", "end_hi", "end_lo")))
        return cls(blocks.combine_chunks(), autnums.combine_chunks(), index)

    def lookup_ips(self, ips: pa.Array | pa.ChunkedArray) -> pa.Table:
        """Per input IP, the innermost RIPE block (null row: none or unparsable IP)."""
        if isinstance(ips, pa.ChunkedArray):
            ips = ips.combine_chunks()
        rows = np.asarray(self.index.lookup_ips(ips), dtype=np.int64)
        return self.blocks.select(IP_COLUMNS).take(pa.array(rows, mask=rows < 0))

    def lookup_asns(self, asns: pa.Array | pa.ChunkedArray | npt.ArrayLike) -> pa.Table:
        """Per input AS number (int, or text like "AS64500"), its aut-num (null row: none)."""
        if isinstance(asns, pa.ChunkedArray):
            asns = asns.combine_chunks()
        arr = asns if isinstance(asns, pa.Array) else pa.array(asns)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            digits = pc.extract_regex(pc.utf8_upper(arr), r"^\s*(?:AS)?(?P<n>\d{1,10})\s*$")
            arr = pc.cast(pc.struct_field(digits, "n"), pa.int64())
        arr = arr.cast(pa.int64())
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        want = pc.fill_null(arr, -1).to_numpy()
        known = self.autnums.column("asn").to_numpy()
        if len(known) == 0:
            return self.autnums.select(ASN_COLUMNS).take(pa.nulls(len(want), pa.int64()))
        pos = np.searchsorted(known, want).clip(0, len(known) - 1)
        hit = valid & (known[pos] == want)
        return self.autnums.select(ASN_COLUMNS).take(pa.array(pos, mask=~hit))
