"""CSV out (and back in): the table attached to notification mails.

Headers are IntelMQ field names. Only columns with at least one value are written, in
catalogue order; the keys of the `extra` object become `extra.<key>` columns (sorted) at the
place of `extra`, cwn's own columns use their export names (`extra.severity`,
`extra.organization`, `extra.report_type`, `extra.fingerprint` ...). `_report`/`_row` are
not written.

Cells are the IntelMQ text forms (`2010-02-10T00:00:00+00:00`, `77.0`, `true`). An `extra`
value keeps its JSON type through the file: a string is written as it is unless that text
would read back as another JSON value (`123`, `true`, `[1]`, `"x"`), in which case it is
written JSON-quoted; numbers, booleans, lists and objects are written as JSON. Reading a
cell tries JSON first and falls back to the text, so `read_csv_events(write_csv(x)) == x`
(bookkeeping columns aside).

The header needs every batch's extra keys, so the batches are held in memory while writing:
this is for mail-sized exports; use IntelMQ JSON for bulk.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cwn.events.batch import COLUMNS
from cwn.ingest.intelmq import EXTRA_COLUMN_KEYS, columns_to_events
from cwn.render.formats import EXPORT_KEYS, iter_chunks, text_values

_EXTRA = "extra."


def _cell(value: Any) -> str | None:
    """The CSV text of one `extra` value (see the module docstring)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def _uncell(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _extra_columns(extra: pa.ChunkedArray | pa.Array) -> dict[str, list[str | None]]:
    """`extra` objects spread into one list of cell texts per key (keys sorted)."""
    texts = extra.to_pylist()
    n = len(texts)
    cols: dict[str, list[str | None]] = {}
    for i, text in enumerate(texts):
        if text is None:
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            obj = {"extra": text}
        if not isinstance(obj, dict):
            obj = {"extra": obj}
        for key, value in obj.items():
            cell = _cell(value)
            if cell is None:
                continue
            col = cols.get(key)
            if col is None:
                col = cols[key] = [None] * n
            col[i] = cell
    return {k: cols[k] for k in sorted(cols)}


_FORMULA = r"^('*[=+\-@\t\r])"
_DEFUSED = r"^'('*[=+\-@\t\r])"


def _defuse(values: pa.Array) -> pa.Array:
    """Spreadsheet formula injection guard (OWASP "CSV injection"): a cell that starts like
    a formula (`=`, `+`, `-`, `@`, tab, CR) gets a leading `'`, so a recipient opening the
    attachment in Excel sees text. Cells already starting with quotes get one more, so
    `read_csv_events` can undo it exactly."""
    return pc.replace_substring_regex(values, _FORMULA, r"'\1", max_replacements=1)


def _restore(values: pa.ChunkedArray) -> pa.Array:
    return pc.replace_substring_regex(values.combine_chunks(), _DEFUSED, r"\1",
                                      max_replacements=1)


def _cell_columns(table: pa.Table) -> tuple[list[str], list[pa.Array]]:
    """Header names and defused cell texts of every column that has a value."""
    n = table.num_rows
    extras = _extra_columns(table.column("extra"))
    names: list[str] = []
    arrays: list[pa.Array] = []
    for col in COLUMNS:
        if col == "extra":
            for sub, cells in extras.items():
                if sub in EXTRA_COLUMN_KEYS:  # cwn's own column under that name wins
                    continue
                names.append(_EXTRA + sub)
                arrays.append(pa.array(cells, pa.string()))
            continue
        if col not in EXPORT_KEYS:
            continue
        key = EXPORT_KEYS[col]
        if table.column(col).null_count == n and key.removeprefix(_EXTRA) not in extras:
            continue  # most of the ~90 fields are empty: skip their text conversion
        values = text_values(table.column(col))
        shadow = extras.get(key.removeprefix(_EXTRA)) if key.startswith(_EXTRA) else None
        if shadow is not None:  # the same key inside extra: fill the column's gaps
            values = pc.coalesce(values, pa.array(
                [None if c is None else str(_uncell(c)) for c in shadow], pa.string()))
        if values.null_count == n:
            continue
        names.append(key)
        arrays.append(values)
    return names, [_defuse(a) for a in arrays]


def write_csv(batches: pa.Table | Iterable[pa.Table], out: BinaryIO) -> int:
    """Write events as CSV with IntelMQ headers to `out`; returns the number of events."""
    chunks = list(iter_chunks(batches))
    if not chunks:
        return 0
    table = pa.concat_tables(chunks)
    n = table.num_rows
    if n == 0:
        return 0
    names, arrays = _cell_columns(table)
    sink = io.BytesIO()
    pacsv.write_csv(pa.Table.from_arrays(arrays, names=names), sink,
                    write_options=pacsv.WriteOptions(quoting_style="needed"))
    out.write(sink.getbuffer())
    return n


class CsvCells:
    """The cell texts of a whole batch, computed once, written out for any subset of rows.

    A notify run attaches a CSV to each of thousands of mails with a few events each; run
    per mail, the column conversions above are forty Arrow calls on one-row tables, which
    cost more than the rest of the mail. Here they run once per chunk of mails, and each
    mail's file is a few rows of ready text (same format: `read_csv_events` reads it back).
    """

    def __init__(self, table: pa.Table) -> None:
        if table.num_rows:
            self.names, arrays = _cell_columns(table)
            self.columns = [a.to_pylist() for a in arrays]
        else:
            self.names, self.columns = [], []

    def write(self, rows: Sequence[int]) -> bytes:
        keep = [j for j, col in enumerate(self.columns)
                if any(col[i] is not None for i in rows)]
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        out.writerow([self.names[j] for j in keep])
        cols = [self.columns[j] for j in keep]
        out.writerows([[col[i] for col in cols] for i in rows])
        return buf.getvalue().encode("utf-8") if rows else b""


def read_csv_events(data: bytes) -> pa.Table:
    """Parse a CSV written by `write_csv` back into an event batch (`_report`/`_row` null)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data.strip():
        return columns_to_events(0, {})
    header = next(csv.reader(io.StringIO(data.split(b"\n", 1)[0].decode("utf-8"))))
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True, quoted_strings_can_be_null=True, null_values=[""],
        ),
    )
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        cells = _restore(table.column(name)).to_pylist()
        if name.startswith(_EXTRA) and name.removeprefix(_EXTRA) not in EXTRA_COLUMN_KEYS:
            columns[name] = [None if c is None else _uncell(c) for c in cells]
        else:
            columns[name] = cells
    return columns_to_events(table.num_rows, columns)

