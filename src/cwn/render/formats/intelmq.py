"""IntelMQ JSON events out: one JSON object per line, as IntelMQ's file output writes them.

* IntelMQ field names, `"__type": "Event"`, null fields left out, keys sorted;
* timestamps as `2010-02-10T00:00:00+00:00` (`.ffffff` only when there are microseconds);
* the `extra` JSON object is flattened back into `extra.<key>` keys (values keep their JSON
  types), cwn's own columns are written as `extra.severity`, `extra.cve`,
  `extra.organization`, `extra.matched_asset`, `extra.match_kind`, `extra.report_type` and
  `extra.fingerprint`; where `extra` holds a key with the same name, the column wins;
* `_report` and `_row` (cwn bookkeeping) are not exported.

`cwn.ingest.intelmq.parse` reads the output back to the same batch.

Rendering is column-wise: every column becomes an array of `,"key":value` fragments and the
fragments are concatenated per row by Arrow. Only rows with an `extra` object go through
Python (one `orjson` decode/encode each), since their keys differ from row to row.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cwn.render.formats import EXPORT_KEYS, iter_chunks, json_values

_EXTRA = "extra."
_SORTED_KEYS: list[tuple[str, str]] = sorted(
    ((col, key) for col, key in EXPORT_KEYS.items()), key=lambda ck: ck[1]
)
_HEAD = '{"__type":"Event"'


def _fragments(table: pa.Table, include_raw: bool) -> tuple[list[pa.Array], list[pa.Array],
                                                           list[pa.Array]]:
    """`,"key":value` arrays (null where the value is) before, inside and after the extra
    block, each in sorted key order."""
    n = table.num_rows
    before: list[pa.Array] = []
    inside: list[pa.Array] = []
    after: list[pa.Array] = []
    for col, key in _SORTED_KEYS:
        if col == "raw" and not include_raw:
            continue
        values = table.column(col)
        if values.null_count == n:
            continue
        frag = pc.binary_join_element_wise("," + orjson.dumps(key).decode() + ":",
                                           json_values(values), "")
        if key.startswith(_EXTRA):
            inside.append(frag)
        elif key < _EXTRA:
            before.append(frag)
        else:
            after.append(frag)
    return before, inside, after


def _concat(parts: list[pa.Array], n: int) -> pa.Array:
    """Row-wise concatenation with nulls as empty strings."""
    filled = [pc.fill_null(p, "") for p in parts]
    if not filled:
        return pa.array([""] * n, pa.string()) if n else pa.array([], pa.string())
    if len(filled) == 1:
        return filled[0]
    return pc.binary_join_element_wise(*filled, "")


def _extra_block(table: pa.Table, inside: list[pa.Array]) -> pa.Array:
    """The sorted `,"extra.<key>":value` run of every row."""
    n = table.num_rows
    block = _concat(inside, n)
    extra = table.column("extra").combine_chunks()
    if extra.null_count == n:
        return block
    has = pc.is_valid(extra)
    idx = pc.indices_nonzero(has)
    texts = pc.take(extra, idx).to_pylist()
    own = pc.take(block, idx)
    # cwn's columns of these rows as JSON objects ("{}" when none), to merge in sorted order
    own = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(own, 1), "}", "").to_pylist()
    loads, dumps, sort = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    merged: list[str] = []
    append = merged.append
    gc_enabled = gc.isenabled()
    gc.disable()  # a million small dicts would trigger pointless full collections
    try:
        for text, cols in zip(texts, own, strict=True):
            try:
                obj = loads(text)
            except orjson.JSONDecodeError:
                obj = {"extra": text}  # not JSON: keep it rather than lose it
            if type(obj) is not dict:
                obj = {"extra": obj}
            items = {_EXTRA + k: v for k, v in obj.items() if v is not None and v != ""}
            if len(cols) > 2:
                items.update(loads(cols))
            # decode at once: keeping orjson's over-allocated bytes alive is ~10x slower
            append(dumps(items, option=sort).decode())
    finally:
        if gc_enabled:
            gc.enable()
    objs = pa.array(merged, pa.string())  # "{...}" per row
    runs = pc.if_else(
        pc.equal(objs, "{}"), "",
        pc.utf8_replace_slice(pc.utf8_slice_codeunits(objs, 0, -1), start=0, stop=1,
                              replacement=","),
    )
    return pc.replace_with_mask(block, has, runs)


def render_lines(table: pa.Table, *, include_raw: bool = True) -> pa.Array:
    """One IntelMQ JSON line (with its newline) per event of a conformed batch."""
    n = table.num_rows
    before, inside, after = _fragments(table, include_raw)
    parts = [pa.array([_HEAD] * n, pa.string()) if n else pa.array([], pa.string())]
    parts += [pc.fill_null(p, "") for p in before]
    parts.append(_extra_block(table, inside))
    parts += [pc.fill_null(p, "") for p in after]
    parts.append(pa.array(["}\n"] * n, pa.string()) if n else pa.array([], pa.string()))
    return pc.binary_join_element_wise(*parts, "")


def _write_array(lines: pa.Array, out: BinaryIO) -> None:
    """Write the concatenated values of a string array without copying them to Python."""
    if len(lines) == 0:
        return
    _, offsets_buf, data_buf = lines.buffers()
    assert offsets_buf is not None and data_buf is not None
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(lines) + 1,
                            offset=lines.offset * 4)
    out.write(memoryview(data_buf)[int(offsets[0]):int(offsets[-1])])


def write_intelmq(
    batches: pa.Table | Iterable[pa.Table], out: BinaryIO, *, include_raw: bool = True
) -> int:
    """Write events as IntelMQ JSON lines to `out`; returns the number of events written."""
    count = 0
    for chunk in iter_chunks(batches):
        if chunk.num_rows == 0:
            continue
        _write_array(render_lines(chunk, include_raw=include_raw), out)
        count += chunk.num_rows
    return count
