"""Vectorised 64-bit polynomial hashes of Arrow strings and of their label suffixes.

`pc.index_in` rebuilds its hash table on every call, which costs ~0.7 s for two million
domain assets; hashing both sides to uint64 instead lets the index keep a sorted hash array
and query it with `np.searchsorted`. Hash hits are verified on the real strings.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

U64 = npt.NDArray[np.uint64]
MULTIPLIERS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


def _inverse(p: int) -> int:
    return pow(p, -1, 1 << 64)


def _pow_vec(base: int, exps: npt.NDArray[np.int64]) -> U64:
    """base ** exps mod 2**64, vectorised (square and multiply)."""
    result = np.ones(len(exps), dtype=np.uint64)
    b = np.uint64(base)
    e = exps.astype(np.uint64)
    with np.errstate(over="ignore"):
        while e.any():
            odd = (e & np.uint64(1)).astype(bool)
            result[odd] *= b
            e >>= np.uint64(1)
            b = np.uint64((int(b) * int(b)) & 0xFFFF_FFFF_FFFF_FFFF)
    return result


def buffers(arr: pa.Array) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The data bytes and offsets (int64, len n+1) of a string array without nulls."""
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = (np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None
            else np.zeros(0, np.uint8))
    return data, offsets


class Hasher:
    """Prefix sums of one string array, to hash any [start, end) byte range."""

    def __init__(self, data: npt.NDArray[np.uint8], p: int) -> None:
        self.p = p
        n = len(data)
        powers = np.full(n, p, dtype=np.uint64)
        if n:
            powers[0] = 1
        with np.errstate(over="ignore"):
            np.multiply.accumulate(powers, out=powers)
            powers *= data.astype(np.uint64) + np.uint64(1)
            self.prefix = np.zeros(n + 1, dtype=np.uint64)
            np.add.accumulate(powers, out=self.prefix[1:])

    def hash(self, start: npt.NDArray[np.int64], end: npt.NDArray[np.int64]) -> U64:
        with np.errstate(over="ignore"):
            diff = self.prefix[end] - self.prefix[start]
            return diff * _pow_vec(_inverse(self.p), start)


def hash_strings(arr: pa.Array, p: int) -> U64:
    data, offsets = buffers(arr)
    return Hasher(data, p).hash(offsets[:-1], offsets[1:])
