"""security.txt (RFC 9116): read a domain's own statement of whom to tell, and how far to
trust it.

For a domain with no registered owner, a security.txt is the owner's own answer to "whom do
we notify", better than a registry's abuse desk, but only if it is current and really the
owner's. So the parser does not just extract `Contact`; it validates the file against RFC 9116
and turns the outcome into one number the routing step can compare with other sources.

Confidence scale (0..1), from the strongest evidence down; the lowest applicable cap wins:

* 0.9  valid, and its OpenPGP signature verified against the configured keyring;
* 0.8  valid (unsigned, or signed but not verified: no keyring or unknown key);
* 0.5  valid but no e-mail contact (web form or phone only): a person must act;
* 0.4  expired (the contact may still work but nobody promised it does);
* 0.3  invalid for another reason (missing/duplicate Expires, http:// URIs, bad lines);
* 0.0  no Contact at all, or a signature that does not verify (possibly tampered);
* minus 0.2 when `Canonical` URLs are given but none is on the domain asked about: RFC 9116
  §2.5.2 says such a file SHOULD NOT be trusted for that domain (mirrored or copied file).

Signatures are checked with `gpg` only when a keyring is configured (RFC 9116 §2.3: trusting
the key is the researcher's job); otherwise a signed file is "signed, not verified".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx

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

SIGNED_HEADER = "-----BEGIN PGP SIGNED MESSAGE-----"
SIGNATURE_BEGIN = "-----BEGIN PGP SIGNATURE-----"
SIGNATURE_END = "-----END PGP SIGNATURE-----"
PATHS = ("/.well-known/security.txt", "/security.txt")  # RFC 9116 §3, in this order
MAX_BYTES = 64 * 1024

UNSIGNED = "unsigned"
NOT_VERIFIED = "signed, not verified"
VERIFIED = "signed, verified"
BAD_SIGNATURE = "signed, bad signature"
UNKNOWN_KEY = "signed, unknown key"
KEY_NOT_VALID = "signed, key expired or revoked"

_FIELD = re.compile(r"^([!-9;-~]+):[ \t]*(.*)$")  # RFC 5322 field-name, ":", value
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                       r"([Zz]|[+-]\d{2}:\d{2})$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BARE_EMAIL = re.compile(r"^[^@\s:/<>]+@[^@\s/<>]+\.[^@\s/<>]+$")
_LANG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")
_URI_FIELDS = {"acknowledgments": "Acknowledgments", "canonical": "Canonical",
               "encryption": "Encryption", "hiring": "Hiring", "policy": "Policy"}


@dataclass(slots=True)
class SecurityTxt:
    contact: list[str] = field(default_factory=list)
    expires: datetime | None = None
    encryption: list[str] = field(default_factory=list)
    acknowledgments: list[str] = field(default_factory=list)
    preferred_languages: list[str] = field(default_factory=list)
    canonical: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)
    hiring: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)  # unknown fields, e.g. CSAF
    emails: list[str] = field(default_factory=list)  # mailto contacts, file order
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    valid: bool = False
    expired: bool = False
    signed: bool = False
    signature: str = UNSIGNED
    confidence: float = 0.0


def parse_datetime(value: str) -> datetime | None:
    """RFC 3339 date-time; 'T' and 'Z' may be lower case (RFC 3339 §5.6 note)."""
    m = _DATETIME.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    if zone in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        return datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=tz)
    except ValueError:
        return None


def _unwrap_signed(lines: list[str], start: int,
                   errors: list[str], warnings: list[str]) -> tuple[list[tuple[int, str]], bool]:
    """The cleartext lines (with file line numbers) of an OpenPGP signed message starting
    at `start`, dash-escaping undone (RFC 4880 §7.1); and whether the structure was whole."""
    i = start + 1
    hashes = 0
    while i < len(lines) and lines[i].strip():
        if lines[i].startswith("Hash:"):
            hashes += 1
        else:
            errors.append(f"line {i + 1}: unexpected armor header in signed message")
        i += 1
    if not hashes:
        warnings.append("signed message has no 'Hash:' header")
    body: list[tuple[int, str]] = []
    i += 1
    while i < len(lines) and lines[i].rstrip() != SIGNATURE_BEGIN:
        line = lines[i]
        body.append((i + 1, line[2:] if line.startswith("- ") else line))
        i += 1
    if i >= len(lines):
        errors.append("signed message has no signature block")
        return body, False
    end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == SIGNATURE_END),
               None)
    if end is None:
        errors.append("signature block is not terminated")
        return body, False
    if any(line.strip() for line in lines[end + 1:]):
        warnings.append("text after the signature is not signed and was ignored")
    return body, True


def verify_signature(text: str, keyring: Path, timeout: float = 20.0) -> tuple[str, str | None]:
    """(signature status, problem) of a clear-signed text, checked by `gpg` in a throw-away
    home directory so the operator's own keyrings are never read or changed; with
    `--no-autostart` so no gpg-agent is left behind per check."""
    gpg = shutil.which("gpg")
    if gpg is None:
        return NOT_VERIFIED, "gpg is not installed; signature not verified"
    home = tempfile.mkdtemp(prefix="cwn-gpg-")
    base = [gpg, "--homedir", home, "--batch", "--no-tty", "--no-autostart",
            "--trust-model", "always"]
    try:
        imported = subprocess.run([*base, "--import", str(keyring.resolve())],
                                  capture_output=True, timeout=timeout, check=False)
        extra = [] if imported.returncode == 0 else \
            ["--no-default-keyring", "--keyring", str(keyring.resolve())]
        run = subprocess.run([*base, *extra, "--status-fd", "1", "--verify"],
                             input=text.encode("utf-8"), capture_output=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return NOT_VERIFIED, one_line(f"gpg failed: {exc}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    status = {line.split()[1] for line in run.stdout.decode("utf-8", "replace").splitlines()
              if line.startswith("[GNUPG:] ") and len(line.split()) > 1}
    if "BADSIG" in status:
        return BAD_SIGNATURE, "OpenPGP signature does not match the content"
    if status & {"EXPKEYSIG", "REVKEYSIG"}:
        return KEY_NOT_VALID, "signed with an expired or revoked key"
    if "GOODSIG" in status and "VALIDSIG" in status and run.returncode == 0:
        return VERIFIED, None
    if status & {"NO_PUBKEY", "ERRSIG"}:
        return UNKNOWN_KEY, "signing key is not in the configured keyring"
    return NOT_VERIFIED, "gpg could not verify the signature"


def _contact(value: str, out: SecurityTxt, line_no: int) -> None:
    low = value.lower()
    if low.startswith("mailto:"):
        target = urllib.parse.unquote(value[7:].split("?", 1)[0])
        addrs = [a.strip() for a in target.split(",") if a.strip()]
        if not addrs or not all("@" in a for a in addrs):
            out.errors.append(f"line {line_no}: Contact mailto: has no e-mail address")
        out.contact.append(value)
        _add_emails(out, [a for a in addrs if "@" in a])
    elif _BARE_EMAIL.match(value):
        out.warnings.append(f"line {line_no}: Contact {value!r} is not a URI; read as mailto:")
        out.contact.append(f"mailto:{value}")
        _add_emails(out, [value])
    else:
        out.contact.append(value)
        _check_uri("Contact", value, out, line_no, known=("https:", "tel:"))


def _add_emails(out: SecurityTxt, addrs: list[str]) -> None:
    seen = {e.lower() for e in out.emails}
    for addr in addrs:
        if addr.lower() not in seen:
            seen.add(addr.lower())
            out.emails.append(addr)


def _check_uri(name: str, value: str, out: SecurityTxt, line_no: int,
               known: tuple[str, ...] = ()) -> None:
    low = value.lower()
    if low.startswith("http:"):
        out.errors.append(f"line {line_no}: {name} must use https://, not http://")
    elif not _SCHEME.match(value):
        out.warnings.append(f"line {line_no}: {name} value is not a URI")
    elif known and not low.startswith(known):
        out.warnings.append(f"line {line_no}: {name} uses an unusual URI scheme")


def _canonical_on(domain: str, urls: list[str]) -> bool:
    want = domain.strip().rstrip(".").lower()
    for url in urls:
        try:
            host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
        except ValueError:
            continue
        if host == want:
            return True
    return False


def _confidence(out: SecurityTxt, canonical_mismatch: bool) -> float:
    if not out.contact or out.signature == BAD_SIGNATURE:
        return 0.0
    score = 0.9 if out.signature == VERIFIED else 0.8
    if not out.emails:
        score = min(score, 0.5)
    if out.expired:
        score = min(score, 0.4)
    if out.errors and not (out.expired and len(out.errors) == 1):
        score = min(score, 0.3)
    if canonical_mismatch:
        score -= 0.2
    return round(max(0.0, min(1.0, score)), 2)


def parse_security_txt(text: str, *, domain: str | None, now: datetime,
                       keyring: Path | None = None) -> SecurityTxt:
    """Parse and validate one security.txt. Never raises: every problem becomes an entry in
    `errors` (the file breaks RFC 9116; `valid` is False) or `warnings` (allowed, but
    suspicious)."""
    out = SecurityTxt()
    if text.startswith("\ufeff"):
        text = text[1:]
        out.warnings.append("file starts with a byte order mark")
    lines = re.split(r"\r?\n", text)
    header = next((i for i, line in enumerate(lines) if line.rstrip() == SIGNED_HEADER), None)
    numbered: list[tuple[int, str]]
    if header is None:
        numbered = [(i + 1, line) for i, line in enumerate(lines)]
    else:
        out.signed = True
        if any(line.strip() for line in lines[:header]):
            out.errors.append("text before the signed message is not signed and was ignored")
        numbered, whole = _unwrap_signed(lines, header, out.errors, out.warnings)
        out.signature = NOT_VERIFIED
        if whole and keyring is not None:
            out.signature, problem = verify_signature("\n".join(lines[header:]), keyring)
            if out.signature == BAD_SIGNATURE and problem:
                out.errors.append(problem)
            elif problem:
                out.warnings.append(problem)

    expires: list[tuple[int, str]] = []
    languages = 0
    for line_no, raw in numbered:
        line = raw.rstrip(" \t\r")
        if not line or line.startswith("#"):
            continue
        m = _FIELD.match(line)
        if m is None:
            out.errors.append(f"line {line_no}: not a 'Name: value' field")
            continue
        name, value = m.group(1), m.group(2).strip()
        key = name.lower()
        if not value:
            out.errors.append(f"line {line_no}: field {name} has no value")
            continue
        if key == "contact":
            _contact(value, out, line_no)
        elif key == "expires":
            expires.append((line_no, value))
        elif key == "preferred-languages":
            languages += 1
            tags = [t.strip() for t in value.split(",") if t.strip()]
            if any(not _LANG.match(t) for t in tags):
                out.warnings.append(f"line {line_no}: Preferred-Languages has a bad tag")
            if languages == 1:
                out.preferred_languages = tags
        elif key in _URI_FIELDS:
            getattr(out, key).append(value)
            _check_uri(_URI_FIELDS[key], value, out, line_no)
        else:
            out.extra.setdefault(name, []).append(value)

    if languages > 1:
        out.errors.append(f"Preferred-Languages appears {languages} times (at most once)")
    if not out.contact:
        out.errors.append("Contact is missing (required)")
    if not expires:
        out.errors.append("Expires is missing (required)")
    elif len(expires) > 1:
        out.errors.append(f"Expires appears {len(expires)} times (exactly once)")
    if expires:
        line_no, value = expires[0]
        out.expires = parse_datetime(value)
        if out.expires is None:
            out.errors.append(f"line {line_no}: Expires is not an RFC 3339 date-time")
        elif out.expires <= now:
            out.expired = True
            out.errors.append(f"expired on {out.expires.isoformat()}")
        elif out.expires > now + timedelta(days=366):
            out.warnings.append("Expires is more than a year ahead (RFC 9116 §2.5.5)")
    mismatch = bool(domain and out.canonical and not _canonical_on(domain, out.canonical))
    if mismatch:
        out.warnings.append(f"no Canonical URL is on {domain}: the file may not apply to it")
    out.valid = not out.errors
    out.confidence = _confidence(out, mismatch)
    return out


# -- fetching -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SecurityTxtResult:
    domain: str
    url: str
    status: int  # HTTP status of the answer used (0: no HTTP answer)
    fetched_at: datetime
    from_cache: bool
    parsed: SecurityTxt | None = None
    error: str | None = None  # why no file could be used; one line
    notes: list[str] = field(default_factory=list)  # about the transfer (redirects, charset)


def normalize_domain(domain: str) -> str | None:
    """Lower-case IDNA host name, or None: the name is put into a URL, so anything that is
    not a plain host name (slashes, '@', ports, spaces) is refused rather than escaped."""
    name = str(domain).strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return name if _HOST.match(name) else None


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    parts = [p.strip() for p in content_type.split(";")]
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in parts[1:]
                    if p.lower().startswith("charset=")), None)
    return parts[0].lower(), charset


def _decode(body: bytes, charset: str | None) -> tuple[str, list[str]]:
    """RFC 9116 requires UTF-8, but a contact address in a file served as Latin-1 is still
    the owner's contact address: honour a declared charset, and say so."""
    if charset in (None, "utf-8", "utf8"):
        try:
            return body.decode("utf-8"), []
        except UnicodeDecodeError:
            return body.decode("utf-8", "replace"), ["not valid UTF-8; bad bytes replaced"]
    note = f"served with charset={charset}, not utf-8 (RFC 9116 §4)"
    try:
        return body.decode(charset), [note]
    except (LookupError, UnicodeDecodeError):
        return body.decode("utf-8", "replace"), [note + "; read as UTF-8"]


