"""Vectorised encoding of `extra` columns into one JSON-object text column.

Sources carry arbitrary extra columns. Storing them as one JSON object per event keeps the
event schema fixed (so Parquet partitions and the database agree) while nothing is dropped.
The encoding runs in DuckDB's `to_json` (C++, multi-threaded) over the Arrow columns: no
Python loop per row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cwn.events.timetext import iso_utc


def _prepare(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pa.types.is_timestamp(t):
        return iso_utc(arr)
    if pa.types.is_floating(t):
        return pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, t))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, t), arr)
    if pa.types.is_null(t):
        return arr
    if not (pa.types.is_integer(t) or pa.types.is_boolean(t)):
        return pc.cast(arr, pa.string())
    return arr


def encode_extra(columns: Mapping[str, pa.Array | pa.ChunkedArray], length: int) -> pa.Array:
    """Encode named columns (keys without the `extra.` prefix) as JSON objects.

    Null and empty-string values are left out of the object, as IntelMQ does; a row with no
    values gets null rather than `{}`. Columns empty in every row cost nothing.
    """
    prepared = {k: _prepare(v) for k, v in columns.items()}
    prepared = {k: v for k, v in prepared.items() if v.null_count < length}
    if not prepared or length == 0:
        return pa.nulls(length, pa.string())
    names = [f"c{i}" for i in range(len(prepared))]
    view = pa.Table.from_arrays(list(prepared.values()), names=names)
    # concat_ws skips NULL members, which is exactly "absent values are left out".
    members = ", ".join(
        "'" + json.dumps(key).replace("'", "''") + f":' || to_json({name})"
        for key, name in zip(prepared, names, strict=True))
    con = duckdb.connect()
    try:
        con.register("v", view)
        out = con.sql(
            f"SELECT NULLIF('{{' || concat_ws(',', {members}) || '}}', '{{}}') AS j FROM v"
        ).to_arrow_table()
    finally:
        con.close()
    return out.column("j").combine_chunks().cast(pa.string())
