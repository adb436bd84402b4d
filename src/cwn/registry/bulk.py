"""Bulk loading of very large registries (millions of organisations and assets).

The JSON importer diffs and audits every row; this loader appends Arrow tables straight into
`organizations` and `assets`: `executemany` in one transaction on SQLite, `COPY` (CSV written
by Arrow) on PostgreSQL. It is meant for an initial load or a benchmark: rows must not exist
yet (a duplicate key fails the whole load, nothing is written). One audit entry records the
load, and the registry version is bumped once.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, ForeignKeyConstraint, UniqueConstraint, insert
from sqlalchemy.schema import (
    AddConstraint,
    CreateIndex,
    DropConstraint,
    DropIndex,
    ExecutableDDLElement,
)

from cwn.db.base import utcnow
from cwn.db.bulk import insert_table
from cwn.db.models import AuditEntry, Organization
from cwn.registry.audit import bump_version

ORG_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.string(), "name": pa.string(), "kvk": pa.string(), "sector": pa.string(),
    "subsector": pa.string(), "sbi": pa.string(), "municipality": pa.string(),
    "province": pa.string(), "size": pa.string(), "maturity": pa.int16(),
    "language": pa.string(), "created_at": pa.timestamp("us", tz="UTC"),
    "updated_at": pa.timestamp("us", tz="UTC"),
}
ASSET_COLUMNS: dict[str, pa.DataType] = {
    "org_id": pa.string(), "type": pa.string(), "value": pa.string(),
    "ip_version": pa.int16(), "ip_hi": pa.int64(), "ip_lo": pa.int64(),
    "prefixlen": pa.int16(), "asn": pa.int64(), "verified": pa.bool_(),
    "verified_by": pa.string(), "source": pa.string(),
    "created_at": pa.timestamp("us", tz="UTC"),
}
_DEFAULTS: dict[str, Any] = {"language": "nl", "verified": True,
                             "verified_by": "operator-import", "source": "import"}
CHUNK_ROWS = 200_000


def _conform(table: pa.Table, columns: dict[str, pa.DataType], required: tuple[str, ...],
             what: str) -> pa.Table:
    unknown = set(table.column_names) - set(columns)
    if unknown:
        raise ValueError(f"{what}: unknown columns {sorted(unknown)}")
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{what}: missing required columns {missing}")
    now = pa.scalar(utcnow(), pa.timestamp("us", tz="UTC"))
    n = table.num_rows
    arrays = []
    for name, type_ in columns.items():
        if name in table.column_names:
            col = table.column(name)
            if col.type != type_:
                col = col.cast(type_)
            if name in _DEFAULTS and col.null_count:
                col = pc.fill_null(col, pa.scalar(_DEFAULTS[name], type_))
        elif name in ("created_at", "updated_at"):
            col = pa.chunked_array([pa.repeat(now, n)])
        elif name in _DEFAULTS:
            col = pa.chunked_array([pa.repeat(pa.scalar(_DEFAULTS[name], type_), n)])
        else:
            col = pa.chunked_array([pa.nulls(n, type_)])
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(list(columns.items())))


def load_bulk(engine: Engine, organizations: pa.Table, assets: pa.Table, *,
              actor: str = "bulk-load") -> None:
    """Append `organizations` and `assets` (Arrow tables named like the DB columns) in one
    transaction, then bump the registry version. Missing optional columns get the defaults
    (`language` nl; assets verified by `operator-import`, source `import`)."""
    orgs = _conform(organizations, ORG_COLUMNS, ("id", "name"), "organizations")
    assets = _conform(assets, ASSET_COLUMNS, ("org_id", "type", "value"), "assets")
    # key order: the B-tree indexes then grow at their right edge instead of at random pages
    orgs = orgs.sort_by([("id", "ascending")])
    assets = assets.sort_by([("org_id", "ascending"), ("type", "ascending"),
                             ("value", "ascending")])
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # memory for the index builds at the end
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
        deferred = _drop_secondary(conn)
        insert_table(conn, "organizations", orgs)
        insert_table(conn, "assets", assets)
        for ddl in deferred:
            conn.execute(ddl)
        conn.execute(insert(AuditEntry).values(
            at=utcnow(), actor=actor, action="bulk-load", entity="registry", entity_id="*",
            before=None,
            after={"organizations": orgs.num_rows, "assets": assets.num_rows}))
        bump_version(conn)


def _drop_secondary(conn: Connection) -> list[ExecutableDDLElement]:
    """Drop the secondary indexes (and on PostgreSQL the asset unique and foreign keys) of
    the two tables; returns the DDL that recreates them. Building an index once over sorted
    data is far faster than maintaining it row by row; it all happens in the load's
    transaction (PostgreSQL DDL is transactional), so a failed load restores them."""
    drops: list[ExecutableDDLElement] = []
    creates: list[ExecutableDDLElement] = []
    tables = Organization.metadata.tables
    for table in (tables["organizations"], tables["assets"]):
        for idx in sorted(table.indexes, key=lambda i: str(i.name)):
            drops.append(DropIndex(idx))
            creates.append(CreateIndex(idx))
    if conn.dialect.name == "postgresql":
        cons = [c for c in tables["assets"].constraints
                if isinstance(c, UniqueConstraint | ForeignKeyConstraint)]
        for c in sorted(cons, key=lambda c: isinstance(c, UniqueConstraint), reverse=True):
            drops.append(DropConstraint(c))
        for c in sorted(cons, key=lambda c: isinstance(c, ForeignKeyConstraint)):
            creates.append(AddConstraint(c))
    for ddl in drops:
        conn.execute(ddl)
    return creates
