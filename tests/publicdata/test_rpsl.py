"""The RPSL reader over the real RIPE TEST dump and over the messy corners of real dumps."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from pathlib import Path

import pytest

from cwn.publicdata import rpsl
from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.rpsl import RpslObject, RpslStats, iter_objects

SAMPLE = "attribution/rpsl/ripe_TEST.db"

# Dummified like the public split dumps, plus every oddity the reader must survive.
MESSY = (
    b"# header of a dummified dump\r\n"
    b"% generated 2024-05-06\r\n"
    b"\r\n"
    b"INETNUM:        192.0.2.0 - 192.0.2.255\r\n"
    b"NetName:        EXAMPLE-NET\r\n"
    b"descr:          first line\r\n"
    b"                second line   # comment after continuation\r\n"
    b"+\r\n"
    b"+               after an empty line\r\n"
    b"country:        NL # the Netherlands\r\n"
    b"this line is garbage\r\n"
    b"# a comment inside the object\r\n"
    b"address:        ***\r\n"
    b"phone:          +31 ...\r\n"
    b"e-mail:         ***@ripe.net\r\n"
    b"mnt-by:         MNT-A\r\n"
    b"mnt-by:         MNT-B\r\n"
    b"source:         RIPE # Filtered\r\n"
    b"   \r\n"
    b"role:           Caf\xe9 Abuse Team\n"
    b"nic-hdl:        CAT1-RIPE\n"
    b"abuse-mailbox:  abuse@caf\xe9.example\n"
    b"\n\n\n"
    b"organisation:   ORG-U1-RIPE\n"
    b"org-name:       Gr\xc3\xbcn GmbH\n"
    b"\n"
    b"   orphan continuation before any attribute\n"
    b"aut-num:        AS64500\n"
    b"as-name:        EXAMPLE-AS # named\n"
    b"+\n"
    b"\tsecond # part\n"
    b"+               third\n"
)


def _parse(data: bytes, classes: set[str] | None = None,
           ) -> tuple[list[RpslObject], RpslStats]:
    st = RpslStats()
    objs = list(iter_objects(io.BytesIO(data), classes=classes, stats=st))
    return objs, st


def test_sample_counts_per_class(shared_data: Path) -> None:
    st = RpslStats()
    objs = list(iter_objects(shared_data / SAMPLE, stats=st))
    counts = Counter(o.cls for o in objs)
    assert counts == {"mntner": 40, "person": 37, "inetnum": 36, "aut-num": 34,
                      "organisation": 33, "inet6num": 32, "domain": 3, "role": 1,
                      "as-block": 1, "route": 1, "as-set": 1, "key-cert": 1}
    assert st.objects == st.seen == 220
    assert st.skipped_lines == 0
    assert st.bytes_read == (shared_data / SAMPLE).stat().st_size
    assert st.header[1].startswith("### Objects inherited from legacy")


@pytest.mark.parametrize(("cls", "key", "name", "expected"), [
    # comment after the value is dropped
    ("inetnum", "0.0.0.0 - 255.255.255.255", "country", ["EU"]),
    ("inetnum", "10.0.0.0 - 10.255.255.255", "org", ["ORG-TT1-TEST"]),
    ("inetnum", "10.0.0.0 - 10.255.255.255", "descr",
     ["Class A address space for private internets",
      "See http://www.ripe.net/db/rfc1918.html for details"]),
    # continuation lines indented with tabs and spaces
    ("person", "John Smith", "address", ["Example LTD High street 12 St.Mery Mead Essex, UK"]),
    ("role", "TEST ROLE", "abuse-mailbox", ["bitbucket@ripe.net"]),
    ("organisation", "ORG-TS1-TEST", "abuse-c", ["AA2-TEST"]),
    ("inet6num", "2001:db8:60::/48", "org", ["ORG-TS1-TEST"]),
    ("aut-num", "AS101111", "as-name", ["Test-AS-2"]),
    ("domain", "in-addr.arpa", "nserver", ["ns.ripe.net"]),
])
def test_sample_attribute_values(shared_data: Path, cls: str, key: str, name: str,
                                 expected: list[str]) -> None:
    objs = {(o.cls, o.key): o for o in iter_objects(shared_data / SAMPLE)}
    obj = objs[(cls, key)]
    assert obj.all(name) == expected
    assert obj.first(name) == expected[0]
    assert obj.firsts()[name] == expected[0]
    assert obj.first("no-such-attribute") is None


def test_class_filter_skips_other_objects(shared_data: Path) -> None:
    st = RpslStats()
    objs = list(iter_objects(shared_data / SAMPLE, classes={"Role", "organisation"}, stats=st))
    assert Counter(o.cls for o in objs) == {"organisation": 33, "role": 1}
    assert st.objects == 34 and st.seen == 220


def test_messy_input() -> None:
    objs, st = _parse(MESSY)
    assert [(o.cls, o.key) for o in objs] == [
        ("inetnum", "192.0.2.0 - 192.0.2.255"),
        ("role", "Café Abuse Team"),  # latin-1 object
        ("organisation", "ORG-U1-RIPE"),
        ("aut-num", "AS64500"),
    ]
    net = objs[0]
    assert net.first("netname") == "EXAMPLE-NET"  # names are case-insensitive
    assert net.first("descr") == "first line second line after an empty line"
    assert net.first("country") == "NL"
    assert net.all("mnt-by") == ["MNT-A", "MNT-B"]
    assert net.first("e-mail") == "***@ripe.net"
    assert net.first("source") == "RIPE"
    assert objs[1].first("abuse-mailbox") == "abuse@café.example"
    assert objs[2].first("org-name") == "Grün GmbH"  # UTF-8 object
    assert objs[3].first("as-name") == "EXAMPLE-AS second third"
    assert st.skipped_lines == 2  # the garbage line and the orphan continuation
    assert st.header == ["# header of a dummified dump", "% generated 2024-05-06"]


def test_garbage_before_the_class_line() -> None:
    data = (b"   orphan continuation\nnot an attribute\n# comment\n"
            b"aut-num: AS1\nas-name: ONE\n\n"
            b"a line without colon and longer than sixty-four characters ........\n"
            b"aut-num: AS2\n\njust garbage\n\n")
    for classes in (None, {"aut-num"}):
        objs, st = _parse(data, classes=classes)
        assert [(o.key, o.first("as-name")) for o in objs] == [("AS1", "ONE"), ("AS2", None)]
        assert st.skipped_lines == 4


@pytest.mark.parametrize("block", [1, 5, 1 << 20])
def test_lines_of_blanks_separate_objects(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(rpsl, "BLOCK_SIZE", block)
    data = b"".join(b"aut-num: AS%d\nas-name: N%d\n \t \n" % (i, i) for i in range(50))
    objs, st = _parse(data)
    assert [(o.key, o.attributes[1:]) for o in objs] == [
        (f"AS{i}", [("as-name", f"N{i}")]) for i in range(50)]
    assert st.skipped_lines == 0


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_block_boundaries_do_not_matter(monkeypatch: pytest.MonkeyPatch,
                                        shared_data: Path, block: int) -> None:
    data = MESSY + b"\n\n" + (shared_data / SAMPLE).read_bytes()
    expected, st_expected = _parse(data)
    monkeypatch.setattr(rpsl, "BLOCK_SIZE", block)
    got, st = _parse(data)
    assert got == expected
    assert (st.seen, st.skipped_lines) == (st_expected.seen, st_expected.skipped_lines)
    assert len(got) == 224


def test_gzip_by_magic_bytes(tmp_path: Path, shared_data: Path) -> None:
    plain = (shared_data / SAMPLE).read_bytes()
    gz = tmp_path / "ripe.db"  # no .gz suffix: detected from the content
    gz.write_bytes(gzip.compress(plain))
    seen: list[int] = []
    st = RpslStats()
    objs = list(iter_objects(gz, stats=st, progress=seen.append))
    assert objs == list(iter_objects(shared_data / SAMPLE))
    assert seen and seen[-1] == gz.stat().st_size == st.bytes_read
    assert seen == sorted(seen)


@pytest.mark.parametrize(("content", "message"), [
    (gzip.compress(b"inetnum: 192.0.2.0 - 192.0.2.255\n" * 20000, mtime=0)[:300], "unreadable"),
    (b"\x1f\x8b" + b"\x00" * 40, "unreadable"),
])
def test_broken_gzip_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "ripe.db.inetnum.gz"
    path.write_bytes(content)
    with pytest.raises(PublicDataError, match=message):
        list(iter_objects(path))


def test_file_without_object_boundaries_is_one_clear_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(rpsl, "BLOCK_SIZE", 1000)
    monkeypatch.setattr(rpsl, "MAX_OBJECT", 5000)
    path = tmp_path / "big.bin"
    path.write_bytes(b"inetnum: x\n" * 2000)
    with pytest.raises(PublicDataError, match="no object boundary"):
        list(iter_objects(path))


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PublicDataError, match="cannot open"):
        list(iter_objects(tmp_path / "nope.gz"))


@pytest.mark.parametrize("data", [b"", b"\n\n\n", b"% only comments\n# here\n",
                                  b"\x00\x01\x02 binary junk \xff\xfe"])
def test_nothing_usable_yields_nothing(data: bytes) -> None:
    objs, _ = _parse(data)
    assert objs == []
