"""The notify service: cases → routing decisions → notifications → outbox → delivery.

One run is two phases. The *routing transaction* folds the new reports' events into cases,
decides for every case of the run whether and to whom it is told (storing each "no" with its
reason), creates the notifications, renders the due ones and writes them to the outbox, and
marks the reports as processed — all or nothing, so a crash before the commit leaves the
whole run to be redone and a crash after it leaves a complete outbox. The *delivery phase*
then drains the outbox (cwn.deliver.outbox), one committed message at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from cwn.archive.events import EventArchive
from cwn.attribute.public import is_public_owner
from cwn.config import Settings
from cwn.db.base import UTCDateTime, new_id
from cwn.db.models import Contact, Organization
from cwn.db.models_notify import CaseDecision, Delivery, Notification, NotificationCase
from cwn.deliver.dkim import DkimSigner
from cwn.deliver.outbox import (
    Channel,
    DeliveryStats,
    Outbox,
    PermanentFailure,
    RetryPolicy,
    checkpoint,
)
from cwn.events.batch import EVENT_SCHEMA
from cwn.route.cases import (
    CaseRun,
    clear_staging,
    due_cases,
    fold_events,
    record_repeat_window,
    resolve_missing,
)
from cwn.route.contacts import ContactResolver, OwnerFacts, source_label
from cwn.route.partners import CaseFacts, load_rules
from cwn.route.partners import verdicts as partner_verdicts
from cwn.route.policy import ReminderPolicy
from cwn.route.recipients import Prefs, Recipient, load_routing, route_case

if TYPE_CHECKING:
    from cwn.wiring import Services

_LOCK_KEY = 0x63776E6E  # "cwnn": the PostgreSQL advisory lock of the routing transaction
_CHUNK = 2_000
_POOL_MIN = 200  # notifications in one chunk before rendering is spread over processes


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Knobs of notification and delivery, taken from the Settings object."""

    mail_domain: str = "cwn.example"
    digest_hour: int = 6
    soft_bounce_threshold: int = 3
    workers: int = 2
    render_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyConfig:
        desk = settings.desk_email
        domain = (settings.mail_domain or "").strip() or (
            desk.rsplit("@", 1)[-1].strip() if "@" in desk else "cwn.example")
        return cls(
            mail_domain=domain,
            digest_hour=settings.digest_hour,
            soft_bounce_threshold=settings.soft_bounce_threshold,
            workers=settings.delivery_workers,
            render_workers=settings.render_workers or min(4, os.cpu_count() or 1),
            retry=RetryPolicy(
                base=timedelta(seconds=settings.retry_base_seconds),
                cap=timedelta(seconds=settings.retry_cap_seconds),
                give_up=timedelta(seconds=settings.retry_give_up_seconds),
            ),
        )

    @classmethod
    def from_env(cls) -> NotifyConfig:
        return cls.from_settings(Settings())


@dataclass(slots=True)
class Planned:
    """A notification created (or extended) by a run, for summaries and --dry-run."""

    notification_id: str
    org_id: str
    recipient: str
    language: str
    mode: str
    case_ids: list[str]
    due_at: datetime


@dataclass(slots=True)
class Suppressed:
    case_id: str
    org_id: str
    recipient: str | None
    reason: str


@dataclass(slots=True)
class RunReport:
    run_id: str
    dry_run: bool = False
    cases: CaseRun | None = None
    repeat_window: int = 0
    resolved: int = 0
    planned: list[Planned] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    queued: int = 0
    render_failed: int = 0
    due_in_outbox: int = 0
    delivery: DeliveryStats | None = None
    route_seconds: float = 0.0

    def reasons(self) -> Counter[str]:
        counts: Counter[str] = Counter(s.reason for s in self.suppressed)
        if self.repeat_window:
            counts["repeat_window"] += self.repeat_window
        return counts


_GATHERING = ("digest", "hourly")
"""Modes whose cases gather in one pending notification until it is due."""


def next_digest_at(now: datetime, hour: int) -> datetime:
    at = now.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


def _t(sql: str) -> Any:
    names = [n for n in ("now", "next") if f":{n}" in sql]
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime) for n in names))


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), n):
        yield seq[start:start + n]


