"""What an organisation, and each of its contacts, wants to receive.

The router (`cwn.route.recipients`) reads `preferences` rows: one per organisation with
`contact_id` NULL, and optionally one per contact. A NULL field means "inherit": contact row
→ organisation row → defaults (everything, severity ≥ low, immediate, the contact's language
else the organisation's). This module only writes rows the router understands, with values it
knows, and computes the effective preferences with the router's own merge, so what the portal
shows is what routing does.

Every change is audited (entity `preference`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.db.base import utcnow
from cwn.db.models import Organization
from cwn.db.models_notify import Preference
from cwn.events.fields import SEVERITIES, TAXONOMIES
from cwn.registry.audit import Snapshot, contact_key, record
from cwn.registry.contacts import UNSET, ContactInfo, get, list_contacts
from cwn.route.recipients import Prefs
from cwn.route.recipients import _merge as merge_prefs

FIELDS: tuple[str, ...] = ("taxonomies", "report_types", "min_severity", "mode", "language",
                           "opted_out", "paused_until")
TAXONOMY_NAMES: tuple[str, ...] = tuple(TAXONOMIES)
MODES: tuple[str, ...] = ("immediate", "digest")
LANGUAGES: tuple[str, ...] = ("nl", "en")
_REPORT_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class PrefState:
    """One scope's preferences: what is stored (None = inherit) and what routing uses."""

    org_id: str
    contact_id: int | None
    stored: dict[str, Any]
    effective: Prefs
    language: str  # the language mails to this scope are written in

    @property
    def inherits(self) -> bool:
        return all(v is None for v in self.stored.values())


@dataclass(frozen=True, slots=True)
class ContactPrefs:
    contact: ContactInfo
    prefs: PrefState


def _stored(p: Preference | None) -> dict[str, Any]:
    if p is None:
        return dict.fromkeys(FIELDS)
    return {
        "taxonomies": sorted(p.taxonomies) if p.taxonomies is not None else None,
        "report_types": sorted(p.report_types) if p.report_types is not None else None,
        "min_severity": p.min_severity, "mode": p.mode, "language": p.language,
        "opted_out": p.opted_out, "paused_until": p.paused_until,
    }


def row_snapshot(p: Preference | None) -> Snapshot:
    """The audit form of a row (JSON-safe)."""
    out = _stored(p)
    if out["paused_until"] is not None:
        out["paused_until"] = out["paused_until"].isoformat()
    return out


def _row(session: Session, org_id: str, contact_id: int | None) -> Preference | None:
    q = select(Preference).where(Preference.org_id == org_id)
    q = q.where(Preference.contact_id.is_(None) if contact_id is None
                else Preference.contact_id == contact_id)
    # The router keeps the last row it reads for a scope; a stray duplicate is reduced to
    # that one when written.
    return session.scalars(q.order_by(Preference.id.desc())).first()


