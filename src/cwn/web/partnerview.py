"""What a partner (ISP, sector CSIRT, MSP…) sees: the cases the desk delivered to it under
its agreements, and its feedback on them. Shared by the portal page and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from cwn.db.models_notify import Case, Notification, NotificationCase
from cwn.db.models_partners import Agreement, Partner, PartnerFeedback

FEEDBACK = ("forwarded", "not_our_customer", "customer_notified", "fixed")


@dataclass
class PartnerCase:
    """A case delivered to the partner; `feedback` is the partner's latest word on it."""

    id: str
    org_id: str
    report_type: str | None
    severity: str
    tlp: str
    state: str
    first_seen: datetime
    last_seen: datetime
    events_count: int
    delivered_at: datetime | None
    feedback: str | None


def owners(conn: Connection, partner_id: str) -> list[str]:
    """The bulk-notification owner ids (`partner:<agreement>`) of a partner."""
    ids = conn.execute(select(Agreement.id).where(Agreement.partner_id == partner_id)).scalars()
    return [f"partner:{a}" for a in ids]


def _delivered(partner_id: str, owner_ids: list[str]) -> Any:
    return (select(NotificationCase.case_id.label("case_id"),
                   func.max(Notification.created_at).label("delivered_at"))
            .join(Notification, Notification.id == NotificationCase.notification_id)
            .where(Notification.org_id.in_(owner_ids))
            .group_by(NotificationCase.case_id).subquery())


def cases(conn: Connection, partner_id: str, *, page: int = 1, per_page: int = 50
          ) -> tuple[int, list[PartnerCase]]:
    owner_ids = owners(conn, partner_id)
    if not owner_ids:
        return 0, []
    d = _delivered(partner_id, owner_ids)
    total = int(conn.execute(select(func.count()).select_from(d)).scalar() or 0)
    last_fb = (select(PartnerFeedback.case_id, func.max(PartnerFeedback.id).label("fid"))
               .where(PartnerFeedback.partner_id == partner_id)
               .group_by(PartnerFeedback.case_id).subquery())
    rows = conn.execute(
        select(Case.id, Case.org_id, Case.report_type, Case.severity, Case.tlp, Case.state,
               Case.first_seen, Case.last_seen, Case.events_count, d.c.delivered_at,
               PartnerFeedback.status)
        .join(d, d.c.case_id == Case.id)
        .outerjoin(last_fb, last_fb.c.case_id == Case.id)
        .outerjoin(PartnerFeedback, PartnerFeedback.id == last_fb.c.fid)
        .order_by(d.c.delivered_at.desc(), Case.id)
        .limit(per_page).offset((page - 1) * per_page)).all()
    return total, [PartnerCase(*r) for r in rows]


def delivered_to(conn: Connection, partner_id: str, case_id: str) -> bool:
    owner_ids = owners(conn, partner_id)
    if not owner_ids:
        return False
    found = conn.execute(
        select(NotificationCase.case_id)
        .join(Notification, Notification.id == NotificationCase.notification_id)
        .where(Notification.org_id.in_(owner_ids), NotificationCase.case_id == case_id)
        .limit(1)).first()
    return found is not None


def partner_facts(conn: Connection, partner_id: str) -> tuple[Any, list[Any]]:
    partner = conn.execute(select(Partner).where(Partner.id == partner_id)).first()
    agreements = conn.execute(select(Agreement).where(Agreement.partner_id == partner_id)
                              .order_by(Agreement.id)).all()
    return partner, list(agreements)
