"""IntelMQ JSON events in: one JSON object per line (or a JSON array of them).

This is the format IntelMQ's file output writes and what `cwn.render.formats.intelmq`
exports, so CERTs running IntelMQ can feed cwn and cwn's own exports read back unchanged.

Lines are decoded one by one (that is inherent to the format), but in a single tight pass
that only sorts values into per-key lists; everything after that is column-wise: one Arrow
array per field, validated and typed by `cwn.events.normalise.normalise`.

Mapping of keys:

* IntelMQ field names (`source.ip`, `feed.name` ...) go to their catalogue columns;
* `extra.<key>` keys, and the members of a nested `extra` object, go into the `extra` JSON
  column (keys without the prefix, values keep their JSON types), except cwn's own fields,
  which IntelMQ spells under `extra.` and which get their columns back: `extra.severity`,
  `extra.cve`, `extra.organization`, `extra.matched_asset`, `extra.match_kind`,
  `extra.report_type` and `extra.fingerprint` (cwn's own spelling without `extra.` is
  accepted too);
* unknown keys go into `extra` under their own name, so nothing is dropped; `__type` is
  ignored (a line whose `__type` is not `Event` is quarantined).

A value a field rejects (say `source.port: "abc"`) is kept in `extra` as
`invalid.<field>` and the field stays empty, except for the fields an event is identified
by (`source.ip`, `source.fqdn`, `source.url`, `classification.*`): there a bad value
quarantines the line, as does a line with none of them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cwn.events.batch import EVENT_SCHEMA, conform
from cwn.events.fields import ATTRIBUTION_FIELDS, BY_EXPORT_NAME, Field, FieldType
from cwn.events.normalise import normalise
from cwn.ingest.result import ParseResult, Quarantined, UnusableInput

META_EXPORT: dict[str, Field] = {
    "extra.report_type": Field("report_type", FieldType.STRING, "cwn report type.",
                               intelmq_name="extra.report_type"),
    "extra.fingerprint": Field("fingerprint", FieldType.LOWER, "cwn finding fingerprint.",
                               intelmq_name="extra.fingerprint"),
}
"""cwn's meta columns that travel in IntelMQ exports (under `extra.`)."""

KEY_FIELDS: dict[str, Field] = {
    **{key: f for key, f in BY_EXPORT_NAME.items() if f.name != "extra"},
    **{f.export_name: f for f in ATTRIBUTION_FIELDS},
    **META_EXPORT,
}
"""IntelMQ key -> the column it fills (every column except `extra` and `_report`/`_row`)."""

EXTRA_COLUMN_KEYS: dict[str, Field] = {
    key.removeprefix("extra."): f for key, f in KEY_FIELDS.items() if key.startswith("extra.")
}
"""Keys inside `extra` that are cwn columns (`severity`, `cve`, `organization` ...)."""

IDENTITY_FIELDS: tuple[str, ...] = ("source.ip", "source.fqdn", "source.url")
CLASSIFICATION_FIELDS: tuple[str, ...] = (
    "classification.taxonomy", "classification.type", "classification.identifier",
)
_STRICT = frozenset(IDENTITY_FIELDS + CLASSIFICATION_FIELDS)
"""A rejected value in one of these quarantines the line instead of moving to `extra`."""

INVALID_PREFIX = "invalid."

_DUMP_OPTS = orjson.OPT_SORT_KEYS


def _target(key: str) -> tuple[Field | None, str | None]:
    """(column field, None) or (None, extra key) for one IntelMQ key."""
    f = KEY_FIELDS.get(key)
    if f is not None:
        return f, None
    if key.startswith("extra."):
        sub = key[6:]
        f = EXTRA_COLUMN_KEYS.get(sub)
        return (f, None) if f is not None else (None, sub)
    f = EXTRA_COLUMN_KEYS.get(key)  # cwn's own spelling: severity, cve, fingerprint ...
    if f is not None:
        return f, None
    return None, key


def dump_extra(obj: Mapping[str, Any]) -> str:
    """The canonical text of an `extra` object: compact JSON, keys sorted."""
    return orjson.dumps(obj, option=_DUMP_OPTS).decode()


def _as_text_array(values: list[Any]) -> pa.Array:
    """Arrow array for `normalise`; JSON numbers/booleans are fine as they are."""
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = pa.array([_text(v) for v in values], pa.string())
    if not (pa.types.is_string(arr.type) or pa.types.is_integer(arr.type)
            or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)
            or pa.types.is_null(arr.type)):
        arr = pa.array([_text(v) for v in values], pa.string())
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return orjson.dumps(v).decode()


