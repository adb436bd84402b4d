"""The unsolicited notification (cwn.render.message + notification_unsolicited.*.j2).

A recipient who never signed up takes our mail for phishing unless it says at once who we
are, where we found their address and how to check us, and ends with what to do if it is not
theirs and how to sign up. Registered recipients must get exactly the old text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cwn.config import Settings
from cwn.events.batch import conform
from cwn.render.advice import default_library
from cwn.render.message import WRAP_WIDTH, CaseView, DeskIdentity, NotificationView, render_message
from cwn.render.tlp import TLP

LANGS = ("nl", "en")
PARTS = ("plain", "html")
T0 = datetime(2026, 1, 14, 9, 12, 5, tzinfo=UTC)
DESK = DeskIdentity(
    name="CWN-meldpunt",
    email="meldingen@cwn.example",
    case_url="https://cwn.example/zaak/{case_id}",
    phone="+31 70 000 0000",
    register_url="https://cwn.example/aanmelden",
)
CASE_ID = "CWN-2026-000123"
CASE_LINK = "https://cwn.example/zaak/CWN-2026-000123"
OWNER = "Jansen Hosting B.V."
# The caller hands the label over in the recipient's language.
SOURCE = {"nl": "het abuse-contact in de RIPE-database", "en": "the RIPE Database abuse contact"}

# Texts only an unsolicited mail carries: who we are, why you get this, how to check us,
# what to do if it is not yours, how to sign up.
UNSOLICITED_ONLY = {
    "nl": ["Waarom krijgt u dit bericht?",
           "hoort bij het landelijke Cyberweerbaarheidsnetwerk (CWN)",
           "werken overheid en bedrijfsleven samen",
           "U heeft zich niet bij ons aangemeld",
           "Twijfelt u of dit bericht echt is?",
           "Wij vragen nooit om wachtwoorden of om een betaling",
           "nooit andere bijlagen mee dan één CSV-bestand met onze waarnemingen",
           "Klik bij twijfel niet op links in deze e-mail",
           "Niet de juiste ontvanger?",
           'Antwoord dan op deze e-mail met "niet van ons"',
           "Aanmelden voor onze meldingen",
           "typ dit adres zelf in uw browser"],
    "en": ["Why are you receiving this message?",
           "is part of CWN, the national cyber resilience network of the Netherlands",
           "government and businesses work together",
           "You have not signed up with us",
           "Not sure this message is genuine?",
           "We never ask for passwords or payment",
           "never send attachments other than one CSV file with our observations",
           "If in doubt, do not click links in this e-mail",
           "Not the right recipient?",
           'reply to this e-mail with "not ours"',
           "Sign up for our notifications",
           "type this address into your browser yourself"],
}
# Texts that depend on the view and desk, in the unsolicited mail only.
SPECIFIC = {
    "nl": [f"als contactadres voor {OWNER} in openbare registratiegegevens (bron: {SOURCE['nl']})",
           f"zoek daar kenmerk {CASE_ID} op, of bel ons op +31 70 000 0000",
           f"Op {CASE_LINK} vindt u deze melding ook",
           "Meld u dan aan op https://cwn.example/aanmelden"],
    "en": [f"listed as a contact address for {OWNER} in public registration data "
           f"(source: {SOURCE['en']})",
           f"look up case {CASE_ID} there, or call us on +31 70 000 0000",
           f"The page {CASE_LINK} shows this case too",
           "Sign up at https://cwn.example/aanmelden"],
}
HEADINGS = {  # (what comes before the intro, after it, before the sign-up part, after it)
    "nl": ("Geachte heer/mevrouw", "In het kort", "Contact", "Met vriendelijke groet"),
    "en": ("Dear Sir or Madam", "In short", "Contact", "Kind regards"),
}
FORWARD = {"nl": "U mag dit bericht ook doorsturen naar wie de IP-adressen beheert",
           "en": "You may also forward this message to whoever manages these IP addresses"}
DO_NOT_FORWARD = {"nl": "Stuur dit bericht niet door", "en": "Do not forward this message"}


# -- building views ------------------------------------------------------------------------


def _events(ip: str = "192.0.2.10", port: int = 3389) -> pa.Table:
    return conform(pa.table({
        "time.source": pa.array([T0], pa.timestamp("us", tz="UTC")),
        "source.ip": [ip],
        "source.port": pa.array([port], pa.int32()),
        "protocol.transport": ["tcp"],
        "feed.provider": ["Shadowserver Foundation"],
        "classification.taxonomy": ["vulnerable"],
        "classification.identifier": ["open-rdp"],
        "tlp": ["AMBER"],
    }))


def view(lang: str, *, unsolicited: bool = True, tlp: str = "AMBER", **kw: Any) -> NotificationView:
    kw.setdefault("source_label", SOURCE.get(lang))
    kw.setdefault("owner_name", OWNER)
    case = CaseView(case_id=CASE_ID, report_type="scan_rdp", identifier=None,
                    taxonomy="vulnerable", severity="high", tlp=tlp, first_seen=T0,
                    last_seen=T0 + timedelta(days=1), events=_events())
    return NotificationView(notification_id="NTF-0001", org_id="org-1",
                            org_name="Bakkerij Jansen", recipient="abuse@jansen.example",
                            language=lang, cases=[case], unsolicited=unsolicited, **kw)


def render(v: NotificationView, desk: DeskIdentity = DESK) -> EmailMessage:
    return render_message(v, settings=Settings(), message_id="ntf-0001@cwn.example",
                          return_path="bounce+ntf-0001@cwn.example", desk=desk,
                          advice=default_library())


class _Html(HTMLParser):
    """Checks that every element is closed in order and collects the text a reader sees."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_text(html: str) -> str:
    parser = _Html()
    parser.feed(html)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    return " ".join("".join(parser.text).split())


