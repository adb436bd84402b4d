"""A small but real installation for the operator console's tests: sample reports ingested by
the real pipeline, a registry import with a partner, a notification with its delivery and a
bounce, and accounts in every state."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cwn.access import users
from cwn.db.base import new_id
from cwn.db.models_notify import Bounce, Delivery, Notification
from cwn.db.models_web import User
from cwn.registry.audit import record
from cwn.registry.format import RegistryDocument
from cwn.registry.importer import import_registry
from cwn.registry.partners import PartnersDocument, import_partners
from cwn.wiring import Services

SCAN_DNS_NAME = "2019-01-01-scan_dns-test-test.csv"
"""scan_dns.csv under its Shadowserver delivery name (the name carries the report type)."""

REGISTRY = {
    "organizations": [
        {"id": "bakkerij", "name": "Bakkerij Jansen", "kvk": "12345678", "language": "nl",
         "assets": [{"type": "cidr", "value": "198.51.100.0/25"}],
         "contacts": [{"email": "ict@bakkerij.example.nl"}]},
    ],
    "partners": [
        {"id": "isp-example", "name": "Example ISP B.V.", "type": "isp", "maturity": 4,
         "functions": ["dsn"], "regions": ["PV27"], "language": "nl",
         "contacts": [{"email": "abuse@isp.example.nl", "role": "abuse",
                       "available_24_7": True}],
         "agreements": [{"id": "AGR-ISP-1", "scope": {"asns": [64500]}, "format": "csv",
                         "cadence": "daily", "mode": "copy", "tlp_ceiling": "AMBER",
                         "signed_by": "J. de Vries"}]},
    ],
}

PASSWORD = "correct horse battery staple"


@dataclass
class Seeded:
    scan_dns: str
    intelmq: str
    stix: str
    notification_id: str
    signup_id: str
    member_id: str


def seed(svc: Services, shared_data: Path, tmp_path: Path, *, ingest: bool = True) -> Seeded:
    """`ingest=False` leaves the reports out (about half the cost) for tests of accounts."""
    with svc.sessions.begin() as s:
        doc = RegistryDocument.model_validate(REGISTRY)
        import_registry(s, doc, actor="test:import")
        import_partners(s, PartnersDocument.model_validate({"partners": doc.partners}),
                        actor="test:import")
    feeds = tmp_path / "feeds"
    feeds.mkdir(exist_ok=True)
    csv = feeds / SCAN_DNS_NAME
    shutil.copy(shared_data / "shadowserver" / "csv" / "scan_dns.csv", csv)
    # The STIX sample plus an indicator with an impossible address: one quarantined row.
    stix = feeds / "indicator-for-c2-ip-address.json"
    bundle = json.loads((shared_data / "stix21" / stix.name).read_text())
    bad = {**bundle["objects"][0], "id": "indicator--0badadd7-0000-4000-8000-000000000000",
           "pattern": "[ipv4-addr:value = '10.0.0.256']"}
    stix.write_text(json.dumps({**bundle, "objects": [*bundle["objects"], bad]}))
    pipeline = svc.pipeline()
    shas: list[str] = []
    for path, feed in () if not ingest else (
        (csv, None),
        (shared_data / "intelmq" / "events" / "aggregate_events.jsonl", "intelmq-test"),
        (stix, "stix-test"),
    ):
        [outcome] = pipeline.ingest_paths([path], feed=feed).files
        assert outcome.status == "ingested", outcome.error
        assert outcome.sha256 is not None
        shas.append(outcome.sha256)
    nid = new_id()
    at = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)
    with svc.sessions.begin() as s:
        s.add(Notification(id=nid, org_id="bakkerij", recipient="ict@bakkerij.example.nl",
                           language="nl", state="bounced", case_count=2,
                           subject="[CWN] 2 bevindingen", created_at=at, queued_at=at,
                           sent_at=at))
        s.flush()
        s.add(Delivery(notification_id=nid, recipient="ict@bakkerij.example.nl",
                       return_path=f"bounces+{nid}@cert.test", message_id=f"<{nid}@cert.test>",
                       eml=b"Subject: x\r\n\r\nx\r\n", state="bounced", attempts=1,
                       next_attempt_at=at, channel="smtp", last_error="550 5.1.1 no such user"))
        s.add(Bounce(digest="d" * 64, notification_id=nid, org_id="bakkerij",
                     recipient="ict@bakkerij.example.nl", kind="hard", status="5.1.1",
                     diagnostic="550 5.1.1 no such user", action_taken="contact_disabled",
                     received_at=at))
    with svc.sessions.begin() as s:
        signup = users.signup(s, email="info@nieuw.example.nl", password=PASSWORD,
                              name="Nina Nieuw", organisation="Bakkerij Jansen",
                              kvk="12345678", note="we run the bakery's web shop",
                              language="en")
        member = User(id=new_id(), email="medewerker@bakkerij.example.nl", role="org_user",
                      org_id="bakkerij", status="active", language="nl",
                      created_by="test:operator")
        s.add(member)
        record(s, "test:operator", "create", "user", member.email, None,
               users.snapshot(member))
        s.flush()
        signup_id, member_id = signup.id, member.id
    scan_dns, intelmq, stix = shas or ["", "", ""]
    return Seeded(scan_dns, intelmq, stix, nid, signup_id, member_id)
