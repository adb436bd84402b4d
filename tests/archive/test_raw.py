"""The raw archive is content-addressed: same bytes, same address, stored once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cwn.archive.raw import RawArchive


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    a = archive.put(b"timestamp,ip\n")
    b = archive.put(b"timestamp,ip\n")
    assert a == b == hashlib.sha256(b"timestamp,ip\n").hexdigest()
    assert a in archive and archive.get(a) == b"timestamp,ip\n"
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_different_content_gets_a_different_address(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path)
    assert archive.put(b"a") != archive.put(b"b")
