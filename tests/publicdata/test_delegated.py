"""RIR delegated statistics: the real RIPE NCC file plus inline files in each RIR's dialect."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cwn.publicdata.delegated import KINGDOM, Delegated, import_delegated, in_kingdom
from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.store import PublicDataStore

RIPE_FILE = "attribution/rir/delegated-ripencc-extended-latest.gz"

# Real-looking lines in each RIR's dialect. ARIN, APNIC, AFRINIC and LACNIC publish
# delegated-*-extended files with an opaque holder id; LACNIC also a plain delegated file.
ARIN = """\
# ARIN delegated-extended statistics
2.3|arin|1704196843|7|19700101|20240102|-0500
arin|*|asn|*|2|summary
arin|*|ipv4|*|4|summary
arin|*|ipv6|*|1|summary
arin|US|asn|1|1|19910926|assigned|7ebf3e1de9d9e2ba8b9ad20cc1b0ac3c
arin|US|asn|7|3|19870505|assigned|f0f5bc5fd0e4bd0e5a4c1e1b0bb14ed4
arin|US|ipv4|8.0.0.0|16777216|19921201|allocated|a8e2d0c3e4fdc0e1f0d0a5b2c8e1d3f4
arin|US|ipv4|23.128.0.0|1024|20181206|assigned|
arin||ipv4|23.128.4.0|768||available|
arin|CA|ipv4|24.36.0.0|262144|19990316|allocated|6c1b5c6a2dcfdf4a2d4f9a6f07ca1b3e
arin|US|ipv6|2001:4860::|32|20050314|allocated|1f1e9a7e4c0b7d0d8a5bbd95fbbd1d43
"""
APNIC = """\
2|apnic|20240102|4|19830613|20240101|+1000
apnic|*|asn|*|1|summary
apnic|*|ipv4|*|2|summary
apnic|*|ipv6|*|1|summary
apnic|JP|asn|173|1|20020801|allocated|A91A7381
apnic|AU|ipv4|1.0.0.0|256|20110811|assigned|A91872ED
apnic|CN|ipv4|1.0.1.0|256|20110414|allocated|A92E1062
apnic|JP|ipv6|2001:200::|35|19990813|allocated|A91A7381
"""
AFRINIC = """\
2|afrinic|20240102|3|00000000|20240102|+0000
afrinic|*|asn|*|1|summary
afrinic|*|ipv4|*|1|summary
afrinic|*|ipv6|*|1|summary
afrinic|ZA|asn|1228|1|19910301|allocated|F36B9F4B
afrinic|ZA|ipv4|41.0.0.0|2097152|20071126|allocated|F3642E72
afrinic|MU|ipv6|2001:4200::|32|20040706|allocated|F367A8B5
"""
LACNIC = """\
2|lacnic|20240102|4|19870101|20240101|-0300
lacnic|*|asn|*|1|summary
lacnic|*|ipv4|*|3|summary
lacnic|*|ipv6|*|0|summary
lacnic|CW|asn|11081|1|20000517|allocated
lacnic|CW|ipv4|190.88.0.0|65536|20070124|allocated
lacnic|AW|ipv4|200.0.0.0|512|20030603|allocated
lacnic|SX|ipv4|190.102.0.0|4096|20090611|allocated
"""

RIRS = [  # file text, part, records, source date
    (ARIN, "arin", 7, "2024-01-02"),
    (APNIC, "apnic", 4, "2024-01-01"),
    (AFRINIC, "afrinic", 3, "2024-01-02"),
    (LACNIC, "lacnic", 4, "2024-01-01"),
]


@pytest.fixture
def store(tmp_path: Path) -> PublicDataStore:
    return PublicDataStore(tmp_path / "publicdata")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Delegated:
    tmp = tmp_path_factory.mktemp("rirs")
    store = PublicDataStore(tmp / "publicdata")
    import_delegated(shared_data / RIPE_FILE, store)
    for text, part, _, _ in RIRS:
        import_delegated(_write(tmp, f"delegated-{part}-extended-latest", text), store)
    d = Delegated.load(store)
    assert d is not None
    return d


def test_real_ripe_file_summary(shared_data: Path, store: PublicDataStore) -> None:
    s = import_delegated(shared_data / RIPE_FILE, store)
    assert (s.kind, s.part, s.rows, s.skipped) == ("delegated", "ripencc", 111_223, 0)
    assert s.source_date == "2013-04-18"  # header end date
    assert s.counts == {"ipv4": 49_504, "ipv6": 33_535, "asn": 28_184}  # = summary lines
    assert s.notes == []  # the header's record count matches


@pytest.mark.parametrize(("text", "part", "records", "when"), RIRS)
def test_each_rir_dialect_imports_as_its_own_part(store: PublicDataStore, tmp_path: Path,
                                                  text: str, part: str, records: int,
                                                  when: str) -> None:
    s = import_delegated(_write(tmp_path, "delegated-latest", text), store)
    assert (s.part, s.rows, s.skipped, s.source_date) == (part, records, 0, when)
    assert store.parts("delegated") == [part]


def _record(registry: str | None, cc: str | None, status: str | None, opaque: str | None,
            date: str | None) -> dict[str, object]:
    return {"registry": registry, "cc": cc, "status": status, "opaque_id": opaque,
            "date": dt.date.fromisoformat(date) if date else None}


NONE = _record(None, None, None, None, None)
IP_LOOKUPS = [  # address, expected row
    ("5.2.64.1", _record("ripencc", "NL", "allocated", None, "2012-04-27")),
    ("2.0.0.0", _record("ripencc", "FR", "allocated", None, "2010-07-12")),
    ("2.15.255.255", _record("ripencc", "FR", "allocated", None, "2010-07-12")),
    ("185.1.13.5", _record("ripencc", None, "available", None, None)),  # 62208 addresses
    ("91.209.128.0", _record("ripencc", "RU", "assigned", None, "2008-11-18")),  # 768
    ("91.209.130.255", _record("ripencc", "RU", "assigned", None, "2008-11-18")),
    ("2001:608::1", _record("ripencc", "DE", "allocated", None, "1999-08-12")),
    ("8.8.8.8", _record("arin", "US", "allocated", "a8e2d0c3e4fdc0e1f0d0a5b2c8e1d3f4",
                        "1992-12-01")),
    ("23.128.4.0", _record("arin", None, "available", None, None)),
    ("23.128.6.255", _record("arin", None, "available", None, None)),  # 768: not a power of 2
    ("23.128.7.0", NONE),
    ("2001:4860:4860::8888", _record("arin", "US", "allocated",
                                     "1f1e9a7e4c0b7d0d8a5bbd95fbbd1d43", "2005-03-14")),
    ("1.0.0.1", _record("apnic", "AU", "assigned", "A91872ED", "2011-08-11")),
    ("2001:200:1fff::1", _record("apnic", "JP", "allocated", "A91A7381", "1999-08-13")),
    ("2001:200:2000::", NONE),  # just past the /35
    ("41.31.255.255", _record("afrinic", "ZA", "allocated", "F3642E72", "2007-11-26")),
    ("190.88.12.1", _record("lacnic", "CW", "allocated", None, "2007-01-24")),
    ("200.0.1.255", _record("lacnic", "AW", "allocated", None, "2003-06-03")),
    ("10.0.0.1", NONE),
    ("garbage", NONE),
    (None, NONE),
]


@pytest.mark.parametrize(("address", "want"), IP_LOOKUPS)
def test_lookup_ips_across_all_rirs(everything: Delegated, address: str | None,
                                    want: dict[str, object]) -> None:
    got = everything.lookup_ips(pa.array([address], pa.string()))
    assert got.column_names == ["registry", "cc", "status", "opaque_id", "date"]
    assert got.to_pylist() == [want]


ASN_LOOKUPS = [  # AS number as given, (registry, cc, status)
    (1, ("arin", "US", "assigned")),
    (8, ("arin", "US", "assigned")),  # inside asn 7, count 3
    (9, ("arin", "US", "assigned")),
    (10, (None, None, None)),
    ("AS173", ("apnic", "JP", "allocated")),
    ("as1228", ("afrinic", "ZA", "allocated")),
    (" 11081 ", ("lacnic", "CW", "allocated")),
    ("AS1547", ("ripencc", None, "available")),
    (3333, ("ripencc", "EU", "allocated")),
    ("ASX", (None, None, None)),
    (None, (None, None, None)),
    (2**40, (None, None, None)),
]


@pytest.mark.parametrize(("asn", "want"), ASN_LOOKUPS)
def test_lookup_asns(everything: Delegated, asn: int | str | None,
                     want: tuple[str | None, ...]) -> None:
    values = pa.array([asn], pa.int64()) if isinstance(asn, int) else \
        pa.array([asn], pa.string())
    row = everything.lookup_asns(values).to_pylist()[0]
    assert (row["registry"], row["cc"], row["status"]) == want


def test_every_real_ipv4_record_is_found_at_both_ends(everything: Delegated,
                                                      shared_data: Path) -> None:
    """Table-driven over the real file: each record's first and last address."""
    first, last, cc = [], [], []
    with gzip.open(shared_data / RIPE_FILE, "rt") as fh:
        for line in fh:
            f = line.rstrip("\n").split("|")
            if len(f) >= 7 and f[2] == "ipv4" and f[1] != "*":
                start = int(ipaddress.IPv4Address(f[3]))
                first.append(f[3])
                last.append(str(ipaddress.IPv4Address(start + int(f[4]) - 1)))
                cc.append(f[1] or None)
    assert len(first) == 49_504
    for addresses in (first, last):
        got = everything.lookup_ips(pa.array(addresses))
        assert got["cc"].to_pylist() == cc
        assert got["registry"].null_count == 0


