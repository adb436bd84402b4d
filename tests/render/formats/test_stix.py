"""STIX 2.1 export: the bundle parses with stix2 and carries what the events say."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import stix2

from cwn.events.batch import conform
from cwn.ingest.intelmq import parse
from cwn.render.formats.stix import TLP_MARKINGS, write_stix

from .samples import jsonl, sample_files

OBSERVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SAMPLES = sample_files()


def _bundle(table: pa.Table, **kw: Any) -> tuple[bytes, Any]:
    out = io.BytesIO()
    assert write_stix(table, out, created=OBSERVED, **kw) == table.num_rows
    data = out.getvalue()
    return data, stix2.parse(data.decode(), allow_custom=True)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_parse(name: str) -> None:
    events = parse(jsonl(SAMPLES[name]), file_name="x", observed=OBSERVED).events
    _, bundle = _bundle(events)
    assert bundle.type == "bundle"
    kinds = [o.type for o in bundle.objects]
    assert kinds.count("identity") == 1
    per_event = kinds.count("observed-data") + kinds.count("indicator") + kinds.count("note")
    assert per_event == events.num_rows
    assert kinds.count("sighting") == kinds.count("indicator")


def _table(**cols: list[Any]) -> pa.Table:
    base: dict[str, Any] = {
        "time.source": pa.array([datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)] * len(
            next(iter(cols.values()))), pa.timestamp("us", tz="UTC")),
    }
    base.update(cols)
    return conform(pa.table(base))


def test_observed_data_with_traffic_labels_and_tlp() -> None:
    table = _table(**{
        "source.ip": ["192.0.2.1"], "source.port": pa.array([3389], pa.int32()),
        "destination.ip": ["2001:db8::1"], "protocol.transport": ["tcp"],
        "classification.taxonomy": ["vulnerable"],
        "classification.type": ["vulnerable-system"],
        "classification.identifier": ["accessible-rdp"], "tlp": ["AMBER+STRICT"],
        "severity": ["high"], "cve": ["CVE-2019-0708"],
    })
    _, bundle = _bundle(table, identity_name="NCSC-XX")
    by_type: dict[str, list[Any]] = {}
    for o in bundle.objects:
        by_type.setdefault(o.type, []).append(o)
    assert by_type["identity"][0].name == "NCSC-XX"
    od = by_type["observed-data"][0]
    assert od.labels == ["vulnerable", "vulnerable-system", "accessible-rdp"]
    assert od.object_marking_refs == [TLP_MARKINGS["AMBER+STRICT"]]
    assert od.created_by_ref == by_type["identity"][0].id
    assert od.external_references[0].external_id == "CVE-2019-0708"
    assert od.x_cwn_severity == "high"
    marking = by_type["marking-definition"][0]
    assert marking.id == TLP_MARKINGS["AMBER+STRICT"] and marking.name == "TLP:AMBER+STRICT"
    assert by_type["ipv4-addr"][0].value == "192.0.2.1"
    assert by_type["ipv6-addr"][0].value == "2001:db8::1"
    traffic = by_type["network-traffic"][0]
    assert traffic.src_port == 3389 and traffic.protocols == ["tcp"]
    assert traffic.src_ref == by_type["ipv4-addr"][0].id
    assert set(od.object_refs) == {by_type[k][0].id for k in
                                   ("ipv4-addr", "ipv6-addr", "network-traffic")}


def test_indicator_and_sighting_for_malicious_sources() -> None:
    table = _table(**{
        "source.url": ["http://bad.example/x'y"], "source.fqdn": ["bad.example"],
        "classification.taxonomy": ["malicious-code"],
        "classification.type": ["malware-distribution"], "tlp": ["GREEN"],
    })
    _, bundle = _bundle(table)
    ind = next(o for o in bundle.objects if o.type == "indicator")
    assert ind.pattern == "[url:value = 'http://bad.example/x\\'y']"
    assert ind.labels == ["malicious-code", "malware-distribution"]
    sighting = next(o for o in bundle.objects if o.type == "sighting")
    assert sighting.sighting_of_ref == ind.id
    assert sighting.object_marking_refs == [TLP_MARKINGS["GREEN"]]


def test_ids_are_stable() -> None:
    events = parse(jsonl(SAMPLES["shadowserver/scan_dns"]), file_name="x",
                   observed=OBSERVED).events
    first, _ = _bundle(events)
    again, _ = _bundle(events)
    strip = lambda d: [o for o in json.loads(d)["objects"]]  # noqa: E731
    assert strip(first) == strip(again)
