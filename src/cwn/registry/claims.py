"""Asset claims: an organisation says "this network / AS / domain is ours" and proves it.

Why this exists: a recipient may only ever be told about its *verified* assets (DESIGN §5.8).
A claim therefore creates an unverified `assets` row at once (the portal shows it, the
attribution index ignores it) and the row is verified only by proof of control:

* a DNS TXT record `cwn-verification=<challenge>` at `_cwn-challenge.<domain>` or on the
  domain itself (domains);
* a line `CWN-Verification: <challenge>` in the domain's security.txt (domains);
* a one-time link mailed to the abuse contact the RIR lists for the block or AS (networks
  and AS numbers; the RIR data, not the claimant, chooses the address);
* an operator's decision.

A claim that overlaps another organisation's assets (CIDR containment either way, the same
AS, the same or a parent/child domain) is for the operator to decide: it goes to `review`
and stays there even when an automatic proof succeeds (the proof is recorded and shown).
Overlaps are computed again when a proof arrives, so an asset registered by someone else in
the meantime is not missed.

Every change is audited (entity `claim`, and `asset` for the row it creates, verifies or
removes); a change that alters what attribution sees bumps the registry version, so the
attribution index is rebuilt. Refusals are `AccessError`s with one clear English line.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from cwn.access.errors import AccessError
from cwn.access.secrets import random_token, token_hash
from cwn.db.base import utcnow
from cwn.db.models import Asset, Organization
from cwn.db.models_web import AssetClaim
from cwn.registry.audit import asset_key, asset_snapshot, bump_version, record
from cwn.registry.format import AssetIn
from cwn.registry.netaddr import SIGN, parse_cidr

if TYPE_CHECKING:
    from cwn.config import Settings

TYPES = ("cidr", "asn", "domain")
STATES = ("pending", "review", "verified", "rejected", "withdrawn")
OPEN_STATES = ("pending", "review")
METHODS = ("dns", "securitytxt", "rir", "operator")
SOURCE = "portal"
CHALLENGE_LABEL = "_cwn-challenge"
TXT_PREFIX = "cwn-verification="
SECURITYTXT_FIELD = "CWN-Verification"
CONFIRM_DAYS = 14
RIR_RESEND_MINUTES = 60  # an abuse desk is not mailed more often than this per claim
MAX_OPEN_CLAIMS = 200  # per organisation: a runaway script must not flood the desk
MIN_PREFIX = {4: 8, 6: 19}

# Address space nobody can hold on the public Internet (IANA special-purpose registries,
# the usual bogon lists), plus documentation ranges: a claim touching any of it is refused.
BOGONS_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"))
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
BOGONS_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "2001::/23", "2001:db8::/32", "2002::/16", "3ffe::/16", "3fff::/20"))
RESERVED_ASNS = ((0, 0), (23456, 23456), (64496, 131071), (4_200_000_000, 4_294_967_295))
SPECIAL_TLDS = frozenset({"test", "example", "invalid", "localhost", "local", "onion",
                          "internal", "arpa", "alt", "home", "corp", "lan", "localdomain"})
SPECIAL_DOMAINS = ("example.com", "example.net", "example.org")


# -- small helpers -------------------------------------------------------------------------


def claim_snapshot(c: AssetClaim) -> dict[str, Any]:
    return {"org_id": c.org_id, "type": c.type, "value": c.value, "state": c.state,
            "method": c.method, "rir_contact": c.rir_contact,
            "overlaps": [f"{o.get('org_id')}:{o.get('type')}:{o.get('value')}"
                         for o in c.overlaps or []],
            "proven_at": c.proven_at.isoformat() if c.proven_at else None,
            "decided_by": c.decided_by, "note": c.note}


def _audit_claim(session: Session, actor: str, action: str, c: AssetClaim,
                 before: dict[str, Any] | None) -> None:
    record(session, actor, action, "claim", c.id, before, claim_snapshot(c))


def _err(key: str, message: str, status: int = 400) -> AccessError:
    return AccessError(key, message, status)


def method_label(method: str | None) -> str:
    return {"dns": "a DNS TXT record", "securitytxt": "the domain's security.txt",
            "rir": "the RIR abuse contact", "operator": "the CWN desk"}.get(method or "", "-")


@dataclass(frozen=True, slots=True)
class Normalised:
    type: str
    value: str  # canonical text stored in assets.value / asset_claims.value
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    asn: int | None = None


def normalise(type_: str, value: str | int) -> Normalised:
    """Canonicalise a claimed value with the registry's own parsers and refuse what nobody
    can hold: private/reserved/documentation space, very short prefixes, reserved AS
    numbers, special-use domain names. Raises AccessError (400, key `claim_invalid`)."""
    t = str(type_ or "").strip().lower()
    if t not in TYPES:
        raise _err("claim_invalid", f"Unknown asset type {type_!r}: use cidr, asn or domain.")
    if isinstance(value, str) and not value.strip():
        raise _err("claim_invalid", "Give the network, AS number or domain you claim.")
    try:
        parsed = AssetIn(type=t, value=value)
    except ValidationError as exc:
        msg = str(exc.errors()[0].get("msg", "invalid value")).removeprefix("Value error, ")
        raise _err("claim_invalid", msg) from None
    text = parsed.db_value
    if t == "cidr":
        net = ipaddress.ip_network(text)
        if net.prefixlen < MIN_PREFIX[net.version]:
            raise _err("claim_invalid",
                       f"{text} is too large to claim: IPv{net.version} claims must be "
                       f"/{MIN_PREFIX[net.version]} or longer.")
        if _bogon(net):
            raise _err("claim_invalid", f"{text} is private, reserved or documentation "
                       "address space and cannot be claimed.")
        return Normalised(t, text, network=net)
    if t == "asn":
        asn = int(parsed.value)
        if any(lo <= asn <= hi for lo, hi in RESERVED_ASNS):
            raise _err("claim_invalid", f"AS{asn} is a private, reserved or documentation "
                       "AS number and cannot be claimed.")
        return Normalised(t, text, asn=asn)
    labels = text.split(".")
    if labels[-1].isdigit() or not any(c.isalpha() for c in labels[-1]):
        raise _err("claim_invalid", f"{text!r} is not a domain name (an IP address? claim "
                   "it as a cidr).")
    if labels[-1] in SPECIAL_TLDS or any(text == d or text.endswith("." + d)
                                         for d in SPECIAL_DOMAINS):
        raise _err("claim_invalid", f"{text} is a special-use domain name and cannot be "
                   "claimed.")
    return Normalised(t, text)


def _bogon(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if isinstance(net, ipaddress.IPv4Network):
        return any(net.overlaps(b) for b in BOGONS_V4)
    return not net.subnet_of(GLOBAL_UNICAST_V6) or any(net.overlaps(b) for b in BOGONS_V6)


def _asset_for(org_id: str, n: Normalised) -> Asset:
    asset = Asset(org_id=org_id, type=n.type, value=n.value, verified=False, verified_by=None,
                  source=SOURCE, created_at=utcnow())
    if n.network is not None:
        enc = parse_cidr(n.value)
        asset.ip_version, asset.ip_hi, asset.ip_lo, asset.prefixlen = (
            enc.ip_version, enc.ip_hi, enc.ip_lo, enc.prefixlen)
    elif n.asn is not None:
        asset.asn = n.asn
    return asset


# -- overlaps --------------------------------------------------------------------------------


def _stored(addr: int, version: int) -> tuple[int | None, int]:
    """An address as the (ip_hi, ip_lo) columns store it (see cwn.registry.netaddr)."""
    if version == 4:
        return None, addr
    return (addr >> 64) - SIGN, (addr & 0xFFFF_FFFF_FFFF_FFFF) - SIGN


def _cidr_overlap_clauses(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[Any]:
    """SQL for "this asset's network is inside `net`" and for "it contains `net`", as two
    separate conditions so each is a range or point lookup on `ix_assets_net`; OR-ed into
    one, both databases scanned every asset (4.5 s at 4 million). Containing networks are
    the few aligned supernets (one per shorter prefix length); contained ones start inside
    `net` with a prefix at least as long. IPv4 rows have no `ip_hi` (NULL), so the IPv4
    conditions say so, which lets the index's middle column be used."""
    v = net.version
    bits = 32 if v == 4 else 128
    first, last = int(net.network_address), int(net.broadcast_address)
    supers = []
    for k in range(net.prefixlen):
        mask = ((1 << bits) - 1) ^ ((1 << (bits - k)) - 1)
        hi, lo = _stored(first & mask, v)
        supers.append((k, hi, lo))
    (f_hi, f_lo), (l_hi, l_lo) = _stored(first, v), _stored(last, v)
    if v == 4:
        inside = and_(Asset.ip_hi.is_(None), Asset.ip_lo >= f_lo, Asset.ip_lo <= l_lo)
        containing = and_(Asset.ip_hi.is_(None), Asset.ip_lo.in_({s[2] for s in supers}),
                          tuple_(Asset.prefixlen, Asset.ip_lo).in_(
                              [(k, lo) for k, _, lo in supers]))
    else:
        # the first and last 64-bit halves bound the range; rows at the edge halves are
        # checked on ip_lo too
        inside = and_(Asset.ip_hi >= f_hi, Asset.ip_hi <= l_hi,
                      or_(Asset.ip_hi > f_hi, Asset.ip_lo >= f_lo),
                      or_(Asset.ip_hi < l_hi, Asset.ip_lo <= l_lo))
        containing = and_(Asset.ip_hi.in_({s[1] for s in supers}),
                          tuple_(Asset.prefixlen, Asset.ip_hi, Asset.ip_lo).in_(supers))
    scope = and_(Asset.type == "cidr", Asset.ip_version == v)
    out = [and_(scope, inside, Asset.prefixlen >= net.prefixlen)]
    if supers:
        out.append(and_(scope, containing))
    return out


