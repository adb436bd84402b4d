"""RIR delegated(-extended) statistics: which registry, country and status every block has.

These files are the one source that covers all address space and AS numbers worldwide, small
enough to hold in memory, and published daily by each RIR. They answer the scope question
of an unsolicited notification (is this address registered to the Kingdom of the Netherlands,
or whose national CSIRT do we tell?) and, through the opaque id, which blocks one holder has.
Each RIR's file is its own part in the store, so a failed download of one RIR leaves the
others current. Format: https://www.nro.net/wp-content/uploads/nro-extended-stats-readme5.txt
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.intervals import (
    BOUND_COLUMNS,
    IntervalIndex,
    bounds_table,
    build_from_table,
    cached_index,
    cidr_bounds,
    token_of,
    with_token,
)
from cwn.publicdata.pyasn import open_text_input
from cwn.publicdata.store import ImportSummary, PublicDataStore

KIND = "delegated"
KINGDOM = frozenset({"NL", "BQ", "AW", "CW", "SX"})
"""The Kingdom of the Netherlands: the Netherlands, the Caribbean Netherlands (BQ) and the
constituent countries Aruba, Curaçao and Sint Maarten: the national CSIRT's scope."""
RESULT_COLUMNS = ["registry", "cc", "status", "opaque_id", "date"]
_REGISTRY = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
_NULL_STR = pa.scalar(None, pa.string())


def in_kingdom(cc: pa.Array | pa.ChunkedArray) -> pa.Array:
    """True where the country code is in the Kingdom; null or other codes give False."""
    arr = cc.combine_chunks() if isinstance(cc, pa.ChunkedArray) else cc
    hit = pc.is_in(pc.utf8_upper(pc.utf8_trim_whitespace(arr.cast(pa.string()))),
                   value_set=pa.array(sorted(KINGDOM)))
    return pc.fill_null(hit, False)


@dataclass(frozen=True, slots=True)
class _Header:
    registry: str
    records: int | None
    source_date: str | None


def _yyyymmdd(text: str) -> str | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _header(fields: list[str]) -> _Header | None:
    """`version|registry|serial|records|startdate|enddate|UTCoffset`; the data date is the
    end date, else the serial when it is a date (some RIRs number serials by day)."""
    if len(fields) < 6 or not re.fullmatch(r"\d+(\.\d+)*", fields[0]):
        return None
    registry = fields[1].strip().lower()
    records = int(fields[3]) if fields[3].strip().isdigit() else None
    when = _yyyymmdd(fields[5].strip()) or _yyyymmdd(fields[2].strip())
    return _Header(registry, records, when)


def _lines(path: Path) -> tuple[pa.Array, int]:
    """Every line as one string, comments and blank lines dropped, read by pyarrow; and the
    number of lines it could not read (containing the 0x1f separator it splits on)."""
    unreadable: list[int] = []

    def skip(_row: Any) -> str:
        unreadable.append(1)
        return "skip"

    with open_text_input(path) as stream:
        try:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=["line"]),
                parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False,
                                                 invalid_row_handler=skip),
                convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}))
        except pa.ArrowException as exc:
            raise PublicDataError(f"{path}: not a delegated statistics file "
                                  f"({str(exc).strip().splitlines()[0]})") from exc
    lines = pc.utf8_trim_whitespace(table["line"].combine_chunks())
    keep = pc.and_(pc.greater(pc.utf8_length(lines), 0),
                   pc.invert(pc.starts_with(lines, "#")))
    return lines.filter(pc.fill_null(keep, False)), len(unreadable)


class _Fields:
    """Column access into `a|b|c` lines split once, without a Python loop per line."""

    def __init__(self, lines: pa.Array) -> None:
        parts = pc.split_pattern(lines, "|")
        self.count = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
        self.offsets = parts.offsets.to_numpy()[:-1]
        self.flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))

    def get(self, rows: npt.NDArray[np.int64], k: int) -> pa.Array:
        """Field k of the given rows, null where a row has fewer fields."""
        has = self.count[rows] > k
        pos = np.where(has, self.offsets[rows] + k, 0)
        values = self.flat.take(pa.array(pos, mask=~has))
        return pc.if_else(pc.equal(values, ""), _NULL_STR, values)


