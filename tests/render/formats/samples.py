"""Real IntelMQ event samples from the shared data, as JSON-lines files (one per source)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DATA = Path(  # the same default as tests/conftest.py
    os.environ.get("CWN_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data")
)


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "events" in doc:
        return list(doc["events"])
    out: list[dict[str, Any]] = []
    for value in doc.get("messages", {}).values():
        for e in value if isinstance(value, list) else [value]:
            if isinstance(e, dict) and e.get("__type") == "Event":
                out.append(e)
    return out


def sample_files() -> dict[str, list[dict[str, Any]]]:
    """name -> IntelMQ events, for every shared sample that holds IntelMQ events."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((DATA / "shadowserver" / "expected_intelmq").glob("*.json")):
        found[f"shadowserver/{path.stem}"] = _events(json.loads(path.read_text()))
    for path in sorted((DATA / "feeds_other").glob("*/expected_intelmq__*.json")):
        found[f"{path.parent.name}/{path.stem}"] = _events(json.loads(path.read_text()))
    agg = DATA / "intelmq" / "events" / "aggregate_events.jsonl"
    found["intelmq/aggregate_events"] = [
        json.loads(line) for line in agg.read_text().splitlines() if line.strip()
    ]
    return {k: v for k, v in found.items() if v}


def jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)
