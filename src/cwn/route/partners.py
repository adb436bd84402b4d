"""Which intermediaries a case also goes to, by their distribution agreements, and why not.

An agreement covers a case when its scope names the organisation, its NIS2 sector, its
province, or holds one of the case's addresses (prefixes) or AS numbers. A covering
agreement then filters on content (taxonomies, report types) and on TLP: a case above the
agreement's ceiling is not sent there, and the reason is stored. The mode decides whether the
organisation is still told itself (`partner_and_org`, `copy`) or only the partner
(`partner_only`); a case in one of the ISP's consumer ranges goes to the ISP only, whatever
the mode, because the subscriber is reached through its provider.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from cwn.db.models_partners import Agreement, Partner, PartnerContact
from cwn.events.fields import TLP_LEVELS

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
_TLP_ALIASES = {"WHITE": "CLEAR"}


def tlp_rank(label: str | None) -> int:
    name = _TLP_ALIASES.get((label or "AMBER").upper(), (label or "AMBER").upper())
    return TLP_LEVELS.index(name) if name in TLP_LEVELS else TLP_LEVELS.index("AMBER")


@dataclass(frozen=True)
class Rule:
    """One valid agreement of an active partner with a usable contact."""

    agreement_id: str
    partner_id: str
    partner_name: str
    language: str
    contact_id: int
    email: str
    orgs: frozenset[str]
    sectors: frozenset[str]
    regions: frozenset[str]
    asns: frozenset[int]
    prefixes: tuple[Net, ...]
    consumer: tuple[Net, ...]
    taxonomies: frozenset[str] | None
    report_types: frozenset[str] | None
    tlp_ceiling: int
    format: str
    cadence: str
    mode: str

    @property
    def owner_id(self) -> str:
        """The notification owner id of this agreement's bulk deliveries."""
        return f"partner:{self.agreement_id}"


@dataclass
class CaseFacts:
    case_id: str
    org_id: str
    sector: str | None
    province: str | None
    taxonomy: str | None
    report_type: str | None
    tlp: str | None
    ips: set[str] = field(default_factory=set)
    asns: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class PartnerVerdict:
    rule: Rule
    reason: str | None  # None: the partner gets the case
    partner_only: bool  # the organisation itself is not told


def _nets(values: Iterable[str]) -> tuple[Net, ...]:
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v, strict=False))
        except ValueError:
            continue
    return tuple(out)


def load_rules(conn: Connection, today: date) -> list[Rule]:
    """The agreements in force today, with each partner's first enabled contact."""
    partners = {p.id: p for p in conn.execute(
        select(Partner).where(Partner.status == "active"))}
    if not partners:
        return []
    contacts: dict[str, Any] = {}
    for row in conn.execute(select(PartnerContact).where(PartnerContact.enabled.is_(True))
                            .order_by(PartnerContact.priority, PartnerContact.id)):
        contacts.setdefault(row.partner_id, row)
    rules = []
    for a in conn.execute(select(Agreement).order_by(Agreement.id)):
        p: Any = partners.get(a.partner_id)
        c: Any = contacts.get(a.partner_id)
        if p is None or c is None:
            continue
        if (a.valid_from and a.valid_from > today) or (a.valid_until and a.valid_until < today):
            continue
        scope = a.scope or {}
        rules.append(Rule(
            agreement_id=a.id, partner_id=p.id, partner_name=p.name,
            language=c.language or p.language or "nl", contact_id=int(c.id), email=c.email,
            orgs=frozenset(scope.get("organisations", [])),
            sectors=frozenset(s.split("/", 1)[0] for s in scope.get("sectors", [])),
            regions=frozenset(scope.get("regions", [])),
            asns=frozenset(int(x) for x in scope.get("asns", [])),
            prefixes=_nets(scope.get("prefixes", [])),
            consumer=_nets(scope.get("consumer_prefixes", [])),
            taxonomies=frozenset(a.taxonomies) if a.taxonomies is not None else None,
            report_types=frozenset(a.report_types) if a.report_types is not None else None,
            tlp_ceiling=tlp_rank(a.tlp_ceiling), format=a.format, cadence=a.cadence,
            mode=a.mode))
    return rules


def _in_any(ips: Iterable[str], nets: tuple[Net, ...]) -> bool:
    if not nets:
        return False
    for ip in ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if any(addr in n for n in nets):
            return True
    return False


def covers(rule: Rule, case: CaseFacts) -> bool:
    sector = (case.sector or "").split("/", 1)[0]
    return (case.org_id in rule.orgs or (bool(sector) and sector in rule.sectors)
            or (case.province in rule.regions if case.province else False)
            or bool(rule.asns & case.asns) or _in_any(case.ips, rule.prefixes)
            or _in_any(case.ips, rule.consumer))


def judge(rule: Rule, case: CaseFacts) -> PartnerVerdict | None:
    """None when the agreement does not cover the case; else whether it goes there."""
    if not covers(rule, case):
        return None
    consumer = _in_any(case.ips, rule.consumer)
    partner_only = rule.mode == "partner_only" or consumer
    if rule.taxonomies is not None and case.taxonomy not in rule.taxonomies:
        return PartnerVerdict(rule, "not_in_agreement", False)
    if rule.report_types is not None and case.report_type not in rule.report_types:
        return PartnerVerdict(rule, "not_in_agreement", False)
    if tlp_rank(case.tlp) > rule.tlp_ceiling:
        return PartnerVerdict(rule, "tlp_above_agreement_ceiling", False)
    return PartnerVerdict(rule, None, partner_only)


def verdicts(rules: list[Rule], case: CaseFacts) -> list[PartnerVerdict]:
    return [v for r in rules if (v := judge(r, case)) is not None]
