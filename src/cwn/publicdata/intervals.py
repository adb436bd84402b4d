"""Innermost-containing-range lookup over nested address ranges, in bulk.

Public registries describe address space as ranges that nest like a tree (a RIR block holds
LIR allocations, which hold customer assignments; BGP prefixes nest the same way). Asking
"who holds this address" means finding the *innermost* range around it, for millions of
event addresses at once, so the work is moved to build time: the address line is cut into
elementary segments at every range start and every range end + 1, and the innermost range of
each segment is computed once. A lookup is then one `np.searchsorted` and one gather, with
no per-address Python.

Bad data: ranges whose start is after their end, IPv4 ranges beyond 32 bits and rows with a
version other than 4 or 6 are ignored (never returned, parent -1). Identical duplicate ranges
collapse onto the lowest row, which is what lookups return; the others share its parent.
Ranges that overlap without nesting are treated as siblings: a lookup in the overlap returns
one of them deterministically (the one that starts later, or its enclosing range) and never
misses an address that some range contains.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cwn.attribute.index import _key128
from cwn.attribute.ipcodec import parse_ips

IntArray = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bounds = tuple[npt.NDArray[np.int8], U64, U64, U64, U64]
FORMAT_VERSION = 1
_V4_MAX = np.uint64(0xFFFFFFFF)
_ALL64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, slots=True)
class _Segments:
    """One address family: `bounds` are the sorted segment starts; `answer[k]` is the row
    that innermost-contains segment k - 1 (answer[0] = -1 for addresses before the first
    bound), so `answer[searchsorted(bounds, x, "right")]` is the lookup."""

    bounds: npt.NDArray[Any]
    answer: npt.NDArray[np.signedinteger[Any]]

    def find(self, keys: npt.NDArray[Any]) -> IntArray:
        """Queries are searched in sorted order: each binary search then starts where the
        previous one ended, which is several times faster than random probes into a large
        table (measured 1.2 s vs 0.2 s for 1M queries over 6M bounds, sort included)."""
        order = np.argsort(keys)
        pos = np.empty(len(keys), dtype=np.intp)
        pos[order] = np.searchsorted(self.bounds, keys[order], side="right")
        return self.answer[pos].astype(np.int64, copy=False)


def _empty_segments(dtype: np.dtype[Any]) -> _Segments:
    return _Segments(np.empty(0, dtype=dtype), np.full(1, -1, dtype=np.int32))


class IntervalIndex:
    """Address ranges (IPv4 and IPv6, inclusive [start, end]) that nest like a tree
    (RIPE inetnums, BGP prefixes, RIR blocks). Lookup returns the innermost range that
    contains each address, vectorised."""

    def __init__(self, n: int, parent: IntArray, v4: _Segments, v6: _Segments) -> None:
        self._n = n
        self._parent = parent
        self._v4 = v4
        self._v6 = v6

    @classmethod
    def build(cls, version: np.ndarray, start_hi: np.ndarray, start_lo: np.ndarray,
              end_hi: np.ndarray, end_lo: np.ndarray) -> IntervalIndex:
        """Row i of the input is referred to as i by `parent` and by lookups."""
        version = np.asarray(version, dtype=np.int8)
        shi, slo = _u64(start_hi), _u64(start_lo)
        ehi, elo = _u64(end_hi), _u64(end_lo)
        n = len(version)
        if not (len(shi) == len(slo) == len(ehi) == len(elo) == n):
            raise ValueError("IntervalIndex.build: arrays differ in length")
        parent = np.full(n, -1, dtype=np.int64)
        ok4 = (version == 4) & (shi == 0) & (ehi == 0) & (elo <= _V4_MAX) & (slo <= elo)
        rows4 = np.flatnonzero(ok4)
        v4 = _build_family(rows4, slo[rows4], elo[rows4], _v4_end1(elo[rows4]), parent, n)
        ok6 = (version == 6) & ((shi < ehi) | ((shi == ehi) & (slo <= elo)))
        rows6 = np.flatnonzero(ok6)
        e1hi, e1lo, e1ok = _plus_one(ehi[rows6], elo[rows6])
        e1 = _key128(e1hi, e1lo)
        v6 = _build_family(rows6, _key128(shi[rows6], slo[rows6]),
                           _key128(ehi[rows6], elo[rows6]), (e1, e1ok), parent, n)
        return cls(n, parent, v4, v6)

    @property
    def parent(self) -> np.ndarray:
        """Per input row: the smallest range strictly containing it (same version), or -1."""
        return self._parent

    def __len__(self) -> int:
        return self._n

    def lookup(self, version: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Per query: the innermost input row containing it, or -1 (version 0 gives -1)."""
        version = np.asarray(version, dtype=np.int8)
        hi, lo = _u64(hi), _u64(lo)
        out = np.full(len(version), -1, dtype=np.int64)
        is4 = np.flatnonzero((version == 4) & (hi == 0) & (lo <= _V4_MAX))
        if len(is4) and len(self._v4.bounds):
            out[is4] = self._v4.find(lo[is4].astype(self._v4.bounds.dtype))
        is6 = np.flatnonzero(version == 6)
        if len(is6) and len(self._v6.bounds):
            out[is6] = self._v6.find(_key128(hi[is6], lo[is6]))
        return out

    def lookup_ips(self, ips: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """`lookup` for IP texts as events carry them; unparsable or null give -1."""
        p = parse_ips(ips)
        return self.lookup(p.version, p.hi, np.where(p.version == 4, p.v4.astype(np.uint64),
                                                     p.lo))

    def save(self, path: Path) -> None:
        """One uncompressed .npz, so `load` is a plain read with nothing to rebuild."""
        with open(path, "wb") as fh:
            np.savez(fh, format=np.int64(FORMAT_VERSION), n=np.int64(self._n),
                     parent=self._parent, v4_bounds=self._v4.bounds,
                     v4_answer=self._v4.answer, v6_bounds=self._v6.bounds,
                     v6_answer=self._v6.answer)

    @classmethod
    def load(cls, path: Path) -> IntervalIndex:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != FORMAT_VERSION:
                raise ValueError(f"{path}: interval index format {int(z['format'])}, "
                                 f"expected {FORMAT_VERSION}; re-import the data")
            return cls(int(z["n"]), z["parent"], _Segments(z["v4_bounds"], z["v4_answer"]),
                       _Segments(z["v6_bounds"], z["v6_answer"]))


def _u64(a: np.ndarray) -> U64:
    return np.asarray(a).astype(np.uint64, copy=False)


def _v4_end1(end: U64) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]:
    """end + 1 as uint32; 2**32 cannot be represented and is not needed (no address there)."""
    ok = end < _V4_MAX
    return (end + np.uint64(1)).astype(np.uint32), ok


