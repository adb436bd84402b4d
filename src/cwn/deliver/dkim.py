"""DKIM signing at queue time, so the stored message (and every retry of it) is signed.

Configured for now through `CWN_DKIM_KEY_FILE`, `CWN_DKIM_SELECTOR` and `CWN_DKIM_DOMAIN`
(to become Settings fields); without a key, messages go out unsigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cwn.config import Settings

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"content-type", b"mime-version",
    b"auto-submitted",
)


@dataclass(frozen=True, slots=True)
class DkimSigner:
    selector: str
    domain: str
    key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        """A signer when key, selector and domain are all configured, else None."""
        key_file, selector, domain = (settings.dkim_key_file, settings.dkim_selector,
                                      settings.dkim_domain)
        if not (key_file and selector and domain):
            return None
        return cls(selector=selector, domain=domain, key=Path(key_file).read_bytes())

    @classmethod
    def from_env(cls) -> DkimSigner | None:
        return cls.from_settings(Settings())

    def sign(self, message: bytes) -> bytes:
        import dkim

        header = dkim.sign(message, self.selector.encode(), self.domain.encode(), self.key,
                           include_headers=list(SIGNED_HEADERS))
        return bytes(header) + message
