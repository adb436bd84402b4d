"""Loading the index from the database: verified assets only, cached by registry version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cwn.attribute.loader import load_index
from cwn.db.models import Asset
from cwn.registry.format import parse_document
from cwn.registry.importer import import_registry
from cwn.registry.netaddr import parse_cidr

EVENTS = pa.table({"source.ip": ["192.0.2.1", "2001:db8:5::1", "198.51.100.1", None],
                   "source.fqdn": [None, None, None, "www.acme.nl"]})


def load(engine: Engine, *orgs: dict[str, Any]) -> None:
    with Session(engine) as s, s.begin():
        import_registry(s, parse_document({"organizations": list(orgs)}), actor="test")


def owners(engine: Engine, cache: Path | None = None) -> list[str | None]:
    return load_index(engine, cache).attribute(EVENTS).column("organization").to_pylist()


def test_the_index_reads_the_registry(engine: Engine) -> None:
    load(engine, {"id": "acme", "name": "Acme",
                  "assets": [{"type": "cidr", "value": "192.0.2.0/24"},
                             {"type": "cidr", "value": "2001:db8::/32"},
                             {"type": "domain", "value": "acme.nl"}]})
    idx = load_index(engine)
    assert (idx.size, idx.version) == (3, 1)
    assert owners(engine) == ["acme", "acme", None, "acme"]


def test_unverified_assets_never_attribute(engine: Engine) -> None:
    load(engine, {"id": "acme", "name": "Acme"})
    net = parse_cidr("198.51.100.0/24")
    with Session(engine) as s, s.begin():
        s.add(Asset(org_id="acme", type="cidr", value=net.text, ip_version=4, ip_lo=net.ip_lo,
                    prefixlen=net.prefixlen, verified=False, source="portal"))
        s.add(Asset(org_id="acme", type="domain", value="acme.nl", verified=False,
                    source="portal"))
    assert owners(engine) == [None, None, None, None]


def test_the_index_rebuilds_after_a_registry_change(engine: Engine, tmp_path: Path) -> None:
    cache = tmp_path / "index"
    assert owners(engine, cache) == [None, None, None, None]  # empty registry, version 0
    load(engine, {"id": "acme", "name": "Acme",
                  "assets": [{"type": "cidr", "value": "192.0.2.0/24"}]})
    assert owners(engine, cache) == ["acme", None, None, None]
    assert [p.name for p in cache.iterdir()] == ["v1"]

    load(engine, {"id": "acme", "name": "Acme",
                  "assets": [{"type": "cidr", "value": "198.51.100.0/24"}]},
         {"id": "beta", "name": "Beta", "assets": [{"type": "domain", "value": "acme.nl"}]})
    assert owners(engine, cache) == [None, None, "acme", "beta"]
    assert [p.name for p in cache.iterdir()] == ["v2"]


def test_an_unchanged_registry_reuses_the_cached_index(engine: Engine, tmp_path: Path) -> None:
    load(engine, {"id": "acme", "name": "Acme",
                  "assets": [{"type": "cidr", "value": "192.0.2.0/24"}]})
    cache = tmp_path / "index"
    load_index(engine, cache)
    meta = cache / "v1" / "meta.json"
    stamp = meta.stat().st_mtime_ns
    again = load_index(engine, cache)
    assert meta.stat().st_mtime_ns == stamp and again.version == 1 and again.size == 1


def test_a_damaged_cache_is_rebuilt(engine: Engine, tmp_path: Path) -> None:
    load(engine, {"id": "acme", "name": "Acme",
                  "assets": [{"type": "cidr", "value": "192.0.2.0/24"}]})
    cache = tmp_path / "index"
    load_index(engine, cache)
    (cache / "v1" / "arrays.npz").write_bytes(b"garbage")
    assert owners(engine, cache)[0] == "acme"


def test_reading_in_small_chunks_gives_the_same_index(
    engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cwn.attribute.loader as loader

    nets = [{"type": "cidr", "value": f"10.{i}.0.0/16"} for i in range(50)]
    load(engine, {"id": "acme", "name": "Acme", "assets": [
        *nets, {"type": "asn", "value": 7}, {"type": "cidr", "value": "2001:db8::/32"}]})
    monkeypatch.setattr(loader, "CHUNK_BYTES", 100)
    monkeypatch.setattr(loader, "CHUNK_ROWS", 7)
    with engine.connect() as conn:
        table = loader.read_assets(conn)
    assert table.num_rows == 52
    assert sorted(table.column("asn").drop_null().to_pylist()) == [7]
    assert sorted(table.column("value").to_pylist())[:2] == ["10.0.0.0/16", "10.1.0.0/16"]


def test_a_large_sqlite_registry_is_read_by_a_child_process_with_the_same_result(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cwn.attribute import loader

    if engine.dialect.name != "sqlite":
        pytest.skip("the child reader is for SQLite files")
    load(engine, {"id": "acme", "name": "Acme",
                  "assets": [{"type": "cidr", "value": "192.0.2.0/24"},
                             {"type": "cidr", "value": "2001:db8::/32"},
                             {"type": "asn", "value": 64500},
                             {"type": "domain", "value": "acme.nl"}]})
    db_file = loader.sqlite_file(engine)
    assert db_file is not None
    child = loader.read_sqlite_in_child(db_file, tmp_path)
    assert child is not None
    with engine.connect() as conn:
        in_process = loader.read_assets(conn)
    assert child[0] == 1
    assert child[1].sort_by("value").equals(in_process.sort_by("value"))
    monkeypatch.setattr(loader, "CHILD_READER_MIN", 1)  # take the child path in load_index
    assert owners(engine, tmp_path / "cache") == ["acme", "acme", None, "acme"]
    assert not list(tmp_path.glob(".assets-*"))  # the scratch file is gone
