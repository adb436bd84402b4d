"""Sources submit threat data through the API: real sample files through the real pipeline,
on SQLite and PostgreSQL. What comes back is what `cwn ingest` would have stored."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cwn.db.models import Report
from cwn.db.models_web import Submission
from cwn.wiring import Services
from web_support import api_token, bearer, make_org

App = tuple[TestClient, Services]
URL = "/api/v1/submissions"
SCAN_DNS = "2019-01-01-scan_dns-test-test.csv"


@pytest.fixture
def source(web_app: App) -> dict[str, str]:
    return bearer(api_token(web_app[1], source="shadowserver-test"))


def csv_bytes(shared_data: Path) -> bytes:
    return (shared_data / "shadowserver" / "csv" / "scan_dns.csv").read_bytes()


def intelmq_events(shared_data: Path) -> list[dict[str, object]]:
    path = shared_data / "intelmq" / "events" / "aggregate_events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reports(svc: Services) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Report)).scalar() or 0)


def test_a_shadowserver_csv_upload_is_ingested_under_the_sources_feed_name(
        web_app: App, source: dict[str, str], shared_data: Path) -> None:
    client, svc = web_app
    r = client.post(URL, headers=source,
                    files={"file": (SCAN_DNS, csv_bytes(shared_data), "text/csv")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "ingested" and body["duplicate"] is False
    assert (body["parser"], body["report_type"], body["feed"]) == (
        "shadowserver", "scan_dns", "shadowserver-test")
    assert (body["rows"], body["events"], body["quarantined"]) == (100, 100, 0)
    assert body["file_name"] == SCAN_DNS and len(body["sha256"]) == 64
    with svc.engine.connect() as conn:
        rep = conn.execute(select(Report.feed_name, Report.events)
                           .where(Report.sha256 == body["sha256"])).one()
    assert tuple(rep) == ("shadowserver-test", 100)
    assert len(svc.events.files()) == 1
    assert list((svc.settings.home / "incoming").iterdir()) == []  # temp files cleaned up

    status = client.get(f"{URL}/{body['sha256']}", headers=source)
    assert status.status_code == 200
    assert {k: status.json()[k] for k in ("status", "events", "report_type")} == {
        "status": "ingested", "events": 100, "report_type": "scan_dns"}


def test_the_same_file_again_is_a_duplicate_and_changes_nothing(
        web_app: App, source: dict[str, str], shared_data: Path) -> None:
    client, svc = web_app
    files = {"file": (SCAN_DNS, csv_bytes(shared_data), "text/csv")}
    first = client.post(URL, headers=source, files=files).json()
    again = client.post(URL, headers=source, files=files)
    assert again.status_code == 201
    assert again.json()["duplicate"] is True and again.json()["status"] == "duplicate"
    assert again.json()["sha256"] == first["sha256"]
    assert again.json()["events"] == first["events"] == 100
    assert again.json()["received_at"] == first["received_at"]
    assert reports(svc) == 1 and len(svc.events.files()) == 1


def test_report_type_from_the_file_name_or_given_and_gzip_opened(
        web_app: App, source: dict[str, str], shared_data: Path) -> None:
    client, _ = web_app
    files = {"file": ("export.csv", csv_bytes(shared_data), "text/csv")}
    unknown = client.post(URL, headers=source, files=files)
    assert unknown.status_code == 422
    assert unknown.json() == {"error": "unusable_input", "detail": "cannot tell the report "
                              "type from the file name; pass --report-type"}
    r = client.post(URL + "?report_type=scan_dns", headers=source, files=files)
    assert r.status_code == 201 and r.json()["report_type"] == "scan_dns"
    gz = client.post(URL, headers=source, files={"file": (
        SCAN_DNS + ".gz", gzip.compress(csv_bytes(shared_data)), "application/gzip")})
    assert gz.status_code == 201, gz.text  # gzip is opened, the name still says the type
    assert (gz.json()["report_type"], gz.json()["events"]) == ("scan_dns", 100)


def test_intelmq_events_as_a_json_list_and_as_one_object(
        web_app: App, source: dict[str, str], shared_data: Path) -> None:
    client, svc = web_app
    events = intelmq_events(shared_data)
    r = client.post(URL, headers=source, json=events)
    assert r.status_code == 201, r.text
    assert (r.json()["parser"], r.json()["rows"], r.json()["events"]) == ("intelmq", 25, 25)
    assert r.json()["feed"] == "shadowserver-test"
    one = client.post(URL, headers=source, json=events[0])
    assert one.status_code == 201 and one.json()["events"] == 1
    assert reports(svc) == 2


def test_an_intelmq_jsonl_file_upload(web_app: App, source: dict[str, str],
                                      shared_data: Path) -> None:
    client, _ = web_app
    path = shared_data / "intelmq" / "events" / "aggregate_events.jsonl"
    r = client.post(URL, headers=source,
                    files={"file": (path.name, path.read_bytes(), "application/x-ndjson")})
    assert r.status_code == 201, r.text
    assert (r.json()["parser"], r.json()["events"]) == ("intelmq", 25)


def test_a_stix_bundle_is_taken_in_and_kept(web_app: App, source: dict[str, str],
                                            shared_data: Path) -> None:
    client, svc = web_app
    bundle = json.loads((shared_data / "stix21" / "indicator-for-c2-ip-address.json")
                        .read_text())
    assert bundle["type"] == "bundle"
    r = client.post(URL, headers=source, json=bundle)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["parser"], body["report_type"], body["feed"]) == (
        "stix", "stix", "shadowserver-test")
    assert (body["rows"], body["events"], body["quarantined"]) == (1, 1, 0)  # the C2 address
    assert svc.raw.path_for(body["sha256"]).is_file()  # archived raw, can be re-parsed
    assert client.get(f"{URL}/{body['sha256']}", headers=source).status_code == 200


UNUSABLE = [
    ("garbage.csv", b"\x00\x01\x02\xff" * 64, "binary content, not a text feed"),
    ("notes.txt", b"hello there\nno commas here\n",
     "not a CSV or JSON feed (no comma-separated header)"),
    ("empty.csv", b"", "empty file"),
]


def test_unusable_files_get_the_pipelines_one_line_reason(web_app: App,
                                                          source: dict[str, str]) -> None:
    client, svc = web_app
    for name, content, detail in UNUSABLE:
        r = client.post(URL, headers=source, files={"file": (name, content, "text/plain")})
        assert r.status_code == 422, name
        assert r.json() == {"error": "unusable_input", "detail": detail}
    assert reports(svc) == 0
    with svc.sessions() as s:
        subs = s.scalars(select(Submission).order_by(Submission.id)).all()
    assert [(x.status, x.error, x.holder) for x in subs] == [
        ("unusable", detail, "source:shadowserver-test") for _, _, detail in UNUSABLE]


BAD_JSON = [
    (b"{not json", "bad_json"),
    (b"42", "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b"[]", "empty_submission"),
    (b"", "empty_submission"),
]


def test_a_json_body_that_is_not_events_is_refused(web_app: App,
                                                   source: dict[str, str]) -> None:
    client, svc = web_app
    for content, error in BAD_JSON:
        r = client.post(URL, headers={**source, "Content-Type": "application/json"},
                        content=content)
        assert r.status_code == 422, content
        assert r.json()["error"] == error, content
    assert reports(svc) == 0


def test_requests_that_are_not_a_usable_upload_are_refused(
        web_app: App, source: dict[str, str], shared_data: Path) -> None:
    client, _ = web_app
    raw_csv = client.post(URL, headers={**source, "Content-Type": "text/csv"},
                          content=csv_bytes(shared_data))
    assert raw_csv.status_code == 415
    assert raw_csv.json()["error"] == "unsupported_media_type"
    r = client.post(URL, headers=source, data={"report": "x"},
                    files={"other": ("x.csv", b"a,b\n", "text/csv")})
    assert r.status_code == 422
    assert r.json()["error"] == "missing_file"
    broken = client.post(URL, headers={**source,
                                       "Content-Type": "multipart/form-data; boundary=zz"},
                         content=b"--zz\r\nnonsense")
    assert broken.status_code == 422


def test_uploads_over_the_limit_are_refused_before_parsing(
        web_app: App, source: dict[str, str]) -> None:
    client, svc = web_app
    svc.settings.api_max_upload_mb = 1
    big = b"timestamp,ip\n" + b"2024-01-01 00:00:00,192.0.2.1\n" * 40_000  # > 1 MB
    r = client.post(URL, headers=source, files={"file": (SCAN_DNS, big, "text/csv")})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream itself is capped
        yield b"["
        for _ in range(20_000):
            yield b'{"source.ip": "192.0.2.1", "classification.type": "scanner"},'
        yield b"{}]"

    streamed = client.post(URL, headers={**source, "Content-Type": "application/json"},
                           content=chunks())
    assert streamed.status_code == 413
    assert reports(svc) == 0
    assert list((svc.settings.home / "incoming").iterdir()) == []


def test_a_token_is_needed_and_it_needs_the_submit_scope(web_app: App,
                                                          shared_data: Path) -> None:
    client, svc = web_app
    files = {"file": (SCAN_DNS, csv_bytes(shared_data), "text/csv")}
    assert client.post(URL, files=files).status_code == 401
    assert client.post(URL, files=files,
                       headers=bearer("cwn_nope_nope")).status_code == 401
    make_org(svc, "bakkerij", "Bakkerij Jansen")
    org = bearer(api_token(svc, org_id="bakkerij"))
    r = client.post(URL, headers=org, files=files)
    assert r.status_code == 403 and "submit" in r.json()["detail"]
    assert client.get(f"{URL}/{'0' * 64}", headers=org).status_code == 403
    assert reports(svc) == 0


def test_a_source_sees_only_its_own_submissions(web_app: App, source: dict[str, str],
                                                shared_data: Path) -> None:
    client, svc = web_app
    other = bearer(api_token(svc, source="other-source"))
    sha = client.post(URL, headers=source, files={"file": (
        SCAN_DNS, csv_bytes(shared_data), "text/csv")}).json()["sha256"]
    assert client.get(f"{URL}/{sha}", headers=source).status_code == 200
    hidden = client.get(f"{URL}/{sha}", headers=other)
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    assert client.get(f"{URL}/{sha.upper()}", headers=source).status_code == 200
    assert client.get(f"{URL}/not-a-sha", headers=source).status_code == 422
    # The other source sends the same file: one report, but now it may ask after it too.
    dup = client.post(URL, headers=other, files={"file": (
        SCAN_DNS, csv_bytes(shared_data), "text/csv")})
    assert dup.status_code == 201 and dup.json()["duplicate"] is True
    mine = client.get(f"{URL}/{sha}", headers=other)
    assert mine.status_code == 200 and mine.json()["status"] == "duplicate"
    assert mine.json()["feed"] == "shadowserver-test"  # the report's feed: first come
    assert reports(svc) == 1


def test_the_submission_endpoints_are_documented(web_app: App) -> None:
    client, _ = web_app
    spec = client.get("/openapi.json").json()
    post = spec["paths"][URL]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"201", "401", "403", "413", "415", "422"} <= set(post["responses"])
    assert "sha256" in spec["components"]["schemas"]["SubmissionOut"]["properties"]
    assert f"{URL}/{{sha256}}" in spec["paths"]
