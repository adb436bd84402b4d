"""DNS TXT lookups for asset-claim challenges, behind one small function.

Kept apart from the claim logic so the only thing that knows about dnspython is here: the
claim code asks "which TXT strings does this name have" and gets text or a one-line reason.
The resolver never caches between calls, so "check DNS now" right after a person published
the record sees it (as far as the recursive resolver's own cache allows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class TxtAnswer:
    name: str
    texts: list[str] = field(default_factory=list)
    error: str | None = None  # why there is no answer (one line); None: looked up fine


def parse_nameserver(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"dns_nameserver {value!r} is not host[:port]")
    return host, int(port)


def _resolver(nameserver: str | None, timeout: float) -> dns.resolver.Resolver:
    if nameserver:
        host, port = parse_nameserver(nameserver)
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [host]
        res.port = port
    else:
        res = dns.resolver.Resolver()
    res.cache = None
    res.lifetime = timeout
    res.timeout = timeout
    return res


def lookup_txt(name: str, *, nameserver: str | None = None,
               timeout: float = TIMEOUT) -> TxtAnswer:
    """The TXT strings of `name` (the character-strings of one record joined, as RFC 7208
    does for long SPF records). Never raises for DNS trouble: the answer carries `error`."""
    try:
        res = _resolver(nameserver, timeout)
    except ValueError as exc:
        return TxtAnswer(name, error=str(exc))
    try:
        answer = res.resolve(dns.name.from_text(name), dns.rdatatype.TXT,
                             raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return TxtAnswer(name, error=f"{name} does not exist (NXDOMAIN)")
    except dns.resolver.NoNameservers as exc:
        return TxtAnswer(name, error=f"no name server could answer for {name} "
                         f"({_short(exc)})")
    except dns.exception.Timeout:
        return TxtAnswer(name, error=f"the DNS lookup of {name} timed out")
    except dns.exception.DNSException as exc:
        return TxtAnswer(name, error=f"the DNS lookup of {name} failed: {_short(exc)}")
    texts: list[str] = []
    if answer.rrset is not None:
        for rdata in answer.rrset:
            parts = getattr(rdata, "strings", ())
            texts.append(b"".join(parts).decode("utf-8", "replace"))
    return TxtAnswer(name, texts=texts)


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or exc.__class__.__name__
