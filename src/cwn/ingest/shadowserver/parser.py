"""Shadowserver CSV reports -> event batches, column-wise.

The whole file is handled as Arrow/numpy columns: record boundaries and the IntelMQ-style
`raw` (base64 of header line + record line) are computed with numpy on the byte buffer, the
CSV is read by `pyarrow.csv`, and every mapped column is normalised by
`cwn.events.normalise`. Per-row Python only runs for the rows that end up in quarantine.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cwn.events.batch import conform
from cwn.events.extra import encode_extra
from cwn.events.fields import BY_NAME
from cwn.events.normalise import normalise
from cwn.ingest.result import ParseResult, Quarantined, UnusableInput
from cwn.ingest.shadowserver.filename import detect
from cwn.ingest.shadowserver.schema import ColumnRule, ReportSpec, ReportTable, load_table

_simd_b64encode: Callable[[memoryview], bytes] | None
try:  # SIMD base64 (about 10x binascii); the standard library is the fallback
    from pybase64 import b64encode as _simd_b64encode
except ImportError:  # pragma: no cover
    _simd_b64encode = None


def _b64encode(data: memoryview) -> bytes:
    if _simd_b64encode is not None:
        return bytes(_simd_b64encode(data))
    return base64.b64encode(data)


PROVIDER = "Shadowserver"
TIME_COLUMNS = frozenset({"timestamp", "time", "date", "first_seen", "last_seen", "ts", "datetime"})
_B64_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8
)
_TRUE_VALUES = ["Y", "y", "true", "True", "TRUE"]
_FALSE_VALUES = ["N", "n", "false", "False", "FALSE"]


# -- bytes -> records ---------------------------------------------------------------------------


def _check_usable(data: bytes) -> bytes:
    """Strip a BOM and reject files that cannot be CSV; returns the bytes to parse."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data[:65536].strip() and not data.strip():  # strip() copies: look at the head
        raise UnusableInput("empty file")
    if b"\x00" in data:
        raise UnusableInput("binary file (NUL bytes), not CSV")
    buf = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    try:
        pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buf]).cast(pa.large_string())
    except pa.ArrowInvalid:
        raise UnusableInput("not UTF-8 text, not a Shadowserver CSV") from None
    return data


