"""Whom to tell about an owner found in public data, with provenance and confidence.

DESIGN.md section 6 gives the order: an operator override, then the owner's own
security.txt (it chose that address for exactly this), then the RDAP abuse contact, then the
RIPE Database abuse-c, and for networks abroad that country's national CSIRT. (Verified
registrations and intermediary agreements come before all of these, but an owner with a
registration is a registry organisation, not a public one.)

Every candidate is stored (`contact_candidates`) with its source, confidence and fetch time;
the policy then ranks them: sources in that order, skipping an address an operator blocked,
one disabled by a hard bounce, or one whose confidence fell below `MIN_CONFIDENCE` (each
"not ours" reply costs `NOT_OURS_PENALTY`). Rank 0 is told; the others are the fall-backs a
bounce or a "not ours" reply moves to. A consumer range marked "ISP only" skips the
subscriber's own security.txt, so the ISP's abuse desk is told.

Resolution runs per notify run for the owners that have due cases: a handful of vectorised
lookups in the imported data, plus live lookups (cached, rate-limited) only when enabled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy import Connection, delete, insert, select

from cwn.db.models_contacts import AddressFlag, ContactCandidate, ContactOverride
from cwn.publicdata.csirts import CsirtDirectory
from cwn.publicdata.ripe import RipeData
from cwn.publicdata.store import PublicDataStore

SOURCE_ORDER = ("override", "securitytxt", "rdap", "ripe", "csirt")
BASE_CONFIDENCE = {"override": 1.0, "rdap": 0.7, "ripe": 0.6, "ripe-parent": 0.5,
                   "csirt": 0.6}
MIN_CONFIDENCE = 0.3
NOT_OURS_PENALTY = 0.3
SOURCE_LABELS = {
    "override": ("door de beheerder van de meldpunt vastgelegd contact",
                 "a contact recorded by our desk"),
    "securitytxt": ("het security.txt-bestand van {detail}", "the security.txt file of {detail}"),
    "rdap": ("het abuse-contact in de RDAP-registratie ({detail})",
             "the abuse contact in the RDAP registration ({detail})"),
    "ripe": ("het abuse-contact in de RIPE Database ({detail})",
             "the abuse contact in the RIPE Database ({detail})"),
    "csirt": ("de lijst van nationale CSIRTs ({detail})",
              "the directory of national CSIRTs ({detail})"),
}
_SECOND_LEVEL = frozenset({"co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au",
                           "co.nz", "co.jp", "com.br", "co.za", "com.cn", "com.tr"})


def registrable_domain(name: str) -> str | None:
    """The domain an owner registered (where its security.txt lives), from a host name.

    Without a public-suffix list offline this keeps the last two labels, three under the
    common second-level suffixes; good for .nl and most European ccTLDs.
    """
    labels = [x for x in name.strip().rstrip(".").lower().split(".") if x]
    if len(labels) < 2 or labels[-1].isdigit():
        return None
    keep = 3 if ".".join(labels[-2:]) in _SECOND_LEVEL and len(labels) >= 3 else 2
    return ".".join(labels[-keep:])


def source_label(source: str, detail: str | None, language: str) -> str:
    """How a mail names where we found the recipient's address (NL or EN)."""
    nl, en = SOURCE_LABELS.get(source, ("openbare registratiegegevens", "public registration data"))
    text = nl if language == "nl" else en
    return text.format(detail=detail or "-")


@dataclass(slots=True)
class OwnerFacts:
    """What this run's events say about one public owner."""

    owner_id: str
    kind: str  # ripe | csirt | as
    asset: str | None = None  # block, country or AS the events matched
    ips: set[str] = field(default_factory=set)
    asns: set[int] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Candidate:
    email: str
    source: str
    confidence: float
    fetched_at: datetime
    detail: str | None = None
    language: str = "nl"
    rank: int = -1
    reason: str | None = None


class SecurityTxtSource(Protocol):
    def fetch_many(self, domains: list[str]) -> dict[str, Any]: ...


class RdapSource(Protocol):
    def lookup_ip(self, ip: str) -> Any: ...
    def lookup_asn(self, asn: int | str) -> Any: ...


@dataclass
class Override:
    id: int
    scope: str
    value: str
    action: str
    email: str | None

    def matches(self, facts: OwnerFacts) -> bool:
        if self.scope == "cidr":
            net = ipaddress.ip_network(self.value, strict=False)
            return any(_in(ip, net) for ip in facts.ips)
        if self.scope == "asn":
            return int(self.value.upper().removeprefix("AS")) in facts.asns
        if self.scope == "domain":
            d = self.value.lower().rstrip(".")
            return any(h == d or h.endswith("." + d) for h in facts.hosts)
        return False