def _plus_one(hi: U64, lo: U64) -> tuple[U64, U64, npt.NDArray[np.bool_]]:
    """128-bit end + 1; False where the end is the last address (nothing follows it)."""
    carry = lo == _ALL64
    return hi + carry.astype(np.uint64), lo + np.uint64(1), ~(carry & (hi == _ALL64))


def _build_family(rows: IntArray, start: npt.NDArray[Any], end: npt.NDArray[Any],
                  end1: tuple[npt.NDArray[Any], npt.NDArray[np.bool_]],
                  parent_out: IntArray, n: int) -> _Segments:
    """Index the valid rows of one address family; fills `parent_out` for them."""
    if start.dtype == np.uint64:  # IPv4: addresses fit 32 bits
        start, end = start.astype(np.uint32), end.astype(np.uint32)
    if len(rows) == 0:
        return _empty_segments(start.dtype)
    order = _order(start, end)
    s, e, r = start[order], end[order], rows[order]
    e1, e1ok = end1[0][order], end1[1][order]
    # identical ranges are adjacent and in row order: keep the first (lowest row)
    first = np.ones(len(s), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (e[1:] != e[:-1])
    canon = np.cumsum(first) - 1  # per sorted row: position among the unique ranges
    s, e, e1, e1ok, ur = s[first], e[first], e1[first], e1ok[first], r[first]
    par = _enclosing(e)
    parent_rows = np.where(par >= 0, ur[np.maximum(par, 0)], -1)
    parent_out[r] = parent_rows[canon]

    bounds = _sorted_unique(np.concatenate([s, e1[e1ok]]))
    ans = _innermost(s, e, par, bounds)
    keep = np.ones(len(bounds), dtype=bool)
    keep[1:] = ans[1:] != ans[:-1]
    keep[0] = ans[0] != -1
    bounds, ans = bounds[keep], ans[keep]
    rows_of = np.where(ans >= 0, ur[np.maximum(ans, 0)], -1)
    answer = np.concatenate([[-1], rows_of])
    dtype = np.int32 if n < 2**31 else np.int64
    return _Segments(bounds, answer.astype(dtype))


def _sorted_unique(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`np.unique` without its hashing path, which is many times slower on large arrays."""
    a = np.sort(a)
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return a[keep]


def _order(start: npt.NDArray[Any], end: npt.NDArray[Any]) -> IntArray:
    """Sort by start ascending, end descending, input order on ties: a range then comes
    after every range that contains it."""
    if start.dtype == np.uint32:
        key = (start.astype(np.uint64) << np.uint64(32)) | (~end).astype(np.uint64)
        return np.argsort(key, kind="stable")
    neg_end = np.frombuffer(bytes(~np.frombuffer(end.tobytes(), dtype=np.uint8)),
                            dtype="S16")
    return np.lexsort((neg_end, start))


def _enclosing(e: npt.NDArray[Any]) -> IntArray:
    """Per sorted unique range: the nearest earlier one ending at or after it (its parent
    when ranges nest), or -1. Previous-greater-element by pointer jumping: each candidate
    skips straight to its own candidate, so every round is vectorised and the number of
    rounds grows with the logarithm of the sibling count, not with the data size."""
    m = len(e)
    cand = np.arange(-1, m - 1, dtype=np.int64)
    act = np.arange(1, m, dtype=np.int64)
    while len(act):
        c = cand[act]
        bad = e[c] < e[act]
        act = act[bad]
        nxt = cand[c[bad]]
        cand[act] = nxt
        act = act[nxt >= 0]
    return cand


def _innermost(s: npt.NDArray[Any], e: npt.NDArray[Any], par: IntArray,
               points: npt.NDArray[Any]) -> IntArray:
    """Per point: the innermost range containing it, walking up from the last range that
    starts at or before it (depth of nesting rounds, each vectorised)."""
    j = np.searchsorted(s, points, side="right").astype(np.int64) - 1
    act = np.flatnonzero(j >= 0)
    while len(act):
        out = e[j[act]] < points[act]
        act = act[out]
        j[act] = par[j[act]]
        act = act[j[act] >= 0]
    return j


def cidr_bounds(texts: pa.Array | pa.ChunkedArray) -> Bounds:
    """(version, start_hi, start_lo, end_hi, end_lo) per CIDR text such as `1.0.0.0/24` or
    `2001:db8::/32`; a bare address is a single-address range; host bits are masked off.
    Unparsable texts get version 0 so the caller can count and drop them."""
    arr = _strings(texts)
    m = pc.extract_regex(arr, r"^(?P<a>[^/]+)/(?P<p>\d{1,3})$")
    has_len = pc.is_valid(m)
    addr = pc.if_else(has_len, pc.struct_field(m, "a"), arr)
    plen_txt = pc.if_else(has_len, pc.struct_field(m, "p"), pa.scalar("999"))
    plen = pc.cast(pc.fill_null(plen_txt, "999"), pa.int16()).to_numpy(
        zero_copy_only=False).astype(np.int64)
    has = has_len.to_numpy(zero_copy_only=False)
    p = parse_ips(addr)
    version = p.version.copy()
    plen = np.where(has, plen, np.where(version == 4, 32, 128))
    version[((version == 4) & (plen > 32)) | ((version == 6) & (plen > 128))] = 0
    v4 = version == 4
    hi = np.where(v4, np.uint64(0), p.hi)
    lo = np.where(v4, p.v4.astype(np.uint64), p.lo)
    host = np.where(v4, 32 - plen, 128 - plen).clip(0, 128)
    hi_host = (host - 64).clip(0, 64)  # host bits within the high half
    lo_host = host.clip(0, 64)
    hmask = _low_bits(hi_host)
    lmask = _low_bits(lo_host)
    sh, sl = hi & ~hmask, lo & ~lmask
    eh, el = sh | hmask, sl | lmask
    dead = version == 0
    for a in (sh, sl, eh, el):
        a[dead] = 0
    return version, sh, sl, eh, el


def _low_bits(count: npt.NDArray[np.int64]) -> U64:
    """Mask of the lowest `count` (0..64) bits, without the undefined 64-bit shift."""
    shifted = np.left_shift(np.uint64(1), count.clip(0, 63).astype(np.uint64)) - np.uint64(1)
    return np.where(count >= 64, _ALL64, shifted).astype(np.uint64)


def range_bounds(first: pa.Array | pa.ChunkedArray, last: pa.Array | pa.ChunkedArray,
                 ) -> Bounds:
    """Bounds of `first - last` ranges (RIPE inetnum style); version 0 where either end is
    unparsable, the families differ, or first > last."""
    a, b = parse_ips(_strings(first)), parse_ips(_strings(last))
    sh = np.where(a.version == 6, a.hi, np.uint64(0))
    sl = np.where(a.version == 6, a.lo, a.v4.astype(np.uint64))
    eh = np.where(b.version == 6, b.hi, np.uint64(0))
    el = np.where(b.version == 6, b.lo, b.v4.astype(np.uint64))
    ordered = (sh < eh) | ((sh == eh) & (sl <= el))
    ok = (a.version == b.version) & (a.version != 0) & ordered
    version = np.where(ok, a.version, 0).astype(np.int8)
    z = np.uint64(0)
    return (version, np.where(ok, sh, z), np.where(ok, sl, z), np.where(ok, eh, z),
            np.where(ok, el, z))


def _strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    return pc.utf8_trim_whitespace(values)


# -- saved indexes beside imported tables ---------------------------------------------------
# The store swaps a kind's Parquet tables in atomically but knows nothing of index files, so
# an index is tied to its table by a random token kept in the table's schema metadata: an
# index file whose token does not match (a refresh in progress, a crash) is simply not used.

TOKEN_KEY = b"cwn.interval_index"
BOUND_COLUMNS = ("version", "start_hi", "start_lo", "end_hi", "end_lo")


def bounds_table(bounds: Bounds) -> pa.Table:
    """The five bound arrays as columns, to store beside the data they index."""
    return pa.table({name: pa.array(a) for name, a in zip(BOUND_COLUMNS, bounds, strict=True)})


def with_token(table: pa.Table) -> tuple[pa.Table, str]:
    token = uuid.uuid4().hex
    meta = dict(table.schema.metadata or {})
    meta[TOKEN_KEY] = token.encode()
    return table.replace_schema_metadata(meta), token


def token_of(table: pa.Table) -> str | None:
    raw = (table.schema.metadata or {}).get(TOKEN_KEY)
    return raw.decode() if raw else None


def build_from_table(table: pa.Table) -> IntervalIndex:
    """Rebuild from stored bound columns (no text parsing)."""
    cols = [table.column(c).to_numpy() for c in BOUND_COLUMNS]
    return IntervalIndex.build(*cols)


def save_index(index: IntervalIndex, path: Path) -> None:
    """Write via a temporary name so a reader never opens a half-written file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        index.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cached_index(path: Path, rows: int, build: Callable[[], IntervalIndex]) -> IntervalIndex:
    """The index saved at `path` when it is readable and covers `rows` rows; else `build()`,
    saved for next time (best effort: a read-only store still works, only slower)."""
    if path.is_file():
        try:
            index = IntervalIndex.load(path)
            if len(index) == rows:
                return index
        except (OSError, ValueError, KeyError):
            pass
    index = build()
    with contextlib.suppress(OSError):
        save_index(index, path)
    return index
