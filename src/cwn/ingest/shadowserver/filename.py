"""Report type and date from Shadowserver delivery file names.

Shadowserver names its files `YYYY-MM-DD-<report_type>-<org>-<filter>.csv`, where the report
type may contain `_` and digits (`event4_honeypot_ddos_target`) and the org/filter parts may
be absent or contain dashes themselves. A bare `<report_type>.csv` is accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath

_DATED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:-(.*))?$")
_TYPE_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SUFFIXES = (".csv.gz", ".csv.zip", ".csv", ".gz", ".zip")


@dataclass(frozen=True, slots=True)
class ReportFile:
    report_type: str
    date: date | None
    known: bool
    """Whether `report_type` matched one of the known types (else: first token)."""


def _stem(file_name: str) -> str:
    name = PurePath(file_name.replace("\\", "/")).name
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _match_known(rest: str, known: Iterable[str]) -> str | None:
    """Longest known type that is `rest` itself or followed by `-`."""
    lowered = rest.lower()
    best: str | None = None
    for t in known:
        tl = t.lower()
        if (lowered == tl or lowered.startswith(tl + "-")) and (best is None or len(t) > len(best)):
            best = t
    return best


def detect(file_name: str, known: Iterable[str] = ()) -> ReportFile | None:
    """The report type and date of a delivery file, or None if the name says nothing.

    >>> detect("2019-01-01-scan_dns-test-test.csv", ["scan_dns"])
    ReportFile(report_type='scan_dns', date=datetime.date(2019, 1, 1), known=True)
    """
    stem = _stem(file_name)
    day: date | None = None
    rest = stem
    m = _DATED.match(stem)
    if m:
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            day = None
        rest = (m.group(4) or "") if day is not None else stem
    found = _match_known(rest, list(known))
    if found is not None:
        return ReportFile(report_type=found, date=day, known=True)
    token = rest.split("-", 1)[0]
    if not token or not _TYPE_TOKEN.match(token):
        return None
    return ReportFile(report_type=token.lower(), date=day, known=False)