class _Columns:
    """Values sorted into per-key (row index, value) lists, then built into a batch."""

    def __init__(self) -> None:
        self.n = 0
        self.keys: dict[str, tuple[list[int], list[Any]]] = {}
        self.bad: dict[int, str] = {}
        """row index -> reason, for rows already rejected while reading."""

    def add(self, record: Mapping[str, Any]) -> None:
        i = self.n
        self.n += 1
        keys = self.keys
        for key, value in record.items():
            if value is None:
                continue
            if key == "extra":
                if isinstance(value, str):
                    with contextlib.suppress(orjson.JSONDecodeError):
                        value = orjson.loads(value)
                if isinstance(value, dict):
                    for sub, v in value.items():
                        if v is None:
                            continue
                        slot = keys.get("extra." + sub)
                        if slot is None:
                            slot = keys["extra." + sub] = ([], [])
                        slot[0].append(i)
                        slot[1].append(v)
                    continue
            elif key == "__type":
                if value != "Event":
                    self.bad[i] = f"__type is {value!r}, not an IntelMQ Event"
                continue
            slot = keys.get(key)
            if slot is None:
                slot = keys[key] = ([], [])
            slot[0].append(i)
            slot[1].append(value)

    def skip(self, reason: str) -> None:
        """A row that could not be read at all (keeps row indexes aligned)."""
        self.bad[self.n] = reason
        self.n += 1

    def build(self, *, strict: bool) -> tuple[pa.Table, dict[int, str]]:
        """The conformed batch (all rows) and row index -> reason for rows to quarantine.

        `strict` applies the ingest rules (identity fields, something to attribute); without
        it every rejected value is kept in `extra` and no row is refused.
        """
        n = self.n
        columns: dict[str, pa.Array] = {}
        extras: list[dict[str, Any] | None] = [None] * n
        reasons: dict[int, str] = dict(self.bad)

        def to_extra(sub: str, idx: Sequence[int], vals: Sequence[Any]) -> None:
            for i, v in zip(idx, vals, strict=True):
                if v is None or v == "":
                    continue
                d = extras[i]
                if d is None:
                    d = extras[i] = {}
                d[sub] = v

        by_field: dict[str, tuple[Field, list[int], list[Any]]] = {}
        for key, (idx, vals) in self.keys.items():
            f, sub = _target(key)
            if f is None:
                assert sub is not None
                to_extra(sub, idx, vals)
                continue
            slot = by_field.get(f.name)
            if slot is None:
                by_field[f.name] = (f, list(idx), list(vals))
            else:  # the same column under two spellings: the later key wins per row
                merged = dict(zip(slot[1], slot[2], strict=True))
                merged.update(zip(idx, vals, strict=True))
                by_field[f.name] = (f, list(merged), list(merged.values()))

        for name, (f, idx, vals) in by_field.items():
            if len(idx) == n and idx == list(range(n)):
                full = vals
            else:
                full = [None] * n
                for i, v in zip(idx, vals, strict=True):
                    full[i] = v
            raw = _as_text_array(full)
            typed, invalid = normalise(f, raw)
            columns[name] = typed
            if pc.any(invalid).as_py():
                rows = pc.indices_nonzero(invalid).to_pylist()
                originals = [full[i] for i in rows]
                if strict and name in _STRICT:
                    for i, v in zip(rows, originals, strict=True):
                        reasons.setdefault(i, f"invalid {f.export_name}: {v!r}")
                else:
                    to_extra(INVALID_PREFIX + f.export_name, rows, originals)

        columns["extra"] = pa.array(
            [None if d is None else dump_extra(d) for d in extras], pa.string()
        )
        table = conform(pa.table(columns))

        if strict:
            has = None
            for name in IDENTITY_FIELDS + CLASSIFICATION_FIELDS:
                valid = pc.is_valid(table.column(name))
                has = valid if has is None else pc.or_(has, valid)
            assert has is not None
            if not pc.all(has).as_py():
                for i in pc.indices_nonzero(pc.invert(has)).to_pylist():
                    reasons.setdefault(
                        i, "nothing to attribute: no source.ip, source.fqdn, source.url "
                           "or classification")
        return table, reasons


