"""Live RDAP (RFC 9083) lookups of IPs, AS numbers and domains: holder and abuse contact.

Used when an event's address has no registered owner: the RIR's RDAP answer names the holder
and, in an entity with the `abuse` role, where to report. Abuse entities are often not on
the object itself but nested in the registrant or an administrative entity, so the entity
tree is walked to any depth. Contacts attached closer to the object win (breadth first,
document order within a level): an abuse role on the network itself is the network's own
statement, one inside the holder's entity is inherited.

RIRs answer with the *range* the address belongs to (`startAddress`/`endAddress`), so one
answer serves every address in it: positive IP answers are cached under their range and a
small on-disk range index (`ip-ranges.bin`, 32-byte records appended) lets later addresses
in the range hit the cache without a request, within a batch and across runs. Only ranges
no larger than a /16 (IPv4) or /32 (IPv6) are shared (configurable): a huge range is
usually a whole allocation whose more specific assignments the first answer did not show.

Nothing here raises for a bad answer or an unreachable server; the answer carries `error`.
Only an unusable configuration raises `PublicDataError`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cwn.attribute.index import _key128
from cwn.attribute.ipcodec import ParsedIPs, parse_ips
from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.httpcache import (
    CacheEntry,
    Clock,
    HttpCache,
    RateLimiter,
    http_get,
    one_line,
    utc_now,
)

Keys = npt.NDArray[np.bytes_]  # 16-byte big-endian keys (dtype S16); IPv4 as ::ffff:a.b.c.d
_V4_MAPPED = np.uint64(0xFFFF_0000_0000)
_MEMO_SIZE = 100_000  # answers kept in memory per client
_MAX_DEPTH = 8  # entity nesting seen in practice is 2-3; bounds hostile answers
_LDH = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


@dataclass(slots=True)
class RdapConfig:
    ip_url: str = "https://rdap.db.ripe.net/ip/{}"
    asn_url: str = "https://rdap.db.ripe.net/autnum/{}"
    domain_url: str = "https://rdap.org/domain/{}"
    ttl_seconds: float = 7 * 86400
    negative_ttl_seconds: float = 86400
    error_ttl_seconds: float = 900
    rate_per_second: float = 5.0
    timeout: float = 10.0
    max_bytes: int = 4 * 1024 * 1024
    share_min_prefix_v4: int = 16  # share cached ranges no larger than this
    share_min_prefix_v6: int = 32
    user_agent: str = "cwn-rdap/0.1"


@dataclass(frozen=True, slots=True)
class RdapAnswer:
    kind: str  # "ip", "asn" or "domain"
    handle: str | None
    name: str | None  # holder: the registrant's fn/org, else the object's name
    country: str | None
    abuse_emails: list[str]
    abuse_source: str | None  # handle path of the abuse entity, e.g. "GOGL/ZG39-ARIN"
    url: str
    fetched_at: datetime
    from_cache: bool
    error: str | None = None
    status: int = 0
    start_address: str | None = None
    end_address: str | None = None
    object_class: str | None = None
    related: list[str] = field(default_factory=list)  # other emails of the object's entities


# -- reading an RDAP object (pure, never raises) ------------------------------------------------

def _entities(obj: Any) -> list[dict[str, Any]]:
    ents = obj.get("entities") if isinstance(obj, dict) else None
    return [e for e in ents if isinstance(e, dict)] if isinstance(ents, list) else []


def _roles(ent: dict[str, Any]) -> set[str]:
    roles = ent.get("roles")
    return {r.lower() for r in roles if isinstance(r, str)} if isinstance(roles, list) else set()


def _handle(ent: dict[str, Any]) -> str:
    h = ent.get("handle")
    return "-" if h is None or isinstance(h, dict | list) else str(h)


def _vcard(ent: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(name, parameters, value) of each jCard property (RFC 7095); malformed ones skipped."""
    card = ent.get("vcardArray")
    if not (isinstance(card, list) and len(card) >= 2 and isinstance(card[1], list)):
        return
    for prop in card[1]:
        if isinstance(prop, list) and len(prop) >= 4 and isinstance(prop[0], str):
            params = prop[1] if isinstance(prop[1], dict) else {}
            yield prop[0].lower(), params, prop[3]


