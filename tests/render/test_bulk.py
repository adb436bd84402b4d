"""Bulk files for intermediaries: every format gives back the same cases and events, never
carries TLP:RED, and travels in a short summary mail in Dutch or English."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import stix2

from cwn.config import Settings
from cwn.ingest.shadowserver.parser import parse
from cwn.render.bulk import (
    FORMATS,
    BulkCase,
    BulkFile,
    read_bulk,
    render_bulk_message,
    write_bulk,
)
from cwn.render.formats.intelmq import render_lines
from cwn.render.formats.xarf import validate_report

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
REPORTS = ("scan_smb", "scan_rdpeudp", "scan_redis", "event4_sinkhole",
           "event4_honeypot_http_scan", "event6_sinkhole_http", "malware_url", "phish_url")
"""Real Shadowserver samples: vulnerable and infected systems, scanners, IPv6, URLs."""
CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson",
                 "intelmq": "application/x-ndjson", "xarf": "application/json",
                 "stix": "application/json"}


def _events(shared_data: Path, name: str) -> pa.Table:
    path = shared_data / "shadowserver" / "csv" / f"{name}.csv"
    return parse(path.read_bytes(), report_type=name, file_name=path.name,
                 observed=NOW).events


def _case(case_id: str, events: pa.Table, *, org: str = "org-1", tlp: str = "AMBER",
          report_type: str | None = "scan_smb") -> BulkCase:
    return BulkCase(case_id=case_id, org_id=org, org_name=f"Klant {org}",
                    report_type=report_type, taxonomy="vulnerable", identifier=None,
                    severity="high", tlp=tlp, first_seen=datetime(2024, 1, 1, tzinfo=UTC),
                    last_seen=NOW, events=events)


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[BulkCase]:
    """Two events per case from each sample, spread over three organisations and two TLPs."""
    out: list[BulkCase] = []
    for name in REPORTS:
        table = _events(shared_data, name)
        assert table.num_rows >= 2, name
        for i in range(0, table.num_rows, 2):
            n = len(out)
            out.append(_case(f"CWN-{name}-{i}", table.slice(i, 2), org=f"org-{n % 3}",
                             tlp="GREEN" if n % 2 else "AMBER", report_type=name))
    return out


def _key(ev: dict[str, Any]) -> tuple[Any, ...]:
    """What a partner needs to find the event again: address, port, time, identifier."""
    t = ev.get("time.source")
    t = datetime.fromisoformat(t).astimezone(UTC).isoformat() if t else None
    port = ev.get("source.port")
    return (ev.get("source.ip"), None if port is None else int(port), t,
            ev.get("classification.identifier"))


def _expected(cases: list[BulkCase]) -> dict[str, Counter[tuple[Any, ...]]]:
    out: dict[str, Counter[tuple[Any, ...]]] = {}
    for case in cases:
        lines = render_lines(case.events, include_raw=False).to_pylist()
        out.setdefault(case.case_id, Counter()).update(_key(json.loads(x)) for x in lines)
    return out


def _write(fmt: str, cases: list[BulkCase]) -> BulkFile:
    return write_bulk(fmt, cases, partner_id="isp/ziggo 1", reporter_name="CWN desk",
                      reporter_email="meldingen@cwn.example", now=NOW)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_gives_the_same_cases_and_events(fmt: str, cases: list[BulkCase]) -> None:
    file = _write(fmt, cases)
    back = read_bulk(fmt, file.data)
    expected = _expected(cases)
    assert set(back) == set(expected)
    for case_id, events in back.items():
        got = Counter(_key(ev) for ev in events)
        if fmt == "stix":  # identical events share one STIX object id
            assert set(got) == set(expected[case_id]), case_id
        else:
            assert got == expected[case_id], case_id
    assert file.cases == len(cases)
    assert file.events == sum(c.events.num_rows for c in cases)


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_name_type_and_case_organisation(fmt: str, cases: list[BulkCase]) -> None:
    file = _write(fmt, cases)
    assert file.content_type == CONTENT_TYPES[fmt]
    assert re.fullmatch(r"cwn-isp_ziggo_1-20240506T0708\.[a-z.]+", file.filename)
    assert file.filename.endswith({"csv": ".csv", "jsonl": ".jsonl", "intelmq": ".intelmq.jsonl",
                                   "xarf": ".xarf.json", "stix": ".stix.json"}[fmt])
    if fmt in ("csv", "jsonl", "intelmq"):
        orgs = {c.case_id: c.org_id for c in cases}
        for case_id, events in read_bulk(fmt, file.data).items():
            assert {ev["extra.organization"] for ev in events} == {orgs[case_id]}
            assert {ev["extra.case_id"] for ev in events} == {case_id}


def test_jsonl_lines_are_cases(cases: list[BulkCase]) -> None:
    lines = _write("jsonl", cases).data.decode().splitlines()
    assert len(lines) == len(cases)
    first = json.loads(lines[0])
    assert first["case_id"] == cases[0].case_id
    assert first["tlp"] == "AMBER" and first["organization"] == cases[0].org_id
    assert len(first["events"]) == cases[0].events.num_rows


def test_xarf_reports_validate_and_carry_the_case(cases: list[BulkCase]) -> None:
    docs = json.loads(_write("xarf", cases).data)
    assert len(docs) == sum(c.events.num_rows for c in cases)
    for doc in docs:
        validate_report(doc)
        assert doc["Report"]["ReporterCaseID"].startswith("CWN-")
    assert {d["Report"]["ReportType"] for d in docs} >= {
        "OpenService", "Botnet", "PortScan", "Malware", "Phishing"}


def test_stix_bundle_parses_with_case_ids_and_tlp(cases: list[BulkCase]) -> None:
    bundle = stix2.parse(_write("stix", cases).data.decode(), allow_custom=True)
    objs = bundle["objects"]
    events = [o for o in objs if o["type"] in ("observed-data", "indicator")]
    assert events and all(o["x_cwn_case_id"].startswith("CWN-") for o in events)
    markings = {o["name"] for o in objs if o["type"] == "marking-definition"}
    assert markings == {"TLP:AMBER", "TLP:GREEN"}


def test_csv_defuses_formula_cells(shared_data: Path) -> None:
    events = _events(shared_data, "scan_smb").slice(0, 1)
    events = events.set_column(events.schema.get_field_index("event_description.text"),
                               "event_description.text", pa.array(["=HYPERLINK(\"x\")"]))
    case = _case("+31-CASE", events, org="@org")
    file = _write("csv", [case])
    text = file.data.decode()
    assert "'=HYPERLINK" in text and "'+31-CASE" in text and "'@org" in text
    for line in text.splitlines()[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in line.split(","))
    back = read_bulk("csv", file.data)
    assert list(back) == ["+31-CASE"]
    assert back["+31-CASE"][0]["event_description.text"] == '=HYPERLINK("x")'


@pytest.mark.parametrize("fmt", FORMATS)
def test_tlp_red_is_never_written(fmt: str, shared_data: Path) -> None:
    events = _events(shared_data, "scan_smb")
    with pytest.raises(ValueError, match="RED"):
        _write(fmt, [_case("A", events), _case("B", events, tlp="TLP:RED")])
    red_event = events.set_column(events.schema.get_field_index("tlp"), "tlp",
                                  pa.array(["AMBER", "RED", None][: events.num_rows]))
    with pytest.raises(ValueError, match="RED"):
        _write(fmt, [_case("A", red_event, tlp="GREEN")])


def test_event_tlp_never_weaker_than_its_case(shared_data: Path) -> None:
    events = _events(shared_data, "scan_smb").slice(0, 2)
    events = events.set_column(events.schema.get_field_index("tlp"), "tlp",
                               pa.array(["CLEAR", "AMBER+STRICT"]))
    back = read_bulk("intelmq", _write("intelmq", [_case("A", events, tlp="AMBER")]).data)
    assert [ev["tlp"] for ev in back["A"]] == ["AMBER", "AMBER+STRICT"]


def test_unknown_format(cases: list[BulkCase]) -> None:
    with pytest.raises(ValueError, match="unknown bulk format"):
        _write("pdf", cases)
    with pytest.raises(ValueError, match="unknown bulk format"):
        read_bulk("xml", b"")


def test_xarf_cannot_name_a_network_only_event(shared_data: Path) -> None:
    events = _events(shared_data, "blocklist")  # its third event has only source.network
    assert events.column("source.ip").null_count == 1
    with pytest.raises(ValueError, match="without source IP or URL"):
        _write("xarf", [_case("NET", events)])
    assert _write("intelmq", [_case("NET", events)]).events == events.num_rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_is_rejected_on_read(fmt: str) -> None:
    bad = {"csv": b"source.ip\n1.2.3.4\n", "jsonl": b"{not json\n",
           "intelmq": b'{"source.ip": "1.2.3.4"}\n', "xarf": b'[{"Version": "3"}]',
           "stix": b"[]"}[fmt]
    with pytest.raises(ValueError):
        read_bulk(fmt, bad)


# -- the summary mail ----------------------------------------------------------------------


def _mail(file: BulkFile, cases: list[BulkCase], lang: str, tmp_path: Path
          ) -> tuple[EmailMessage, str]:
    data, subject = render_bulk_message(
        partner_name="Ziggo Abuse", recipient="abuse@isp.example", language=lang, file=file,
        cases=cases, settings=Settings(home=tmp_path), message_id="bulk-1@cwn.example",
        return_path="bounce+bulk-1@cwn.example", now=NOW)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg, subject


@pytest.mark.parametrize(("lang", "fmt", "words"), [
    ("nl", "csv", ("Beste Ziggo Abuse", "Terugmelden", "niet onze klant", "Wie wij zijn")),
    ("en", "csv", ("Dear Ziggo Abuse", "How to report back", "not our customer", "Who we are")),
    ("nl", "xarf", ("ReporterCaseID", "meldingen")),
    ("en", "stix", ("x_cwn_case_id", "STIX 2.1")),
    ("en", "jsonl", ("extra.case_id", "one case per line")),
])
def test_summary_mail(lang: str, fmt: str, words: tuple[str, ...], cases: list[BulkCase],
                      tmp_path: Path) -> None:
    file = _write(fmt, cases)
    msg, subject = _mail(file, cases, lang, tmp_path)
    assert msg["Subject"] == subject and subject.startswith("[TLP:AMBER]")
    assert msg["X-CWN-TLP"] == "AMBER"  # the strictest of AMBER and GREEN
    assert msg["X-CWN-Bulk"] == fmt
    assert msg["Message-ID"] == "<bulk-1@cwn.example>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Content-Language"] == lang
    assert cases[0].case_id in msg["X-CWN-Case-IDs"]
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    att = attachments[0]
    assert att.get_filename() == file.filename
    assert att.get_content_type() == file.content_type
    assert att.get_payload(decode=True) == file.data
    body = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert body is not None and html is not None
    text = body.get_content()
    for word in (*words, file.filename, "case_id,status", "forwarded", "customer_notified",
                 "fixed", "TLP:AMBER", "scan_smb", "Klant org-0"):
        assert word in text, word
    assert "Ziggo Abuse" in html.get_content()


def test_summary_mail_caps_case_ids_and_organisations(shared_data: Path, tmp_path: Path
                                                      ) -> None:
    events = _events(shared_data, "scan_smb").slice(0, 1)
    many = [_case(f"C{i:03d}", events, org=f"org-{i:02d}", tlp="CLEAR") for i in range(60)]
    msg, _ = _mail(_write("csv", many), many, "en", tmp_path)
    ids = " ".join(msg["X-CWN-Case-IDs"].split())
    assert ids.startswith("C000, C001") and ids.endswith("C049, ...") and "C050" not in ids
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "org-19" in text and "org-20" not in text and "40 more organisations" in text
    assert msg["X-CWN-TLP"] == "CLEAR"


def test_summary_mail_refuses_red_and_bad_recipients(cases: list[BulkCase], shared_data: Path,
                                                     tmp_path: Path) -> None:
    file = _write("csv", cases)
    red = [_case("R", _events(shared_data, "scan_smb"), tlp="RED")]
    with pytest.raises(ValueError, match="RED"):
        _mail(file, red, "en", tmp_path)
    with pytest.raises(ValueError, match="recipient"):
        render_bulk_message(partner_name="x", recipient="abuse@isp.example\r\nBcc: a@b",
                            language="en", file=file, cases=cases,
                            settings=Settings(home=tmp_path), message_id="m",
                            return_path="")
