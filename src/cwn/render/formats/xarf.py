"""X-ARF out (and back in): abuse reports for partners whose ticket systems speak X-ARF.

The file is one JSON array of X-ARF **v3** reports (abusix/xarf schema, bundled under
``cwn/render/xarf_schemas``), one report per event: X-ARF has no batch form, and a partner's
tooling imports a list of standalone reports more easily than a new envelope. The issue asked
for "v4"; v3 is the newest schema available offline (see the README next to the schemas).

The report type follows the IntelMQ classification type (``infected-system`` -> ``Botnet``,
``scanner`` -> ``PortScan`` ...); anything else is an ``OpenService`` vulnerability report,
which is what most of cwn's findings are. The v3 schema closes no ``Report`` object
(``additionalProperties`` is only false for ``ReporterInfo``), yet cwn puts its own values
only where the schema names them, so strict importers accept the file too: the case id in
``ReporterCaseID``, the IntelMQ classification, organisation, severity and TLP under
``Custom`` (strings and integers only, as the schema demands).

Every report is validated before it is written, against the schema of its own type (the
dispatching ``oneOf`` of all sixteen types costs sixteen times as much and cannot pick
another type, since ``ReportType`` is an enum per type). `validate_report` is the same check
for any document, and falls back to the full dispatcher when the type is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import jsonschema
import orjson
import pyarrow as pa
import referencing
from referencing.jsonschema import DRAFT7

from cwn.render.formats import iter_chunks
from cwn.render.formats.intelmq import render_lines

VERSION = "3"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "xarf_schemas"
_BASE = "https://raw.githubusercontent.com/xarf/schema-discussion/master/schemas/3/"

# ReportType -> (ReportClass, schema file, accepts destination fields)
REPORT_TYPES: dict[str, tuple[str, str, bool]] = {
    "Botnet": ("Content", "botnet", False),
    "Malware": ("Content", "malware", False),
    "Phishing": ("Content", "phishing", False),
    "PortScan": ("Activity", "portscan", True),
    "LoginAttack": ("Activity", "loginattack", True),
    "DOS": ("Activity", "ddos", True),
    "Exploit": ("Activity", "exploit", True),
    "Spam": ("Activity", "spam", True),
    "OpenService": ("Vulnerability", "openservice", False),
}
_BY_CLASSIFICATION: dict[str, str] = {
    "infected-system": "Botnet",
    "malware-distribution": "Malware",
    "malware-configuration": "Malware",
    "c2-server": "Malware",
    "phishing": "Phishing",
    "scanner": "PortScan",
    "brute-force": "LoginAttack",
    "ddos": "DOS",
    "exploit": "Exploit",
    "spam": "Spam",
}
_NEEDS_IP = frozenset({"PortScan", "LoginAttack", "DOS", "Exploit", "Spam"})
_SEVERITY = {"critical": "high", "high": "high", "medium": "medium", "low": "low",
             "info": "low"}
CUSTOM_KEYS: tuple[str, ...] = (
    "classification.taxonomy", "classification.type", "classification.identifier",
    "extra.organization", "extra.severity", "tlp", "feed.name", "feed.provider",
    "source.fqdn", "extra.report_type",
)
"""IntelMQ fields X-ARF has no place for, carried under ``Custom`` by their IntelMQ names."""
_DATE_FROM = "cwn.date_from"
"""Custom key present when ``Date`` is the observation time (the event has no source time)."""

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_datetime(value: object) -> bool:
    """RFC 3339 check without the optional ``rfc3339-validator`` package, which jsonschema
    needs for ``date-time`` and without which it silently accepts any text."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def _registry() -> referencing.Registry[Any]:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        doc = orjson.loads(path.read_bytes())
        resources.append((doc["$id"], DRAFT7.create_resource(doc)))
    return referencing.Registry().with_resources(resources)


@lru_cache(maxsize=1)
def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(list(checker.checkers))
    checker.checks("date-time")(_is_datetime)
    return checker


@lru_cache(maxsize=32)
def validator(name: str = "xarf") -> jsonschema.Draft7Validator:
    """The validator of one bundled schema (``xarf`` = any v3 report), formats enforced."""
    schema = _registry().contents(f"{_BASE}{name}.schema.json")
    return jsonschema.Draft7Validator(schema, registry=_registry(),
                                      format_checker=_format_checker())


