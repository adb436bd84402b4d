"""Real cases for the inbox and feedback tests, made the way production makes them: a
registry import, public data, Shadowserver reports through the ingest pipeline, and a
notify run (mail goes to the outbox folder).

The world: two registered organisations, `acme` (10.1.0.0/24, Dutch) and `globex`
(10.2.0.0/24, English), and an unregistered ISP found in the RIPE sample (198.51.100.0/24)
whose abuse address is told unsolicited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from cwn.db.models_notify import Case, Delivery, Notification
from cwn.notify import Notifier
from cwn.publicdata import csirts, pyasn, ripe
from cwn.registry.format import RegistryDocument
from cwn.registry.importer import import_registry
from cwn.wiring import Services
from publicdata_samples import scan_report, write_public_data

ACME_IPS = ["10.1.0.1", "10.1.0.2"]
GLOBEX_IPS = ["10.2.0.7"]
ISP_IPS = ["198.51.100.10"]
ISP_ABUSE = "abuse@isp.example.nl"

REGISTRY = {"organizations": [
    {"id": "acme", "name": "Acme B.V.", "language": "nl",
     "assets": [{"type": "cidr", "value": "10.1.0.0/24"}],
     "contacts": [{"email": "security@acme.nl", "role": "security", "language": "nl"}]},
    {"id": "globex", "name": "Globex Ltd", "language": "en",
     "assets": [{"type": "cidr", "value": "10.2.0.0/24"}],
     "contacts": [{"email": "soc@globex.example", "role": "security", "language": "en"}]},
]}


@dataclass
class World:
    by_org: dict[str, list[str]] = field(default_factory=dict)  # org id -> case ids

    def case(self, org: str) -> str:
        return self.by_org[org][0]

    def public_owner(self) -> str:
        return next(o for o in self.by_org if o not in ("acme", "globex"))


def load_registry(svc: Services) -> None:
    with svc.sessions.begin() as session:
        import_registry(session, RegistryDocument.model_validate(REGISTRY), actor="test")


def import_public(svc: Services, folder: Path) -> None:
    paths = write_public_data(folder)
    store = svc.publicdata()
    ripe.import_ripe([paths["ripe"]], store)
    pyasn.import_ipasn(paths["ipasn"], store)
    csirts.import_csirts(paths["csirts"], store)


def ingest(svc: Services, folder: Path, ips: list[str], date: str = "2026-11-20") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report = scan_report(folder / f"{date}-scan_rdp-nl-test.csv", ips, date=date)
    summary = svc.pipeline().ingest_paths([report])
    assert not summary.unusable


def notify(svc: Services) -> None:
    Notifier.from_services(svc).run(workers=1)


def build_world(svc: Services, folder: Path, *, public: bool = True) -> World:
    load_registry(svc)
    if public:
        import_public(svc, folder / "public")
    ingest(svc, folder / "feeds", ACME_IPS + GLOBEX_IPS + (ISP_IPS if public else []))
    notify(svc)
    world = World()
    with svc.engine.connect() as conn:
        for org, cid in conn.execute(select(Case.org_id, Case.id).order_by(Case.id)):
            world.by_org.setdefault(org, []).append(cid)
    assert len(world.by_org["acme"]) == 2 and len(world.by_org["globex"]) == 1
    return world


def mails(svc: Services, recipient: str) -> list[EmailMessage]:
    """The messages rendered for `recipient`, oldest first (from the outbox table)."""
    with svc.engine.connect() as conn:
        rows = conn.execute(select(Delivery.eml).join(
            Notification, Notification.id == Delivery.notification_id)
            .where(Notification.recipient == recipient).order_by(Delivery.id)).scalars().all()
    out = []
    for raw in rows:
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def case_for_ip(svc: Services, org: str, ip: str) -> str:
    """The id of `org`'s case about `ip` (the fingerprint is in the event archive)."""
    fps = {fp for t in svc.events.scan('"organization" = ? AND "source.ip" = ?', [org, ip])
           for fp in t.column("fingerprint").to_pylist()}
    assert len(fps) == 1
    with svc.engine.connect() as conn:
        return str(conn.execute(select(Case.id).where(
            Case.org_id == org, Case.fingerprint == fps.pop())).scalar_one())
