"""RIPE dump import: holder and abuse mailbox per block and AS, in RIPE's lookup order."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.ripe import ASN_COLUMNS, IP_COLUMNS, RipeData, import_ripe
from cwn.publicdata.store import PublicDataStore

SAMPLE = "attribution/rpsl/ripe_TEST.db"

# A small split dump set covering what the TEST sample lacks: block-level abuse-c, parent
# fallback over one and two levels, a dangling abuse-c, dummified personal data and the
# usual noise (CRLF, latin-1, continuation and '+' lines, comments, a garbage line).
SPLIT = {
    "ripe.db.inetnum": (
        b"#\r\n# The contents of this file are subject to\r\n"
        b"# RIPE Database Terms and Conditions\r\n"
        b"% serial 123 generated 2024-05-06\r\n\r\n"
        b"inetnum:        193.0.0.0 - 193.0.7.255\r\n"
        b"netname:        NL-LIR1-20240101\r\n"
        b"country:        NL # the Netherlands\r\n"
        b"org:            ORG-LIR1-RIPE\r\n"
        b"status:         ALLOCATED PA\r\n"
        b"mnt-by:         RIPE-NCC-HM-MNT\r\n"
        b"mnt-by:         LIR1-MNT\r\n"
        b"source:         RIPE # Filtered\r\n\r\n"
        b"inetnum:        193.0.1.0 - 193.0.1.255\r\n"
        b"netname:        CUSTOMER-NET\r\n"
        b"descr:          Customer\r\n"
        b"                of LIR1\r\n"
        b"abuse-c:        cust-abuse\r\n"  # handles are case-insensitive
        b"status:         ASSIGNED PA\r\n"
        b"mnt-by:         LIR1-MNT\r\n\r\n"
        b"inetnum:        193.0.1.8 - 193.0.1.15\r\n"
        b"netname:        SUBNET\r\n"
        b"this line is garbage\r\n"
        b"status:         ASSIGNED PA\r\n\r\n"
        b"inetnum:        193.0.2.0 - 193.0.2.255\r\n"
        b"netname:        NO-CONTACT\r\n"
        b"status:         ASSIGNED PA\r\n\r\n"
        b"inetnum:        193.0.2.128 - 193.0.2.191\r\n"
        b"netname:        DEEPER\r\n"
        b"status:         ASSIGNED PA\r\n\r\n"
        b"inetnum:        193.0.3.0 - 193.0.3.255\r\n"
        b"netname:        DANGLING\r\n"
        b"abuse-c:        NOSUCH-RIPE\r\n"
        b"org:            ORG-LIR1-RIPE\r\n\r\n"
        b"inetnum:        193.0.4.0 - 193.0.4.255\r\n"
        b"netname:        END-USER\r\n"
        b"org:            org-end1-ripe\r\n"
        b"status:         ASSIGNED PI\r\n\r\n"
        b"inetnum:        194.0.0.0 - 194.0.0.255\r\n"
        b"netname:        ORPHAN\r\n"
        b"abuse-c:\r\n\r\n"
        b"inetnum:        not an address - 1.2.3\r\n"
        b"netname:        BROKEN\r\n\r\n"
        b"inetnum:        193.0.1.0 - 193.0.1.255\r\n"
        b"netname:        DUPLICATE\r\n\r\n"
    ),
    "ripe.db.inet6num": (
        b"inet6num:       2001:db8::/32\n"
        b"netname:        NL-LIR1-V6\n"
        b"org:            ORG-LIR1-RIPE\n\n"
        b"inet6num:       2001:db8:1::/48\n"
        b"netname:        CUSTOMER-V6\n"
        b"abuse-c:        CUST-ABUSE\n\n"
        b"inet6num:       2001:db8:1:1::/64\n"
        b"netname:        CUSTOMER-V6-SUB\n\n"
        b"inet6num:       2001:db8:2::/48\n"
        b"netname:        NO-CONTACT-V6\n\n"
    ),
    "ripe.db.organisation": (
        b"organisation:   ORG-LIR1-RIPE\n"
        b"org-name:       Example LIR B.V.\n"
        b"org-type:       LIR\n"
        b"address:        ***\n"
        b"phone:          +31 ...\n"
        b"e-mail:         ***@ripe.net\n"
        b"abuse-c:        LIR1-ABUSE\n"
        b"source:         RIPE # Filtered\n\n"
        b"organisation:   ORG-END1-RIPE\n"
        b"org-name:       Caf\xe9 Eindgebruiker\n"  # latin-1
        b"abuse-c:        END1-ABUSE\n\n"
    ),
    "ripe.db.role": (
        b"role:           LIR1 Abuse\n"
        b"address:        ***\n"
        b"+\n"
        b"                ***\n"
        b"nic-hdl:        LIR1-ABUSE\n"
        b"abuse-mailbox:  abuse@lir1.example # monitored\n\n"
        b"role:           Customer Abuse\n"
        b"# a comment line\n"
        b"nic-hdl:        CUST-ABUSE\n"
        b"abuse-mailbox:  abuse@customer.example\n\n"
        b"role:           Role without a handle\n"
        b"abuse-mailbox:  never-used@example.net\n\n"
        b"role:           Role with an empty handle\n"
        b"nic-hdl:\n"
        b"abuse-mailbox:  never-used@example.net\n\n"
        b"role:           Gr\xc3\xbcn Abuse\n"
        b"nic-hdl:        END1-ABUSE\n"
        b"abuse-mailbox:  abuse@end1.example\n\n"
    ),
    "ripe.db.aut-num": (
        b"aut-num:        AS64500\n"
        b"as-name:        CUSTOMER-AS\n"
        b"abuse-c:        CUST-ABUSE\n"
        b"org:            ORG-LIR1-RIPE\n\n"
        b"aut-num:        as64501\n"
        b"as-name:        LIR1-AS\n"
        b"org:            ORG-LIR1-RIPE\n"
        b"mnt-by:         LIR1-MNT\n\n"
        b"aut-num:        AS64502\n"
        b"as-name:        SILENT-AS\n\n"
        b"aut-num:        ASX\n"
        b"as-name:        BROKEN-AS\n\n"
    ),
}

LIR = "abuse@lir1.example"
CUST = "abuse@customer.example"

SPLIT_IPS = [
    # ip, block, netname, org_id, org_name, abuse_mailbox, abuse_source
    ("193.0.0.1", "193.0.0.0 - 193.0.7.255", "NL-LIR1-20240101", "ORG-LIR1-RIPE",
     "Example LIR B.V.", LIR, "org"),
    ("193.0.1.1", "193.0.1.0 - 193.0.1.255", "CUSTOMER-NET", None, None, CUST, "block"),
    ("193.0.1.9", "193.0.1.8 - 193.0.1.15", "SUBNET", None, None, CUST, "parent"),
    ("193.0.2.1", "193.0.2.0 - 193.0.2.255", "NO-CONTACT", None, None, LIR, "parent"),
    ("193.0.2.130", "193.0.2.128 - 193.0.2.191", "DEEPER", None, None, LIR, "parent"),
    ("193.0.3.3", "193.0.3.0 - 193.0.3.255", "DANGLING", "ORG-LIR1-RIPE", "Example LIR B.V.",
     LIR, "org"),
    ("193.0.4.4", "193.0.4.0 - 193.0.4.255", "END-USER", "org-end1-ripe", "Café Eindgebruiker",
     "abuse@end1.example", "org"),
    ("193.0.7.255", "193.0.0.0 - 193.0.7.255", "NL-LIR1-20240101", "ORG-LIR1-RIPE",
     "Example LIR B.V.", LIR, "org"),
    ("194.0.0.9", "194.0.0.0 - 194.0.0.255", "ORPHAN", None, None, None, None),
    ("2001:db8:ffff::1", "2001:db8::/32", "NL-LIR1-V6", "ORG-LIR1-RIPE", "Example LIR B.V.",
     LIR, "org"),
    ("2001:db8:1::1", "2001:db8:1::/48", "CUSTOMER-V6", None, None, CUST, "block"),
    ("2001:db8:1:1::5", "2001:db8:1:1::/64", "CUSTOMER-V6-SUB", None, None, CUST, "parent"),
    ("2001:db8:2::2", "2001:db8:2::/48", "NO-CONTACT-V6", None, None, LIR, "parent"),
    ("192.0.2.1", None, None, None, None, None, None),
    ("2001:db9::1", None, None, None, None, None, None),
    ("not an ip", None, None, None, None, None, None),
    (None, None, None, None, None, None, None),
]


def _write_split(folder: Path, *, gz: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, body in SPLIT.items():
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(body) if gz else body)
        paths.append(path)
    return paths


def _tables(store: PublicDataStore) -> tuple[pa.Table, pa.Table]:
    data = RipeData.load(store)
    assert data is not None
    return data.blocks.replace_schema_metadata(None), data.autnums


def _lookup(data: RipeData, ips: list[str | None]) -> list[dict[str, Any]]:
    out = data.lookup_ips(pa.array(ips, pa.string()))
    assert out.column_names == IP_COLUMNS
    rows: list[dict[str, Any]] = out.to_pylist()
    return rows


@pytest.fixture
def split_data(tmp_path: Path) -> RipeData:
    store = PublicDataStore(tmp_path / "store")
    import_ripe(_write_split(tmp_path / "dump"), store)
    data = RipeData.load(store)
    assert data is not None
    return data


@pytest.mark.parametrize(("ip", "block", "netname", "org_id", "org_name", "mailbox", "source"),
                         SPLIT_IPS)
def test_split_dump_lookup_order(split_data: RipeData, ip: str | None, block: str | None,
                                 netname: str | None, org_id: str | None,
                                 org_name: str | None, mailbox: str | None,
                                 source: str | None) -> None:
    [row] = _lookup(split_data, [ip])
    assert (row["block"], row["netname"], row["org_id"], row["org_name"],
            row["abuse_mailbox"], row["abuse_source"]) == (
        block, netname, org_id, org_name, mailbox, source)


def test_lookup_in_bulk_keeps_input_order(split_data: RipeData) -> None:
    ips = [r[0] for r in SPLIT_IPS] * 3
    rows = _lookup(split_data, ips)
    assert [r["block"] for r in rows] == [r[1] for r in SPLIT_IPS] * 3
    chunked = split_data.lookup_ips(pa.chunked_array([pa.array(ips[:5]), pa.array(ips[5:])]))
    assert chunked.to_pylist() == rows


@pytest.mark.parametrize(("asn", "expected"), [
    (64500, (64500, "CUSTOMER-AS", "ORG-LIR1-RIPE", "Example LIR B.V.", CUST)),
    ("AS64501", (64501, "LIR1-AS", "ORG-LIR1-RIPE", "Example LIR B.V.", LIR)),
    ("as64501", (64501, "LIR1-AS", "ORG-LIR1-RIPE", "Example LIR B.V.", LIR)),
    ("64502", (64502, "SILENT-AS", None, None, None)),
    (64503, (None,) * 5),
    ("ASX", (None,) * 5),
    (None, (None,) * 5),
])
def test_split_dump_asn(split_data: RipeData, asn: object, expected: tuple[Any, ...]) -> None:
    values = pa.array([asn], pa.string() if isinstance(asn, str) else pa.int64())
    [row] = split_data.lookup_asns(values).to_pylist()
    assert tuple(row[c] for c in ASN_COLUMNS) == expected


def test_asn_lookup_accepts_numpy_and_lists(split_data: RipeData) -> None:
    got = split_data.lookup_asns(np.array([64502, 1, 64500]))
    assert got.column("as_name").to_pylist() == ["SILENT-AS", None, "CUSTOMER-AS"]
    assert split_data.lookup_asns([64501, None]).column("asn").to_pylist() == [64501, None]


def test_summary_counts_and_skips(tmp_path: Path) -> None:
    store = PublicDataStore(tmp_path / "store")
    seen: list[int] = []
    paths = _write_split(tmp_path / "dump")
    summary = import_ripe(paths, store, progress=seen.append)
    assert summary.kind == "ripe" and summary.part == "default"
    assert summary.counts["inetnum"] == 10 and summary.counts["inet6num"] == 4
    assert summary.counts["aut-num"] == 4
    assert (summary.counts["organisation"], summary.counts["role"]) == (2, 5)
    assert summary.counts["blocks"] == 12 and summary.counts["autnums"] == 3
    assert (summary.counts["abuse_block"], summary.counts["abuse_org"],
            summary.counts["abuse_parent"], summary.counts["abuse_none"]) == (2, 4, 5, 1)
    # garbage line + unreadable range + duplicate block + unreadable AS number
    assert summary.skipped == 4
    assert any("unreadable range" in n for n in summary.notes)
    assert any("duplicate" in n for n in summary.notes)
    assert summary.rows == 15
    assert summary.source_date == "2024-05-06"  # the oldest date: the header of inetnum
    assert seen == sorted(seen) and seen[-1] == sum(p.stat().st_size for p in paths)
    meta = store.meta("ripe")
    assert meta is not None and meta["counts"]["blocks"] == 12


def test_source_date_falls_back_to_file_mtime(tmp_path: Path) -> None:
    path = tmp_path / "ripe.db.role"
    path.write_bytes(SPLIT["ripe.db.aut-num"])
    stamp = datetime(2023, 2, 3, 12, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    summary = import_ripe([path], PublicDataStore(tmp_path / "store"))
    assert summary.source_date == "2023-02-03"


@pytest.mark.parametrize("order", [
    [0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [3, 0, 4, 2, 1], [2, 4, 1, 0, 3],
])
def test_split_files_in_any_order(tmp_path: Path, order: list[int]) -> None:
    paths = _write_split(tmp_path / "dump")
    reference = PublicDataStore(tmp_path / "ref")
    import_ripe(paths, reference)
    store = PublicDataStore(tmp_path / "store")
    import_ripe([paths[i] for i in order], store)
    assert _tables(store) == _tables(reference)


def test_combined_and_gzip_dumps_give_the_same_tables(tmp_path: Path) -> None:
    reference = PublicDataStore(tmp_path / "ref")
    import_ripe(_write_split(tmp_path / "dump"), reference)
    combined = tmp_path / "ripe.db.gz"
    combined.write_bytes(gzip.compress(b"\n".join(reversed(list(SPLIT.values())))))
    one = PublicDataStore(tmp_path / "one")
    import_ripe([combined], one)
    gz = PublicDataStore(tmp_path / "gz")
    import_ripe(_write_split(tmp_path / "gzdump", gz=True), gz)
    assert _tables(one) == _tables(reference)
    assert _tables(gz) == _tables(reference)


SAMPLE_IPS = [
    ("172.16.60.7", "172.16.60.0 - 172.16.60.255", "NL-RIPENCC-TS1-20120101", "EU",
     "ORG-TS1-TEST", "RIPE NCC Training Services", "bitbucket@ripe.net", "org",
     "ALLOCATED PA"),
    ("2001:db8:60::1", "2001:db8:60::/48", "NL-RIPENCC-TS1-20120101", "EU", "ORG-TS1-TEST",
     "RIPE NCC Training Services", "bitbucket@ripe.net", "org", "ALLOCATED-BY-RIR"),
    ("172.16.1.9", "172.16.1.0 - 172.16.1.255", "NL-RIPENCC-TCA1-20120101", "EU",
     "ORG-TCA1-TEST", "RIPE NCC Training Services Attendee 1 Organisation", None, None,
     "ALLOCATED PA"),
    ("10.11.11.3", "10.11.11.0 - 10.11.11.255", "Example-Network", "GB", None, None, None,
     None, "ASSIGNED PA"),
    ("10.200.0.1", "10.0.0.0 - 10.255.255.255", "IANA-ABLK-RESERVED1", "EU", "ORG-TT1-TEST",
     "ORG TEST", None, None, "ALLOCATED UNSPECIFIED"),
    ("85.118.190.1", "85.118.184.0 - 85.118.191.255", "NL-RIPENCC-TS", "NL", "ORG-TT1-TEST",
     "ORG TEST", None, None, "ALLOCATED PA"),
    ("8.8.8.8", "0.0.0.0 - 255.255.255.255", "IANA-BLK", "EU", "ORG-TT1-TEST", "ORG TEST",
     None, None, "ALLOCATED UNSPECIFIED"),
    ("2a00::1", "0::/0", "ROOT", "EU", "ORG-TT1-TEST", "ORG TEST", None, None,
     "ALLOCATED-BY-RIR"),
]


@pytest.fixture(scope="module")
def sample_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RipeData:
    store = PublicDataStore(tmp_path_factory.mktemp("sample"))
    import_ripe([shared_data / SAMPLE], store)
    data = RipeData.load(store)
    assert data is not None
    return data


@pytest.mark.parametrize("row", SAMPLE_IPS, ids=[r[0] for r in SAMPLE_IPS])
def test_real_sample_blocks(sample_data: RipeData, row: tuple[Any, ...]) -> None:
    [got] = _lookup(sample_data, [row[0]])
    assert tuple(got[c] for c in IP_COLUMNS) == (row[1], row[2], row[3], row[4], row[5],
                                                 row[6], row[7], row[8])


@pytest.mark.parametrize(("asn", "expected"), [
    (101, (101, "Transit-AS", "ORG-TS1-TEST", "RIPE NCC Training Services",
           "bitbucket@ripe.net")),
    (601, (601, "Peer-AS", "ORG-TS1-TEST", "RIPE NCC Training Services",
           "bitbucket@ripe.net")),
    (1, (1, "Attendee1-Asnumber", "ORG-TCA1-TEST",
         "RIPE NCC Training Services Attendee 1 Organisation", None)),
    (101111, (101111, "Test-AS-2", "ORG-TT1-TEST", "ORG TEST", None)),
    (64496, (None,) * 5),
])
def test_real_sample_autnums(sample_data: RipeData, asn: int,
                             expected: tuple[Any, ...]) -> None:
    [row] = sample_data.lookup_asns(pa.array([asn])).to_pylist()
    assert tuple(row[c] for c in ASN_COLUMNS) == expected


def test_real_sample_counts(shared_data: Path, tmp_path: Path) -> None:
    summary = import_ripe([shared_data / SAMPLE], PublicDataStore(tmp_path))
    assert {k: summary.counts[k] for k in ("inetnum", "inet6num", "aut-num", "organisation",
                                           "role", "blocks", "autnums", "abuse_org",
                                           "abuse_none")} == {
        "inetnum": 36, "inet6num": 32, "aut-num": 34, "organisation": 33, "role": 1,
        "blocks": 68, "autnums": 34, "abuse_org": 2, "abuse_none": 66}
    assert summary.skipped == 0
    mnt = RipeData.load(PublicDataStore(tmp_path))
    assert mnt is not None
    by_block = dict(zip(mnt.blocks.column("block").to_pylist(),
                        mnt.blocks.column("mnt_by").to_pylist(), strict=True))
    assert by_block["172.16.1.0 - 172.16.1.255"] == ["TEST-DBM-MNT"]


def test_reimport_replaces(tmp_path: Path, shared_data: Path) -> None:
    store = PublicDataStore(tmp_path / "store")
    import_ripe(_write_split(tmp_path / "dump"), store)
    import_ripe([shared_data / SAMPLE], store)
    data = RipeData.load(store)
    assert data is not None
    [row] = _lookup(data, ["193.0.1.1"])
    assert row["block"] == "0.0.0.0 - 255.255.255.255"  # the split dump's blocks are gone
    assert data.lookup_asns([64500]).column("asn").to_pylist() == [None]
    assert len(list(store.folder("ripe").glob("intervals-*.npz"))) == 1
    assert not list(store.folder("ripe").glob(".*"))


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
def test_missing_or_damaged_index_is_rebuilt(tmp_path: Path, damage: str) -> None:
    store = PublicDataStore(tmp_path / "store")
    import_ripe(_write_split(tmp_path / "dump"), store)
    [npz] = store.folder("ripe").glob("intervals-*.npz")
    if damage == "delete":
        npz.unlink()
    elif damage == "garbage":
        npz.write_bytes(b"not an npz")
    else:
        npz.write_bytes(npz.read_bytes()[:200])
    data = RipeData.load(store)
    assert data is not None
    rows = _lookup(data, [r[0] for r in SPLIT_IPS])
    assert [(r["block"], r["abuse_mailbox"]) for r in rows] == [(r[1], r[5]) for r in SPLIT_IPS]


def test_nothing_imported_loads_none(tmp_path: Path) -> None:
    assert RipeData.load(PublicDataStore(tmp_path)) is None


@pytest.mark.parametrize("body", [
    b"", b"% just a header\n", b"person: Someone\nnic-hdl: SO1-RIPE\n\n",
    gzip.compress(b"\x00\xff" * 100, mtime=0),
])
def test_no_usable_objects_is_one_clear_error(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "ripe.db"
    path.write_bytes(body)
    store = PublicDataStore(tmp_path / "store")
    with pytest.raises(PublicDataError, match="no inetnum, inet6num or aut-num"):
        import_ripe([path], store)
    assert not store.has("ripe")


def test_parent_walk_over_a_deep_chain(tmp_path: Path) -> None:
    """25 nested blocks 10.0.0.0/8 ... /32; only some carry an abuse-c. Every block must get
    the mailbox of the nearest one at or above it, however far up that is."""
    with_contact = {3, 4, 11, 20}
    objs = [b"role: R\nnic-hdl: R%d-RIPE\nabuse-mailbox: level%d@example.net\n" % (k, k)
            for k in with_contact]
    for k in range(25):
        size = 1 << (24 - k)
        last = f"10.{(size - 1) >> 16 & 255}.{(size - 1) >> 8 & 255}.{(size - 1) & 255}"
        obj = f"inetnum: 10.0.0.0 - {last}\nnetname: LEVEL{k}\n"
        if k in with_contact:
            obj += f"abuse-c: R{k}-RIPE\n"
        objs.append(obj.encode())
    path = tmp_path / "ripe.db"
    path.write_bytes(b"\n".join(reversed(objs)))  # children before parents
    store = PublicDataStore(tmp_path / "store")
    import_ripe([path], store)
    data = RipeData.load(store)
    assert data is not None
    got = dict(zip(data.blocks.column("netname").to_pylist(),
                   zip(data.blocks.column("abuse_mailbox").to_pylist(),
                       data.blocks.column("abuse_source").to_pylist(), strict=True),
                   strict=True))
    for k in range(25):
        above = [j for j in with_contact if j <= k]
        want = (f"level{max(above)}@example.net", "block" if k in with_contact else "parent") \
            if above else (None, None)
        assert got[f"LEVEL{k}"] == want, k
    [row] = _lookup(data, ["10.0.0.0"])
    assert (row["netname"], row["abuse_mailbox"]) == ("LEVEL24", "level20@example.net")
