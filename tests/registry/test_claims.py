"""Asset claims: what may be claimed, when a claim needs the operator, and each way a claim
is proven (DNS TXT on a loopback DNS server, security.txt on a loopback web server, a link
mailed to the RIR abuse contact from imported RIPE data or live RDAP, operator approval).
Every DB spec runs on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from cwn.access.errors import AccessError
from cwn.config import Settings
from cwn.db.models import Asset, AuditEntry, Organization
from cwn.db.models_web import AssetClaim
from cwn.publicdata.ripe import import_ripe
from cwn.publicdata.store import PublicDataStore
from cwn.registry import claims
from cwn.registry.dnscheck import lookup_txt, parse_nameserver
from cwn.registry.format import parse_document
from cwn.registry.importer import import_registry
from cwn.registry.netaddr import parse_cidr
from cwn.wiring import Services, build
from dns_server import DnsServer
from publicdata_http import LoopbackServer, Reply

ME = "mine"
OTHER = "other"
ACTOR = "user:admin@mine.nl"
OPERATOR = "user:desk@cwn.nl"

# Public (non-documentation) space, so the bogon rules do not refuse it; fictitious holders.
RPSL = """\
inetnum:        145.100.0.0 - 145.100.255.255
netname:        NL-ISP-NET
country:        NL
org:            ORG-ISP1-TEST
status:         ALLOCATED PA
source:         TEST

inetnum:        145.100.12.0 - 145.100.12.255
netname:        BAKKERIJ-NET
country:        NL
status:         ASSIGNED PA
source:         TEST

organisation:   ORG-ISP1-TEST
org-name:       Voorbeeld ISP B.V.
abuse-c:        ISP1-TEST
source:         TEST

role:           ISP Abuse
nic-hdl:        ISP1-TEST
abuse-mailbox:  abuse@isp.test-nl.nl
source:         TEST

inetnum:        145.104.0.0 - 145.104.255.255
netname:        HOSTER-NET
country:        NL
abuse-c:        HOST1-TEST
status:         ASSIGNED PA
source:         TEST

role:           Hoster Abuse
nic-hdl:        HOST1-TEST
abuse-mailbox:  abuse@hoster.test-nl.nl
source:         TEST

