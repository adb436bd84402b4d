"""STIX 2.1 bundles in: every network observable an indicator or observation names becomes
one event; everything else in a bundle is context (malware name, TLP, provider) or ignored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

from cwn.config import Settings
from cwn.db.models import Report
from cwn.events.batch import EVENT_SCHEMA
from cwn.ingest.detect import detect
from cwn.ingest.result import UnusableInput
from cwn.ingest.stix import parse, pattern_observables
from cwn.registry.format import RegistryDocument
from cwn.registry.importer import import_registry
from cwn.wiring import Services, build

OBSERVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# file -> (STIX objects, events, sorted (field, value) of the events); read off the samples.
SAMPLES: dict[str, tuple[int, int, list[tuple[str, Any]]]] = {
    "apt1.json": (76, 7, [
        ("source.fqdn", "arrowservice.net"), ("source.fqdn", "hugesoft.org"),
        ("source.fqdn", "msnhome.org"), ("source.network", "112.64.0.0/15"),
        ("source.network", "139.226.0.0/15"), ("source.network", "223.166.0.0/15"),
        ("source.network", "58.246.0.0/15")]),
    "indicator-for-c2-ip-address.json": (1, 1, [("source.ip", "10.0.0.0")]),
    # the file-hash indicator has no network observable
    "indicators-for-C2-with-COA.json": (8, 1, [("source.ip", "10.0.0.0")]),
    # observables only tied to infrastructure objects: neither indicator nor observed-data
    "infrastructure.json": (10, 0, []),
    # e-mail subject / attachment name patterns: nothing cwn can route
    "malicious-email-indicator-with-attachment.json": (6, 0, []),
    # indicator and observed-data name the same domain: one event; an observation of
    # AS174 alone: an event about the AS
    "misp-stix_test_event1_stix21.json": (9, 2, [("source.asn", 174),
                                                 ("source.fqdn", "circl.lu")]),
}
VALUE_FIELDS = ("source.ip", "source.network", "source.fqdn", "source.url", "source.account",
                "source.asn")


def _parse(doc: Any, **kw: Any):  # type: ignore[no-untyped-def]
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse(data, file_name="bundle.json", observed=OBSERVED, **kw)


def _values(table: pa.Table) -> list[tuple[str, Any]]:
    """Each event's value: the first of VALUE_FIELDS it has (an AS number can also stand
    beside an address, as the address's AS)."""
    out = []
    for row in table.to_pylist():
        out.append(next((k, row[k]) for k in VALUE_FIELDS if row[k] is not None))
    return sorted(out)


def test_every_sample_file_has_expectations(shared_data: Path) -> None:
    assert sorted(p.name for p in (shared_data / "stix21").glob("*.json")) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_bundles(shared_data: Path, name: str) -> None:
    data = (shared_data / "stix21" / name).read_bytes()
    assert detect(data, name).parser == "stix"
    result = _parse(data)
    rows, events, values = SAMPLES[name]
    assert result.events.schema == EVENT_SCHEMA
    assert (result.rows, result.events.num_rows, result.quarantine) == (rows, events, [])
    assert _values(result.events) == values
    assert result.report_type == "stix"
    assert set(result.events.column("report_type").to_pylist()) <= {"stix"}
    assert result.events.column("time.observation").to_pylist() == [OBSERVED] * events


def test_c2_indicator_becomes_one_classified_event(shared_data: Path) -> None:
    data = (shared_data / "stix21" / "indicator-for-c2-ip-address.json").read_bytes()
    [row] = _parse(data, feed_name="partner-cert").events.to_pylist()
    assert row["source.ip"] == "10.0.0.0"
    assert (row["classification.taxonomy"], row["classification.type"],
            row["classification.identifier"]) == (
        "malicious-code", "c2-server", "IP Address for known C2 channel")
    assert row["time.source"] == datetime(2014, 5, 8, 9, 0, tzinfo=UTC)
    assert row["event_description.text"] == "Test description C2 channel."
    assert row["feed.name"] == "partner-cert"
    assert row["tlp"] is None  # unmarked: the pipeline's default applies
    assert row["_row"] == 1
    assert json.loads(row["extra"]) == {
        "stix_id": "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
        "stix_type": "indicator", "stix_bundle": "bundle--44af6c39-c09b-49c5-9de2-394224b04982"}