def find_overlaps(session: Session, org_id: str, n: Normalised) -> list[dict[str, Any]]:
    """Other organisations' assets (verified or not) that overlap the claimed value: up to
    100, sorted by organisation. One query per condition, none ordered in SQL: with table
    statistics, both databases otherwise preferred walking the unique (org_id, ...) index
    for its order, a scan of every asset, over the lookups below."""
    if n.network is not None:
        conds = _cidr_overlap_clauses(n.network)
    elif n.asn is not None:
        conds = [and_(Asset.type == "asn", Asset.value == n.value, Asset.asn == n.asn)]
    else:
        labels = n.value.split(".")
        parents = [".".join(labels[i:]) for i in range(len(labels) - 1)]
        conds = [and_(Asset.type == "domain", Asset.value.in_(parents)),
                 # subdomains: a suffix match is a scan of the domain entries of the
                 # (type, value) index, about 0.1 µs each
                 and_(Asset.type == "domain",
                      Asset.value.endswith("." + n.value, autoescape=True))]
    found: set[tuple[Any, ...]] = set()
    for cond in conds:
        found.update(session.execute(
            select(Asset.org_id, Asset.value, Organization.name, Asset.type, Asset.verified,
                   Asset.source)
            .join(Organization, Organization.id == Asset.org_id)
            .where(cond, Asset.org_id != org_id).limit(100)).all())
    return [{"org_id": org, "org_name": name, "type": type_, "value": value,
             "verified": bool(verified), "source": source}
            for org, value, name, type_, verified, source in sorted(found)[:100]]


