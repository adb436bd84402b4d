"""Origin AS of an address from pyasn IPASN files (BGP prefix -> origin AS), offline.

An unsolicited notification needs the network that announces an address even when no
registry object names a holder; a RouteViews/RIS dump converted by pyasn gives exactly that
as one `prefix<TAB>asn` line per announced prefix. The file is read by pyarrow.csv (no Python
per line) and the most specific announced prefix wins, as routers decide. AS names
(`asnames.json`, also from pyasn) are an optional second kind, to say *who* AS 15169 is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
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
    save_index,
    token_of,
    with_token,
)
from cwn.publicdata.store import ImportSummary, PublicDataStore

KIND, NAMES_KIND, PART = "ipasn", "asnames", "default"
_NAME_DATE = re.compile(r"(?<!\d)((?:19|20)\d{6})(?!\d)")
_HEAD_BYTES = 65536


def open_text_input(path: Path) -> pa.NativeFile:
    """A decompressed stream of a text input, after checking it is usable at all. Gzip is
    recognised by its magic bytes, not the name: downloaded files get renamed."""
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise PublicDataError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def _open() -> pa.NativeFile:
        raw = pa.OSFile(str(path))
        return pa.CompressedInputStream(raw, "gzip") if gz else raw

    try:
        with _open() as stream:
            head = stream.read(_HEAD_BYTES)
    except (OSError, pa.ArrowException) as exc:
        raise PublicDataError(f"{path}: unreadable{' gzip' if gz else ''} file") from exc
    if not head.strip():
        raise PublicDataError(f"{path}: empty file")
    if b"\x00" in head or not _is_utf8(head):
        raise PublicDataError(f"{path}: binary data, not a text file")
    return _open()


def _is_utf8(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the sample is fine
        return len(head) == _HEAD_BYTES and exc.start >= len(head) - 3
    return True


def read_head_lines(path: Path, max_lines: int = 50) -> list[str]:
    """The first lines of a (possibly gzip) text input, for header fields."""
    with open_text_input(path) as stream:
        head = stream.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    return head.splitlines()[:max_lines]


def _source_date(path: Path, header: list[str]) -> str | None:
    """The RIB date: from the file name (`ipasn_20140513.dat`), else the header's original
    file name, else its conversion date."""
    for text in [path.name] + [h for h in header if h.lower().startswith("; original file")]:
        for m in _NAME_DATE.finditer(text):
            try:
                return datetime.strptime(m.group(1), "%Y%m%d").date().isoformat()
            except ValueError:
                continue
    for h in header:
        if h.lower().startswith("; converted on"):
            text = h.split(":", 1)[1].strip()
            try:
                return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").date().isoformat()
            except ValueError:
                return None
    return None


def import_ipasn(path: Path, store: PublicDataStore) -> ImportSummary:
    """Replace the stored prefix -> origin AS table with `path` (pyasn IPASN, text or gzip)."""
    header = [h for h in read_head_lines(path) if h.startswith(";")]
    bad: list[str] = []

    def invalid(row: Any) -> str:
        text = (row.text or "").strip()
        if not text.startswith(";"):
            bad.append(text)
        return "skip"

    try:
        with open_text_input(path) as stream:
            raw = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=["prefix", "asn"]),
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False,
                                                 invalid_row_handler=invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={"prefix": pa.string(), "asn": pa.string()}))
    except pa.ArrowException as exc:
        raise PublicDataError(f"{path}: not a pyasn IPASN file ({_first_line(exc)})") from exc

    data = raw.filter(pc.invert(pc.fill_null(pc.starts_with(raw["prefix"], ";"), False)))
    asn_txt = pc.utf8_trim_whitespace(data["asn"])
    asn_ok = pc.fill_null(pc.match_substring_regex(asn_txt, r"^\d{1,10}$"), False)
    asn = pc.cast(pc.if_else(asn_ok, asn_txt, pa.scalar(None, pa.string())), pa.int64())
    bounds = cidr_bounds(data["prefix"])
    asn_np = pc.fill_null(asn, -1).to_numpy()
    good = (bounds[0] != 0) & (asn_np >= 0) & (asn_np <= 0xFFFFFFFF)
    if not good.all():
        first_bad = int(np.argmin(good))
        bad.append(f"{data['prefix'][first_bad]}\t{data['asn'][first_bad]}")
    if not good.any():
        raise PublicDataError(f"{path}: no `prefix<TAB>asn` lines (not a pyasn IPASN file?)")

    keep = pa.array(np.flatnonzero(good))
    kept = tuple(np.asarray(b)[good] for b in bounds)
    table = pa.Table.from_arrays(
        [pc.utf8_trim_whitespace(data["prefix"]).take(keep), asn.take(keep),
         *bounds_table(kept).columns],
        names=["prefix", "asn", *BOUND_COLUMNS])
    table, token = with_token(table)
    index = IntervalIndex.build(*kept)

    n_invalid = len(bad) - (0 if good.all() else 1)  # rows pyarrow could not split in two
    summary = ImportSummary(kind=KIND, part=PART, source=str(path), rows=table.num_rows,
                            skipped=n_invalid + int(len(good) - np.count_nonzero(good)),
                            source_date=_source_date(path, header),
                            counts={"ipv4": int(np.count_nonzero(kept[0] == 4)),
                                    "ipv6": int(np.count_nonzero(kept[0] == 6))})
    if summary.skipped:
        summary.notes.append(f"{summary.skipped} malformed lines skipped, e.g. {bad[0]!r:.80}")
    final = store.write(summary, {"prefixes": table})
    save_index(index, final / f"index-{token}.npz")
    return summary


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def import_asnames(path: Path, store: PublicDataStore) -> ImportSummary:
    """Replace the stored AS number -> name map with `path` (pyasn asnames.json, {asn: name},
    text or gzip)."""
    with open_text_input(path) as stream:
        blob = stream.read()
    try:
        obj = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise PublicDataError(f"{path}: not JSON ({exc.msg} at byte {exc.pos})") from exc
    if not isinstance(obj, dict) or not obj:
        raise PublicDataError(f"{path}: expected a JSON object {{\"asn\": \"name\"}}")
    keys = pc.utf8_trim_whitespace(pa.array([str(k) for k in obj], pa.string()))
    keys = pc.replace_substring_regex(keys, r"^(?i:as)", "")
    names = pa.array([v.strip() if isinstance(v, str) else None for v in obj.values()],
                     pa.string())
    ok = pc.and_(pc.match_substring_regex(keys, r"^\d{1,10}$"),
                 pc.fill_null(pc.greater(pc.utf8_length(names), 0), False))
    table = pa.table({"asn": pc.cast(keys.filter(ok), pa.int64()), "name": names.filter(ok)})
    table = table.filter(pc.less_equal(table["asn"], 0xFFFFFFFF))
    table = table.sort_by("asn")
    if table.num_rows == 0:
        raise PublicDataError(f"{path}: no AS number -> name entries")
    skipped = len(obj) - table.num_rows
    summary = ImportSummary(kind=NAMES_KIND, part=PART, source=str(path),
                            rows=table.num_rows, skipped=skipped)
    if skipped:
        summary.notes.append(f"{skipped} entries without a numeric AS or a name skipped")
    store.write(summary, {"asnames": table})
    return summary


@dataclass(frozen=True, repr=False)
class OriginAS:
    """Longest-prefix origin AS (and optionally AS name) for many addresses at once."""

    prefixes: pa.Table
    index: IntervalIndex
    asn_of_row: np.ndarray  # int64 per prefix row
    names_asn: np.ndarray  # sorted AS numbers with a name (empty if asnames not imported)
    names: pa.Array
    source_date: date | None = None

    @classmethod
    def load(cls, store: PublicDataStore) -> OriginAS | None:
        table = store.read(KIND, "prefixes", part=PART)
        if table is None:
            return None
        token = token_of(table) or "none"
        index = cached_index(store.folder(KIND, PART) / f"index-{token}.npz", table.num_rows,
                             lambda: build_from_table(table))
        asn = pc.fill_null(table["asn"], -1).to_numpy()
        names = store.read(NAMES_KIND, "asnames", part=PART)
        if names is None:
            names_asn, name_arr = np.empty(0, np.int64), pa.array([], pa.string())
        else:
            names = names.sort_by("asn")
            names_asn = names["asn"].to_numpy()
            name_arr = names["name"].combine_chunks()
        meta = store.meta(KIND, PART) or {}
        when = meta.get("source_date")
        return cls(table, index, asn, names_asn, name_arr,
                   date.fromisoformat(when) if when else None)

    @property
    def has_names(self) -> bool:
        return len(self.names_asn) > 0

    def lookup(self, ips: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per address: the origin AS of the most specific announced prefix, null where no
        prefix covers it or the address does not parse."""
        rows = self.index.lookup_ips(ips)
        miss = rows < 0
        return pa.array(self.asn_of_row[np.where(miss, 0, rows)] if len(self.asn_of_row)
                        else np.zeros(len(rows), np.int64), pa.int64(), mask=miss)

    def name(self, asns: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Per AS number: its name from asnames, null where unknown (or not imported)."""
        q = pc.fill_null(pc.cast(asns, pa.int64()), -1).to_numpy(zero_copy_only=False) \
            if len(asns) else np.empty(0, np.int64)
        if not self.has_names or len(q) == 0:
            return pa.nulls(len(q), pa.string())
        pos = np.searchsorted(self.names_asn, q).clip(0, len(self.names_asn) - 1)
        hit = self.names_asn[pos] == q
        return self.names.take(pa.array(pos, mask=~hit))