aut-num:        AS1136
as-name:        VOORBEELD
org:            ORG-ISP1-TEST
source:         TEST
"""


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def svc(settings: Settings) -> Iterator[Services]:
    s = build(settings)
    with s.sessions.begin() as session:
        import_registry(session, parse_document({"organizations": [
            {"id": ME, "name": "Bakkerij Jansen",
             "assets": [{"type": "cidr", "value": "193.0.0.0/21"}]},
            {"id": OTHER, "name": "Ander B.V.",
             "assets": [{"type": "cidr", "value": "145.100.0.0/16"},
                        {"type": "cidr", "value": "2a02:58::/32"},
                        {"type": "asn", "value": "AS1136"},
                        {"type": "domain", "value": "acme.nl"},
                        {"type": "domain", "value": "mail.bakker.nl"}]},
            {"id": "third", "name": "Derde"},
        ]}), actor="test")
    yield s
    s.close()


def new_claim(svc: Services, type_: str, value: str, org: str = ME) -> AssetClaim:
    with svc.sessions.begin() as s:
        c = claims.claim(s, org_id=org, type=type_, value=value, actor=ACTOR)
        s.expunge(c)
    return c


def reload(svc: Services, claim_id: str) -> AssetClaim:
    with svc.sessions() as s:
        c = s.get(AssetClaim, claim_id)
        assert c is not None
        s.expunge(c)
        return c


def asset(svc: Services, org: str, value: str) -> Asset | None:
    with svc.sessions() as s:
        a = s.scalar(select(Asset).where(Asset.org_id == org, Asset.value == value))
        if a is not None:
            s.expunge(a)
        return a


def owner_of(svc: Services, ip: str) -> str | None:
    table = svc.index().attribute(pa.table({"source.ip": [ip]}))
    return table.column("organization").to_pylist()[0]


def run(svc: Services, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with svc.sessions.begin() as s:
        out = fn(s, *args, **kwargs)
    return out


# -- what may be claimed (no database) ----------------------------------------------------------


@pytest.mark.parametrize(("type_", "value", "canonical"), [
    ("cidr", " 145.100.0.0/16 ", "145.100.0.0/16"),
    ("cidr", "145.0.0.0/8", "145.0.0.0/8"),
    ("cidr", "2A02:58::/32", "2a02:58::/32"),
    ("cidr", "2a02::/19", "2a02::/19"),
    ("cidr", "145.100.12.7", "145.100.12.7/32"),
    ("asn", "as1136", "AS1136"),
    ("asn", "1136", "AS1136"),
    ("domain", "Bakkerij-Jansen.NL.", "bakkerij-jansen.nl"),
    ("domain", "bäckerei.nl", "xn--bckerei-5wa.nl"),
    ("DOMAIN", "shop.acme.nl", "shop.acme.nl"),
])
def test_claimed_values_are_canonicalised(type_: str, value: str, canonical: str) -> None:
    assert claims.normalise(type_, value).value == canonical


@pytest.mark.parametrize(("type_", "value", "says"), [
    ("cidr", "10.1.0.0/16", "private, reserved"),
    ("cidr", "192.168.1.0/24", "private, reserved"),
    ("cidr", "100.64.0.0/10", "private, reserved"),
    ("cidr", "198.51.100.0/24", "private, reserved"),  # documentation
    ("cidr", "224.0.0.0/8", "private, reserved"),
    ("cidr", "172.0.0.0/8", "private, reserved"),  # contains 172.16/12
    ("cidr", "144.0.0.0/7", "too large"),
    ("cidr", "2001:db8:1::/48", "private, reserved"),
    ("cidr", "fe80::/64", "private, reserved"),
    ("cidr", "fc00:1::/32", "private, reserved"),
    ("cidr", "2002:abcd::/32", "private, reserved"),  # 6to4
    ("cidr", "2a00::/18", "too large"),
    ("cidr", "145.100.0.1/16", "host bits set"),
    ("cidr", "not-a-net", "not an IPv4/IPv6 network"),
    ("asn", "AS64512", "private, reserved"),
    ("asn", "AS23456", "private, reserved"),
    ("asn", "AS4200000001", "private, reserved"),
    ("asn", "AS0", "out of range"),
    ("asn", "ASX", "not an AS number"),
    ("domain", "acme", "at least two labels"),
    ("domain", "https://acme.nl/", "give just the name"),
    ("domain", "acme.test", "special-use"),
    ("domain", "www.example.com", "special-use"),
    ("domain", "145.100.12.7", "not a domain name"),
    ("domain", "", "Give the network"),
    ("ip", "145.100.0.0/16", "Unknown asset type"),
])
def test_what_nobody_can_hold_is_refused_with_a_clear_line(type_: str, value: str,
                                                           says: str) -> None:
    with pytest.raises(AccessError) as err:
        claims.normalise(type_, value)
    assert (err.value.key, err.value.status) == ("claim_invalid", 400)
    assert says in err.value.message
    assert "\n" not in err.value.message


# -- claiming and overlaps ------------------------------------------------------------------------


OVERLAPS = [
    ("cidr", "145.100.0.0/16", "review", ["145.100.0.0/16"]),  # the same block
    ("cidr", "145.100.12.0/24", "review", ["145.100.0.0/16"]),  # inside theirs
    ("cidr", "145.0.0.0/8", "review", ["145.100.0.0/16"]),  # around theirs
    ("cidr", "145.101.0.0/16", "pending", []),  # next door
    ("cidr", "193.0.0.0/24", "pending", []),  # inside our own block: not an overlap
    ("cidr", "2a02:58:1::/48", "review", ["2a02:58::/32"]),
    ("cidr", "2a02::/19", "review", ["2a02:58::/32"]),
    ("cidr", "2a02:59::/32", "pending", []),
    ("asn", "AS1136", "review", ["AS1136"]),
    ("asn", "AS1137", "pending", []),
    ("domain", "acme.nl", "review", ["acme.nl"]),
    ("domain", "shop.acme.nl", "review", ["acme.nl"]),  # a child of theirs
    ("domain", "bakker.nl", "review", ["mail.bakker.nl"]),  # a parent of theirs
    ("domain", "notacme.nl", "pending", []),  # a suffix is not a parent
]


def test_a_claim_overlapping_another_organisation_goes_to_the_operator(
        svc: Services) -> None:
    # one database for the whole table (the organisation's own claims never overlap)
    for type_, value, state, overlapping in OVERLAPS:
        c = new_claim(svc, type_, value)
        assert (c.state, [o["value"] for o in c.overlaps or []]) == (state, overlapping), \
            value
        assert all(o["org_id"] == OTHER and o["org_name"] == "Ander B.V."
                   for o in c.overlaps or [])
        a = asset(svc, ME, c.value)
        assert a is not None and (a.verified, a.source, a.id) == (False, "portal",
                                                                   c.asset_id)
        assert len(c.challenge) == 32


def test_a_pending_claim_of_a_third_organisation_also_counts_as_an_overlap(
        svc: Services) -> None:
    new_claim(svc, "cidr", "185.1.0.0/24", org="third")
    c = new_claim(svc, "cidr", "185.1.0.0/23")
    assert c.state == "review"
    assert c.overlaps == [{"org_id": "third", "org_name": "Derde", "type": "cidr",
                           "value": "185.1.0.0/24", "verified": False, "source": "portal"}]


def test_a_claim_is_audited_and_does_not_attribute_until_verified(svc: Services) -> None:
    c = new_claim(svc, "cidr", "145.101.0.0/16")
    with svc.sessions() as s:
        entries = s.execute(select(AuditEntry.entity, AuditEntry.action, AuditEntry.entity_id,
                                   AuditEntry.actor).where(AuditEntry.actor == ACTOR)).all()
    assert sorted(entries) == [("asset", "create", f"{ME}:cidr:145.101.0.0/16", ACTOR),
                               ("claim", "create", c.id, ACTOR)]
    assert owner_of(svc, "145.101.3.4") is None
    run(svc, claims.approve, c.id, actor=OPERATOR)
    assert owner_of(svc, "145.101.3.4") == ME  # the index was rebuilt (version bumped)


@pytest.mark.parametrize(("type_", "value", "says"), [
    ("cidr", "193.0.0.0/21", "already one of your assets (verified)"),
    ("asn", "AS1137", "already claimed, waiting for proof"),
])
def test_claiming_what_the_organisation_already_has_is_refused(
        svc: Services, type_: str, value: str, says: str) -> None:
    new_claim(svc, "asn", "AS1137")
    with pytest.raises(AccessError) as err:
        new_claim(svc, type_, value)
    assert (err.value.key, err.value.status) == ("claim_duplicate", 409)
    assert says in err.value.message


def test_an_organisation_cannot_see_or_touch_another_organisations_claim(
        svc: Services, settings: Settings) -> None:
    c = new_claim(svc, "domain", "bakkerij-jansen.nl")
    attempts = [
        lambda s: claims.get_claim(s, c.id, OTHER),
        lambda s: claims.check_dns(s, c.id, org_id=OTHER, actor="x", settings=settings),
        lambda s: claims.request_review(s, c.id, org_id=OTHER, actor="x"),
        lambda s: claims.withdraw(s, c.id, org_id=OTHER, actor="x"),
        lambda s: claims.get_claim(s, "no-such-id", ME),
    ]
    for attempt in attempts:
        with pytest.raises(AccessError) as err:
            run(svc, attempt)
        assert (err.value.key, err.value.status) == ("claim_not_found", 404)
    assert reload(svc, c.id).state == "pending"


# -- DNS -------------------------------------------------------------------------------------------


@pytest.fixture
def dns(settings: Settings) -> Iterator[DnsServer]:
    with DnsServer() as server:
        settings.dns_nameserver = server.address
        yield server


DNS_CASES = [
    ("_cwn-challenge.{d}", "cwn-verification={t}", True),
    ("{d}", "cwn-verification={t}", True),  # on the domain itself, beside SPF and friends
    ("_cwn-challenge.{d}", "cwn-verification=0000", False),  # someone else's token
    ("_cwn-challenge.www.{d}", "cwn-verification={t}", False),  # wrong name
    ("_cwn-challenge.{d}", "{t}", False),  # the token without the prefix
]


def test_dns_txt_challenge(svc: Services, settings: Settings, dns: DnsServer) -> None:
    for i, (where, text, proven) in enumerate(DNS_CASES):
        c = new_claim(svc, "domain", f"bakkerij-{i}.nl")
        dns.records[where.format(d=c.value)] = ["v=spf1 -all", text.format(t=c.challenge)]
        version = svc.registry_version()
        res = run(svc, claims.check_dns, c.id, org_id=ME, actor=ACTOR, settings=settings)
        assert res.proven is proven, (where, text)
        after = reload(svc, c.id)
        a = asset(svc, ME, c.value)
        assert a is not None
        if proven:
            assert (after.state, after.method, a.verified, a.verified_by) == (
                "verified", "dns", True, "dns")
            assert svc.registry_version() == version + 1
        else:
            assert (after.state, a.verified) == ("pending", False)
            assert f"cwn-verification={c.challenge} not found" in (after.last_check or "")
            assert svc.registry_version() == version


def test_a_dns_check_sees_a_record_published_after_the_first_try(
        svc: Services, settings: Settings, dns: DnsServer) -> None:
    c = new_claim(svc, "domain", "bakkerij-jansen.nl")
    res = run(svc, claims.check_dns, c.id, org_id=ME, actor=ACTOR, settings=settings)
    assert not res.proven and "NXDOMAIN" in res.message
    dns.records[f"_cwn-challenge.{c.value}"] = [f"cwn-verification={c.challenge}"]
    res = run(svc, claims.check_dns, c.id, org_id=ME, actor=ACTOR, settings=settings)
    assert res.proven and res.claim.state == "verified"
    assert dns.queries[f"_cwn-challenge.{c.value}"] == 2  # nothing was cached


def test_an_overlapping_claim_proven_by_dns_still_waits_for_the_operator(
        svc: Services, settings: Settings, dns: DnsServer) -> None:
    c = new_claim(svc, "domain", "shop.acme.nl")
    dns.records[f"_cwn-challenge.{c.value}"] = [f"cwn-verification={c.challenge}"]
    res = run(svc, claims.check_dns, c.id, org_id=ME, actor=ACTOR, settings=settings)
    assert res.proven and "CWN desk decides" in res.message
    after = reload(svc, c.id)
    assert (after.state, after.method) == ("review", "dns")
    assert after.proven_at is not None
    assert not asset(svc, ME, c.value).verified  # type: ignore[union-attr]
    with svc.sessions() as s:
        assert [x.id for x in claims.pending_review(s)] == [c.id]
    run(svc, claims.approve, c.id, actor=OPERATOR, note="same group of companies")
    after = reload(svc, c.id)
    assert (after.state, after.decided_by, after.note) == (
        "verified", OPERATOR, "same group of companies")
    assert asset(svc, ME, c.value).verified_by == "operator"  # type: ignore[union-attr]


def test_an_overlap_that_appeared_after_the_claim_is_caught_when_proof_arrives(
        svc: Services, settings: Settings, dns: DnsServer) -> None:
    c = new_claim(svc, "domain", "bakkerij-jansen.nl")
    assert c.state == "pending"
    new_claim(svc, "domain", "www.bakkerij-jansen.nl", org="third")
    dns.records[c.value] = [f"cwn-verification={c.challenge}"]
    res = run(svc, claims.check_dns, c.id, org_id=ME, actor=ACTOR, settings=settings)
    assert res.claim.state == "review"
    assert [o["value"] for o in res.claim.overlaps or []] == ["www.bakkerij-jansen.nl"]


@pytest.mark.parametrize("check", [claims.check_dns, claims.check_securitytxt])
def test_dns_and_security_txt_prove_domains_only(svc: Services, settings: Settings,
                                                 check: Any) -> None:
    c = new_claim(svc, "cidr", "145.101.0.0/16")
    with pytest.raises(AccessError) as err:
        run(svc, check, c.id, org_id=ME, actor=ACTOR, settings=settings)
    assert err.value.key == "claim_method"
    assert "RIR abuse contact" in err.value.message


def test_the_dns_helper_reports_timeouts_and_bad_settings_in_one_line() -> None:
    with DnsServer({"x.nl": ["a"]}) as server:
        assert lookup_txt("x.nl", nameserver=server.address).texts == ["a"]
        server.silent = True
        ans = lookup_txt("x.nl", nameserver=server.address, timeout=0.3)
    assert ans.texts == [] and ans.error == "the DNS lookup of x.nl timed out"
    assert "not host[:port]" in (lookup_txt("x.nl", nameserver="h:99999").error or "")
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)


# -- security.txt ----------------------------------------------------------------------------------


SECURITY_TXT = """Contact: mailto:security@bakkerij-jansen.nl
Expires: 2099-01-01T00:00:00Z
{line}
"""


SECURITY_TXT_CASES = [
    ("CWN-Verification: {t}", True, "token found"),
    ("cwn-verification:   {t}", True, "token found"),  # field names are case-insensitive
    ("CWN-Verification: 0000", False, "not this claim's token"),
    ("# CWN-Verification: {t}", False, "has no 'CWN-Verification"),  # a comment
    (None, False, "HTTP 404"),
]


def test_security_txt_token(svc: Services, settings: Settings) -> None:
    with LoopbackServer({}) as web:
        settings.securitytxt_url = web.base_url + "/{domain}"
        for i, (reply, proven, says) in enumerate(SECURITY_TXT_CASES):
            c = new_claim(svc, "domain", f"bakkerij-{i}.nl")
            if reply is not None:
                body = SECURITY_TXT.format(line=reply.format(t=c.challenge))
                web.routes[f"/{c.value}/.well-known/security.txt"] = Reply.text(body)
            res = run(svc, claims.check_securitytxt, c.id, org_id=ME, actor=ACTOR,
                      settings=settings)
            assert res.proven is proven, reply
            assert says in (res.claim.last_check or "")
            assert reload(svc, c.id).state == ("verified" if proven else "pending")


def test_security_txt_is_fetched_again_on_every_check(svc: Services,
                                                      settings: Settings) -> None:
    c = new_claim(svc, "domain", "bakkerij-jansen.nl")
    path = f"/{c.value}/.well-known/security.txt"
    with LoopbackServer({}) as web:
        settings.securitytxt_url = web.base_url + "/{domain}"
        assert not run(svc, claims.check_securitytxt, c.id, org_id=ME, actor=ACTOR,
                       settings=settings).proven
        web.routes[path] = Reply.text(SECURITY_TXT.format(line=f"CWN-Verification: "
                                                                f"{c.challenge}"))
        res = run(svc, claims.check_securitytxt, c.id, org_id=ME, actor=ACTOR,
                  settings=settings)
        assert web.count(path) == 2
    assert res.proven and res.claim.method == "securitytxt"


# -- the RIR abuse contact ----------------------------------------------------------------


@pytest.fixture
def ripe(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "ripe.db.test"
    src.write_text(RPSL, encoding="utf-8")
    import_ripe([src], PublicDataStore(settings.publicdata_dir))


def mailed(settings: Settings) -> list[email.message.EmailMessage]:
    out = []
    for p in sorted(settings.outbox_dir.rglob("*.eml")):
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        out.append(msg)  # type: ignore[arg-type]
    return out


def link_token(msg: email.message.EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    m = re.search(r"/claims/confirm/([A-Za-z0-9_-]+)", body.get_content())
    assert m is not None
    return m.group(1)


@pytest.mark.parametrize(("type_", "value", "contact", "detail"), [
    ("cidr", "145.100.12.0/24", "abuse@isp.test-nl.nl", "145.100.12.0 - 145.100.12.255"),
    ("cidr", "145.100.12.0/23", "abuse@isp.test-nl.nl", "145.100.0.0 - 145.100.255.255"),
    ("asn", "AS1136", "abuse@isp.test-nl.nl", "AS1136"),
    ("cidr", "145.0.0.0/8", None, None),  # no block covers all of it
    ("asn", "AS1137", None, None),
])
def test_the_rir_contact_is_the_abuse_mailbox_of_the_block_that_covers_the_whole_claim(
        settings: Settings, ripe: None, type_: str, value: str, contact: str | None,
        detail: str | None) -> None:
    found = claims.find_rir_contact(settings, type_, value)
    if contact is None:
        assert found is None
    else:
        assert found is not None and (found.email, found.source) == (contact, "ripe")
        assert detail in found.detail


def test_the_rir_link_confirms_only_on_post_and_only_once(
        svc: Services, settings: Settings, ripe: None) -> None:
    c = new_claim(svc, "cidr", "145.104.0.0/20", org="third")
    assert c.state == "pending"
    run(svc, claims.send_rir_confirmation, c.id, org_id="third", actor=ACTOR,
        settings=settings)
    (msg,) = mailed(settings)
    assert msg["To"] == "abuse@hoster.test-nl.nl"
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert text.index("Klopt dit?") < text.index("Is that right?")  # Dutch first
    assert "Derde" in text and "145.104.0.0/20" in text
    token = link_token(msg)
    assert settings.public_url + "/claims/confirm/" + token in text
    after = reload(svc, c.id)
    assert after.rir_contact == "abuse@hoster.test-nl.nl" and after.confirm_hash != token

    with svc.sessions() as s:  # what GET shows: no change
        assert claims.claim_for_link(s, token).id == c.id
    assert reload(svc, c.id).state == "pending"

    res = run(svc, claims.confirm_by_link, token)
    assert res.proven and res.claim.state == "verified" and res.claim.method == "rir"
    assert owner_of(svc, "145.104.12.9") == "third"
    with pytest.raises(AccessError) as err:
        run(svc, claims.confirm_by_link, token)
    assert (err.value.key, err.value.status) == ("link_invalid", 404)
    with svc.sessions() as s:
        actors = s.scalars(select(AuditEntry.actor).where(
            AuditEntry.entity == "claim", AuditEntry.entity_id == c.id,
            AuditEntry.action == "verify")).all()
    assert actors == ["rir:abuse@hoster.test-nl.nl"]


def test_rir_mail_is_refused_for_domains_unknown_blocks_and_repeats(
        svc: Services, settings: Settings, ripe: None) -> None:
    dom = new_claim(svc, "domain", "bakkerij-jansen.nl")
    unknown = new_claim(svc, "cidr", "146.0.0.0/16")
    asn = new_claim(svc, "asn", "AS1136")  # review (overlaps OTHER), may still be proven
    cases = [(dom.id, "claim_method", "Domains have no RIR abuse contact"),
             (unknown.id, "claim_no_rir_contact", "No RIR abuse contact is known")]
    for claim_id, key, says in cases:
        with pytest.raises(AccessError) as err:
            run(svc, claims.send_rir_confirmation, claim_id, org_id=ME, actor=ACTOR,
                settings=settings)
        assert err.value.key == key and says in err.value.message
    run(svc, claims.send_rir_confirmation, asn.id, org_id=ME, actor=ACTOR, settings=settings)
    with pytest.raises(AccessError) as err:
        run(svc, claims.send_rir_confirmation, asn.id, org_id=ME, actor=ACTOR,
            settings=settings)
    assert (err.value.key, err.value.status) == ("claim_mail_recent", 429)
    assert len(mailed(settings)) == 1
    res = run(svc, claims.confirm_by_link, link_token(mailed(settings)[0]))
    assert res.proven and res.claim.state == "review"  # overlaps: the operator decides


def test_an_expired_link_does_not_confirm(svc: Services, settings: Settings,
                                          ripe: None) -> None:
    c = new_claim(svc, "asn", "AS1136")
    run(svc, claims.send_rir_confirmation, c.id, org_id=ME, actor=ACTOR, settings=settings)
    token = link_token(mailed(settings)[0])
    with svc.sessions.begin() as s:
        row = s.get(AssetClaim, c.id)
        assert row is not None and row.confirm_sent_at is not None
        row.confirm_sent_at -= timedelta(days=claims.CONFIRM_DAYS + 1)
    with pytest.raises(AccessError) as err:
        run(svc, claims.confirm_by_link, token)
    assert err.value.key == "link_invalid"


def test_with_live_lookups_rdap_names_the_abuse_contact(settings: Settings) -> None:
    answer = {"objectClassName": "ip network", "handle": "145.102.0.0 - 145.102.255.255",
              "startAddress": "145.102.0.0", "endAddress": "145.102.255.255",
              "ipVersion": "v4", "name": "LIVE-NET",
              "entities": [{"objectClassName": "entity", "handle": "AB-RIPE",
                            "roles": ["abuse"],
                            "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                                     ["email", {}, "text",
                                                      "abuse@live.test-nl.nl"]]]}]}
    with LoopbackServer({"/ip/*": Reply.json(answer)}) as web:
        settings.live_lookups = True
        settings.rdap_ip_url = web.base_url + "/ip/{}"
        found = claims.find_rir_contact(settings, "cidr", "145.102.8.0/22")
        too_big = claims.find_rir_contact(settings, "cidr", "145.102.0.0/15")
    assert found is not None and (found.email, found.source) == ("abuse@live.test-nl.nl",
                                                                 "rdap")
    assert too_big is None  # the answer's range does not cover the whole claim


# -- people deciding -----------------------------------------------------------------------------


def test_state_machine(svc: Services) -> None:
    c = new_claim(svc, "cidr", "145.101.0.0/16")
    run(svc, claims.request_review, c.id, org_id=ME, actor=ACTOR, note="no DNS for ranges")
    after = reload(svc, c.id)
    assert (after.state, after.note) == ("review", "asked the CWN desk: no DNS for ranges")
    with pytest.raises(AccessError) as err:
        run(svc, claims.request_review, c.id, org_id=ME, actor=ACTOR)
    assert err.value.key == "claim_in_review"

    with pytest.raises(AccessError) as err:
        run(svc, claims.reject, c.id, actor=OPERATOR, reason="  ")
    assert err.value.key == "reason_required"
    run(svc, claims.reject, c.id, actor=OPERATOR, reason="not yours per RIPE")
    after = reload(svc, c.id)
    assert (after.state, after.note, after.decided_by) == (
        "rejected", "not yours per RIPE", OPERATOR)
    assert asset(svc, ME, c.value) is None  # the unverified asset is gone
    for action in (lambda s: claims.approve(s, c.id, actor=OPERATOR),
                   lambda s: claims.withdraw(s, c.id, org_id=ME, actor=ACTOR)):
        with pytest.raises(AccessError) as err:
            run(svc, action)
        assert (err.value.key, err.value.status) == ("claim_closed", 409)
    # after a rejection the value may be claimed again
    again = new_claim(svc, "cidr", "145.101.0.0/16")
    assert again.state == "pending"


def test_withdrawing_a_verified_claim_stops_attribution(svc: Services) -> None:
    c = new_claim(svc, "cidr", "145.101.0.0/16")
    run(svc, claims.approve, c.id, actor=OPERATOR)
    assert owner_of(svc, "145.101.0.1") == ME
    run(svc, claims.withdraw, c.id, org_id=ME, actor=ACTOR)
    assert reload(svc, c.id).state == "withdrawn"
    assert asset(svc, ME, "145.101.0.0/16") is None
    assert owner_of(svc, "145.101.0.1") is None
    with svc.sessions() as s:
        actions = s.execute(select(AuditEntry.entity, AuditEntry.action).where(
            AuditEntry.entity_id.in_([c.id, f"{ME}:cidr:145.101.0.0/16"]))
            .order_by(AuditEntry.id)).all()
    assert [tuple(a) for a in actions] == [
        ("asset", "create"), ("claim", "create"), ("asset", "update"), ("claim", "verify"),
        ("asset", "delete"), ("claim", "withdraw")]


def test_listing_claims_by_organisation_and_state(svc: Services) -> None:
    a = new_claim(svc, "asn", "AS1137")
    b = new_claim(svc, "asn", "AS1136")  # review
    new_claim(svc, "domain", "derde.nl", org="third")
    with svc.sessions() as s:
        assert {x.id for x in claims.list_claims(s, org_id=ME)} == {a.id, b.id}
        assert [x.id for x in claims.list_claims(s, org_id=ME, state="review")] == [b.id]
        assert len(claims.list_claims(s)) == 3
        with pytest.raises(AccessError):
            claims.list_claims(s, state="bogus")
        n = s.scalar(select(func.count()).select_from(Organization))
    assert n == 3


# -- the command line ------------------------------------------------------------------------


def test_the_operator_lists_approves_and_rejects_on_the_command_line(
        svc: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cwn.cli.claims import app

    monkeypatch.setenv("CWN_HOME", str(settings.home))
    monkeypatch.setenv("CWN_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("COLUMNS", "250")
    a = new_claim(svc, "asn", "AS1136")  # review: overlaps OTHER
    b = new_claim(svc, "domain", "derde.nl", org="third")
    runner = CliRunner()
    out = runner.invoke(app, ["list", "--state", "review"])
    assert out.exit_code == 0, out.output
    assert a.id in out.output and "other:AS1136" in out.output and b.id not in out.output
    assert runner.invoke(app, ["list", "--state", "bogus"]).exit_code == 2
    out = runner.invoke(app, ["approve", a.id, "--note", "checked by phone"])
    assert out.exit_code == 0 and "verified: AS1136 of mine" in out.output
    out = runner.invoke(app, ["reject", b.id, "--reason", "not theirs"])
    assert out.exit_code == 0 and "rejected: derde.nl of third" in out.output
    out = runner.invoke(app, ["reject", b.id, "--reason", "again"])
    assert out.exit_code == 2 and "rejected" in out.output
    assert (reload(svc, a.id).state, reload(svc, b.id).state) == ("verified", "rejected")


@pytest.mark.parametrize(("addresses", "refused"), [
    (["127.0.0.1"], "non-public address 127.0.0.1"),
    (["10.1.2.3"], "non-public address 10.1.2.3"),
    (["93.184.215.14", "fe80::1"], "non-public address fe80::1"),
    (["169.254.169.254"], "non-public address 169.254.169.254"),
    (["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], None),
])
def test_security_txt_is_never_fetched_from_a_non_public_host(
        addresses: list[str], refused: str | None) -> None:
    """The claimant chooses the domain, so the desk must not be made to fetch from
    internal addresses; a configured fetch base (proxy, test server) is the operator's."""
    from cwn.registry.claims import _internal_target

    why = _internal_target("https://{domain}", "bakkerij.nl", lambda host: addresses)
    assert (why is None) if refused is None else (refused in (why or ""))
    assert _internal_target("http://127.0.0.1:8000/{domain}", "bakkerij.nl",
                            lambda host: ["127.0.0.1"]) is None