def _vcard_text(ent: dict[str, Any], name: str) -> str | None:
    for prop, _params, value in _vcard(ent):
        if prop != name:
            continue
        if isinstance(value, list):  # structured `org`: [name, unit, ...]
            value = next((v for v in value if isinstance(v, str) and v.strip()), None)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def _vcard_emails(ent: dict[str, Any]) -> list[str]:
    out = []
    for prop, _params, value in _vcard(ent):
        if prop == "email" and isinstance(value, str):
            addr = value.strip()
            if addr.lower().startswith("mailto:"):
                addr = addr[7:]
            if "@" in addr and not any(c.isspace() for c in addr):
                out.append(addr)
    return out


def _vcard_country(ent: dict[str, Any]) -> str | None:
    for prop, params, value in _vcard(ent):
        if prop != "adr":
            continue
        cc = params.get("cc")
        if not isinstance(cc, str) and isinstance(value, list) and len(value) >= 7:
            cc = value[6]
        if isinstance(cc, str) and len(cc.strip()) == 2 and cc.strip().isalpha():
            return cc.strip().upper()
    return None


def abuse_contacts(obj: Any) -> tuple[list[str], str | None]:
    """E-mail addresses of entities with the `abuse` role anywhere in the entity tree,
    shallowest first, deduplicated case-insensitively; and the handle path of the first
    abuse entity that contributed one."""
    emails: list[str] = []
    seen: set[str] = set()
    source: str | None = None
    level: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), e) for e in _entities(obj)]
    for _depth in range(_MAX_DEPTH):
        if not level:
            break
        deeper: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        for parents, ent in level:
            path = (*parents, _handle(ent))
            if "abuse" in _roles(ent):
                for addr in _vcard_emails(ent):
                    if addr.lower() not in seen:
                        seen.add(addr.lower())
                        emails.append(addr)
                        if source is None:
                            source = "/".join(path)
            deeper.extend((path, child) for child in _entities(ent))
        level = deeper
    return emails, source


def _other_emails(obj: Any, known: list[str]) -> list[str]:
    """E-mails of the object's other entities (and of the object, if it is an entity): a
    fallback recipient list, never abuse."""
    seen = {a.lower() for a in known}
    out: list[str] = []
    own = isinstance(obj, dict) and obj.get("objectClassName") == "entity"
    level = ([obj] if own else []) + _entities(obj)
    for _depth in range(_MAX_DEPTH):
        if not level:
            break
        for ent in level:
            for addr in _vcard_emails(ent):
                if addr.lower() not in seen:
                    seen.add(addr.lower())
                    out.append(addr)
        level = [c for e in level for c in _entities(e)]
    return out


def holder(obj: Any) -> tuple[str | None, str | None]:
    """(name, country) of whoever holds the object: the registrant entity on the object
    itself (its fn, else org), else the object's own name (an entity's own fn); country
    from the object, else the registrant's address."""
    if not isinstance(obj, dict):
        return None, None
    registrants = [e for e in _entities(obj) if "registrant" in _roles(e)]
    name = None
    for ent in registrants:
        name = _vcard_text(ent, "fn") or _vcard_text(ent, "org")
        if name:
            break
    if not name and obj.get("objectClassName") == "entity":
        name = _vcard_text(obj, "fn") or _vcard_text(obj, "org")
    if not name:
        for key in ("name", "unicodeName", "ldhName"):
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                name = value.strip()
                break
    country = obj.get("country")
    if not (isinstance(country, str) and len(country.strip()) == 2):
        country = next((c for c in map(_vcard_country, registrants) if c), None)
    return name, country.strip().upper() if isinstance(country, str) else None