class SecurityTxtFetcher:
    """Fetch, cache and parse security.txt files. The raw text is cached, not the verdict:
    expiry depends on the day the file is read, so it is parsed again on every use."""

    def __init__(self, cache_dir: Path, *, url_template: str = "https://{domain}",
                 timeout: float = 10.0, rate_per_second: float = 2.0,
                 ttl_seconds: float = 86400, negative_ttl_seconds: float = 6 * 3600,
                 error_ttl_seconds: float = 900, clock: Clock = utc_now,
                 keyring: Path | None = None, max_workers: int = 8,
                 max_bytes: int = MAX_BYTES, limiter: RateLimiter | None = None) -> None:
        try:
            ok = url_template.format(domain="x") != url_template
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            raise PublicDataError(f"url_template must contain '{{domain}}': {url_template!r}")
        if keyring is not None and not keyring.is_file():
            raise PublicDataError(f"OpenPGP keyring not found: {keyring}")
        self.url_template = url_template
        self.clock = clock
        self.keyring = keyring
        self.max_workers = max(1, max_workers)
        self.max_bytes = max_bytes
        self.cache = HttpCache(cache_dir, "securitytxt", ttl_seconds=ttl_seconds,
                               negative_ttl_seconds=negative_ttl_seconds,
                               error_ttl_seconds=error_ttl_seconds, clock=clock)
        self.limiter = limiter or RateLimiter(rate_per_second)
        self.client = httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=3,
                                   headers={"User-Agent": "cwn-securitytxt/0.1",
                                            "Accept": "text/plain"})

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SecurityTxtFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _result(self, domain: str, entry: CacheEntry, from_cache: bool) -> SecurityTxtResult:
        body = entry.body if isinstance(entry.body, dict) else {}
        notes = [str(n) for n in body.get("notes", [])] if isinstance(body.get("notes"),
                                                                       list) else []
        parsed = None
        text = body.get("text")
        if entry.error is None and isinstance(text, str):
            parsed = parse_security_txt(text, domain=domain, now=self.clock(),
                                        keyring=self.keyring)
        return SecurityTxtResult(domain=domain, url=entry.url, status=entry.status,
                                 fetched_at=entry.fetched_at, from_cache=from_cache,
                                 parsed=parsed, error=entry.error, notes=notes)

    def fetch(self, domain: str) -> SecurityTxtResult:
        name = normalize_domain(domain)
        if name is None:
            return SecurityTxtResult(domain=str(domain), url="", status=0,
                                     fetched_at=self.clock(), from_cache=False,
                                     error=one_line(f"not a domain name: {domain!r}"))
        key = f"domain:{name}"
        entry = self.cache.get(key)
        if entry is not None:
            return self._result(name, entry, True)
        return self._result(name, self._download(key, name), False)

    def _download(self, key: str, name: str) -> CacheEntry:
        base = self.url_template.format(domain=name).rstrip("/")
        problems: list[str] = []
        first: tuple[str, int] | None = None
        transient: tuple[str, int] | None = None
        for path in PATHS:
            got = http_get(self.client, self.limiter, base + path, max_bytes=self.max_bytes)
            first = first or (got.url, got.status)
            media, charset = _media_type(got.content_type)
            if got.error is not None:
                problems.append(f"{path}: {got.error}")
                if got.status == 0:
                    transient = (got.url, 0)
                    break  # the host is unreachable; the second path would be too
            elif got.status != 200:
                problems.append(f"{path}: HTTP {got.status}")
                if got.status == 429 or got.status >= 500:
                    transient = transient or (got.url, got.status)
            elif media != "text/plain":
                problems.append(f"{path}: content type {media or 'missing'}, not text/plain")
            else:
                text, notes = _decode(got.body or b"", charset)
                host = httpx.URL(got.url).host.lower()
                if host != httpx.URL(base).host.lower():
                    notes.append(f"redirected to {host}; RFC 9116 §3 asks to check such "
                                 "redirects")
                return self.cache.put(key, url=got.url, status=got.status,
                                      body={"text": text, "notes": notes},
                                      content_type=got.content_type)
        url, status = transient or first or (base + PATHS[0], 0)
        return self.cache.put(key, url=url, status=status,
                              error=one_line("no usable security.txt: " + "; ".join(problems)))

    def fetch_many(self, domains: list[str]) -> dict[str, SecurityTxtResult]:
        """Results keyed by the names as given; each distinct domain is fetched once, a few
        at a time (the per-host rate limit still applies)."""
        unique = list(dict.fromkeys(domains))
        by_name: dict[str, str] = {}
        for d in unique:
            by_name.setdefault(normalize_domain(d) or f"\0{d}", d)
        workers = min(self.max_workers, len(by_name)) or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            fetched = dict(zip(by_name, pool.map(self.fetch, list(by_name.values())),
                               strict=True))
        return {d: fetched[normalize_domain(d) or f"\0{d}"] for d in unique}
