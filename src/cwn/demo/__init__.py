"""`cwn demo`: the whole flow on a fresh home with bundled sample data.

It exists so a newcomer sees cwn work with one command (`make run`) and knows where to look
afterwards; it uses exactly the same services as production.
"""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

from rich.panel import Panel

from cwn.cli.console import console
from cwn.config import Settings
from cwn.wiring import build

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

    feeds = Path(str(DATA / "feeds"))
    csvs = sorted(feeds.glob("*.csv"))
    summary = svc.pipeline().ingest_paths(csvs)
    print_summary(summary, "Demo ingest")

    export = home / "events.intelmq.jsonl"
    with export.open("wb") as out:
        n = write_intelmq(svc.events.scan(), out)
    console.print(Panel.fit(
        f"[bold]Where to look[/]\n"
        f"  events with their owner (IntelMQ JSON): {export}  ({n} events)\n"
        f"  event archive (Parquet, by date/feed):  {settings.events_dir}\n"
        f"  raw reports (content-addressed):        {settings.raw_dir}\n"
        f"  database:                               {settings.db_url}\n\n"
        f"Try: CWN_HOME={home} cwn status\n"
        f"     CWN_HOME={home} cwn events export --org gemeente-zuiderveen",
        title="done"))
    svc.close()
    return summary.total("attributed")