# -- claiming --------------------------------------------------------------------------------


def claim(session: Session, *, org_id: str, type: str, value: str | int,
          actor: str) -> AssetClaim:
    """Register a claim and its unverified asset; `review` when it overlaps other
    organisations' assets, else `pending` (waiting for proof)."""
    n = normalise(type, value)
    if session.get(Organization, org_id) is None:
        raise _err("org_not_found", f"Organisation {org_id!r} does not exist.", 404)
    own = session.scalar(select(Asset).where(Asset.org_id == org_id, Asset.type == n.type,
                                             Asset.value == n.value))
    if own is not None:
        what = "verified" if own.verified else "already claimed, waiting for proof"
        raise _err("claim_duplicate", f"{n.value} is already one of your assets ({what}).",
                   409)
    open_claims = session.scalar(select(func.count()).select_from(AssetClaim).where(
        AssetClaim.org_id == org_id, AssetClaim.state.in_(OPEN_STATES))) or 0
    if open_claims >= MAX_OPEN_CLAIMS:
        raise _err("claim_limit", f"You have {open_claims} open claims; finish or withdraw "
                   "some before claiming more.", 429)
    overlaps = find_overlaps(session, org_id, n)
    asset = _asset_for(org_id, n)
    session.add(asset)
    session.flush()
    c = AssetClaim(id=str(uuid.uuid4()), org_id=org_id, asset_id=asset.id, type=n.type,
                   value=n.value, state="review" if overlaps else "pending",
                   challenge=secrets.token_hex(16), overlaps=overlaps or None,
                   created_by=actor, created_at=utcnow())
    if overlaps:
        c.note = "overlaps assets of another organisation: the CWN desk decides"
    session.add(c)
    record(session, actor, "create", "asset", asset_key(org_id, n.type, n.value), None,
           asset_snapshot(asset))
    _audit_claim(session, actor, "create", c, None)
    session.flush()
    return c


