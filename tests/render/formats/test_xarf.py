"""X-ARF v3 out and back: the bundled abusix/xarf schema accepts every report cwn writes and
rejects the upstream negative samples."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from cwn.ingest.shadowserver.parser import parse
from cwn.render.formats.xarf import (
    SCHEMA_DIR,
    _is_datetime,
    read_xarf,
    validate_report,
    write_xarf,
)

from .samples import DATA

OBSERVED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
SAMPLES = DATA / "xarf" / "samples"
REPORTER = {"reporter_name": "CWN desk", "reporter_email": "meldingen@cwn.example"}


def _names(kind: str) -> list[str]:
    return sorted(p.name for p in (SAMPLES / kind).glob("*.json"))


def _events(name: str) -> pa.Table:
    path = DATA / "shadowserver" / "csv" / f"{name}.csv"
    return parse(path.read_bytes(), report_type=name, file_name=path.name,
                 observed=OBSERVED).events


def test_bundled_schemas_are_the_upstream_files() -> None:
    upstream = sorted((DATA / "xarf" / "schemas" / "3").glob("*.json"))
    assert len(upstream) == 18
    for path in upstream:
        assert (SCHEMA_DIR / path.name).read_bytes() == path.read_bytes(), path.name
    assert "abusix/xarf" in (SCHEMA_DIR / "README.md").read_text()


@pytest.mark.parametrize("name", _names("positive"))
def test_positive_samples_validate(name: str) -> None:
    validate_report(json.loads((SAMPLES / "positive" / name).read_text()))


@pytest.mark.parametrize("name", _names("negative"))
def test_negative_samples_are_rejected(name: str) -> None:
    doc = json.loads((SAMPLES / "negative" / name).read_text())
    with pytest.raises(ValueError, match="invalid X-ARF v3") as err:
        validate_report(doc)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        read_xarf((SAMPLES / "negative" / name).read_bytes())


@pytest.mark.parametrize(("value", "ok"), [
    ("2020-07-24T14:17:10Z", True), ("2010-02-10T00:00:00+00:00", True),
    ("2010-02-10T00:00:00.123456+01:00", True), ("This is not a date", False),
    ("2020-13-01T00:00:00Z", False), ("2020-01-01", False), ("2020-01-01T00:00:00", False),
])
def test_date_time_format_is_enforced(value: str, ok: bool) -> None:
    assert _is_datetime(value) is ok


@pytest.mark.parametrize(("report", "xarf_type"), [
    ("scan_smb", "OpenService"), ("scan_redis", "OpenService"), ("event4_sinkhole", "Botnet"),
    ("event4_honeypot_http_scan", "PortScan"), ("malware_url", "Malware"),
    ("phish_url", "Phishing"), ("event6_sinkhole_http", "Botnet"),
])
def test_real_events_round_trip(report: str, xarf_type: str) -> None:
    table = _events(report)
    out = io.BytesIO()
    assert write_xarf(table, out, **REPORTER) == table.num_rows
    docs = json.loads(out.getvalue())
    for doc in docs:
        validate_report(doc)
        assert doc["Report"]["ReportType"] == xarf_type
        assert doc["ReporterInfo"]["ReporterOrgDomain"] == "cwn.example"
    back = read_xarf(out.getvalue())
    rows = table.to_pylist()
    assert len(back) == len(rows)
    for ev, row in zip(back, rows, strict=True):
        assert ev.get("source.ip") == row["source.ip"]
        assert ev.get("source.port") == row["source.port"]
        assert ev.get("source.url") == row["source.url"]
        assert datetime.fromisoformat(ev["time.source"]) == row["time.source"]
        assert ev["classification.identifier"] == row["classification.identifier"]


def test_without_source_time_the_date_is_the_observation() -> None:
    table = _events("scan_smb").slice(0, 1)
    table = table.set_column(table.schema.get_field_index("time.source"), "time.source",
                             pa.nulls(1, table.schema.field("time.source").type))
    out = io.BytesIO()
    write_xarf(table, out, **REPORTER)
    (ev,) = read_xarf(out.getvalue())
    assert "time.source" not in ev
    assert datetime.fromisoformat(ev["time.observation"]) == OBSERVED


def test_an_invalid_report_is_never_written() -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match="ReporterOrg"):  # the schema wants >= 3 characters
        write_xarf(_events("scan_smb"), out, reporter_name="CW", reporter_email="a@cwn.example")


@pytest.mark.parametrize("data", [b"not json", b"42", b'[{"Version": "3"}]'])
def test_unusable_files_raise(data: bytes) -> None:
    with pytest.raises(ValueError):
        read_xarf(data)
