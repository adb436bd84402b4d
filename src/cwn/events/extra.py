"""Vectorised encoding of `extra` columns into one JSON-object text column.

Sources carry arbitrary extra columns. Storing them as one JSON object per event keeps the
event schema fixed (so Parquet partitions and the database agree) while nothing is dropped.
Encoding is done column-wise with Arrow kernels: no Python loop per row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

_CONTROL = r"[\x00-\x1f]"


def _json_string(values: pa.Array) -> pa.Array:
    """JSON-quote a string array (nulls stay null)."""
    s = pc.replace_substring(values, "\\", "\\\\")
    s = pc.replace_substring(s, '"', '\\"')
    s = pc.replace_substring(s, "\n", "\\n")
    s = pc.replace_substring(s, "\r", "\\r")
    s = pc.replace_substring(s, "\t", "\\t")
    s = pc.replace_substring_regex(s, _CONTROL, " ")
    return pc.binary_join_element_wise('"', s, '"', "")


def _json_value(values: pa.Array) -> pa.Array:
    t = values.type
    if pa.types.is_boolean(t):
        return pc.if_else(values, "true", "false")
    if pa.types.is_integer(t):
        return pc.cast(values, pa.string())
    if pa.types.is_floating(t):
        finite = pc.is_finite(values)
        as_text = pc.cast(values, pa.string())
        # Arrow prints 77 for 77.0; keep JSON floats recognisable as floats.
        has_dot = pc.match_substring_regex(as_text, r"[.eE]")
        as_text = pc.if_else(has_dot, as_text, pc.binary_join_element_wise(as_text, ".0", ""))
        return pc.if_else(finite, as_text, pa.scalar(None, pa.string()))
    if pa.types.is_timestamp(t):
        return _json_string(pc.strftime(values, format="%Y-%m-%dT%H:%M:%S+00:00"))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        empty = pc.equal(values, "")
        values = pc.if_else(empty, pa.scalar(None, t), values)
        return _json_string(values)
    return _json_string(pc.cast(values, pa.string()))


def encode_extra(columns: Mapping[str, pa.Array | pa.ChunkedArray], length: int) -> pa.Array:
    """Encode named columns (keys without the `extra.` prefix) as JSON objects.

    Null and empty-string values are left out of the object, as IntelMQ does; a row with no
    values gets null rather than `{}`.
    """
    if not columns:
        return pa.nulls(length, pa.string())
    parts = []
    for key, col in columns.items():
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        member = pc.binary_join_element_wise(json.dumps(key), _json_value(arr), ":")
        # Each present member ends in a comma; absent ones become "". (Arrow's own
        # null_handling="skip" join is not used: it miscounts rows when all inputs are null.)
        parts.append(pc.fill_null(pc.binary_join_element_wise(member, ",", ""), ""))
    body = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    body = pc.replace_substring_regex(body, ",$", "")
    body = pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()), body)
    return pc.binary_join_element_wise("{", body, "}", "")
