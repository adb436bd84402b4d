"""The attribution index: which organisation owns an event's address, domain or AS.

Built in bulk from the verified assets as sorted integer keys (one table per prefix length)
and queried with vectorised `np.searchsorted`; there is no Python loop per event.

Precedence: the longest IP prefix on `source.ip`; else the longest domain suffix on
`source.fqdn`, then on the host of `source.url` (a domain asset covers its subdomains);
else the AS number `source.asn`. Two organisations owning the identical asset: the lowest
organisation id wins (deterministic) and the conflict is counted in `conflicts`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cwn.attribute.ipcodec import parse_ips
from cwn.attribute.strhash import MULTIPLIERS, Hasher, buffers, hash_strings
from cwn.registry.netaddr import stored_to_unsigned, u64_mask, v4_mask

IntArray = npt.NDArray[np.int64]
KIND_IP, KIND_DOMAIN, KIND_ASN = 1, 2, 3
KIND_NAMES = pa.array([None, "ip", "domain", "asn"], pa.string())
FORMAT_VERSION = 3
DENSE_BITS = 24

ArrayLike: TypeAlias = pa.Array | pa.ChunkedArray | npt.NDArray[Any] | list[Any]


def _arrow(a: ArrayLike, type_: pa.DataType | None = None) -> pa.Array:
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks() if a.num_chunks != 1 else a.chunk(0)
    if not isinstance(a, pa.Array):
        a = pa.array(a, type=type_, from_pandas=True)
    if type_ is not None and a.type != type_:
        a = a.cast(type_)
    return a


def _numpy(a: ArrayLike, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """Nulls become 0."""
    if isinstance(a, np.ndarray):
        return a.astype(dtype, copy=False)
    arr = _arrow(a)
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _dedup(keys: npt.NDArray[Any], rows: IntArray, org: npt.NDArray[np.int32],
           ) -> tuple[npt.NDArray[Any], IntArray, int]:
    """Sort by key, keep the lowest org per key; returns keys, rows, number of conflicts."""
    if len(keys) == 0:
        return keys, rows, 0
    order = np.lexsort((org[rows], keys))
    keys, rows = keys[order], rows[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    conflicts = int(len(keys) - np.count_nonzero(first))
    return keys[first], rows[first], conflicts


@dataclass
class AssetIndex:
    org_names: pa.Array  # sorted organisation ids
    asset_org: npt.NDArray[np.int32]  # per indexed asset: position in org_names
    asset_text: pa.Array  # per indexed asset: canonical text (matched_asset)
    v4: dict[int, tuple[npt.NDArray[Any], IntArray]] = field(default_factory=dict)
    v6: dict[int, tuple[npt.NDArray[np.generic], IntArray]] = field(default_factory=dict)
    v4_dense: npt.NDArray[np.int32] | None = None
    """IPv4 prefixes up to /24 flattened into one table over the first 24 address bits: the
    most specific such asset per /24 block (-1 none). `v4` then holds only /25../32."""
    asn_keys: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    asn_rows: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    dom_keys: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    dom_rows: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    dom_levels: list[int] = field(default_factory=list)
    dom_hash: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    """Sorted polynomial hashes of `dom_keys` (same order), see `cwn.attribute.strhash`."""
    dom_mult: int = MULTIPLIERS[0]
    conflicts: int = 0
    version: int = 0

    @property
    def size(self) -> int:
        """Number of distinct assets indexed."""
        return len(self.asset_org)

    # -- build ----------------------------------------------------------------------------

    @classmethod
    def empty(cls, version: int = 0) -> AssetIndex:
        return cls(pa.array([], pa.string()), np.zeros(0, np.int32), pa.array([], pa.string()),
                   version=version)

    @classmethod
    def build(cls, org_ids: ArrayLike, types: ArrayLike, values: ArrayLike,
              ip_version: ArrayLike, ip_hi: ArrayLike, ip_lo: ArrayLike, prefixlen: ArrayLike,
              asn: ArrayLike, *, version: int = 0) -> AssetIndex:
        """Build from the columns of the assets table (pass verified assets only)."""
        orgs = _arrow(org_ids, pa.string())
        n = len(orgs)
        if n == 0:
            return cls.empty(version)
        uniq = pc.unique(orgs)
        org_names = uniq.take(pc.sort_indices(uniq))
        org_code = pc.index_in(orgs, value_set=org_names).to_numpy().astype(np.int32)
        del uniq
        types_a = _arrow(types, pa.string())
        values_a = _arrow(values, pa.string())
        ver = _numpy(ip_version, np.int8)
        plen = _numpy(prefixlen, np.int16)

        def rows_where(mask: pa.Array | npt.NDArray[np.bool_]) -> IntArray:
            m = mask if isinstance(mask, np.ndarray) else \
                pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
            return np.flatnonzero(m)

        is_cidr = pc.fill_null(pc.equal(types_a, "cidr"), False).to_numpy(zero_copy_only=False)
        winners: list[IntArray] = []
        conflicts = 0
        v4_tables: dict[int, tuple[npt.NDArray[Any], IntArray]] = {}
        v6_tables: dict[int, tuple[npt.NDArray[np.generic], IntArray]] = {}

        rows4 = np.flatnonzero(is_cidr & (ver == 4))
        if len(rows4):
            lo = _numpy(ip_lo, np.int64)
            addr4 = lo[rows4].astype(np.uint32)
            del lo
            p4 = plen[rows4]
            for p in np.unique(p4).tolist():
                sel = p4 == p
                keys = addr4[sel] & v4_mask(p)
                k, r, c = _dedup(keys, rows4[sel], org_code)
                conflicts += c
                v4_tables[p] = (k, r)
                winners.append(r)
            del addr4, p4

        rows6 = np.flatnonzero(is_cidr & (ver == 6))
        if len(rows6):
            hi6 = stored_to_unsigned(_numpy(ip_hi, np.int64)[rows6])
            lo6 = stored_to_unsigned(_numpy(ip_lo, np.int64)[rows6])
            p6 = plen[rows6]
            for p in np.unique(p6).tolist():
                sel = p6 == p
                keys6: npt.NDArray[np.generic]
                if p <= 64:
                    keys6 = hi6[sel] & u64_mask(p)
                else:
                    keys6 = _key128(hi6[sel], lo6[sel] & u64_mask(p - 64))
                k6, r, c = _dedup(keys6, rows6[sel], org_code)
                conflicts += c
                v6_tables[p] = (k6, r)
                winners.append(r)
        del is_cidr, ver, plen

        rows_asn = rows_where(pc.equal(types_a, "asn"))
        asn_keys: npt.NDArray[Any] = np.zeros(0, np.uint64)
        asn_rows = np.zeros(0, np.int64)
        if len(rows_asn):
            asn_all = _numpy(asn, np.int64)
            asn_keys, asn_rows, c = _dedup(asn_all[rows_asn].astype(np.uint64), rows_asn,
                                           org_code)
            conflicts += c
            winners.append(asn_rows)
            del asn_all

        rows_dom = rows_where(pc.equal(types_a, "domain"))
        dom_keys = pa.array([], pa.string())
        dom_rows = np.zeros(0, np.int64)
        dom_levels: list[int] = []
        dom_hash = np.zeros(0, np.uint64)
        dom_mult = MULTIPLIERS[0]
        if len(rows_dom):
            dvals = values_a.take(pa.array(rows_dom))
            # sort by (value, org): first of each run wins
            order = pc.sort_indices(pa.table({"v": dvals, "o": org_code[rows_dom]}),
                                    sort_keys=[("v", "ascending"), ("o", "ascending")])
            dvals = dvals.take(order)
            drows = rows_dom[order.to_numpy()]
            first = np.ones(len(dvals), dtype=bool)
            if len(dvals) > 1:
                first[1:] = ~pc.equal(dvals[1:], dvals[:-1]).to_numpy(zero_copy_only=False)
            conflicts += int(len(first) - np.count_nonzero(first))
            dom_keys = dvals.filter(pa.array(first))
            dom_rows = drows[first]
            labels = pc.add(pc.count_substring(dom_keys, "."), 1)
            dom_levels = sorted(pc.unique(labels).to_pylist(), reverse=True)
            dom_hash, dom_mult, horder = _hash_keys(dom_keys)
            dom_keys, dom_rows = dom_keys.take(pa.array(horder)), dom_rows[horder]
            winners.append(dom_rows)

        # compact: keep only the winning assets; tables point into the compact arrays
        all_rows = np.concatenate(winners) if winners else np.zeros(0, np.int64)
        compact = np.empty(n, dtype=np.int64)
        compact[all_rows] = np.arange(len(all_rows), dtype=np.int64)
        asset_org = org_code[all_rows]
        asset_text = values_a.take(pa.array(all_rows))

        def remap(r: IntArray) -> IntArray:
            return compact[r]

        v4_short = {p: (k, remap(r)) for p, (k, r) in v4_tables.items() if p <= DENSE_BITS}
        return cls(
            org_names=org_names, asset_org=asset_org, asset_text=asset_text,
            v4={p: (k, remap(r)) for p, (k, r) in v4_tables.items() if p > DENSE_BITS},
            v4_dense=_dense_v4(v4_short) if v4_short else None,
            v6={p: (k, remap(r)) for p, (k, r) in v6_tables.items()},
            asn_keys=asn_keys, asn_rows=remap(asn_rows),
            dom_keys=dom_keys, dom_rows=remap(dom_rows), dom_levels=dom_levels,
            dom_hash=dom_hash, dom_mult=dom_mult, conflicts=conflicts, version=version)

    # -- query ----------------------------------------------------------------------------

    def match(self, events: pa.Table) -> tuple[IntArray, npt.NDArray[np.int8]]:
        """Per event: the matched asset (position, -1 none) and the match kind code."""
        n = events.num_rows
        hit = np.full(n, -1, dtype=np.int64)
        kind = np.zeros(n, dtype=np.int8)
        if n == 0 or self.size == 0:
            return hit, kind
        cols = set(events.column_names)
        if "source.ip" in cols and (self.v4 or self.v6 or self.v4_dense is not None):
            ips = parse_ips(events.column("source.ip"))
            if self.v4 or self.v4_dense is not None:
                idx = np.flatnonzero(ips.version == 4)
                self._lookup_v4(idx, ips.v4[idx], hit)
            if self.v6:
                idx = np.flatnonzero(ips.version == 6)
                self._lookup_v6(idx, ips.hi[idx], ips.lo[idx], hit)
            kind[hit >= 0] = KIND_IP
        if len(self.dom_keys):
            todo = np.flatnonzero(hit < 0)
            names = []
            if "source.fqdn" in cols:
                names.append(_clean_names(events.column("source.fqdn"), todo))
            if "source.url" in cols:
                names.append(_url_hosts(events.column("source.url"), todo))
            if names:
                found = self._lookup_domains(names)
                ok = found >= 0
                hit[todo[ok]] = found[ok]
                kind[todo[ok]] = KIND_DOMAIN
        if len(self.asn_keys) and "source.asn" in cols:
            todo = np.flatnonzero(hit < 0)
            col = events.column("source.asn")
            asn_arr = _arrow(col).take(pa.array(todo))
            valid = pc.is_valid(asn_arr).to_numpy(zero_copy_only=False)
            q = pc.fill_null(asn_arr, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
            found = _search(self.asn_keys, self.asn_rows, q)
            found[~valid] = -1
            ok = found >= 0
            hit[todo[ok]] = found[ok]
            kind[todo[ok]] = KIND_ASN
        return hit, kind

    def attribute(self, events: pa.Table) -> pa.Table:
        """`events` with `organization`, `matched_asset` and `match_kind` set (nulls when
        nothing matched)."""
        hit, kind = self.match(events)
        none = hit < 0
        if self.size:
            safe = np.where(none, 0, hit)
            org = self.org_names.take(pa.array(self.asset_org[safe], mask=none))
            asset = self.asset_text.take(pa.array(safe, mask=none))
        else:
            org = pa.nulls(len(hit), pa.string())
            asset = pa.nulls(len(hit), pa.string())
        kinds = KIND_NAMES.take(pa.array(kind))
        for name, col in (("organization", org), ("matched_asset", asset),
                          ("match_kind", kinds)):
            i = events.schema.get_field_index(name)
            if i >= 0:
                events = events.set_column(i, pa.field(name, pa.string()), col)
            else:
                events = events.append_column(pa.field(name, pa.string()), col)
        return events

    def _lookup_v4(self, idx: IntArray, addr: npt.NDArray[np.uint32], hit: IntArray) -> None:
        if not len(idx):
            return
        order = np.argsort(addr, kind="stable")
        q, where = addr[order], idx[order]
        found = np.full(len(q), -1, dtype=np.int64)
        for p in sorted(self.v4, reverse=True):
            todo = np.flatnonzero(found < 0)
            if not len(todo):
                break
            keys, rows = self.v4[p]
            found[todo] = _search(keys, rows, q[todo] & v4_mask(p))
        if self.v4_dense is not None:
            todo = np.flatnonzero(found < 0)
            found[todo] = self.v4_dense[q[todo] >> np.uint32(32 - DENSE_BITS)]
        hit[where] = found

    def _lookup_v6(self, idx: IntArray, hi: npt.NDArray[np.uint64],
                   lo: npt.NDArray[np.uint64], hit: IntArray) -> None:
        if not len(idx):
            return
        found = np.full(len(idx), -1, dtype=np.int64)
        for p in sorted(self.v6, reverse=True):
            todo = np.flatnonzero(found < 0)
            if not len(todo):
                break
            keys, rows = self.v6[p]
            if p <= 64:
                q: npt.NDArray[np.generic] = hi[todo] & u64_mask(p)
            else:
                q = _key128(hi[todo], lo[todo] & u64_mask(p - 64))
            found[todo] = _search(keys, rows, q)
        hit[idx] = found

    def _lookup_domains(self, names: list[pa.Array]) -> IntArray:
        """Per row: the domain asset with the most labels that is a suffix of the name; each
        name source is tried in turn for rows the previous one left unmatched."""
        m = len(names[0])
        found = np.full(m, -1, dtype=np.int64)
        for src in names:
            rows = np.flatnonzero(pc.fill_null(pc.greater(pc.utf8_length(src), 0), False)
                                  .to_numpy(zero_copy_only=False) & (found < 0))
            if not len(rows):
                continue
            sub = src.take(pa.array(rows))
            pos = self._lookup_names(sub)
            ok = pos >= 0
            found[rows[ok]] = self.dom_rows[pos[ok]]
        return found

    def _lookup_names(self, names: pa.Array) -> IntArray:
        """Position in `dom_keys` of the longest matching suffix of each (non-null) name."""
        data, offsets = buffers(names)
        start0, end = offsets[:-1], offsets[1:]
        dots = np.flatnonzero(data == ord("."))
        dlo = np.searchsorted(dots, start0)
        dhi = np.searchsorted(dots, end)
        nlab = dhi - dlo + 1
        hasher = Hasher(data, self.dom_mult)
        found = np.full(len(names), -1, dtype=np.int64)
        all_pos = np.arange(len(self.dom_keys), dtype=np.int64)
        for level in self.dom_levels:
            sel = np.flatnonzero((found < 0) & (nlab >= level))
            if not len(sel):
                continue
            cut = dhi[sel] - level
            start = np.where(nlab[sel] == level, start0[sel],
                             dots[np.maximum(cut, 0)] + 1 if len(dots) else start0[sel])
            cand = _search(self.dom_hash, all_pos, hasher.hash(start, end[sel]))
            hit = np.flatnonzero(cand >= 0)
            if not len(hit):
                continue
            # verify the hash hits on the strings themselves
            got = names.take(pa.array(sel[hit])).to_pylist()
            keys = self.dom_keys.take(pa.array(cand[hit])).to_pylist()
            lens = (end[sel[hit]] - start[hit]).tolist()
            ok = np.fromiter(
                (g.endswith(k) and len(k.encode()) == n
                 for g, k, n in zip(got, keys, lens, strict=True)),
                dtype=bool, count=len(hit))
            found[sel[hit[ok]]] = cand[hit[ok]]
        return found

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to directory `path` (atomically replaced)."""
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "asset_org": self.asset_org, "asn_keys": self.asn_keys, "asn_rows": self.asn_rows,
            "dom_rows": self.dom_rows, "dom_hash": self.dom_hash}
        for p, (k, r) in self.v4.items():
            arrays[f"v4_{p}_keys"], arrays[f"v4_{p}_rows"] = k, r
        if self.v4_dense is not None:
            arrays["v4_dense"] = self.v4_dense
        for p, (k6, r) in self.v6.items():
            arrays[f"v6_{p}_keys"], arrays[f"v6_{p}_rows"] = k6, r
        np.savez(tmp / "arrays.npz", **arrays)  # type: ignore[arg-type]
        for name, arr in (("org_names", self.org_names), ("asset_text", self.asset_text),
                          ("dom_keys", self.dom_keys)):
            table = pa.table({name: arr})
            with pa.OSFile(str(tmp / f"{name}.arrow"), "wb") as sink, \
                    pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        meta = {"format": FORMAT_VERSION, "version": self.version, "conflicts": self.conflicts,
                "dom_levels": self.dom_levels, "dom_mult": self.dom_mult}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)

    @classmethod
    def load(cls, path: Path) -> AssetIndex:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: index format {meta.get('format')} not supported")
        strings = {}
        for name in ("org_names", "asset_text", "dom_keys"):
            with pa.memory_map(str(path / f"{name}.arrow")) as src:
                strings[name] = pa.ipc.open_file(src).read_all().column(0).combine_chunks()
        with np.load(path / "arrays.npz") as z:
            arrays = {k: z[k] for k in z.files}
        v4 = {int(k.split("_")[1]): (arrays[k], arrays[k.replace("keys", "rows")])
              for k in arrays if k.startswith("v4_") and k.endswith("_keys")}
        v6 = {int(k.split("_")[1]): (arrays[k], arrays[k.replace("keys", "rows")])
              for k in arrays if k.startswith("v6_") and k.endswith("_keys")}
        return cls(org_names=strings["org_names"], asset_org=arrays["asset_org"],
                   asset_text=strings["asset_text"], v4=v4, v6=v6,
                   v4_dense=arrays.get("v4_dense"),
                   asn_keys=arrays["asn_keys"], asn_rows=arrays["asn_rows"],
                   dom_keys=strings["dom_keys"], dom_rows=arrays["dom_rows"],
                   dom_levels=list(meta["dom_levels"]), dom_hash=arrays["dom_hash"],
                   dom_mult=int(meta["dom_mult"]), conflicts=int(meta["conflicts"]),
                   version=int(meta["version"]))


