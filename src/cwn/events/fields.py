"""The field catalogue: the single source of truth for what an event may carry.

Names and value types follow IntelMQ's harmonization so that CERTs running IntelMQ can feed
cwn and read its exports unchanged. cwn adds a few fields of its own (severity, CVEs, the
attribution result); their IntelMQ spelling (`intelmq_name`) puts them under `extra.` so an
IntelMQ consumer still accepts them. `docs/data-format.md` is generated from this module
(`python -m cwn.events.docs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class FieldType(StrEnum):
    STRING = "String"
    LOWER = "LowercaseString"
    UPPER = "UppercaseString"
    INTEGER = "Integer"
    PORT = "Port"
    ASN = "ASN"
    FLOAT = "Float"
    ACCURACY = "Accuracy"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    IP = "IPAddress"
    NETWORK = "IPNetwork"
    FQDN = "FQDN"
    URL = "URL"
    TAXONOMY = "ClassificationTaxonomy"
    CTYPE = "ClassificationType"
    REGISTRY = "Registry"
    TLP = "TLP"
    BASE64 = "Base64"
    JSONDICT = "JSONDict"
    SEVERITY = "Severity"
    CVE_LIST = "CVEList"


ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.INTEGER: pa.int64(),
    FieldType.PORT: pa.int32(),
    FieldType.ASN: pa.int64(),
    FieldType.FLOAT: pa.float64(),
    FieldType.ACCURACY: pa.float64(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
}
"""Arrow type per field type; every other type is stored as UTF-8 text."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: FieldType
    description: str
    intelmq_name: str | None = None
    """How the field is spelled in IntelMQ when that differs (cwn's own fields)."""

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES.get(self.type, pa.string())

    @property
    def export_name(self) -> str:
        return self.intelmq_name or self.name


TAXONOMIES: dict[str, tuple[str, ...]] = {
    # IntelMQ / Reference Security Incident Taxonomy (RSIT): taxonomy -> its types.
    "abusive-content": ("spam", "harmful-speech", "violence"),
    "malicious-code": ("infected-system", "c2-server", "malware-distribution",
                       "malware-configuration", "malware"),
    "information-gathering": ("scanner", "sniffing", "social-engineering"),
    "intrusion-attempts": ("ids-alert", "brute-force", "exploit"),
    "intrusions": ("privileged-account-compromise", "unprivileged-account-compromise",
                   "application-compromise", "system-compromise", "burglary"),
    "availability": ("ddos", "dos", "outage", "sabotage"),
    "information-content-security": ("unauthorised-information-access",
                                     "unauthorised-information-modification", "data-loss",
                                     "data-leak"),
    "fraud": ("unauthorized-use-of-resources", "copyright", "masquerade", "phishing"),
    "vulnerable": ("weak-crypto", "ddos-amplifier", "potentially-unwanted-accessible",
                   "information-disclosure", "vulnerable-system"),
    "other": ("other", "undetermined", "blacklist", "unknown"),
    "test": ("test",),
}
TAXONOMY_OF_TYPE: dict[str, str] = {t: tax for tax, types in TAXONOMIES.items() for t in types}

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
"""Ordered: a higher index is more severe (Shadowserver's scale)."""

TLP_LEVELS: tuple[str, ...] = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
"""TLP 2.0, least to most restrictive. TLP 1.0 `WHITE` is read as `CLEAR`."""

REGISTRIES: tuple[str, ...] = ("AFRINIC", "APNIC", "ARIN", "LACNIC", "RIPE")


def _net(prefix: str, what: str) -> list[Field]:
    """The IntelMQ fields describing one side (source or destination) of an event."""
    F, T = Field, FieldType
    p = prefix
    return [
        F(f"{p}.ip", T.IP, f"IPv4 or IPv6 address of the {what}."),
        F(f"{p}.port", T.PORT, f"Port of the {what}."),
        F(f"{p}.asn", T.ASN, f"Autonomous system number of the {what}."),
        F(f"{p}.as_name", T.STRING, f"Name of the AS of the {what}."),
        F(f"{p}.network", T.NETWORK, f"CIDR network of the {what}."),
        F(f"{p}.fqdn", T.FQDN, f"Fully qualified domain name of the {what}."),
        F(f"{p}.reverse_dns", T.FQDN, f"Reverse DNS name of the {what} IP."),
        F(f"{p}.domain_suffix", T.FQDN, f"Public suffix of the {what} FQDN."),
        F(f"{p}.url", T.URL, f"URL of the {what}."),
        F(f"{p}.urlpath", T.STRING, f"Path part of the {what} URL."),
        F(f"{p}.local_ip", T.IP, f"Internal (NAT) IP of the {what}."),
        F(f"{p}.local_hostname", T.STRING, f"Internal hostname of the {what}."),
        F(f"{p}.account", T.STRING, f"Account name involved at the {what}."),
        F(f"{p}.abuse_contact", T.LOWER, f"Abuse e-mail address of the {what}."),
        F(f"{p}.allocated", T.DATETIME, f"Allocation date of the {what} block."),
        F(f"{p}.registry", T.REGISTRY, f"RIR that holds the {what} block."),
        F(f"{p}.tor_node", T.BOOLEAN, f"Whether the {what} is a Tor node."),
        F(f"{p}.geolocation.cc", T.UPPER, f"ISO 3166-1 alpha-2 country of the {what}."),
        F(f"{p}.geolocation.country", T.STRING, f"Country name of the {what}."),
        F(f"{p}.geolocation.region", T.STRING, f"Region of the {what}."),
        F(f"{p}.geolocation.state", T.STRING, f"State of the {what}."),
        F(f"{p}.geolocation.city", T.STRING, f"City of the {what}."),
        F(f"{p}.geolocation.latitude", T.FLOAT, f"Latitude of the {what}."),
        F(f"{p}.geolocation.longitude", T.FLOAT, f"Longitude of the {what}."),
    ]


