"""The portal in a real browser (Debian's Chromium driven by Playwright) against a live
server, with real mail (aiosmtpd) and real DNS (a loopback server) around it.

One story, as an organisation lives it: the CWN operator invites the organisation's
administrator from the command line; the invitation arrives by mail; the administrator
chooses a password, sets up two-step sign-in (reading the key off the page, as someone
without a camera would), signs out and in again with a code, claims a domain, publishes
the DNS record and has it checked. A real Shadowserver report about the organisation's
network then opens cases and mails them; the administrator finds the case in the inbox,
reads its events and advice, reports it fixed and sees it resolved. The recipient of the
mail opens the case from the mail's link without an account; and the page speaks Dutch or
English on request. Beside it: an operator approves a sign-up and an overlapping claim,
and a user who forgot the password replaces it through the mailed link.

Every step leaves a full-page screenshot in `$CWN_TEST_ARTIFACTS/screenshots` (default
`test-artifacts/screenshots` in the repository). SQLite only: one backend is enough for
what the browser adds.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cwn.access.totp import code_for
from cwn.cli.main import app as cli_app
from cwn.db.models_notify import Case
from cwn.db.models_web import AssetClaim
from cwn.notify import Notifier
from cwn.registry.format import RegistryDocument
from cwn.registry.importer import import_registry
from cwn.web.i18n import gettext
from notify_support import Received
from web_live import Live, live_portal
from web_support import make_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CWN_TEST_ARTIFACTS") or REPO / "test-artifacts") / "screenshots"
PASSWORD = "een lang en sterk wachtwoord"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium "
                                "(apt-get install chromium; CI does, see .ci/run)")

if CHROMIUM.exists():
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

ORG = "bakkerij"
ORG_NAME = "Bakkerij De Korrel"
NETWORK = "192.0.2.0/24"  # the network the desk registered for the organisation
DOMAIN = "bakkerij-dekorrel.nl"  # the domain the administrator claims in the browser
ADMIN = "anna@bakkerij-dekorrel.nl"
SECURITY = "security@bakkerij-dekorrel.nl"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with live_portal(tmp_path / "home") as portal:
        yield portal


class Camera:
    """Full-page screenshots, numbered in the order of the story."""

    def __init__(self, story: str) -> None:
        self.story = story
        self.n = 0
        SHOTS.mkdir(parents=True, exist_ok=True)
        for old in SHOTS.glob(f"{story}-*.png"):
            old.unlink()

    def __call__(self, page: Page, step: str) -> None:
        self.n += 1
        page.screenshot(path=str(SHOTS / f"{self.story}-{self.n:02d}-{step}.png"),
                        full_page=True)


def _context(browser: Browser, live: Live) -> BrowserContext:
    ctx = browser.new_context(base_url=live.url, locale="en-GB",
                              viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    return ctx


# -- the world around the browser -------------------------------------------------------------


def register_organisation(live: Live) -> None:
    """What the desk did before: the organisation, its network and its security contact."""
    doc = {"organizations": [{
        "id": ORG, "name": ORG_NAME, "language": "en",
        "assets": [{"type": "cidr", "value": NETWORK}],
        "contacts": [{"email": SECURITY, "role": "security", "language": "en"}]}]}
    with live.svc.sessions.begin() as session:
        import_registry(session, RegistryDocument.model_validate(doc), actor="test")


def invite_by_cli(live: Live) -> None:
    runner = CliRunner(env={"CWN_HOME": str(live.settings.home),
                            "CWN_DATABASE_URL": live.settings.db_url,
                            "CWN_SMTP_URL": live.smtp.url, "CWN_PUBLIC_URL": live.url,
                            "COLUMNS": "200"})
    result = runner.invoke(cli_app, ["users", "invite", ADMIN, "--role", "org_admin",
                                     "--org", ORG, "--name", "Anna de Vries"])
    assert result.exit_code == 0, result.output


def shadowserver_report(shared_data: Path, folder: Path, day: str) -> Path:
    """The real Shadowserver SMB sample, its rows moved onto the organisation's network
    and domain, dated today (the file name carries the date and report type)."""
    src = (shared_data / "shadowserver" / "csv" / "scan_smb.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(src)))
    assert rows, "empty sample"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    for i, row in enumerate(rows, start=1):
        row["timestamp"] = f"{day} 0{i % 10}:00:00"
        row["ip"] = f"192.0.2.{i}"
        row["hostname"] = f"nas{i}.{DOMAIN}"
        writer.writerow(row)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}-scan_smb-test-geo.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def case_of(live: Live, ip: str) -> str:
    fps = {fp for t in live.svc.events.scan('"organization" = ? AND "source.ip" = ?',
                                            [ORG, ip])
           for fp in t.column("fingerprint").to_pylist()}
    assert len(fps) == 1, fps
    with live.svc.engine.connect() as conn:
        return str(conn.execute(select(Case.id).where(
            Case.org_id == ORG, Case.fingerprint == fps.pop())).scalar_one())


def case_state(live: Live, case_id: str) -> str:
    with live.svc.engine.connect() as conn:
        return str(conn.execute(select(Case.state).where(Case.id == case_id)).scalar_one())


# -- the story ----------------------------------------------------------------------------------


def test_an_invited_admin_verifies_a_domain_and_resolves_a_case(
        browser: Browser, live: Live, shared_data: Path, tmp_path: Path) -> None:
    shot = Camera("story")
    register_organisation(live)

    # The operator invites the administrator; the mail carries the link.
    invite_by_cli(live)
    mails = live.mails_to(ADMIN)
    assert len(mails) == 1
    invitation = mails[0].message
    assert "Uitnodiging" in str(invitation["Subject"])
    link = live.link_in(mails[0], "/invite/")

    ctx = _context(browser, live)
    page = ctx.new_page()

    # A password, then the second factor read off the page.
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    expect(page.locator("main")).to_contain_text(ADMIN)
    shot(page, "invitation")
    page.get_by_label("Your name").fill("Anna de Vries")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url(re.compile(r"/login/totp-setup"))
    expect(page.locator(".qr svg")).to_be_visible()
    seed = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", seed), seed
    shot(page, "totp-setup")
    page.get_by_label("Code").fill(code_for(seed))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/inbox"))
    expect(page.locator("header")).to_contain_text(ADMIN)
    shot(page, "signed-in-first-time")

    # Out, and in again: password, then a code (the next one: each code works once).
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login"))
    page.get_by_label("E-mail address").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    shot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/login/totp\?"))
    page.get_by_label("Code").fill(code_for(seed, time.time() + 30))
    shot(page, "second-step")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/inbox"))

    # Claim the domain; publish the challenge in DNS; have it checked.
    page.get_by_role("link", name="Assets").click()
    page.wait_for_url(re.compile(r"/assets$"))
    expect(page.locator("main")).to_contain_text(NETWORK)
    page.get_by_label("Type").select_option("domain")
    page.get_by_label("Value").fill(DOMAIN)
    shot(page, "claim-form")
    page.get_by_role("button", name="Claim", exact=True).click()
    page.wait_for_url(re.compile(r"/assets/claims/[0-9a-f-]+$"))
    record = page.locator("pre").first.inner_text()
    m = re.fullmatch(r'(\S+)\. IN TXT "(cwn-verification=[0-9a-f]+)"', record.strip())
    assert m, record
    shot(page, "claim-challenge")
    page.get_by_role("button", name="Check DNS now").click()  # nothing published yet
    expect(page.locator("#claim")).to_contain_text("Last check")
    expect(page.locator("#claim .badge")).to_contain_text("waiting for proof")
    shot(page, "claim-dns-not-yet")
    live.dns.records[m.group(1).lower()] = [m.group(2)]
    page.get_by_role("button", name="Check DNS now").click()
    expect(page.locator("#claim [role=status]")).to_contain_text("is verified")
    expect(page.locator("#claim .badge")).to_contain_text("verified")
    shot(page, "claim-verified")
    with live.svc.sessions() as s:
        claim = s.scalars(select(AssetClaim).where(AssetClaim.org_id == ORG)).one()
        assert (claim.state, claim.method, claim.value) == ("verified", "dns", DOMAIN)
    assert live.dns.queries[m.group(1).lower()] >= 2  # really asked, twice

    # A real Shadowserver report about the organisation: cases, and a mail.
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    report = shadowserver_report(shared_data, tmp_path / "feeds", day)
    summary = live.svc.pipeline().ingest_paths([report])
    assert not summary.unusable
    Notifier.from_services(live.svc).run(workers=1)
    case_id = case_of(live, "192.0.2.1")
    assert case_state(live, case_id) == "open"
    notices = live.mails_to(SECURITY)
    assert len(notices) == 1
    assert case_id in str(notices[0].message["Subject"]) or \
        case_id in str(notices[0].message["X-CWN-Case-IDs"])

    # The inbox shows it; the case page has the events and the advice.
    page.get_by_role("link", name="Inbox").click()
    page.wait_for_url(re.compile(r"/inbox"))
    row_link = page.get_by_role("link", name=case_id)
    expect(row_link).to_be_visible()
    shot(page, "inbox")
    row_link.click()
    page.wait_for_url(re.compile(re.escape(f"/case/{case_id}")))
    expect(page.get_by_role("heading", level=1)).to_contain_text(case_id)
    events = page.locator("table").filter(has_text="IP address")
    expect(events).to_contain_text("192.0.2.1")
    expect(events).to_contain_text(f"nas1.{DOMAIN}")
    expect(page.get_by_role("heading", name="What to do")).to_be_visible()
    expect(page.locator("#case-state")).to_contain_text("Open")
    shot(page, "case")

    # "We fixed it": the case is resolved.
    page.get_by_label("We fixed it").check()
    page.get_by_label("Remarks or your question").fill("SMB is no longer reachable.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#feedback [role=status]")).to_contain_text("now resolved")
    shot(page, "feedback-sent")
    assert case_state(live, case_id) == "resolved"
    page.reload()
    expect(page.locator("#case-state")).to_contain_text("Resolved")
    expect(page.locator("main")).to_contain_text("SMB is no longer reachable.")
    shot(page, "case-resolved")

    # Dutch on request, and back to English.
    page.get_by_role("link", name="NL", exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("link", name="NL", exact=True)).to_have_attribute(
        "aria-current", "true")
    expect(page.locator("main")).to_contain_text(gettext("nl", "What to do"))
    expect(page.locator("header")).to_contain_text(gettext("nl", "Sign out"))
    shot(page, "case-in-dutch")
    page.get_by_role("link", name="EN", exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("main")).to_contain_text("What to do")
    ctx.close()

    # The mail's recipient opens another case from the link, without an account.
    other = case_of(live, "192.0.2.2")
    key_link = _case_link(live, notices[0], other)
    anon = _context(browser, live)
    page = anon.new_page()
    page.goto(key_link)
    expect(page.get_by_role("heading", level=1)).to_contain_text(other)
    expect(page.locator("main")).to_contain_text("192.0.2.2")
    expect(page.locator("main")).not_to_contain_text("192.0.2.1")  # this case only
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()  # not signed in
    shot(page, "case-by-mail-link")
    wrong = page.goto(key_link.replace(other, case_id))  # a key opens its own case only
    assert wrong is not None and wrong.status == 404
    expect(page.locator("main")).not_to_contain_text("192.0.2.1")
    shot(page, "case-by-wrong-key")
    anon.close()


def _case_link(live: Live, notice: Received, case_id: str) -> str:
    """The link to `case_id` in the notification mail (it carries the case's key)."""
    body = notice.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    m = re.search(re.escape(f"{live.url}/case/{case_id}?key=") + r"[A-Za-z0-9_-]+", text)
    assert m, f"no key link for {case_id} in the mail:\n{text[:3000]}"
    return m.group(0)


def test_the_sign_in_page_speaks_dutch_or_english(browser: Browser, live: Live) -> None:
    shot = Camera("language")
    ctx = _context(browser, live)
    page = ctx.new_page()
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")  # from Accept-Language
    shot(page, "login-english")
    page.get_by_role("link", name="NL", exact=True).click()
    page.wait_for_url(re.compile(r"/login"))
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", level=1)).to_have_text(gettext("nl", "Sign in"))
    shot(page, "login-dutch")
    page.reload()  # the choice is remembered
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    ctx.close()


def test_the_operator_approves_a_sign_up_and_an_overlapping_claim(
        browser: Browser, live: Live, shared_data: Path, tmp_path: Path) -> None:
    """The desk's side: a company registers itself; the operator signs in with TOTP, looks
    at the console, approves the sign-up, and decides a claim that overlaps another
    organisation's network; the audit log shows who did it."""
    from cwn.registry import claims
    from web_support import make_user

    shot = Camera("operator")
    with live.svc.sessions.begin() as session:
        import_registry(session, RegistryDocument.model_validate({"organizations": [
            {"id": "isp-noord", "name": "ISP Noord", "assets": [
                {"type": "cidr", "value": "145.100.0.0/16"}]},
            {"id": ORG, "name": ORG_NAME}]}), actor="test")
    with live.svc.sessions() as s:
        claim = claims.claim(s, org_id=ORG, type="cidr", value="145.100.12.0/24",
                             actor=f"user:{ADMIN}")
        s.commit()
        assert claim.state == "review"
    _, seed = make_user(live.svc, "desk@cwn.example", "operator", password=PASSWORD)
    assert seed is not None
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    live.svc.pipeline().ingest_paths([shadowserver_report(shared_data, tmp_path, day)])

    # A company signs itself up.
    anon = _context(browser, live)
    page = anon.new_page()
    page.goto("/signup")
    page.get_by_label("Your name").fill("Piet Jansen")
    page.get_by_label("E-mail address").fill("piet@garage-jansen.nl")
    page.get_by_label("Organisation").fill("Garage Jansen")
    page.get_by_label("KvK number (8 digits)").fill("12345678")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Registration received")
    shot(page, "sign-up-received")
    anon.close()

    # The operator: password, then TOTP; the console.
    ctx = _context(browser, live)
    page = ctx.new_page()
    page.goto("/login")
    page.get_by_label("E-mail address").fill("desk@cwn.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/login/totp\?"))
    page.get_by_label("Code").fill(code_for(seed))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/operator$"))
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("svg.chart rect title").last).to_contain_text("quarantined")
    expect(page.locator("#stat-signups")).to_have_text("1")
    shot(page, "console")

    # The sign-up becomes an organisation.
    page.goto("/operator/signups")
    expect(page.locator("main")).to_contain_text("Garage Jansen")
    shot(page, "sign-up-waiting")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("main [role=status]")).to_be_visible()
    shot(page, "sign-up-approved")
    approved = live.mails_to("piet@garage-jansen.nl")
    assert len(approved) == 1 and "goedgekeurd" in str(approved[0].message["Subject"])

    # The overlapping claim: the operator sees whose network it overlaps, and approves.
    page.goto("/operator/claims")
    section = page.locator(f"#claim-{claim.id}")
    expect(section).to_contain_text("ISP Noord")
    shot(page, "claim-review")
    section.get_by_label("Note").fill("Sub-allocation confirmed by phone with ISP Noord.")
    section.get_by_role("button", name="Approve").click()
    expect(page.locator("[role=status]")).to_contain_text("approved")
    shot(page, "claim-approved")
    with live.svc.sessions() as s:
        assert claims.get_claim(s, claim.id).state == "verified"

    # The audit log names the operator for both decisions.
    page.goto("/operator/audit")
    expect(page.locator("main")).to_contain_text("user:desk@cwn.example")
    expect(page.locator("main")).to_contain_text("claim")
    shot(page, "audit-log")
    ctx.close()


