"""The repeat policy: how long a case that is seen again stays quiet before a reminder.

Defaults follow urgency (7 days for critical/high, 30 for medium, 90 for low/info);
`notify_policies` rows override them per organisation, report type and severity, the most
specific row winning. The table is small, so it is read once per run into memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, select

from cwn.db.models_notify import NotifyPolicy
from cwn.events.fields import SEVERITIES, TLP_LEVELS

SEV_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
TLP_RANK: dict[str, int] = {t: i for i, t in enumerate(TLP_LEVELS)}

DEFAULT_REMINDER_DAYS: dict[str, int] = {
    "critical": 7, "high": 7, "medium": 30, "low": 90, "info": 90,
}


@dataclass(frozen=True, slots=True)
class _Rule:
    org_id: str | None
    report_type: str | None
    severity: str | None
    days: int

    @property
    def specificity(self) -> int:
        # An organisation's own rule beats a report-type rule, which beats a severity rule.
        return ((self.org_id is not None) * 4 + (self.report_type is not None) * 2
                + (self.severity is not None))


class ReminderPolicy:
    def __init__(self, rules: list[_Rule] | None = None) -> None:
        self.rules = sorted(rules or [], key=lambda r: -r.specificity)
        self._cache: dict[tuple[str, str | None, str], int] = {}

    @classmethod
    def load(cls, conn: Connection) -> ReminderPolicy:
        rows = conn.execute(select(NotifyPolicy.org_id, NotifyPolicy.report_type,
                                   NotifyPolicy.severity, NotifyPolicy.reminder_days)).all()
        return cls([_Rule(r[0], r[1], r[2], int(r[3])) for r in rows])

    def days(self, org_id: str, report_type: str | None, severity: str) -> int:
        key = (org_id, report_type, severity)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        days = DEFAULT_REMINDER_DAYS.get(severity, 30)
        for r in self.rules:
            if ((r.org_id is None or r.org_id == org_id)
                    and (r.report_type is None or r.report_type == report_type)
                    and (r.severity is None or r.severity == severity)):
                days = r.days
                break
        self._cache[key] = days
        return days

    def interval(self, org_id: str, report_type: str | None, severity: str) -> timedelta:
        return timedelta(days=self.days(org_id, report_type, severity))
