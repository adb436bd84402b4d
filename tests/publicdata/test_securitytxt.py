"""security.txt parsing (RFC 9116) over the real sample files, signatures with a real gpg,
and fetching from a loopback server with fallback, limits and caching."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cwn.publicdata.errors import PublicDataError
from cwn.publicdata.securitytxt import (
    BAD_SIGNATURE,
    NOT_VERIFIED,
    UNKNOWN_KEY,
    UNSIGNED,
    VERIFIED,
    SecurityTxtFetcher,
    parse_datetime,
    parse_security_txt,
)
from publicdata_http import FakeClock, LoopbackServer, Reply, closed_port_url

JUNE_2026 = datetime(2026, 6, 1, tzinfo=UTC)
JAN_2025 = datetime(2025, 1, 1, tzinfo=UTC)
JAN_2026 = datetime(2026, 1, 1, tzinfo=UTC)


def sample(shared_data: Path, name: str) -> str:
    return (shared_data / "securitytxt" / name).read_text(encoding="utf-8")


@dataclass
class Expect:
    valid: bool
    expired: bool
    signature: str
    emails: list[str]
    confidence: float
    errors: list[str]  # substrings, each must occur in some error
    warnings: list[str]


REAL_FILES = [
    pytest.param("2fa.directory.security.txt", "2fa.directory", JUNE_2026,
                 Expect(False, True, UNSIGNED, [], 0.4,
                        ["expired on 2025-06-30T00:00:00+00:00"], []),
                 id="2fa-expired-lowercase-z"),
    pytest.param("2fa.directory.security.txt", "2fa.directory", JAN_2025,
                 Expect(True, False, UNSIGNED, [], 0.5, [], []), id="2fa-valid-web-contact-only"),
    pytest.param("2fa.directory.security.txt", "mirror.example", JAN_2025,
                 Expect(True, False, UNSIGNED, [], 0.3, [],
                        ["no Canonical URL is on mirror.example"]), id="2fa-other-domain"),
    pytest.param("grapheneos.org.security.txt", "grapheneos.org", JUNE_2026,
                 Expect(True, False, NOT_VERIFIED, ["security@grapheneos.org"], 0.8, [], []),
                 id="grapheneos-clearsigned"),
    pytest.param("grapheneos.org.security.txt", None, JAN_2026,
                 Expect(True, False, NOT_VERIFIED, ["security@grapheneos.org"], 0.8, [],
                        ["more than a year ahead"]), id="grapheneos-expires-far-ahead"),
    pytest.param("template.security.txt", "example.com", JUNE_2026,
                 Expect(False, False, UNSIGNED, ["security@example.com"], 0.3,
                        ["Expires is missing"], ["is not a URI; read as mailto:"]),
                 id="template-bare-email-no-expires"),
    pytest.param("rfc9116.txt", "example.com", JUNE_2026,
                 Expect(False, False, UNSIGNED, [], 0.0,
                        ["Contact is missing", "Expires is missing", "not a 'Name: value'"],
                        ["byte order mark"]), id="not-a-security-txt"),
]


@pytest.mark.parametrize(("name", "domain", "now", "want"), REAL_FILES)
def test_real_files(shared_data: Path, name: str, domain: str | None, now: datetime,
                    want: Expect) -> None:
    got = parse_security_txt(sample(shared_data, name), domain=domain, now=now)
    assert (got.valid, got.expired, got.signature, got.emails, got.confidence) == \
        (want.valid, want.expired, want.signature, want.emails, want.confidence)
    assert got.signed == (want.signature != UNSIGNED)
    for part in want.errors:
        assert any(part in e for e in got.errors), (part, got.errors)
    for part in want.warnings:
        assert any(part in w for w in got.warnings), (part, got.warnings)
    if not want.errors:
        assert got.errors == []
    if not want.warnings:
        assert got.warnings == []
    assert 0.0 <= got.confidence <= 1.0


def test_real_files_fields(shared_data: Path) -> None:
    g = parse_security_txt(sample(shared_data, "grapheneos.org.security.txt"),
                           domain="grapheneos.org", now=JUNE_2026)
    assert g.contact == ["mailto:security@grapheneos.org"]
    assert g.canonical == ["https://grapheneos.org/.well-known/security.txt"]
    assert g.encryption[0].startswith("data:application/x-age-public-key,age1dcftzgq")
    assert g.expires == datetime(2027, 4, 30, tzinfo=UTC)
    assert g.preferred_languages == ["en"] and g.extra == {}
    f = parse_security_txt(sample(shared_data, "2fa.directory.security.txt"),
                           domain="2fa.directory", now=JUNE_2026)
    assert f.contact == ["https://github.com/2factorauth/twofactorauth/security"]
    assert f.policy == ["https://github.com/2factorauth/twofactorauth/security/policy"]
    assert f.expires == datetime(2025, 6, 30, tzinfo=UTC)


SYNTHETIC = [
    # text, valid, emails, error substrings, warning substrings
    ("CONTACT: mailto:A@x.example?subject=hi\r\ncontact: mailto:b%40y.example\r\n"
     "Contact: mailto:a@X.example\r\nContact: tel:+31-70-000\r\n"
     "Expires: 2027-01-01T00:00:00.5+02:00\r\n", True,
     ["A@x.example", "b@y.example"], [], []),
    ("Contact: mailto:a@x.example\nExpires: 2027-01-01T00:00:00Z\n"
     "Expires: 2027-02-01T00:00:00Z\n", False, ["a@x.example"], ["Expires appears 2 times"], []),
    ("Contact: mailto:a@x.example\nExpires: 30 June 2027\n", False, ["a@x.example"],
     ["not an RFC 3339 date-time"], []),
    ("Contact: mailto:a@x.example\nExpires: 2027-02-30T00:00:00Z\n", False, ["a@x.example"],
     ["not an RFC 3339 date-time"], []),
    ("Contact: http://x.example/report\nExpires: 2027-01-01T00:00:00Z\n", False, [],
     ["Contact must use https://"], []),
    ("Contact: mailto:a@x.example\nExpires: 2027-01-01T00:00:00Z\n"
     "Preferred-Languages: en, nl\nPreferred-Languages: de\n", False, ["a@x.example"],
     ["Preferred-Languages appears 2 times"], []),
    ("Contact: mailto:a@x.example\nExpires: 2027-01-01T00:00:00Z\nPolicy: http://x/p\n"
     "Encryption: openpgp4fpr:5f2de5521c63a801ab59ccb603d49de44b29100f\nHiring: jobs\n"
     "CSAF: https://x.example/.well-known/csaf/provider-metadata.json\n", False,
     ["a@x.example"], ["Policy must use https://"], ["Hiring value is not a URI"]),
    ("Contact: mailto:a@x.example\nExpires: 2027-01-01T00:00:00Z\n  Contact: mailto:c@z\n"
     "Garbage line\nEmpty:\n# Contact: mailto:comment@x.example\n", False, ["a@x.example"],
     ["line 3: not a 'Name: value'", "line 4: not a 'Name", "field Empty has no value"], []),
    ("Contact: mailto:\nContact: ftp://x.example\nExpires: 2027-01-01T00:00:00Z\n", False, [],
     ["mailto: has no e-mail address"], ["unusual URI scheme"]),
    ("", False, [], ["Contact is missing", "Expires is missing"], []),
    ("\x00\xff\ufffd:\n\ufeffContact: x\n", False, [], ["Expires is missing"], []),
]


@pytest.mark.parametrize(("text", "valid", "emails", "errors", "warnings"), SYNTHETIC)
def test_rules(text: str, valid: bool, emails: list[str], errors: list[str],
               warnings: list[str]) -> None:
    got = parse_security_txt(text, domain=None, now=JUNE_2026)
    assert (got.valid, got.emails) == (valid, emails)
    for part in errors:
        assert any(part in e for e in got.errors), (part, got.errors)
    for part in warnings:
        assert any(part in w for w in got.warnings), (part, got.warnings)


def test_fields_are_kept() -> None:
    got = parse_security_txt(SYNTHETIC[6][0], domain=None, now=JUNE_2026)
    assert got.extra == {"CSAF": ["https://x.example/.well-known/csaf/provider-metadata.json"]}
    assert got.encryption == ["openpgp4fpr:5f2de5521c63a801ab59ccb603d49de44b29100f"]
    assert got.hiring == ["jobs"] and got.policy == ["http://x/p"]
    first = parse_security_txt(SYNTHETIC[0][0], domain=None, now=JUNE_2026)
    assert first.contact[3] == "tel:+31-70-000"
    assert first.expires == datetime(2026, 12, 31, 22, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(("value", "ok"), [
    ("2025-06-30T00:00:00z", True), ("2025-06-30t00:00:00Z", True),
    ("2025-06-30T23:59:60Z", True), ("2025-06-30T00:00:00-05:30", True),
    ("2025-06-30 00:00:00Z", False), ("2025-06-30T00:00:00", False), ("2025-06-30", False),
    ("2025-13-01T00:00:00Z", False), ("", False)])
def test_rfc3339(value: str, ok: bool) -> None:
    assert (parse_datetime(value) is not None) is ok


SIGNED_BODY = ("Contact: mailto:security@cwn-test.example\n"
               "Expires: 2027-01-01T00:00:00Z\n"
               "Canonical: https://cwn-test.example/.well-known/security.txt\n")


def fake_signed(body: str, tail: str = "") -> str:
    escaped = "".join("- " + line if line.startswith("-") else line
                      for line in body.splitlines(keepends=True))
    return ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + escaped +
            "-----BEGIN PGP SIGNATURE-----\n\niQ==\n=abcd\n-----END PGP SIGNATURE-----\n" + tail)


def test_clearsigned_structure() -> None:
    body = SIGNED_BODY + "-Custom: dash-escaped\n"
    got = parse_security_txt(fake_signed(body), domain="cwn-test.example", now=JUNE_2026)
    assert (got.signed, got.signature, got.valid) == (True, NOT_VERIFIED, True)
    assert got.extra == {"-Custom": ["dash-escaped"]}
    tail = parse_security_txt(fake_signed(SIGNED_BODY, "Contact: mailto:evil@x.example\n"),
                              domain=None, now=JUNE_2026)
    assert tail.emails == ["security@cwn-test.example"]  # unsigned trailer ignored
    assert any("after the signature" in w for w in tail.warnings)
    head = parse_security_txt("Contact: mailto:evil@x.example\n" + fake_signed(SIGNED_BODY),
                              domain=None, now=JUNE_2026)
    assert head.emails == ["security@cwn-test.example"] and not head.valid
    cut = fake_signed(SIGNED_BODY).split("-----BEGIN PGP SIGNATURE-----")[0]
    broken = parse_security_txt(cut, domain=None, now=JUNE_2026)
    assert broken.signed and not broken.valid
    assert any("no signature block" in e for e in broken.errors)
    open_end = parse_security_txt(fake_signed(SIGNED_BODY).replace(
        "-----END PGP SIGNATURE-----", ""), domain=None, now=JUNE_2026)
    assert any("not terminated" in e for e in open_end.errors)


@dataclass
class Signer:
    home: str
    keyring: Path

    def clearsign(self, text: str) -> str:
        run = subprocess.run(["gpg", "--homedir", self.home, "--batch", "--pinentry-mode",
                              "loopback", "--passphrase", "", "--clearsign"],
                             input=text.encode(), capture_output=True, check=True, timeout=60)
        return run.stdout.decode()


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg not installed")
    home = tempfile.mkdtemp(prefix="cwn-t-")  # short path: gpg-agent socket length limit
    try:
        subprocess.run(["gpg", "--homedir", home, "--batch", "--passphrase", "",
                        "--pinentry-mode", "loopback", "--quick-gen-key",
                        "CWN Test <security@cwn-test.example>", "ed25519", "sign", "never"],
                       capture_output=True, check=True, timeout=60)
        keyring = Path(home) / "exported.gpg"
        keyring.write_bytes(subprocess.run(["gpg", "--homedir", home, "--export"],
                                           capture_output=True, check=True).stdout)
        yield Signer(home, keyring)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_signature_verified_with_keyring(signer: Signer, shared_data: Path) -> None:
    signed = signer.clearsign(SIGNED_BODY + "-Note: dash-escaped\n")
    assert "\n- -Note: dash-escaped" in signed
    good = parse_security_txt(signed, domain="cwn-test.example", now=JUNE_2026,
                              keyring=signer.keyring)
    assert (good.signature, good.valid, good.confidence) == (VERIFIED, True, 0.9)
    assert good.extra == {"-Note": ["dash-escaped"]}
    tampered = parse_security_txt(signed.replace("security@cwn", "attacker@cwn"),
                                  domain="cwn-test.example", now=JUNE_2026,
                                  keyring=signer.keyring)
    assert (tampered.signature, tampered.valid, tampered.confidence) == (BAD_SIGNATURE, False,
                                                                         0.0)
    other = parse_security_txt(sample(shared_data, "grapheneos.org.security.txt"),
                               domain="grapheneos.org", now=JUNE_2026, keyring=signer.keyring)
    assert (other.signature, other.valid, other.confidence) == (UNKNOWN_KEY, True, 0.8)
    unverified = parse_security_txt(signed, domain="cwn-test.example", now=JUNE_2026)
    assert (unverified.signature, unverified.confidence) == (NOT_VERIFIED, 0.8)


# -- fetching ---------------------------------------------------------------------------------

WK, LEGACY = "/.well-known/security.txt", "/security.txt"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(JUNE_2026)


@pytest.fixture
def server(shared_data: Path) -> Iterator[LoopbackServer]:
    graphene = sample(shared_data, "grapheneos.org.security.txt")
    twofa = sample(shared_data, "2fa.directory.security.txt")
    routes = {
        "/grapheneos.org" + WK: Reply.text(graphene),
        "/2fa.directory" + LEGACY: Reply.text(twofa),
        "/html.example" + WK: Reply.text("<html>hi</html>", content_type="text/html"),
        "/html.example" + LEGACY: Reply.text("<html>hi</html>",
                                             content_type="text/html; charset=utf-8"),
        "/mixed.example" + WK: Reply.text(graphene, content_type=None),
        "/mixed.example" + LEGACY: Reply.text(twofa, content_type="text/plain"),
        "/big.example" + WK: Reply.text("#" * 70_000),
        "/big.example" + LEGACY: Reply(200, b"#" * 70_000, "text/plain", send_length=False),
        "/latin.example" + WK: Reply(200, "Contact: mailto:sécu@x.example\n".encode("latin-1"),
                                     "text/plain; charset=iso-8859-1"),
        "/broken.example" + WK: Reply(503, b"down", "text/plain"),
    }
    with LoopbackServer(routes) as srv:
        srv.routes["/moved.example" + WK] = Reply.redirect(
            srv.base_url.replace("127.0.0.1", "localhost") + "/grapheneos.org" + WK)
        yield srv


def fetcher_for(server_url: str, tmp_path: Path, clock: FakeClock,
                **kw: object) -> SecurityTxtFetcher:
    return SecurityTxtFetcher(tmp_path, url_template=server_url + "/{domain}", timeout=2.0,
                              rate_per_second=0, clock=clock, **kw)  # type: ignore[arg-type]


FETCH_CASES = [
    # domain, requests (.well-known, legacy), url suffix, error part, emails, notes part
    ("grapheneos.org", (1, 0), WK, None, ["security@grapheneos.org"], None),
    ("2fa.directory", (1, 1), LEGACY, None, [], None),
    ("html.example", (1, 1), WK, "content type text/html, not text/plain", None, None),
    ("mixed.example", (1, 1), LEGACY, None, [], None),
    ("big.example", (1, 1), WK, "/security.txt: answer larger than 65536 bytes", None, None),
    ("nothing.example", (1, 1), WK, "/.well-known/security.txt: HTTP 404; /security.txt: "
     "HTTP 404", None, None),
    ("latin.example", (1, 0), WK, None, ["sécu@x.example"], "charset=iso-8859-1"),
    ("moved.example", (1, 0), "/grapheneos.org" + WK, None, ["security@grapheneos.org"],
     "redirected to localhost"),
    ("broken.example", (1, 1), WK, "HTTP 503", None, None),
]


@pytest.mark.parametrize(("domain", "requests", "suffix", "error", "emails", "note"),
                         FETCH_CASES)
def test_fetch(server: LoopbackServer, tmp_path: Path, clock: FakeClock, domain: str,
               requests: tuple[int, int], suffix: str, error: str | None,
               emails: list[str] | None, note: str | None) -> None:
    with fetcher_for(server.base_url, tmp_path, clock) as fetcher:
        got = fetcher.fetch(domain)
        assert (server.count(f"/{domain}{WK}"), server.count(f"/{domain}{LEGACY}")) == requests
        assert got.url.endswith(suffix) and got.domain == domain and not got.from_cache
        if error is None:
            assert got.error is None and got.parsed is not None and got.status == 200
            assert got.parsed.emails == emails
        else:
            assert got.parsed is None and got.error is not None and error in got.error
            assert "\n" not in got.error
        if note is not None:
            assert any(note in n for n in got.notes), got.notes
        before = server.count()
        again = fetcher.fetch(domain.upper())
        assert again.from_cache and again.error == got.error and again.notes == got.notes
        assert server.count() == before  # answered from the cache


def test_cache_keeps_text_and_reparses_with_todays_date(server: LoopbackServer,
                                                        tmp_path: Path,
                                                        clock: FakeClock) -> None:
    clock.now = datetime(2027, 4, 29, 12, tzinfo=UTC)
    with fetcher_for(server.base_url, tmp_path, clock) as fetcher:
        first = fetcher.fetch("grapheneos.org")
        assert first.parsed is not None and first.parsed.valid
        clock.advance(hours=13)  # cached for a day, but the file expired at midnight
        cached = fetcher.fetch("grapheneos.org")
        assert cached.from_cache and cached.parsed is not None and cached.parsed.expired
        clock.advance(hours=12)
        assert not fetcher.fetch("grapheneos.org").from_cache
        assert server.count() == 2


def test_negative_and_error_ttl(server: LoopbackServer, tmp_path: Path,
                                clock: FakeClock) -> None:
    with fetcher_for(server.base_url, tmp_path, clock) as fetcher:
        assert fetcher.fetch("nothing.example").error is not None
        assert fetcher.fetch("broken.example").error is not None
        clock.advance(minutes=16)  # transient (503) retried, 404 still cached
        assert not fetcher.fetch("broken.example").from_cache
        assert fetcher.fetch("nothing.example").from_cache
        clock.advance(hours=6)
        server.routes["/nothing.example" + WK] = server.routes["/grapheneos.org" + WK]
        late = fetcher.fetch("nothing.example")
        assert not late.from_cache and late.parsed is not None
        assert any("no Canonical URL is on nothing.example" in w for w in late.parsed.warnings)


def test_server_down_is_an_error_not_an_exception(tmp_path: Path, clock: FakeClock) -> None:
    with fetcher_for(closed_port_url(), tmp_path, clock) as fetcher:
        got = fetcher.fetch("grapheneos.org")
    assert got.status == 0 and got.parsed is None
    assert got.error is not None and "ConnectError" in got.error
    assert "/security.txt:" not in got.error.replace("/.well-known/security.txt:", "")


@pytest.mark.parametrize("bad", ["exa mple.com", "x/../y.example", "a@b.example",
                                 "host:8080", "", "-" * 300])
def test_bad_domains_are_refused_without_request(server: LoopbackServer, tmp_path: Path,
                                                 clock: FakeClock, bad: str) -> None:
    with fetcher_for(server.base_url, tmp_path, clock) as fetcher:
        got = fetcher.fetch(bad)
    assert got.error is not None and got.error.startswith("not a domain name")
    assert server.count() == 0


def test_fetch_many_dedupes_and_runs_in_parallel(server: LoopbackServer, tmp_path: Path,
                                                 clock: FakeClock, shared_data: Path) -> None:
    graphene = sample(shared_data, "grapheneos.org.security.txt")
    for i in range(4):
        server.routes[f"/slow{i}.example{WK}"] = Reply(200, graphene.encode(), "text/plain",
                                                        delay=0.4)
    names = ["grapheneos.org", "GrapheneOS.org", "2fa.directory", "bad domain",
             "grapheneos.org", *[f"slow{i}.example" for i in range(4)]]
    with fetcher_for(server.base_url, tmp_path, clock, max_workers=8) as fetcher:
        began = time.monotonic()
        got = fetcher.fetch_many(names)
        elapsed = time.monotonic() - began
    assert set(got) == set(names)
    assert got["GrapheneOS.org"] is got["grapheneos.org"]
    assert server.count("/grapheneos.org" + WK) == 1
    assert got["2fa.directory"].url.endswith(LEGACY)
    assert (got["bad domain"].error or "").startswith("not a domain name")
    assert all(got[f"slow{i}.example"].parsed is not None for i in range(4))
    assert elapsed < 1.2  # four 0.4 s answers overlapped


def test_rate_limit_applies_across_threads(server: LoopbackServer, tmp_path: Path,
                                           clock: FakeClock) -> None:
    names = [f"d{i}.example" for i in range(6)]  # each costs two requests (404s)
    with SecurityTxtFetcher(tmp_path, url_template=server.base_url + "/{domain}",
                            rate_per_second=40, clock=clock, max_workers=6) as fetcher:
        began = time.monotonic()
        fetcher.fetch_many(names)
        elapsed = time.monotonic() - began
    assert server.count() == 12
    assert elapsed >= 11 / 40 * 0.9


def test_unusable_configuration(tmp_path: Path) -> None:
    with pytest.raises(PublicDataError):
        SecurityTxtFetcher(tmp_path, url_template="https://example.com")
    with pytest.raises(PublicDataError):
        SecurityTxtFetcher(tmp_path, keyring=tmp_path / "missing.gpg")
