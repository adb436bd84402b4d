"""STIX 2.1 in: the network observables of a bundle become events, one per value.

CERTs and threat-intelligence platforms (MISP, OpenCTI ...) share indicators as STIX
bundles. What cwn can route to an owner are addresses, networks, domain names, URLs and AS
numbers, so that is what is taken from a bundle:

* `indicator` objects (pattern type `stix`): every `<type>:value = '...'` comparison in the
  pattern on `ipv4-addr` / `ipv6-addr` (an address, or a CIDR: `/32` and `/128` are the
  address, larger ones go to `source.network`), `domain-name`, `url` and `email-addr`
  (`source.account`), and `autonomous-system:number = <integer>` (`source.asn`), combined
  in any way with AND / OR / observation operators; `IN (...)` sets and `ISSUBSET` on
  addresses count too. Negated comparisons and every other object
  path are ignored. This is a scanner over comparison expressions, not a STIX pattern
  grammar: it only has to find the literals an indicator names, never to evaluate it;
* `observed-data` objects: the same observable types among the objects they reference
  (`object_refs`, or the deprecated embedded `objects`). A value an indicator of the same
  bundle already names is not repeated (MISP exports both for one attribute). An
  `autonomous-system` among addresses is their AS (`source.asn` on each, when the
  observation names one AS); an observation of an AS alone is an event about that AS.

Each event gets `time.source` (`valid_from` / `first_observed`, else `created`), a
classification from the indicator's `indicator_types` (and its name, for C2 and phishing),
`classification.identifier` = the malware the indicator `indicates` (else its name),
`feed.provider` = the creating identity, `tlp` from the TLP marking definitions, and
`extra.stix_id` / `extra.stix_type` / `extra.stix_bundle` to trace it back.

A bundle is small JSON, so events are built as IntelMQ-keyed dicts and typed column-wise
by the IntelMQ parser's batch builder: values are validated by `cwn.events.normalise`
exactly as for IntelMQ input, and a value a field rejects quarantines that event (with the
STIX object as content). A bundle without anything mappable is a valid report with 0 events.
`_row` is the 1-based position of the STIX object in the bundle.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from cwn.events.batch import EVENT_SCHEMA
from cwn.events.fields import TLP_LEVELS
from cwn.ingest.intelmq import _Columns
from cwn.ingest.result import ParseResult, Quarantined, UnusableInput

REPORT_TYPE = "stix"

TLP_MARKINGS: dict[str, str] = {
    # TLP 1.0, predefined by the STIX 2.1 specification (section 7.2.1.4).
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "CLEAR",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "GREEN",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "AMBER",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "RED",
    # TLP 2.0, published in OASIS cti-stix-common-objects (cwn's own exports use these).
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "CLEAR",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "GREEN",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "AMBER",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "AMBER+STRICT",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "RED",
}
"""The well-known TLP marking-definition ids, so a bundle need not carry the definitions."""

OBSERVABLE_TYPES: frozenset[str] = frozenset(
    {"ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr"})
"""STIX cyber-observable types with a `value` cwn has a field for."""

_VALUE_PATH: dict[str, str] = {**{t: "value" for t in OBSERVABLE_TYPES},
                               "autonomous-system": "number"}
"""The pattern property that names each observable (an AS is named by its number)."""

INDICATOR_CLASSES: tuple[tuple[str, tuple[str, str]], ...] = (
    ("compromised", ("intrusions", "system-compromise")),
    ("malicious-activity", ("malicious-code", "malware")),
    ("anomalous-activity", ("other", "undetermined")),
    ("anonymization", ("other", "other")),
    ("attribution", ("other", "other")),
    ("unknown", ("other", "undetermined")),
)
"""STIX indicator type -> (taxonomy, type), first listed wins when an indicator has several.
`benign` is absent on purpose: an indicator that is only benign makes no event."""

UNCLASSIFIED: tuple[str, str] = ("other", "undetermined")
"""For observed data and indicators without a recognised type: seen, not judged."""

_C2 = re.compile(r"\bc2\b|\bc&c\b|command[- ]and[- ]control", re.IGNORECASE)
_PHISHING = re.compile(r"phish", re.IGNORECASE)

_SNIFF = re.compile(
    rb'"type"\s*:\s*"bundle"|"id"\s*:\s*"[a-z][a-z0-9-]*--[0-9a-fA-F]{8}-')
"""Cheap look at a JSON file's head before paying for a full parse in `looks_like_stix`."""

