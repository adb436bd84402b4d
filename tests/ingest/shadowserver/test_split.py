"""Cutting a large report into pieces: every record once, in order, never over the limit."""

from __future__ import annotations

import pytest

from cwn.ingest.shadowserver.parser import split_records


def _records(data: bytes) -> list[bytes]:
    """Data records of a CSV text, honouring quoted line breaks (test oracle, slow)."""
    out, cur, quotes = [], b"", 0
    for line in data.replace(b"\r\n", b"\n").split(b"\n")[1:]:
        cur = cur + b"\n" + line if quotes & 1 else line
        quotes = quotes + line.count(b'"') if quotes & 1 else line.count(b'"')
        if not quotes & 1:
            if cur:
                out.append(cur)
            cur, quotes = b"", 0
    return out


PLAIN = b"ip,port\n" + b"".join(b"192.0.2.%d,%d\n" % (i % 250, i) for i in range(1000))
QUOTED_ALL = b'"ip","port"\n' + b"".join(b'"192.0.2.%d","%d"\n' % (i % 250, i)
                                          for i in range(1000))
VARIED = b"ip,tag\n" + b"".join(b"10.0.0.1," + b"x" * (i * 7 % 997) + b"\n" for i in range(1000))
MULTILINE = b'ip,tag\n' + b"".join(b'10.0.0.%d,"a\nb ""c""\n"\n' % (i % 200) for i in range(300))
BLANKS = PLAIN.replace(b"\n192.0.2.7,", b"\n\n192.0.2.7,")
CASES = {"lf": PLAIN, "no-final-lf": PLAIN.rstrip(b"\n"), "crlf": PLAIN.replace(b"\n", b"\r\n"),
         "quoted": QUOTED_ALL, "varied-lengths": VARIED, "quoted-line-breaks": MULTILINE,
         "blank-lines": BLANKS}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("max_rows", [1, 7, 100, 999, 1000, 5000])
def test_pieces_hold_every_record_once_in_order_each_with_the_header(
        name: str, max_rows: int) -> None:
    data = CASES[name]
    pieces = list(split_records(data, max_rows))
    seen: list[bytes] = []
    for piece in pieces:
        assert piece.split(b"\n", 1)[0] == data.split(b"\n", 1)[0]
        rows = _records(piece)
        assert len(pieces) == 1 or 0 < len(rows) <= max_rows
        seen += rows
    assert seen == _records(data)
    assert len(pieces) >= min(len(seen), -(-len(seen) // max_rows))