def get_claim(session: Session, claim_id: str, org_id: str | None = None) -> AssetClaim:
    """The claim, only if it belongs to `org_id` (None: the operator, any claim). Another
    organisation's claim is "not found", never "forbidden", so ids do not leak."""
    c = session.get(AssetClaim, str(claim_id)) if claim_id else None
    if c is None or (org_id is not None and c.org_id != org_id):
        raise _err("claim_not_found", "No such claim.", 404)
    return c


def list_claims(session: Session, *, org_id: str | None = None,
                state: str | None = None) -> list[AssetClaim]:
    if state is not None and state not in STATES:
        raise _err("claim_invalid", f"Unknown state {state!r}: use one of {', '.join(STATES)}.")
    stmt = select(AssetClaim)
    if org_id is not None:
        stmt = stmt.where(AssetClaim.org_id == org_id)
    if state is not None:
        stmt = stmt.where(AssetClaim.state == state)
    return list(session.scalars(stmt.order_by(AssetClaim.created_at.desc(), AssetClaim.id)))


def pending_review(session: Session) -> list[AssetClaim]:
    """Claims waiting for the operator, oldest first."""
    return list(session.scalars(select(AssetClaim).where(AssetClaim.state == "review")
                                .order_by(AssetClaim.created_at, AssetClaim.id)))


def _require_open(c: AssetClaim) -> None:
    if c.state not in OPEN_STATES:
        raise _err("claim_closed", f"This claim is {c.state}; nothing more can be done "
                   "with it.", 409)


def _asset_of(session: Session, c: AssetClaim) -> Asset | None:
    if c.asset_id is not None:
        a = session.get(Asset, c.asset_id)
        if a is not None:
            return a
    return session.scalar(select(Asset).where(Asset.org_id == c.org_id, Asset.type == c.type,
                                              Asset.value == c.value))


def _verify(session: Session, c: AssetClaim, method: str, actor: str,
            before: dict[str, Any]) -> None:
    """Mark the claim and its asset verified (recreating the asset if it disappeared) and
    bump the registry version so attribution starts using it."""
    now = utcnow()
    asset = _asset_of(session, c)
    if asset is None:
        asset = _asset_for(c.org_id, normalise(c.type, c.value))
        session.add(asset)
        session.flush()
        record(session, actor, "create", "asset", asset_key(c.org_id, c.type, c.value), None,
               asset_snapshot(asset))
    a_before = asset_snapshot(asset)
    if not asset.verified:
        asset.verified, asset.verified_by = True, method
        record(session, actor, "update", "asset", asset_key(c.org_id, c.type, c.value),
               a_before, asset_snapshot(asset))
    c.asset_id = asset.id
    c.state, c.method = "verified", method
    c.decided_by, c.decided_at = actor, now
    c.proven_at = c.proven_at or now
    c.confirm_hash = None
    _audit_claim(session, actor, "verify", c, before)
    session.flush()
    bump_version(session)


