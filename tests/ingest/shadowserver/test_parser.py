"""The Shadowserver parser, specified by IntelMQ's expected output for 67 real report types."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cwn.events.batch import EVENT_SCHEMA
from cwn.ingest.result import UnusableInput
from cwn.ingest.shadowserver.parser import parse
from cwn.ingest.shadowserver.schema import load_table

OBSERVED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
# Parametrisation happens before fixtures exist: same location rule as tests/conftest.py.
SAMPLES = Path(
    os.environ.get("CWN_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data")
) / "shadowserver"

CORE = (
    "source.ip", "source.network", "source.port", "source.asn", "source.reverse_dns",
    "source.fqdn", "protocol.transport", "classification.taxonomy", "classification.type",
    "classification.identifier", "time.source",
)
ALSO = (
    "feed.name", "destination.ip", "destination.port", "destination.asn", "destination.fqdn",
    "destination.reverse_dns", "destination.url", "malware.name", "protocol.application",
    "source.url", "source.local_hostname", "source.account", "malware.hash.md5",
    "malware.hash.sha256", "raw",
)


def report_types() -> list[str]:
    return sorted(p.stem for p in (SAMPLES / "expected_intelmq").glob("*.json"))


def as_intelmq(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def parse_file(path: Path, report_type: str, **kw: Any) -> Any:
    return parse(path.read_bytes(), report_type=report_type, file_name=path.name,
                 observed=OBSERVED, **kw)


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


HEADER = '"timestamp","ip","port","hostname","tag","asn","geo","naics","mystery_column"'


# -- ground truth: every sample report type ---------------------------------------------------


def test_all_67_sample_types_are_present() -> None:
    assert len(report_types()) == 67


@pytest.mark.parametrize("report_type", report_types())
def test_events_match_intelmq(report_type: str, shared_data: Path) -> None:
    base = shared_data / "shadowserver"
    expected = json.loads((base / "expected_intelmq" / f"{report_type}.json").read_text())
    result = parse(
        (base / "csv" / f"{report_type}.csv").read_bytes(),
        report_type=report_type,
        file_name=expected["report"]["extra.file_name"],
        observed=OBSERVED,
    )
    assert result.quarantine == []
    assert result.report_type == report_type
    events = {row["_row"]: row for row in result.events.to_pylist()}
    assert result.rows == len(events)
    for want, row_number in zip(expected["events"], expected["event_csv_row"], strict=True):
        got = events[row_number]
        for name in CORE + ALSO:
            assert as_intelmq(got[name]) == want.get(name), (row_number, name)
        assert got["time.observation"] == OBSERVED
        assert got["feed.provider"] == "Shadowserver"
        assert got["report_type"] == report_type
        assert got["fingerprint"] is None  # the pipeline sets it


def test_result_has_the_event_schema(shared_data: Path) -> None:
    result = parse_file(shared_data / "shadowserver" / "csv" / "scan_dns.csv", "scan_dns")
    assert result.events.schema == EVENT_SCHEMA
    assert result.events.num_rows == result.rows == 100
    assert result.feed_name == "DNS Open Resolvers"


# -- columns -> fields and extra ----------------------------------------------------------------


def test_unmapped_columns_land_in_extra_with_their_types() -> None:
    data = csv_bytes(HEADER, '"2024-01-01 10:00:00","192.0.2.1",3389,"h.example.net","rdp",'
                             '64500,"NL",0,"hello"')
    row = parse(data, report_type="scan_rdp", file_name="f.csv",
                observed=OBSERVED).events.to_pylist()[0]
    assert json.loads(row["extra"]) == {"tag": "rdp", "mystery_column": "hello"}  # naics 0 dropped
    assert row["source.reverse_dns"] == "h.example.net"
    extra = json.loads(parse(
        csv_bytes(HEADER, '"2024-01-01 10:00:00","192.0.2.1",1,,,,,517311,42'),
        report_type="scan_rdp", file_name="f.csv", observed=OBSERVED,
    ).events.column("extra")[0].as_py())
    assert extra == {"source.naics": 517311, "mystery_column": 42}


def test_invalid_optional_value_is_kept_in_extra() -> None:
    data = csv_bytes(HEADER, '"2024-01-01 10:00:00","192.0.2.1",99999,,,"AS-bad",,,')
    result = parse(data, report_type="scan_rdp", file_name="f.csv", observed=OBSERVED)
    row = result.events.to_pylist()[0]
    assert row["source.port"] is None and row["source.asn"] is None
    assert json.loads(row["extra"]) == {
        "invalid.source.port": "99999", "invalid.source.asn": "AS-bad",
    }
    assert result.quarantine == []


def test_raw_is_header_plus_record_line() -> None:
    line = '"2024-01-01 10:00:00","192.0.2.1",3389,,"rdp",64500,"NL",,"a, quoted ""x"""'
    data = ("\ufeff" + HEADER + "\r\n" + line + "\r\n").encode()
    row = parse(data, report_type="scan_rdp", file_name="f.csv",
                observed=OBSERVED).events.to_pylist()[0]
    assert base64.b64decode(row["raw"]).decode() == HEADER + "\n" + line
    assert json.loads(row["extra"])["mystery_column"] == 'a, quoted "x"'