def _decode_records(data: bytes) -> tuple[list[tuple[int, Any, str | None]], list[bytes] | None]:
    """(line number, parsed value, error) per non-blank line, and the lines (None for a
    JSON array, whose elements are numbered instead)."""
    body = data.removeprefix(b"\xef\xbb\xbf")
    stripped = body.strip()
    if not stripped:
        raise UnusableInput("empty file")
    if b"\x00" in body[:65536]:
        raise UnusableInput("binary content, not IntelMQ JSON")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnusableInput(f"not UTF-8 text (byte {exc.start}): not IntelMQ JSON") from exc

    if stripped[:1] in (b"[", b"{"):
        # A JSON array of events (or one pretty-printed event); JSON lines fail fast here.
        try:
            whole = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            whole = None
            if stripped[:1] == b"[" and b"\n" not in stripped:
                raise UnusableInput("invalid JSON array") from None
        if isinstance(whole, list):
            return [(i + 1, v, None) for i, v in enumerate(whole)], None
        if isinstance(whole, dict) and b"\n" in stripped:
            return [(1, whole, None)], None

    out: list[tuple[int, Any, str | None]] = []
    loads = orjson.loads
    lines = body.split(b"\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append((lineno, loads(line), None))
        except orjson.JSONDecodeError as exc:
            out.append((lineno, None, f"invalid JSON: {exc}"))
    return out, lines


def parse(
    data: bytes, *, file_name: str, observed: datetime, feed_name: str | None = None
) -> ParseResult:
    """Parse IntelMQ JSON events (JSON lines or a JSON array) into an event batch.

    `_row` is the 1-based line number (element number for a JSON array). `time.observation`
    defaults to `observed`, `feed.name` to `feed_name` where the event has none,
    `report_type` to `classification.identifier`. Raises `UnusableInput` when the file holds
    no JSON object at all.
    """
    del file_name  # the format carries no metadata in its name
    records, lines = _decode_records(data)
    if not any(isinstance(v, dict) for _, v, _ in records):
        if all(err is not None for _, _, err in records):
            raise UnusableInput("not JSON: no line parses as JSON")
        raise UnusableInput("no JSON objects: not IntelMQ events")

    cols = _Columns()
    for _, value, err in records:
        if err is not None:
            cols.skip(err)
        elif not isinstance(value, dict):
            cols.skip(f"not a JSON object but {type(value).__name__}")
        else:
            cols.add(value)
    table, reasons = cols.build(strict=True)

    obs = observed if observed.tzinfo is not None else observed.replace(tzinfo=UTC)
    fills: dict[str, pa.Array | pa.ChunkedArray] = {
        "time.observation": pc.coalesce(
            table.column("time.observation"), pa.scalar(obs, pa.timestamp("us", tz="UTC"))),
        "report_type": pc.coalesce(table.column("report_type"),
                                   table.column("classification.identifier")),
        "_row": pa.array([r[0] for r in records], pa.int64()),
    }
    if feed_name:
        fills["feed.name"] = pc.coalesce(table.column("feed.name"),
                                         pa.scalar(feed_name, pa.string()))
    for name, col in fills.items():
        table = table.set_column(EVENT_SCHEMA.get_field_index(name), name, col)

    quarantine: list[Quarantined] = []
    if reasons:
        for i in sorted(reasons):
            lineno, value, _ = records[i]
            content = (lines[lineno - 1].decode("utf-8", "replace").rstrip("\r")
                       if lines is not None else orjson.dumps(value).decode())
            quarantine.append(Quarantined(lineno, reasons[i], content))
        keep = pa.array([i not in reasons for i in range(table.num_rows)], pa.bool_())
        table = table.filter(keep)

    return ParseResult(
        events=table,
        rows=len(records),
        quarantine=quarantine,
        feed_name=feed_name or _most_common(table.column("feed.name").to_pylist()),
        report_type=_most_common(table.column("report_type").to_pylist()),
    )


def _most_common(values: Iterable[str | None]) -> str | None:
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def records_to_events(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a conformed batch from IntelMQ-style dicts without ingest rules or defaults.

    Used to read cwn's own exports back (CSV attachments): every value a field rejects is
    kept in `extra` as `invalid.<field>`, no row is refused, nothing is defaulted.
    """
    cols = _Columns()
    for rec in records:
        cols.add(rec)
    table, _ = cols.build(strict=False)
    return table


def columns_to_events(n: int, columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """Like `records_to_events`, from IntelMQ-keyed columns of `n` values each."""
    cols = _Columns()
    cols.n = n
    for key, values in columns.items():
        idx = [i for i, v in enumerate(values) if v is not None]
        cols.keys[key] = (idx, [values[i] for i in idx])
    table, _ = cols.build(strict=False)
    return table