def _random_networks(seed: int, n: int) -> list[str]:
    """Networks that nest, touch and straddle: IPv4 under 145.0.0.0/8, IPv6 under 2a02::/16
    with prefixes around the 64-bit half the storage splits at."""
    import random

    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        if rng.random() < 0.5:
            plen = rng.randint(9, 32)
            addr = (145 << 24) | rng.getrandbits(24)
            out.add(str(ipaddress.ip_network((addr, plen), strict=False)))
        else:
            plen = rng.choice([17, 24, 32, 48, 56, 60, 63, 64, 65, 72, 96, 127, 128])
            # three upper halves only, so many networks share or neighbour one
            addr = (0x2A02 << 112) | (rng.randrange(3) << 64) | rng.getrandbits(64)
            out.add(str(ipaddress.ip_network((addr, plen), strict=False)))
    return sorted(out)


def test_cidr_overlaps_match_a_brute_force_check(svc: Services) -> None:
    """The index-friendly SQL (IPv6 split in two signed halves) finds exactly the networks
    that contain or lie inside the claimed one, and nothing that merely borders it."""
    held = _random_networks(1, 300)
    with svc.sessions.begin() as s:
        s.add(Organization(id="many", name="Veel B.V."))
        for value in held:
            enc = parse_cidr(value)
            s.add(Asset(org_id="many", type="cidr", value=value, ip_version=enc.ip_version,
                        ip_hi=enc.ip_hi, ip_lo=enc.ip_lo, prefixlen=enc.prefixlen,
                        verified=True))
    # with what the fixture gave the other organisation (ours never counts)
    nets = [ipaddress.ip_network(v) for v in [*held, "145.100.0.0/16", "2a02:58::/32"]]
    probes = _random_networks(2, 150) + held[::10]
    with svc.sessions() as s:
        for value in probes:
            probe = ipaddress.ip_network(value)
            want = {str(n) for n in nets if n.version == probe.version and n.overlaps(probe)}
            got = claims.find_overlaps(s, ME, claims.Normalised("cidr", value, network=probe))
            keys = [(o["org_id"], o["value"]) for o in got]
            assert keys == sorted(keys)
            values = [v for _, v in keys]
            if len(want) <= 100:
                assert set(values) == want, value
            else:  # the list shown is capped; every entry on it is a true overlap
                assert len(values) == 100 and set(values) <= want, value