_T = FieldType
CATALOGUE: tuple[Field, ...] = (
    Field("time.source", _T.DATETIME, "When the source saw the observation (UTC)."),
    Field("time.observation", _T.DATETIME, "When the feed was collected (UTC)."),
    Field("feed.name", _T.STRING, "Name of the feed the event came from."),
    Field("feed.provider", _T.STRING, "Organisation that provides the feed."),
    Field("feed.accuracy", _T.ACCURACY, "Trust in the feed, 0 to 100."),
    Field("feed.code", _T.STRING, "Short code of the feed."),
    Field("feed.url", _T.URL, "Where the feed was collected."),
    Field("feed.documentation", _T.STRING, "Where the feed is documented."),
    Field("classification.taxonomy", _T.TAXONOMY, "Incident taxonomy (RSIT)."),
    Field("classification.type", _T.CTYPE, "Incident type within the taxonomy."),
    Field("classification.identifier", _T.STRING,
          "The finding: service, vulnerability or malware."),
    Field("protocol.transport", _T.LOWER, "Transport protocol (tcp, udp, icmp)."),
    Field("protocol.application", _T.LOWER, "Application protocol (http, rdp, smb ...)."),
    *_net("source", "source"),
    *_net("destination", "destination"),
    Field("malware.name", _T.LOWER, "Malware family."),
    Field("malware.version", _T.STRING, "Malware version."),
    Field("malware.hash.md5", _T.STRING, "MD5 of the sample."),
    Field("malware.hash.sha1", _T.STRING, "SHA-1 of the sample."),
    Field("malware.hash.sha256", _T.STRING, "SHA-256 of the sample."),
    Field("event_description.text", _T.STRING, "Free-text description."),
    Field("event_description.url", _T.URL, "URL describing the event."),
    Field("event_description.target", _T.STRING, "Targeted organisation or sector."),
    Field("comment", _T.STRING, "Free-text comment."),
    Field("status", _T.STRING, "Online status of the resource."),
    Field("screenshot_url", _T.URL, "Screenshot of the resource."),
    Field("misp.event_uuid", _T.LOWER, "Source MISP event."),
    Field("misp.attribute_uuid", _T.LOWER, "Source MISP attribute."),
    Field("tlp", _T.TLP, "Traffic Light Protocol label (TLP 2.0)."),
    Field("severity", _T.SEVERITY, "Severity: info, low, medium, high or critical.",
          intelmq_name="extra.severity"),
    Field("cve", _T.CVE_LIST, "CVE identifiers, comma-separated (CVE-YYYY-NNNN).",
          intelmq_name="extra.cve"),
    Field("extra", _T.JSONDICT, "Everything else the source gave, as a JSON object."),
    Field("raw", _T.BASE64, "The source record, base64-encoded."),
)

BY_NAME: dict[str, Field] = {f.name: f for f in CATALOGUE}
BY_EXPORT_NAME: dict[str, Field] = {f.export_name: f for f in CATALOGUE}

# Attribution results travel with every event (see cwn.attribute). In the IntelMQ export they
# are `extra.organization` and `extra.matched_asset` (and `extra.match_kind`).
ATTRIBUTION_FIELDS: tuple[Field, ...] = (
    Field("organization", _T.STRING, "Registry id of the owning organisation; for an owner "
          "found in public data `ripe:<org or block>`, `csirt:<country>` or `as:<number>`.",
          intelmq_name="extra.organization"),
    Field("matched_asset", _T.STRING, "The registry asset that matched (or the RIPE block, "
          "country or AS for a public owner).", intelmq_name="extra.matched_asset"),
    Field("match_kind", _T.STRING, "How it matched: ip, domain or asn (registry); ripe, "
          "csirt or as (public data).", intelmq_name="extra.match_kind"),
)