def validate_report(doc: Any) -> None:
    """Raise ValueError (one line) unless ``doc`` is a valid X-ARF v3 report."""
    kind = None
    if isinstance(doc, dict) and isinstance(doc.get("Report"), dict):
        kind = REPORT_TYPES.get(str(doc["Report"].get("ReportType")))
    check = validator(kind[1] if kind else "xarf")
    error = jsonschema.exceptions.best_match(check.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "document"
        message = " ".join(error.message.split())[:200]
        raise ValueError(f"invalid X-ARF v{VERSION} report at {where}: {message}")


def reporter_info(name: str, email: str) -> dict[str, str]:
    """``ReporterInfo`` for the desk; the schema requires the organisation's domain, which
    is the domain of its address."""
    domain = email.rsplit("@", 1)[-1]
    return {"ReporterType": "Org", "ReporterOrg": name, "ReporterOrgDomain": domain,
            "ReporterOrgEmail": email, "ReporterContactEmail": email}


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= 65535 else None


def report(ev: dict[str, Any], reporter: dict[str, str]) -> dict[str, Any]:
    """One event (IntelMQ dict, ``extra.case_id`` set) as an X-ARF report (not validated).

    Raises ValueError for an event with neither source IP nor URL: X-ARF cannot name it.
    """
    ip, url = ev.get("source.ip"), ev.get("source.url")
    if not ip and not url:
        raise ValueError(f"case {ev.get('extra.case_id')}: an event without source IP or URL "
                         "cannot be written as X-ARF")
    kind = _BY_CLASSIFICATION.get(str(ev.get("classification.type")), "OpenService")
    if (kind in _NEEDS_IP and not ip) or (kind == "Phishing" and not url):
        kind = "OpenService"
    klass, _schema, destination = REPORT_TYPES[kind]
    date = ev.get("time.source") or ev.get("time.observation")
    rep: dict[str, Any] = {"ReportClass": klass, "ReportType": kind, "Date": date}
    if ev.get("extra.case_id") is not None:
        rep["ReporterCaseID"] = str(ev["extra.case_id"])
    severity = _SEVERITY.get(str(ev.get("extra.severity")))
    if severity:
        rep["ReporterSeverity"] = severity
    if ip:
        rep["SourceIp"] = ip
    if url:
        rep["SourceUrl"] = url
    port = _port(ev.get("source.port"))
    if port is not None:
        rep["SourcePort"] = port
    asn = ev.get("source.asn")
    if isinstance(asn, int) and 1 <= asn <= 4199999999:
        rep["ASN"] = asn
    transport = ev.get("protocol.transport")
    if transport in ("tcp", "udp"):
        rep["TransportProtocol"] = transport
    if destination:
        if ev.get("destination.ip"):
            rep["DestinationIp"] = ev["destination.ip"]
        dport = _port(ev.get("destination.port"))
        if dport is not None:
            rep["DestinationPort"] = dport
    malware = ev.get("malware.name")
    if malware and kind == "Botnet":
        rep["BotnetName"] = str(malware)
    elif malware and kind == "Malware":
        rep["MalwareName"] = str(malware)
    if kind in ("OpenService", "Exploit"):
        rep["ServiceName"] = str(ev.get("protocol.application")
                                 or ev.get("classification.identifier") or "unknown")
    cves = [c for c in str(ev.get("extra.cve") or "").split(",") if c]
    if kind == "Exploit" and len(cves) == 1 and re.match(r"^CVE-\d{4}-\d{4,7}$", cves[0]):
        rep["CVE"] = cves[0]
    custom = {k: ev[k] for k in CUSTOM_KEYS
              if isinstance(ev.get(k), str | int) and not isinstance(ev.get(k), bool)}
    if not ev.get("time.source"):
        custom[_DATE_FROM] = "time.observation"
    if custom:
        rep["Custom"] = custom
    return {"Version": VERSION, "ReporterInfo": reporter,
            "Disclosure": ev.get("tlp") == "CLEAR", "Report": rep}


def iter_reports(batches: pa.Table | Iterable[pa.Table], *, reporter_name: str,
                 reporter_email: str) -> Iterator[dict[str, Any]]:
    """The validated report of every event."""
    reporter = reporter_info(reporter_name, reporter_email)
    for chunk in iter_chunks(batches):
        if chunk.num_rows == 0:
            continue
        for line in render_lines(chunk, include_raw=False).to_pylist():
            doc = report(orjson.loads(line), reporter)
            validate_report(doc)
            yield doc


def write_xarf(batches: pa.Table | Iterable[pa.Table], out: BinaryIO, *, reporter_name: str,
               reporter_email: str) -> int:
    """Write events as a JSON array of validated X-ARF v3 reports; returns the count.

    Raises ValueError when an event cannot be expressed or a report does not validate.
    """
    count = 0
    out.write(b"[")
    for doc in iter_reports(batches, reporter_name=reporter_name,
                            reporter_email=reporter_email):
        out.write(b"\n" if count == 0 else b",\n")
        out.write(orjson.dumps(doc))
        count += 1
    out.write(b"\n]\n")
    return count


def event_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The IntelMQ fields a report carries (inverse of `report`, as far as X-ARF goes)."""
    rep = doc.get("Report") or {}
    custom = dict(rep.get("Custom") or {})
    date_from = custom.pop(_DATE_FROM, "time.source")
    ev: dict[str, Any] = {k: v for k, v in custom.items() if k in CUSTOM_KEYS}
    for key, field in (("SourceIp", "source.ip"), ("SourceUrl", "source.url"),
                       ("SourcePort", "source.port"), ("ASN", "source.asn"),
                       ("TransportProtocol", "protocol.transport"),
                       ("DestinationIp", "destination.ip"),
                       ("DestinationPort", "destination.port"),
                       ("ReporterCaseID", "extra.case_id")):
        if rep.get(key) is not None:
            ev[field] = rep[key]
    name = rep.get("BotnetName") or rep.get("MalwareName")
    if name:
        ev["malware.name"] = name
    if rep.get("CVE"):
        ev["extra.cve"] = rep["CVE"]
    if rep.get("Date"):
        ev[date_from if date_from in ("time.source", "time.observation")
           else "time.source"] = rep["Date"]
    return ev


def read_xarf(data: bytes) -> list[dict[str, Any]]:
    """Parse and validate a file written by `write_xarf` (or a single report) into IntelMQ
    dicts; raises ValueError (one line) for anything that is not valid X-ARF v3."""
    try:
        docs = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"X-ARF file is not JSON: {exc}") from None
    if isinstance(docs, dict):
        docs = [docs]
    if not isinstance(docs, list):
        raise ValueError("X-ARF file is neither a report nor a list of reports")
    for doc in docs:
        validate_report(doc)
    return [event_of(doc) for doc in docs]
