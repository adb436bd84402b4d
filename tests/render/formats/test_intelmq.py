"""IntelMQ JSON export: round trips over every real IntelMQ sample, formats, streaming."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from cwn.events.batch import conform
from cwn.ingest.intelmq import parse
from cwn.render.formats.intelmq import write_intelmq

from .samples import jsonl, sample_files

OBSERVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SAMPLES = sample_files()


def _export(table: pa.Table, **kw: bool) -> bytes:
    out = io.BytesIO()
    assert write_intelmq(table, out, **kw) == table.num_rows
    return out.getvalue()


def _parse(data: bytes) -> pa.Table:
    return parse(data, file_name="events.jsonl", observed=OBSERVED).events


def test_samples_found() -> None:
    assert len(SAMPLES) >= 80
    assert "intelmq/aggregate_events" in SAMPLES


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(name: str, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(SAMPLES[name]))
    result = parse(path.read_bytes(), file_name=path.name, observed=OBSERVED)
    # cymru's legacy type "proxy" is not RSIT: that one event is quarantined, all else kept
    assert len(result.quarantine) == (1 if name == "cymru/expected_intelmq__test_cap_program"
                                      else 0), result.quarantine
    first = result.events
    exported = _export(first)
    second = _parse(exported)
    # identical batch (line numbers aside when a quarantined line shifted them)
    assert second.drop_columns(["_row"]).equals(first.drop_columns(["_row"]))
    # and the export is a fixed point, byte for byte
    assert _export(second) == exported
    # every line is an IntelMQ event with sorted keys and no nulls
    for line in exported.decode().splitlines():
        event = json.loads(line)
        assert event["__type"] == "Event"
        assert list(event) == sorted(event)
        assert None not in event.values()
        assert "_row" not in event and "_report" not in event


def test_values_keep_their_types() -> None:
    events = SAMPLES["shadowserver/scan_chargen"] if "shadowserver/scan_chargen" in SAMPLES \
        else SAMPLES["shadowserver/scan_dns"]
    exported = _export(_parse(jsonl(events)))
    for original, line in zip(events, exported.decode().splitlines(), strict=True):
        back = json.loads(line)
        for key, value in original.items():
            if key in ("__type",):
                continue
            assert back[key] == value, key
            assert type(back[key]) is type(value), key


def test_amplification_float_and_asn_int() -> None:
    event = {"source.ip": "192.0.2.1", "source.asn": 64512, "classification.type": "ddos",
             "extra.amplification": 77.0, "extra.count": 3, "extra.flag": True,
             "extra.tags": ["a", "b"], "time.source": "2010-02-10T00:00:00+00:00"}
    back = json.loads(_export(_parse(json.dumps(event).encode())))
    assert back["extra.amplification"] == 77.0
    assert isinstance(back["extra.amplification"], float)
    assert back["source.asn"] == 64512 and isinstance(back["source.asn"], int)
    assert back["extra.count"] == 3 and back["extra.flag"] is True
    assert back["extra.tags"] == ["a", "b"]
    assert back["time.source"] == "2010-02-10T00:00:00+00:00"
    assert "extra.report_type" not in back  # no identifier, no extra.report_type given


def test_cwn_fields_under_extra_and_meta_not_exported() -> None:
    table = conform(pa.table({
        "source.ip": ["192.0.2.7"],
        "time.observation": pa.array([datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=UTC)],
                                     pa.timestamp("us", tz="UTC")),
        "severity": ["high"], "cve": ["CVE-2024-0001,CVE-2024-0002"],
        "organization": ["org-7"], "matched_asset": ["192.0.2.0/24"], "match_kind": ["ip"],
        "report_type": ["scan_rdp"], "fingerprint": ["ab" * 16],
        "extra": ['{"tag":"rdp","severity":"low"}'], "_report": ["f" * 64], "_row": [9],
        "source.port": pa.array([3389], pa.int32()), "tlp": ["AMBER"],
    }))
    line = _export(table)
    event = json.loads(line)
    assert event == {
        "__type": "Event", "source.ip": "192.0.2.7", "source.port": 3389, "tlp": "AMBER",
        "time.observation": "2024-01-02T03:04:05.000600+00:00",
        "extra.severity": "high",  # the column wins over extra's own "severity"
        "extra.cve": "CVE-2024-0001,CVE-2024-0002", "extra.organization": "org-7",
        "extra.matched_asset": "192.0.2.0/24", "extra.match_kind": "ip",
        "extra.report_type": "scan_rdp", "extra.fingerprint": "ab" * 16, "extra.tag": "rdp",
    }
    assert line.decode().startswith('{"__type":"Event","extra.cve":')
    back = _parse(line)
    for col in ("severity", "cve", "organization", "matched_asset", "match_kind",
                "report_type", "fingerprint", "source.port"):
        assert back.column(col).to_pylist() == table.column(col).to_pylist(), col
    assert back.column("extra").to_pylist() == ['{"tag":"rdp"}']


def test_include_raw_false_and_streaming_batches() -> None:
    events = SAMPLES["shadowserver/scan_dns"]
    table = _parse(jsonl(events))
    assert table.column("raw").null_count == 0
    without = _export(table, include_raw=False)
    assert b'"raw"' not in without
    out = io.BytesIO()
    n = write_intelmq(iter([table.slice(0, 1), table.slice(1), table.slice(0, 0)]), out)
    assert n == table.num_rows
    assert out.getvalue() == _export(table)


def test_escaping_and_unicode() -> None:
    event = {"source.fqdn": "example.com", "classification.type": "phishing",
             "event_description.text": 'quote " back \\ nl \n tab \t ctl \x01 é ✓',
             "extra.note": "x\u2028y"}
    exported = _export(_parse(json.dumps(event).encode()))
    back = json.loads(exported)
    assert back["event_description.text"] == event["event_description.text"]
    assert back["extra.note"] == "x\u2028y"
    assert exported.count(b"\n") == 1
    assert _export(_parse(exported)) == exported


def test_empty() -> None:
    assert _export(conform(pa.table({"source.ip": pa.array([], pa.string())}))) == b""
