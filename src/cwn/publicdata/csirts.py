"""Directory of national CSIRTs: whom to tell about an address outside the Kingdom.

For a foreign address the right recipient is that country's national CSIRT, not the
holder: it knows its constituency and language and is the agreed channel between CSIRTs.
Two sources are kept side by side (as separate parts, each refreshed on its own): the
Trusted Introducer directory, whose constituency types mark national teams, and a small CSV
(`country,name,email[,url]`) the operator maintains to fill gaps and override.

Choice per country: the operator CSV's first row for the country; else the first Trusted
Introducer team flagged national. Other Trusted Introducer teams (sector, commercial and
academic CSIRTs) are kept in the table but never chosen: mailing a company's in-house team
about addresses of its whole country would be wrong.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.pyasn import open_text_input
from cwn.publicdata.store import ImportSummary, PublicDataStore

KIND = "csirts"
PART_TI, PART_CSV = "trusted_introducer", "operator"
_PRIORITY = {PART_CSV: 0, PART_TI: 1}
_EMAIL = r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$"
_SCHEMA = pa.schema([("country", pa.string()), ("name", pa.string()), ("email", pa.string()),
                     ("url", pa.string()), ("national", pa.bool_())])


def import_csirts(path: Path, store: PublicDataStore) -> ImportSummary:
    """Replace the Trusted Introducer part or the operator CSV part with `path`; which one is
    told by the content (JSON array/object vs a `country,name,email` header)."""
    with open_text_input(path) as stream:
        blob = stream.read()
    text = blob.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text[:1] in ("[", "{"):
        table, skipped, notes = _trusted_introducer(path, blob)
        part = PART_TI
    elif re.match(r"^country\s*,\s*name\s*,\s*email\s*(,|\r?\n|$)", text, re.IGNORECASE):
        table, skipped, notes = _operator_csv(path, text)
        part = PART_CSV
    else:
        raise PublicDataError(f"{path}: neither Trusted Introducer JSON nor a CSV with header "
                              "country,name,email[,url]")
    if table.num_rows == 0:
        raise PublicDataError(f"{path}: no usable CSIRT entries")
    summary = ImportSummary(kind=KIND, part=part, source=str(path), rows=table.num_rows,
                            skipped=skipped, notes=notes,
                            counts={"national": int(pc.sum(table["national"]).as_py() or 0),
                                    "countries": len(pc.unique(table["country"]))})
    store.write(summary, {"teams": table})
    return summary


def _trusted_introducer(path: Path, blob: bytes) -> tuple[pa.Table, int, list[str]]:
    """Teams from the directory JSON (a list of teams, or an object holding one). A few
    hundred teams, parsed once per import: the Python loop here is not on a lookup path."""
    try:
        obj = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise PublicDataError(f"{path}: not JSON ({exc.msg} at byte {exc.pos})") from exc
    if isinstance(obj, dict):
        obj = next((v for k, v in obj.items() if k in ("teams", "data", "results")
                    and isinstance(v, list)), None)
    if not isinstance(obj, list):
        raise PublicDataError(f"{path}: JSON is not a list of Trusted Introducer teams")
    rows: list[dict[str, Any]] = []
    for team in obj:
        row = _team(team) if isinstance(team, dict) else None
        if row is not None:
            rows.append(row)
    skipped = len(obj) - len(rows)
    notes = [f"{skipped} teams without a country or contact email skipped"] if skipped else []
    return pa.Table.from_pylist(rows, schema=_SCHEMA), skipped, notes


def _team(team: dict[str, Any]) -> dict[str, Any] | None:
    country = team.get("country")
    code = country.get("code") if isinstance(country, dict) else country
    name = team.get("official_name") or team.get("short_name") or team.get("name")
    email = _pick_email(team.get("emails"))
    if not (isinstance(code, str) and re.fullmatch(r"[A-Za-z]{2}", code.strip())
            and isinstance(name, str) and name.strip() and email):
        return None
    constituency = team.get("constituency")
    types = constituency.get("types") if isinstance(constituency, dict) else None
    national = any(isinstance(t, str) and t.strip().lower().startswith("national")
                   for t in types or [])
    url = team.get("website") or team.get("url")
    return {"country": code.strip().upper(), "name": name.strip(), "email": email,
            "url": url if isinstance(url, str) else None, "national": national}


def _pick_email(emails: Any) -> str | None:
    """The address to report incidents to: one whose usage mentions incidents, else the
    general contact address, else the first listed."""
    found: list[tuple[int, str]] = []
    for pos, item in enumerate(emails if isinstance(emails, list) else []):
        address = item.get("address") if isinstance(item, dict) else item
        if not isinstance(address, str) or not re.fullmatch(_EMAIL, address.strip()):
            continue
        usage = " ".join(str(u) for u in item.get("usage") or []).lower() \
            if isinstance(item, dict) else ""
        rank = 0 if "incident" in usage else 1 if "contact" in usage else 2
        found.append((rank * 1000 + pos, address.strip()))
    return min(found)[1] if found else None


def _operator_csv(path: Path, text: str) -> tuple[pa.Table, int, list[str]]:
    """The operator's CSV, read with the csv module: it is hand-edited and small, and a row
    without the optional trailing url must still count (pyarrow.csv rejects ragged rows)."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader)]
    where: dict[str, int] = {c: header.index(c) for c in ("country", "name", "email", "url")
                             if c in header}
    cols: dict[str, list[str | None]] = {name: [] for name in ("country", "name", "email",
                                                                "url")}
    ragged = 0
    for row in reader:
        if not any(f.strip() for f in row):
            continue
        if len(row) > len(header) or len(row) <= where["email"]:
            ragged += 1
            continue
        for column, items in cols.items():
            i = where.get(column)
            items.append(row[i] if i is not None and i < len(row) else None)
    country, name, email, url = (pc.utf8_trim_whitespace(pa.array(cols[c], pa.string()))
                                 for c in ("country", "name", "email", "url"))
    ok = pc.and_(pc.and_(pc.match_substring_regex(country, r"^[A-Za-z]{2}$"),
                         pc.greater(pc.utf8_length(name), 0)),
                 pc.match_substring_regex(email, _EMAIL))
    table = pa.table({"country": pc.utf8_upper(country), "name": name, "email": email,
                      "url": pc.if_else(pc.equal(url, ""), pa.scalar(None, pa.string()), url),
                      "national": pa.repeat(pa.scalar(True), len(country))},
                     schema=_SCHEMA).filter(pc.fill_null(ok, False))
    skipped = ragged + len(country) - table.num_rows
    notes = [f"{skipped} rows without a two-letter country, a name or a valid email skipped"
             ] if skipped else []
    return table, skipped, notes


