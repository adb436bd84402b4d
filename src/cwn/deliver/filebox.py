"""Delivery into a folder of `.eml` files, for the embedded default without an SMTP server.

Files are named after the Message-ID and written atomically, so delivering the same
message again (after a crash) replaces the file instead of adding a second one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cwn.deliver.outbox import TemporaryFailure

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]+")


class FileChannel:
    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, message_id: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', message_id.strip('<>'))}.eml"

    def send(self, *, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        path = self.path_for(message_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            envelope = (f"X-Envelope-From: <{sender}>\r\nX-Envelope-To: <{recipient}>\r\n"
                        .encode())
            tmp.write_bytes(envelope + data)
            os.replace(tmp, path)
        except OSError as exc:
            raise TemporaryFailure(f"cannot write {path}: {exc}") from exc

    def close(self) -> None:
        return None