def _record_spans(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Start/end byte offsets of the non-empty CSV records (end excludes CR/LF).

    Newlines inside quoted values do not end a record: a line ends a record only when the
    number of quotes seen so far is even (doubled quotes inside values keep the parity).
    Returns (starts, ends, multiline) where multiline tells whether any record spans lines.
    """
    n = len(buf)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], nl + 1)).astype(np.int64)
    ends = np.concatenate((nl, [n])).astype(np.int64)
    if starts[-1] >= n:  # file ends with a newline: no last segment
        starts, ends = starts[:-1], ends[:-1]
    multiline = False
    if len(starts):
        quotes = (buf == 34).view(np.uint8)
        # Only the parity matters, so a wrapping uint8 sum is enough (and fast).
        counts = np.add.reduceat(quotes, starts, dtype=np.uint8) & 1
        counts[ends == starts] = 0  # reduceat quirk on empty segments
        if counts.any():
            multiline = True
            parity = np.cumsum(counts, dtype=np.int64) & 1
            closes = parity == 0
            closes[-1] = True
            close_idx = np.flatnonzero(closes)
            first = np.concatenate(([0], close_idx[:-1] + 1))
            starts, ends = starts[first], ends[close_idx]
    # Drop the CR of CRLF, then empty records (pyarrow skips empty lines too).
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    ends = ends - has_cr
    keep = ends > starts
    return starts[keep], ends[keep], multiline


def _spans_text(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """Each record's text, without its line break (records must be in file order).

    Built zero-copy over the file bytes (each element runs up to the next record) and then
    trimmed by an Arrow kernel, so the bytes are copied once, in C.
    """
    if len(starts) == 0:
        return pa.array([], pa.string())
    offsets = np.concatenate((starts, [ends[-1]])).astype(np.int64)
    spans = pa.Array.from_buffers(
        pa.large_string(), len(starts),
        [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)],
    )
    return pc.utf8_rtrim(spans, characters="\r\n")


def _base64_records(records: pa.Array, prefix: bytes) -> pa.Array:
    """base64(prefix + record) for every record, vectorised.

    The prefix (header line + newline) is the same for every record, so its whole 3-byte
    groups are encoded once; its last `len % 3` bytes go in front of each record, and each
    record is zero-padded to a multiple of 3 bytes. The concatenation of all padded records
    is then encoded in a single call (3-byte groups never straddle two records) and the
    encoded zero padding is turned into `=`.
    """
    n = len(records)
    r = len(prefix) % 3
    head, tail = prefix[: len(prefix) - r], prefix[len(prefix) - r :]
    head_b64 = base64.b64encode(head).decode("ascii")
    lengths = pc.binary_length(records).to_numpy(zero_copy_only=False).astype(np.int64)
    sizes = lengths + r
    rem = sizes % 3
    pad = pc.take(pa.array(["", "\0\0", "\0"], pa.large_string()), pa.array(rem))
    padded = pc.binary_join_element_wise(
        pa.scalar(tail.decode("utf-8"), pa.large_string()), records.cast(pa.large_string()), pad,
        pa.scalar("", pa.large_string()),
    )
    offs = np.frombuffer(padded.buffers()[1], dtype=np.int64)[padded.offset : padded.offset + n + 1]
    values = padded.buffers()[2]
    assert values is not None
    encoded = np.frombuffer(
        _b64encode(memoryview(values)[int(offs[0]) : int(offs[-1])]), dtype=np.uint8
    ).copy()
    enc_off = (offs - offs[0]) // 3 * 4
    ends = enc_off[1:]
    encoded[ends[rem == 1] - 1] = ord("=")
    encoded[ends[rem == 1] - 2] = ord("=")
    encoded[ends[rem == 2] - 1] = ord("=")
    arr = pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(enc_off.tobytes()), pa.py_buffer(encoded)]
    )
    if head_b64:
        arr = pc.binary_join_element_wise(
            pa.scalar(head_b64, pa.large_string()), arr, pa.scalar("", pa.large_string())
        )
    return arr.cast(pa.string())


# -- columns -> fields --------------------------------------------------------------------------


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(mask, pa.nulls(len(values), values.type), values)


def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _coalesce(old: pa.Array | None, new: pa.Array) -> pa.Array:
    return new if old is None else pc.coalesce(old, new)


def _extra_value(col: pa.Array, rule: ColumnRule) -> pa.Array:
    if rule.convert == "bool" and pa.types.is_string(col.type):
        vals, inv = normalise(BY_NAME["source.tor_node"], col)  # any Boolean field
        col = pc.if_else(inv, col.cast(pa.string()), vals.cast(pa.string()))
        if not pc.any(inv).as_py():
            col = vals
    if rule.zero_is_null:
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            col = _null_where(pc.fill_null(pc.equal(col, 0), False), col)
        elif pa.types.is_string(col.type):
            col = _null_where(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), "0"), False), col)
    return col


def _http_url(host: pa.Array, path: pa.Array) -> pa.Array:
    """http://<host><path> from a request line or path (`GET /x HTTP/1.1`, `/x`, `http://...`)."""
    p = pc.utf8_trim_whitespace(path.cast(pa.string()))
    p = pc.replace_substring_regex(p, r"^[A-Z]+\s+", "")
    p = pc.replace_substring_regex(p, r"\s+HTTP/[0-9.]+$", "")
    absolute = pc.fill_null(pc.match_substring_regex(p, r"^[A-Za-z][A-Za-z0-9+.-]*://"), False)
    rooted = pc.fill_null(pc.starts_with(p, "/"), True)
    p = pc.if_else(rooted, p, pc.binary_join_element_wise("/", p, ""))
    h = pc.utf8_trim_whitespace(host.cast(pa.string()))
    h = _null_where(pc.fill_null(pc.equal(h, ""), True), h)
    built = pc.binary_join_element_wise("http://", h, p, "")
    return pc.if_else(absolute, pc.utf8_trim_whitespace(path.cast(pa.string())), built)


class _Columns:
    """Accumulates the normalised fields, extra values and originals of one file."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.fields: dict[str, pa.Array] = {}
        self.original: dict[str, pa.Array] = {}
        self.extra: dict[str, pa.Array] = {}

    def put_extra(self, key: str, values: pa.Array) -> None:
        old = self.extra.get(key)
        if old is not None and old.type != values.type:
            old, values = old.cast(pa.string()), values.cast(pa.string())
        self.extra[key] = _coalesce(old, values)

    def put_field(self, name: str, col: pa.Array, column: str, rule: ColumnRule) -> None:
        text = col if pa.types.is_string(col.type) else col.cast(pa.string())
        values, invalid = normalise(BY_NAME[name], text)
        if rule.fallback is not None and pc.any(invalid).as_py():
            rest = _null_where(pc.invert(invalid), text)
            alt, alt_invalid = normalise(BY_NAME[rule.fallback], rest)
            self.fields[rule.fallback] = _coalesce(self.fields.get(rule.fallback), alt)
            invalid = pc.and_(invalid, alt_invalid)
        self.fields[name] = _coalesce(self.fields.get(name), values)
        self.original[name] = _coalesce(self.original.get(name), text)
        if pc.any(invalid).as_py():
            rejected = _null_where(pc.invert(invalid), text)
            self.put_extra(column if rule.soft else f"invalid.{name}", rejected)

    def fill(self, name: str, value: str) -> None:
        scalar, bad = normalise(BY_NAME[name], pa.array([value], pa.string()))
        if bad[0].as_py() or not scalar[0].is_valid:
            return
        const = pa.repeat(scalar[0], self.n)
        self.fields[name] = _coalesce(self.fields.get(name), const)


def _map_columns(
    table: pa.Table, names: list[str], spec: ReportSpec, rules: Mapping[str, ColumnRule | None]
) -> _Columns:
    out = _Columns(table.num_rows)
    by_name: dict[str, pa.Array] = {}
    for i, name in enumerate(names):
        col = _as_array(table.column(i))
        by_name.setdefault(name, col)
        rule = rules.get(name)
        if rule is not None and rule.field is not None:
            out.put_field(rule.field, col, name, rule)
        elif rule is not None and rule.extra is not None:
            out.put_extra(rule.extra, _extra_value(col, rule))
        else:
            if pa.types.is_null(col.type):
                continue
            out.put_extra(name, _extra_value(col, rule) if rule is not None else col)

    for name, columns in spec.coalesce.items():
        for column in reversed(columns):  # earlier columns win
            if column in by_name:
                col = by_name[column]
                values, _ = normalise(BY_NAME[name], col.cast(pa.string()))
                old = out.fields.get(name)
                out.fields[name] = values if old is None else pc.coalesce(values, old)
    if spec.url is not None and spec.url.host in by_name and spec.url.path in by_name:
        url = _http_url(by_name[spec.url.host], by_name[spec.url.path])
        values, _ = normalise(BY_NAME[spec.url.field], url)
        out.fields[spec.url.field] = _coalesce(out.fields.get(spec.url.field), values)
    for name, value in spec.constants.items():
        out.fill(name, value)
    if spec.severity:
        out.fill("severity", spec.severity)
    return out


def _quarantine_reasons(
    cols: _Columns, spec: ReportSpec, bad_rows: np.ndarray
) -> list[str]:
    """One-line reasons for the rows that lack a valid time or attribution (few rows)."""
    take = pa.array(bad_rows, pa.int64())

    def pick(d: Mapping[str, pa.Array], name: str) -> list[object]:
        arr = d.get(name)
        return [None] * len(bad_rows) if arr is None else pc.take(arr, take).to_pylist()

    time_ok = pick(cols.fields, "time.source")
    time_raw = pick(cols.original, "time.source")
    attr = {f: (pick(cols.fields, f), pick(cols.original, f)) for f in spec.require_any}
    reasons = []
    for k in range(len(bad_rows)):
        if time_ok[k] is None:
            raw = time_raw[k]
            reasons.append(f"invalid time.source: {raw!r}" if raw else "missing time.source")
            continue
        reason = None
        for f, (vals, raws) in attr.items():
            if vals[k] is None and raws[k]:
                reason = f"invalid {f}: {raws[k]!r}"
                break
        reasons.append(reason or f"no {' or '.join(spec.require_any)} to attribute the event")
    return reasons


# -- entry point --------------------------------------------------------------------------------


def _header_names(header: str) -> list[str]:
    try:
        names = next(csv.reader([header]))
    except (csv.Error, StopIteration):
        return []
    return [n.strip() or f"column_{i + 1}" for i, n in enumerate(names)]


def parse(
    data: bytes,
    *,
    report_type: str,
    file_name: str,
    observed: datetime,
    table: ReportTable | None = None,
    keep_raw: bool = True,
) -> ParseResult:
    """Parse one Shadowserver CSV report into an event batch.

    `keep_raw=False` leaves IntelMQ's per-event `raw` out: the whole file is archived
    anyway, and base64-encoding every record costs about a third of the parse.

    `report_type` may be empty: it is then taken from `file_name`. Rows without a valid
    time or attribution (or with the wrong number of columns) are quarantined; a file that
    is not a CSV report at all raises `UnusableInput`.
    """
    table = table or load_table(None)
    if not report_type:
        found = detect(file_name, table.report_types)
        if found is None:
            raise UnusableInput(f"cannot tell the report type from file name {file_name!r}")
        report_type = found.report_type
    spec = table.spec(report_type)

    data = _check_usable(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends, multiline = _record_spans(buf)
    header_bytes = data[starts[0] : ends[0]]
    header = header_bytes.decode("utf-8")
    names = _header_names(header)
    if len(names) < 2:
        raise UnusableInput("not a CSV report: the header has a single column")
    if not TIME_COLUMNS & {n.lower() for n in names}:
        raise UnusableInput("not a Shadowserver CSV: no timestamp column in the header")

    starts, ends = starts[1:], ends[1:]
    n_records = len(starts)
    if n_records == 0:
        return ParseResult(events=conform(pa.table({})), rows=0,
                           feed_name=spec.feed_name, report_type=report_type)

    rules = {name: table.rule(spec, name) for name in names}
    as_text = {n for n, r in rules.items() if r is not None and r.field is not None}
    as_text |= {c for cols in spec.coalesce.values() for c in cols}
    if spec.url is not None:
        as_text |= {spec.url.host, spec.url.path}
    column_types = {n: pa.string() for n in as_text if n in names}
    texts_cache: list[pa.Array] = []

    def texts() -> pa.Array:
        if not texts_cache:
            texts_cache.append(_spans_text(data, starts, ends))
        return texts_cache[0]

    parsed, bad = _read_csv(data, multiline, column_types)
    short = {text: expected - actual for text, actual, expected in bad if actual < expected}
    if short:
        # Like IntelMQ (csv.DictReader), rows missing trailing columns are read with those
        # columns empty: Shadowserver appends new columns to reports over time.
        padded = _pad_records(header, texts(), short)
        parsed, bad = _read_csv(padded, multiline, column_types)
    bad_texts = [text for text, actual, expected in bad if actual > expected]

    quarantine: list[Quarantined] = []
    record_ok = np.ones(n_records, dtype=bool)
    if bad_texts:
        bad_set = pa.array(sorted(set(bad_texts)), pa.string())
        wrong = pc.is_in(texts(), value_set=bad_set).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(wrong):
            quarantine.append(Quarantined(
                row=int(i) + 1,
                reason=f"more columns than the header ({len(names)})",
                content=texts()[int(i)].as_py(),
            ))
        record_ok &= ~wrong
    record_idx = np.flatnonzero(record_ok)
    if len(record_idx) != parsed.num_rows:  # defensive: never pair rows with wrong records
        raise UnusableInput(
            f"CSV structure not understood: {parsed.num_rows} rows parsed, "
            f"{len(record_idx)} records found"
        )

    cols = _map_columns(parsed, names, spec, rules)
    n = parsed.num_rows
    good = pc.is_valid(cols.fields["time.source"]) if "time.source" in cols.fields else (
        pa.array(np.zeros(n, dtype=bool))
    )
    if spec.require_any:
        attributable = pa.array(np.zeros(n, dtype=bool))
        for f in spec.require_any:
            if f in cols.fields:
                attributable = pc.or_(attributable, pc.is_valid(cols.fields[f]))
        good = pc.and_(good, attributable)
    good_np = good.to_numpy(zero_copy_only=False)
    if not good_np.all():
        bad_rows = np.flatnonzero(~good_np)
        reasons = _quarantine_reasons(cols, spec, bad_rows)
        contents = pc.take(texts(), pa.array(record_idx[bad_rows])).to_pylist()
        for row, reason, content in zip(bad_rows, reasons, contents, strict=True):
            quarantine.append(
                Quarantined(row=int(record_idx[row]) + 1, reason=reason, content=content)
            )
        quarantine.sort(key=lambda q: q.row)

    keep_idx = record_idx[good_np]
    m = len(keep_idx)
    all_good = m == n_records
    if all_good:
        out: dict[str, pa.Array] = dict(cols.fields)
        extra = cols.extra
    else:
        keep = pa.array(good_np)
        out = {name: pc.filter(values, keep) for name, values in cols.fields.items()}
        extra = {k: pc.filter(v, keep) for k, v in cols.extra.items()}
    out["extra"] = encode_extra(extra, m)
    obs = observed if observed.tzinfo is not None else observed.replace(tzinfo=UTC)
    out["time.observation"] = pa.repeat(pa.scalar(obs, pa.timestamp("us", tz="UTC")), m)
    out["feed.name"] = pa.repeat(pa.scalar(spec.feed_name), m)
    out["feed.provider"] = pa.repeat(pa.scalar(PROVIDER), m)
    out["report_type"] = pa.repeat(pa.scalar(report_type), m)
    out["_row"] = pa.array(keep_idx + 1, pa.int64())
    if keep_raw:
        records = texts() if all_good else pc.take(texts(), pa.array(keep_idx))
        out["raw"] = _base64_records(records, header_bytes + b"\n")
    events = conform(pa.table(out))
    return ParseResult(events=events, rows=n_records, quarantine=quarantine,
                       feed_name=spec.feed_name, report_type=report_type)


def _read_csv(
    data: bytes, multiline: bool, column_types: Mapping[str, pa.DataType]
) -> tuple[pa.Table, list[tuple[str, int, int]]]:
    """pyarrow's CSV reader; rows with a wrong column count are skipped and returned."""
    bad: list[tuple[str, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.text, row.actual_columns, row.expected_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=True, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=multiline, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(column_types),
                null_values=[""],
                true_values=_TRUE_VALUES,
                false_values=_FALSE_VALUES,
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise UnusableInput(f"not a readable CSV: {str(exc).splitlines()[0]}") from exc
    return table, bad


def _pad_records(header: str, texts: pa.Array, short: Mapping[str, int]) -> bytes:
    """The file rebuilt with the short records padded by empty trailing columns."""
    large = pa.large_string()
    keys = pa.array(list(short), large)
    pads = pa.array(["," * short[k] for k in short], large)
    suffix = pc.fill_null(pc.take(pads, pc.index_in(texts, value_set=keys)), pa.scalar("", large))
    lines = pc.binary_join_element_wise(texts, suffix, pa.scalar("\n", large), pa.scalar("", large))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    offsets = offsets[lines.offset : lines.offset + len(lines) + 1]
    data_buf = lines.buffers()[2]
    assert data_buf is not None
    chunk = memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])]
    return header.encode("utf-8") + b"\n" + bytes(chunk)


