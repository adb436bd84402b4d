"""A stable fingerprint per finding, so the same exposure seen again maps to one case.

A finding is *what* was seen *where*: the classification and the affected endpoint. Time,
feed and extras are left out on purpose: a daily scan report that sees the same open RDP
port again must produce the same fingerprint. Computed in bulk with DuckDB's md5.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

FINGERPRINT_FIELDS: tuple[str, ...] = (
    "classification.taxonomy",
    "classification.type",
    "classification.identifier",
    "source.ip",
    "source.port",
    "protocol.transport",
    "source.fqdn",
    "source.url",
    "destination.ip",
    "destination.port",
    "malware.name",
)


def fingerprints(table: pa.Table) -> pa.Array:
    """Hex md5 over the finding fields, in the catalogue's canonical text form."""
    cols = [c for c in FINGERPRINT_FIELDS if c in table.column_names]
    view = table.select(cols).rename_columns([f"c{i}" for i in range(len(cols))])
    parts = " , ".join(f"coalesce(CAST(c{i} AS VARCHAR), '')" for i in range(len(cols)))
    con = duckdb.connect()
    try:
        con.register("v", view)
        out = con.sql(f"SELECT md5(concat_ws('|', {parts})) AS fp FROM v").to_arrow_table()
    finally:
        con.close()
    return out.column("fp").combine_chunks()