def test_refreshing_one_rir_leaves_the_others(store: PublicDataStore, tmp_path: Path,
                                              shared_data: Path) -> None:
    import_delegated(shared_data / RIPE_FILE, store)
    import_delegated(_write(tmp_path, "arin", ARIN), store)
    before = Delegated.load(store)
    assert before is not None
    q = pa.array(["8.8.8.8", "5.2.64.1"])
    assert before.lookup_ips(q)["cc"].to_pylist() == ["US", "NL"]
    newer = ARIN.replace("|20240102|-0500", "|20240103|-0500").replace(
        "arin|US|ipv4|8.0.0.0|16777216|19921201|allocated",
        "arin|CA|ipv4|8.0.0.0|16777216|19921201|allocated")
    s = import_delegated(_write(tmp_path, "arin2", newer), store)
    assert s.source_date == "2024-01-03"
    after = Delegated.load(store)
    assert after is not None
    assert after.lookup_ips(q)["cc"].to_pylist() == ["CA", "NL"]  # the cached index is redone
    assert store.parts("delegated") == ["arin", "ripencc"]
    assert len(list((store.root / "delegated").glob(".merged-*.npz"))) == 1


def test_plain_file_without_opaque_ids(store: PublicDataStore, tmp_path: Path) -> None:
    plain = "\n".join(line.rsplit("|", 1)[0] if line.count("|") == 7 else line
                      for line in ARIN.splitlines())
    s = import_delegated(_write(tmp_path, "delegated-arin-latest", plain), store)
    assert (s.rows, s.skipped) == (7, 0)
    d = Delegated.load(store)
    assert d is not None
    row = d.lookup_ips(pa.array(["8.8.8.8"])).to_pylist()[0]
    assert (row["cc"], row["opaque_id"]) == ("US", None)