def test_the_malware_an_indicator_indicates_is_the_identifier(shared_data: Path) -> None:
    data = (shared_data / "stix21" / "indicators-for-C2-with-COA.json").read_bytes()
    [row] = _parse(data).events.to_pylist()
    assert (row["classification.identifier"], row["malware.name"]) == ("Poison Ivy",
                                                                       "poison ivy")
    assert row["feed.provider"] == "The MITRE Corporation - DHS Support Team"
    assert row["_row"] == 3


def test_apt1_networks_and_domains(shared_data: Path) -> None:
    rows = _parse((shared_data / "stix21" / "apt1.json").read_bytes()).events.to_pylist()
    nets = [r for r in rows if r["source.network"]]
    assert {r["classification.identifier"] for r in nets} == {
        "HUC Packet Transmit Tool (HTRAN)"}
    fqdn = next(r for r in rows if r["source.fqdn"] == "hugesoft.org")
    assert (fqdn["classification.taxonomy"], fqdn["classification.type"],
            fqdn["classification.identifier"]) == ("malicious-code", "malware",
                                                   "FQDN hugesoft.org")
    assert fqdn["time.source"] == datetime(2015, 5, 15, 9, 12, 16, 432678, tzinfo=UTC)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[ipv4-addr:value = '198.51.100.1']", [("ipv4-addr", "198.51.100.1")]),
    ("[ipv4-addr:value = '198.51.100.1' OR ipv6-addr:value = '2001:db8::1'] AND "
     "[domain-name:value = 'evil.example']",
     [("ipv4-addr", "198.51.100.1"), ("ipv6-addr", "2001:db8::1"),
      ("domain-name", "evil.example")]),
    ("([url:value='http://x.example/a?b=1'] FOLLOWEDBY [email-addr:value = 'a@x.example'])"
     " WITHIN 300 SECONDS", [("url", "http://x.example/a?b=1"), ("email-addr", "a@x.example")]),
    (r"[url:value = 'http://x.example/it\'s' AND file:name = 'a\\b']",
     [("url", "http://x.example/it's")]),
    ("[domain-name:value IN ('a.example', 'b.example', 'a.example')]",
     [("domain-name", "a.example"), ("domain-name", "b.example")]),
    ("[ipv4-addr:value ISSUBSET '203.0.113.0/24']", [("ipv4-addr", "203.0.113.0/24")]),
    # negations, other operators, other paths and text inside literals are not observables
    ("[ipv4-addr:value != '198.51.100.1' AND ipv4-addr:value NOT = '198.51.100.2']", []),
    ("[domain-name:value MATCHES '^evil' OR domain-name:resolves_to_refs[*].value = "
     "'198.51.100.3']", []),
    ("[file:name = 'ipv4-addr:value = \\'198.51.100.4\\'']", []),
    ("[network-traffic:dst_port = 443 AND x509-certificate:issuer = 'CN=x']", []),
    ("not a pattern at all", []),
    # an AS is named by its number, an integer
    ("[autonomous-system:number = 64496]", [("autonomous-system", "64496")]),
    ("[autonomous-system:number IN (64496, 64497)] OR [ipv4-addr:value = '198.51.100.1']",
     [("autonomous-system", "64496"), ("autonomous-system", "64497"),
      ("ipv4-addr", "198.51.100.1")]),
    ("[autonomous-system:number = '64496' OR autonomous-system:name = 'EVIL-AS']", []),
    ("[ipv4-addr:value = 64496]", []),
])
def test_pattern_scanner(pattern: str, expected: list[tuple[str, str]]) -> None:
    assert pattern_observables(pattern) == expected


