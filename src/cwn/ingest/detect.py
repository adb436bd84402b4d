"""Decide which parser reads a file, and reject unusable files with a one-line reason."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from cwn.ingest.result import UnusableInput
from cwn.ingest.shadowserver.filename import detect as report_file
from cwn.ingest.stix import looks_like_stix


@dataclass(frozen=True, slots=True)
class Detected:
    parser: str  # shadowserver | intelmq | stix
    data: bytes  # decompressed content
    report_type: str | None = None
    report_date: str | None = None


def unpack(data: bytes, name: str) -> bytes:
    """Transparently open gzip and single-member zip deliveries."""
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UnusableInput(f"corrupt gzip file: {exc}") from exc
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise UnusableInput(f"zip holds {len(members)} files; expected exactly one")
                return zf.read(members[0])
        except zipfile.BadZipFile as exc:
            raise UnusableInput(f"corrupt zip file: {exc}") from exc
    return data


def looks_binary(data: bytes) -> bool:
    head = data[:65536]
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample boundary is still text.
        return exc.start < len(head) - 4
    return False


def _from_name(name: str, known: Iterable[str]) -> tuple[str | None, str | None]:
    """Report type and date from a delivery name; an unknown type only with a date prefix."""
    found = report_file(name, known)
    if found is None:
        return None, None
    day = found.date.isoformat() if found.date else None
    if found.known or day:
        return found.report_type, day
    return None, day


def detect(
    data: bytes, name: str, *, report_type: str | None = None, known: Iterable[str] = ()
) -> Detected:
    """Pick the parser. `report_type` (operator override) forces the Shadowserver parser."""
    known = tuple(known)
    data = unpack(data, name)
    name = name.removesuffix(".gz").removesuffix(".zip")
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body:
        raise UnusableInput("empty file")
    if looks_binary(data):
        raise UnusableInput("binary content, not a text feed")
    if report_type:
        return Detected("shadowserver", data, report_type, _from_name(name, known)[1])
    if body[:1] in (b"{", b"["):
        return Detected("stix" if looks_like_stix(body) else "intelmq", data)
    rtype, rdate = _from_name(name, known)
    if rtype:
        return Detected("shadowserver", data, rtype, rdate)
    first = body.split(b"\n", 1)[0].decode("utf-8", "replace")
    if "," not in first:
        raise UnusableInput("not a CSV or JSON feed (no comma-separated header)")
    raise UnusableInput(
        "cannot tell the report type from the file name; pass --report-type"
    )