def text_of(msg: EmailMessage, part: str) -> str:
    """What a reader sees in ``part``, whitespace normalised (the plain text is wrapped)."""
    body = msg.get_body(preferencelist=(part,))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return html_text(content) if part == "html" else " ".join(content.split())


def raw_body(msg: EmailMessage, part: str) -> str:
    body = msg.get_body(preferencelist=(part,))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


# -- the unsolicited mail ------------------------------------------------------------------


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("lang", LANGS)
def test_unsolicited_mail_says_who_why_how_to_check_and_how_to_sign_up(lang: str,
                                                                      part: str) -> None:
    text = text_of(render(view(lang)), part)
    for phrase in UNSOLICITED_ONLY[lang] + SPECIFIC[lang]:
        assert phrase in text, phrase
    other = "en" if lang == "nl" else "nl"
    for phrase in UNSOLICITED_ONLY[other]:
        assert phrase not in text, phrase


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("lang", LANGS)
def test_registered_mail_has_none_of_it(lang: str, part: str) -> None:
    text = text_of(render(view(lang, unsolicited=False)), part)
    for phrase in UNSOLICITED_ONLY[lang] + SPECIFIC[lang]:
        assert phrase not in text, phrase
    for leak in (SOURCE[lang], OWNER, "https://cwn.example/aanmelden"):
        assert leak not in text
    assert CASE_LINK in text  # the ordinary "is this genuine" section stays


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("lang", LANGS)
def test_intro_comes_before_the_findings_and_sign_up_before_the_signature(lang: str,
                                                                         part: str) -> None:
    text = text_of(render(view(lang)), part)
    greeting, summary, contact, signature = HEADINGS[lang]
    why, check, wrong, register = (UNSOLICITED_ONLY[lang][i] for i in (0, 4, 8, 10))
    assert (text.index(greeting) < text.index(why) < text.index(check) < text.index(summary)
            < text.index(contact) < text.index(wrong) < text.index(register)
            < text.index(signature))


