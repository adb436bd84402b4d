"""IntelMQ JSON events in: mapping, defaults, quarantine, unusable files."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cwn.events.batch import EVENT_SCHEMA
from cwn.ingest.intelmq import parse
from cwn.ingest.result import UnusableInput

OBSERVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

GOOD = {
    "__type": "Event", "feed.name": "Open Chargen", "source.ip": "198.51.100.7",
    "source.port": 19, "source.asn": 64512, "classification.taxonomy": "vulnerable",
    "classification.type": "vulnerable-system", "classification.identifier": "open-chargen",
    "protocol.transport": "udp", "time.source": "2010-02-10T00:00:00+00:00",
    "time.observation": "2015-01-01T00:00:00+00:00", "extra.amplification": 77.0,
    "extra.tag": "chargen", "raw": "aGVsbG8=",
}


def _parse(data: bytes, **kw: str):  # type: ignore[no-untyped-def]
    return parse(data, file_name="events.json", observed=OBSERVED, **kw)


def _lines(*events: object) -> bytes:
    return b"\n".join(e if isinstance(e, bytes) else json.dumps(e).encode() for e in events)


def test_fields_map_to_columns_and_extra() -> None:
    result = _parse(_lines(GOOD))
    assert result.events.schema == EVENT_SCHEMA
    row = result.events.to_pylist()[0]
    assert row["source.ip"] == "198.51.100.7"
    assert row["source.port"] == 19 and row["source.asn"] == 64512
    assert row["time.source"] == datetime(2010, 2, 10, tzinfo=UTC)
    assert json.loads(row["extra"]) == {"amplification": 77.0, "tag": "chargen"}
    assert isinstance(json.loads(row["extra"])["amplification"], float)
    assert row["raw"] == "aGVsbG8="
    assert row["report_type"] == "open-chargen" and result.report_type == "open-chargen"
    assert row["_row"] == 1 and row["_report"] is None
    assert result.rows == 1 and result.quarantine == []
    assert result.feed_name == "Open Chargen"


def test_cwn_fields_from_extra_and_unknown_keys_kept() -> None:
    event = {**GOOD, "extra.severity": "HIGH", "extra.cve": "cve-2024-0001",
             "extra.organization": "org-1", "extra.matched_asset": "198.51.100.0/24",
             "extra.match_kind": "ip", "extra.report_type": "scan_chargen",
             "extra": {"nested": {"a": 1}, "n": None}, "vendor.field": "x"}
    row = _parse(_lines(event)).events.to_pylist()[0]
    assert row["severity"] == "high" and row["cve"] == "CVE-2024-0001"
    assert (row["organization"], row["matched_asset"], row["match_kind"]) == (
        "org-1", "198.51.100.0/24", "ip")
    assert row["report_type"] == "scan_chargen"
    assert json.loads(row["extra"]) == {"amplification": 77.0, "tag": "chargen",
                                        "nested": {"a": 1}, "vendor.field": "x"}


def test_defaults_observation_and_feed() -> None:
    event = {k: v for k, v in GOOD.items() if k not in ("time.observation", "feed.name")}
    result = _parse(_lines(event, {**GOOD, "feed.name": "Own"}), feed_name="My feed")
    rows = result.events.to_pylist()
    assert rows[0]["time.observation"] == OBSERVED
    assert [r["feed.name"] for r in rows] == ["My feed", "Own"]
    assert result.feed_name == "My feed"


def test_json_array_and_no_type() -> None:
    events = [{k: v for k, v in GOOD.items() if k != "__type"}, GOOD]
    result = _parse(json.dumps(events, indent=2).encode())
    assert result.events.num_rows == 2
    assert result.events.column("_row").to_pylist() == [1, 2]


def test_bad_lines_quarantined_with_reasons() -> None:
    data = _lines(
        GOOD,
        b"{not json",
        b"[1, 2]",
        {"source.port": 80},  # nothing attributable, no classification
        {**GOOD, "source.ip": "999.1.1.1"},  # bad identity value
        {**GOOD, "classification.type": "no-such-type"},
        {"__type": "Report", "feed.name": "x", "raw": "eA=="},
        b"",
        {**GOOD, "source.port": "not-a-port"},  # optional field: kept in extra
    )
    result = _parse(data)
    reasons = {q.row: q.reason for q in result.quarantine}
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert reasons[2].startswith("invalid JSON")
    assert "not a JSON object" in reasons[3]
    assert "nothing to attribute" in reasons[4]
    assert reasons[5] == "invalid source.ip: '999.1.1.1'"
    assert "classification.type" in reasons[6]
    assert "Report" in reasons[7]
    contents = {q.row: q.content for q in result.quarantine}
    assert contents[2] == "{not json"
    assert json.loads(contents[5])["source.ip"] == "999.1.1.1"
    assert result.rows == 8  # blank line not counted
    assert result.events.column("_row").to_pylist() == [1, 9]
    kept = result.events.to_pylist()[1]
    assert kept["source.port"] is None
    assert json.loads(kept["extra"])["invalid.source.port"] == "not-a-port"


def test_classification_alone_is_enough() -> None:
    result = _parse(_lines({"classification.type": "spam", "source.asn": 64512}))
    assert result.events.num_rows == 1 and not result.quarantine


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"  \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"\xff\xfe\xfa not utf8", "UTF-8"),
    (b"just some text\nmore text\n", "not JSON"),
    (b"1\n2\n", "no JSON objects"),
    (b"[1, 2", "invalid JSON array"),
])
def test_unusable_files(data: bytes, message: str) -> None:
    with pytest.raises(UnusableInput, match=message):
        _parse(data)


def test_crlf_and_bom() -> None:
    data = b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n" + json.dumps(GOOD).encode()
    result = _parse(data)
    assert result.events.num_rows == 2 and not result.quarantine