def _indicator(n: int, pattern: str, **kw: Any) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1",
            "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
            "created": "2024-01-02T03:04:05.000Z", "modified": "2024-01-02T03:04:05.000Z",
            "pattern": pattern, "pattern_type": "stix", **kw}


def _bundle(*objects: dict[str, Any]) -> dict[str, Any]:
    return {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000",
            "objects": list(objects)}


TLP2_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
TLP1_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
OWN_RED = "marking-definition--11111111-1111-4111-8111-111111111111"


def test_addresses_networks_urls_accounts_and_tlp() -> None:
    own_red = {"type": "marking-definition", "spec_version": "2.1", "id": OWN_RED,
               "created": "2022-10-01T00:00:00.000Z", "name": "TLP:RED",
               "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
                   "extension_type": "property-extension", "tlp_2_0": "red"}}}
    result = _parse(_bundle(
        own_red,
        _indicator(1, "[ipv4-addr:value = '198.51.100.7/32' OR ipv4-addr:value = "
                      "'198.51.100.0/24']", indicator_types=["compromised"],
                   valid_from="2024-02-01T00:00:00Z", object_marking_refs=[TLP1_GREEN]),
        _indicator(2, "[ipv6-addr:value = '2001:DB8::1/128'] OR [url:value = "
                      "'http://phish.example/login']", indicator_types=["malicious-activity"],
                   name="Phishing kit", object_marking_refs=[TLP1_GREEN, TLP2_AMBER]),
        _indicator(3, "[email-addr:value = 'ceo@bad.example']", object_marking_refs=[OWN_RED]),
    ))
    assert result.quarantine == [] and result.rows == 4
    rows = {next(r[k] for k in VALUE_FIELDS if r[k]): r for r in result.events.to_pylist()}
    assert set(rows) == {"198.51.100.7", "198.51.100.0/24", "2001:db8::1",
                         "http://phish.example/login", "ceo@bad.example"}
    assert rows["198.51.100.7"]["source.ip"] == "198.51.100.7"
    assert rows["198.51.100.0/24"]["source.network"] == "198.51.100.0/24"
    assert rows["2001:db8::1"]["source.ip"] == "2001:db8::1"
    assert rows["ceo@bad.example"]["source.account"] == "ceo@bad.example"
    assert {v: r["tlp"] for v, r in rows.items()} == {
        "198.51.100.7": "GREEN", "198.51.100.0/24": "GREEN", "2001:db8::1": "AMBER",
        "http://phish.example/login": "AMBER", "ceo@bad.example": "RED"}
    assert (rows["198.51.100.7"]["classification.taxonomy"],
            rows["198.51.100.7"]["classification.type"]) == ("intrusions", "system-compromise")
    assert rows["198.51.100.7"]["time.source"] == datetime(2024, 2, 1, tzinfo=UTC)
    assert (rows["2001:db8::1"]["classification.taxonomy"],
            rows["2001:db8::1"]["classification.type"],
            rows["2001:db8::1"]["classification.identifier"]) == ("fraud", "phishing",
                                                                  "Phishing kit")
    # no indicator_types and no name: seen, not judged; time from `created`
    assert (rows["ceo@bad.example"]["classification.taxonomy"],
            rows["ceo@bad.example"]["classification.type"],
            rows["ceo@bad.example"]["classification.identifier"]) == (
        "other", "undetermined", "stix-indicator")
    assert rows["ceo@bad.example"]["time.source"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert [r["_row"] for r in result.events.to_pylist()] == [2, 2, 3, 3, 4]


def test_observed_data_by_reference_and_embedded() -> None:
    ip = {"type": "ipv4-addr", "spec_version": "2.1",
          "id": "ipv4-addr--00000000-0000-4000-8000-000000000001", "value": "192.0.2.9",
          "object_marking_refs": [TLP2_AMBER]}
    asn = {"type": "autonomous-system", "spec_version": "2.1",
           "id": "autonomous-system--00000000-0000-4000-8000-000000000002", "number": 64500}
    observed = {"type": "observed-data", "spec_version": "2.1",
                "id": "observed-data--00000000-0000-4000-8000-000000000003",
                "created": "2024-01-01T00:00:00Z", "first_observed": "2024-03-01T10:00:00Z",
                "last_observed": "2024-03-01T11:00:00Z", "number_observed": 2,
                "object_refs": [ip["id"], asn["id"], "ipv4-addr--missing"],
                "object_marking_refs": [TLP1_GREEN]}
    legacy = {"type": "observed-data", "spec_version": "2.1",
              "id": "observed-data--00000000-0000-4000-8000-000000000004",
              "created": "2024-01-01T00:00:00Z", "first_observed": "2024-03-02T00:00:00Z",
              "last_observed": "2024-03-02T00:00:00Z", "number_observed": 1,
              "objects": {"0": {"type": "domain-name", "value": "Seen.Example"},
                          "1": {"type": "url", "value": "http://seen.example/x"},
                          "2": {"type": "domain-name", "value": "indicated.example"}}}
    indicator = _indicator(5, "[domain-name:value = 'indicated.example']",
                           indicator_types=["malicious-activity"])
    result = _parse(_bundle(ip, asn, observed, legacy, indicator))
    rows = result.events.to_pylist()
    assert _values(result.events) == [("source.fqdn", "indicated.example"),
                                      ("source.fqdn", "seen.example"),
                                      ("source.ip", "192.0.2.9"),
                                      ("source.url", "http://seen.example/x")]
    by_ip = next(r for r in rows if r["source.ip"])
    assert by_ip["source.asn"] == 64500  # the observation's one AS: the address's AS
    assert by_ip["tlp"] == "AMBER"  # the stricter of the observation and the address
    assert by_ip["time.source"] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert (by_ip["classification.taxonomy"], by_ip["classification.type"],
            by_ip["classification.identifier"]) == ("other", "undetermined",
                                                    "stix-observed-data")
    assert json.loads(by_ip["extra"])["stix_id"] == observed["id"]
    indicated = next(r for r in rows if r["source.fqdn"] == "indicated.example")
    assert json.loads(indicated["extra"])["stix_type"] == "indicator"


def test_what_is_skipped_and_what_is_quarantined() -> None:
    result = _parse([  # a bare list of STIX objects is read like a bundle
        _indicator(1, "[ipv4-addr:value = '198.51.100.1']", indicator_types=["benign"]),
        _indicator(2, "[ipv4-addr:value = '198.51.100.2']", revoked=True),
        _indicator(3, "alert tcp any any -> 198.51.100.3 any", pattern_type="snort"),
        _indicator(4, "[ipv4-addr:value = '999.1.1.1' OR domain-name:value = 'ok.example']",
                   indicator_types=["malicious-activity"]),
        {"type": "malware", "spec_version": "2.1", "is_family": True, "name": "x",
         "id": "malware--00000000-0000-4000-8000-000000000009"},
    ])
    assert result.rows == 5
    assert _values(result.events) == [("source.fqdn", "ok.example")]
    [q] = result.quarantine
    assert (q.row, q.reason) == (4, "invalid source.ip: '999.1.1.1'")
    assert json.loads(q.content or "")["id"].endswith("000000000004")


def test_a_bundle_without_observables_is_an_empty_report() -> None:
    result = _parse(_bundle())
    assert (result.rows, result.events.num_rows, result.quarantine) == (0, 0, [])
    assert result.events.schema == EVENT_SCHEMA


@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "invalid JSON"),
    (b'{"source.ip": "192.0.2.1", "classification.type": "spam"}', "not a STIX"),
    (b"", "empty"),
])
def test_unusable_input(data: bytes, message: str) -> None:
    with pytest.raises(UnusableInput, match=message):
        _parse(data)


