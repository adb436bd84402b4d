"""Bulk files for intermediaries (ISPs, sector CSIRTs, MSPs) and the short mail carrying them.

An intermediary gets, per cadence, one machine-readable file with every case of all its
constituents, in the format its tooling reads (`FORMATS`): CSV, case-per-line JSON, IntelMQ
JSON lines, X-ARF v3 reports or a STIX 2.1 bundle. Each event carries its case id and the
case's organisation (``extra.case_id`` / ``extra.organization``; X-ARF ``ReporterCaseID``;
STIX ``x_cwn_case_id``), because the partner reports back per case and routes per customer.

A file is checked before it leaves: it is read back (X-ARF also validated against the bundled
schema, STIX parsed by ``stix2``) and must give back exactly the cases and events written. A
partner whose import silently drops half a file never tells us, so we must not send one.

TLP:RED never goes into a bulk file: RED is for the named recipient only, and an
intermediary's file is by design forwarded in pieces. Such a case raises instead.

Cases are tagged column-wise: all events are concatenated once and the per-case values
spread with ``take``, so thousands of small cases cost a handful of Arrow calls.
"""

from __future__ import annotations

import email.utils
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import stix2

from cwn.config import Settings
from cwn.events.batch import EVENT_SCHEMA, conform, plain
from cwn.events.fields import TLP_LEVELS
from cwn.render.formats import iter_chunks
from cwn.render.formats.csv import read_csv_events, write_csv
from cwn.render.formats.intelmq import render_lines, write_intelmq
from cwn.render.formats.jsonl import read_case_lines, write_case_lines
from cwn.render.formats.stix import _id, _Writer
from cwn.render.formats.xarf import event_of, read_xarf, write_xarf
from cwn.render.message import (
    DeskIdentity,
    _header,
    _lang,
    _long_time,
    _mime,
    _safe_filename,
    _template,
    _utc,
    from_header,
)
from cwn.render.tlp import Tlp, most_restrictive, parse_tlp

__all__ = ["FORMATS", "BulkCase", "BulkFile", "read_bulk", "render_bulk_message", "write_bulk"]

FORMATS: tuple[str, ...] = ("csv", "jsonl", "intelmq", "xarf", "stix")
_FILES: dict[str, tuple[str, str]] = {
    "csv": ("csv", "text/csv"),
    "jsonl": ("jsonl", "application/x-ndjson"),
    "intelmq": ("intelmq.jsonl", "application/x-ndjson"),
    "xarf": ("xarf.json", "application/json"),
    "stix": ("stix.json", "application/json"),
}
CASE_ID_HEADER_CAP = 50
TOP_ORGANISATIONS = 20
_RED = TLP_LEVELS.index("RED")


@dataclass(frozen=True)
class BulkCase:
    """One case as it goes into a partner's bulk file."""

    case_id: str
    org_id: str
    org_name: str | None
    report_type: str | None
    taxonomy: str | None
    identifier: str | None
    severity: str
    tlp: str
    first_seen: datetime
    last_seen: datetime
    events: pa.Table
    """EVENT_SCHEMA columns (IntelMQ names), the case's events."""


@dataclass(frozen=True)
class BulkFile:
    data: bytes
    filename: str
    content_type: str
    cases: int
    events: int


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown bulk format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


def _case_tlp(case: BulkCase, default: str | None = None) -> Tlp:
    tlp = parse_tlp(case.tlp, default)
    if tlp.rank >= _RED:
        raise ValueError(f"case {case.case_id} is TLP:RED; bulk files never carry TLP:RED")
    return tlp


# -- tagging -------------------------------------------------------------------------------


