"""`cwn demo`: the whole flow on a fresh home with bundled sample data.

It exists so a newcomer sees cwn work with one command (`make run`) and knows where to look
afterwards; it uses exactly the same services as production.
"""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

from sqlalchemy import text

from cwn.cli.console import console
from cwn.config import Settings
from cwn.wiring import Services, build

DATA = files("cwn.demo") / "data"


def run_demo(home: Path | None = None) -> int:
    """Run the demo; returns the number of attributed events."""
    from cwn.cli.ingest import print_summary
    from cwn.registry.format import RegistryDocument
    from cwn.registry.importer import import_registry
    from cwn.render.formats.intelmq import write_intelmq

    base = Settings()
    home = home or base.home / "demo"
    if home.exists():
        shutil.rmtree(home)
    settings = Settings(home=home, database_url=None)
    svc = build(settings)
    console.rule("[bold]cwn demo")
    console.print(f"fresh home: {home.resolve()}")

    doc = RegistryDocument.model_validate(
        json.loads((DATA / "registry.json").read_text(encoding="utf-8")))
    with svc.sessions.begin() as session:
        result = import_registry(session, doc, actor="demo")
    console.print(f"registry: {result}")

    from cwn.publicdata.csirts import import_csirts

    # Public data for the owners nobody registered: here only a (fictional) national CSIRT
    # directory, so the sample events seen abroad go, unsolicited, to their country's team.
    imported = import_csirts(Path(str(DATA / "publicdata" / "csirts.csv")), svc.publicdata())
    console.print(f"public data: {imported.rows} national CSIRTs (fictional demo directory)")

    feeds = Path(str(DATA / "feeds"))
    csvs = sorted(feeds.glob("*.csv"))
    summary = svc.pipeline().ingest_paths(csvs)
    print_summary(summary, "Demo ingest")

    from cwn.cli.notify import print_run
    from cwn.notify import Notifier

    report = Notifier.from_services(svc).run()
    print_run(report)
    with svc.engine.connect() as conn:
        cases = list(conn.execute(text(
            "SELECT id, org_id, report_type FROM cases ORDER BY id LIMIT 3")).all())
        cases += conn.execute(text(
            "SELECT id, org_id, report_type FROM cases WHERE org_id LIKE 'csirt:%' "
            "ORDER BY id LIMIT 1")).all()

    export = home / "events.intelmq.jsonl"
    with export.open("wb") as out:
        n = write_intelmq(svc.events.scan(), out)
    console.rule("[bold]where to look")
    for label, where in (
        (f"events with their owner ({n}, IntelMQ JSON)", export),
        ("event archive (Parquet, by date and feed)", settings.events_dir),
        ("raw reports (content-addressed)", settings.raw_dir),
        ("notifications sent (.eml files; set CWN_SMTP_URL to mail them)",
         settings.outbox_dir),
        ("database", settings.db_url),
    ):
        console.print(f"[bold]{label}[/]\n  {where}", soft_wrap=True)
    console.print(f"\nTry:  CWN_HOME={home} .venv/bin/cwn status\n"
                  f"      CWN_HOME={home} .venv/bin/cwn cases list\n"
                  f"      CWN_HOME={home} .venv/bin/cwn notifications list\n"
                  f"      CWN_HOME={home} .venv/bin/cwn events export --org gemeente-zuiderveen",
                  soft_wrap=True)
    for case_id, org, rtype in cases:
        note = " (unsolicited: the country's national CSIRT)" if org.startswith("csirt:") \
            else ""
        console.print(f"      CWN_HOME={home} .venv/bin/cwn cases show {case_id}"
                      f"   # {org}, {rtype}{note}", soft_wrap=True)
    _portal_invitations(svc)
    svc.close()
    return summary.total("attributed")


def _portal_invitations(svc: Services) -> None:
    """Invite a demo operator and a demo organisation admin, so `cwn serve` can be tried
    at once (the links are printed; the mails are in the outbox folder)."""
    from cwn.access import users as accounts

    settings = svc.settings
    base = settings.public_url.rstrip("/")
    with svc.sessions() as s:
        _, op = accounts.invite(s, settings, email="operator@cwn.example", role="operator",
                                actor="demo", language="en")
        _, admin = accounts.invite(s, settings, email="beheer@zuiderveen.example",
                                   role="org_admin", org_id="gemeente-zuiderveen",
                                   actor="demo")
        s.commit()
    console.rule("[bold]portal")
    console.print(f"Start it:  CWN_HOME={settings.home} .venv/bin/cwn serve\n"
                  "then open, to set a password and two-step sign-in (TOTP):\n"
                  f"  operator:                  {base}/invite/{op}\n"
                  f"  Gemeente Zuiderveen admin: {base}/invite/{admin}\n"
                  f"API docs: {base}/api/docs   (tokens: cwn tokens create --org ID)\n"
                  f"The case links in the mails in {settings.outbox_dir} open there too, "
                  "without an account.",
                  soft_wrap=True)