def test_detection_tells_stix_from_intelmq() -> None:
    bundle = json.dumps(_bundle(_indicator(1, "[ipv4-addr:value = '198.51.100.1']")))
    assert detect(bundle.encode(), "x.json").parser == "stix"
    assert detect(json.dumps([_indicator(1, "[x:y = 'z']")]).encode(), "x.json").parser \
        == "stix"
    assert detect(b'{"source.ip": "192.0.2.1"}\n', "events.json").parser == "intelmq"
    assert detect(b'[{"source.ip": "192.0.2.1", "type": "bundle"}]', "e.json").parser \
        == "intelmq"
    # broken JSON that looks like a bundle keeps the IntelMQ parser's one-line error
    assert detect(b'{"type": "bundle", "objects": [', "x.json").parser == "intelmq"


# -- through the real pipeline -------------------------------------------------------------


@pytest.fixture
def svc(settings: Settings) -> Iterator[Services]:
    s = build(settings)
    yield s
    s.close()


def _registry(svc: Services) -> None:
    doc = {"organizations": [
        {"id": "lab", "name": "Lab network", "language": "en",
         "assets": [{"type": "cidr", "value": "10.0.0.0/24"}]},
        {"id": "circl", "name": "Circl", "language": "en",
         "assets": [{"type": "domain", "value": "circl.lu"}]},
        {"id": "transit", "name": "Transit AS", "language": "en",
         "assets": [{"type": "asn", "value": "AS174"}]}]}
    with svc.sessions.begin() as session:
        import_registry(session, RegistryDocument.model_validate(doc), actor="test")


