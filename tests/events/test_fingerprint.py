"""One finding, one fingerprint: stable across time and feeds, distinct across endpoints."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pyarrow as pa

from cwn.events.batch import conform
from cwn.events.fingerprint import FINGERPRINT_FIELDS, fingerprints


def test_same_finding_at_other_times_and_feeds_has_the_same_fingerprint() -> None:
    t = conform(pa.table({
        "source.ip": ["192.0.2.1", "192.0.2.1"],
        "source.port": pa.array([3389, 3389], pa.int32()),
        "classification.identifier": ["accessible-rdp", "accessible-rdp"],
        "time.source": pa.array([datetime(2026, 1, 1, tzinfo=UTC),
                                 datetime(2026, 2, 1, tzinfo=UTC)], pa.timestamp("us", "UTC")),
        "feed.name": ["a", "b"],
    }))
    fp = fingerprints(t).to_pylist()
    assert fp[0] == fp[1] and len(fp[0]) == 32


def test_other_port_or_finding_differs() -> None:
    t = conform(pa.table({
        "source.ip": ["192.0.2.1", "192.0.2.1", "192.0.2.1"],
        "source.port": pa.array([3389, 3390, 3389], pa.int32()),
        "classification.identifier": ["accessible-rdp", "accessible-rdp", "open-smb"],
    }))
    assert len(set(fingerprints(t).to_pylist())) == 3


def test_fingerprint_is_the_documented_formula() -> None:
    """Cases are keyed by it: changing the formula would re-notify every open case."""
    t = conform(pa.table({"source.ip": ["192.0.2.1"],
                          "source.port": pa.array([3389], pa.int32()),
                          "classification.identifier": ["accessible-rdp"]}))
    values = {"source.ip": "192.0.2.1", "source.port": "3389",
              "classification.identifier": "accessible-rdp"}
    text = "|".join(values.get(name, "") for name in FINGERPRINT_FIELDS)
    assert fingerprints(t).to_pylist() == [hashlib.md5(text.encode()).hexdigest()]
