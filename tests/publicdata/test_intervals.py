"""IntervalIndex: innermost containing range, parent links, CIDR/range parsing, saving."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cwn.publicdata.intervals import (
    IntervalIndex,
    cached_index,
    cidr_bounds,
    range_bounds,
)

# row: CIDR or "first - last"; the row number is the id lookups return
RANGES = [
    "0.0.0.0/0",                  # 0
    "10.0.0.0/8",                 # 1
    "10.1.0.0/16",                # 2
    "10.1.2.0/24",                # 3
    "10.1.2.0/24",                # 4 duplicate of 3: 3 wins
    "10.1.2.128 - 10.1.2.130",    # 5 not a prefix
    "192.0.2.0 - 192.0.2.255",    # 6
    "198.51.100.0/24",            # 7
    "2001:db8::/32",              # 8
    "2001:db8:1::/48",            # 9
    "2001:db8:1::1/128",          # 10
    "::/0",                       # 11
    "255.255.255.255/32",         # 12 end of the IPv4 space
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",  # 13 end of the IPv6 space
    "2001:db8:2:ffff:ffff:ffff:ffff:fffe - 2001:db8:3::1",  # 14 crosses the 64-bit halves
    "10.9.0.0 - 10.2.0.0",        # 15 start after end: ignored
    "not a range",                # 16 ignored
]

LOOKUPS = [  # address, innermost row
    ("10.1.2.3", 3),
    ("10.1.2.128", 5),
    ("10.1.2.130", 5),
    ("10.1.2.131", 3),
    ("10.1.2.255", 3),
    ("10.1.3.0", 2),
    ("10.2.0.0", 1),
    ("11.0.0.0", 0),
    ("0.0.0.0", 0),
    ("255.255.255.254", 0),
    ("255.255.255.255", 12),
    ("192.0.2.77", 6),
    ("198.51.100.255", 7),
    ("198.51.101.0", 0),
    ("2001:db8::5", 8),
    ("2001:db8:1::", 9),
    ("2001:db8:1::1", 10),
    ("2001:db8:1::2", 9),
    ("2001:db8:2::", 8),
    ("2001:db8:2:ffff:ffff:ffff:ffff:fffd", 8),
    ("2001:db8:2:ffff:ffff:ffff:ffff:fffe", 14),
    ("2001:db8:3::", 14),
    ("2001:db8:3::1", 14),
    ("2001:db8:3::2", 8),
    ("2002::1", 11),
    ("::", 11),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 13),
    ("::ffff:10.1.2.3", 11),  # an IPv6 address, not IPv4
    ("bogus", -1),
    (None, -1),
]

PARENTS = {0: -1, 1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 0, 7: 0, 8: 11, 9: 8, 10: 9, 11: -1,
           12: 0, 13: 11, 14: 8, 15: -1, 16: -1}


def _bounds(texts: list[str]) -> tuple[np.ndarray, ...]:
    is_range = np.array([" - " in t for t in texts])
    first = [t.split(" - ")[0] if " - " in t else "" for t in texts]
    last = [t.split(" - ")[1] if " - " in t else "" for t in texts]
    cidr = cidr_bounds(pa.array(texts))
    rng = range_bounds(pa.array(first), pa.array(last))
    return tuple(np.where(is_range, r, c) for c, r in zip(cidr, rng, strict=True))


@pytest.fixture(scope="module")
def index() -> IntervalIndex:
    return IntervalIndex.build(*_bounds(RANGES))


@pytest.mark.parametrize(("address", "row"), LOOKUPS)
def test_lookup_returns_innermost_range(index: IntervalIndex, address: str | None,
                                        row: int) -> None:
    assert index.lookup_ips(pa.array([address], pa.string())).tolist() == [row]


def test_lookup_in_bulk_matches_one_by_one(index: IntervalIndex) -> None:
    got = index.lookup_ips(pa.chunked_array([[a for a, _ in LOOKUPS[:10]],
                                             [a for a, _ in LOOKUPS[10:]]], pa.string()))
    assert got.dtype == np.int64
    assert got.tolist() == [r for _, r in LOOKUPS]


def test_parent_is_smallest_strictly_containing_range(index: IntervalIndex) -> None:
    assert len(index) == len(RANGES)
    assert index.parent.dtype == np.int64
    assert dict(enumerate(index.parent.tolist())) == PARENTS


def test_lookup_by_integers_and_version_zero() -> None:
    ix = IntervalIndex.build(np.array([4, 6], np.int8), np.array([0, 1], np.uint64),
                             np.array([100, 0], np.uint64), np.array([0, 1], np.uint64),
                             np.array([200, 5], np.uint64))
    got = ix.lookup(np.array([4, 4, 0, 6, 6, 4], np.int8),
                    np.array([0, 0, 0, 1, 0, 1], np.uint64),
                    np.array([150, 201, 150, 5, 5, 150], np.uint64))
    assert got.tolist() == [0, -1, -1, 1, -1, -1]


def test_empty_index() -> None:
    e = np.empty(0, np.uint64)
    ix = IntervalIndex.build(np.empty(0, np.int8), e, e, e, e)
    assert len(ix) == 0
    assert ix.lookup_ips(pa.array(["1.2.3.4", "::1"])).tolist() == [-1, -1]


CIDRS = [  # text, version, start, end (as ints)
    ("1.0.0.0/24", 4, 0x01000000, 0x010000FF),
    ("1.2.3.4/24", 4, 0x01020300, 0x010203FF),  # host bits masked off
    ("0.0.0.0/0", 4, 0, 0xFFFFFFFF),
    ("8.8.8.8", 4, 0x08080808, 0x08080808),
    (" 9.9.9.0/31 ", 4, 0x09090900, 0x09090901),
    ("1.0.0.0/33", 0, 0, 0),
    ("1.0.0/24", 0, 0, 0),
    ("256.0.0.0/8", 0, 0, 0),
    ("1.0.0.0/", 0, 0, 0),
    ("", 0, 0, 0),
    (None, 0, 0, 0),
    ("2001:db8::/32", 6, 0x20010DB8 << 96, (0x20010DB8 << 96) | (2**96 - 1)),
    ("2001:db8::/64", 6, 0x20010DB8 << 96, (0x20010DB8 << 96) | (2**64 - 1)),
    ("2001:db8::/65", 6, 0x20010DB8 << 96, (0x20010DB8 << 96) | (2**63 - 1)),
    ("::/0", 6, 0, 2**128 - 1),
    ("::1/128", 6, 1, 1),
    ("2001:db8::/129", 0, 0, 0),
    ("2001:db8:::/48", 0, 0, 0),
]


@pytest.mark.parametrize(("text", "version", "start", "end"), CIDRS)
def test_cidr_bounds(text: str | None, version: int, start: int, end: int) -> None:
    v, sh, sl, eh, el = cidr_bounds(pa.array([text], pa.string()))
    assert (int(v[0]), (int(sh[0]) << 64) | int(sl[0]), (int(eh[0]) << 64) | int(el[0])) \
        == (version, start, end)


def test_cidr_bounds_agrees_with_ipaddress_on_random_prefixes() -> None:
    rng = np.random.default_rng(11)
    nets = [ipaddress.ip_network((int(rng.integers(0, 2**32)), int(rng.integers(0, 33))),
                                 strict=False) for _ in range(300)]
    nets += [ipaddress.ip_network((int(rng.integers(0, 2**63)) << 65 | int(rng.integers(0, 2**62)),
                                   int(rng.integers(0, 129))), strict=False) for _ in range(300)]
    v, sh, sl, eh, el = cidr_bounds(pa.array([str(n) for n in nets]))
    for i, n in enumerate(nets):
        assert int(v[i]) == n.version
        assert (int(sh[i]) << 64 | int(sl[i])) == int(n.network_address)
        assert (int(eh[i]) << 64 | int(el[i])) == int(n.broadcast_address)


RANGE_TEXTS = [  # first, last, version
    ("192.0.2.0", "192.0.2.255", 4),
    ("192.0.2.10", "192.0.2.10", 4),
    ("192.0.2.10", "192.0.2.9", 0),  # reversed
    ("192.0.2.0", "2001:db8::1", 0),  # families differ
    ("2001:db8::", "2001:db8::ffff", 6),
    ("x", "192.0.2.1", 0),
    (None, "192.0.2.1", 0),
]


@pytest.mark.parametrize(("first", "last", "version"), RANGE_TEXTS)
def test_range_bounds(first: str | None, last: str, version: int) -> None:
    v, sh, sl, eh, el = range_bounds(pa.array([first], pa.string()), pa.array([last]))
    assert int(v[0]) == version
    if version:
        assert (int(sh[0]) << 64 | int(sl[0])) == int(ipaddress.ip_address(first or ""))
        assert (int(eh[0]) << 64 | int(el[0])) == int(ipaddress.ip_address(last))
    else:
        assert int(sh[0]) == int(sl[0]) == int(eh[0]) == int(el[0]) == 0


def _reference(starts: np.ndarray, ends: np.ndarray, x: int) -> int:
    """Innermost = smallest containing range, lowest row on ties."""
    inside = np.flatnonzero((starts <= x) & (x <= ends))
    if not len(inside):
        return -1
    size = ends[inside] - starts[inside]
    return int(inside[np.argmin(size)])


@pytest.mark.parametrize("seed", range(8))
def test_random_nested_ranges_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    plen = rng.integers(0, 11, size=n)
    start = rng.integers(0, 1024, size=n) & ~((1 << (10 - plen)) - 1)
    end = start | ((1 << (10 - plen)) - 1)
    z = np.zeros(n, np.uint64)
    ix = IntervalIndex.build(np.full(n, 4, np.int8), z, start.astype(np.uint64), z,
                             end.astype(np.uint64))
    q = np.arange(0, 1100, dtype=np.uint64)
    got = ix.lookup(np.full(len(q), 4, np.int8), np.zeros(len(q), np.uint64), q)
    assert got.tolist() == [_reference(start, end, int(x)) for x in q]
    for i in range(n):
        outer = np.flatnonzero((start <= start[i]) & (end[i] <= end)
                               & ((start != start[i]) | (end != end[i])))
        want = int(outer[np.argmin(end[outer] - start[outer])]) if len(outer) else -1
        assert ix.parent[i] == want


@pytest.mark.parametrize("seed", range(8))
def test_overlapping_ranges_never_miss_and_never_lie(seed: int) -> None:
    """Bad data (ranges overlapping without nesting): every answer contains the address,
    and an address inside any range always gets an answer."""
    rng = np.random.default_rng(100 + seed)
    n = 40
    start = rng.integers(0, 300, size=n)
    end = start + rng.integers(0, 80, size=n)
    z = np.zeros(n, np.uint64)
    ix = IntervalIndex.build(np.full(n, 4, np.int8), z, start.astype(np.uint64), z,
                             end.astype(np.uint64))
    q = np.arange(0, 400)
    got = ix.lookup(np.full(len(q), 4, np.int8), np.zeros(len(q), np.uint64),
                    q.astype(np.uint64))
    covered = ((start[None, :] <= q[:, None]) & (q[:, None] <= end[None, :])).any(axis=1)
    assert ((got >= 0) == covered).all()
    hit = got[got >= 0]
    assert ((start[hit] <= q[got >= 0]) & (q[got >= 0] <= end[hit])).all()
    again = IntervalIndex.build(np.full(n, 4, np.int8), z, start.astype(np.uint64), z,
                                end.astype(np.uint64))
    assert again.lookup(np.full(len(q), 4, np.int8), np.zeros(len(q), np.uint64),
                        q.astype(np.uint64)).tolist() == got.tolist()


def test_save_and_load_round_trip(index: IntervalIndex, tmp_path: Path) -> None:
    path = tmp_path / "ix.npz"
    index.save(path)
    loaded = IntervalIndex.load(path)
    assert len(loaded) == len(index)
    assert loaded.parent.tolist() == index.parent.tolist()
    addresses = pa.array([a for a, _ in LOOKUPS], pa.string())
    assert loaded.lookup_ips(addresses).tolist() == [r for _, r in LOOKUPS]


def test_cached_index_uses_matching_file_and_rebuilds_stale_or_broken(
        index: IntervalIndex, tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    builds: list[int] = []

    def build() -> IntervalIndex:
        builds.append(1)
        return index

    assert len(cached_index(path, len(RANGES), build)) == len(RANGES)
    assert path.is_file() and len(builds) == 1
    cached_index(path, len(RANGES), build)
    assert len(builds) == 1  # served from the file
    cached_index(path, len(RANGES) + 1, build)  # file covers other rows: rebuilt
    assert len(builds) == 2
    path.write_bytes(b"garbage")
    assert cached_index(path, len(RANGES), build).lookup_ips(pa.array(["10.1.2.3"])).tolist() \
        == [3]
    assert len(builds) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
