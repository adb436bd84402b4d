"""normalise(): one table of (field, input, expected output or INVALID) per field type."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from cwn.events.fields import BY_NAME
from cwn.events.normalise import normalise

INVALID = object()
"""Expected marker: the value is rejected (null output, invalid mask True)."""
EMPTY = None
"""Expected output for empty input: null, and not invalid."""

CASES: list[tuple[str, str, object]] = [
    # STRING / LOWER / UPPER
    ("feed.name", "  Accessible RDP ", "Accessible RDP"),
    ("protocol.transport", "TCP", "tcp"),
    ("source.geolocation.cc", "nl", "NL"),
    # INTEGER / PORT / ASN
    ("source.port", "443", 443),
    ("source.port", "0", 0),
    ("source.port", "65535", 65535),
    ("source.port", "65536", INVALID),
    ("source.port", "-1", INVALID),
    ("source.port", "http", INVALID),
    ("source.asn", "64512", 64512),
    ("source.asn", "AS1103", 1103),
    ("source.asn", "4294967295", 4294967295),
    ("source.asn", "4294967296", INVALID),
    ("source.asn", "0", EMPTY),  # IntelMQ invalidate_zero: unknown, not wrong
    ("source.asn", "-5", INVALID),
    # FLOAT / ACCURACY
    ("source.geolocation.latitude", "52.37", 52.37),
    ("source.geolocation.latitude", "1e2", 100.0),
    ("source.geolocation.latitude", "north", INVALID),
    ("feed.accuracy", "100", 100.0),
    ("feed.accuracy", "100.5", INVALID),
    # BOOLEAN
    ("source.tor_node", "true", True),
    ("source.tor_node", "Y", True),
    ("source.tor_node", "no", False),
    ("source.tor_node", "0", False),
    ("source.tor_node", "maybe", INVALID),
    # DATETIME
    ("time.source", "2010-02-10 00:00:00", datetime(2010, 2, 10, tzinfo=UTC)),
    ("time.source", "2010-02-10T01:02:03Z", datetime(2010, 2, 10, 1, 2, 3, tzinfo=UTC)),
    ("time.source", "2010-02-10T01:02:03+00:00", datetime(2010, 2, 10, 1, 2, 3, tzinfo=UTC)),
    ("time.source", "2010-02-10T03:02:03+02:00", datetime(2010, 2, 10, 1, 2, 3, tzinfo=UTC)),
    ("time.source", "2010-02-10T01:02:03.25Z",
     datetime(2010, 2, 10, 1, 2, 3, 250000, tzinfo=UTC)),
    ("time.source", "2010-02-10", datetime(2010, 2, 10, tzinfo=UTC)),
    ("time.source", "2019-02-30 00:00:00", INVALID),
    ("time.source", "2019-01-01 24:00:00", INVALID),
    ("time.source", "yesterday", INVALID),
    # IP
    ("source.ip", "192.168.0.1", "192.168.0.1"),
    ("source.ip", "255.255.255.255", "255.255.255.255"),
    ("source.ip", "999.1.1.1", INVALID),
    ("source.ip", "1.2.3", INVALID),
    ("source.ip", "01.2.3.4", INVALID),
    ("source.ip", "2001:DB8:0:0::1", "2001:db8::1"),
    ("source.ip", "2001:db8::g", INVALID),
    ("source.ip", "198.51.100.0/24", INVALID),
    # NETWORK
    ("source.network", "198.51.100.7/24", "198.51.100.0/24"),
    ("source.network", "2001:db8::1/64", "2001:db8::/64"),
    ("source.network", "198.51.100.0/33", INVALID),
    # FQDN
    ("source.fqdn", "Node01.Example.COM.", "node01.example.com"),
    ("source.fqdn", "x.x.205.35.bc.googleusercontent.com", "x.x.205.35.bc.googleusercontent.com"),
    ("source.fqdn", "192.168.0.1", INVALID),
    ("source.fqdn", "a..example", INVALID),
    ("source.fqdn", "-bad.example", INVALID),
    ("source.fqdn", "has space.example", INVALID),
    # URL
    ("source.url", "http://example.com/a?b=c", "http://example.com/a?b=c"),
    ("source.url", "example.com/login.php", "example.com/login.php"),
    ("source.url", "not a url", INVALID),
    # TAXONOMY / TYPE / SEVERITY / TLP / REGISTRY
    ("classification.taxonomy", "Vulnerable", "vulnerable"),
    ("classification.taxonomy", "dangerous", INVALID),
    ("classification.type", "infected-system", "infected-system"),
    ("classification.type", "bad-stuff", INVALID),
    ("severity", "HIGH", "high"),
    ("severity", "urgent", INVALID),
    ("tlp", "white", "CLEAR"),
    ("tlp", "TLP:AMBER+STRICT", "AMBER+STRICT"),
    ("tlp", "tlp:green", "GREEN"),
    ("tlp", "purple", INVALID),
    ("source.registry", "ripe ncc", "RIPE"),
    ("source.registry", "arin", "ARIN"),
    ("source.registry", "IANA", INVALID),
    # CVE list, base64, JSON
    ("cve", "cve-2021-26855, CVE-2021-27065", "CVE-2021-26855,CVE-2021-27065"),
    ("cve", "CVE-21-1", INVALID),
    ("raw", "aGVsbG8=", "aGVsbG8="),
    ("raw", "not base64!", INVALID),
    ("extra", '{"a": 1}', '{"a": 1}'),
]


@pytest.mark.parametrize(("field", "text", "expected"), CASES)
def test_normalise_value(field: str, text: str, expected: object) -> None:
    out, invalid = normalise(BY_NAME[field], pa.array([text]))
    assert out.type == BY_NAME[field].arrow_type
    if expected is INVALID:
        assert out.to_pylist() == [None]
        assert invalid.to_pylist() == [True]
    else:
        assert out.to_pylist() == [expected]
        assert invalid.to_pylist() == [False]


@pytest.mark.parametrize("field", sorted({c[0] for c in CASES}))
def test_empty_and_null_are_absent_not_invalid(field: str) -> None:
    out, invalid = normalise(BY_NAME[field], pa.array(["", "   ", None], pa.string()))
    assert out.to_pylist() == [None, None, None]
    assert invalid.to_pylist() == [False, False, False]


def test_whole_column_mixed_good_and_bad() -> None:
    values = pa.array(["10.0.0.1", "10.0.0.256", "", "::1", "10.0.0.1"])
    out, invalid = normalise(BY_NAME["source.ip"], values)
    assert out.to_pylist() == ["10.0.0.1", None, None, "::1", "10.0.0.1"]
    assert invalid.to_pylist() == [False, True, False, False, False]


def test_chunked_input_is_accepted() -> None:
    values = pa.chunked_array([["80"], ["8080", "x"]])
    out, invalid = normalise(BY_NAME["source.port"], values)
    assert out.to_pylist() == [80, 8080, None]
    assert invalid.to_pylist() == [False, False, True]