def test_gzip_and_crlf(store: PublicDataStore, tmp_path: Path) -> None:
    path = tmp_path / "delegated-apnic-extended-latest.gz"
    path.write_bytes(gzip.compress(APNIC.replace("\n", "\r\n").encode()))
    s = import_delegated(path, store)
    assert (s.part, s.rows, s.skipped) == ("apnic", 4, 0)
    d = Delegated.load(store)
    assert d is not None
    assert d.lookup_ips(pa.array(["1.0.1.9"]))["opaque_id"].to_pylist() == ["A92E1062"]


MALFORMED = [  # bad record, why
    "lacnic|BR|ipv4|177.0.0.0|0|20080107|allocated",  # zero addresses
    "lacnic|BR|ipv4|255.255.255.0|512|20080107|allocated",  # runs past the IPv4 space
    "lacnic|BR|ipv4|177.0.0|256|20080107|allocated",  # bad address
    "lacnic|BR|ipv4|177.0.0.0|many|20080107|allocated",  # count not a number
    "lacnic|BR|ipv6|2801:80::|129|20080107|allocated",  # prefix length
    "lacnic|BR|ipv6|2801:80:::|32|20080107|allocated",  # bad address
    "lacnic|BR|asn|AS28000|1|20080107|allocated",  # not a number
    "lacnic|BR|asn|28000|0|20080107|allocated",  # zero ASNs
    "lacnic|BR|ipv5|177.0.0.0|256|20080107|allocated",  # unknown type
    "lacnic|BR|ipv4|177.0.0.0|256",  # too few fields
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_records_are_skipped_and_counted(store: PublicDataStore, tmp_path: Path,
                                                   bad: str) -> None:
    text = LACNIC.replace("lacnic|AW|", bad + "\nlacnic|AW|")
    s = import_delegated(_write(tmp_path, "lacnic", text), store)
    assert (s.rows, s.skipped) == (4, 1)
    assert "1 malformed lines skipped" in s.notes


def test_header_record_count_mismatch_is_noted(store: PublicDataStore, tmp_path: Path) -> None:
    truncated = "\n".join(APNIC.splitlines()[:-1])
    s = import_delegated(_write(tmp_path, "apnic", truncated), store)
    assert s.rows == 3
    assert any("announces 4 records, file has 3" in n for n in s.notes)


def test_file_without_header_takes_registry_from_records(store: PublicDataStore,
                                                         tmp_path: Path) -> None:
    records = "\n".join(LACNIC.splitlines()[4:])
    s = import_delegated(_write(tmp_path, "x", records), store)
    assert (s.part, s.rows, s.source_date) == ("lacnic", 4, None)


UNUSABLE = [  # content, words in the message
    (b"", "empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary"),
    (b"# only a comment\n", "no delegated statistics lines"),
    (b"hello world\nthis is not it\n", "no delegated statistics header"),
    (b"2|../../etc|20240101|1|19700101|20240101|+0000\n../../etc|NL|ipv4|1.2.3.0|256|"
     b"20240101|assigned\n", "registry"),
    (b"2|ripencc|1|0|19700101|20240101|+0000\nripencc|*|ipv4|*|0|summary\n",
     "no usable asn/ipv4/ipv6 records"),
]


@pytest.mark.parametrize(("content", "words"), UNUSABLE)
def test_unusable_file_raises_one_line_error(store: PublicDataStore, tmp_path: Path,
                                             content: bytes, words: str) -> None:
    path = tmp_path / "delegated.txt"
    path.write_bytes(content)
    with pytest.raises(PublicDataError) as err:
        import_delegated(path, store)
    assert words in str(err.value) and "delegated.txt" in str(err.value)
    assert "\n" not in str(err.value)
    assert not store.has("delegated")


KINGDOM_CASES = [("NL", True), ("nl", True), (" CW ", True), ("BQ", True), ("AW", True),
                 ("SX", True), ("BE", False), ("EU", False), ("", False), (None, False)]


@pytest.mark.parametrize(("cc", "inside"), KINGDOM_CASES)
def test_in_kingdom(cc: str | None, inside: bool) -> None:
    assert in_kingdom(pa.array([cc], pa.string())).to_pylist() == [inside]


def test_kingdom_scope_on_real_data(everything: Delegated) -> None:
    assert frozenset({"NL", "BQ", "AW", "CW", "SX"}) == KINGDOM
    rows = everything.lookup_ips(pa.array(["5.2.64.1", "190.88.0.1", "190.102.15.255",
                                           "2.0.0.1", "8.8.8.8", "10.0.0.0"]))
    assert in_kingdom(rows["cc"]).to_pylist() == [True, True, True, False, False, False]
    assert np.asarray(in_kingdom(pa.chunked_array([["NL"], ["DE"]]))).tolist() \
        == [True, False]


def test_load_without_import_is_none(store: PublicDataStore) -> None:
    assert Delegated.load(store) is None