_LITERAL = r"'(?:[^'\\]|\\.)*'"
_ITEM = rf"(?:{_LITERAL}|\d+)"  # a string, or an integer (`autonomous-system:number = 64496`)
_SCAN = re.compile(
    rf"(?P<literal>{_LITERAL})"
    r"|(?<![\w:.-])(?P<type>[a-z0-9][a-z0-9-]*):(?P<path>[A-Za-z0-9_]+(?:[.\[][^\s=!<>]*)?)"
    r"\s*(?P<neg>NOT\s+)?(?P<op>!=|<=|>=|=|<|>|ISSUBSET|ISSUPERSET|MATCHES|LIKE|IN)\s*"
    rf"(?P<value>{_ITEM}|\(\s*{_ITEM}(?:\s*,\s*{_ITEM})*\s*\))"
)
"""A string literal (skipped, so text inside one is never taken for a comparison) or one
comparison expression `<type>:<path> [NOT] <op> <literal or set of literals>`."""
_ITEMS = re.compile(_ITEM)
_ESCAPE = re.compile(r"\\(.)")


def _unquote(literal: str) -> str:
    return _ESCAPE.sub(r"\1", literal[1:-1])


def pattern_observables(pattern: str) -> list[tuple[str, str]]:
    """(observable type, value) for each mappable comparison in a STIX pattern, in order,
    without repeats."""
    out: list[tuple[str, str]] = []
    for m in _SCAN.finditer(pattern):
        kind = m.group("type")
        if kind is None or m.group("path") != _VALUE_PATH.get(kind):
            continue
        if m.group("neg"):
            continue
        op = m.group("op")
        if op == "ISSUBSET" and kind not in ("ipv4-addr", "ipv6-addr"):
            continue
        if op not in ("=", "IN", "ISSUBSET"):
            continue
        raw = m.group("value")
        for lit in ([raw] if not raw.startswith("(") else _ITEMS.findall(raw)):
            if (kind == "autonomous-system") != lit.isdigit():
                continue  # an AS number is an integer; every other value a string
            item = (kind, lit if lit.isdigit() else _unquote(lit))
            if item[1] and item not in out:
                out.append(item)
    return out


def _address_field(value: str) -> tuple[str, str]:
    """source.ip for an address (or a /32, /128), source.network for a larger CIDR; a
    value that is neither goes to source.ip so the normaliser rejects it with its reason."""
    text = value.strip()
    if "/" not in text:
        return "source.ip", text
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return "source.ip", text
    if net.prefixlen == net.max_prefixlen:
        return "source.ip", str(net.network_address)
    return "source.network", net.compressed


def observable_field(kind: str, value: str) -> tuple[str, Any]:
    """The IntelMQ field (and value) one observable fills."""
    if kind in ("ipv4-addr", "ipv6-addr"):
        return _address_field(value)
    if kind == "autonomous-system":
        return "source.asn", int(value)
    if kind == "domain-name":
        return "source.fqdn", value
    if kind == "url":
        return "source.url", value
    return "source.account", value  # email-addr


def _tlp_of_definition(obj: Mapping[str, Any]) -> str | None:
    """The TLP level a marking-definition object in the bundle stands for, if any."""
    level: Any = None
    definition = obj.get("definition")
    if obj.get("definition_type") == "tlp" and isinstance(definition, dict):
        level = definition.get("tlp")
    extensions = obj.get("extensions")
    if level is None and isinstance(extensions, dict):
        for ext in extensions.values():
            if isinstance(ext, dict) and isinstance(ext.get("tlp_2_0"), str):
                level = ext["tlp_2_0"]
                break
    if level is None and isinstance(obj.get("name"), str):
        m = re.fullmatch(r"\s*TLP\s*:\s*([A-Za-z+]+)\s*", obj["name"])
        level = m.group(1) if m else None
    if not isinstance(level, str):
        return None
    level = level.strip().upper()
    level = "CLEAR" if level == "WHITE" else level
    return level if level in TLP_LEVELS else None