@dataclass(frozen=True, repr=False)
class CsirtDirectory:
    """The chosen national CSIRT per country (one row per country, sorted by country)."""

    chosen: pa.Table

    @classmethod
    def load(cls, store: PublicDataStore) -> CsirtDirectory | None:
        tables = []
        for part in store.parts(KIND):
            t = store.read(KIND, "teams", part=part)
            if t is None:
                continue
            t = t.append_column("priority", pa.repeat(pa.scalar(_PRIORITY.get(part, 2)),
                                                      t.num_rows))
            tables.append(t.append_column("order", pa.array(np.arange(t.num_rows))))
        if not tables:
            return None
        teams = pa.concat_tables(tables, promote_options="default")
        candidates = teams.filter(pc.or_(pc.equal(teams["priority"], 0), teams["national"]))
        ranked = candidates.sort_by([("country", "ascending"), ("priority", "ascending"),
                                     ("order", "ascending")])
        country = ranked["country"].to_numpy(zero_copy_only=False)
        first = np.ones(len(country), dtype=bool)
        first[1:] = country[1:] != country[:-1]
        chosen = ranked.filter(pa.array(first)).select(["country", "name", "email"])
        return cls(chosen.combine_chunks())

    def for_countries(self, cc: pa.Array | pa.ChunkedArray) -> pa.Table:
        """Per country code (any case): its national CSIRT; a null row where none is known."""
        arr = cc.combine_chunks() if isinstance(cc, pa.ChunkedArray) else cc
        codes = pc.utf8_upper(pc.utf8_trim_whitespace(arr.cast(pa.string())))
        pos = pc.index_in(codes, value_set=self.chosen["country"])
        return self.chosen.take(pos)