def _proven(session: Session, c: AssetClaim, method: str, actor: str, detail: str) -> bool:
    """An automatic proof succeeded: verify, unless the claim overlaps someone else's
    assets (checked again now) - then record the proof and leave it to the operator.
    Returns whether the claim is now verified."""
    before = claim_snapshot(c)
    overlaps = find_overlaps(session, c.org_id, normalise(c.type, c.value))
    c.overlaps = overlaps or None
    c.method, c.proven_at = method, utcnow()
    if overlaps:
        c.state = "review"
        c.last_check = (f"{detail}; it overlaps assets of another organisation, so the CWN "
                        "desk decides")
        c.confirm_hash = None
        _audit_claim(session, actor, "proven", c, before)
        session.flush()
        return False
    c.last_check = detail
    _verify(session, c, method, actor, before)
    return True


def _failed(session: Session, c: AssetClaim, actor: str, why: str) -> None:
    c.last_check = why[:2000]
    session.flush()


@dataclass(frozen=True, slots=True)
class CheckResult:
    claim: AssetClaim
    proven: bool  # the proof was found (the claim may still wait for the operator)
    message: str  # one line for the person who asked


def _check_result(c: AssetClaim, proven: bool) -> CheckResult:
    if not proven:
        return CheckResult(c, False, c.last_check or "not proven yet")
    if c.state == "verified":
        return CheckResult(c, True, f"{c.value} is verified.")
    return CheckResult(c, True, f"Proof found for {c.value}; it overlaps assets of another "
                       "organisation, so the CWN desk decides.")


# -- proofs ----------------------------------------------------------------------------------


def _require_domain(c: AssetClaim, what: str) -> None:
    if c.type != "domain":
        raise _err("claim_method", f"{what} proves domains only; prove a network or AS number "
                   "through its RIR abuse contact, or ask the CWN desk.")


def dns_record_names(c: AssetClaim) -> tuple[str, str]:
    return f"{CHALLENGE_LABEL}.{c.value}", c.value


def check_dns(session: Session, claim_id: str, *, org_id: str | None, actor: str,
              settings: Settings) -> CheckResult:
    """Look for `cwn-verification=<challenge>` in the TXT records of
    `_cwn-challenge.<domain>` and of the domain itself."""
    from cwn.registry.dnscheck import lookup_txt

    c = get_claim(session, claim_id, org_id)
    _require_open(c)
    _require_domain(c, "A DNS record")
    want = TXT_PREFIX + c.challenge
    problems = []
    for name in dns_record_names(c):
        ans = lookup_txt(name, nameserver=settings.dns_nameserver)
        if any(t.strip() == want for t in ans.texts):
            _proven(session, c, "dns", actor, f"TXT record found at {name}")
            return _check_result(c, True)
        problems.append(ans.error or (f"{name} has no matching TXT record"
                                      if ans.texts else f"{name} has no TXT record"))
    _failed(session, c, actor, f"DNS: {want} not found ({'; '.join(problems)})")
    return _check_result(c, False)


def check_securitytxt(session: Session, claim_id: str, *, org_id: str | None, actor: str,
                      settings: Settings) -> CheckResult:
    """Fetch the domain's security.txt (as the contact finder does, but never from cache:
    the person just published the line) and look for `CWN-Verification: <challenge>`."""
    from cwn.publicdata.httpcache import default_cache_root
    from cwn.publicdata.securitytxt import SecurityTxtFetcher

    c = get_claim(session, claim_id, org_id)
    _require_open(c)
    _require_domain(c, "security.txt")
    blocked = _internal_target(settings.securitytxt_url, c.value)
    if blocked:
        _failed(session, c, actor, f"security.txt: not fetched: {blocked}")
        return _check_result(c, False)
    fetcher = SecurityTxtFetcher(default_cache_root(settings.home) / "claims",
                                 url_template=settings.securitytxt_url, ttl_seconds=0,
                                 negative_ttl_seconds=0, error_ttl_seconds=0, max_workers=1)
    try:
        result = fetcher.fetch(c.value)
    finally:
        fetcher.close()
    if result.parsed is None:
        _failed(session, c, actor, f"security.txt: {result.error or 'not found'}")
        return _check_result(c, False)
    key = SECURITYTXT_FIELD.lower()
    values = [v.strip() for name, vs in result.parsed.extra.items() if name.lower() == key
              for v in vs]
    if c.challenge in values:
        _proven(session, c, "securitytxt", actor, f"token found in {result.url}")
        return _check_result(c, True)
    why = (f"{result.url} has {SECURITYTXT_FIELD} lines, but not this claim's token"
           if values else f"{result.url} has no '{SECURITYTXT_FIELD}: {c.challenge}' line")
    _failed(session, c, actor, f"security.txt: {why}")
    return _check_result(c, False)