def _looks_like_rdap(obj: dict[str, Any]) -> bool:
    return any(k in obj for k in ("objectClassName", "handle", "entities", "startAddress",
                                  "ldhName", "startAutnum", "name"))


def answer_from_json(obj: Any, *, kind: str, url: str, fetched_at: datetime,
                     from_cache: bool, status: int = 200) -> RdapAnswer:
    """Summarise one RDAP object; a malformed one gives an answer with `error` set."""
    def failed(error: str) -> RdapAnswer:
        return RdapAnswer(kind=kind, handle=None, name=None, country=None, abuse_emails=[],
                          abuse_source=None, url=url, fetched_at=fetched_at,
                          from_cache=from_cache, error=error, status=status)

    if not isinstance(obj, dict):
        return failed("answer is not a JSON object")
    if "errorCode" in obj:
        return failed(one_line(f"RDAP error {obj.get('errorCode')}: {obj.get('title', '')}"))
    if not _looks_like_rdap(obj):
        return failed("answer is not an RDAP object")
    emails, source = abuse_contacts(obj)
    name, country = holder(obj)
    handle = obj.get("handle")
    start, end = obj.get("startAddress"), obj.get("endAddress")
    cls = obj.get("objectClassName")
    return RdapAnswer(
        kind=kind, handle=None if handle is None else str(handle), name=name, country=country,
        abuse_emails=emails, abuse_source=source, url=url, fetched_at=fetched_at,
        from_cache=from_cache, status=status,
        start_address=start if isinstance(start, str) else None,
        end_address=end if isinstance(end, str) else None,
        object_class=cls if isinstance(cls, str) else None,
        related=_other_emails(obj, emails))


# -- IP keys and the shared-range index -------------------------------------------------------

def ip_keys(p: ParsedIPs) -> Keys:
    """One sortable 16-byte key per address; IPv4 lives in ::ffff:0:0/96 so both families
    share one index."""
    is6 = p.version == 6
    hi = np.where(is6, p.hi, np.uint64(0)).astype(np.uint64)
    lo = np.where(is6, p.lo, _V4_MAPPED | p.v4.astype(np.uint64)).astype(np.uint64)
    return cast(Keys, _key128(hi, lo))


def _pad16(key: bytes) -> bytes:
    """numpy drops the trailing NUL bytes of an S16 scalar; put them back."""
    return key.ljust(16, b"\0")


def _key_text(version: int, key: bytes) -> str:
    key = _pad16(key)
    if version == 4:
        return socket.inet_ntoa(key[12:])
    return str(ipaddress.IPv6Address(key))


class RangeSet:
    """An immutable, searchable set of address ranges. Sorted by (start, -end); `parent[i]`
    is the nearest earlier range ending at or after range i, so a lookup is a binary search
    plus a short vectorised walk up the parents for nested ranges."""

    def __init__(self, records: npt.NDArray[np.generic]) -> None:
        recs = np.unique(records)  # S32: start key + end key
        as_bytes = recs.view(np.uint8).reshape(-1, 32)
        order_key = np.concatenate([as_bytes[:, :16], 255 - as_bytes[:, 16:]], axis=1)
        order = np.argsort(np.ascontiguousarray(order_key).view("S32").reshape(-1),
                           kind="stable")
        sorted_bytes = np.ascontiguousarray(as_bytes[order])
        self.records = sorted_bytes.view("S32").reshape(-1)
        self.start: Keys = np.ascontiguousarray(sorted_bytes[:, :16]).view("S16").reshape(-1)
        self.end: Keys = np.ascontiguousarray(sorted_bytes[:, 16:]).view("S16").reshape(-1)
        n = len(self.start)
        parent = np.arange(n, dtype=np.int64) - 1
        todo = np.flatnonzero(parent >= 0)
        while len(todo):  # pointer jumping until each parent ends at or after the child
            p = parent[todo]
            bad = self.end[p] < self.end[todo]
            todo = todo[bad]
            parent[todo] = parent[p[bad]]
            todo = todo[parent[todo] >= 0]
        self.parent = parent

    def __len__(self) -> int:
        return len(self.start)

    def find(self, keys: Keys) -> npt.NDArray[np.int64]:
        """Row of the most specific range containing each key, or -1."""
        if not len(self.start) or not len(keys):
            return np.full(len(keys), -1, dtype=np.int64)
        cand = np.searchsorted(self.start, keys, side="right").astype(np.int64) - 1
        todo = np.flatnonzero(cand >= 0)
        while len(todo):
            outside = self.end[cand[todo]] < keys[todo]
            todo = todo[outside]
            cand[todo] = self.parent[cand[todo]]
            todo = todo[cand[todo] >= 0]
        return cand

    def cache_key(self, row: int) -> str:
        return range_cache_key(bytes(self.start[row]), bytes(self.end[row]))