@pytest.mark.parametrize("lang", LANGS)
def test_registered_text_is_unchanged_by_the_new_fields(lang: str) -> None:
    bare = render(view(lang, unsolicited=False, source_label=None, owner_name=None))
    full = render(view(lang, unsolicited=False, recipient_kind="abuse-c"))
    for part in PARTS:
        assert raw_body(full, part) == raw_body(bare, part)


@pytest.mark.parametrize("lang", LANGS)
def test_subject_is_unchanged_and_a_header_marks_unsolicited_mail(lang: str) -> None:
    unsolicited, registered = render(view(lang)), render(view(lang, unsolicited=False))
    assert unsolicited["Subject"] == registered["Subject"]
    assert unsolicited["X-CWN-Unsolicited"] == "yes"
    assert "X-CWN-Unsolicited" not in registered
    assert unsolicited["Content-Language"] == lang


@pytest.mark.parametrize("lang", LANGS)
def test_plain_text_stays_within_the_wrap_width(lang: str) -> None:
    text = raw_body(render(view(lang)), "plain")
    greeting, summary, contact, signature = HEADINGS[lang]
    added = (text[text.index(greeting):text.index(summary)]
             + text[text.index(contact):text.index(signature)])
    assert max(len(line) for line in added.splitlines()) <= WRAP_WIDTH


@pytest.mark.parametrize(("lang", "fallback"), [("nl", "in openbare registratiegegevens."),
                                                ("en", "in public registration data.")])
def test_without_label_or_owner_the_mail_still_reads(lang: str, fallback: str) -> None:
    msg = render(view(lang, source_label=None, owner_name=None), desk=DeskIdentity())
    for part in PARTS:
        text = text_of(msg, part)
        assert f"Bakkerij Jansen {fallback}" in text  # the organisation stands in
        assert "(bron:" not in text and "(source:" not in text
        assert ("via het telefoonnummer op die website" if lang == "nl"
                else "on the phone number on that website") in text
        assert "https://cwn.example/register" in text  # the default sign-up page


@pytest.mark.parametrize("domain", ["2fa.directory", "grapheneos.org"])
@pytest.mark.parametrize("lang", LANGS)
def test_security_txt_source_from_the_sample_files(lang: str, domain: str,
                                                   shared_data: Path) -> None:
    assert (shared_data / "securitytxt" / f"{domain}.security.txt").is_file()
    label = (f"de security.txt van {domain}" if lang == "nl"
             else f"the security.txt of {domain}")
    msg = render(view(lang, source_label=label, owner_name=domain))
    for part in PARTS:
        assert label in text_of(msg, part)