def test_sample_bundles_through_the_pipeline_are_attributed(
        svc: Services, shared_data: Path, tmp_path: Path) -> None:
    _registry(svc)
    feeds = tmp_path / "stix"
    shutil.copytree(shared_data / "stix21", feeds)

    summary = svc.pipeline().ingest_paths([feeds], feed="partner-cert")

    by_name = {Path(f.path).name: f for f in summary.files}
    assert set(by_name) == set(SAMPLES)
    for name, (rows, events, _) in SAMPLES.items():
        out = by_name[name]
        assert (out.status, out.parser, out.report_type) == ("ingested", "stix", "stix"), name
        assert (out.rows, out.events, out.quarantined) == (rows, events, 0), name
    c2 = by_name["indicator-for-c2-ip-address.json"]
    assert (c2.attributed, c2.top_orgs) == (1, {"lab": 1})
    assert by_name["indicators-for-C2-with-COA.json"].top_orgs == {"lab": 1}
    misp = by_name["misp-stix_test_event1_stix21.json"]
    assert (misp.attributed, misp.top_orgs) == (2, {"circl": 1, "transit": 1})
    assert by_name["apt1.json"].attributed == 0

    table = pa.concat_tables(list(svc.events.scan()))
    assert table.num_rows == sum(e for _, e, _ in SAMPLES.values())
    ours = [r for r in table.to_pylist() if r["source.ip"] == "10.0.0.0"]
    assert {(r["organization"], r["matched_asset"], r["tlp"], r["severity"], r["feed.name"])
            for r in ours} == {("lab", "10.0.0.0/24", "AMBER", "high", "partner-cert")}
    assert table.column("fingerprint").null_count == 0
    with svc.engine.connect() as conn:
        stored = conn.execute(select(Report.parser, Report.report_type, Report.events)
                              .where(Report.file_name == "apt1.json")).one()
    assert tuple(stored) == ("stix", "stix", 7)


def test_a_tlp_marked_bundle_keeps_its_tlp_and_reparses_the_same(
        svc: Services, tmp_path: Path) -> None:
    path = tmp_path / "marked.json"
    path.write_text(json.dumps(_bundle(_indicator(
        1, "[ipv4-addr:value = '10.0.0.5']", indicator_types=["compromised"],
        object_marking_refs=[TLP1_GREEN]))))
    first = svc.pipeline().ingest_paths([path]).files[0]
    again = svc.pipeline().reparse().files[0]
    assert (first.events, again.events) == (1, 1)
    [row] = pa.concat_tables(list(svc.events.scan())).to_pylist()
    assert (row["tlp"], row["source.ip"], row["classification.taxonomy"]) == (
        "GREEN", "10.0.0.5", "intrusions")
