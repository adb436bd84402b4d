"""A streaming, forgiving reader of RPSL database dumps (RIPE split files, combined dumps).

Dumps are 1-4 GB of gzip, so the file is read in large blocks, decoded and cut into objects
on blank lines with C-level string operations; only objects of the wanted classes are split
into attributes (one regex pass per object), which keeps a combined dump (mostly routes,
domains and persons we never look at) cheap to skip. Real dumps are messy: CRLF endings,
latin-1 bytes in old objects next to UTF-8 in new ones, `# comments` after values,
continuation lines and stray lines without an attribute name; none of that stops the import,
broken lines are counted.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cwn.publicdata.errors import PublicDataError

BLOCK_SIZE = 8 << 20
MAX_OBJECT = 32 << 20  # real objects are a few kB; this only stops a runaway read
HEADER_LINES = 50
_GZIP_MAGIC = b"\x1f\x8b"
_BLANKISH = re.compile(rb"\n[ \t]+(?=\n)")  # a line of spaces separates objects too
# An attribute line: a name without blanks, a colon, the value up to a `#` comment, then any
# continuation lines (starting with a blank or "+") as a third group, usually empty.
_ATTR = re.compile(r"^([^\s:#%+][^\s:]*):[ \t]*([^#\n]*)[^\n]*((?:\n[ \t+][^\n]*)*)", re.M)
_LINE = re.compile(r"([^\s:#%+][^\s:]*):[ \t]*([^#\n]*)")


@dataclass(slots=True)
class RpslObject:
    """One object; `cls` and attribute names are lower case, values have comments and
    surrounding blanks removed, continuation lines are joined with a single space."""

    cls: str
    key: str
    attributes: list[tuple[str, str]]

    def first(self, name: str) -> str | None:
        for n, v in self.attributes:
            if n == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.attributes if n == name]

    def firsts(self) -> dict[str, str]:
        """First value of every attribute, for callers that read several of them."""
        return dict(reversed(self.attributes))


@dataclass(slots=True)
class RpslStats:
    """What a parse saw; filled in while the iterator runs, complete once it is exhausted."""

    objects: int = 0  # objects yielded (of the wanted classes)
    seen: int = 0  # objects of any class
    skipped_lines: int = 0  # lines that are neither attribute, continuation nor comment
    bytes_read: int = 0  # bytes consumed from the file as stored (compressed for gzip)
    header: list[str] = field(default_factory=list)  # comment lines before the first object


def iter_objects(stream: IO[bytes] | Path, *, classes: set[str] | None = None,
                 stats: RpslStats | None = None,
                 progress: Callable[[int], None] | None = None) -> Iterator[RpslObject]:
    """Objects of `classes` (all when None) in file order. `progress` gets the running
    number of stored bytes read after every block, for a progress bar over the file size."""
    st = stats if stats is not None else RpslStats()
    wanted = None if classes is None else {c.lower() for c in classes}
    if isinstance(stream, Path):
        try:
            raw = stream.open("rb")
        except OSError as exc:
            raise PublicDataError(f"{stream}: cannot open ({exc.strerror})") from exc
        with raw:
            gz = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not gz:
                yield from _parse(raw, raw, wanted, st, progress, str(stream))
                return
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield from _parse(unzipped, raw, wanted, st, progress, str(stream))
        return
    yield from _parse(stream, None, wanted, st, progress, "stream")


def _parse(src: IO[bytes] | gzip.GzipFile, raw: IO[bytes] | None, wanted: set[str] | None,
           st: RpslStats, progress: Callable[[int], None] | None, name: str,
           ) -> Iterator[RpslObject]:
    carry = b""
    first_block = True
    while True:
        try:
            data = src.read(BLOCK_SIZE)
        except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip
            raise PublicDataError(f"{name}: unreadable after {st.seen} objects ({exc})") \
                from exc
        st.bytes_read = raw.tell() if raw is not None else st.bytes_read + len(data)
        if progress is not None:
            progress(st.bytes_read)
        buf = carry + data if carry else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        if b"\n " in buf or b"\n\t" in buf:
            buf = _BLANKISH.sub(b"\n", buf)
        if data:
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                if len(buf) > MAX_OBJECT:  # no blank line for megabytes: not RPSL at all
                    raise PublicDataError(f"{name}: no object boundary in {len(buf)} bytes; "
                                          "not an RPSL dump")
                carry = buf
                continue
            carry = buf[cut + 2:]
            buf = buf[:cut]
        else:
            carry = b""
        if first_block:
            buf = _take_header(buf, st)
            first_block = False
        yield from _objects(_texts(buf), wanted, st)
        if not data:
            return


def _take_header(buf: bytes, st: RpslStats) -> bytes:
    """Keep the leading comment lines (the dump's own header, which may carry its date)."""
    pos = 0
    while pos < len(buf) and buf[pos:pos + 1] in (b"#", b"%", b"\n"):
        end = buf.find(b"\n", pos)
        end = len(buf) if end < 0 else end
        line = buf[pos:end].decode("utf-8", "replace").strip()
        if line and len(st.header) < HEADER_LINES:
            st.header.append(line)
        pos = end + 1
    return buf[pos:]


def _texts(buf: bytes) -> list[str]:
    """The block's objects as text: one UTF-8 decode for the block when it is clean, else
    per object, reading an object that is not UTF-8 as latin-1 (old RIPE objects)."""
    try:
        return buf.decode("utf-8").split("\n\n")
    except UnicodeDecodeError:
        out = []
        for blob in buf.split(b"\n\n"):
            try:
                out.append(blob.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(blob.decode("latin-1"))  # never fails
        return out


def _objects(texts: list[str], wanted: set[str] | None, st: RpslStats,
             ) -> Iterator[RpslObject]:
    """The hot loop (millions of objects): kept inline, no per-object helper calls."""
    attr_findall = _ATTR.findall
    for text in texts:
        if not text:
            continue
        head = text[0]
        if head == "\n" or head == "#" or head == "%":
            text = _strip_leading_comments(text)
            if not text:
                continue
        if text[-1] == "\n":
            text = text.rstrip("\n")
        colon = text.find(":", 0, 64)
        if colon <= 0 or text.find("\n", 0, colon) >= 0 or head in " \t+":
            text = _drop_garbage_head(text, st)
            if not text:
                continue
            colon = text.find(":")
        st.seen += 1
        if wanted is not None and text[:colon].lower() not in wanted:
            continue
        found = attr_findall(text)
        # Every line is an attribute or a continuation unless there are comments or
        # garbage; counting newlines is much cheaper than checking each line.
        lines = text.count("\n") + 1
        if len(found) == lines or (
                len(found) == lines - text.count("\n ") - text.count("\n\t")
                - text.count("\n+") and "\n#" not in text and "\n%" not in text):
            attrs = [(n.lower(), _join(v, more) if more else v.rstrip())
                     for n, v, more in found]
        else:
            attrs = _parse_slow(text, st)
            if not attrs:
                continue
        st.objects += 1
        yield RpslObject(attrs[0][0], attrs[0][1], attrs)


def _drop_garbage_head(text: str, st: RpslStats) -> str:
    """An object must start with its class attribute; lines before it are garbage."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line[:1] not in ("", " ", "\t", "+", "#", "%") and _LINE.match(line):
            return "\n".join(lines[i:])
        if line[:1] not in ("#", "%"):
            st.skipped_lines += 1
    return ""


def _strip_leading_comments(text: str) -> str:
    pos = 0
    while pos < len(text) and text[pos] in "#%\n":
        end = text.find("\n", pos)
        if end < 0:
            return ""
        pos = end + 1
    return text[pos:]


def _join(value: str, more: str) -> str:
    """A value with its continuation lines (`more` starts with a newline)."""
    parts = [value.rstrip()]
    parts += [line[1:].partition("#")[0].strip() for line in more[1:].split("\n")]
    return " ".join(p for p in parts if p)


def _parse_slow(text: str, st: RpslStats) -> list[tuple[str, str]]:
    """Line by line, only for objects with comment or garbage lines."""
    attrs: list[tuple[str, str]] = []
    for line in text.split("\n"):
        head = line[:1]
        if head in ("#", "%"):
            continue
        if head in (" ", "\t", "+"):
            more = line[1:].split("#", 1)[0].strip()
            if not attrs:
                st.skipped_lines += 1
            elif more:
                n, v = attrs[-1]
                attrs[-1] = (n, f"{v} {more}" if v else more)
            continue
        m = _LINE.match(line)
        if m is None:
            st.skipped_lines += 1
            continue
        attrs.append((m.group(1).lower(), m.group(2).rstrip()))
    return attrs
