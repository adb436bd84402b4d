"""What every parser returns: an event batch plus the rows it had to quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


class UnusableInput(Exception):
    """The whole file cannot be parsed (not CSV, empty, binary, unknown type ...).

    The message is shown to the operator as the one-line error for that file.
    """


@dataclass(frozen=True, slots=True)
class Quarantined:
    row: int
    """1-based data row (header excluded) or line number for line formats."""
    reason: str
    content: str | None = None
    """The row as it was in the file, so nothing is lost."""


@dataclass(slots=True)
class ParseResult:
    events: pa.Table
    """A batch conforming to `cwn.events.batch.EVENT_SCHEMA`; `_row` and `report_type` set."""
    rows: int
    """Data rows (or lines) read, good and bad."""
    quarantine: list[Quarantined] = field(default_factory=list)
    feed_name: str | None = None
    report_type: str | None = None