def _in(ip: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(ip) in net
    except ValueError:
        return False


class ContactResolver:
    def __init__(self, store: PublicDataStore, *, clock: Callable[[], datetime],
                 securitytxt: SecurityTxtSource | None = None,
                 rdap: RdapSource | None = None) -> None:
        self.store = store
        self.clock = clock
        self.securitytxt = securitytxt
        self.rdap = rdap
        self._ripe: RipeData | None = None
        self._csirts: CsirtDirectory | None = None
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._ripe = RipeData.load(self.store)
            self._csirts = CsirtDirectory.load(self.store)
            self._loaded = True

    # -- gathering --------------------------------------------------------------------------
    def candidates(self, conn: Connection, owners: Iterable[OwnerFacts]
                   ) -> dict[str, tuple[str | None, list[Candidate]]]:
        """(owner name, ranked candidates) per owner."""
        self._load()
        owners = list(owners)
        now = self.clock()
        overrides = [Override(r.id, r.scope, r.value, r.action, r.email)
                     for r in conn.execute(select(ContactOverride))]
        blocked = {o.value.lower() for o in overrides if o.scope == "email"
                   and o.action == "block"}
        names, ripe_found = self._ripe_facts(owners)
        csirt = self._csirt_facts(owners)
        domains = self._security_txt(owners, overrides)
        out: dict[str, tuple[str | None, list[Candidate]]] = {}
        found: list[Candidate] = []
        for facts in owners:
            cands: list[Candidate] = []
            for o in overrides:
                if o.action == "contact" and o.email and o.matches(facts):
                    cands.append(Candidate(o.email, "override", 1.0, now,
                                           f"{o.scope} {o.value} (override #{o.id})"))
            lang = "en" if facts.kind == "csirt" else "nl"
            for domain, result in domains.get(facts.owner_id, []):
                parsed = getattr(result, "parsed", None)
                if parsed is None:
                    continue
                prefers = [x.lower()[:2] for x in parsed.preferred_languages]
                c_lang = "nl" if "nl" in prefers else "en" if prefers else lang
                for email in parsed.emails:
                    cands.append(Candidate(email, "securitytxt", float(parsed.confidence),
                                           result.fetched_at, domain, c_lang,
                                           reason=None if parsed.valid else "invalid_or_expired"))
            cands += self._rdap(facts, now, lang)
            cands += ripe_found.get(facts.owner_id, [])
            if facts.owner_id in csirt:
                cands.append(csirt[facts.owner_id])
            out[facts.owner_id] = (names.get(facts.owner_id), cands)
            found += cands
        flags = self._flags(conn, {c.email.lower() for c in found})
        for _name, cands in out.values():
            _rank(cands, blocked, flags)
        return out

    def _ripe_facts(self, owners: list[OwnerFacts]
                    ) -> tuple[dict[str, str | None], dict[str, list[Candidate]]]:
        """RIPE abuse-c and holder name per owner, one vectorised lookup for all."""
        names: dict[str, str | None] = {}
        found: dict[str, list[Candidate]] = {}
        if self._ripe is None:
            return names, found
        now = self.clock()
        ip_owners = [o for o in owners if o.ips and o.kind in ("ripe", "as", "registry")]
        if ip_owners:
            firsts = pa.array([min(o.ips) for o in ip_owners], pa.string())
            rows = self._ripe.lookup_ips(firsts).to_pylist()
            for o, row in zip(ip_owners, rows, strict=True):
                if row.get("block") is None:
                    continue
                names[o.owner_id] = row.get("org_name") or row.get("netname")
                if row.get("abuse_mailbox"):
                    src = "ripe-parent" if row.get("abuse_source") == "parent" else "ripe"
                    found.setdefault(o.owner_id, []).append(Candidate(
                        row["abuse_mailbox"], "ripe", BASE_CONFIDENCE[src], now,
                        f"{row['block']} abuse-c via {row.get('abuse_source') or 'block'}"))
        as_owners = [o for o in owners if o.kind == "as" and o.owner_id not in found]
        if as_owners:
            asns = pa.array([int(o.owner_id.split(":", 1)[1]) for o in as_owners], pa.int64())
            for o, row in zip(as_owners, self._ripe.lookup_asns(asns).to_pylist(), strict=True):
                if row.get("asn") is None:
                    continue
                names.setdefault(o.owner_id, row.get("org_name") or row.get("as_name"))
                if row.get("abuse_mailbox"):
                    found.setdefault(o.owner_id, []).append(Candidate(
                        row["abuse_mailbox"], "ripe", BASE_CONFIDENCE["ripe"], now,
                        f"AS{row['asn']} abuse-c"))
        return names, found

    def _csirt_facts(self, owners: list[OwnerFacts]) -> dict[str, Candidate]:
        teams = [o for o in owners if o.kind == "csirt"]
        if not teams or self._csirts is None:
            return {}
        now = self.clock()
        cc = pa.array([o.owner_id.split(":", 1)[1] for o in teams], pa.string())
        out = {}
        for o, row in zip(teams, self._csirts.for_countries(cc).to_pylist(), strict=True):
            if row.get("email"):
                out[o.owner_id] = Candidate(row["email"], "csirt", BASE_CONFIDENCE["csirt"],
                                            now, f"{row.get('name')} ({row.get('country')})",
                                            "en")
        return out

    def _security_txt(self, owners: list[OwnerFacts], overrides: list[Override]
                      ) -> dict[str, list[tuple[str, Any]]]:
        if self.securitytxt is None:
            return {}
        isp_only = [o for o in overrides if o.action == "isp_only"]
        wanted: dict[str, list[str]] = {}
        for facts in owners:
            if facts.kind == "csirt" or any(o.matches(facts) for o in isp_only):
                continue
            # The registered domain first (where an organisation publishes its policy),
            # then the host names themselves (RFC 9116 files apply per host).
            doms = sorted({d for h in facts.hosts if (d := registrable_domain(h))})
            hosts = sorted({h.lower().rstrip(".").removeprefix("www.") for h in facts.hosts})
            doms += [h for h in hosts if h not in doms and registrable_domain(h)]
            if doms:
                wanted[facts.owner_id] = doms[:4]
        if not wanted:
            return {}
        results = self.securitytxt.fetch_many(sorted({d for v in wanted.values() for d in v}))
        return {owner: [(d, results[d]) for d in doms if d in results]
                for owner, doms in wanted.items()}

    def _rdap(self, facts: OwnerFacts, now: datetime, lang: str) -> list[Candidate]:
        if self.rdap is None or facts.kind == "csirt":
            return []
        answer = self.rdap.lookup_ip(min(facts.ips)) if facts.ips else (
            self.rdap.lookup_asn(min(facts.asns)) if facts.asns else None)
        if answer is None or getattr(answer, "error", None):
            return []
        return [Candidate(e, "rdap", BASE_CONFIDENCE["rdap"], answer.fetched_at,
                          answer.url, lang) for e in answer.abuse_emails]

    @staticmethod
    def _flags(conn: Connection, emails: set[str]) -> dict[str, Any]:
        """address_flags rows by address."""
        out: dict[str, Any] = {}
        ordered = sorted(emails)
        for i in range(0, len(ordered), 5000):
            for f in conn.execute(select(AddressFlag).where(
                    AddressFlag.email.in_(ordered[i:i + 5000]))):
                out[f.email] = f
        return out

    # -- storing ----------------------------------------------------------------------------
    def resolve(self, conn: Connection, owners: Iterable[OwnerFacts]) -> dict[str, list[Candidate]]:
        """Gather, rank and store the candidates of `owners`; returns them by owner."""
        found = self.candidates(conn, owners)
        if not found:
            return {}
        now = self.clock()
        ids = sorted(found)
        for i in range(0, len(ids), 5000):
            conn.execute(delete(ContactCandidate).where(
                ContactCandidate.owner_id.in_(ids[i:i + 5000])))
        rows = [{"owner_id": owner, "email": c.email, "source": c.source,
                 "confidence": round(c.confidence, 3), "fetched_at": c.fetched_at,
                 "rank": c.rank, "reason": c.reason, "detail": (c.detail or "")[:2000],
                 "language": c.language, "owner_name": (name or "")[:512] or None,
                 "resolved_at": now}
                for owner, (name, cands) in found.items() for c in cands]
        if rows:
            conn.execute(insert(ContactCandidate), rows)
        return {owner: cands for owner, (_n, cands) in found.items()}


def _rank(cands: list[Candidate], blocked: set[str], flags: dict[str, Any]) -> None:
    """Order by source, drop duplicates and unusable addresses; rank 0 is told."""
    seen: set[str] = set()
    for c in cands:
        key = c.email.strip().lower()
        flag = flags.get(key)
        if flag is not None and flag.not_ours:
            c.confidence = max(0.0, c.confidence - NOT_OURS_PENALTY * flag.not_ours)
            c.reason = c.reason or f"not_ours x{flag.not_ours}"
        if key in seen:
            c.reason = "duplicate"
        elif key in blocked:
            c.reason = "blocked_by_operator"
        elif flag is not None and flag.disabled:
            c.reason = flag.reason or "disabled"
        elif "@" not in key:
            c.reason = "not_an_address"
        elif c.confidence < MIN_CONFIDENCE:
            c.reason = c.reason or "low_confidence"
        else:
            seen.add(key)
            continue
        seen.add(key)
        c.rank = -1
    usable = [c for c in cands if c.reason in (None, "invalid_or_expired")
              or (c.reason or "").startswith("not_ours")]
    usable = [c for c in usable if c.confidence >= MIN_CONFIDENCE]
    usable.sort(key=lambda c: (SOURCE_ORDER.index(c.source), -c.confidence))
    for i, c in enumerate(usable):
        c.rank = i
    cands.sort(key=lambda c: (c.rank < 0, c.rank, SOURCE_ORDER.index(c.source)))
