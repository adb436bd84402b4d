"""Choosing a parser, and refusing unusable files with one clear line."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from cwn.ingest.detect import detect
from cwn.ingest.result import UnusableInput

CSV = b'"timestamp","ip","port"\n"2026-01-01 00:00:00",192.0.2.1,80\n'


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "2026-01-01-scan_rdp-nl.csv", "empty"),
        (b"\n\r\n  ", "2026-01-01-scan_rdp-nl.csv", "empty"),
        (b"\x00\x01\x02\x03PNG", "2026-01-01-scan_rdp-nl.csv", "binary"),
        (b"\xff\xfe\xfa" * 10, "x.csv", "binary"),
        (CSV, "whatever.csv", "--report-type"),
        (b"hello world\nthis is prose\n", "notes.txt", "not a CSV"),
        (b"\x1f\x8b\x08\x00garbage", "x.csv.gz", "gzip"),
    ],
)
def test_unusable_files_get_a_one_line_reason(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(UnusableInput) as err:
        detect(data, name)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_shadowserver_type_comes_from_the_delivery_name() -> None:
    found = detect(CSV, "2019-01-01-scan_dns-test-test.csv")
    assert (found.parser, found.report_type, found.report_date) == \
        ("shadowserver", "scan_dns", "2019-01-01")


def test_operator_override_wins() -> None:
    found = detect(CSV, "whatever.csv", report_type="scan_rdp")
    assert (found.parser, found.report_type) == ("shadowserver", "scan_rdp")


def test_json_lines_go_to_the_intelmq_parser() -> None:
    assert detect(b'{"source.ip": "192.0.2.1"}\n', "events.json").parser == "intelmq"


def test_gzip_and_zip_deliveries_are_opened() -> None:
    assert detect(gzip.compress(CSV), "2026-01-01-scan_rdp-nl.csv.gz").data == CSV
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("2026-01-01-scan_rdp-nl.csv", CSV)
    assert detect(buf.getvalue(), "2026-01-01-scan_rdp-nl.csv.zip").data == CSV
