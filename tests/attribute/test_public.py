"""Owners from public data: every unregistered event gets the holder the RIPE Database,
the RIR statistics, the CSIRT directory or the BGP origin AS name — offline and in bulk."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from cwn.attribute.public import PublicAttribution, is_public_owner
from cwn.events.batch import EVENT_SCHEMA
from cwn.publicdata.csirts import import_csirts
from cwn.publicdata.pyasn import import_ipasn
from cwn.publicdata.ripe import import_ripe
from cwn.publicdata.store import PublicDataStore
from publicdata_samples import write_public_data


def _events(ips: list[str | None], orgs: list[str | None] | None = None,
            geo: list[str | None] | None = None) -> pa.Table:
    n = len(ips)
    cols = {name: [None] * n for name in EVENT_SCHEMA.names}
    cols["source.ip"] = ips
    cols["organization"] = orgs or [None] * n
    cols["source.geolocation.cc"] = geo or [None] * n
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


@pytest.fixture
def public(tmp_path: Path) -> PublicAttribution:
    paths = write_public_data(tmp_path / "src")
    store = PublicDataStore(tmp_path / "publicdata")
    import_ripe([paths["ripe"]], store)
    import_ipasn(paths["ipasn"], store)
    import_csirts(paths["csirts"], store)
    loaded = PublicAttribution.load(store)
    assert loaded is not None
    return loaded


CASES = [
    # address, owner, matched asset, kind
    ("198.51.100.10", "ripe:ORG-EI1-TEST", "198.51.100.0 - 198.51.100.255", "ripe"),
    ("198.51.100.66", "ripe:198.51.100.64 - 198.51.100.71", "198.51.100.64 - 198.51.100.71",
     "ripe"),
    ("203.0.113.5", "csirt:DE", "DE", "csirt"),
    ("192.0.2.9", "as:64501", "AS64501", "as"),
    ("100.64.0.1", None, None, None),
]


@pytest.mark.parametrize(("ip", "owner", "asset", "kind"), CASES)
def test_unregistered_addresses_get_their_public_owner(
        public: PublicAttribution, ip: str, owner: str | None, asset: str | None,
        kind: str | None) -> None:
    out = public.attribute(_events([ip])).to_pylist()[0]
    assert (out["organization"], out["matched_asset"], out["match_kind"]) == \
        (owner, asset, kind)


def test_registered_owners_and_events_without_an_address_are_left_alone(
        public: PublicAttribution) -> None:
    events = _events(["198.51.100.10", None, "198.51.100.11"], orgs=["acme", None, None])
    out = public.attribute(events).to_pylist()
    assert [e["organization"] for e in out] == ["acme", None, "ripe:ORG-EI1-TEST"]


def test_a_foreign_network_without_a_national_csirt_is_not_ours_to_tell(
        public: PublicAttribution) -> None:
    # No RIPE block, no AS route; the feed's geolocation says France; no French team.
    out = public.attribute(_events(["100.64.0.1"], geo=["FR"])).to_pylist()[0]
    assert out["organization"] is None


def test_origin_as_fills_a_missing_source_asn(public: PublicAttribution) -> None:
    out = public.attribute(_events(["192.0.2.9"])).to_pylist()[0]
    assert out["source.asn"] == 64501


def test_public_owner_ids_are_recognisable() -> None:
    assert all(is_public_owner(o) for o in ("ripe:ORG-X", "csirt:DE", "as:1"))
    assert not is_public_owner("acme")
