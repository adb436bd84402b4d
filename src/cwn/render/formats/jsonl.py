"""Case-per-line JSON (JSON lines) out and back in: the bulk format for partners' scripts.

IntelMQ JSON is one event per line, so a partner who works per case (forward it, close it)
has to regroup the events first. Here every line is one case: its header (case id,
organisation, classification, severity, TLP, first and last seen) and an ``events`` array of
IntelMQ events exactly as `cwn.render.formats.intelmq` writes them, so each line stands on
its own and a partner can split the file by customer with ``grep``.

The events are rendered column-wise by the IntelMQ writer; Python only joins each case's
ready lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import orjson
import pyarrow as pa

from cwn.events.batch import conform
from cwn.render.formats.intelmq import render_lines


def write_case_lines(headers: Sequence[Mapping[str, Any]], events: pa.Table,
                     counts: Sequence[int], out: BinaryIO, *, include_raw: bool = True) -> int:
    """Write one line per case: ``headers[i]`` plus the next ``counts[i]`` rows of ``events``
    as its ``events`` array. Returns the number of events written."""
    if len(headers) != len(counts) or sum(counts) != events.num_rows:
        raise ValueError("case headers and event counts do not match the events")
    lines = (render_lines(conform(events), include_raw=include_raw).to_pylist()
             if events.num_rows else [])
    start = 0
    for header, n in zip(headers, counts, strict=True):
        head = orjson.dumps(dict(header), option=orjson.OPT_SORT_KEYS)[:-1]
        body = ",".join(line.rstrip("\n") for line in lines[start:start + n])
        out.write(head + (b',"events":[' if len(head) > 1 else b'"events":[')
                  + body.encode() + b"]}\n")
        start += n
    return start


def read_case_lines(data: bytes) -> list[dict[str, Any]]:
    """The cases of a file written by `write_case_lines` (blank lines ignored); raises
    ValueError (one line) for a line that is not a case object with an events list."""
    cases: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"JSON lines: line {number} is not JSON: {exc}") from None
        if not isinstance(case, dict) or not isinstance(case.get("events"), list):
            raise ValueError(f"JSON lines: line {number} is not a case with an events list")
        cases.append(case)
    return cases