def _internal_target(url_template: str, domain: str,
                     resolve: Callable[[str], list[str]] | None = None) -> str | None:
    """Why fetching the claimed domain's security.txt would reach a non-public host, or
    None. A claimant chooses the domain: without this, the desk's server could be made to
    knock on internal addresses (only when the URL's host is the claimed domain itself)."""
    host = urlsplit(url_template.format(domain=domain)).hostname or ""
    if host != domain.lower():
        return None  # an operator-configured fetch base (a proxy, the tests' server)
    try:
        addresses = (resolve or _resolve)(host)
    except OSError as exc:
        return f"{host} does not resolve ({exc})"
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%")[0])
        if not ip.is_global:
            return f"{host} resolves to the non-public address {ip}"
    return None


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, 443)})


@dataclass(frozen=True, slots=True)
class RirContact:
    email: str
    source: str  # ripe | rdap
    detail: str  # the block or AS it is the abuse contact of


def find_rir_contact(settings: Settings, type_: str, value: str) -> RirContact | None:
    """The abuse mailbox the RIR lists for the claimed block or AS: live RDAP when
    `live_lookups` is on (its answer must cover the whole claimed block), else or failing
    that the imported RIPE Database (the innermost block that covers the whole claim)."""
    if type_ == "domain":
        return None
    n = normalise(type_, value)
    if settings.live_lookups:
        found = _rdap_contact(settings, n)
        if found is not None:
            return found
    return _ripe_contact(settings, n)


def _rdap_contact(settings: Settings, n: Normalised) -> RirContact | None:
    from cwn.publicdata.httpcache import default_cache_root
    from cwn.publicdata.rdap import RdapClient, RdapConfig

    config = RdapConfig(ip_url=settings.rdap_ip_url, asn_url=settings.rdap_asn_url,
                        rate_per_second=settings.rdap_rate)
    with RdapClient(config, default_cache_root(settings.home)) as client:
        if n.network is not None:
            ans = client.lookup_ip(str(n.network.network_address))
            try:
                start = int(ipaddress.ip_address(ans.start_address or ""))
                end = int(ipaddress.ip_address(ans.end_address or ""))
            except ValueError:
                return None
            if not (start <= int(n.network.network_address)
                    and int(n.network.broadcast_address) <= end):
                return None
            start_text, end_text = ans.start_address, ans.end_address
            detail = f"{start_text} - {end_text}"
        else:
            ans = client.lookup_asn(n.asn or 0)
            detail = f"AS{n.asn}"
    if ans.error or not ans.abuse_emails:
        return None
    return RirContact(ans.abuse_emails[0], "rdap", f"{detail} (RDAP {ans.url})")


_RIPE_CACHE: dict[str, tuple[int, Any]] = {}
_RIPE_LOCK = threading.Lock()


def _ripe_data(settings: Settings) -> Any:
    """The imported RIPE data, loaded once per import (a full dump takes seconds to load,
    and the portal asks on every view of a network or AS claim)."""
    from cwn.publicdata.ripe import KIND, PART, RipeData
    from cwn.publicdata.store import PublicDataStore

    store = PublicDataStore(settings.publicdata_dir)
    meta = store.folder(KIND, PART) / "meta.json"
    try:
        stamp = meta.stat().st_mtime_ns
    except OSError:
        return None
    key = str(settings.publicdata_dir.resolve())
    with _RIPE_LOCK:
        hit = _RIPE_CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        data = RipeData.load(store)
        _RIPE_CACHE.clear()  # one installation per process in practice; bound the memory
        _RIPE_CACHE[key] = (stamp, data)
        return data


