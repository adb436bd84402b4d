"""One error type for refused account operations. `key` names a translatable message (the
portal shows it in the user's language; the CLI and API show the English text)."""

from __future__ import annotations


class AccessError(Exception):
    def __init__(self, key: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.status = status