def _tagged(cases: Sequence[BulkCase]) -> tuple[pa.Table, list[int]]:
    """All events in case order, with the case id in ``extra``, the case's organisation and
    the stricter of event and case TLP; raises ValueError for any TLP:RED."""
    levels = [_case_tlp(c).level for c in cases]
    tables = [conform(c.events) for c in cases]
    counts = [t.num_rows for t in tables]
    table = pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
    if table.num_rows == 0:
        return table, counts
    rows = pa.array(np.repeat(np.arange(len(cases)), counts))
    # extra: '{...,"case_id":X}' -- appended last so it wins over a stale key in extra
    tails = pa.array([orjson.dumps({"case_id": c.case_id}).decode()[1:] for c in cases],
                     pa.string()).take(rows)
    extra = pc.utf8_trim_whitespace(plain(table.column("extra")))
    obj = pc.fill_null(pc.and_(pc.starts_with(extra, "{"), pc.ends_with(extra, "}")), False)
    inner = pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(extra, 1, -1))
    empty = pc.or_(pc.is_null(extra), pc.and_(obj, pc.equal(inner, "")))
    new = pc.if_else(empty, pc.binary_join_element_wise("{", tails, ""),
                     pc.binary_join_element_wise("{", inner, ",", tails, ""))
    odd = pc.and_(pc.invert(obj), pc.is_valid(extra))
    if pc.any(odd).as_py():  # extra that is not an object: kept under "extra", as IntelMQ does
        idx = pc.indices_nonzero(odd)
        fixed = []
        for text, r in zip(pc.take(extra, idx).to_pylist(), pc.take(rows, idx).to_pylist(),
                           strict=True):
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                value = text
            fixed.append(orjson.dumps({"extra": value, "case_id": cases[r].case_id}).decode())
        new = pc.replace_with_mask(new, odd, pa.array(fixed, pa.string()))
    orgs = pa.array([c.org_id for c in cases], pa.string()).take(rows)
    level_set = pa.array(TLP_LEVELS, pa.string())
    own = pc.index_in(pc.utf8_upper(plain(table.column("tlp"))), value_set=level_set)
    case_rank = pc.index_in(pa.array(levels, pa.string()).take(rows), value_set=level_set)
    rank = pc.max_element_wise(own, case_rank, skip_nulls=True)
    if pc.max(rank).as_py() >= _RED:
        bad = pc.take(rows, pc.indices_nonzero(pc.greater_equal(rank, _RED)))[0].as_py()
        raise ValueError(f"case {cases[bad].case_id} has TLP:RED events; "
                         "bulk files never carry TLP:RED")
    for name, values in (("extra", new), ("organization", orgs),
                         ("tlp", level_set.take(rank))):
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return table, counts


# -- STIX with case ids --------------------------------------------------------------------


class _CaseStix(_Writer):
    """The STIX writer, with ``x_cwn_case_id`` on every object that stands for an event."""

    def _indicator(self, ev: dict[str, Any], seed: str, when: datetime,
                   common: dict[str, Any]) -> bool:
        more = {"x_cwn_case_id": ev.get("extra.case_id")}
        for key in ("source.ip", "source.port"):  # the pattern names one thing, no port
            if ev.get(key) is not None:
                more["x_cwn_" + key.replace(".", "_")] = ev[key]
        return super()._indicator(ev, seed, when, {**common, **more})

    def _observed(self, ev: dict[str, Any], seed: str, when: datetime,
                  common: dict[str, Any]) -> None:
        super()._observed(ev, seed, when, {**common, "x_cwn_case_id": ev.get("extra.case_id")})


def _write_stix(table: pa.Table, out: io.BytesIO, name: str, email_addr: str,
                now: datetime) -> int:
    identity = stix2.v21.Identity(id=_id("identity", name), name=name,
                                  identity_class="organization", contact_information=email_addr,
                                  created=now, modified=now)
    out.write(b'{"type": "bundle", "id": "' + _id("bundle", f"{name}|{now.isoformat()}|"
              f"{table.num_rows}").encode() + b'", "objects": [')
    writer = _CaseStix(out, identity)
    writer.emit(identity)
    count = 0
    for chunk in iter_chunks(table):
        for line in render_lines(chunk, include_raw=False).to_pylist():
            writer.event(orjson.loads(line), line)
            count += 1
    out.write(b"\n]}\n")
    return count


# -- write ---------------------------------------------------------------------------------