def test_a_forgotten_password_is_replaced_through_the_mailed_link(
        browser: Browser, live: Live) -> None:
    shot = Camera("password-reset")
    register_organisation(live)
    user = "piet@bakkerij-dekorrel.nl"
    make_user(live.svc, user, "org_user", org_id=ORG, totp=False)
    ctx = _context(browser, live)
    page = ctx.new_page()
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(re.compile(r"/password/forgot$"))
    page.get_by_label("E-mail address").fill(user)
    shot(page, "ask")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your mail")
    shot(page, "check-your-mail")
    mails = live.mails_to(user)
    assert len(mails) == 1
    page.goto(live.link_in(mails[0], "/password/reset/"))
    expect(page.locator("main")).to_contain_text(user)
    new = "een veel beter wachtwoord 2026"
    page.get_by_label("New password").fill(new)
    page.get_by_label("Password again").fill(new)
    shot(page, "choose")
    page.get_by_role("button", name="Save the new password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Password changed")
    shot(page, "changed")
    page.get_by_role("link", name="Sign in").last.click()
    page.wait_for_url(re.compile(r"/login"))
    page.get_by_label("E-mail address").fill(user)
    page.get_by_label("Password").fill(new)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/inbox"))
    expect(page.locator("header")).to_contain_text(user)
    shot(page, "signed-in")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("button", name="Change my password")).to_be_visible()
    expect(page.locator("main")).to_contain_text("signed in on 0 other browsers")
    shot(page, "account")
    ctx.close()
