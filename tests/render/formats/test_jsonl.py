"""Case-per-line JSON: each line is a case with its IntelMQ events, readable on its own."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from cwn.ingest.shadowserver.parser import parse
from cwn.render.formats.intelmq import render_lines
from cwn.render.formats.jsonl import read_case_lines, write_case_lines

from .samples import DATA

OBSERVED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def _events(name: str) -> pa.Table:
    path = DATA / "shadowserver" / "csv" / f"{name}.csv"
    return parse(path.read_bytes(), report_type=name, file_name=path.name,
                 observed=OBSERVED).events


@pytest.mark.parametrize("report", ["scan_smb", "event4_sinkhole", "phish_url"])
def test_cases_read_back_with_their_intelmq_events(report: str) -> None:
    table = _events(report)
    counts = [1, table.num_rows - 1, 0]
    headers = [{"case_id": f"C{i}", "tlp": "AMBER"} for i in range(3)]
    out = io.BytesIO()
    assert write_case_lines(headers, table, counts, out) == table.num_rows
    assert out.getvalue().count(b"\n") == 3
    cases = read_case_lines(out.getvalue())
    assert [c["case_id"] for c in cases] == ["C0", "C1", "C2"]
    assert [len(c["events"]) for c in cases] == counts
    expected = [json.loads(x) for x in render_lines(table).to_pylist()]
    assert [ev for c in cases for ev in c["events"]] == expected


def test_counts_must_match_the_events() -> None:
    table = _events("scan_smb")
    with pytest.raises(ValueError, match="do not match"):
        write_case_lines([{"case_id": "A"}], table, [table.num_rows + 1], io.BytesIO())
    with pytest.raises(ValueError, match="do not match"):
        write_case_lines([{"case_id": "A"}], table, [1, 2], io.BytesIO())


def test_empty_header_and_no_events() -> None:
    out = io.BytesIO()
    write_case_lines([{}], _events("scan_smb").slice(0, 0), [0], out)
    assert read_case_lines(out.getvalue()) == [{"events": []}]


@pytest.mark.parametrize(("data", "line"), [
    (b'{"case_id": "A", "events": []}\n{broken\n', 2),
    (b'\n[1, 2]\n', 2),
    (b'{"case_id": "A", "events": {}}\n', 1),
])
def test_bad_lines_raise_with_their_number(data: bytes, line: int) -> None:
    with pytest.raises(ValueError, match=f"line {line} "):
        read_case_lines(data)