def write_bulk(fmt: str, cases: Sequence[BulkCase], *, partner_id: str, reporter_name: str,
               reporter_email: str, now: datetime) -> BulkFile:
    """The partner's bulk file in ``fmt``, read back and checked before it is returned.

    Raises ValueError for an unknown format, a TLP:RED case or event, an event the format
    cannot express (X-ARF needs a source IP or URL) or a file that does not read back to the
    same cases and events.
    """
    _check_format(fmt)
    now = _utc(now)
    table, counts = _tagged(cases)
    out = io.BytesIO()
    if fmt == "csv":
        n = write_csv(table, out)
    elif fmt == "intelmq":
        n = write_intelmq(table, out)
    elif fmt == "jsonl":
        headers = [{"case_id": c.case_id, "organization": c.org_id, "org_name": c.org_name,
                    "report_type": c.report_type, "taxonomy": c.taxonomy,
                    "identifier": c.identifier, "severity": c.severity,
                    "tlp": _case_tlp(c).level, "first_seen": _utc(c.first_seen).isoformat(),
                    "last_seen": _utc(c.last_seen).isoformat()} for c in cases]
        n = write_case_lines(headers, table, counts, out)
    elif fmt == "xarf":
        n = write_xarf(table, out, reporter_name=reporter_name, reporter_email=reporter_email)
    else:
        n = _write_stix(table, out, reporter_name, reporter_email, now)
    data = out.getvalue()
    _verify(fmt, data, cases, counts)
    ext, content_type = _FILES[fmt]
    filename = f"cwn-{_safe_filename(partner_id)}-{now:%Y%m%dT%H%M}.{ext}"
    return BulkFile(data=data, filename=filename, content_type=content_type,
                    cases=sum(1 for c in counts if c), events=n)


def _verify(fmt: str, data: bytes, cases: Sequence[BulkCase], counts: Sequence[int]) -> None:
    """The file must read back to the cases (and, but for STIX, event counts) written.

    STIX object ids are derived from the event, so identical events of one case collapse
    into one object: there only the case ids are compared."""
    if fmt == "stix":
        try:
            stix2.parse(data.decode("utf-8"), allow_custom=True)
        except Exception as exc:  # stix2 raises a zoo of exception types
            raise ValueError(f"STIX bundle does not parse: {' '.join(str(exc).split())}"
                             ) from None
    expected: Counter[str] = Counter()
    for case, n in zip(cases, counts, strict=True):
        expected[case.case_id] += n
    expected = +expected
    if fmt == "xarf":  # every report was validated as it was written: only regroup here
        back = _group([event_of(doc) for doc in orjson.loads(data)], fmt)
    else:
        back = read_bulk(fmt, data)
    got = {cid: len(evs) for cid, evs in back.items()}
    ok = set(got) == set(expected) if fmt == "stix" else got == dict(expected)
    if not ok:
        missing = sorted(set(expected) - set(got))[:3]
        raise ValueError(f"{fmt} bulk file does not read back to the same cases "
                         f"(wrote {sum(expected.values())} events in {len(expected)} cases, "
                         f"read {sum(got.values())} in {len(got)}; missing e.g. {missing})")


# -- read ----------------------------------------------------------------------------------


