"""Who is told about a case: the organisation's contacts, filtered by their preferences.

Contacts are tiered by `priority` (lower is first). The best tier that still has an enabled
address receives; lower tiers are fallbacks for when a hard bounce disables the first (see
DESIGN.md section 6). A preference that filters a case out for a primary contact is a stored
decision for that contact, not a reason to wake up the fallback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from cwn.db.models import Contact, Organization
from cwn.db.models_contacts import ContactCandidate
from cwn.db.models_notify import Preference
from cwn.route.policy import SEV_RANK

_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class Prefs:
    taxonomies: frozenset[str] | None = None
    report_types: frozenset[str] | None = None
    min_severity: str = "low"
    mode: str = "immediate"
    language: str | None = None
    opted_out: bool = False
    paused_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    contact_id: int
    email: str
    priority: int
    language: str
    prefs: Prefs


@dataclass(slots=True)
class OrgRouting:
    org_id: str
    name: str
    language: str
    org_prefs: Prefs
    recipients: list[Recipient] = field(default_factory=list)  # enabled, primary tier first


@dataclass(frozen=True, slots=True)
class Verdict:
    """For one (case, contact): sent to `recipient`, or not, with `reason`."""

    recipient: Recipient | None
    reason: str | None  # None = notify


def _merge(base: Prefs, row: Any) -> Prefs:
    if row is None:
        return base
    return Prefs(
        taxonomies=frozenset(row.taxonomies) if row.taxonomies is not None else base.taxonomies,
        report_types=(frozenset(row.report_types) if row.report_types is not None
                      else base.report_types),
        min_severity=row.min_severity or base.min_severity,
        mode=row.mode or base.mode,
        language=row.language or base.language,
        opted_out=row.opted_out if row.opted_out is not None else base.opted_out,
        paused_until=row.paused_until or base.paused_until,
    )


def load_routing(conn: Connection, org_ids: Iterable[str]) -> dict[str, OrgRouting]:
    """Organisations, enabled contacts and preferences for `org_ids`, in a few queries."""
    ids = sorted(set(org_ids))
    out: dict[str, OrgRouting] = {}
    prefs_rows: dict[tuple[str, int | None], Any] = {}
    contacts: dict[str, list[Any]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for org in conn.execute(select(Organization.id, Organization.name, Organization.language)
                                .where(Organization.id.in_(chunk))):
            out[org.id] = OrgRouting(org.id, org.name, org.language or "nl", Prefs())
        for c in conn.execute(select(Contact).where(Contact.org_id.in_(chunk),
                                                    Contact.enabled.is_(True))):
            contacts[c.org_id].append(c)
        for p in conn.execute(select(Preference).where(Preference.org_id.in_(chunk))):
            prefs_rows[(p.org_id, p.contact_id)] = p
    _public_routing(conn, [i for i in ids if i not in out and ":" in i], out)
    for org_id, routing in out.items():
        if org_id not in contacts and routing.recipients:
            continue  # a public owner: its ranked candidates are its recipients
        routing.org_prefs = _merge(Prefs(), prefs_rows.get((org_id, None)))
        for c in sorted(contacts.get(org_id, ()), key=lambda c: (c.priority, c.id)):
            prefs = _merge(routing.org_prefs, prefs_rows.get((org_id, c.id)))
            lang = prefs.language or c.language or routing.language
            lang = lang if lang in ("nl", "en") else "en"
            routing.recipients.append(Recipient(c.id, c.email, c.priority, lang, prefs))
    # A registered organisation without a usable contact falls through to the candidates
    # found in public data for it (DESIGN.md section 6), under its own preferences.
    _public_routing(conn, [o for o, r in out.items() if not r.recipients and ":" not in o],
                    out)
    return out


def _public_routing(conn: Connection, owner_ids: list[str], out: dict[str, OrgRouting]
                    ) -> None:
    """Owners found in public data: their usable contact candidates, in the rank the
    contact policy gave them (rank 0 is told; the next ones take over after a bounce)."""
    for start in range(0, len(owner_ids), _CHUNK):
        chunk = owner_ids[start:start + _CHUNK]
        rows = conn.execute(select(ContactCandidate).where(
            ContactCandidate.owner_id.in_(chunk), ContactCandidate.rank >= 0)
            .order_by(ContactCandidate.owner_id, ContactCandidate.rank)).all()
        for c in rows:
            routing = out.get(c.owner_id)
            if routing is None:
                routing = out[c.owner_id] = OrgRouting(
                    c.owner_id, c.owner_name or c.owner_id, c.language, Prefs())
            routing.recipients.append(Recipient(c.id, c.email, c.rank, c.language,
                                                routing.org_prefs))


def primary_tier(routing: OrgRouting) -> list[Recipient]:
    if not routing.recipients:
        return []
    best = routing.recipients[0].priority
    return [r for r in routing.recipients if r.priority == best]


def judge(prefs: Prefs, *, taxonomy: str | None, report_type: str | None, severity: str,
          now: datetime) -> str | None:
    """The reason a recipient with `prefs` is not told about a case, or None to tell it."""
    if prefs.opted_out:
        return "opted_out"
    if prefs.paused_until is not None and prefs.paused_until > now:
        return "paused"
    if SEV_RANK.get(severity, 2) < SEV_RANK.get(prefs.min_severity, 1):
        return "below_threshold"
    if prefs.taxonomies is not None and taxonomy not in prefs.taxonomies:
        return "not_subscribed"
    if prefs.report_types is not None and report_type not in prefs.report_types:
        return "not_subscribed"
    return None


def route_case(routing: OrgRouting | None, *, taxonomy: str | None, report_type: str | None,
               severity: str, now: datetime,
               exclude: frozenset[str] = frozenset()) -> list[Verdict]:
    """Verdicts for every primary-tier contact; a single no_contact verdict if none.

    `exclude` holds addresses already known not to work for this case (re-routing after a
    bounce), so the next tier is reached.
    """
    if routing is None:
        return [Verdict(None, "no_contact")]
    live = [r for r in routing.recipients if r.email.lower() not in exclude]
    if not live:
        return [Verdict(None, "no_contact")]
    best = live[0].priority
    return [Verdict(r, judge(r.prefs, taxonomy=taxonomy, report_type=report_type,
                             severity=severity, now=now))
            for r in live if r.priority == best]