def _is_object(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    kind, ident = value.get("type"), value.get("id")
    return isinstance(kind, str) and isinstance(ident, str) and ident.startswith(kind + "--")


def stix_objects(doc: Any) -> list[dict[str, Any]] | None:
    """The objects of a STIX bundle, a bare list of STIX objects or one STIX object; None
    when `doc` is none of these."""
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        objects = doc.get("objects", [])
        if not isinstance(objects, list):
            return None
        return [o for o in objects if isinstance(o, dict)]
    if _is_object(doc) and doc.get("spec_version") == "2.1":
        return [doc]
    if (isinstance(doc, list) and doc and all(_is_object(o) for o in doc)
            and any(o.get("spec_version") == "2.1" for o in doc)):
        return list(doc)
    return None


def looks_like_stix(body: bytes) -> bool:
    """Whether a JSON file is STIX (bundle, object list or one object) and not IntelMQ.

    Invalid JSON is not STIX here: the IntelMQ parser then gives its one-line reason."""
    if not _SNIFF.search(body[:65536]):
        return False
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return stix_objects(doc) is not None


class _Bundle:
    """Lookups across a bundle's objects: by id, relationships, TLP markings."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.by_id: dict[str, dict[str, Any]] = {
            o["id"]: o for o in objects if isinstance(o.get("id"), str)}
        self.tlp: dict[str, str] = dict(TLP_MARKINGS)
        for o in objects:
            if o.get("type") == "marking-definition" and isinstance(o.get("id"), str):
                level = _tlp_of_definition(o)
                if level is not None:
                    self.tlp[o["id"]] = level
        self.malware: dict[str, str] = {}
        """indicator id -> name of the first malware it `indicates`."""
        for o in objects:
            if o.get("type") != "relationship" or o.get("relationship_type") != "indicates":
                continue
            src, dst = o.get("source_ref"), self.by_id.get(str(o.get("target_ref")))
            if (isinstance(src, str) and dst is not None and dst.get("type") == "malware"
                    and isinstance(dst.get("name"), str) and src not in self.malware):
                self.malware[src] = dst["name"]

    def tlp_of(self, *objs: Mapping[str, Any]) -> str | None:
        """The most restrictive TLP any of these objects is marked with."""
        best = -1
        for obj in objs:
            refs = obj.get("object_marking_refs")
            if not isinstance(refs, list):
                continue
            for ref in refs:
                level = self.tlp.get(ref) if isinstance(ref, str) else None
                if level is not None:
                    best = max(best, TLP_LEVELS.index(level))
        return TLP_LEVELS[best] if best >= 0 else None

    def provider(self, obj: Mapping[str, Any]) -> str | None:
        ident = self.by_id.get(str(obj.get("created_by_ref")))
        name = ident.get("name") if ident is not None else None
        return name if isinstance(name, str) else None


def _classify(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(taxonomy, type) for an indicator; None for one that is only `benign`."""
    types = obj.get("indicator_types") or obj.get("labels") or []  # STIX 2.0: labels
    types = [t.lower() for t in types if isinstance(t, str)] if isinstance(types, list) else []
    if types and all(t == "benign" for t in types):
        return None
    for name, cls in INDICATOR_CLASSES:
        if name in types:
            taxonomy, ctype = cls
            break
    else:
        taxonomy, ctype = UNCLASSIFIED
    if taxonomy == "malicious-code" or (taxonomy, ctype) == UNCLASSIFIED:
        words = " ".join(str(obj.get(k) or "") for k in ("name", "description"))
        phases = obj.get("kill_chain_phases")
        if isinstance(phases, list):
            words += " " + " ".join(str(p.get("phase_name", "")) for p in phases
                                    if isinstance(p, dict))
        if _C2.search(words):
            return "malicious-code", "c2-server"
        if _PHISHING.search(words):
            return "fraud", "phishing"
    return taxonomy, ctype


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _base(obj: Mapping[str, Any], bundle: _Bundle, bundle_id: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"stix_id": obj.get("id"), "stix_type": obj.get("type")}
    if bundle_id:
        extra["stix_bundle"] = bundle_id
    return {"feed.provider": bundle.provider(obj),
            "event_description.text": _text(obj.get("description")), "extra": extra}


def _indicator_events(obj: Mapping[str, Any], bundle: _Bundle,
                      bundle_id: str | None) -> Iterator[dict[str, Any]]:
    pattern = obj.get("pattern")
    if (not isinstance(pattern, str) or obj.get("pattern_type", "stix") != "stix"
            or obj.get("revoked") is True):
        return
    found = pattern_observables(pattern)
    if not found:
        return
    cls = _classify(obj)
    if cls is None:
        return
    malware = bundle.malware.get(str(obj.get("id")))
    base = {
        **_base(obj, bundle, bundle_id),
        "time.source": obj.get("valid_from") or obj.get("created"),
        "classification.taxonomy": cls[0],
        "classification.type": cls[1],
        "classification.identifier": malware or _text(obj.get("name")) or "stix-indicator",
        "malware.name": malware,
        "tlp": bundle.tlp_of(obj),
    }
    for kind, value in found:
        key, val = observable_field(kind, value)
        yield {**base, key: val}


def _referenced(obj: Mapping[str, Any], bundle: _Bundle) -> Iterator[Mapping[str, Any]]:
    """The observables an observed-data object holds, by reference or embedded."""
    refs = obj.get("object_refs")
    if isinstance(refs, list):
        for ref in refs:
            sco = bundle.by_id.get(ref) if isinstance(ref, str) else None
            if sco is not None:
                yield sco
    embedded = obj.get("objects")
    if isinstance(embedded, dict):
        yield from (v for v in embedded.values() if isinstance(v, dict))


def _observed_events(obj: Mapping[str, Any], bundle: _Bundle,
                     bundle_id: str | None) -> Iterator[dict[str, Any]]:
    if obj.get("revoked") is True:
        return
    base = {
        **_base(obj, bundle, bundle_id),
        "time.source": obj.get("first_observed") or obj.get("created"),
        "classification.taxonomy": UNCLASSIFIED[0],
        "classification.type": UNCLASSIFIED[1],
        "classification.identifier": "stix-observed-data",
    }
    seen: set[tuple[str, Any]] = set()
    found: list[dict[str, Any]] = []
    systems: dict[int, Mapping[str, Any]] = {}
    for sco in _referenced(obj, bundle):
        kind, value = sco.get("type"), sco.get("value")
        number = sco.get("number")
        if kind == "autonomous-system" and isinstance(number, int) and number > 0:
            systems.setdefault(number, sco)
        if kind not in OBSERVABLE_TYPES or not isinstance(value, str) or not value.strip():
            continue
        key, val = observable_field(str(kind), value)
        if (key, val) in seen:
            continue
        seen.add((key, val))
        found.append({**base, key: val, "tlp": bundle.tlp_of(obj, sco)})
    if found:
        # The AS of an observation describes its addresses; it says which one only when
        # there is a single AS.
        only = next(iter(systems)) if len(systems) == 1 else None
        for event in found:
            yield {**event, "source.asn": only} if only is not None else event
    else:  # an observation of an AS alone: the AS is what was seen
        for number, sco in systems.items():
            yield {**base, "source.asn": number, "tlp": bundle.tlp_of(obj, sco)}


_VALUE_KEYS = ("source.ip", "source.network", "source.fqdn", "source.url", "source.account",
               "source.asn")


def _value_of(event: Mapping[str, Any]) -> tuple[str, str]:
    return next((k, str(event[k]).lower()) for k in _VALUE_KEYS if k in event)


def bundle_events(objects: Iterable[dict[str, Any]],
                  bundle_id: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(1-based object position, IntelMQ-keyed event) for every mappable observable."""
    objects = list(objects)
    bundle = _Bundle(objects)
    events: list[tuple[int, dict[str, Any]]] = []
    for i, obj in enumerate(objects, 1):
        if obj.get("type") == "indicator":
            events.extend((i, e) for e in _indicator_events(obj, bundle, bundle_id))
    named = {_value_of(e) for _, e in events}
    for i, obj in enumerate(objects, 1):
        if obj.get("type") == "observed-data":
            for e in _observed_events(obj, bundle, bundle_id):
                if _value_of(e) not in named:  # an indicator already says more about it
                    named.add(_value_of(e))
                    events.append((i, e))
    return events


def _load(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    body = data.removeprefix(b"\xef\xbb\xbf").strip()
    if not body:
        raise UnusableInput("empty file")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnusableInput(f"invalid JSON: {exc}") from None
    objects = stix_objects(doc)
    if objects is None:
        raise UnusableInput("not a STIX 2.1 bundle or list of STIX objects")
    bundle_id = doc.get("id") if isinstance(doc, dict) and doc.get("type") == "bundle" \
        else None
    return objects, bundle_id if isinstance(bundle_id, str) else None


def parse(
    data: bytes, *, file_name: str, observed: datetime, feed_name: str | None = None
) -> ParseResult:
    """Parse a STIX 2.1 bundle (or a JSON list of STIX objects) into an event batch.

    `rows` is the number of STIX objects; `time.observation` is `observed`, `feed.name` is
    `feed_name`, `report_type` is `stix`. Raises `UnusableInput` for invalid JSON or JSON
    that is not STIX.
    """
    del file_name  # the format carries no metadata in its name
    objects, bundle_id = _load(data)
    events = bundle_events(objects, bundle_id)

    cols = _Columns()
    obs = observed if observed.tzinfo is not None else observed.replace(tzinfo=UTC)
    for _, event in events:
        cols.add({**event, "time.observation": obs.isoformat(), "feed.name": feed_name,
                  "extra.report_type": REPORT_TYPE})
    table, reasons = cols.build(strict=True)
    table = table.set_column(EVENT_SCHEMA.get_field_index("_row"), "_row",
                             pa.array([i for i, _ in events], pa.int64()))

    quarantine: list[Quarantined] = []
    if reasons:
        for n in sorted(reasons):
            i = events[n][0]
            quarantine.append(Quarantined(i, reasons[n], orjson.dumps(objects[i - 1]).decode()))
        keep = pa.array([n not in reasons for n in range(table.num_rows)], pa.bool_())
        table = table.filter(keep)

    return ParseResult(events=table, rows=len(objects), quarantine=quarantine,
                       feed_name=feed_name, report_type=REPORT_TYPE)