def test_newlines_inside_quoted_values() -> None:
    data = csv_bytes(
        HEADER,
        '"2024-01-01 10:00:00","192.0.2.1",1,,,,,,"two\nlines"',
        "",
        '"2024-01-01 10:00:01","192.0.2.2",2,,,,,,"one"',
    )
    result = parse(data, report_type="scan_rdp", file_name="f.csv", observed=OBSERVED)
    rows = result.events.to_pylist()
    assert [r["source.ip"] for r in rows] == ["192.0.2.1", "192.0.2.2"]
    assert [r["_row"] for r in rows] == [1, 2]
    assert base64.b64decode(rows[0]["raw"]).decode().endswith('"two\nlines"')


def test_rows_missing_trailing_columns_are_read_like_intelmq() -> None:
    data = csv_bytes(HEADER, '"2024-01-01 10:00:00","192.0.2.1",3389')
    result = parse(data, report_type="scan_rdp", file_name="f.csv", observed=OBSERVED)
    assert result.events.column("source.port").to_pylist() == [3389]


# -- unknown report types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_type", "taxonomy", "ctype", "identifier"),
    [
        ("scan_shiny_new", "vulnerable", "vulnerable-system", "scan-shiny-new"),
        ("scan6_shiny_new", "vulnerable", "vulnerable-system", "scan6-shiny-new"),
        # sinkholes name the malware in the row (tag, else infection)
        ("event4_sinkhole_shiny", "malicious-code", "infected-system", "telnet-alt"),
        ("event6_honeypot_shiny", "other", "other", "event6-honeypot-shiny"),
        ("shiny_new", "other", "other", "shiny-new"),
    ],
)
def test_unknown_report_type_still_parses(
    new_type: str, taxonomy: str, ctype: str, identifier: str, shared_data: Path, tmp_path: Path
) -> None:
    sample = tmp_path / f"2024-01-01-{new_type}-org.csv"
    sample.write_bytes((shared_data / "shadowserver" / "csv" / "scan_telnet.csv").read_bytes())
    result = parse(sample.read_bytes(), report_type="", file_name=sample.name, observed=OBSERVED)
    assert result.report_type == new_type
    rows = result.events.to_pylist()
    assert len(rows) == 2 and result.quarantine == []
    assert rows[0]["source.ip"] == "198.123.245.145"
    assert rows[0]["classification.taxonomy"] == taxonomy
    assert rows[0]["classification.type"] == ctype
    assert rows[0]["classification.identifier"] == identifier
    assert rows[0]["feed.name"] == new_type


def test_unknown_sinkhole_takes_identifier_from_the_row(shared_data: Path) -> None:
    path = shared_data / "shadowserver" / "csv" / "event4_sinkhole.csv"
    row = parse_file(path, "event4_sinkhole_brandnew").events.to_pylist()[0]
    assert row["classification.identifier"] == "victorygate.b"
    assert row["malware.name"] == "victorygate.b"


# -- bad rows -> quarantine -------------------------------------------------------------------


def test_bad_rows_are_quarantined_not_fatal() -> None:
    lines = [
        '"2024-01-01 10:00:00","192.0.2.1",1,,,,,,',   # 1 good
        '"2024-01-01 10:00:00","999.1.1.1",2,,,,,,',   # 2 bad ip
        '"not a time","192.0.2.3",3,,,,,,',             # 3 bad time
        '"2024-01-01 10:00:00",,4,,,,,,',               # 4 nothing to attribute
        '"2024-01-01 10:00:00","192.0.2.5",5,,,,,,,"one too many"',  # 5 extra column
        '"2024-01-01 10:00:00","192.0.2.6",6,,,,,,',   # 6 good
    ]
    result = parse(csv_bytes(HEADER, *lines), report_type="scan_rdp", file_name="f.csv",
                   observed=OBSERVED)
    assert result.rows == 6
    assert result.events.column("_row").to_pylist() == [1, 6]
    reasons = {q.row: q.reason for q in result.quarantine}
    assert reasons[2] == "invalid source.ip: '999.1.1.1'"
    assert reasons[3] == "invalid time.source: 'not a time'"
    assert reasons[4].startswith("no source.ip")
    assert "more columns" in reasons[5]
    assert {q.row: q.content for q in result.quarantine}[2] == lines[1]


def test_cidr_in_ip_column_is_a_network_not_an_error(shared_data: Path) -> None:
    rows = parse_file(shared_data / "shadowserver" / "csv" / "blocklist.csv",
                      "blocklist").events.to_pylist()
    assert rows[2]["source.ip"] is None
    assert rows[2]["source.network"] == "198.123.245.0/24"


# -- unusable files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("timestamp,ip\n2024-01-01,caf\xe9\n".encode("latin-1"), "UTF-8"),
        (b"just some text\nmore text\n", "single column"),
        (b"a,b,c\n1,2,3\n", "no timestamp column"),
        (b'{"json": "object", "not": "csv"}\n', "no timestamp column"),
    ],
)
def test_unusable_files_raise(data: bytes, message: str) -> None:
    with pytest.raises(UnusableInput, match=message) as err:
        parse(data, report_type="scan_rdp", file_name="f.csv", observed=OBSERVED)
    assert "\n" not in str(err.value)


def test_header_only_is_an_empty_report_not_an_error() -> None:
    result = parse(csv_bytes(HEADER), report_type="scan_rdp", file_name="f.csv",
                   observed=OBSERVED)
    assert result.rows == 0 and result.events.num_rows == 0
    assert result.events.schema == EVENT_SCHEMA


def test_table_can_be_passed_explicitly(shared_data: Path) -> None:
    table = load_table(None)
    result = parse_file(shared_data / "shadowserver" / "csv" / "scan_smb.csv", "scan_smb",
                        table=table)
    assert isinstance(result.events, pa.Table)
    assert set(result.events.column("protocol.transport").to_pylist()) == {"tcp"}
