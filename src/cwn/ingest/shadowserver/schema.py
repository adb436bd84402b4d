"""The report table: what each Shadowserver report type means and how its columns map.

The built-in table is data (`reports.yaml` next to this module). Operators can extend or
override it with Shadowserver's published report schema in IntelMQ's format
(`{report: {constant_fields, feed_name, file_name, required_fields, optional_fields}}`):
`update_schema()` fetches and validates it and stores it in the schema directory, and
`load_table()` merges it over the built-in entries (the loaded schema wins for feed names and
constant fields).
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cwn.events.fields import BY_NAME, TAXONOMIES, TAXONOMY_OF_TYPE
from cwn.ingest.result import UnusableInput

SCHEMA_FILE = "shadowserver-intelmq.json"
"""Name of the loaded operator schema inside the schema directory."""

DEFAULT_REQUIRE_ANY: tuple[str, ...] = ("source.ip", "source.network", "source.fqdn", "source.url")
FETCH_TIMEOUT = 30.0
MAX_SCHEMA_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ColumnRule:
    """Where one CSV column goes: a catalogue field, or a key in `extra`."""

    field: str | None = None
    extra: str | None = None
    fallback: str | None = None
    """Second field tried for values not valid for `field` (`ip` holding a CIDR network)."""
    soft: bool = False
    """Values not valid for `field` stay in extra under the column name, unmarked."""
    zero_is_null: bool = False
    convert: str | None = None
    """For extra values: `bool`, `int` or `float` (IntelMQ's convert_* functions)."""


@dataclass(frozen=True, slots=True)
class UrlRule:
    field: str
    host: str
    path: str


@dataclass(frozen=True, slots=True)
class ReportSpec:
    report_type: str
    feed_name: str
    constants: Mapping[str, str] = field(default_factory=dict)
    """Fields filled where the row has no value (classification, protocol ...)."""
    severity: str | None = None
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    """Per-report column rules; they take precedence over the generic map."""
    coalesce: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    require_any: tuple[str, ...] = DEFAULT_REQUIRE_ANY
    url: UrlRule | None = None
    known: bool = True
    """False when the report type is not in any table and the entry was guessed."""


@dataclass(frozen=True, slots=True)
class ReportTable:
    generic: Mapping[str, ColumnRule]
    reports: Mapping[str, ReportSpec]

    def __contains__(self, report_type: object) -> bool:
        return report_type in self.reports

    @property
    def report_types(self) -> tuple[str, ...]:
        return tuple(self.reports)

    def spec(self, report_type: str) -> ReportSpec:
        """The entry for `report_type`; unknown types get a guessed, generic entry."""
        found = self.reports.get(report_type)
        return found if found is not None else guess_spec(report_type)

    def rule(self, spec: ReportSpec, column: str) -> ColumnRule | None:
        return spec.columns.get(column, self.generic.get(column))


def guess_spec(report_type: str) -> ReportSpec:
    """A usable entry for a report type nobody has described yet.

    The identifier is the report type itself (`scan_foo` -> `scan-foo`); taxonomy and type are
    guessed from Shadowserver's naming scheme.
    """
    rt = report_type.lower()
    identifier = rt.replace("_", "-")
    coalesce: dict[str, tuple[str, ...]] = {}
    severity = "medium"
    if rt.startswith(("scan_", "scan6_")):
        taxonomy, ctype = "vulnerable", "vulnerable-system"
    elif "sinkhole" in rt and rt.startswith(("event4_", "event6_")):
        taxonomy, ctype = "malicious-code", "infected-system"
        coalesce["classification.identifier"] = ("tag", "infection")
        severity = "high"
    elif "honeypot" in rt and rt.startswith(("event4_", "event6_")):
        taxonomy, ctype = "other", "other"
    else:
        taxonomy, ctype = "other", "other"
        severity = "info" if rt.startswith(("population", "device_id")) else "medium"
    return ReportSpec(
        report_type=report_type,
        feed_name=report_type,
        constants={
            "classification.taxonomy": taxonomy,
            "classification.type": ctype,
            "classification.identifier": identifier,
        },
        severity=severity,
        coalesce=coalesce,
        known=False,
    )


# -- built-in table ---------------------------------------------------------------------------


def _rule(value: Any, where: str) -> ColumnRule:
    if value is None:
        return ColumnRule()  # explicitly "to extra under its own name"
    if isinstance(value, str):
        value = {"field": value}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: column rule must be a field name or a mapping")
    rule = ColumnRule(
        field=value.get("field"),
        extra=value.get("extra"),
        fallback=value.get("else"),
        soft=bool(value.get("soft", False)),
        zero_is_null=bool(value.get("zero_is_null", False)),
        convert=value.get("convert"),
    )
    for name in (rule.field, rule.fallback):
        if name is not None and name not in BY_NAME:
            raise ValueError(f"{where}: {name!r} is not an event field")
    return rule


def _check_constants(constants: Mapping[str, str], where: str) -> None:
    for name in constants:
        if name not in BY_NAME:
            raise ValueError(f"{where}: constant {name!r} is not an event field")
    tax = constants.get("classification.taxonomy")
    ctype = constants.get("classification.type")
    if tax is not None and tax not in TAXONOMIES:
        raise ValueError(f"{where}: unknown taxonomy {tax!r}")
    if ctype is not None and ctype not in TAXONOMY_OF_TYPE:
        raise ValueError(f"{where}: unknown classification type {ctype!r}")


def _spec_from_yaml(name: str, entry: dict[str, Any], raw: dict[str, Any]) -> ReportSpec:
    where = f"reports.yaml: {name}"
    if "like" in entry:
        base_name = entry["like"]
        if base_name not in raw or "like" in raw[base_name]:
            raise ValueError(f"{where}: like {base_name!r} must name a plain entry")
        entry = {**raw[base_name], **{k: v for k, v in entry.items() if k != "like"}}
    constants: dict[str, str] = {}
    if "class" in entry:
        parts = str(entry["class"]).split("/")
        if len(parts) != 3:
            raise ValueError(f"{where}: class must be taxonomy/type/identifier")
        constants.update(zip(
            ("classification.taxonomy", "classification.type", "classification.identifier"),
            parts, strict=True,
        ))
    if "app" in entry:
        constants["protocol.application"] = str(entry["app"])
    if "transport" in entry:
        constants["protocol.transport"] = str(entry["transport"])
    constants.update({k: str(v) for k, v in (entry.get("constants") or {}).items()})
    _check_constants(constants, where)
    url = entry.get("url")
    return ReportSpec(
        report_type=name,
        feed_name=str(entry.get("feed", name)),
        constants=constants,
        severity=entry.get("severity"),
        columns={c: _rule(r, f"{where}: {c}") for c, r in (entry.get("columns") or {}).items()},
        coalesce={f: tuple(cols) for f, cols in (entry.get("coalesce") or {}).items()},
        require_any=tuple(entry.get("require_any", DEFAULT_REQUIRE_ANY)),
        url=UrlRule(field=url["field"], host=url["host"], path=url["path"]) if url else None,
    )


@lru_cache(maxsize=1)
def builtin_table() -> ReportTable:
    text = resources.files(__package__).joinpath("reports.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    generic = {c: _rule(r, f"reports.yaml: columns.{c}") for c, r in data["columns"].items()}
    raw = data["reports"]
    reports = {name: _spec_from_yaml(name, entry, raw) for name, entry in raw.items()}
    return ReportTable(generic=generic, reports=reports)


# -- operator schema (IntelMQ format) ---------------------------------------------------------

_CONVERSIONS = {"convert_bool": "bool", "convert_int": "int", "convert_float": "float"}


def _validate_schema(data: Any) -> dict[str, dict[str, Any]]:
    """Check the IntelMQ-format schema; returns it keyed by report type (file_name)."""
    if not isinstance(data, dict) or not data:
        raise UnusableInput("schema is not a non-empty JSON object of report entries")
    out: dict[str, dict[str, Any]] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise UnusableInput(f"schema entry {key!r} is not an object")
        feed = entry.get("feed_name")
        if not isinstance(feed, str) or not feed:
            raise UnusableInput(f"schema entry {key!r} has no feed_name")
        consts = entry.get("constant_fields", {})
        if not isinstance(consts, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in consts.items()
        ):
            raise UnusableInput(f"schema entry {key!r}: constant_fields must map names to values")
        for part in ("required_fields", "optional_fields"):
            fields = entry.get(part, [])
            if not isinstance(fields, list) or not all(
                isinstance(f, list) and 2 <= len(f) <= 3 and all(isinstance(x, str) for x in f)
                for f in fields
            ):
                raise UnusableInput(
                    f"schema entry {key!r}: {part} must be a list of [field, column(, conversion)]"
                )
        report_type = entry.get("file_name") or key
        if not isinstance(report_type, str):
            raise UnusableInput(f"schema entry {key!r}: file_name must be text")
        out[report_type] = entry
    return out


def _merge_entry(
    report_type: str, entry: Mapping[str, Any], base: ReportSpec | None
) -> ReportSpec:
    constants = {
        k: str(v) for k, v in entry.get("constant_fields", {}).items() if k in BY_NAME
    }
    columns: dict[str, ColumnRule] = {}
    for spec in [*entry.get("required_fields", []), *entry.get("optional_fields", [])]:
        target, column = spec[0], spec[1]
        conversion = spec[2] if len(spec) > 2 else None
        zero = conversion == "invalidate_zero"
        if target == "extra.":
            rule = ColumnRule(
                extra=column, zero_is_null=zero, convert=_CONVERSIONS.get(conversion or "")
            )
        elif target.startswith("extra."):
            rule = ColumnRule(
                extra=target[len("extra."):], zero_is_null=zero,
                convert=_CONVERSIONS.get(conversion or ""),
            )
        elif target in BY_NAME:
            fallback = "source.network" if target == "source.ip" else None
            rule = ColumnRule(field=target, fallback=fallback)
        else:
            continue  # a field cwn does not know: the column lands in extra under its name
        columns[column] = rule
    try:
        _check_constants(constants, f"schema entry {report_type!r}")
    except ValueError as exc:
        raise UnusableInput(str(exc)) from exc
    if base is None or not base.known:
        base = guess_spec(report_type)
        base = replace(base, known=True, coalesce={})
    return replace(
        base,
        feed_name=str(entry["feed_name"]),
        constants={**base.constants, **constants},
        columns={**base.columns, **columns},
    )


def merge_schema(table: ReportTable, schema: Mapping[str, Mapping[str, Any]]) -> ReportTable:
    """`table` extended/overridden by a validated IntelMQ-format schema."""
    reports = dict(table.reports)
    for report_type, entry in schema.items():
        reports[report_type] = _merge_entry(report_type, entry, reports.get(report_type))
    return ReportTable(generic=table.generic, reports=reports)


def _read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT) as resp:
                data: bytes = resp.read(MAX_SCHEMA_BYTES + 1)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UnusableInput(f"cannot fetch schema from {source}: {reason}") from exc
    else:
        path = Path(source.removeprefix("file://"))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnusableInput(f"cannot read schema {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SCHEMA_BYTES:
        raise UnusableInput(f"schema {source} is larger than {MAX_SCHEMA_BYTES} bytes")
    return data


def update_schema(source: str, dest_dir: Path) -> int:
    """Load Shadowserver's report schema (IntelMQ format) from a file path or http(s) URL,
    validate it and store it in `dest_dir`; returns the number of report types loaded.

    Raises `UnusableInput` with a one-line message when the source cannot be read or is not
    a valid schema; the stored schema is then left unchanged.
    """
    data = _read_source(source)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusableInput(f"schema {source} is not JSON: {exc}") from exc
    schema = _validate_schema(parsed)
    merge_schema(builtin_table(), schema)  # raises on constants cwn cannot represent
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".schema-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(parsed, fh, indent=1, sort_keys=True)
        os.replace(tmp, dest_dir / SCHEMA_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(schema)


def load_table(extra_dir: Path | None) -> ReportTable:
    """The built-in table, extended by the schema stored in `extra_dir` (if any)."""
    table = builtin_table()
    if extra_dir is None:
        return table
    path = extra_dir / SCHEMA_FILE
    if not path.is_file():
        return table
    try:
        parsed = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusableInput(f"stored schema {path} is unreadable: {exc}") from exc
    return merge_schema(table, _validate_schema(parsed))
