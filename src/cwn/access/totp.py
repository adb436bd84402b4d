"""TOTP second factor (RFC 6238) with replay protection: a code's time step is stored on
use and a code of that step or earlier is refused."""

from __future__ import annotations

import time

import pyotp
import segno

ISSUER = "CWN"


def new_seed() -> str:
    return pyotp.random_base32()


def provisioning_uri(seed: str, account: str) -> str:
    return pyotp.TOTP(seed).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """An inline SVG QR code, so the set-up page needs no image service."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff"))


def check(seed: str, code: str, last_step: int | None, now: float | None = None
          ) -> int | None:
    """The time step the code matches (±1 step of clock skew), or None. A step at or before
    `last_step` is a replay and does not match."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(seed)
    t = time.time() if now is None else now
    step = int(t // totp.interval)
    for s in (step, step - 1, step + 1):
        if last_step is not None and s <= last_step:
            continue
        if totp.verify(code, for_time=s * totp.interval):
            return s
    return None


def code_for(seed: str, now: float | None = None) -> str:
    """The current code (for the tests and the browser tests, which play the phone)."""
    return pyotp.TOTP(seed).at(time.time() if now is None else now)