def _group(events: list[dict[str, Any]], fmt: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for number, ev in enumerate(events, 1):
        cid = ev.get("extra.case_id")
        if cid is None or cid == "":
            raise ValueError(f"{fmt} bulk file: event {number} has no case id")
        out.setdefault(str(cid), []).append(ev)
    return out


def _iso(value: Any) -> Any:
    """A STIX timestamp (``...Z``) in IntelMQ's text form (``...+00:00``)."""
    if not isinstance(value, str):
        return value
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


_PATTERN = re.compile(r"^\[([a-z0-9-]+):value = '((?:[^'\\]|\\.)*)'\]$")


def _stix_events(data: bytes) -> list[dict[str, Any]]:
    try:
        bundle = orjson.loads(data)
        objects = {o["id"]: o for o in bundle["objects"]}
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a STIX bundle: {exc}") from None
    events: list[dict[str, Any]] = []
    for obj in objects.values():
        kind = obj.get("type")
        if kind not in ("observed-data", "indicator", "note") or "x_cwn_case_id" not in obj:
            continue
        if kind == "note":
            events.append(orjson.loads(obj["content"]))
            continue
        ev: dict[str, Any] = {"extra.case_id": obj["x_cwn_case_id"]}
        if obj.get("x_cwn_identifier") is not None:
            ev["classification.identifier"] = obj["x_cwn_identifier"]
        if obj.get("x_cwn_organization") is not None:
            ev["extra.organization"] = obj["x_cwn_organization"]
        if kind == "indicator":
            ev["time.source"] = _iso(obj.get("valid_from"))
            match = _PATTERN.match(obj.get("pattern", ""))
            if match:
                field = {"url": "source.url", "domain-name": "source.fqdn"}.get(
                    match.group(1), "source.ip")
                ev[field] = re.sub(r"\\(.)", r"\1", match.group(2))
            for key in ("source.ip", "source.port"):
                if obj.get("x_cwn_" + key.replace(".", "_")) is not None:
                    ev[key] = obj["x_cwn_" + key.replace(".", "_")]
        else:
            ev["time.source"] = _iso(obj.get("first_observed"))
            refs = [objects.get(r, {}) for r in obj.get("object_refs", [])]
            traffic = next((r for r in refs if r.get("type") == "network-traffic"), None)
            source = objects.get(traffic["src_ref"], {}) if traffic and "src_ref" in traffic \
                else next((r for r in refs if r.get("type") in ("ipv4-addr", "ipv6-addr")), {})
            if source.get("type") in ("ipv4-addr", "ipv6-addr"):
                ev["source.ip"] = source["value"]
            if traffic and traffic.get("src_port") is not None:
                ev["source.port"] = traffic["src_port"]
        events.append(ev)
    return events


def read_bulk(fmt: str, data: bytes) -> dict[str, list[dict[str, Any]]]:
    """Case id -> its events as IntelMQ dicts (``source.ip``, ``source.port``,
    ``time.source``, ``classification.identifier`` at least, where the event had them).

    What a partner's import would do with the file; raises ValueError (one line) for a file
    that is not valid in its format or has an event without a case id.
    """
    _check_format(fmt)
    if fmt == "csv":
        try:
            table = read_csv_events(data)
        except (pa.ArrowInvalid, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"CSV bulk file does not parse: {exc}") from None
        lines = render_lines(table).to_pylist() if table.num_rows else []
        return _group([orjson.loads(line) for line in lines], fmt)
    if fmt == "intelmq":
        events = []
        for number, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    events.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"IntelMQ line {number} is not JSON: {exc}") from None
        return _group(events, fmt)
    if fmt == "jsonl":
        out: dict[str, list[dict[str, Any]]] = {}
        for case in read_case_lines(data):
            out.setdefault(str(case.get("case_id")), []).extend(case["events"])
        return out
    if fmt == "xarf":
        return _group(read_xarf(data), fmt)
    return _group(_stix_events(data), fmt)


# -- the summary mail ----------------------------------------------------------------------

_FORMAT_LABEL: dict[str, str] = {
    "csv": "CSV (IntelMQ field names)",
    "jsonl": "JSON lines, one case per line",
    "intelmq": "IntelMQ JSON lines, one event per line",
    "xarf": "X-ARF v3 (JSON list of reports)",
    "stix": "STIX 2.1 bundle",
}
STATUSES: tuple[str, ...] = ("forwarded", "not_our_customer", "customer_notified", "fixed")
_STATUS_TEXT: dict[str, dict[str, str]] = {
    "nl": {"forwarded": "doorgestuurd naar de klant",
           "not_our_customer": "niet onze klant",
           "customer_notified": "klant op de hoogte gebracht",
           "fixed": "opgelost"},
    "en": {"forwarded": "forwarded to the customer",
           "not_our_customer": "not our customer",
           "customer_notified": "customer notified",
           "fixed": "fixed"},
}


def _format_of(file: BulkFile) -> str:
    """The format of a file `write_bulk` made, from its name (longest extension wins)."""
    found = [(len(ext), f) for f, (ext, _) in _FILES.items() if file.filename.endswith("." + ext)]
    return max(found)[1] if found else ""


def _subject(lang: str, label: str, partner: str, n_cases: int, n_events: int) -> str:
    if lang == "nl":
        return f"[{label}] Bulkbestand voor {partner}: {n_cases} meldingen, {n_events} waarnemingen"
    return f"[{label}] Bulk file for {partner}: {n_cases} cases, {n_events} events"


def _bulk_mime(headers: Sequence[tuple[str, str]], text_body: str, html_body: str,
               file: BulkFile) -> bytes:
    """The summary mail with the bulk file attached under its own content type."""
    ctype = file.content_type + ('; charset="utf-8"; header="present"'
                                 if file.content_type == "text/csv" else "")
    return _mime(headers, text_body, html_body, file.data, _safe_filename(file.filename),
                 ctype)


