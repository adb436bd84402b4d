"""Advice library ("handelingsperspectief"): typed loader for the YAML advice entries.

Every notification carries advice a small company (or its IT supplier) can act on, in Dutch
and English. The advice lives in data files, one entry per file, under ``data/`` in this
package; an operator directory can add entries or replace shipped ones by ``id``.

Entry format (all keys required unless marked optional)::

    id: remote-access-rdp
    report_types: [scan_rdp, scan6_rdp]   # Shadowserver report types (may be empty)
    identifiers: [open-rdp]               # classification.identifier values (optional)
    severity: high                        # info | low | medium | high | critical
    references: [https://...]            # optional, https URLs only
    nl: {title, summary, why, steps: [...], check, forward_to_supplier}
    en: {same keys}

Lookup (:meth:`AdviceLibrary.for_event`): exact report type, then identifier, then the
IPv6/variant prefix rule (``scan6_x`` -> ``scan_x``, ``event6_x`` -> ``event4_x``,
``device_id6`` -> ``device_id``), then the ``generic`` entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from cwn.events.fields import SEVERITIES

__all__ = [
    "GENERIC_ID",
    "LANGUAGES",
    "SEVERITIES",
    "TEXT_KEYS",
    "Advice",
    "AdviceError",
    "AdviceLibrary",
    "AdviceText",
    "candidate_report_types",
    "default_library",
    "load_library",
    "parse_entry",
]

GENERIC_ID = "generic"
LANGUAGES: tuple[str, ...] = ("nl", "en")
TEXT_KEYS: tuple[str, ...] = ("title", "summary", "why", "steps", "check", "forward_to_supplier")
MIN_STEPS = 2

_REQUIRED_TOP = ("id", "report_types", "severity", "nl", "en")
_OPTIONAL_TOP = ("identifiers", "references")
_SUFFIXES = (".yaml", ".yml")


class AdviceError(ValueError):
    """An advice file is missing, malformed or conflicts with another entry."""


@dataclass(frozen=True, slots=True)
class AdviceText:
    """The advice in one language. All fields are plain, static text (no placeholders)."""

    title: str
    summary: str
    why: str
    steps: tuple[str, ...]
    check: str
    forward_to_supplier: str


@dataclass(frozen=True, slots=True)
class Advice:
    """One advice entry, for one or more Shadowserver report types."""

    id: str
    report_types: tuple[str, ...]
    identifiers: tuple[str, ...]
    severity: str
    references: tuple[str, ...]
    texts: Mapping[str, AdviceText] = field(repr=False, hash=False)
    source: str = field(default="", compare=False)

    @property
    def is_generic(self) -> bool:
        return self.id == GENERIC_ID

    def text(self, lang: str) -> AdviceText:
        """The advice in ``lang`` (``nl`` or ``en``; ``nl-NL``/``en_GB`` are accepted)."""
        key = _normalise_lang(lang)
        try:
            return self.texts[key]
        except KeyError:
            raise AdviceError(
                f"unknown language {lang!r} for advice {self.id!r}; "
                f"supported: {', '.join(LANGUAGES)}"
            ) from None


def _normalise_lang(lang: str) -> str:
    return lang.strip().lower().replace("_", "-").split("-", 1)[0]


def candidate_report_types(report_type: str) -> list[str]:
    """Report types to try, in order, for the prefix rule (excluding ``report_type`` itself).

    ``scan6_rdp`` -> ``scan_rdp``; ``event6_sinkhole_http`` -> ``event4_sinkhole_http``;
    ``device_id6`` / ``compromised_website6`` -> without the trailing ``6``.
    """
    rt = report_type.strip().lower()
    out: list[str] = []
    for old, new in (("scan6_", "scan_"), ("event6_", "event4_")):
        if rt.startswith(old):
            out.append(new + rt[len(old) :])
    if rt.endswith("6") and not rt[:-1].endswith("_"):
        out.append(rt[:-1])
    return [c for c in dict.fromkeys(out) if c and c != rt]


class AdviceLibrary:
    """All advice entries, indexed by id, report type and identifier."""

    def __init__(self, entries: Iterable[Advice]) -> None:
        by_id: dict[str, Advice] = {}
        by_type: dict[str, Advice] = {}
        by_ident: dict[str, Advice] = {}
        for adv in entries:
            if adv.id in by_id:
                raise AdviceError(
                    f"duplicate advice id {adv.id!r} in {adv.source} and {by_id[adv.id].source}"
                )
            by_id[adv.id] = adv
            for rt in adv.report_types:
                other = by_type.get(rt)
                if other is not None:
                    raise AdviceError(
                        f"report type {rt!r} is claimed by two advice entries: "
                        f"{other.id!r} ({other.source}) and {adv.id!r} ({adv.source})"
                    )
                by_type[rt] = adv
            for ident in adv.identifiers:
                other = by_ident.get(ident)
                if other is not None:
                    raise AdviceError(
                        f"identifier {ident!r} is claimed by two advice entries: "
                        f"{other.id!r} ({other.source}) and {adv.id!r} ({adv.source})"
                    )
                by_ident[ident] = adv
        if GENERIC_ID not in by_id:
            raise AdviceError(f"the advice library has no {GENERIC_ID!r} entry")
        self._by_id = MappingProxyType(by_id)
        self._by_type = MappingProxyType(by_type)
        self._by_ident = MappingProxyType(by_ident)

    # -- container protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Advice]:
        return iter(self._by_id.values())

    def __contains__(self, advice_id: object) -> bool:
        return advice_id in self._by_id

    def __getitem__(self, advice_id: str) -> Advice:
        try:
            return self._by_id[advice_id]
        except KeyError:
            raise KeyError(f"no advice entry with id {advice_id!r}") from None

    def get(self, advice_id: str) -> Advice | None:
        return self._by_id.get(advice_id)

    @property
    def generic(self) -> Advice:
        return self._by_id[GENERIC_ID]

    @property
    def report_types(self) -> Mapping[str, Advice]:
        """Report type -> advice entry (explicit claims only, no prefix rule)."""
        return self._by_type

    # -- lookup --------------------------------------------------------------------------
    def for_event(self, report_type: str | None, identifier: str | None = None) -> Advice:
        """The advice for an event: report type, identifier, prefix rule, then generic."""
        rt = (report_type or "").strip().lower()
        ident = (identifier or "").strip().lower()
        if rt and rt in self._by_type:
            return self._by_type[rt]
        if ident and ident in self._by_ident:
            return self._by_ident[ident]
        if rt:
            for candidate in candidate_report_types(rt):
                if candidate in self._by_type:
                    return self._by_type[candidate]
        return self.generic


# -- loading -------------------------------------------------------------------------------


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AdviceError(f"{where}: must be a non-empty string")
    return value.strip()


def _str_list(value: Any, where: str, *, lower: bool = False) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AdviceError(f"{where}: must be a list of strings")
    out: list[str] = []
    for i, item in enumerate(value):
        s = _str(item, f"{where}[{i}]")
        out.append(s.lower() if lower else s)
    if len(set(out)) != len(out):
        raise AdviceError(f"{where}: contains duplicates")
    return tuple(out)


def _parse_text(raw: Any, where: str) -> AdviceText:
    if not isinstance(raw, dict):
        raise AdviceError(f"{where}: must be a mapping with keys {', '.join(TEXT_KEYS)}")
    missing = [k for k in TEXT_KEYS if k not in raw]
    if missing:
        raise AdviceError(f"{where}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(raw) - set(TEXT_KEYS))
    if unknown:
        raise AdviceError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    steps = _str_list(raw["steps"], f"{where}.steps")
    if len(steps) < MIN_STEPS:
        raise AdviceError(f"{where}.steps: needs at least {MIN_STEPS} steps, got {len(steps)}")
    return AdviceText(
        title=_str(raw["title"], f"{where}.title"),
        summary=_str(raw["summary"], f"{where}.summary"),
        why=_str(raw["why"], f"{where}.why"),
        steps=steps,
        check=_str(raw["check"], f"{where}.check"),
        forward_to_supplier=_str(raw["forward_to_supplier"], f"{where}.forward_to_supplier"),
    )


def parse_entry(data: Any, source: str) -> Advice:
    """Validate one decoded YAML document; errors name ``source``."""
    if not isinstance(data, dict):
        raise AdviceError(f"{source}: an advice file must contain one mapping (an entry)")
    missing = [k for k in _REQUIRED_TOP if k not in data]
    if missing:
        raise AdviceError(f"{source}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(map(str, data)) - set(_REQUIRED_TOP) - set(_OPTIONAL_TOP))
    if unknown:
        raise AdviceError(f"{source}: unknown key(s) {', '.join(unknown)}")
    advice_id = _str(data["id"], f"{source}: id")
    severity = _str(data["severity"], f"{source}: severity").lower()
    if severity not in SEVERITIES:
        raise AdviceError(f"{source}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    references = _str_list(data.get("references"), f"{source}: references")
    for ref in references:
        if not ref.startswith("https://"):
            raise AdviceError(f"{source}: reference {ref!r} must be an https:// URL")
    texts = {lang: _parse_text(data[lang], f"{source}: {lang}") for lang in LANGUAGES}
    return Advice(
        id=advice_id,
        report_types=_str_list(data["report_types"], f"{source}: report_types", lower=True),
        identifiers=_str_list(data.get("identifiers"), f"{source}: identifiers", lower=True),
        severity=severity,
        references=references,
        texts=MappingProxyType(texts),
        source=source,
    )


def _load_file(node: Traversable | Path, source: str) -> Advice:
    try:
        data = yaml.safe_load(node.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AdviceError(f"{source}: invalid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AdviceError(f"{source}: cannot read: {exc}") from exc
    return parse_entry(data, source)


def _load_dir(nodes: Iterable[Traversable | Path], label: str) -> dict[str, Advice]:
    entries: dict[str, Advice] = {}
    files = sorted(
        (n for n in nodes if n.is_file() and n.name.endswith(_SUFFIXES)), key=lambda n: n.name
    )
    for node in files:
        source = str(node) if isinstance(node, Path) else f"{label}/{node.name}"
        adv = _load_file(node, source)
        if adv.id in entries:
            raise AdviceError(
                f"{source}: duplicate advice id {adv.id!r} (also in {entries[adv.id].source})"
            )
        entries[adv.id] = adv
    return entries


def _package_entries() -> dict[str, Advice]:
    data_dir = resources.files(__package__ or "cwn.render.advice").joinpath("data")
    return _load_dir(data_dir.iterdir(), "cwn.render.advice/data")


def load_library(extra_dir: Path | None = None) -> AdviceLibrary:
    """Load the shipped advice plus, optionally, an operator directory.

    Files in ``extra_dir`` (``*.yaml``/``*.yml``) add new entries or replace shipped entries
    with the same ``id``. The merged library is validated as a whole (unique report types and
    identifiers, a ``generic`` entry present); every error names the offending file.
    """
    entries = _package_entries()
    if extra_dir is not None:
        extra = Path(extra_dir)
        if not extra.is_dir():
            raise AdviceError(f"{extra}: advice override directory does not exist")
        entries.update(_load_dir(extra.iterdir(), str(extra)))
    return AdviceLibrary(entries.values())


@lru_cache(maxsize=1)
def default_library() -> AdviceLibrary:
    """The shipped library (cached). Use :func:`load_library` for operator overrides."""
    return load_library()
