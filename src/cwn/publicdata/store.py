"""Where imported public data lives: one folder per kind under `CWN_HOME/publicdata/`.

Each import replaces a kind (or one part of it, such as one RIR's delegated file) as a
whole: the new Parquet tables are written to a temporary folder and swapped in with a rename,
so a crash mid-import leaves the previous data intact and lookups never see half a refresh.
`meta.json` records what was imported, from where, and the date the data itself carries, so
an operator can see how stale each source is (`cwn publicdata status`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(slots=True)
class ImportSummary:
    """What one `cwn publicdata import KIND PATH` did; printed by the CLI."""

    kind: str
    part: str
    source: str
    rows: int = 0
    skipped: int = 0
    source_date: str | None = None  # the date the data describes (file header), ISO
    imported_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class PublicDataStore:
    """Parquet tables per (kind, part). `part` lets one kind hold several sources, e.g. the
    delegated statistics of each of the five RIRs, refreshed independently."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, kind: str, part: str = "default") -> Path:
        return self.root / kind / part

    def write(self, summary: ImportSummary, tables: Mapping[str, pa.Table]) -> Path:
        """Atomically replace (kind, part) with `tables` and record `summary` as meta.json."""
        final = self.folder(summary.kind, summary.part)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{summary.part}.{uuid.uuid4().hex}.tmp"
        tmp.mkdir()
        try:
            for name, table in tables.items():
                pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
            (tmp / "meta.json").write_text(json.dumps(asdict(summary), indent=2),
                                           encoding="utf-8")
            old = None
            if final.exists():
                old = final.parent / f".{summary.part}.{uuid.uuid4().hex}.old"
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def parts(self, kind: str) -> list[str]:
        base = self.root / kind
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if p.is_dir() and not p.name.startswith(".")
                      and (p / "meta.json").is_file())

    def has(self, kind: str) -> bool:
        return bool(self.parts(kind))

    def read(self, kind: str, name: str, part: str | None = None) -> pa.Table | None:
        """One table of a kind; with `part=None`, the same table of every part concatenated
        (with a `part` column added when there is more than one)."""
        parts = [part] if part is not None else self.parts(kind)
        tables = []
        for p in parts:
            path = self.folder(kind, p) / f"{name}.parquet"
            if path.is_file():
                t = pq.read_table(path)
                if part is None and len(parts) > 1:
                    t = t.append_column("part", pa.repeat(pa.scalar(p), t.num_rows))
                tables.append(t)
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 \
            else tables[0]

    def meta(self, kind: str, part: str = "default") -> dict[str, Any] | None:
        path = self.folder(kind, part) / "meta.json"
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def status(self) -> list[dict[str, Any]]:
        """Every (kind, part) with its meta, for `cwn publicdata status`."""
        out: list[dict[str, Any]] = []
        if not self.root.is_dir():
            return out
        for kind_dir in sorted(p for p in self.root.iterdir()
                               if p.is_dir() and not p.name.startswith(".")):
            for part in self.parts(kind_dir.name):
                meta = self.meta(kind_dir.name, part)
                if meta is not None:
                    out.append(meta)
        return out
