"""STIX 2.1 out: a bundle for threat-intelligence platforms (OpenCTI, MISP, ...).

The bundle holds one `identity` (the producer, `created_by_ref` of everything) and per event:

* an `indicator` + `sighting` when the event's source *is* the threat (classification type
  `c2-server`, `malware-distribution`, `malware-configuration`, `phishing`): the pattern
  matches the source URL, else FQDN, else IP; the sighting (of that indicator, sighted by
  the producer) carries the time;
* an `observed-data` otherwise (a vulnerable or infected system, a scanner ...), referring
  to `ipv4-addr`/`ipv6-addr` (an address, or a network in CIDR form), `domain-name`, `url`,
  `autonomous-system` and `network-traffic` (ports and protocols) objects for the source and
  destination.

An event with nothing observable (no address, name, URL, network or AS) becomes a `note`
holding the event as IntelMQ JSON.

The classification (taxonomy, type, identifier) becomes the objects' `labels`, the event's
TLP the matching TLP 2.0 `marking-definition` (included in the bundle), CVEs
`external_references`; severity, fingerprint, feed and attribution travel as `x_cwn_*`
custom properties. Object ids are derived from the event (uuid5), so exporting the same
events again yields the same ids; only the bundle id is random.

Objects are built and validated with the `stix2` library and written one by one, so the
bundle streams: memory does not grow with the number of events (except for the set of
cyber-observable ids already written, which are shared between events).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import stix2

from cwn.render.formats import iter_chunks
from cwn.render.formats.intelmq import render_lines

NAMESPACE = uuid.UUID("6c3f4a8e-2f0b-5d43-9a57-0c1d2e3f4a5b")
"""uuid5 namespace of cwn's STIX object ids."""

TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_MARKINGS: dict[str, str] = {
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
"""The published TLP 2.0 marking definitions (OASIS cti-stix-common-objects)."""

INDICATOR_TYPES: frozenset[str] = frozenset(
    {"c2-server", "malware-distribution", "malware-configuration", "phishing"}
)
"""Classification types whose source is the malicious thing itself: exported as indicator."""


def tlp_marking(level: str) -> stix2.v21.MarkingDefinition:
    """The TLP 2.0 marking-definition object for a cwn TLP level (`AMBER+STRICT` ...)."""
    return stix2.v21.MarkingDefinition(
        id=TLP_MARKINGS[level],
        created="2022-10-01T00:00:00.000Z",
        name=f"TLP:{level}",
        extensions={TLP_EXTENSION: {"extension_type": "property-extension",
                                    "tlp_2_0": level.lower()}},
    )


def _id(kind: str, seed: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, kind + '|' + seed)}"