class _EventIndex:
    """The events of a set of notifications, looked up by (organisation, fingerprint): the
    few columns a mail body shows per case, and each case's rows for the attachment, whose
    cell texts are computed once for the whole set."""

    def __init__(self, table: pa.Table) -> None:
        from cwn.render.formats.csv import CsvCells
        from cwn.render.message import DISPLAY_COLUMNS

        self.full = table
        self.table = table.select(
            [c for c in DISPLAY_COLUMNS if c in table.column_names]).combine_chunks()
        self.cells = CsvCells(table)
        self.rows: dict[str, list[int]] = {}
        if table.num_rows:
            keys = pc.binary_join_element_wise(
                pc.fill_null(table.column("organization"), ""),
                pc.fill_null(table.column("fingerprint"), ""), "\x1f").to_pylist()
            for i, k in enumerate(keys):
                self.rows.setdefault(k, []).append(i)

    def case_rows(self, org_id: str, fingerprint: str) -> list[int]:
        return self.rows.get(f"{org_id}\x1f{fingerprint}", [])

    def events(self, org_id: str, fingerprint: str) -> pa.Table:
        idx = self.case_rows(org_id, fingerprint)
        if not idx:
            return self.table.schema.empty_table()
        return self.table.take(pa.array(idx, pa.int64()))

    def full_events(self, org_id: str, fingerprint: str) -> pa.Table:
        idx = self.case_rows(org_id, fingerprint)
        return self.full.take(pa.array(idx, pa.int64()))

    def attachment(self, org_id: str, fingerprints: list[str]) -> tuple[bytes, int]:
        rows = [i for fp in fingerprints for i in self.case_rows(org_id, fp)]
        return self.cells.write(rows), len(rows)


@dataclass(frozen=True, slots=True)
class _Job:
    nid: str
    org_id: str
    org_name: str
    recipient: str
    language: str
    cases: list[tuple[Any, ...]]  # id, fingerprint, type, identifier, taxonomy, sev, tlp, ...
    unsolicited: bool = False
    source_label: str | None = None
    owner_name: str | None = None
    recipient_kind: str | None = None
    bulk_format: str | None = None  # a partner's bulk delivery in this format
    partner_id: str | None = None


@dataclass(frozen=True, slots=True)
class _RenderSpec:
    settings: Settings
    domain: str
    signer: DkimSigner | None
    now: datetime


def _render_jobs(jobs: list[_Job], events: pa.Table, spec: _RenderSpec
                 ) -> list[tuple[bytes | None, str]]:
    """(message bytes, subject) per job, or (None, error) when it cannot be rendered.

    Module-level so a process pool can run it; everything it needs comes in the arguments.
    """
    from cwn.render.message import CaseView, NotificationView, render_bytes

    index = _EventIndex(events)
    out: list[tuple[bytes | None, str]] = []
    for j in jobs:
        if j.bulk_format is not None:
            out.append(_render_bulk(j, index, spec))
            continue
        cases = [CaseView(
            case_id=c[0], report_type=c[2], identifier=c[3], taxonomy=c[4],
            severity=c[5] or "medium", tlp=c[6] or spec.settings.default_tlp,
            first_seen=c[7] or spec.now, last_seen=c[8] or spec.now,
            events=index.events(j.org_id, c[1])) for c in j.cases]
        try:
            data, subject = render_bytes(
                NotificationView(notification_id=j.nid, org_id=j.org_id, org_name=j.org_name,
                                 recipient=j.recipient, language=j.language, cases=cases,
                                 unsolicited=j.unsolicited, source_label=j.source_label,
                                 owner_name=j.owner_name, recipient_kind=j.recipient_kind),
                settings=spec.settings, message_id=f"<{j.nid}@{spec.domain}>",
                return_path=f"bounces+{j.nid}@{spec.domain}",
                attachment=index.attachment(j.org_id, [c[1] for c in j.cases]))
        except ValueError as exc:
            out.append((None, str(exc)))
            continue
        if spec.signer is not None:
            data = spec.signer.sign(data)
        out.append((data, subject))
    return out


def _render_bulk(j: _Job, index: _EventIndex, spec: _RenderSpec) -> tuple[bytes | None, str]:
    """A partner's bulk delivery: one machine-readable file of all its covered cases and a
    short summary in its language."""
    from cwn.render.bulk import BulkCase, render_bulk_message, write_bulk

    assert j.bulk_format is not None and j.partner_id is not None
    cases = [BulkCase(
        case_id=c[0], org_id=c[9], org_name=c[10], report_type=c[2], taxonomy=c[4],
        identifier=c[3], severity=c[5] or "medium", tlp=c[6] or spec.settings.default_tlp,
        first_seen=c[7] or spec.now, last_seen=c[8] or spec.now,
        events=index.full_events(c[9], c[1])) for c in j.cases]
    try:
        file = write_bulk(j.bulk_format, cases, partner_id=j.partner_id,
                          reporter_name=spec.settings.desk_name,
                          reporter_email=spec.settings.desk_email, now=spec.now)
        data, subject = render_bulk_message(
            partner_name=j.org_name, recipient=j.recipient, language=j.language, file=file,
            cases=cases, settings=spec.settings, message_id=f"<{j.nid}@{spec.domain}>",
            return_path=f"bounces+{j.nid}@{spec.domain}", now=spec.now)
    except ValueError as exc:
        return None, str(exc)
    if spec.signer is not None:
        data = spec.signer.sign(data)
    return data, subject


