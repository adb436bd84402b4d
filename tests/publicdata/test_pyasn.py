"""pyasn IPASN import and longest-prefix origin AS lookup, over the real sample files."""

from __future__ import annotations

import gzip
import ipaddress
import shutil
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.pyasn import OriginAS, import_asnames, import_ipasn
from cwn.publicdata.store import PublicDataStore


@pytest.fixture
def store(tmp_path: Path) -> PublicDataStore:
    return PublicDataStore(tmp_path / "publicdata")


@pytest.fixture(scope="module")
def pyasn_dir(shared_data: Path) -> Path:
    return shared_data / "attribution" / "pyasn"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, pyasn_dir: Path) -> OriginAS:
    store = PublicDataStore(tmp_path_factory.mktemp("pyasn") / "publicdata")
    import_ipasn(pyasn_dir / "ipasn_20140513.dat.gz", store)
    import_asnames(pyasn_dir / "asnames.json.gz", store)
    origin = OriginAS.load(store)
    assert origin is not None
    return origin


def test_import_real_file_summary(pyasn_dir: Path, store: PublicDataStore) -> None:
    s = import_ipasn(pyasn_dir / "ipasn_20140513.dat.gz", store)
    assert (s.kind, s.part, s.rows, s.skipped) == ("ipasn", "default", 512_621, 0)
    assert s.source_date == "2014-05-13"  # from the file name
    assert s.counts == {"ipv4": 512_621, "ipv6": 0}
    assert store.meta("ipasn")["rows"] == 512_621
    assert len(list(store.folder("ipasn").glob("index-*.npz"))) == 1


def _reference(path: Path) -> dict[tuple[int, int], int]:
    """(prefix length, network as int) -> ASN, first line wins, parsed the slow, obvious way."""
    table: dict[tuple[int, int], int] = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith(";"):
                continue
            prefix, asn = line.split("\t")
            addr, plen = prefix.split("/")  # the file has IPv4 only, all network addresses
            key = (int(plen), int.from_bytes(socket.inet_aton(addr), "big"))
            table.setdefault(key, int(asn))
    return table


def _longest_match(table: dict[tuple[int, int], int], addr: int) -> int | None:
    for plen in range(32, -1, -1):
        key = (plen, addr & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF))
        if key in table:
            return table[key]
    return None


