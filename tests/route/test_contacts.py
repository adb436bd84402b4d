"""Contact resolution for owners found in public data: sources in policy order, each with
its provenance and confidence; feedback and operator words move the choice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from cwn.db.models_contacts import AddressFlag, ContactOverride
from cwn.publicdata.csirts import import_csirts
from cwn.publicdata.ripe import import_ripe
from cwn.publicdata.securitytxt import SecurityTxtFetcher
from cwn.publicdata.store import PublicDataStore
from cwn.route.contacts import ContactResolver, OwnerFacts, registrable_domain
from publicdata_http import LoopbackServer, Reply
from publicdata_samples import write_public_data

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SECURITY_TXT = """Contact: mailto:csirt@bakkerij-jansen.nl
Contact: https://bakkerij-jansen.nl/security
Expires: 2027-06-30T00:00:00Z
Preferred-Languages: nl, en
"""


@pytest.fixture
def store(tmp_path: Path) -> PublicDataStore:
    paths = write_public_data(tmp_path / "src")
    s = PublicDataStore(tmp_path / "publicdata")
    import_ripe([paths["ripe"]], s)
    import_csirts(paths["csirts"], s)
    return s


def _isp(hosts: set[str] | None = None) -> OwnerFacts:
    return OwnerFacts("ripe:198.51.100.64 - 198.51.100.71", "ripe",
                      "198.51.100.64 - 198.51.100.71", {"198.51.100.66"}, {64501},
                      hosts or set())


def test_ripe_abuse_c_of_the_enclosing_block_when_the_assignment_has_none(
        engine: Engine, store: PublicDataStore) -> None:
    with engine.begin() as conn:
        found = ContactResolver(store, clock=lambda: NOW).resolve(conn, [_isp()])
    (cand,) = found[_isp().owner_id]
    assert (cand.email, cand.source, cand.rank) == ("abuse@isp.example.nl", "ripe", 0)
    assert cand.confidence == 0.5  # found via the parent block: a little less sure
    assert "abuse-c via parent" in (cand.detail or "")


def test_the_owners_own_security_txt_comes_before_the_isp_unless_the_range_is_isp_only(
        engine: Engine, store: PublicDataStore, tmp_path: Path) -> None:
    with LoopbackServer({"/bakkerij-jansen.nl/.well-known/security.txt":
                         Reply.text(SECURITY_TXT)}) as web:
        fetcher = SecurityTxtFetcher(tmp_path / "cache", clock=lambda: NOW,
                                     url_template=web.base_url + "/{domain}")
        resolver = ContactResolver(store, clock=lambda: NOW, securitytxt=fetcher)
        facts = _isp({"www.bakkerij-jansen.nl"})
        with engine.begin() as conn:
            ranked = resolver.resolve(conn, [facts])[facts.owner_id]
        assert [(c.email, c.source, c.rank) for c in ranked] == [
            ("csirt@bakkerij-jansen.nl", "securitytxt", 0),
            ("abuse@isp.example.nl", "ripe", 1)]
        assert ranked[0].detail == "bakkerij-jansen.nl" and ranked[0].confidence >= 0.8
        with engine.begin() as conn:
            conn.execute(insert(ContactOverride).values(
                scope="cidr", value="198.51.100.0/24", action="isp_only", created_by="t"))
            ranked = resolver.resolve(conn, [facts])[facts.owner_id]
        assert [(c.email, c.rank) for c in ranked] == [("abuse@isp.example.nl", 0)]


def test_feedback_lowers_or_disables_an_address_and_the_next_candidate_is_chosen(
        engine: Engine, store: PublicDataStore) -> None:
    facts = _isp()
    resolver = ContactResolver(store, clock=lambda: NOW)
    with engine.begin() as conn:
        conn.execute(insert(ContactOverride).values(
            scope="asn", value="64501", action="contact", email="noc@isp.example.nl",
            created_by="t"))
        first = resolver.resolve(conn, [facts])[facts.owner_id]
        assert [(c.email, c.source, c.rank) for c in first] == [
            ("noc@isp.example.nl", "override", 0), ("abuse@isp.example.nl", "ripe", 1)]
        conn.execute(insert(AddressFlag).values(email="noc@isp.example.nl", disabled=True,
                                                reason="hard_bounce", hard_bounces=1,
                                                not_ours=0, updated_at=NOW))
        conn.execute(insert(AddressFlag).values(email="abuse@isp.example.nl", not_ours=1,
                                                hard_bounces=0, disabled=False,
                                                updated_at=NOW))
        after = resolver.resolve(conn, [facts])[facts.owner_id]
    by_email = {c.email: c for c in after}
    assert by_email["noc@isp.example.nl"].rank == -1
    assert by_email["noc@isp.example.nl"].reason == "hard_bounce"
    assert by_email["abuse@isp.example.nl"].confidence == pytest.approx(0.2)
    assert by_email["abuse@isp.example.nl"].rank == -1  # below the policy's minimum


def test_a_foreign_network_goes_to_its_national_csirt_in_english(
        engine: Engine, store: PublicDataStore) -> None:
    facts = OwnerFacts("csirt:DE", "csirt", "DE", {"203.0.113.5"})
    with engine.begin() as conn:
        (cand,) = ContactResolver(store, clock=lambda: NOW).resolve(conn, [facts])["csirt:DE"]
    assert (cand.email, cand.source, cand.language) == ("certbund@bsi.example.de", "csirt", "en")


@pytest.mark.parametrize(("host", "domain"), [
    ("www.bakkerij.example.nl", "example.nl"), ("Mail.Example.NL.", "example.nl"),
    ("shop.example.co.uk", "example.co.uk"), ("localhost", None), ("10.0.0.1", None)])
def test_registrable_domain(host: str, domain: str | None) -> None:
    assert registrable_domain(host) == domain


def test_the_rdap_abuse_contact_comes_before_the_ripe_dump_and_is_cached(
        engine: Engine, store: PublicDataStore, tmp_path: Path, shared_data: Path) -> None:
    import json

    from cwn.publicdata.rdap import RdapClient, RdapConfig

    recorded = json.loads((shared_data / "attribution" / "ipwhois" / "rdap.json")
                          .read_text(encoding="utf-8"))["74.125.225.229"]["response"]
    with LoopbackServer({"/ip/198.51.100.66": Reply.json(recorded)}) as rdap_server:
        rdap = RdapClient(RdapConfig(ip_url=rdap_server.base_url + "/ip/{}",
                                     asn_url=rdap_server.base_url + "/autnum/{}"),
                          tmp_path / "cache", lambda: NOW)
        resolver = ContactResolver(store, clock=lambda: NOW, rdap=rdap)
        for _ in range(2):
            with engine.begin() as conn:
                ranked = resolver.resolve(conn, [_isp()])[_isp().owner_id]
            assert [(c.email, c.source, c.rank) for c in ranked] == [
                ("arin-contact@google.com", "rdap", 0), ("abuse@isp.example.nl", "ripe", 1)]
        assert rdap_server.count("/ip/198.51.100.66") == 1  # the second run hit the cache