def import_delegated(path: Path, store: PublicDataStore) -> ImportSummary:
    """Replace one RIR's part (named by the registry in the file header) with `path`:
    delegated or delegated-extended statistics, text or gzip."""
    lines, unreadable = _lines(path)
    if len(lines) == 0:
        raise PublicDataError(f"{path}: no delegated statistics lines")
    header = _header(str(lines[0]).split("|"))
    f = _Fields(lines)
    rows = np.arange(1 if header else 0, len(lines), dtype=np.int64)
    registry = pc.utf8_lower(f.get(rows, 0))
    cc, typ = pc.utf8_upper(f.get(rows, 1)), pc.utf8_lower(f.get(rows, 2))
    start, value = f.get(rows, 3), f.get(rows, 4)
    summary_line = pc.fill_null(pc.and_(pc.equal(cc, "*"), pc.equal(f.get(rows, 5), "summary")),
                                False).to_numpy(zero_copy_only=False)
    record = (f.count[rows] >= 7) & ~summary_line
    skipped = unreadable + int(np.count_nonzero(~record & ~summary_line))

    part = header.registry if header else _common(registry.filter(pa.array(record)))
    if part is None or not _REGISTRY.match(part):
        raise PublicDataError(f"{path}: no delegated statistics header or records "
                              f"(registry {part!r})")
    date_txt = f.get(rows, 5)
    date_txt = pc.if_else(pc.fill_null(pc.match_substring_regex(date_txt, r"^0+$"), False),
                          _NULL_STR, date_txt)
    base = {
        "registry": registry, "cc": pc.if_else(pc.equal(cc, ""), _NULL_STR, cc),
        "status": pc.utf8_lower(f.get(rows, 6)), "opaque_id": f.get(rows, 7),
        "date": pc.cast(pc.strptime(date_txt, format="%Y%m%d", unit="s", error_is_null=True),
                        pa.date32()),
    }
    counts: dict[str, int] = {}
    ips, ok_ip = _ip_blocks(typ, start, value, record)
    asns, ok_asn = _asn_blocks(typ, start, value, record)
    skipped += int(np.count_nonzero(record & ~ok_ip & ~ok_asn))
    ip_rows, asn_rows = pa.array(np.flatnonzero(ok_ip)), pa.array(np.flatnonzero(ok_asn))
    ip_table = pa.table({k: v.take(ip_rows) for k, v in base.items()})
    for name, col in zip(BOUND_COLUMNS, ips.columns, strict=True):
        ip_table = ip_table.append_column(name, col.take(ip_rows))
    ip_table, _ = with_token(ip_table)
    asn_table = pa.table({k: v.take(asn_rows) for k, v in base.items()})
    asn_table = asn_table.append_column("first", asns[0].take(asn_rows)) \
        .append_column("last", asns[1].take(asn_rows))
    version = ip_table["version"].to_numpy()
    counts = {"ipv4": int(np.count_nonzero(version == 4)),
              "ipv6": int(np.count_nonzero(version == 6)), "asn": asn_table.num_rows}
    if ip_table.num_rows + asn_table.num_rows == 0:
        raise PublicDataError(f"{path}: no usable asn/ipv4/ipv6 records")

    summary = ImportSummary(kind=KIND, part=part, source=str(path),
                            rows=ip_table.num_rows + asn_table.num_rows, skipped=skipped,
                            source_date=header.source_date if header else None, counts=counts)
    if header is None:
        summary.notes.append("no header line; registry taken from the records")
    if skipped:
        summary.notes.append(f"{skipped} malformed lines skipped")
    found = int(np.count_nonzero(record))
    if header and header.records is not None and header.records != found:
        summary.notes.append(f"header announces {header.records} records, file has {found} "
                             "(truncated download?)")
    store.write(summary, {"ips": ip_table, "asns": asn_table})
    return summary


def _common(values: pa.Array) -> str | None:
    if len(values) == 0:
        return None
    counts = pc.value_counts(values.drop_null())
    if len(counts) == 0:
        return None
    best = int(np.argmax(counts.field("counts").to_numpy()))
    return str(counts.field("values")[best])


def _ip_blocks(typ: pa.Array, start: pa.Array, value: pa.Array, record: npt.NDArray[np.bool_],
               ) -> tuple[pa.Table, npt.NDArray[np.bool_]]:
    """Bounds of ipv4 (start + count addresses, any count) and ipv6 (start/prefix) records."""
    n = len(typ)
    is4 = pc.fill_null(pc.equal(typ, "ipv4"), False).to_numpy(zero_copy_only=False) & record
    is6 = pc.fill_null(pc.equal(typ, "ipv6"), False).to_numpy(zero_copy_only=False) & record
    num = _uint(value)
    v, shi, slo, ehi, elo = cidr_bounds(pc.binary_join_element_wise(start, value, "/"))
    # ipv4: cidr_bounds read `start/count` only where count <= 32; use the start address
    v4, _, s4, _, _ = cidr_bounds(start)
    e4 = s4 + np.maximum(num, 1).astype(np.uint64) - np.uint64(1)
    ok4 = is4 & (v4 == 4) & (num >= 1) & (e4 <= np.uint64(0xFFFFFFFF)) & (e4 >= s4)
    ok6 = is6 & (v == 6) & (num >= 0) & (num <= 128)
    version = np.where(ok4, 4, np.where(ok6, 6, 0)).astype(np.int8)
    z = np.zeros(n, np.uint64)
    bounds = (version, np.where(ok6, shi, z), np.where(ok4, s4, np.where(ok6, slo, z)),
              np.where(ok6, ehi, z), np.where(ok4, e4, np.where(ok6, elo, z)))
    return bounds_table(bounds), ok4 | ok6


