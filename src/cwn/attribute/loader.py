"""Load the attribution index from the database, cached on disk by registry version."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, func, select

from cwn.attribute.index import AssetIndex
from cwn.db.models import Asset, RegistryState

log = logging.getLogger(__name__)

COLUMNS = ("org_id", "type", "value", "ip_version", "ip_hi", "ip_lo", "prefixlen", "asn")
_SCHEMA = pa.schema([("org_id", pa.string()), ("type", pa.string()), ("value", pa.string()),
                     ("ip_version", pa.int8()), ("ip_hi", pa.int64()), ("ip_lo", pa.int64()),
                     ("prefixlen", pa.int16()), ("asn", pa.int64())])
CHUNK_ROWS = 500_000
CHILD_READER_MIN = 200_000
"""Assets from which a SQLite registry is read by a child process (starting one costs about
a second, reading a million assets in Python rows about four)."""
CHUNK_BYTES = 64 << 20


def registry_version(conn: Connection) -> int:
    v = conn.execute(select(RegistryState.version).where(RegistryState.id == 1)).scalar()
    return int(v or 0)


_ASSETS_SQL = f"SELECT {', '.join(COLUMNS)} FROM assets WHERE verified"


def _adbc_dump(db_path: str, out_path: str, answer: Any) -> None:
    """In a child process: read the registry version and the verified assets of a SQLite
    file through ADBC (Arrow filled in C) in one read transaction, write them as an Arrow
    IPC file and send the version back. A child, because ADBC brings its own copy of
    SQLite, and two copies in one process break SQLite's POSIX file locks (seen here:
    "disk I/O error")."""
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow.ipc as ipc

    with adbc.connect(db_path) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM registry_state WHERE id = 1")
        row = cur.fetchone()
        cur.execute(_ASSETS_SQL)
        table = cur.fetch_arrow_table()
        conn.rollback()
    table = table.cast(_SCHEMA) if table.num_rows else _SCHEMA.empty_table()
    with ipc.new_file(out_path, table.schema) as writer:
        writer.write_table(table)
    answer.send(int(row[0]) if row and row[0] is not None else 0)


def read_sqlite_in_child(db_path: str, scratch: Path, timeout: float = 600.0
                         ) -> tuple[int, pa.Table] | None:
    """(registry version, verified assets) read by a child process, about four times faster
    than Python rows for ten million assets; None when that is not possible here (the
    caller then reads them itself). One process, no pool: a child that cannot start is
    a fallback, never a retry loop."""
    import multiprocessing as mp
    import uuid

    import pyarrow.ipc as ipc

    try:
        import adbc_driver_sqlite  # noqa: F401
    except ImportError:
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f".assets-{uuid.uuid4().hex}.arrow"
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_adbc_dump, args=(db_path, str(out), send), daemon=True)
    try:
        child.start()
        send.close()
        version = receive.recv() if receive.poll(timeout) else None
        child.join(5)
        if version is None or child.exitcode != 0:
            raise RuntimeError(f"exit code {child.exitcode}")
        with ipc.open_file(pa.memory_map(str(out))) as reader:
            table = reader.read_all()
        return int(version), table
    except Exception as exc:  # the in-process reader is always there to fall back on
        log.warning("child asset reader failed (%s); reading in process", exc)
        if child.is_alive():
            child.kill()
        return None
    finally:
        receive.close()
        out.unlink(missing_ok=True)


def sqlite_file(engine: Engine) -> str | None:
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    return db if db and db != ":memory:" and Path(db).is_file() else None


def read_assets(conn: Connection) -> pa.Table:
    """All verified assets with the index columns, read in bulk (no ORM objects)."""
    if conn.dialect.name == "postgresql":
        return _read_pg(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        cur.execute(_ASSETS_SQL)
        batches = []
        while rows := cur.fetchmany(CHUNK_ROWS):
            cols = list(zip(*rows, strict=True))
            batches.append(pa.record_batch(
                [pa.array(c, type=f.type) for c, f in zip(cols, _SCHEMA, strict=True)],
                schema=_SCHEMA))
    finally:
        cur.close()
    return pa.Table.from_batches(batches, schema=_SCHEMA)


def _read_pg(conn: Connection) -> pa.Table:
    """COPY the verified assets out (text format) and parse it with Arrow in chunks of
    about 64 MB (in text format a raw newline always ends a row, so chunks split cleanly)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    sql = (f"COPY (SELECT {', '.join(COLUMNS)} FROM assets WHERE verified) TO STDOUT")
    parse = pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char="\\")
    # the escape is applied before null detection: NULL (\\N) arrives as "N"; only the
    # numeric columns can be null, the text ones never are
    convert = pacsv.ConvertOptions(column_types=_SCHEMA, null_values=["N"],
                                   strings_can_be_null=False)
    read = pacsv.ReadOptions(column_names=list(COLUMNS))
    tables: list[pa.Table] = []
    pending: list[bytes] = []
    size = 0

    def flush(data: bytes) -> None:
        if data:
            tables.append(pacsv.read_csv(io.BytesIO(data), read_options=read,
                                         parse_options=parse, convert_options=convert))

    with raw.cursor() as cur, cur.copy(sql) as copy:
        for data in copy:
            pending.append(bytes(data))
            size += len(data)
            if size >= CHUNK_BYTES:
                blob = b"".join(pending)
                cut = blob.rfind(b"\n") + 1
                flush(blob[:cut])
                pending, size = [blob[cut:]], len(blob) - cut
    flush(b"".join(pending))
    if not tables:
        return _SCHEMA.empty_table()
    return pa.concat_tables(tables).combine_chunks()


def build_from_table(assets: pa.Table, version: int) -> AssetIndex:
    c = assets.column
    return AssetIndex.build(c("org_id"), c("type"), c("value"), c("ip_version"), c("ip_hi"),
                            c("ip_lo"), c("prefixlen"), c("asn"), version=version)


def load_index(engine: Engine, cache_dir: Path | None = None) -> AssetIndex:
    """The index of the verified assets; reused from `cache_dir` when built from the current
    registry version, otherwise built from the database (and cached)."""
    with engine.connect() as conn:
        version = registry_version(conn)
        cached = cache_dir / f"v{version}" if cache_dir is not None else None
        if cached is not None and (cached / "meta.json").is_file():
            try:
                return AssetIndex.load(cached)
            except Exception as exc:  # a stale or damaged cache is rebuilt, not fatal
                log.warning("index cache %s unusable (%s); rebuilding", cached, exc)
        # read the assets in the same transaction as the version: the cache label is never
        # newer than its content
        db_file = sqlite_file(engine)
        big = db_file is not None and int(conn.execute(
            select(func.count()).select_from(Asset)).scalar() or 0) >= CHILD_READER_MIN
        child = read_sqlite_in_child(db_file, cache_dir or Path(db_file).parent) \
            if db_file is not None and big else None
        if child is not None:
            version, assets = child
            cached = cache_dir / f"v{version}" if cache_dir is not None else None
        else:
            assets = read_assets(conn)
    index = build_from_table(assets, version)
    del assets
    if cache_dir is not None and cached is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            index.save(cached)
        except OSError as exc:  # e.g. another process saved the same version concurrently
            log.warning("cannot cache the index in %s: %s", cached, exc)
            return index
        for old in cache_dir.glob("v*"):
            if old.name != cached.name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return index


__all__ = ["build_from_table", "load_index", "read_assets", "read_sqlite_in_child",
           "registry_version", "sqlite_file"]
