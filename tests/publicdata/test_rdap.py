"""RDAP lookups against recorded real answers served by a loopback HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from cwn.attribute.ipcodec import parse_ips
from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.rdap import (
    IpRangeIndex,
    RdapClient,
    RdapConfig,
    abuse_contacts,
    answer_from_json,
    ip_keys,
)
from publicdata_http import FakeClock, LoopbackServer, Reply, closed_port_url

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# ip, handle, holder name, country, abuse e-mails, abuse entity path
IP_CASES = [
    ("2a00:2381:ffff::1", "2a00:2381:ffff::/64", "BT-WORLD-IPVSIX-LAUNCH", "GB",
     ["zzdnsr@bt.com", "steve.a.marshall@bt.com", "lee.bailey-hague@bt.com"], "BTCR3-RIPE"),
    ("200.57.141.161", "200.57.141.161", "Triara.com, S.A. de C.V.", "MX",
     ["operacion.redes@TRIARA.COM"], "RYT2"),
    # abuse both on the network and nested in the registrant: the direct one is reported
    ("2001:4860:4860::8888", "NET6-2001-4860-1", "Google Inc.", None,
     ["arin-contact@google.com"], "ZG39-ARIN"),
    # the same address listed twice in the abuse entity is reported once
    ("210.107.73.73", "210.107.0.0 - 210.107.127.255", "BORANET-NET-210-107", "KR",
     ["hostmaster@nic.or.kr"], "IRT-KRNIC-KR"),
    # abuse only nested inside the registrant entity
    ("74.125.225.229", "NET-74-125-0-0-1", "Google Inc.", None,
     ["arin-contact@google.com"], "GOGL/ZG39-ARIN"),
    # no roles at all: no abuse contact, holder from the object's name
    ("196.11.240.215", "196.11.239.0 - 196.11.246.255", "ORG-VSA1-AFRINIC", "ZA", [], None),
]


def load(shared_data: Path, rel: str) -> Any:
    return json.loads((shared_data / "attribution" / rel).read_text(encoding="utf-8"))


def autnum_answer(shared_data: Path) -> dict[str, Any]:
    """An autnum object whose only abuse contact is the real ARIN entity (ipwhois
    entity.json) nested two levels deep, inside the registrant."""
    abuse = dict(load(shared_data, "ipwhois/entity.json"), roles=["abuse", "technical"])
    return {"objectClassName": "autnum", "handle": "AS15169", "name": "GOOGLE",
            "startAutnum": 15169, "endAutnum": 15169,
            "entities": [None, {"handle": "GOGL", "roles": ["registrant"],
                                "vcardArray": ["vcard", [["fn", {}, "text", "Google LLC"]]],
                                "entities": [{"handle": "ADMIN-1", "roles": ["administrative"],
                                              "entities": [abuse]}]}]}


@pytest.fixture
def recorded(shared_data: Path) -> dict[str, Reply]:
    routes = {f"/ip/{ip}": Reply.json(v["response"])
              for ip, v in load(shared_data, "ipwhois/rdap.json").items()}
    routes["/registry/domain/example.com"] = Reply.json(load(shared_data,
                                                             "rdap/example.com.json"))
    routes["/domain/example.com"] = Reply.redirect("/registry/domain/example.com")
    routes["/domain/bootstrap.example"] = Reply.json(load(shared_data, "rdap/rdns.json"))
    routes["/autnum/15169"] = Reply.json(autnum_answer(shared_data))
    return routes


@pytest.fixture
def server(recorded: dict[str, Reply]) -> Iterator[LoopbackServer]:
    with LoopbackServer(recorded) as srv:
        yield srv


def config_for(base: str, **kw: Any) -> RdapConfig:
    return RdapConfig(ip_url=base + "/ip/{}", asn_url=base + "/autnum/{}",
                      domain_url=base + "/domain/{}", rate_per_second=0, timeout=2.0, **kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def client(server: LoopbackServer, tmp_path: Path, clock: FakeClock) -> Iterator[RdapClient]:
    with RdapClient(config_for(server.base_url), tmp_path / "cache", clock) as c:
        yield c


@pytest.mark.parametrize(("ip", "handle", "name", "country", "emails", "source"), IP_CASES)
def test_recorded_answers_summarised(shared_data: Path, ip: str, handle: str, name: str,
                                     country: str | None, emails: list[str],
                                     source: str | None) -> None:
    obj = load(shared_data, "ipwhois/rdap.json")[ip]["response"]
    a = answer_from_json(obj, kind="ip", url="u", fetched_at=T0, from_cache=False)
    assert (a.handle, a.name, a.country, a.abuse_emails, a.abuse_source, a.error) == \
        (handle, name, country, emails, source, None)


def test_recorded_domain_and_non_rdap(shared_data: Path) -> None:
    dom = answer_from_json(load(shared_data, "rdap/example.com.json"), kind="domain", url="u",
                           fetched_at=T0, from_cache=False)
    # the registrar's abuse entity has no handle; null entities in the list are skipped
    assert (dom.handle, dom.name, dom.country, dom.abuse_emails, dom.abuse_source) == \
        ("D0000000007-VERS", "example.com", "DE", ["service@example.com"], "9999/-")
    boot = answer_from_json(load(shared_data, "rdap/rdns.json"), kind="domain", url="u",
                            fetched_at=T0, from_cache=False)
    assert boot.error == "answer is not an RDAP object" and boot.abuse_emails == []
    ent = answer_from_json(load(shared_data, "ipwhois/entity.json"), kind="entity", url="u",
                           fetched_at=T0, from_cache=False)
    assert (ent.handle, ent.name, ent.abuse_emails, ent.related) == \
        ("ZG39-ARIN", "Google Inc", [], ["arin-contact@google.com"])


MALFORMED = [
    None, [], "x", {"entities": "nope"}, {"entities": [1, None, "x", {"roles": "abuse"}]},
    {"entities": [{"roles": ["abuse"], "vcardArray": ["vcard"]}]},
    {"entities": [{"roles": ["abuse"], "vcardArray": ["vcard", [["email"], None,
                                                                 ["email", {}, "text", 5],
                                                                 ["email", {}, "text", "no at"],
                                                                 ["email", {}, "text",
                                                                  "mailto:A@B.example"],
                                                                 ["email", {}, "text",
                                                                  "a@b.example"]]]}]},
]


@pytest.mark.parametrize("obj", MALFORMED)
def test_malformed_structures_never_raise(obj: Any) -> None:
    a = answer_from_json(obj, kind="ip", url="u", fetched_at=T0, from_cache=False)
    assert a.abuse_emails in ([], ["A@B.example"])


def test_abuse_walk_is_bounded_and_breadth_first() -> None:
    def nest(depth: int) -> dict[str, Any]:
        ent: dict[str, Any] = {"handle": f"E{depth}", "roles": ["abuse"], "vcardArray": [
            "vcard", [["email", {}, "text", f"d{depth}@x.example"]]]}
        if depth < 20:
            ent["entities"] = [nest(depth + 1)]
        return ent

    emails, source = abuse_contacts({"entities": [nest(0)]})
    assert emails[:3] == ["d0@x.example", "d1@x.example", "d2@x.example"]
    assert len(emails) == 8 and source == "E0"


def test_lookup_ips_through_server(client: RdapClient, server: LoopbackServer) -> None:
    ips = [c[0] for c in IP_CASES]
    answers = client.lookup_many_ips(ips)
    assert server.count() == len(ips)
    for (ip, handle, name, country, emails, source), a in zip(IP_CASES, answers, strict=True):
        assert (a.handle, a.name, a.country, a.abuse_emails, a.abuse_source) == \
            (handle, name, country, emails, source)
        assert (a.kind, a.status, a.from_cache, a.error, a.fetched_at) == \
            ("ip", 200, False, None, T0)
        assert a.url == f"{server.base_url}/ip/{ip}"
    again = client.lookup_many_ips(list(reversed(ips)))
    assert server.count() == len(ips)  # nothing fetched twice
    assert all(a.from_cache for a in again)
    assert [a.handle for a in again] == [c[1] for c in reversed(IP_CASES)]


def test_duplicates_and_bad_input_cost_no_requests(client: RdapClient,
                                                   server: LoopbackServer) -> None:
    ips = ["200.57.141.161"] * 5 + [" 200.57.141.161 ", "", "999.1.1.1", "not-an-ip",
                                    "1.2.3", "2001:db8::zz"]
    answers = client.lookup_many_ips(ips)
    assert server.count() == 1
    assert [a.handle for a in answers[:6]] == ["200.57.141.161"] * 6
    assert all(a.error == "not an IP address" and a.url == "" for a in answers[6:])
    assert client.lookup_many_ips([]) == []
    assert client.lookup_ip("200.57.141.161").from_cache


# routes (path -> recorded IP), config overrides, batch, requests made, handles answered
RANGE_CASES = [
    pytest.param({"/ip/74.125.*": "74.125.225.229"}, {},
                 ["74.125.225.229", "74.125.1.1", "74.125.255.255", "74.125.0.0"], 1,
                 ["NET-74-125-0-0-1"] * 4, id="one-answer-covers-its-/16"),
    pytest.param({"/ip/74.125.*": "74.125.225.229"}, {"share_min_prefix_v4": 24},
                 ["74.125.225.229", "74.125.1.1", "74.125.255.255"], 3,
                 ["NET-74-125-0-0-1"] * 3, id="range-too-large-to-share"),
    pytest.param({"/ip/2a00:2381:ffff:*": "2a00:2381:ffff::1"}, {},
                 ["2a00:2381:ffff::1", "2a00:2381:ffff::abcd", "2a00:2381:ffff:0:1::"], 1,
                 ["2a00:2381:ffff::/64"] * 3, id="ipv6-/64"),
    pytest.param({"/ip/2a00:2381:*": "2a00:2381:ffff::1"}, {},
                 ["2a00:2381:ffff::1", "2a00:2381:fffe::1"], 2,
                 ["2a00:2381:ffff::/64"] * 2, id="address-outside-the-answer-range"),
    pytest.param({"/ip/192.0.2.*": "2a00:2381:ffff::1"}, {},
                 ["192.0.2.1", "192.0.2.2", "192.0.2.1"], 2,
                 ["2a00:2381:ffff::/64"] * 3, id="answer-of-other-family-not-shared"),
    pytest.param({"/ip/74.*": "74.125.225.229", "/ip/210.*": "210.107.73.73"}, {},
                 ["74.125.3.3", "210.107.0.1", "74.125.4.4", "210.107.127.255",
                  "210.107.128.0"], 3,
                 ["NET-74-125-0-0-1", "210.107.0.0 - 210.107.127.255", "NET-74-125-0-0-1",
                  "210.107.0.0 - 210.107.127.255", "210.107.0.0 - 210.107.127.255"],
                 id="two-ranges-interleaved"),
]


@pytest.mark.parametrize(("routes", "overrides", "batch", "requests", "handles"), RANGE_CASES)
def test_answers_are_shared_by_range(shared_data: Path, tmp_path: Path, clock: FakeClock,
                                     routes: dict[str, str], overrides: dict[str, Any],
                                     batch: list[str], requests: int,
                                     handles: list[str]) -> None:
    rec = load(shared_data, "ipwhois/rdap.json")
    with LoopbackServer({p: Reply.json(rec[ip]["response"]) for p, ip in routes.items()}) \
            as srv, RdapClient(config_for(srv.base_url, **overrides), tmp_path, clock) as c:
        answers = c.lookup_many_ips(batch)
        assert srv.count() == requests
        assert [a.handle for a in answers] == handles
        per_address = dict(zip(batch, answers, strict=True))  # duplicates share an answer
        assert sum(not a.from_cache for a in per_address.values()) == requests
        again = c.lookup_many_ips(batch)
        assert srv.count() == requests and all(a.from_cache for a in again)


def test_range_index_persists_across_clients(server: LoopbackServer, shared_data: Path,
                                             tmp_path: Path, clock: FakeClock) -> None:
    server.routes["/ip/74.125.*"] = server.routes["/ip/74.125.225.229"]
    with RdapClient(config_for(server.base_url), tmp_path, clock) as first:
        assert first.lookup_ip("74.125.225.229").handle == "NET-74-125-0-0-1"
    assert server.count() == 1
    with RdapClient(config_for(server.base_url), tmp_path, clock) as second:
        a = second.lookup_ip("74.125.9.9")
        assert (a.handle, a.from_cache, a.abuse_emails) == \
            ("NET-74-125-0-0-1", True, ["arin-contact@google.com"])
        assert server.count() == 1
        assert second.lookup_ip("74.126.0.1").error == "not found (HTTP 404): Not Found"
        assert server.count() == 2
        clock.advance(days=8)  # the range entry expired: asked again, once for the range
        fresh = second.lookup_many_ips(["74.125.9.9", "74.125.10.10"])
        assert server.count() == 3
        assert [a.from_cache for a in fresh] == [False, True]


def keys_of(ips: list[str]) -> np.ndarray:
    return ip_keys(parse_ips(pa.array(ips)))


def test_range_index_picks_the_most_specific(tmp_path: Path) -> None:
    index = IpRangeIndex(tmp_path / "r.bin")
    for lo, hi in [("10.0.0.0", "10.255.255.255"), ("10.1.0.0", "10.1.255.255"),
                   ("10.1.2.0", "10.1.2.255"), ("10.2.0.0", "10.2.0.255"),
                   ("10.1.0.0", "10.1.255.255"), ("2001:db8::", "2001:db8::ffff")]:
        k = keys_of([lo, hi])
        index.add(bytes(k[0]), bytes(k[1]))
    assert len(index) == 5  # the duplicate is dropped
    queries = ["10.1.2.3", "10.1.3.1", "10.3.0.0", "10.2.0.5", "10.2.1.0", "11.0.0.0",
               "9.255.255.255", "10.0.0.0", "10.255.255.255", "2001:db8::1", "2001:db8::1:0",
               "::a01:203"]
    snap = index.snapshot()
    rows = snap.find(keys_of(queries))
    got = [None if r < 0 else (int.from_bytes(bytes(snap.start[r]).ljust(16, b"\0")[12:]),
                               int.from_bytes(bytes(snap.end[r]).ljust(16, b"\0")[12:]))
           for r in rows]

    def v4(a: str) -> int:
        return int.from_bytes(bytes(int(x) for x in a.split(".")))
    want = [("10.1.2.0", "10.1.2.255"), ("10.1.0.0", "10.1.255.255"),
            ("10.0.0.0", "10.255.255.255"), ("10.2.0.0", "10.2.0.255"),
            ("10.0.0.0", "10.255.255.255"), None, None, ("10.0.0.0", "10.255.255.255"),
            ("10.0.0.0", "10.255.255.255")]
    assert got[:9] == [None if w is None else (v4(w[0]), v4(w[1])) for w in want]
    assert rows[9] >= 0 and rows[10] < 0 and rows[11] < 0  # ::10.1.2.3 is not 10.1.2.3
    reloaded = IpRangeIndex(tmp_path / "r.bin")
    assert np.array_equal(reloaded.find(keys_of(queries)), rows)
    with (tmp_path / "r.bin").open("ab") as fh:
        fh.write(b"\x01" * 7)  # a torn append
    assert np.array_equal(IpRangeIndex(tmp_path / "r.bin").find(keys_of(queries)), rows)


def test_range_index_matches_brute_force_on_random_prefixes(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    index = IpRangeIndex(tmp_path / "r.bin")
    nets = []
    for _ in range(300):  # CIDR blocks nest or are disjoint, like RIR objects
        plen = int(rng.integers(8, 29))
        base = int(rng.integers(0, 2**32)) >> (32 - plen) << (32 - plen)
        base &= 0x0FFFFFFF  # keep them in 0/4 so many nest
        lo, hi = base, base + 2 ** (32 - plen) - 1
        nets.append((lo, hi))
        k = keys_of([str(lo >> 24) + "." + ".".join(str(lo >> s & 255) for s in (16, 8, 0)),
                     str(hi >> 24) + "." + ".".join(str(hi >> s & 255) for s in (16, 8, 0))])
        index.add(bytes(k[0]), bytes(k[1]))
    qs = rng.integers(0, 2**28, 5000)
    texts = [".".join(str(int(q) >> s & 255) for s in (24, 16, 8, 0)) for q in qs]
    snap = index.snapshot()
    rows = snap.find(keys_of(texts))
    for q, r in zip(qs.tolist(), rows.tolist(), strict=True):
        inside = [(hi - lo, lo, hi) for lo, hi in set(nets) if lo <= q <= hi]
        if not inside:
            assert r == -1
            continue
        _, lo, hi = min(inside)
        got = (int.from_bytes(bytes(snap.start[r]).ljust(16, b"\0")[12:]),
               int.from_bytes(bytes(snap.end[r]).ljust(16, b"\0")[12:]))
        assert got == (lo, hi)


def test_nested_abuse_entity_of_an_asn(client: RdapClient, server: LoopbackServer) -> None:
    a = client.lookup_asn("AS15169")
    assert (a.kind, a.handle, a.name, a.abuse_emails, a.abuse_source, a.error) == \
        ("asn", "AS15169", "Google LLC", ["arin-contact@google.com"], "GOGL/ADMIN-1/ZG39-ARIN",
         None)
    assert client.lookup_asn(15169).from_cache and client.lookup_asn(" as15169").from_cache
    assert server.count("/autnum/15169") == 1
    for bad in ("ASX", "-1", "AS4294967296", ""):
        assert (client.lookup_asn(bad).error or "").startswith("not an AS number")
    assert server.count() == 1


def test_domain_follows_redirect(client: RdapClient, server: LoopbackServer) -> None:
    a = client.lookup_domain("Example.COM.")
    assert (a.handle, a.name, a.abuse_emails, a.error) == \
        ("D0000000007-VERS", "example.com", ["service@example.com"], None)
    assert a.url == server.base_url + "/registry/domain/example.com"
    assert client.lookup_domain("example.com").from_cache
    assert server.count("/domain/example.com") == 1
    boot = client.lookup_domain("bootstrap.example")
    assert boot.error == "answer is not an RDAP object" and boot.status == 200
    for bad in ("exa mple.com", "a/b.example", "x@y.example", "-" * 70 + ".example"):
        assert (client.lookup_domain(bad).error or "").startswith("not a domain name")
    assert client.lookup_domain("bücher.example").url.endswith("/domain/xn--bcher-kva.example")


def test_ttl_expiry_with_injected_clock(client: RdapClient, server: LoopbackServer,
                                        clock: FakeClock) -> None:
    client.lookup_ip("200.57.141.161")
    clock.advance(days=6, hours=23)
    assert client.lookup_ip("200.57.141.161").from_cache
    assert server.count() == 1
    clock.advance(hours=2)
    refreshed = client.lookup_ip("200.57.141.161")
    assert not refreshed.from_cache and refreshed.fetched_at == clock.now
    assert server.count() == 2


def test_negative_answers_cached_shorter(client: RdapClient, server: LoopbackServer,
                                         clock: FakeClock) -> None:
    miss = client.lookup_ip("192.0.2.1")
    assert (miss.error, miss.status, miss.handle) == ("not found (HTTP 404): Not Found", 404,
                                                      None)
    clock.advance(hours=23)
    assert client.lookup_ip("192.0.2.1").from_cache
    assert server.count() == 1
    clock.advance(hours=2)
    server.routes["/ip/192.0.2.1"] = server.routes["/ip/200.57.141.161"]
    assert client.lookup_ip("192.0.2.1").handle == "200.57.141.161"  # appeared meanwhile
    assert server.count() == 2


BAD_ANSWERS = [
    (Reply.text("<html>oops</html>", content_type="text/html"), "answer is not JSON", 200),
    (Reply.json([1, 2]), "answer is not a JSON object", 200),
    (Reply.json({"errorCode": 400, "title": "Bad\nRequest"}), "RDAP error 400: Bad Request",
     200),
    (Reply.json({"errorCode": 500, "title": "boom"}, status=500),
     "HTTP error (HTTP 500): boom", 500),
    (Reply.text("busy", status=429), "HTTP error (HTTP 429)", 429),
    (Reply.json({"handle": "X", "remarks": ["y" * 5000]}), "answer larger than 2000 bytes",
     200),
]


@pytest.mark.parametrize(("reply", "error", "status"), BAD_ANSWERS)
def test_bad_answers_become_errors(server: LoopbackServer, tmp_path: Path, clock: FakeClock,
                                   reply: Reply, error: str, status: int) -> None:
    server.routes["/ip/198.51.100.7"] = reply
    with RdapClient(config_for(server.base_url, max_bytes=2000), tmp_path, clock) as c:
        a = c.lookup_ip("198.51.100.7")
        assert (a.error, a.status, a.abuse_emails, a.from_cache) == (error, status, [], False)
        assert c.lookup_ip("198.51.100.7").from_cache


def test_server_down_is_an_error_cached_briefly(tmp_path: Path, clock: FakeClock) -> None:
    with RdapClient(config_for(closed_port_url()), tmp_path, clock) as c:
        a = c.lookup_ip("200.57.141.161")
        assert a.status == 0 and a.error is not None and a.error.startswith("ConnectError")
        assert c.lookup_ip("200.57.141.161").from_cache
        clock.advance(minutes=16)
        assert not c.lookup_ip("200.57.141.161").from_cache
        d = c.lookup_domain("example.com")
        assert d.error is not None and not d.from_cache


@pytest.mark.parametrize("template", ["https://rdap.example/ip/", "https://x/{ip}",
                                      "https://x/{0}/{1}"])
def test_unusable_config_raises(tmp_path: Path, template: str) -> None:
    with pytest.raises(PublicDataError):
        RdapClient(RdapConfig(ip_url=template), tmp_path)