def split_records(data: bytes, max_rows: int) -> Iterator[bytes]:
    """Cut a report into pieces of at most `max_rows` records, each with the header line.

    Cuts fall on record boundaries: a line break ends a record only when the number of
    quotes before it is even (doubled quotes inside values keep the parity), so parsing the
    pieces gives the same records as parsing the whole file; each piece's `rows` tells the
    caller how far to shift the next piece's `_row`. Lets the pipeline stream a large
    report in bounded memory. Everything here is C-speed `bytes.find`/`count`: a scan of
    every byte in numpy cost more than parsing a piece.
    """
    header_end = data.find(b"\n")
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines <= max_rows + 1 or header_end < 0:
        yield data
        return
    header = data[:header_end + 1]
    start = header_end + 1
    step = base = max(int((len(data) - start) / max(lines - 1, 1) * max_rows), 1)
    while start < len(data):
        end = _record_end(data, start, start + step)
        n = data.count(b"\n", start, end)
        if n > max_rows and step > 1:  # longer rows than average: aim shorter, cut again
            step = max(int(step * max_rows / n * 0.95), 1)
            continue
        yield header + data[start:end]
        start, step = end, base


def _record_end(data: bytes, start: int, target: int) -> int:
    """The first record boundary at or after `target` (just past its LF), or the end."""
    pos = data.find(b"\n", min(target, len(data) - 1))
    quotes = data.count(b'"', start, pos + 1) if pos >= 0 else 0
    while pos >= 0 and quotes & 1:  # inside a quoted value: the record goes on
        nxt = data.find(b"\n", pos + 1)
        quotes += data.count(b'"', pos + 1, nxt + 1) if nxt >= 0 else 0
        pos = nxt
    return len(data) if pos < 0 else pos + 1