def _org(session: Session, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise AccessError("unknown_org", f"unknown organisation {org_id!r}", 404)
    return org


def org_preferences(session: Session, org_id: str) -> PrefState:
    org = _org(session, org_id)
    row = _row(session, org_id, None)
    eff = merge_prefs(Prefs(), row)
    return PrefState(org_id, None, _stored(row), eff, _lang(eff.language, org.language))


def _lang(*choices: str | None) -> str:
    for c in choices:
        if c:
            return c if c in LANGUAGES else "en"
    return "nl"


def contact_preferences(session: Session, org_id: str) -> list[ContactPrefs]:
    """Every contact of the organisation (first-told first) with its preferences."""
    org = _org(session, org_id)
    rows = session.scalars(select(Preference).where(Preference.org_id == org_id)
                           .order_by(Preference.id)).all()
    by_scope = {p.contact_id: p for p in rows}
    org_eff = merge_prefs(Prefs(), by_scope.get(None))
    out = []
    for c in list_contacts(session, org_id):
        row = by_scope.get(c.id)
        eff = merge_prefs(org_eff, row)
        out.append(ContactPrefs(c, PrefState(org_id, c.id, _stored(row), eff,
                                             _lang(eff.language, c.language, org.language))))
    return out


def preferences_of(session: Session, org_id: str, contact_id: int | None) -> PrefState:
    if contact_id is None:
        return org_preferences(session, org_id)
    get(session, org_id, contact_id)
    for cp in contact_preferences(session, org_id):
        if cp.contact.id == contact_id:
            return cp.prefs
    raise AccessError("contact_not_found", "no such contact", 404)  # pragma: no cover


# -- validation -----------------------------------------------------------------------------


def _bad(key: str, message: str) -> AccessError:
    return AccessError(key, message, 422)


def _names(value: Any, field: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise _bad(f"bad_{field}", f"{field} must be a list")
    if not all(isinstance(v, str) for v in value):
        raise _bad(f"bad_{field}", f"{field} must be a list of names")
    return sorted({v.strip().lower() for v in value})


def check_taxonomies(value: Any) -> list[str] | None:
    if value is None:
        return None
    names = _names(value, "taxonomies")
    unknown = [n for n in names if n not in TAXONOMIES]
    if unknown:
        raise _bad("bad_taxonomies", f"unknown taxonomy {unknown[0]!r}; known: "
                   f"{', '.join(TAXONOMY_NAMES)}")
    if not names:
        raise _bad("no_taxonomies", "choose at least one taxonomy (or opt out)")
    return names


def check_report_types(value: Any) -> list[str] | None:
    if value is None:
        return None
    names = _names(value, "report_types")
    bad = [n for n in names if not _REPORT_TYPE.match(n)]
    if bad:
        raise _bad("bad_report_types", f"not a report type name: {bad[0][:60]!r}")
    if not names:
        raise _bad("no_report_types", "choose at least one report type, or none to receive "
                   "every type")
    return names


def _choice(value: Any, field: str, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise _bad(f"bad_{field}", f"{field} must be one of {', '.join(allowed)} "
                   f"(got {value!r})")
    return str(value)


def check_paused_until(value: Any, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _bad("bad_paused_until", "paused_until must be a date or date and time "
                       "(ISO 8601)") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise _bad("bad_paused_until", "paused_until must be a date or date and time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value <= now:
        raise _bad("bad_paused_until", "a pause must end in the future")
    return value.astimezone(UTC)


def _bool(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _bad(f"bad_{field}", f"{field} must be true, false or null")


def validate(fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Checked, normalised values for the given fields (unknown fields are refused)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise _bad("bad_field", f"unknown preference {unknown[0]!r}; known: "
                   f"{', '.join(FIELDS)}")
    checks = {
        "taxonomies": check_taxonomies,
        "report_types": check_report_types,
        "min_severity": lambda v: _choice(v, "min_severity", SEVERITIES),
        "mode": lambda v: _choice(v, "mode", MODES),
        "language": lambda v: _choice(v, "language", LANGUAGES),
        "opted_out": lambda v: _bool(v, "opted_out"),
        "paused_until": lambda v: check_paused_until(v, now),
    }
    return {k: checks[k](v) for k, v in fields.items()}


# -- writing --------------------------------------------------------------------------------


def set_preferences(session: Session, org_id: str, contact_id: int | None = None, *,
                    actor: str, now: datetime | None = None, taxonomies: Any = UNSET,
                    report_types: Any = UNSET, min_severity: Any = UNSET, mode: Any = UNSET,
                    language: Any = UNSET, opted_out: Any = UNSET, paused_until: Any = UNSET
                    ) -> PrefState:
    """Set the given fields of one scope (the organisation, or one of its contacts); fields
    not given keep their value, None means inherit. A row left with nothing set is deleted:
    it would only say "inherit everything"."""
    now = now or utcnow()
    _org(session, org_id)
    key = org_id
    if contact_id is not None:
        key = contact_key(org_id, get(session, org_id, contact_id).email)
    given = {k: v for k, v in (("taxonomies", taxonomies), ("report_types", report_types),
                               ("min_severity", min_severity), ("mode", mode),
                               ("language", language), ("opted_out", opted_out),
                               ("paused_until", paused_until)) if v is not UNSET}
    values = validate(given, now)
    row = _row(session, org_id, contact_id)
    before = row_snapshot(row) if row is not None else None
    if row is None:
        row = Preference(org_id=org_id, contact_id=contact_id)
        session.add(row)
    for k, v in values.items():
        setattr(row, k, v)
    session.flush()
    # Remove duplicates of this scope so the router and the portal read the same row.
    q = select(Preference).where(Preference.org_id == org_id, Preference.id != row.id)
    q = q.where(Preference.contact_id.is_(None) if contact_id is None
                else Preference.contact_id == contact_id)
    for dup in session.scalars(q).all():
        session.delete(dup)
    after: Snapshot | None = row_snapshot(row)
    if after is not None and all(v is None for v in after.values()):
        session.delete(row)
        after = None
    session.flush()
    if after != before:
        action = "create" if before is None else "delete" if after is None else "update"
        record(session, actor, action, "preference", key, before, after)
    return preferences_of(session, org_id, contact_id)


def reset(session: Session, org_id: str, contact_id: int | None, *, actor: str) -> PrefState:
    """Back to inheriting everything (the defaults, for the organisation's own row)."""
    return set_preferences(session, org_id, contact_id, actor=actor,
                           **dict.fromkeys(FIELDS, None))
