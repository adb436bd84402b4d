"""CSV export: IntelMQ headers, and it parses back to the same events (mail attachments)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from cwn.events.batch import conform
from cwn.ingest.intelmq import parse
from cwn.render.formats.csv import CsvCells, read_csv_events, write_csv

from .samples import jsonl, sample_files

OBSERVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SAMPLES = sample_files()
META = ["_report", "_row"]


def _csv(table: pa.Table) -> bytes:
    out = io.BytesIO()
    assert write_csv(table, out) == table.num_rows
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_samples(name: str) -> None:
    events = parse(jsonl(SAMPLES[name]), file_name="x", observed=OBSERVED).events
    data = _csv(events)
    back = read_csv_events(data)
    assert back.drop_columns(META).equals(events.drop_columns(META))
    assert _csv(back) == data


def test_headers_catalogue_order_and_extra_keys() -> None:
    table = conform(pa.table({
        "time.source": pa.array([datetime(2010, 2, 10, tzinfo=UTC)] * 2,
                                pa.timestamp("us", tz="UTC")),
        "source.ip": ["192.0.2.1", "192.0.2.2"],
        "source.port": pa.array([None, 8080], pa.int32()),
        "classification.type": ["scanner", "scanner"],
        "severity": ["low", None],
        "extra": ['{"b":"123","a":77.0,"s":"plain, with comma"}', '{"c":[1,"x"],"d":true}'],
        "organization": ["org-1", "org-2"],
        "fingerprint": ["f1", "f2"],
        "_row": [1, 2],
    }))
    data = _csv(table)
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == ["time.source", "classification.type", "source.ip", "source.port",
                       "extra.severity", "extra.a", "extra.b", "extra.c", "extra.d",
                       "extra.s", "extra.organization", "extra.fingerprint"]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["time.source"] == "2010-02-10T00:00:00+00:00"
    assert first["extra.a"] == "77.0"
    assert first["extra.b"] == '"123"'  # a string that would read back as a number
    assert first["extra.s"] == "plain, with comma"
    assert first["source.port"] == ""
    back = read_csv_events(data)
    others = [*META, "extra"]
    assert back.drop_columns(others).equals(table.drop_columns(others))
    # extra comes back with the same members and JSON types (in canonical, sorted form)
    assert [json.loads(e) for e in back.column("extra").to_pylist()] == [
        json.loads(e) for e in table.column("extra").to_pylist()]


def test_streamed_batches_and_empty() -> None:
    events = parse(jsonl(SAMPLES["shadowserver/scan_dns"]), file_name="x",
                   observed=OBSERVED).events
    out = io.BytesIO()
    assert write_csv(iter([events.slice(0, 1), events.slice(1)]), out) == events.num_rows
    assert out.getvalue() == _csv(events)
    empty = io.BytesIO()
    assert write_csv([], empty) == 0 and empty.getvalue() == b""
    assert read_csv_events(b"").num_rows == 0


def test_formula_like_cells_are_defused_and_still_round_trip() -> None:
    """A value such as `=HYPERLINK(...)` must not run as a formula in a spreadsheet, and the
    guard must not change what parses back."""
    import io as _io

    import pyarrow as _pa

    from cwn.events.batch import conform as _conform
    from cwn.render.formats.csv import read_csv_events as _read
    from cwn.render.formats.csv import write_csv as _write

    evil = ['=HYPERLINK("http://x")', "+1", "@SUM(A1)", "'=quoted", "plain text"]
    batch = _conform(_pa.table({"source.ip": ["192.0.2.1"] * 5, "comment": evil,
                                "extra": ['{"note":"-2+3"}'] * 5}))
    buf = _io.BytesIO()
    _write(batch, buf)
    text = buf.getvalue().decode()

    cells = [c for line in text.splitlines()[1:] for c in next(__import__("csv").reader([line]))]
    assert not any(c[:1] in ("=", "+", "-", "@") for c in cells)
    assert "'=HYPERLINK" in text and "'@SUM" in text and "'-2+3" in text
    back = _read(buf.getvalue())
    assert back.column("comment").to_pylist() == evil
    assert back.column("extra").to_pylist() == batch.column("extra").to_pylist()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_mails_rows_written_from_precomputed_cells_read_back_like_write_csv(
        name: str) -> None:
    events = parse(jsonl(SAMPLES[name]), file_name="x", observed=OBSERVED).events
    cells = CsvCells(events)
    every = list(range(events.num_rows))
    some = every[::2] or every
    for rows in (every, some, list(reversed(some))):
        back = read_csv_events(cells.write(rows))
        want = read_csv_events(_csv(events.take(pa.array(rows, pa.int64()))))
        assert back.equals(want)
        assert back.drop_columns(META).equals(
            events.take(pa.array(rows, pa.int64())).drop_columns(META))
    assert cells.write([]) == b""