def test_lookup_matches_reference_longest_prefix_match(big: OriginAS, pyasn_dir: Path) -> None:
    ref = _reference(pyasn_dir / "ipasn_20140513.dat.gz")
    rng = np.random.default_rng(5)
    starts = [net for _, net in list(ref)[:: max(1, len(ref) // 1500)]]
    addrs = [int(a) for a in rng.integers(0, 2**32, size=3000)]
    addrs += starts + [s - 1 for s in starts if s] + [s + 255 for s in starts]
    addrs = [a for a in addrs if 0 <= a < 2**32]
    got = big.lookup(pa.array([str(ipaddress.IPv4Address(a)) for a in addrs])).to_pylist()
    want = [_longest_match(ref, a) for a in addrs]
    assert got == want
    assert sum(w is not None for w in want) > 2000  # the sample really exercises hits


ORIGINS = [  # address, origin AS, AS name (asnames of ~2016)
    ("1.0.0.1", 15169, "GOOGLE - Google Inc., US"),
    ("8.8.8.8", 15169, "GOOGLE - Google Inc., US"),
    ("10.0.0.1", None, None),
    ("2001:db8::1", None, None),
    ("not-an-ip", None, None),
    (None, None, None),
]


@pytest.mark.parametrize(("address", "asn", "name"), ORIGINS)
def test_origin_and_name(big: OriginAS, address: str | None, asn: int | None,
                         name: str | None) -> None:
    found = big.lookup(pa.array([address], pa.string()))
    assert found.type == pa.int64()
    assert found.to_pylist() == [asn]
    assert big.name(found).to_pylist() == [name]


def test_name_of_unknown_and_null_asns(big: OriginAS) -> None:
    assert big.has_names
    assert big.name(pa.array([3333, 4_000_000_000, None, 15169], pa.int64())).to_pylist() \
        == ["RIPE-NCC-AS Reseaux IP Europeens Network Coordination Centre (RIPE NCC), NL",
            None, None, "GOOGLE - Google Inc., US"]


INTELMQ = [  # the tiny IntelMQ test file: IPv4 and IPv6 prefixes
    ("93.184.216.34", 15133),
    ("93.184.217.0", None),
    ("192.0.43.10", 40528),
    ("2001:500:88:200::10", 16876),
    ("2001:500:89::", None),
]


def test_small_v4_v6_file_and_header_date(pyasn_dir: Path, store: PublicDataStore) -> None:
    s = import_ipasn(pyasn_dir / "intelmq_ipasn.dat", store)
    assert (s.rows, s.skipped, s.counts) == (3, 0, {"ipv4": 2, "ipv6": 1})
    assert s.source_date == "2016-11-15"  # "; Converted on : Tue Nov 15 21:33:28 2016"
    origin = OriginAS.load(store)
    assert origin is not None and not origin.has_names
    got = origin.lookup(pa.array([a for a, _ in INTELMQ])).to_pylist()
    assert got == [asn for _, asn in INTELMQ]
    assert origin.name(pa.array([15133])).to_pylist() == [None]


def test_reimport_replaces_and_rebuilds_missing_index(pyasn_dir: Path,
                                                      store: PublicDataStore) -> None:
    import_ipasn(pyasn_dir / "intelmq_ipasn.dat", store)
    path = store.folder("ipasn") / "again.dat"
    path.write_text("93.184.216.0/23\t64500\n", encoding="utf-8")
    import_ipasn(path, store)
    for npz in store.folder("ipasn").glob("index-*.npz"):
        npz.unlink()  # e.g. a crash between the table swap and the index write
    origin = OriginAS.load(store)
    assert origin is not None
    assert origin.lookup(pa.array(["93.184.217.1", "192.0.43.10"])).to_pylist() == [64500, None]
    assert len(list(store.folder("ipasn").glob("index-*.npz"))) == 1  # saved for next time


MALFORMED = [  # bad line, why
    ("1.2.3.0/24", "no ASN column"),
    ("1.2.3.0/33\t5", "prefix length"),
    ("1.2.300.0/24\t5", "octet"),
    ("1.2.4.0/24\tAS5", "ASN not a number"),
    ("1.2.5.0/24\t{5,6}", "AS set"),
    ("1.2.6.0/24\t5\t6", "three columns"),
    ("1.2.7.0/24\t99999999999", "ASN beyond 32 bits"),
    ("2001:db8::/24:\t5", "IPv6 syntax"),
]


@pytest.mark.parametrize(("line", "why"), MALFORMED)
def test_malformed_lines_are_skipped_and_counted(store: PublicDataStore, tmp_path: Path,
                                                 line: str, why: str) -> None:
    path = tmp_path / "ipasn_20200102.dat"
    path.write_text("; IP-ASN32-DAT file\n; note\twith a tab\n9.9.9.0/24\t19281\n"
                    f"{line}\n2001:db8::/32\t64501\n", encoding="utf-8")
    s = import_ipasn(path, store)
    assert (s.rows, s.skipped, s.source_date) == (2, 1, "2020-01-02"), why
    assert s.notes and "1 malformed" in s.notes[0]
    origin = OriginAS.load(store)
    assert origin is not None
    assert origin.lookup(pa.array(["9.9.9.9", "2001:db8::1", "1.2.3.4"])).to_pylist() \
        == [19281, 64501, None]


def _gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


UNUSABLE = [  # file content, words in the message
    (b"", "empty"),
    (b"\n\n  \n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"\x1f\x8b\x08\x00garbage", "unreadable"),
    (_gzip_bytes(b"\x00\x01\x02\x03" * 10), "binary"),
    (b'{"1.0.0.0/24": 15169}\n', "no `prefix<TAB>asn`"),
    (b"; only comments\n; here\n", "no `prefix<TAB>asn`"),
    (b"hello\tworld\n", "no `prefix<TAB>asn`"),
]


@pytest.mark.parametrize(("content", "words"), UNUSABLE)
def test_unusable_file_raises_one_line_error(store: PublicDataStore, tmp_path: Path,
                                             content: bytes, words: str) -> None:
    path = tmp_path / "input.dat"
    path.write_bytes(content)
    with pytest.raises(PublicDataError) as err:
        import_ipasn(path, store)
    message = str(err.value)
    assert words in message and "input.dat" in message and "\n" not in message
    assert not store.has("ipasn")


def test_missing_file(store: PublicDataStore, tmp_path: Path) -> None:
    with pytest.raises(PublicDataError, match=r"nope\.dat"):
        import_ipasn(tmp_path / "nope.dat", store)


def test_gzip_is_recognised_by_content_not_name(pyasn_dir: Path, store: PublicDataStore,
                                                tmp_path: Path) -> None:
    renamed = tmp_path / "download"
    shutil.copy(pyasn_dir / "intelmq_ipasn.dat", tmp_path / "plain")
    renamed.write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    assert import_ipasn(renamed, store).rows == 3


ASNAMES = [  # JSON content, rows, skipped
    (b'{"64500": "EXAMPLE-AS Example, NL", "AS64501": "Other, DE"}', 2, 0),
    (b'{"64500": "ok", "x": "no number", "64502": "", "64503": 7}', 1, 3),
]


@pytest.mark.parametrize(("content", "rows", "skipped"), ASNAMES)
def test_asnames_variants(store: PublicDataStore, tmp_path: Path, content: bytes, rows: int,
                          skipped: int) -> None:
    path = tmp_path / "asnames.json"
    path.write_bytes(content)
    s = import_asnames(path, store)
    assert (s.kind, s.rows, s.skipped) == ("asnames", rows, skipped)


def test_asnames_real_file_and_bad_input(pyasn_dir: Path, store: PublicDataStore,
                                         tmp_path: Path) -> None:
    s = import_asnames(pyasn_dir / "asnames.json.gz", store)
    assert (s.rows, s.skipped) == (77_586, 0)
    bad = tmp_path / "names.json"
    for content in (b"[1, 2]", b"{not json", b"{}"):
        bad.write_bytes(content)
        with pytest.raises(PublicDataError, match=r"names\.json"):
            import_asnames(bad, store)


def test_load_without_import_is_none(store: PublicDataStore) -> None:
    assert OriginAS.load(store) is None
