"""Report type and date from Shadowserver delivery file names."""

from __future__ import annotations

from datetime import date

import pytest

from cwn.ingest.shadowserver.filename import detect
from cwn.ingest.shadowserver.schema import load_table

KNOWN = load_table(None).report_types


@pytest.mark.parametrize(
    ("file_name", "report_type", "day", "known"),
    [
        ("2019-01-01-scan_dns-test-test.csv", "scan_dns", date(2019, 1, 1), True),
        ("2019-01-01-event4_sinkhole.csv", "event4_sinkhole", date(2019, 1, 1), True),
        ("2010-02-10-event4_honeypot_ddos_target-test.csv", "event4_honeypot_ddos_target",
         date(2010, 2, 10), True),
        # the longest known type wins over a shorter known prefix
        ("2010-02-10-event4_honeypot_ddos-test.csv", "event4_honeypot_ddos",
         date(2010, 2, 10), True),
        ("2019-01-01-scan_ldap_tcp-nl-org-multi-part.csv", "scan_ldap_tcp", date(2019, 1, 1), True),
        ("/var/spool/in/2024-05-06-scan6_rdp-some-org.csv", "scan6_rdp", date(2024, 5, 6), True),
        ("scan_dns.csv", "scan_dns", None, True),
        # unknown types: the token up to the first dash
        ("2024-05-06-scan_brandnew-org-filter.csv", "scan_brandnew", date(2024, 5, 6), False),
        ("brandnew_report.csv", "brandnew_report", None, False),
    ],
)
def test_detects_report_type_and_date(
    file_name: str, report_type: str, day: date | None, known: bool
) -> None:
    found = detect(file_name, KNOWN)
    assert found is not None
    assert (found.report_type, found.date, found.known) == (report_type, day, known)


def test_meaningless_name_gives_none() -> None:
    assert detect("2024-05-06-.csv", KNOWN) is None
    assert detect("-.csv", KNOWN) is None
