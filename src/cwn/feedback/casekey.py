"""The per-case key that lets a notified recipient open its case page without an account.

A mail goes to an address the desk chose (often an unsolicited one), so the page it links
to cannot ask for a sign-in; instead the link carries a key derived from the case id with
the installation's secret (HMAC-SHA256). Nothing is stored: the key is recomputed when the
page is opened, it opens exactly one case (never another case of the same organisation),
and guessing one is as hard as guessing the secret. Case ids are sequential and printed in
subjects, so the id alone must never be enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_PURPOSE = b"cwn-case-key\x00"  # binds the MAC to this use of the installation key
KEY_LENGTH = 27
"""Characters of a key: 160 bits of the MAC, url-safe base64 without padding."""


def normalise_case_id(case_id: str) -> str:
    """Case ids are quoted back by people (case, spaces); one spelling is signed."""
    return case_id.strip().upper()


def case_key(secret: bytes, case_id: str) -> str:
    """The key for `case_id`: url-safe, 27 characters, the same for every spelling of the
    id."""
    mac = hmac.new(secret, _PURPOSE + normalise_case_id(case_id).encode("utf-8"),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:20]).decode("ascii").rstrip("=")


def check_case_key(secret: bytes, case_id: str, key: str | None) -> bool:
    """True only when `key` is the key of `case_id` (constant-time comparison)."""
    given = (key or "").strip()
    if len(given) != KEY_LENGTH:
        return False
    return hmac.compare_digest(case_key(secret, case_id).encode("ascii"),
                               given.encode("ascii", "replace"))