class Notifier:
    def __init__(
        self,
        engine: Engine,
        archive: EventArchive,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        config: NotifyConfig | None = None,
        channel_factory: Callable[[], Channel] | None = None,
        resolver: ContactResolver | None = None,
    ) -> None:
        self.engine = engine
        self.archive = archive
        self.settings = settings
        self.clock = clock
        self.config = config or NotifyConfig.from_settings(settings)
        self.channel_factory = channel_factory or self._default_channel
        self.signer = DkimSigner.from_settings(settings)
        self.resolver = resolver or contact_resolver(settings, clock)
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_services(cls, svc: Services, **kw: Any) -> Notifier:
        return cls(svc.engine, svc.events, svc.settings, **kw)

    # -- channels ----------------------------------------------------------------------
    def _default_channel(self) -> Channel:
        if self.settings.smtp_url:
            from cwn.deliver.smtp import SmtpChannel

            return SmtpChannel(self.settings.smtp_url)
        from cwn.deliver.filebox import FileChannel

        return FileChannel(self.settings.outbox_dir)

    def outbox(self) -> Outbox:
        return Outbox(self.engine, self.channel_factory, clock=self.clock,
                      retry=self.config.retry, on_permanent=self._on_permanent)

    # -- the run -----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One notify process at a time on SQLite (one writer, no row locks)."""
        if self.engine.dialect.name != "sqlite":
            yield
            return
        self.settings.home.mkdir(parents=True, exist_ok=True)
        with open(self.settings.home / "notify.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def run(self, *, dry_run: bool = False, deliver: bool = True,
            workers: int | None = None) -> RunReport:
        try:
            return self._run(dry_run=dry_run, deliver=deliver, workers=workers)
        finally:
            self.close()

    def _run(self, *, dry_run: bool, deliver: bool, workers: int | None) -> RunReport:
        report = RunReport(run_id=new_id(), dry_run=dry_run)
        with self.lock():
            started = time.perf_counter()
            self.route(report)
            report.route_seconds = time.perf_counter() - started
            outbox = self.outbox()
            if dry_run or not deliver:
                report.due_in_outbox = outbox.due_count()
                return report
            report.delivery = outbox.deliver(workers=workers or self.config.workers)
        return report

    def route(self, report: RunReport) -> None:
        now = self.clock()
        with self.engine.connect() as conn:
            tx = conn.begin()
            try:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
                checkpoint("route_start")
                report.cases = fold_events(conn, report.run_id, now, self.archive)
                if report.cases.staged:
                    report.repeat_window = record_repeat_window(conn, report.run_id, now)
                    self._route_due(conn, report, now)
                report.resolved = resolve_missing(conn, report.run_id, now)
                clear_staging(conn, report.run_id)
                if not report.dry_run:
                    self.flush(conn, now, report)
                checkpoint("before_route_commit")
            except BaseException:
                tx.rollback()
                raise
            if report.dry_run:
                tx.rollback()
            else:
                tx.commit()
        checkpoint("after_route_commit")

    def _route_due(self, conn: Connection, report: RunReport, now: datetime) -> None:
        due = due_cases(conn, report.run_id, now)
        if not due:
            return
        owners = {str(r[1]) for r in due}
        routing = load_routing(conn, owners)
        # Owners found in public data, and registered organisations left without a usable
        # contact: whom to tell comes from the ranked public candidates.
        registered = sorted(o for o in owners if not is_public_owner(o))
        reachable: set[str] = set()
        for chunk in _chunks(registered, 5000):
            reachable.update(conn.execute(select(Contact.org_id).where(
                Contact.org_id.in_(list(chunk)), Contact.enabled.is_(True)).distinct())
                .scalars())
        unknown = sorted(o for o in owners if o not in reachable)
        if unknown:
            shas = report.cases.reports if report.cases else []
            self.resolver.resolve(conn, self._owner_facts(conn, shas, unknown))
            routing = load_routing(conn, owners)
        policy = ReminderPolicy.load(conn)
        rules = load_rules(conn, now.date())
        facts = self._case_facts(conn, report, due) if rules else {}
        groups: dict[tuple[str, int], list[str]] = {}
        recipients: dict[tuple[str, int], Recipient] = {}
        decisions: list[dict[str, Any]] = []
        told: list[dict[str, Any]] = []
        for case_id, org_id, rt, _ident, tax, sev, _tlp, _first, _last, _prev in due:
            sent = False
            via: list[str] = []
            for pv in partner_verdicts(rules, facts[case_id]) if case_id in facts else ():
                r = pv.rule
                detail = f"agreement {r.agreement_id} of {r.partner_id} ({r.mode})"
                if pv.reason is not None:
                    decisions.append({"case_id": case_id, "run_id": report.run_id, "at": now,
                                      "action": "suppressed", "reason": pv.reason,
                                      "recipient": r.email, "notification_id": None,
                                      "detail": detail})
                    continue
                key = (r.owner_id, r.contact_id)
                groups.setdefault(key, []).append(case_id)
                recipients[key] = Recipient(r.contact_id, r.email, 0, r.language, Prefs(
                    mode="immediate" if r.cadence == "immediate" else
                    "hourly" if r.cadence == "hourly" else "digest"))
                sent = True
                if pv.partner_only:
                    via.append(r.partner_id)
            if via:  # the partner reaches the organisation; we do not mail it ourselves
                decisions.append({"case_id": case_id, "run_id": report.run_id, "at": now,
                                  "action": "suppressed", "reason": "via_partner",
                                  "recipient": None, "notification_id": None,
                                  "detail": ", ".join(sorted(set(via)))})
            for v in () if via else route_case(routing.get(org_id), taxonomy=tax,
                                               report_type=rt, severity=sev, now=now):
                if v.reason is None and v.recipient is not None:
                    key = (org_id, v.recipient.contact_id)
                    groups.setdefault(key, []).append(case_id)
                    recipients[key] = v.recipient
                    sent = True
                    continue
                email = v.recipient.email if v.recipient else None
                reason = v.reason or "no_contact"
                decisions.append({"case_id": case_id, "run_id": report.run_id, "at": now,
                                  "action": "suppressed", "reason": reason,
                                  "recipient": email, "notification_id": None, "detail": None})
                report.suppressed.append(Suppressed(case_id, org_id, email, reason))
            if sent:
                told.append({"b_id": case_id, "now": now,
                             "next": now + policy.interval(org_id, rt, sev)})
        self._create_notifications(conn, report, now, groups, recipients, decisions)
        if decisions:
            conn.execute(insert(CaseDecision), decisions)
        for chunk in _chunks(told, 10_000):
            conn.execute(_t(
                "UPDATE cases SET last_notified_at = :now, next_reminder_at = :next, "
                "notify_count = notify_count + 1 WHERE id = :b_id"), list(chunk))

    def _case_facts(self, conn: Connection, report: RunReport,
                    due: list[tuple[Any, ...]]) -> dict[str, CaseFacts]:
        """Per due case what agreements are matched on: the organisation's sector and
        province, and the addresses and AS numbers of this run's events."""
        orgs = sorted({str(r[1]) for r in due})
        meta: dict[str, tuple[str | None, str | None]] = {}
        for chunk in _chunks(orgs, 5000):
            for o in conn.execute(select(Organization.id, Organization.sector,
                                         Organization.province)
                                  .where(Organization.id.in_(list(chunk)))):
                meta[o[0]] = (o[1], o[2])
        fps: dict[str, str] = dict(conn.execute(text(
            "SELECT c.id, c.fingerprint FROM case_staging s JOIN cases c ON c.id = s.case_id "
            "WHERE s.run_id = :run"), {"run": report.run_id}).all())
        out = {str(r[0]): CaseFacts(str(r[0]), str(r[1]), *meta.get(str(r[1]), (None, None)),
                                    taxonomy=r[4], report_type=r[2], tlp=r[6]) for r in due}
        shas = report.cases.reports if report.cases else []
        if not shas:
            return out
        marks = ", ".join("?" * len(shas))
        parts = [t.select(["organization", "fingerprint", "source.ip", "source.asn"])
                 for t in self.archive.scan(f'"_report" IN ({marks})', list(shas))]
        if not parts:
            return out
        agg = pa.concat_tables(parts).group_by(["organization", "fingerprint"]).aggregate(
            [("source.ip", "distinct"), ("source.asn", "distinct")])
        by_key = {(r["organization"], r["fingerprint"]): r for r in agg.to_pylist()}
        for case in out.values():
            row = by_key.get((case.org_id, fps.get(case.case_id)))
            if row is not None:
                case.ips = {x for x in row["source.ip_distinct"] if x}
                case.asns = {int(x) for x in row["source.asn_distinct"] if x is not None}
        return out

    def _owner_facts(self, conn: Connection, shas: list[str],
                     owners: list[str]) -> list[OwnerFacts]:
        """What this run's events tell about each owner (addresses, AS numbers, host names),
        aggregated by Arrow, for contact resolution; a registered organisation adds the
        domains it registered."""
        def kind(o: str) -> str:
            return o.split(":", 1)[0] if is_public_owner(o) else "registry"

        facts = {o: OwnerFacts(o, kind(o)) for o in owners}
        registered = [o for o in owners if not is_public_owner(o)]
        for chunk in _chunks(registered, 5000):
            for org_id, value in conn.execute(text(
                    "SELECT org_id, value FROM assets WHERE type = 'domain' AND verified "
                    "AND org_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                    {"ids": list(chunk)}):
                facts[org_id].hosts.add(value)
        if not shas:
            return list(facts.values())
        marks = ", ".join("?" * len(shas))
        where = f'"_report" IN ({marks}) AND "organization" IS NOT NULL'
        cols = ["organization", "match_kind", "matched_asset", "source.ip", "source.asn",
                "source.fqdn", "source.reverse_dns", "source.url"]
        parts = [t.select(cols) for t in self.archive.scan(where, list(shas))]
        wanted = pa.array(owners, pa.string())
        if not parts:
            return list(facts.values())
        table = pa.concat_tables(parts)
        table = table.filter(pc.is_in(table.column("organization"), value_set=wanted))
        url_host = pc.extract_regex(table.column("source.url"),
                                    r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<h>[^:/?#\[\]]+)")
        table = table.append_column("url_host", pc.struct_field(url_host, "h"))
        agg = table.group_by("organization").aggregate([
            ("matched_asset", "min"), ("source.ip", "distinct"), ("source.asn", "distinct"),
            ("source.fqdn", "distinct"), ("source.reverse_dns", "distinct"),
            ("url_host", "distinct")])
        for row in agg.to_pylist():
            f = facts[row["organization"]]
            f.asset = row["matched_asset_min"]
            f.ips = {x for x in row["source.ip_distinct"] if x}
            f.asns = {int(x) for x in row["source.asn_distinct"] if x is not None}
            f.hosts |= {x for k in ("source.fqdn_distinct", "source.reverse_dns_distinct",
                                    "url_host_distinct") for x in row[k] if x}
        return list(facts.values())

    def _create_notifications(
        self, conn: Connection, report: RunReport, now: datetime,
        groups: dict[tuple[str, int], list[str]], recipients: dict[tuple[str, int], Recipient],
        decisions: list[dict[str, Any]], *, rerouted_from: str | None = None,
        case_runs: dict[str, str | None] | None = None,
    ) -> list[str]:
        """Immediate groups become new notifications due now; digest groups join the
        recipient's pending digest (or start one due at the next digest hour)."""
        pending: dict[tuple[str, int], str] = {}
        digest_keys = [k for k, r in recipients.items()
                       if r.prefs.mode in _GATHERING and rerouted_from is None]
        if digest_keys:
            rows = conn.execute(text(
                "SELECT id, org_id, contact_id FROM notifications "
                "WHERE state = 'pending' AND mode IN ('digest', 'hourly')")).all()
            wanted = set(digest_keys)
            pending = {(r[1], int(r[2])): r[0] for r in rows
                       if r[2] is not None and (r[1], int(r[2])) in wanted}
        new_rows: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        created: list[str] = []
        for key, case_ids in groups.items():
            org_id, _contact = key
            rcpt = recipients[key]
            mode = rcpt.prefs.mode if rcpt.prefs.mode in _GATHERING and rerouted_from is None \
                else "immediate"
            nid = pending.get(key) if mode != "immediate" else None
            if nid is not None:
                have = {r[0] for r in conn.execute(text(
                    "SELECT case_id FROM notification_cases WHERE notification_id = :n"),
                    {"n": nid})}
                case_ids = [c for c in case_ids if c not in have]
                due_at = now
            else:
                nid = new_id()
                due_at = now if mode == "immediate" else next_digest_at(
                    now, self.config.digest_hour) if mode == "digest" else (
                    now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
                new_rows.append({
                    "id": nid, "org_id": org_id, "contact_id": rcpt.contact_id,
                    "recipient": rcpt.email, "language": rcpt.language, "mode": mode,
                    "state": "pending", "run_id": report.run_id, "due_at": due_at,
                    "case_count": 0, "rerouted_from": rerouted_from, "created_at": now})
                created.append(nid)
            for cid in case_ids:
                run = (case_runs or {}).get(cid, report.run_id)
                links.append({"notification_id": nid, "case_id": cid, "run_id": run})
                decisions.append({
                    "case_id": cid, "run_id": report.run_id, "at": now,
                    "action": "rerouted" if rerouted_from else (
                        "notified" if mode == "immediate" else "digest"),
                    "reason": None, "recipient": rcpt.email, "notification_id": nid,
                    "detail": f"after bounce of {rerouted_from}" if rerouted_from else None})
            report.planned.append(Planned(nid, org_id, rcpt.email, rcpt.language, mode,
                                          list(case_ids), due_at))
        for chunk in _chunks(new_rows, 10_000):
            conn.execute(insert(Notification), list(chunk))
        for chunk in _chunks(links, 10_000):
            conn.execute(insert(NotificationCase), list(chunk))
        return created

    # -- rendering into the outbox -----------------------------------------------------
    def flush(self, conn: Connection, now: datetime, report: RunReport,
              only: Iterable[str] | None = None) -> int:
        """Render every pending notification that is due and put it in the outbox."""
        if only is not None:
            ids = list(only)
        else:
            ids = [r[0] for r in conn.execute(_t(
                "SELECT id FROM notifications WHERE state = 'pending' AND due_at <= :now "
                "ORDER BY id"), {"now": now})]
        queued = 0
        for chunk in _chunks(ids):
            queued += self._render_chunk(conn, list(chunk), now, report)
        report.queued += queued
        return queued

    def _load_events(self, conn: Connection, runs: set[str], orgs: set[str]) -> pa.Table:
        shas: list[str] = []
        for chunk in _chunks(sorted(runs), 1000):
            shas += [r[0] for r in conn.execute(
                text("SELECT report_sha256 FROM notify_reports WHERE run_id IN :runs")
                .bindparams(bindparam("runs", expanding=True)), {"runs": list(chunk)})]
        if not shas or not orgs:
            return EVENT_SCHEMA.empty_table()
        where = ('"_report" IN (' + ",".join("?" * len(shas)) + ") AND organization IN ("
                 + ",".join("?" * len(orgs)) + ")")
        batches = list(self.archive.scan(where, [*shas, *sorted(orgs)]))
        return pa.concat_tables(batches) if batches else EVENT_SCHEMA.empty_table()

    def _render_chunk(self, conn: Connection, ids: list[str], now: datetime,
                      report: RunReport) -> int:
        notes = conn.execute(
            select(Notification.id, Notification.org_id, Notification.recipient,
                   Notification.language).where(Notification.id.in_(ids))
            .order_by(Notification.id)).all()
        case_rows = conn.execute(text(
            "SELECT nc.notification_id, nc.run_id, c.id, c.fingerprint, c.report_type, "
            "c.identifier, c.taxonomy, c.severity, c.tlp, c.first_seen, c.last_seen, "
            "c.org_id, o.name FROM notification_cases nc JOIN cases c ON c.id = nc.case_id "
            "LEFT JOIN organizations o ON o.id = c.org_id "
            "WHERE nc.notification_id IN :ids ORDER BY nc.notification_id, c.id")
            .bindparams(bindparam("ids", expanding=True))
            .columns(first_seen=UTCDateTime, last_seen=UTCDateTime), {"ids": ids}).all()
        by_note: dict[str, list[tuple[Any, ...]]] = {}
        for r in case_rows:
            by_note.setdefault(r[0], []).append(tuple(r[2:]))
        orgs = {n.org_id for n in notes}
        names = dict(conn.execute(select(Organization.id, Organization.name)
                                  .where(Organization.id.in_(sorted(orgs)))).all())
        events = self._load_events(conn, {r[1] for r in case_rows if r[1]},
                                   orgs | {r[11] for r in case_rows})
        bulk = self._bulk_targets(conn, [n.org_id for n in notes
                                         if n.org_id.startswith("partner:")])
        found = self._found_where(conn, [(n.org_id, n.recipient) for n in notes
                                         if not n.org_id.startswith("partner:")])
        jobs = []
        for n in notes:
            if n.org_id in bulk:
                fmt, partner_id, partner_name = bulk[n.org_id]
                jobs.append(_Job(n.id, n.org_id, partner_name, n.recipient, n.language,
                                 by_note.get(n.id, []), bulk_format=fmt,
                                 partner_id=partner_id))
                continue
            src = found.get((n.org_id, n.recipient.lower()))
            if src is None:
                jobs.append(_Job(n.id, n.org_id, names.get(n.org_id, n.org_id), n.recipient,
                                 n.language, by_note.get(n.id, [])))
                continue
            owner = src[2] or n.org_id
            jobs.append(_Job(n.id, n.org_id, owner, n.recipient, n.language,
                             by_note.get(n.id, []), unsolicited=True,
                             source_label=source_label(src[0], src[1], n.language),
                             owner_name=owner, recipient_kind=n.org_id.split(":", 1)[0]))
        job = _RenderSpec(self.settings, self.config.mail_domain, self.signer, now)
        results = self._render(jobs, events, job)
        deliveries: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        failed: list[str] = []
        for j, (data, subject_or_error) in zip(jobs, results, strict=True):
            if data is None:
                failed.append(j.nid)
                report.render_failed += 1
                conn.execute(insert(CaseDecision), [
                    {"case_id": c[0], "run_id": report.run_id, "at": now,
                     "action": "undelivered", "reason": "render_failed",
                     "recipient": j.recipient, "notification_id": j.nid,
                     "detail": subject_or_error[:2000]} for c in j.cases])
                continue
            message_id = f"<{j.nid}@{self.config.mail_domain}>"
            deliveries.append({
                "notification_id": j.nid, "recipient": j.recipient,
                "return_path": f"bounces+{j.nid}@{self.config.mail_domain}",
                "message_id": message_id, "eml": data, "state": "queued", "attempts": 0,
                "next_attempt_at": now, "created_at": now})
            updates.append({"b_id": j.nid, "mid": message_id, "subj": subject_or_error[:998],
                            "now": now, "cnt": len(j.cases)})
        if deliveries:
            conn.execute(insert(Delivery), deliveries)
            conn.execute(_t(
                "UPDATE notifications SET state = 'queued', message_id = :mid, subject = :subj, "
                "queued_at = :now, case_count = :cnt WHERE id = :b_id"), updates)
        if failed:
            conn.execute(update(Notification).where(Notification.id.in_(failed))
                         .values(state="failed"))
        return len(deliveries)

    @staticmethod
    def _bulk_targets(conn: Connection, owner_ids: list[str]
                      ) -> dict[str, tuple[str, str, str]]:
        """(format, partner id, partner name) of each `partner:<agreement>` owner."""
        if not owner_ids:
            return {}
        from cwn.db.models_partners import Agreement, Partner

        ids = sorted({o.split(":", 1)[1] for o in owner_ids})
        rows = conn.execute(select(Agreement.id, Agreement.format, Partner.id, Partner.name)
                            .join(Partner, Partner.id == Agreement.partner_id)
                            .where(Agreement.id.in_(ids))).all()
        return {f"partner:{r[0]}": (r[1], r[2], r[3]) for r in rows}

    @staticmethod
    def _found_where(conn: Connection, pairs: list[tuple[str, str]]
                     ) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
        """(source, detail, owner name) of the candidate each unsolicited recipient came
        from, so the mail can say where we found the address."""
        if not pairs:
            return {}
        from cwn.db.models_contacts import ContactCandidate

        owners = sorted({p[0] for p in pairs})
        out: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
        for start in range(0, len(owners), _CHUNK):
            for c in conn.execute(select(
                    ContactCandidate.owner_id, ContactCandidate.email, ContactCandidate.source,
                    ContactCandidate.detail, ContactCandidate.owner_name).where(
                    ContactCandidate.owner_id.in_(owners[start:start + _CHUNK]))):
                out.setdefault((c[0], c[1].lower()), (c[2], c[3], c[4]))
        return out

    def _render(self, jobs: list[_Job], events: pa.Table, spec: _RenderSpec
                ) -> list[tuple[bytes | None, str]]:
        """Render inline, or on a process pool when there is enough work to share: the mail
        libraries are pure Python, so processes are the way to use more than one core."""
        workers = self.config.render_workers
        if workers <= 1 or len(jobs) < _POOL_MIN:
            return _render_jobs(jobs, events, spec)
        if self._pool is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["cwn.notify", "cwn.render.message"])
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        size = max(25, -(-len(jobs) // (workers * 4)))
        futures = []
        for start in range(0, len(jobs), size):
            part = jobs[start:start + size]
            orgs = pa.array(sorted({j.org_id for j in part}
                                   | {c[9] for j in part if j.bulk_format for c in j.cases}),
                            pa.string())
            sub = events.filter(pc.is_in(events.column("organization"), value_set=orgs)) \
                if events.num_rows else events
            futures.append(self._pool.submit(_render_jobs, part, sub, spec))
        out: list[tuple[bytes | None, str]] = []
        for f in futures:
            out.extend(f.result())
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # -- bounces and re-routing --------------------------------------------------------
    def _on_permanent(self, conn: Connection, notification_id: str, recipient: str,
                      exc: PermanentFailure) -> None:
        self.reroute(conn, notification_id, recipient, reason=f"smtp {exc}")

    def disable_address(self, conn: Connection, address: str, reason: str = "hard_bounce"
                        ) -> int:
        """A hard bounce: the address is off for registry contacts and public candidates."""
        flag_address(conn, address, self.clock(), disable=True, reason=reason)
        res = conn.execute(text(
            "UPDATE contacts SET enabled = :f WHERE lower(email) = :e AND enabled = :t"),
            {"e": address.strip().lower(), "f": False, "t": True})
        return int(res.rowcount or 0)

    def not_ours(self, conn: Connection, notification_id: str, address: str) -> list[str]:
        """The told address answered "not ours": its confidence drops (for every owner
        that lists it) and the notification's cases go to the owner's next candidate."""
        flag_address(conn, address, self.clock(), not_ours=True, reason="not_ours")
        return self.reroute(conn, notification_id, address, reason="not ours",
                            disable=False)

    def reroute(self, conn: Connection, notification_id: str, address: str, *,
                reason: str, disable: bool = True) -> list[str]:
        """Disable `address` (a hard bounce), mark the notification bounced (or rejected),
        and hand its cases to the next contact of the organisation (by priority); returns
        the new notifications' ids."""
        now = self.clock()
        report = RunReport(run_id=new_id())
        state = "bounced" if disable else "rejected"
        if disable:
            self.disable_address(conn, address)
        conn.execute(text("UPDATE notifications SET state = :s WHERE id = :n"),
                     {"n": notification_id, "s": state})
        if disable:
            conn.execute(text(
                "UPDATE deliveries SET state = 'bounced' WHERE notification_id = :n"),
                {"n": notification_id})
        row = conn.execute(select(Notification.org_id).where(
            Notification.id == notification_id)).first()
        if row is None:
            return []
        org_id = row[0]
        cases = conn.execute(text(
            "SELECT c.id, c.report_type, c.taxonomy, c.severity, nc.run_id "
            "FROM notification_cases nc JOIN cases c ON c.id = nc.case_id "
            "WHERE nc.notification_id = :n ORDER BY c.id"), {"n": notification_id}).all()
        if not cases:
            return []
        told = {(r[0], str(r[1]).lower()) for r in conn.execute(text(
            "SELECT nc.case_id, n.recipient FROM notification_cases nc "
            "JOIN notifications n ON n.id = nc.notification_id "
            "WHERE n.state IN ('pending', 'queued', 'sent') AND nc.case_id IN :ids")
            .bindparams(bindparam("ids", expanding=True)), {"ids": [c[0] for c in cases]})}
        routing = load_routing(conn, [org_id]).get(org_id)
        groups: dict[tuple[str, int], list[str]] = {}
        recipients: dict[tuple[str, int], Recipient] = {}
        decisions: list[dict[str, Any]] = [
            {"case_id": c[0], "run_id": None, "at": now, "action": "undelivered",
             "reason": "bounced" if disable else "not_ours", "recipient": address,
             "notification_id": notification_id,
             "detail": reason[:2000]} for c in cases]
        case_runs = {c[0]: c[4] for c in cases}
        bad = frozenset({address.strip().lower()})
        for case_id, rt, tax, sev, _run in cases:
            for v in route_case(routing, taxonomy=tax, report_type=rt, severity=sev or "medium",
                                now=now, exclude=bad):
                if v.recipient is not None and (case_id, v.recipient.email.lower()) in told:
                    continue
                if v.reason is None and v.recipient is not None:
                    key = (org_id, v.recipient.contact_id)
                    groups.setdefault(key, []).append(case_id)
                    recipients[key] = v.recipient
                else:
                    decisions.append({
                        "case_id": case_id, "run_id": None, "at": now, "action": "suppressed",
                        "reason": v.reason or "no_contact",
                        "recipient": v.recipient.email if v.recipient else None,
                        "notification_id": None, "detail": f"after {reason}: {address}"})
        created = self._create_notifications(conn, report, now, groups, recipients, decisions,
                                             rerouted_from=notification_id, case_runs=case_runs)
        conn.execute(insert(CaseDecision), decisions)
        if created:
            self.flush(conn, now, report, only=created)
        return created


def flag_address(conn: Connection, address: str, now: datetime, *, disable: bool = False,
                 not_ours: bool = False, reason: str | None = None) -> None:
    """Record feedback about an address (`address_flags`), which contact resolution reads."""
    from cwn.db.models_contacts import AddressFlag

    key = address.strip().lower()
    flag = conn.execute(select(AddressFlag).where(AddressFlag.email == key)).first()
    values = {"updated_at": now, "reason": reason}
    if flag is None:
        conn.execute(insert(AddressFlag).values(
            email=key, hard_bounces=int(disable), not_ours=int(not_ours), disabled=disable,
            **values))
        return
    conn.execute(update(AddressFlag).where(AddressFlag.email == key).values(
        hard_bounces=AddressFlag.hard_bounces + int(disable),
        not_ours=AddressFlag.not_ours + int(not_ours),
        disabled=bool(flag.disabled) or disable,
        **values))


def contact_resolver(settings: Settings, clock: Callable[[], datetime]) -> ContactResolver:
    """The resolver the settings ask for: offline public data, plus cached live RDAP and
    security.txt lookups when `live_lookups` is on."""
    from cwn.publicdata.httpcache import default_cache_root
    from cwn.publicdata.store import PublicDataStore

    store = PublicDataStore(settings.publicdata_dir)
    if not settings.live_lookups:
        return ContactResolver(store, clock=clock)
    from cwn.publicdata.rdap import RdapClient, RdapConfig
    from cwn.publicdata.securitytxt import SecurityTxtFetcher

    cache = default_cache_root(settings.home)
    rdap = RdapClient(RdapConfig(ip_url=settings.rdap_ip_url, asn_url=settings.rdap_asn_url,
                                 rate_per_second=settings.rdap_rate), cache, clock)
    sectxt = SecurityTxtFetcher(cache, url_template=settings.securitytxt_url, clock=clock,
                                keyring=settings.securitytxt_keyring)
    return ContactResolver(store, clock=clock, securitytxt=sectxt, rdap=rdap)


def main() -> None:
    """`python -m cwn.notify`: one notify run with the configured settings (what `cwn notify`
    does), for scripts and the crash tests that SIGKILL it."""
    import sys

    from cwn.wiring import build

    svc = build(Settings())
    try:
        report = Notifier.from_services(svc).run(dry_run="--dry-run" in sys.argv[1:])
    finally:
        svc.close()
    d = report.delivery
    print(f"run {report.run_id}: queued {report.queued}, "
          f"sent {d.sent if d else 0}, deferred {d.deferred if d else 0}, "
          f"bounced {d.bounced if d else 0}, failed {d.failed if d else 0}")


if __name__ == "__main__":
    main()
