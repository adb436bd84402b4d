"""Bulk loading: Arrow tables straight into the tables, on both backends."""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cwn.attribute.loader import load_index
from cwn.db.models import Asset, AuditEntry, Organization, RegistryState
from cwn.registry.exporter import export_registry
from cwn.registry.netaddr import parse_cidr


def test_bulk_load_inserts_everything_and_bumps_the_version(engine: Engine) -> None:
    from cwn.registry.bulk import load_bulk

    n = 1000
    orgs = pa.table({"id": [f"org{i:05d}" for i in range(n)],
                     "name": [f"Org {i}" for i in range(n)],
                     "kvk": [f"{i:08d}" for i in range(n)]})
    nets = [parse_cidr(f"10.{i // 256}.{i % 256}.0/24") for i in range(n)]
    v6 = parse_cidr("2001:db8:1::/48")
    assets = pa.table({
        "org_id": [f"org{i:05d}" for i in range(n)] + ["org00001", "org00002"],
        "type": ["cidr"] * n + ["cidr", "asn"],
        "value": [x.text for x in nets] + [v6.text, "AS64500"],
        "ip_version": [4] * n + [6, None],
        "ip_hi": [None] * n + [v6.ip_hi, None],
        "ip_lo": [x.ip_lo for x in nets] + [v6.ip_lo, None],
        "prefixlen": [24] * n + [48, None],
        "asn": [None] * (n + 1) + [64500],
    })

    load_bulk(engine, orgs, assets)

    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Organization)) == n
        assert s.scalar(select(func.count()).select_from(Asset)) == n + 2
        assert s.scalar(select(RegistryState.version)) == 1
        assert s.scalars(select(AuditEntry.action)).all() == ["bulk-load"]
        a = s.scalars(select(Asset).where(Asset.value == "2001:db8:1::/48")).one()
        assert (a.verified, a.verified_by, a.source, a.ip_hi) == (
            True, "operator-import", "import", v6.ip_hi)
        org = s.get(Organization, "org00007")
        assert org is not None and (org.kvk, org.language) == ("00000007", "nl")
        assert org.created_at is not None and org.created_at.tzinfo is not None
        exported = export_registry(s)
    assert len(exported["organizations"]) == n

    index = load_index(engine)
    assert index.size == n + 2 and index.version == 1
    out = index.attribute(pa.table({"source.ip": ["10.0.7.9", "2001:db8:1::1", None],
                                    "source.asn": pa.array([None, None, 64500], pa.int64())}))
    assert out.column("organization").to_pylist() == ["org00007", "org00001", "org00002"]
