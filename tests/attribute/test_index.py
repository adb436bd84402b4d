"""The attribution index: most specific match wins, verified assets only, columnar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cwn.attribute.index import AssetIndex
from cwn.attribute.ipcodec import parse_ips
from cwn.events.batch import conform
from cwn.registry.netaddr import parse_cidr


def index_of(*assets: tuple[str, str, str | int]) -> AssetIndex:
    cols: dict[str, list[Any]] = {k: [] for k in
                                  ("org", "type", "value", "ver", "hi", "lo", "plen", "asn")}
    for org, type_, value in assets:
        cols["org"].append(org)
        cols["type"].append(type_)
        ver = hi = lo = plen = asn = None
        if type_ == "cidr":
            n = parse_cidr(str(value))
            ver, hi, lo, plen, text = n.ip_version, n.ip_hi, n.ip_lo, n.prefixlen, n.text
        elif type_ == "asn":
            asn, text = int(value), f"AS{value}"
        else:
            text = str(value)
        cols["value"].append(text)
        for k, v in (("ver", ver), ("hi", hi), ("lo", lo), ("plen", plen), ("asn", asn)):
            cols[k].append(v)
    return AssetIndex.build(
        pa.array(cols["org"], pa.string()), pa.array(cols["type"], pa.string()),
        pa.array(cols["value"], pa.string()), pa.array(cols["ver"], pa.int8()),
        pa.array(cols["hi"], pa.int64()), pa.array(cols["lo"], pa.int64()),
        pa.array(cols["plen"], pa.int16()), pa.array(cols["asn"], pa.int64()))


def events(**cols: list[Any]) -> pa.Table:
    n = max(len(v) for v in cols.values())
    types = {"source.asn": pa.int64()}
    return conform(pa.table({k: pa.array(v + [None] * (n - len(v)), types.get(k, pa.string()))
                             for k, v in cols.items()}))


def owners(index: AssetIndex, table: pa.Table) -> list[tuple[str | None, ...]]:
    out = index.attribute(table)
    return list(zip(out.column("organization").to_pylist(),
                    out.column("matched_asset").to_pylist(),
                    out.column("match_kind").to_pylist(), strict=True))


def test_the_longest_prefix_wins_over_a_shorter_one() -> None:
    idx = index_of(("isp", "cidr", "192.0.0.0/16"), ("cust", "cidr", "192.0.2.0/24"),
                   ("host", "cidr", "192.0.2.7/32"))
    got = owners(idx, events(**{"source.ip": ["192.0.2.7", "192.0.2.8", "192.0.9.1",
                                              "192.1.0.1"]}))
    assert got == [("host", "192.0.2.7/32", "ip"), ("cust", "192.0.2.0/24", "ip"),
                   ("isp", "192.0.0.0/16", "ip"), (None, None, None)]


def test_an_ipv6_48_inside_a_32_of_another_org() -> None:
    idx = index_of(("isp", "cidr", "2001:db8::/32"), ("cust", "cidr", "2001:db8:aa::/48"),
                   ("lab", "cidr", "2001:db8:aa:1:8000::/65"))
    got = owners(idx, events(**{"source.ip": [
        "2001:db8:aa::1", "2001:db8:bb::1", "2001:db8:aa:1:8000::5", "2001:db8:aa:1::5",
        "2001:db9::1"]}))
    assert [g[0] for g in got] == ["cust", "isp", "lab", "cust", None]
    assert got[0][1:] == ("2001:db8:aa::/48", "ip")


def test_ipv4_and_ipv6_do_not_mix() -> None:
    idx = index_of(("v4", "cidr", "0.0.0.0/0"))
    assert [g[0] for g in owners(idx, events(**{"source.ip": ["::1", "8.8.8.8"]}))] == \
        [None, "v4"]


def test_a_domain_covers_its_subdomains_but_not_look_alikes() -> None:
    idx = index_of(("acme", "domain", "acme.nl"), ("shop", "domain", "shop.acme.nl"))
    got = owners(idx, events(**{"source.fqdn": [
        "acme.nl", "www.acme.nl", "a.b.shop.acme.nl", "notacme.nl", "acme.nl.evil.com",
        "WWW.ACME.NL.", "nl", ""]}))
    assert got == [("acme", "acme.nl", "domain"), ("acme", "acme.nl", "domain"),
                   ("shop", "shop.acme.nl", "domain"), (None, None, None),
                   (None, None, None), ("acme", "acme.nl", "domain"), (None, None, None),
                   (None, None, None)]


def test_the_url_host_is_used_when_the_fqdn_does_not_match() -> None:
    idx = index_of(("acme", "domain", "acme.nl"))
    got = owners(idx, events(**{
        "source.fqdn": [None, "other.example", None],
        "source.url": ["https://user:pw@www.Acme.nl:8443/login?x=1", "http://acme.nl/",
                       "http://192.0.2.1/acme.nl"]}))
    assert [g[0] for g in got] == ["acme", "acme", None]


def test_ip_beats_domain_beats_asn() -> None:
    idx = index_of(("by-ip", "cidr", "192.0.2.0/24"), ("by-domain", "domain", "acme.nl"),
                   ("by-asn", "asn", 64500))
    got = owners(idx, events(**{
        "source.ip": ["192.0.2.1", "198.51.100.1", None, None],
        "source.fqdn": ["www.acme.nl", "www.acme.nl", None, "acme.com"],
        "source.asn": [64500, 64500, 64500, 64501]}))
    assert got == [("by-ip", "192.0.2.0/24", "ip"), ("by-domain", "acme.nl", "domain"),
                   ("by-asn", "AS64500", "asn"), (None, None, None)]


def test_identical_assets_of_two_orgs_go_to_the_lowest_id_and_are_counted() -> None:
    idx = index_of(("zulu", "cidr", "192.0.2.0/24"), ("alpha", "cidr", "192.0.2.0/24"),
                   ("zulu", "asn", 1), ("beta", "asn", 1), ("b", "domain", "x.nl"),
                   ("a", "domain", "x.nl"))
    assert idx.conflicts == 3 and idx.size == 3
    got = owners(idx, events(**{"source.ip": ["192.0.2.1", None, None],
                                "source.asn": [None, 1, None],
                                "source.fqdn": [None, None, "x.nl"]}))
    assert [g[0] for g in got] == ["alpha", "beta", "a"]


def test_garbage_and_nulls_are_unmatched_not_errors() -> None:
    idx = index_of(("a", "cidr", "0.0.0.0/0"), ("b", "cidr", "::/0"))
    got = owners(idx, events(**{"source.ip": ["999.1.1.1", "1.2.3", "x", "::g", None,
                                              "10.0.0.1", "::1"]}))
    assert [g[0] for g in got] == [None, None, None, None, None, "a", "b"]


def test_empty_index_and_empty_events() -> None:
    empty = AssetIndex.build(*(pa.array([], pa.string()) for _ in range(3)),
                             *(pa.array([], pa.int64()) for _ in range(5)))
    assert empty.size == 0
    assert owners(empty, events(**{"source.ip": ["192.0.2.1"]})) == [(None, None, None)]
    idx = index_of(("a", "asn", 1))
    assert idx.attribute(events(**{"source.ip": []})).num_rows == 0


def test_a_table_without_attribution_columns_gets_them() -> None:
    idx = index_of(("a", "asn", 7))
    out = idx.attribute(pa.table({"source.asn": pa.array([7], pa.int64())}))
    assert out.column_names == ["source.asn", "organization", "matched_asset", "match_kind"]


def test_save_and_load_give_the_same_answers(tmp_path: Path) -> None:
    idx = index_of(("a", "cidr", "192.0.2.0/24"), ("b", "cidr", "2001:db8::/32"),
                   ("c", "cidr", "2001:db8::1/128"), ("d", "domain", "acme.nl"),
                   ("e", "asn", 5))
    idx.version = 7
    idx.save(tmp_path / "v7")
    again = AssetIndex.load(tmp_path / "v7")
    ev = events(**{"source.ip": ["192.0.2.1", "2001:db8::2", "2001:db8::1", None, None],
                   "source.fqdn": [None, None, None, "x.acme.nl", None],
                   "source.asn": [None, None, None, None, 5]})
    assert owners(again, ev) == owners(idx, ev)
    assert [g[0] for g in owners(again, ev)] == ["a", "b", "c", "d", "e"]
    assert (again.version, again.size) == (7, idx.size)


@pytest.mark.parametrize(("text", "version"), [
    ("0.0.0.0", 4), ("255.255.255.255", 4), ("256.0.0.1", 0), ("::", 6),
    ("::ffff:192.0.2.1", 6), ("fe80::1%eth0", 0), ("", 0)])
def test_ip_codec(text: str, version: int) -> None:
    parsed = parse_ips(pa.array([text]))
    assert parsed.version[0] == version
    if text == "255.255.255.255":
        assert parsed.v4[0] == 0xFFFFFFFF
    if text == "::ffff:192.0.2.1":
        assert (parsed.hi[0], parsed.lo[0]) == (0, 0xFFFF_C000_0201)


def test_nested_ipv4_prefixes_of_every_size_resolve_to_the_most_specific() -> None:
    idx = index_of(("all", "cidr", "0.0.0.0/0"), ("eight", "cidr", "10.0.0.0/8"),
                   ("sixteen", "cidr", "10.1.0.0/16"), ("t24", "cidr", "10.1.2.0/24"),
                   ("t25", "cidr", "10.1.2.128/25"), ("t30", "cidr", "10.1.2.252/30"),
                   ("t9", "cidr", "10.128.0.0/9"))
    ips = ["10.1.2.1", "10.1.2.129", "10.1.2.254", "10.1.3.1", "10.2.0.1", "10.200.0.1",
           "11.0.0.1", "255.255.255.255", "10.1.2.251"]
    assert [g[0] for g in owners(idx, events(**{"source.ip": ips}))] == [
        "t24", "t25", "t30", "sixteen", "eight", "t9", "all", "all", "t25"]
