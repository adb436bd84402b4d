"""Event batches: Arrow tables whose columns are the catalogue's field names.

Every parser produces one of these, every later stage consumes one. Working on whole
columns (not dicts per event) is what makes ingest fast: see DESIGN.md decision 3.
"""

from __future__ import annotations

import pyarrow as pa

from cwn.events.fields import ATTRIBUTION_FIELDS, CATALOGUE

META_FIELDS: tuple[pa.Field, ...] = (
    pa.field("fingerprint", pa.string()),
    pa.field("report_type", pa.string()),
    pa.field("_report", pa.string()),
    pa.field("_row", pa.int64()),
)
"""cwn's bookkeeping: finding fingerprint, report type, raw file (sha256) and data row."""

EVENT_SCHEMA = pa.schema(
    [pa.field(f.name, f.arrow_type) for f in CATALOGUE]
    + [pa.field(f.name, f.arrow_type) for f in ATTRIBUTION_FIELDS]
    + list(META_FIELDS)
)
COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
_COLUMN_SET = frozenset(COLUMNS)


def conform(table: pa.Table) -> pa.Table:
    """Return `table` with exactly the event schema: missing columns null, types cast.

    Columns not in the schema are a bug in the producer (they belong in `extra`), so they
    raise instead of being silently dropped.
    """
    if table.schema.equals(EVENT_SCHEMA):
        return table
    unknown = set(table.column_names) - _COLUMN_SET
    if unknown:
        raise ValueError(f"not event fields (put them in extra): {sorted(unknown)}")
    n = table.num_rows
    arrays = []
    for field in EVENT_SCHEMA:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            arrays.append(col)
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def empty() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


def plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array, for kernels and conversions that want a plain Array."""
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