@pytest.mark.parametrize("level", ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"])
@pytest.mark.parametrize("lang", LANGS)
def test_forwarding_to_the_ip_manager_only_where_tlp_allows(lang: str, level: str) -> None:
    msg = render(view(lang, tlp=level))
    allowed = TLP[level].may_share_with_supplier
    for part in PARTS:
        text = text_of(msg, part)
        assert (FORWARD[lang] in text) == allowed
        assert (f"{DO_NOT_FORWARD[lang]}" in text) == (not allowed)


@pytest.mark.parametrize("lang", LANGS)
def test_view_data_is_escaped_in_html(lang: str) -> None:
    evil = "<script>alert(1)</script>"
    msg = render(view(lang, source_label=f"RIPE & {evil}", owner_name=f"Evil {evil} B.V."))
    html = raw_body(msg, "html")
    assert "<script" not in html
    assert "RIPE &amp; &lt;script&gt;" in html
    assert f"RIPE & {evil}" in text_of(msg, "html")  # reads as the text it was
    assert f"Evil {evil} B.V." in text_of(msg, "plain")  # text is text


# -- a national CSIRT, for a network in its country (English only) -------------------------


def _teams(shared_data: Path) -> list[dict[str, Any]]:
    path = shared_data / "attribution" / "trusted_introducer" / "teams.json"
    teams: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    assert teams
    return teams


CSIRT_PHRASES = ["Dear colleagues", "We are contacting you as the national CSIRT",
                 "because we have no contact of our own for this network",
                 "You have not signed up with us", "Not sure this message is genuine?",
                 "We never ask for passwords or payment", CASE_LINK,
                 "Is this network not in your country, or are you not the right team?",
                 "Sign up at https://cwn.example/aanmelden",
                 "We have found a security problem on a network in your country (registered to "
                 f"{OWNER})",
                 "(source: the Trusted Introducer directory)",
                 f"Please forward this message to the owner of the network ({OWNER})"]
NOT_FOR_CSIRT = ["Dear Sir or Madam", "We have found a security problem at",
                 "Your e-mail address", FORWARD["en"], "Geachte heer/mevrouw"]


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("lang", ["nl", "en", "de"])
def test_csirt_gets_english_and_is_asked_to_forward_to_the_owner(lang: str, part: str,
                                                                shared_data: Path) -> None:
    for team in _teams(shared_data):
        v = replace(view(lang, recipient_kind="csirt", source_label="the Trusted Introducer "
                         "directory", owner_name=OWNER),
                    org_name=team["official_name"], recipient=team["emails"][0]["address"])
        msg = render(v)
        assert msg["Content-Language"] == "en"
        assert msg["X-CWN-Unsolicited"] == "yes"
        text = text_of(msg, part)
        for phrase in CSIRT_PHRASES:
            assert phrase in text, (team["short_name"], phrase)
        for phrase in NOT_FOR_CSIRT:
            assert phrase not in text, (team["short_name"], phrase)


@pytest.mark.parametrize("part", PARTS)
def test_csirt_is_not_asked_to_forward_a_strict_message(part: str) -> None:
    text = text_of(render(view("en", tlp="AMBER+STRICT", recipient_kind="csirt",
                               owner_name=None)), part)
    assert "This message is TLP:AMBER+STRICT, so please do not forward it" in text
    assert "Please forward this message" not in text
    assert "registered to" not in text  # no owner known: nothing made up
    assert "on a network in your country." in text


def test_csirt_kind_on_a_registered_mail_changes_nothing() -> None:
    registered = render(view("nl", unsolicited=False, recipient_kind="csirt"))
    assert registered["Content-Language"] == "nl"
    assert "Geachte heer/mevrouw" in text_of(registered, "plain")
    assert "Dear colleagues" not in text_of(registered, "plain")


@pytest.mark.parametrize("kind", ["registered", "unsolicited", "csirt"])
@pytest.mark.parametrize("lang", LANGS)
def test_html_is_well_formed(lang: str, kind: str) -> None:
    v = view(lang, unsolicited=kind != "registered",
             recipient_kind="csirt" if kind == "csirt" else None)
    html_text(raw_body(render(v), "html"))  # asserts balanced elements


# -- the desk's sign-up page ---------------------------------------------------------------


def test_register_url_comes_from_settings_and_environment() -> None:
    settings = Settings(desk_register_url="https://desk.example/sign-up")
    assert DeskIdentity.from_settings(settings).register_url == "https://desk.example/sign-up"
    env = {"CWN_DESK_REGISTER_URL": " https://env.example/join "}
    assert DeskIdentity.from_env(env).register_url == "https://env.example/join"
    assert DeskIdentity.from_env({}).register_url == "https://cwn.example/register"
    msg = render_message(view("en"), settings=settings, message_id="x@y", return_path="")
    assert "https://desk.example/sign-up" in text_of(msg, "plain")


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "cwn.example/register", "https://",
                                 "https://cwn.example/register\r\nBcc: x@y", "ftp://cwn.example/"])
def test_register_url_must_be_a_single_line_http_url(bad: str) -> None:
    with pytest.raises(ValueError, match="register"):
        DeskIdentity(register_url=bad)
