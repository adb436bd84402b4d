"""CIDR text <-> the integer columns of `Asset` (see `cwn.db.models.Asset`).

Encoding: IPv4 networks keep their first address in `ip_lo` (0 .. 2**32-1, `ip_hi` NULL).
IPv6 networks split their first address into two unsigned 64-bit halves, each stored with its
sign bit flipped (stored = unsigned - 2**63) so that signed BIGINT order is address order.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

SIGN = 1 << 63
_SIGN_U64 = np.uint64(SIGN)


class Network(NamedTuple):
    ip_version: int
    ip_hi: int | None
    ip_lo: int
    prefixlen: int
    text: str
    """Canonical text (`192.0.2.0/24`, `2001:db8::/32`)."""


def parse_cidr(value: str) -> Network:
    """Parse and canonicalise a CIDR; host bits set, or garbage, raise ValueError.

    A bare address is a host network (/32 or /128).
    """
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        msg = str(exc)
        if "host bits set" in msg:
            raise ValueError(f"{value!r} has host bits set (did you mean "
                             f"{ipaddress.ip_network(value.strip(), strict=False)}?)") from None
        raise ValueError(f"{value!r} is not an IPv4/IPv6 network") from None
    return encode_network(net)


def encode_network(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Network:
    addr = int(net.network_address)
    if net.version == 4:
        return Network(4, None, addr, net.prefixlen, str(net))
    hi, lo = addr >> 64, addr & 0xFFFF_FFFF_FFFF_FFFF
    return Network(6, hi - SIGN, lo - SIGN, net.prefixlen, str(net))


def decode_network(ip_version: int, ip_hi: int | None, ip_lo: int, prefixlen: int) -> str:
    """The canonical CIDR text of the integer columns."""
    if ip_version == 4:
        return str(ipaddress.IPv4Network((ip_lo, prefixlen)))
    assert ip_hi is not None
    addr = ((ip_hi + SIGN) << 64) | (ip_lo + SIGN)
    return str(ipaddress.IPv6Network((addr, prefixlen)))


# -- vectorised -------------------------------------------------------------------------------


def stored_to_unsigned(stored: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """Signed stored IPv6 halves (int64) -> unsigned halves (uint64)."""
    arr = np.asarray(stored, dtype=np.int64)
    return arr.view(np.uint64) ^ _SIGN_U64


def unsigned_to_stored(unsigned: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Unsigned IPv6 halves (uint64) -> the signed stored form (int64)."""
    arr = np.asarray(unsigned, dtype=np.uint64)
    return (arr ^ _SIGN_U64).view(np.int64)


def v4_mask(prefixlen: int) -> np.uint32:
    return np.uint32(0) if prefixlen == 0 else np.uint32((0xFFFFFFFF << (32 - prefixlen))
                                                         & 0xFFFFFFFF)


def u64_mask(prefixlen: int) -> np.uint64:
    """Mask of the first `prefixlen` (0..64) bits of a 64-bit half."""
    if prefixlen <= 0:
        return np.uint64(0)
    return np.uint64(((1 << 64) - 1) ^ ((1 << (64 - prefixlen)) - 1))


def encode_cidrs(values: list[str]) -> dict[str, list[int | None]]:
    """Columns (ip_version, ip_hi, ip_lo, prefixlen, value) for many CIDR texts."""
    cols: dict[str, list[int | None]] = {"ip_version": [], "ip_hi": [], "ip_lo": [],
                                         "prefixlen": []}
    for v in values:
        n = parse_cidr(v)
        cols["ip_version"].append(n.ip_version)
        cols["ip_hi"].append(n.ip_hi)
        cols["ip_lo"].append(n.ip_lo)
        cols["prefixlen"].append(n.prefixlen)
    return cols