def _quote(value: str) -> str:
    """A STIX pattern string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _address(ip: str) -> stix2.v21._Observable:
    if ":" in ip:
        return stix2.v21.IPv6Address(value=ip)
    return stix2.v21.IPv4Address(value=ip)


class _Writer:
    def __init__(self, out: BinaryIO, identity: stix2.v21.Identity) -> None:
        self.out = out
        self.identity = identity
        self.first = True
        self.seen: set[str] = set()

    def emit(self, obj: Any) -> str:
        """Write an object once (by id); returns its id."""
        oid: str = obj["id"]
        if oid in self.seen:
            return oid
        self.seen.add(oid)
        self.out.write(b"\n" if self.first else b",\n")
        self.first = False
        self.out.write(obj.serialize().encode())
        return oid

    def event(self, ev: dict[str, Any], seed: str) -> None:
        when = datetime.fromisoformat(ev.get("time.source") or ev["time.observation"])
        created = datetime.fromisoformat(ev.get("time.observation") or ev["time.source"])
        labels = [ev[k] for k in ("classification.taxonomy", "classification.type",
                                  "classification.identifier") if ev.get(k)]
        labels = list(dict.fromkeys(labels))
        common: dict[str, Any] = {
            "created_by_ref": self.identity.id,
            "created": created,
            "modified": created,
        }
        if labels:
            common["labels"] = labels
        tlp = ev.get("tlp")
        if tlp in TLP_MARKINGS:
            self.emit(tlp_marking(tlp))
            common["object_marking_refs"] = [TLP_MARKINGS[tlp]]
        cves = [c for c in str(ev.get("extra.cve") or "").split(",") if c]
        if cves:
            common["external_references"] = [
                {"source_name": "cve", "external_id": c} for c in cves]
        for key, prop in (("extra.severity", "x_cwn_severity"),
                          ("extra.fingerprint", "x_cwn_fingerprint"),
                          ("feed.name", "x_cwn_feed"),
                          ("extra.organization", "x_cwn_organization"),
                          ("classification.identifier", "x_cwn_identifier")):
            if ev.get(key) is not None:
                common[prop] = ev[key]

        if ev.get("classification.type") in INDICATOR_TYPES and self._indicator(
                ev, seed, when, common):
            return
        self._observed(ev, seed, when, common)

    def _indicator(self, ev: dict[str, Any], seed: str, when: datetime,
                   common: dict[str, Any]) -> bool:
        found = [(kind, ev[key]) for key, kind in (("source.url", "url"),
                                                    ("source.fqdn", "domain-name"),
                                                    ("source.ip", "ip")) if ev.get(key)]
        if not found:
            return False
        obj_type, value = found[0]
        if obj_type == "ip":
            obj_type = "ipv6-addr" if ":" in value else "ipv4-addr"
        desc = ev.get("event_description.text")
        indicator = stix2.v21.Indicator(
            id=_id("indicator", seed),
            name=f"{ev.get('classification.identifier') or ev['classification.type']}: {value}",
            pattern=f"[{obj_type}:value = {_quote(value)}]",
            pattern_type="stix",
            valid_from=when,
            indicator_types=["malicious-activity"],
            allow_custom=True,
            **({"description": desc} if desc else {}),
            **common,
        )
        self.emit(indicator)
        sighting_common = {k: v for k, v in common.items() if k != "labels"}
        self.emit(stix2.v21.Sighting(
            id=_id("sighting", seed),
            sighting_of_ref=indicator.id,
            where_sighted_refs=[self.identity.id],
            first_seen=when,
            last_seen=when,
            count=1,
            allow_custom=True,
            **sighting_common,
        ))
        return True

    def _observed(self, ev: dict[str, Any], seed: str, when: datetime,
                  common: dict[str, Any]) -> None:
        refs: list[str] = []
        ends: dict[str, str] = {}
        for side in ("source", "destination"):
            ip, fqdn, url = (ev.get(f"{side}.ip"), ev.get(f"{side}.fqdn"),
                             ev.get(f"{side}.url"))
            if ip:
                ends[side] = self.emit(_address(ip))
                refs.append(ends[side])
            if fqdn:
                dn = self.emit(stix2.v21.DomainName(value=fqdn))
                ends.setdefault(side, dn)
                refs.append(dn)
            if url:
                refs.append(self.emit(stix2.v21.URL(value=url)))
            network = ev.get(f"{side}.network")
            if network and not ip:
                refs.append(self.emit(_address(network)))  # STIX allows CIDR values
            asn = ev.get(f"{side}.asn")
            if asn is not None:
                name = ev.get(f"{side}.as_name")
                refs.append(self.emit(stix2.v21.AutonomousSystem(
                    number=asn, **({"name": name} if name else {}))))
        ports = {k: ev[f"{side}.port"] for k, side in (("src_port", "source"),
                                                        ("dst_port", "destination"))
                 if ev.get(f"{side}.port") is not None}
        protocols = [p for p in (ev.get("protocol.transport"), ev.get("protocol.application"))
                     if p]
        if ends and (ports or protocols):
            if not protocols:
                protocols = ["ipv6" if ":" in (ev.get("source.ip") or "") else "ipv4"]
            traffic = stix2.v21.NetworkTraffic(
                protocols=protocols,
                **({"src_ref": ends["source"]} if "source" in ends else {}),
                **({"dst_ref": ends["destination"]} if "destination" in ends else {}),
                **ports,
            )
            refs.append(self.emit(traffic))
        if not refs:  # nothing observable: a note with the event itself
            self.emit(stix2.v21.Note(
                id=_id("note", seed), content=orjson.dumps(ev).decode(),
                object_refs=[self.identity.id], allow_custom=True, **common))
            return
        self.emit(stix2.v21.ObservedData(
            id=_id("observed-data", seed),
            first_observed=when,
            last_observed=when,
            number_observed=1,
            object_refs=list(dict.fromkeys(refs)),
            allow_custom=True,
            **common,
        ))


def write_stix(
    batches: pa.Table | Iterable[pa.Table],
    out: BinaryIO,
    *,
    identity_name: str = "cwn",
    created: datetime | None = None,
) -> int:
    """Write events as one STIX 2.1 bundle to `out`; returns the number of events.

    `created` is the producer identity's creation time (default: now); pass it for
    reproducible output.
    """
    identity = stix2.v21.Identity(
        id=_id("identity", identity_name),
        name=identity_name,
        identity_class="organization",
        created=created or datetime.now(UTC),
        modified=created or datetime.now(UTC),
    )
    out.write(b'{"type": "bundle", "id": "bundle--' + str(uuid.uuid4()).encode()
              + b'", "objects": [')
    writer = _Writer(out, identity)
    writer.emit(identity)
    count = 0
    for chunk in iter_chunks(batches):
        if chunk.num_rows == 0:
            continue
        for line in render_lines(chunk, include_raw=False).to_pylist():
            ev = orjson.loads(line)
            writer.event(ev, line)
            count += 1
    out.write(b"\n]}\n")
    return count