def render_bulk_message(*, partner_name: str, recipient: str, language: str, file: BulkFile,
                        cases: Sequence[BulkCase], settings: Settings, message_id: str,
                        return_path: str, now: datetime | None = None) -> tuple[bytes, str]:
    """SMTP-ready bytes and subject of the short mail that carries a bulk file.

    The file holds the details; the body only says what is in it (per report type, per
    organisation), how far it may travel (the strictest TLP), how to report back per case
    and who we are. Raises ValueError for no cases, a bad recipient or TLP:RED.
    """
    if not cases:
        raise ValueError(f"bulk mail for {partner_name}: has no cases")
    if re.search(r"[\r\n]", recipient) or "@" not in recipient:
        raise ValueError(f"bulk mail for {partner_name}: bad recipient {recipient!r}")
    lang = _lang(language)
    desk = DeskIdentity.from_settings(settings)
    for case in cases:
        _case_tlp(case, settings.default_tlp)
    tlp = most_restrictive((c.tlp for c in cases), default=settings.default_tlp)
    fmt = _format_of(file)

    types: dict[str, list[int]] = {}
    orgs: dict[str, list[Any]] = {}
    for case in cases:
        n = case.events.num_rows
        t = types.setdefault(case.report_type or "-", [0, 0])
        t[0] += 1
        t[1] += n
        o = orgs.setdefault(case.org_id, [_header(case.org_name or "") or case.org_id, 0, 0])
        o[1] += 1
        o[2] += n
    by_type = [{"name": k, "cases": v[0], "events": v[1]}
               for k, v in sorted(types.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    ranked = sorted(orgs.items(), key=lambda kv: (-kv[1][1], kv[0]))
    by_org = [{"id": k, "name": v[0], "cases": v[1], "events": v[2]}
              for k, v in ranked[:TOP_ORGANISATIONS]]
    case_ids = list(dict.fromkeys(c.case_id for c in cases))
    n_events = sum(c.events.num_rows for c in cases)
    context: dict[str, Any] = {
        "lang": lang,
        "partner_name": _header(partner_name),
        "desk": desk,
        "tlp": tlp,
        "tlp_text": tlp.text(lang),
        "by_type": by_type,
        "by_org": by_org,
        "more_orgs": max(0, len(ranked) - TOP_ORGANISATIONS),
        "n_orgs": len(ranked),
        "n_cases": len(case_ids),
        "n_events": n_events,
        "first_seen": _long_time(min(_utc(c.first_seen) for c in cases), lang),
        "last_seen": _long_time(max(_utc(c.last_seen) for c in cases), lang),
        "filename": _safe_filename(file.filename),
        "fmt": fmt,
        "format_label": _FORMAT_LABEL.get(fmt, file.content_type),
        "statuses": [(s, _STATUS_TEXT[lang][s]) for s in STATUSES],
        "example_case": case_ids[0],
    }
    text_body = _template(f"bulk.{lang}.txt.j2").render(context)
    html_body = _template(f"bulk.{lang}.html.j2").render(context)
    subject = _header(_subject(lang, tlp.label, partner_name, len(case_ids), n_events))
    shown = ", ".join(_header(c) for c in case_ids[:CASE_ID_HEADER_CAP])
    if len(case_ids) > CASE_ID_HEADER_CAP:
        shown += ", ..."
    headers = [
        ("Subject", subject),
        ("From", from_header(desk.name, desk.email)),
        ("To", _header(recipient)),
        ("Date", email.utils.format_datetime(_utc(now) if now else datetime.now(UTC))),
        ("Message-ID", message_id if message_id.startswith("<") else f"<{message_id}>"),
        ("Auto-Submitted", "auto-generated"),
        ("Content-Language", lang),
        ("X-CWN-Case-IDs", shown),
        ("X-CWN-TLP", tlp.level),
        ("X-CWN-Bulk", fmt or file.content_type),
    ]
    if return_path:
        headers.append(("X-CWN-Return-Path", _header(return_path)))
    return _bulk_mime(headers, text_body, html_body, file), subject