def _ripe_contact(settings: Settings, n: Normalised) -> RirContact | None:
    import pyarrow as pa

    ripe = _ripe_data(settings)
    if ripe is None:
        return None
    if n.asn is not None:
        row = ripe.lookup_asns(pa.array([n.asn], pa.int64())).to_pylist()[0]
        if row.get("asn") is None or not row.get("abuse_mailbox"):
            return None
        return RirContact(row["abuse_mailbox"], "ripe", f"AS{n.asn} (RIPE Database)")
    assert n.network is not None
    r = int(ripe.index.lookup_ips(pa.array([str(n.network.network_address)]))[0])
    last = int(n.network.broadcast_address)
    want = (last >> 64, last & 0xFFFF_FFFF_FFFF_FFFF) if n.network.version == 6 else (0, last)
    end_hi, end_lo = ripe.blocks.column("end_hi"), ripe.blocks.column("end_lo")
    parent = ripe.index.parent
    # walk up to the innermost block that covers the whole claim (a tree's depth: a few steps)
    while r >= 0 and (int(end_hi[r].as_py()), int(end_lo[r].as_py())) < want:
        r = int(parent[r])
    if r < 0:
        return None
    mailbox = ripe.blocks.column("abuse_mailbox")[r].as_py()
    if not mailbox:
        return None
    return RirContact(mailbox, "ripe", f"{ripe.blocks.column('block')[r].as_py()} "
                      "(RIPE Database)")