def _dense_v4(tables: dict[int, tuple[npt.NDArray[Any], IntArray]]) -> npt.NDArray[np.int32]:
    """Flatten IPv4 prefixes of length <= DENSE_BITS into a table indexed by the first
    DENSE_BITS address bits, shortest first so that longer prefixes overwrite."""
    dense = np.full(1 << DENSE_BITS, -1, dtype=np.int32)
    budget = 1 << 22  # cells expanded per step (bounds the temporary arrays)
    for p in sorted(tables):
        keys, rows = tables[p]
        span = 1 << (DENSE_BITS - p)
        starts = (keys >> np.uint32(32 - DENSE_BITS)).astype(np.int64)
        step = max(1, budget // span)
        offsets = np.arange(span, dtype=np.int64)
        for i in range(0, len(starts), step):
            cells = (starts[i:i + step, None] + offsets).reshape(-1)
            dense[cells] = np.repeat(rows[i:i + step].astype(np.int32), span)
    return dense


def _key128(hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64]) -> npt.NDArray[np.generic]:
    """16-byte big-endian keys: bytewise order is address order."""
    both = np.empty((len(hi), 2), dtype=">u8")
    both[:, 0], both[:, 1] = hi, lo
    return both.view("S16").reshape(-1)


def _search(keys: npt.NDArray[np.generic], rows: IntArray,
            q: npt.NDArray[np.generic]) -> IntArray:
    """Exact lookup of `q` in sorted `keys`: the matching row, or -1."""
    out = np.full(len(q), -1, dtype=np.int64)
    if not len(keys) or not len(q):
        return out
    pos = np.searchsorted(keys, q)
    pos[pos == len(keys)] = 0
    ok = keys[pos] == q
    out[ok] = rows[pos[ok]]
    return out


def _clean_names(col: pa.Array | pa.ChunkedArray, rows: IntArray) -> pa.Array:
    arr = _arrow(col, pa.string()).take(pa.array(rows))
    return pc.utf8_rtrim(pc.utf8_lower(arr), ".")


_URL_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<host>[^:/?#\[\]]+)"


def _url_hosts(col: pa.Array | pa.ChunkedArray, rows: IntArray) -> pa.Array:
    arr = _arrow(col, pa.string()).take(pa.array(rows))
    host = pc.struct_field(pc.extract_regex(arr, _URL_HOST), [0])
    return pc.utf8_rtrim(pc.utf8_lower(host), ".")


def _hash_keys(keys: pa.Array) -> tuple[npt.NDArray[np.uint64], int, IntArray]:
    """Hash the (distinct) domain keys with the first multiplier that gives no collision;
    returns the sorted hashes, the multiplier and the order that sorts the keys."""
    for mult in MULTIPLIERS:
        h = hash_strings(keys, mult)
        order = np.argsort(h, kind="stable")
        h = h[order]
        if not len(h) or not (h[1:] == h[:-1]).any():
            return h, mult, order
    raise RuntimeError("domain hash collisions with every multiplier")  # pragma: no cover
