"""Random secrets, their stored hashes, and sealing of the few secrets that must be read
back (TOTP seeds).

Links and tokens carry 256 bits of randomness, so a plain SHA-256 is the right stored form:
it cannot be brute-forced and is one indexed lookup per request (argon2 is for passwords,
which people choose and which are guessable).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def load_secret_key(configured: str | None, home: Path) -> bytes:
    """The installation key: configured, or created once in `home/secret.key` (0600)."""
    if configured:
        return hashlib.sha256(configured.encode("utf-8")).digest()
    path = home / "secret.key"
    if not path.is_file():
        # Written to a private temp file, then linked into place: concurrent first starts
        # (web workers, render processes) agree on one key and never read a half-written
        # file; link() fails if another process won the race, and its key is used.
        home.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".secret.")
        try:
            os.write(fd, secrets.token_hex(32).encode("ascii"))
            os.fsync(fd)
            os.close(fd)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return hashlib.sha256(path.read_bytes().strip()).digest()


class SecretBox:
    """AES-GCM with the installation key; the purpose is bound in as associated data, so a
    sealed TOTP seed cannot be replayed as anything else."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, purpose: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("ascii"))
        return base64.urlsafe_b64encode(nonce + ct).decode("ascii")

    def open(self, sealed: str, purpose: str) -> str:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        return self._aead.decrypt(raw[:12], raw[12:], purpose.encode("ascii")).decode("utf-8")