def confirmation_link(settings: Settings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/claims/confirm/{token}"


def _rir_mail(settings: Settings, org_name: str, c: AssetClaim, contact: RirContact,
              link: str) -> tuple[str, str]:
    from cwn.deliver import letters

    return letters.render("rir_confirmation", org=org_name, value=c.value,
                          asn=c.type == "asn", detail=contact.detail, link=link,
                          days=CONFIRM_DAYS, desk=settings.desk_name)


def send_rir_confirmation(session: Session, claim_id: str, *, org_id: str | None,
                          actor: str, settings: Settings) -> AssetClaim:
    """Mail a one-time confirmation link to the RIR abuse contact of the claimed block or
    AS. The address comes from the RIR data, never from the claimant."""
    from cwn.deliver.mailer import MailError, send_mail

    c = get_claim(session, claim_id, org_id)
    _require_open(c)
    if c.type == "domain":
        raise _err("claim_method", "Domains have no RIR abuse contact: prove a domain with a "
                   "DNS TXT record or its security.txt, or ask the CWN desk.")
    now = utcnow()
    if c.confirm_sent_at is not None and c.confirm_hash is not None and \
            now - c.confirm_sent_at < timedelta(minutes=RIR_RESEND_MINUTES):
        raise _err("claim_mail_recent", f"The abuse contact was mailed at "
                   f"{c.confirm_sent_at:%Y-%m-%d %H:%M} UTC; try again in an hour at the "
                   "earliest.", 429)
    contact = find_rir_contact(settings, c.type, c.value)
    if contact is None:
        raise _err("claim_no_rir_contact", f"No RIR abuse contact is known for {c.value}; "
                   "ask the CWN desk to verify it instead.", 422)
    before = claim_snapshot(c)
    token = random_token()
    c.confirm_hash = token_hash(token)
    c.confirm_sent_at = now
    c.rir_contact = contact.email
    c.last_check = f"confirmation link mailed to {contact.email} ({contact.detail})"
    org = session.get(Organization, c.org_id)
    subject, text = _rir_mail(settings, org.name if org else c.org_id, c, contact,
                              confirmation_link(settings, token))
    _audit_claim(session, actor, "rir-mail", c, before)
    session.flush()
    try:
        send_mail(settings, to=contact.email, subject=subject, text=text)
    except MailError as exc:
        raise _err("mail_failed", str(exc), 502) from None
    return c


def rir_contact_hint(settings: Settings, c: AssetClaim) -> RirContact | None:
    """What the portal shows on the "mail the abuse contact" button (no mail is sent)."""
    try:
        return find_rir_contact(settings, c.type, c.value)
    except AccessError:
        return None


def claim_for_link(session: Session, token: str) -> AssetClaim:
    """The claim a confirmation link is for, if the link is still good (for the page that
    GET shows: it must not confirm, mail scanners open links)."""
    c = session.scalar(select(AssetClaim).where(AssetClaim.confirm_hash == token_hash(token))) \
        if token else None
    if c is None or c.state not in OPEN_STATES or c.confirm_sent_at is None or \
            utcnow() - c.confirm_sent_at > timedelta(days=CONFIRM_DAYS):
        raise _err("link_invalid", "This confirmation link is not valid: it was used, has "
                   "expired, or the claim was withdrawn.", 404)
    return c


def confirm_by_link(session: Session, token: str) -> CheckResult:
    """The RIR abuse contact confirmed (POST from the link's page). One-time."""
    c = claim_for_link(session, token)
    actor = f"rir:{c.rir_contact or '-'}"
    _proven(session, c, "rir", actor, f"confirmed by the RIR abuse contact {c.rir_contact}")
    c.confirm_hash = None
    session.flush()
    return _check_result(c, True)


# -- people deciding -------------------------------------------------------------------------


def request_review(session: Session, claim_id: str, *, org_id: str | None, actor: str,
                   note: str | None = None) -> AssetClaim:
    """The organisation asks the CWN desk to verify (e.g. no DNS access, no RIR contact)."""
    c = get_claim(session, claim_id, org_id)
    _require_open(c)
    if c.state == "review":
        raise _err("claim_in_review", "This claim is already waiting for the CWN desk.", 409)
    before = claim_snapshot(c)
    c.state = "review"
    text = (note or "").strip()[:2000]
    c.note = f"asked the CWN desk: {text}" if text else "asked the CWN desk"
    _audit_claim(session, actor, "review", c, before)
    session.flush()
    return c


def approve(session: Session, claim_id: str, *, actor: str,
            note: str | None = None) -> AssetClaim:
    """The operator verifies the claim (whatever proof there was or was not)."""
    c = get_claim(session, claim_id)
    _require_open(c)
    before = claim_snapshot(c)
    if note and note.strip():
        c.note = note.strip()[:2000]
    _verify(session, c, "operator", actor, before)
    return c


def _drop_asset(session: Session, c: AssetClaim, actor: str) -> bool:
    """Remove the asset the claim created (not one the operator imported meanwhile).
    Returns whether attribution saw it (it was verified)."""
    asset = _asset_of(session, c)
    if asset is None or asset.source != SOURCE:
        return False
    was_verified = bool(asset.verified)
    record(session, actor, "delete", "asset", asset_key(c.org_id, c.type, c.value),
           asset_snapshot(asset), None)
    c.asset_id = None
    session.delete(asset)
    session.flush()
    return was_verified


def reject(session: Session, claim_id: str, *, actor: str, reason: str) -> AssetClaim:
    """The operator refuses the claim; its unverified asset disappears."""
    c = get_claim(session, claim_id)
    _require_open(c)
    why = (reason or "").strip()
    if not why:
        raise _err("reason_required", "Give a reason: the organisation sees it.")
    return _close(session, c, actor, "rejected", "reject", note=why[:2000])


def withdraw(session: Session, claim_id: str, *, org_id: str | None,
             actor: str) -> AssetClaim:
    """The organisation takes its claim back (also a verified one: the asset goes, and
    notifications about it stop)."""
    c = get_claim(session, claim_id, org_id)
    if c.state not in (*OPEN_STATES, "verified"):
        raise _err("claim_closed", f"This claim is already {c.state}.", 409)
    return _close(session, c, actor, "withdrawn", "withdraw")


def _close(session: Session, c: AssetClaim, actor: str, state: str, action: str, *,
           note: str | None = None) -> AssetClaim:
    """End a claim: the asset it created goes (verified or not), the
    confirmation link dies, the change is audited and attribution sees it."""
    before = claim_snapshot(c)
    changed = _drop_asset(session, c, actor)
    c.state = state
    if note is not None:
        c.note = note
    c.decided_by, c.decided_at = actor, utcnow()
    c.confirm_hash = None
    _audit_claim(session, actor, action, c, before)
    session.flush()
    if changed:
        bump_version(session)
    return c


def expires_at(c: AssetClaim) -> datetime | None:
    """When the mailed confirmation link stops working (None: no link out)."""
    if c.confirm_hash is None or c.confirm_sent_at is None:
        return None
    return c.confirm_sent_at + timedelta(days=CONFIRM_DAYS)
