"""Export formats for event batches: IntelMQ JSON lines, CSV and STIX 2.1.

Every writer takes event batches (a `pa.Table` with the event schema, or an iterable of them
for streaming large exports), writes bytes to a binary stream and returns the number of
events written. Field names are IntelMQ's (`Field.export_name`); cwn's own columns travel
under `extra.` (see `EXPORT_KEYS`). The bookkeeping columns `_report` and `_row` are never
exported.

Helpers shared by the writers live here: the export key per column and vectorised text and
JSON renderings of whole columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cwn.events.batch import COLUMNS, conform, plain
from cwn.events.timetext import iso_utc
from cwn.ingest.intelmq import KEY_FIELDS

EXPORT_KEYS: dict[str, str] = {f.name: key for key, f in KEY_FIELDS.items()}
"""Column name -> IntelMQ key, in column (catalogue) order, for every exported column but
`extra` (which is flattened into `extra.<key>`). Includes `report_type` ->
`extra.report_type` and `fingerprint` -> `extra.fingerprint`."""
EXPORT_KEYS = {c: EXPORT_KEYS[c] for c in COLUMNS if c in EXPORT_KEYS}

CHUNK_ROWS = 65_536
"""Rows rendered at once: bounds memory and keeps string arrays far below 2 GiB."""

_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def iter_chunks(batches: pa.Table | Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The batches conformed to the event schema and cut into chunks of `CHUNK_ROWS`."""
    if isinstance(batches, pa.Table):
        batches = (batches,)
    for table in batches:
        table = conform(table)
        for start in range(0, table.num_rows, CHUNK_ROWS):
            yield table.slice(start, CHUNK_ROWS)


def text_values(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The IntelMQ text form of a column (nulls stay null).

    Timestamps as `2010-02-10T00:00:00+00:00` (with `.ffffff` only when there are
    microseconds, like Python's `isoformat`), floats always with a decimal point or an
    exponent (`77.0`), booleans `true`/`false`, non-finite floats null.
    """
    arr = plain(col)
    t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t):
        return arr.cast(pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "true", "false")
    if pa.types.is_integer(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(t):
        text = pc.cast(arr, pa.string())
        has_dot = pc.match_substring_regex(text, r"[.eE]")
        text = pc.if_else(has_dot, text, pc.binary_join_element_wise(text, ".0", ""))
        return pc.if_else(pc.is_finite(arr), text, pa.scalar(None, pa.string()))
    if pa.types.is_timestamp(t):
        return iso_utc(arr)
    return pc.cast(arr, pa.string())


def json_values(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as JSON text, exactly as `orjson.dumps` writes it (nulls stay null)."""
    arr = plain(col)
    t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return text_values(arr)
    text = text_values(arr)
    quoted = pc.binary_join_element_wise('"', text, '"', "")
    needs = pc.fill_null(pc.match_substring_regex(text, _NEEDS_ESCAPE), False)
    if pc.any(needs).as_py():
        idx = pc.indices_nonzero(needs)
        escaped = [orjson.dumps(v).decode() for v in pc.take(text, idx).to_pylist()]
        quoted = pc.replace_with_mask(quoted, needs, pa.array(escaped, pa.string()))
    return quoted