def _asn_blocks(typ: pa.Array, start: pa.Array, value: pa.Array, record: npt.NDArray[np.bool_],
                ) -> tuple[tuple[pa.Array, pa.Array], npt.NDArray[np.bool_]]:
    is_asn = pc.fill_null(pc.equal(typ, "asn"), False).to_numpy(zero_copy_only=False) & record
    first, num = _uint(start), _uint(value)
    last = first + num - 1
    ok = is_asn & (first >= 0) & (num >= 1) & (last <= 0xFFFFFFFF)
    return (pa.array(np.where(ok, first, 0)), pa.array(np.where(ok, last, 0))), ok


def _uint(texts: pa.Array) -> npt.NDArray[np.int64]:
    """Decimal text as int64; -1 where null, not a number or implausibly long."""
    ok = pc.fill_null(pc.match_substring_regex(texts, r"^\d{1,12}$"), False)
    nums = pc.cast(pc.if_else(ok, texts, pa.scalar("-1")), pa.int64())
    return np.asarray(pc.fill_null(nums, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True, repr=False)
class Delegated:
    """All imported RIRs merged: per address or AS number, the block's registry, country,
    status, opaque holder id and date. A block listed by two RIRs (inter-RIR transfers seen
    in files of different days) resolves to the registry that sorts first."""

    ips: pa.Table
    ip_index: IntervalIndex
    asns: pa.Table
    asn_index: IntervalIndex

    @classmethod
    def load(cls, store: PublicDataStore) -> Delegated | None:
        parts = store.parts(KIND)
        ip_tables, asn_tables, tokens = [], [], []
        for part in parts:
            ips = store.read(KIND, "ips", part=part)
            asns = store.read(KIND, "asns", part=part)
            if ips is None or asns is None:
                continue
            tokens.append(f"{part}:{token_of(ips)}")
            ip_tables.append(ips.replace_schema_metadata(None))
            asn_tables.append(asns.replace_schema_metadata(None))
        if not ip_tables:
            return None
        ips = pa.concat_tables(ip_tables).combine_chunks()
        asns = pa.concat_tables(asn_tables).combine_chunks()
        digest = hashlib.sha1("|".join(tokens).encode()).hexdigest()[:16]
        folder = store.root / KIND
        ip_index = cached_index(folder / f".merged-{digest}.npz", ips.num_rows,
                                lambda: build_from_table(ips))
        for stale in folder.glob(".merged-*.npz"):
            if stale.name != f".merged-{digest}.npz":
                stale.unlink(missing_ok=True)
        n = asns.num_rows
        zero = np.zeros(n, np.uint64)
        asn_index = IntervalIndex.build(np.full(n, 4, np.int8), zero,
                                        asns["first"].to_numpy().astype(np.uint64), zero,
                                        asns["last"].to_numpy().astype(np.uint64))
        return cls(ips, ip_index, asns, asn_index)

    def lookup_ips(self, ips: pa.Array | pa.ChunkedArray) -> pa.Table:
        """Per address: its delegated block's columns, a null row where none or unparsable."""
        return _rows(self.ips, self.ip_index.lookup_ips(ips))

    def lookup_asns(self, asns: pa.Array | pa.ChunkedArray | list[Any]) -> pa.Table:
        """Per AS number (integer, or text such as "AS1136"): its delegated block's columns."""
        q = _asn_numbers(asns)
        n = len(q)
        ok = q >= 0
        version = np.where(ok, 4, 0).astype(np.int8)
        rows = self.asn_index.lookup(version, np.zeros(n, np.uint64),
                                     np.where(ok, q, 0).astype(np.uint64))
        return _rows(self.asns, rows)


def _rows(table: pa.Table, rows: npt.NDArray[np.int64]) -> pa.Table:
    return table.select(RESULT_COLUMNS).take(pa.array(rows, pa.int64(), mask=rows < 0))


def _asn_numbers(asns: pa.Array | pa.ChunkedArray | list[Any]) -> npt.NDArray[np.int64]:
    """AS numbers from ints or "AS123" texts; -1 where null or not a number."""
    arr = asns if isinstance(asns, pa.Array | pa.ChunkedArray) else pa.array(asns)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_integer(arr.type):
        out = np.asarray(pc.fill_null(arr.cast(pa.int64()), -1).to_numpy(zero_copy_only=False))
        return np.where((out >= 0) & (out <= 0xFFFFFFFF), out, -1).astype(np.int64)
    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    text = pc.replace_substring_regex(text, r"^(?i:as)", "")
    nums = _uint(text)
    return np.where(nums <= 0xFFFFFFFF, nums, -1)