class IpRangeIndex:
    """The ranges of cached IP answers, persisted as appended 32-byte records. Ranges added
    are merged into a new `RangeSet` on the next `snapshot()`, so a batch that fetches many
    answers rebuilds once, and a reader's row numbers never shift under it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            raw = path.read_bytes()
        except OSError:
            raw = b""
        raw = raw[: len(raw) - len(raw) % 32]  # a torn last append is dropped
        self._added: list[bytes] = []
        self._set = RangeSet(np.frombuffer(raw, dtype="S32") if raw else np.zeros(0, "S32"))

    def snapshot(self) -> RangeSet:
        with self._lock:
            if self._added:
                added = np.frombuffer(b"".join(self._added), dtype="S32")
                self._set = RangeSet(np.concatenate([self._set.records, added]))
                self._added = []
            return self._set

    def __len__(self) -> int:
        return len(self.snapshot())

    def find(self, keys: Keys) -> npt.NDArray[np.int64]:
        return self.snapshot().find(keys)

    def add(self, start: bytes, end: bytes) -> None:
        record = _pad16(start) + _pad16(end)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as fh:  # one small O_APPEND write: no torn records
                    fh.write(record)
            except OSError:
                pass  # the index is an optimisation; the answer itself is cached per range
            self._added.append(record)


def range_cache_key(start: bytes, end: bytes) -> str:
    return f"range:{_pad16(start).hex()}-{_pad16(end).hex()}"


def _address_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().split("/", 1)[0]


# -- the client ---------------------------------------------------------------------------------

class RdapClient:
    """Cached, rate-limited RDAP lookups. Safe to share between threads; batch lookups run
    their requests one after another so each answer can spare the requests of its range."""

    def __init__(self, config: RdapConfig, cache_dir: Path, clock: Clock = utc_now, *,
                 limiter: RateLimiter | None = None) -> None:
        for name in ("ip_url", "asn_url", "domain_url"):
            template = getattr(config, name)
            try:
                ok = "{}" in template and template.format("x") != template
            except (IndexError, KeyError, ValueError):
                ok = False
            if not ok:
                raise PublicDataError(f"RDAP {name} must contain one '{{}}': {template!r}")
        self.config = config
        self.clock = clock
        self.cache = HttpCache(cache_dir, "rdap", ttl_seconds=config.ttl_seconds,
                               negative_ttl_seconds=config.negative_ttl_seconds,
                               error_ttl_seconds=config.error_ttl_seconds, clock=clock)
        self.ranges = IpRangeIndex(self.cache.directory / "ip-ranges.bin")
        self.limiter = limiter or RateLimiter(config.rate_per_second)
        self._memo: dict[str, tuple[CacheEntry, RdapAnswer]] = {}
        self.client = httpx.Client(
            timeout=config.timeout, follow_redirects=True, max_redirects=5,
            headers={"Accept": "application/rdap+json, application/json;q=0.9",
                     "User-Agent": config.user_agent})

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RdapClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fetching and caching --

    def _request(self, url: str) -> tuple[str, int, Any, str | None]:
        """(final url, status, parsed JSON, error) of one GET."""
        got = http_get(self.client, self.limiter, url, max_bytes=self.config.max_bytes)
        if got.error is not None:
            return got.url, got.status, None, got.error
        try:
            obj: Any = json.loads(got.body or b"")
        except (ValueError, UnicodeDecodeError):
            obj = None
        if got.status != 200:
            title = obj.get("title") if isinstance(obj, dict) else None
            reason = "not found" if got.status in (404, 410) else "HTTP error"
            detail = f": {title}" if isinstance(title, str) and title.strip() else ""
            return got.url, got.status, None, one_line(f"{reason} (HTTP {got.status}){detail}")
        if obj is None:
            return got.url, got.status, None, "answer is not JSON"
        probe = answer_from_json(obj, kind="", url=got.url, fetched_at=self.clock(),
                                 from_cache=False)
        if probe.error is not None:
            return got.url, got.status, None, probe.error
        return got.url, got.status, obj, None

    def _answer(self, kind: str, entry: CacheEntry, from_cache: bool) -> RdapAnswer:
        if entry.error is not None:
            return RdapAnswer(kind=kind, handle=None, name=None, country=None, abuse_emails=[],
                              abuse_source=None, url=entry.url, fetched_at=entry.fetched_at,
                              from_cache=from_cache, error=entry.error, status=entry.status)
        return answer_from_json(entry.body, kind=kind, url=entry.url,
                                fetched_at=entry.fetched_at, from_cache=from_cache,
                                status=entry.status)

    def _cached(self, kind: str, key: str) -> RdapAnswer | None:
        """The cached answer for `key`, from memory when this process already read it (a
        feed batch hits the same few hundred ranges again and again), else from disk."""
        hit = self._memo.get(key)
        if hit is not None and self.cache.fresh(hit[0]):
            return hit[1]
        entry = self.cache.get(key)
        return None if entry is None else self._remember(kind, key, entry)

    def _remember(self, kind: str, key: str, entry: CacheEntry) -> RdapAnswer:
        answer = self._answer(kind, entry, True)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()  # crude but bounded; the disk cache still has everything
        self._memo[key] = (entry, answer)
        return answer

    def _store(self, kind: str, key: str, url: str, status: int, obj: Any,
               error: str | None) -> tuple[RdapAnswer, RdapAnswer]:
        """Cache a fresh answer; returns it as (fetched now, as later readers see it)."""
        entry = self.cache.put(key, url=url, status=status, body=obj, error=error)
        return self._answer(kind, entry, False), self._remember(kind, key, entry)

    def _lookup_key(self, kind: str, key: str, url: str) -> RdapAnswer:
        cached = self._cached(kind, key)
        if cached is not None:
            return cached
        final, status, obj, error = self._request(url)
        return self._store(kind, key, final, status, obj, error)[0]

    def _invalid(self, kind: str, error: str) -> RdapAnswer:
        return RdapAnswer(kind=kind, handle=None, name=None, country=None, abuse_emails=[],
                          abuse_source=None, url="", fetched_at=self.clock(),
                          from_cache=False, error=one_line(error))

    # -- public lookups --

    def lookup_asn(self, asn: int | str) -> RdapAnswer:
        text = str(asn).strip().upper().removeprefix("AS")
        if not text.isdigit() or not 0 <= int(text) < 2**32:
            return self._invalid("asn", f"not an AS number: {asn!r}")
        number = str(int(text))
        return self._lookup_key("asn", f"asn:{number}", self.config.asn_url.format(number))

    def lookup_domain(self, domain: str) -> RdapAnswer:
        name = str(domain).strip().rstrip(".").lower()
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return self._invalid("domain", f"not a domain name: {domain!r}")
        if not _LDH.match(name):
            return self._invalid("domain", f"not a domain name: {domain!r}")
        return self._lookup_key("domain", f"domain:{name}", self.config.domain_url.format(name))

    def lookup_ip(self, ip: str) -> RdapAnswer:
        return self.lookup_many_ips([ip])[0]

    def lookup_many_ips(self, ips: list[str]) -> list[RdapAnswer]:
        """One answer per input, in order. Each distinct address is resolved once: from a
        cached range covering it, its own cache entry, or a request whose answer range then
        also covers the rest of the batch."""
        n = len(ips)
        if not n:
            return []
        try:
            arr = pa.array(ips, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([x if isinstance(x, str) else None for x in ips], type=pa.string())
        parsed = parse_ips(pc.utf8_trim_whitespace(arr))
        out = np.empty(n, dtype=object)
        out.fill(self._invalid("ip", "not an IP address"))  # one shared answer for bad input
        valid = np.flatnonzero(parsed.version != 0)
        if not len(valid):
            return list(out)
        keys = ip_keys(parsed)[valid]
        ukeys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        uversion = parsed.version[valid][first]
        answers = np.empty(len(ukeys), dtype=object)
        pending = np.ones(len(ukeys), dtype=bool)

        ranges = self.ranges.snapshot()
        rows = ranges.find(ukeys)
        hit = np.flatnonzero(rows >= 0)
        if len(hit):
            distinct, which = np.unique(rows[hit], return_inverse=True)
            found = np.empty(len(distinct), dtype=object)
            ok = np.zeros(len(distinct), dtype=bool)
            for j, row in enumerate(distinct.tolist()):  # one cache read per range, not per IP
                cached = self._cached("ip", ranges.cache_key(row))
                if cached is not None:
                    found[j] = cached
                    ok[j] = True
            use = ok[which]
            answers[hit[use]] = found[which[use]]
            pending[hit[use]] = False

        for i in np.flatnonzero(pending).tolist():
            if not pending[i]:
                continue  # covered by a range fetched earlier in this loop
            self._resolve_one(i, ukeys, int(uversion[i]), answers, pending)
        out[valid] = answers[inverse.reshape(-1)]
        return list(out)

    def _resolve_one(self, i: int, ukeys: Keys, version: int,
                     answers: npt.NDArray[Any], pending: npt.NDArray[np.bool_]) -> None:
        text = _key_text(version, bytes(ukeys[i]))
        own_key = f"ip:{text}"
        pending[i] = False
        cached = self._cached("ip", own_key)
        if cached is not None:
            answers[i] = cached
            return
        final, status, obj, error = self._request(self.config.ip_url.format(text))
        span = None if error is not None else self._shareable_range(obj, version, ukeys[i])
        if span is None:
            answers[i] = self._store("ip", own_key, final, status, obj, error)[0]
            return
        start, end = span
        fresh, later = self._store("ip", range_cache_key(start, end), final, status, obj, None)
        self.ranges.add(start, end)
        s16, e16 = np.array([start], dtype="S16")[0], np.array([end], dtype="S16")[0]
        covered = np.flatnonzero(pending & (ukeys >= s16) & (ukeys <= e16))
        if len(covered):
            answers[covered] = later
            pending[covered] = False
        answers[i] = fresh

    def _shareable_range(self, obj: Any, version: int,
                         key: np.bytes_) -> tuple[bytes, bytes] | None:
        """The answer's address range as keys, if it contains the asked address, has the
        same family and is small enough to speak for every address in it."""
        if not isinstance(obj, dict):
            return None
        start, end = _address_text(obj.get("startAddress")), _address_text(obj.get("endAddress"))
        if start is None or end is None:
            return None
        p = parse_ips(pa.array([start, end], type=pa.string()))
        if not (p.version[0] == p.version[1] == version):
            return None
        k = ip_keys(p)
        s, e = _pad16(bytes(k[0])), _pad16(bytes(k[1]))
        q = _pad16(bytes(key))
        if not s <= q <= e:
            return None
        size = int.from_bytes(e, "big") - int.from_bytes(s, "big") + 1
        bits, prefix = (32, self.config.share_min_prefix_v4) if version == 4 else \
            (128, self.config.share_min_prefix_v6)
        if size > 2 ** (bits - prefix):
            return None
        return s, e
