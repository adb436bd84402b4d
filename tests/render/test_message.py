"""The notification mail (cwn.render.message): content, languages, safety, attachment."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pyarrow as pa
import pytest

from cwn.config import Settings
from cwn.events.batch import conform
from cwn.render.advice import default_library
from cwn.render.message import (
    TABLE_ROW_CAP,
    CaseView,
    DeskIdentity,
    NotificationView,
    render_message,
)
from cwn.render.tlp import TLP

LANGS = ("nl", "en")
T0 = datetime(2026, 1, 14, 9, 12, 5, tzinfo=UTC)  # winter: Amsterdam = UTC+1
DESK = DeskIdentity(
    name="CWN-meldpunt",
    email="meldingen@cwn.example",
    case_url="https://cwn.example/zaak/{case_id}",
    phone="+31 70 000 0000",
)

# Key phrases per language: the section headings a recipient navigates by.
PHRASES = {
    "nl": ["Geachte heer/mevrouw", "Wat we hebben gezien", "Waarom dit belangrijk is",
           "Wat u nu moet doen", "Is dit bericht echt van ons?", "Mag u dit bericht doorsturen?",
           "Met vriendelijke groet"],
    "en": ["Dear Sir or Madam", "What we saw", "Why it matters", "What to do now",
           "How to check this message is genuine", "Who may you share this with?",
           "Kind regards"],
}
GENUINE = {
    "nl": ["nooit om wachtwoorden", "nooit programma's", "nooit om via een link in te loggen",
           "cwn.example", "+31 70 000 0000"],
    "en": ["never ask for passwords", "never attach programs", "never ask you to log in",
           "cwn.example", "+31 70 000 0000"],
}


def events(ips: list[str], port: int, *, transport: str = "tcp", hostname: str | None = None,
           identifier: str = "open-rdp", start: datetime = T0) -> pa.Table:
    n = len(ips)
    return conform(pa.table({
        "time.source": pa.array([start + timedelta(hours=i) for i in range(n)],
                                pa.timestamp("us", tz="UTC")),
        "source.ip": ips,
        "source.port": pa.array([port] * n, pa.int32()),
        "protocol.transport": [transport] * n,
        "source.reverse_dns": [hostname] * n,
        "feed.provider": ["Shadowserver Foundation"] * n,
        "feed.name": ["shadowserver"] * n,
        "classification.taxonomy": ["vulnerable"] * n,
        "classification.type": ["vulnerable-system"] * n,
        "classification.identifier": [identifier] * n,
        "tlp": ["AMBER"] * n,
    }))


def case(case_id: str, report_type: str, ev: pa.Table, *, severity: str = "high",
         tlp: str = "AMBER", identifier: str | None = None) -> CaseView:
    return CaseView(
        case_id=case_id, report_type=report_type, identifier=identifier, taxonomy="vulnerable",
        severity=severity, tlp=tlp, first_seen=T0, last_seen=T0 + timedelta(days=1),
        events=ev,
    )


def notification(lang: str, cases: list[CaseView], *, org_name: str = "Bakkerij Jansen B.V.",
                 unsolicited: bool = False) -> NotificationView:
    return NotificationView(
        notification_id="NTF-0001", org_id="org-1", org_name=org_name,
        recipient="ict@jansen.example", language=lang, cases=cases, unsolicited=unsolicited,
    )


def single(lang: str, **kw: Any) -> NotificationView:
    return notification(lang, [case("CWN-2026-000123", "scan_rdp",
                                    events(["192.0.2.10"], 3389, hostname="rdp.jansen.example"),
                                    **kw)])


def digest(lang: str) -> NotificationView:
    return notification(lang, [
        case("CWN-2026-000123", "scan_rdp", events(["192.0.2.10"], 3389)),
        case("CWN-2026-000124", "scan_rdp", events(["192.0.2.11", "192.0.2.11"], 3389)),
        case("CWN-2026-000125", "scan_redis",
             events(["2001:db8::5"], 6379, identifier="open-redis"), severity="medium",
             tlp="GREEN"),
    ])


def render(view: NotificationView, **kw: Any) -> EmailMessage:
    kw.setdefault("desk", DESK)
    return render_message(view, settings=Settings(), message_id="ntf-0001@cwn.example",
                          return_path="bounce+ntf-0001@cwn.example",
                          advice=default_library(), **kw)


def body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    text = part.get_content()
    assert isinstance(text, str)
    return text


def attachment(msg: EmailMessage) -> EmailMessage:
    parts = list(msg.iter_attachments())
    assert len(parts) == 1
    assert isinstance(parts[0], EmailMessage)
    return parts[0]


def reparsed(msg: EmailMessage) -> EmailMessage:
    """What the recipient's mail client sees: the serialised bytes, parsed again."""
    out = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(out, EmailMessage)
    return out


# -- subject and headers -----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_subject_holds_case_id_tlp_and_title(lang: str) -> None:
    msg = reparsed(render(single(lang)))
    title = default_library().for_event("scan_rdp").text(lang).title
    assert msg["Subject"] == f"[TLP:AMBER] CWN-2026-000123: {title}"


@pytest.mark.parametrize(("lang", "more"), [("nl", "en 2 andere meldingen"),
                                            ("en", "and 2 more cases")])
def test_digest_subject_has_first_case_count_and_strictest_tlp(lang: str, more: str) -> None:
    subject = str(reparsed(render(digest(lang)))["Subject"])
    assert subject.startswith(f"[TLP:AMBER] CWN-2026-000123 {more}: ")  # AMBER beats GREEN
    assert "RDP" in subject  # the most severe problem names the message
    assert ("1 ander probleem" if lang == "nl" else "1 other issue") in subject


def test_non_ascii_subject_is_encoded_and_reads_back() -> None:
    view = notification("nl", [case("CWN-2026-000200", "scan_ics", events(["192.0.2.1"], 502))])
    msg = render(view)
    raw = msg.as_bytes()
    assert raw.isascii()  # RFC 2047 / quoted-printable: safe for any SMTP server
    assert "Industriële" in str(reparsed(msg)["Subject"])


@pytest.mark.parametrize("lang", LANGS)
def test_headers(lang: str) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    msg = reparsed(render(digest(lang), now=now))
    assert msg["From"].addresses[0].addr_spec == "meldingen@cwn.example"
    assert msg["From"].addresses[0].display_name == "CWN-meldpunt"
    assert str(msg["To"]) == "ict@jansen.example"
    assert msg["Message-ID"] == "<ntf-0001@cwn.example>"
    assert msg["Date"].datetime == now
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Content-Language"] == lang
    assert msg["X-CWN-Notification-ID"] == "NTF-0001"
    assert msg["X-CWN-Case-IDs"] == "CWN-2026-000123, CWN-2026-000124, CWN-2026-000125"
    assert msg["X-CWN-TLP"] == "AMBER"
    assert msg["X-CWN-Return-Path"] == "bounce+ntf-0001@cwn.example"
    assert "Return-Path" not in msg  # the envelope sender is the deliverer's business


def test_mime_structure_is_text_html_and_one_csv() -> None:
    msg = reparsed(render(digest("nl")))
    assert msg.get_content_type() == "multipart/mixed"
    alternative = next(msg.iter_parts())
    assert isinstance(alternative, EmailMessage)
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain",
                                                                         "text/html"]
    att = attachment(msg)
    assert att.get_content_type() == "text/csv"
    assert att.get_filename() == "CWN-2026-000123.csv"
    assert att.get_content_disposition() == "attachment"


# -- content -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_each_language_is_itself(lang: str) -> None:
    msg = render(digest(lang))
    other = "en" if lang == "nl" else "nl"
    for text in (body(msg, "plain"), body(msg, "html")):
        for phrase in PHRASES[lang]:
            assert phrase in text, phrase
        for phrase in PHRASES[other]:
            assert phrase not in text, phrase
    assert f'lang="{lang}"' in body(msg, "html")


@pytest.mark.parametrize("lang", LANGS)
def test_advice_sections_come_from_the_library(lang: str) -> None:
    text = " ".join(body(render(single(lang)), "plain").split())
    advice = default_library().for_event("scan_rdp").text(lang)
    for part in (advice.summary, advice.why, advice.check, advice.forward_to_supplier,
                 *advice.steps):
        assert " ".join(part.split()) in text
    # ordered steps, numbered
    positions = [text.index(" ".join(s.split())) for s in advice.steps]
    assert positions == sorted(positions)
    assert f"{len(advice.steps)}. " in text


@pytest.mark.parametrize("lang", LANGS)
def test_every_event_ip_and_port_is_in_the_text(lang: str) -> None:
    view = digest(lang)
    text = body(render(view), "plain")
    for c in view.cases:
        for row in c.events.select(["source.ip", "source.port"]).to_pylist():
            line = next((ln for ln in text.splitlines() if row["source.ip"] in ln.split()), None)
            assert line is not None, row
            assert str(row["source.port"]) in line.split()


@pytest.mark.parametrize("lang", LANGS)
def test_times_in_utc_and_amsterdam(lang: str) -> None:
    winter = body(render(single(lang)), "plain")
    assert "2026-01-14 09:12:05" in winter and "2026-01-14 10:12:05" in winter
    summer = notification(lang, [case("CWN-1", "scan_rdp", events(
        ["192.0.2.1"], 3389, start=datetime(2026, 7, 1, 22, 30, tzinfo=UTC)))])
    text = body(render(summer), "plain")
    assert "2026-07-01 22:30:00" in text and "2026-07-02 00:30:00" in text  # CEST, next day
    assert ("Nederlandse tijd" if lang == "nl" else "Amsterdam time") in text


@pytest.mark.parametrize("lang", LANGS)
def test_long_lists_are_capped_and_point_to_the_attachment(lang: str) -> None:
    ips = [f"198.51.100.{i}" for i in range(TABLE_ROW_CAP + 7)]
    msg = render(notification(lang, [case("CWN-9", "scan_rdp", events(ips, 3389))]))
    text = body(msg, "plain")
    assert ips[TABLE_ROW_CAP - 1] in text
    assert ips[TABLE_ROW_CAP] not in text
    more = "en nog 7 waarnemingen" if lang == "nl" else "and 7 more observations"
    assert more in text and "CWN-9.csv" in text
    assert more in body(msg, "html")


@pytest.mark.parametrize("lang", LANGS)
def test_genuine_check_section(lang: str) -> None:
    msg = render(single(lang))
    for text in (body(msg, "plain"), body(msg, "html")):
        for phrase in GENUINE[lang]:
            assert phrase in text, phrase
        assert "https://cwn.example/zaak/CWN-2026-000123" in text
    no_phone = body(render(single(lang), desk=DeskIdentity()), "plain")
    assert ("telefoonnummer op onze website" if lang == "nl"
            else "phone number on our website") in no_phone


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("level", ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"])
def test_tlp_section_says_what_forwarding_is_allowed(lang: str, level: str) -> None:
    msg = render(single(lang, tlp=level))
    text = " ".join(body(msg, "plain").split())
    tlp = TLP[level]
    assert text.startswith(tlp.label)
    assert " ".join(tlp.text(lang).sharing.split()) in text
    forward = default_library().for_event("scan_rdp").text(lang).forward_to_supplier
    # the "send this to your IT supplier" request only where the label allows it
    assert (" ".join(forward.split()) in text) == tlp.may_share_with_supplier
    if not tlp.may_share_with_supplier:  # nothing else suggests the supplier may see it
        assert ("uw ICT-leverancier of voor" if lang == "nl"
                else "your IT supplier or for") not in text
    assert str(msg["Subject"]).startswith(f"[{tlp.label}]")


@pytest.mark.parametrize("lang", LANGS)
def test_contact_section_asks_to_reply_with_the_case_id(lang: str) -> None:
    text = " ".join(body(render(single(lang)), "plain").split())
    reply = ("Beantwoord dan deze e-mail en laat het kenmerk CWN-2026-000123 in het onderwerp"
             if lang == "nl" else "Reply to this e-mail and keep case CWN-2026-000123 in the")
    assert reply in text


@pytest.mark.parametrize("lang", LANGS)
def test_digest_has_a_summary_per_report_type(lang: str) -> None:
    msg = render(digest(lang))
    lib = default_library()
    rdp = lib.for_event("scan_rdp").text(lang).title
    redis = lib.for_event("scan_redis").text(lang).title
    for text in (body(msg, "plain"), body(msg, "html")):
        summary_head = "In het kort" if lang == "nl" else "In short"
        summary = text[text.index(summary_head):]
        # both kinds in the summary, the more severe one first, each followed by its section
        assert summary.index(rdp) < summary.index(redis)
        first_section = "Probleem 1 van 2" if lang == "nl" else "Problem 1 of 2"
        second_section = "Probleem 2 van 2" if lang == "nl" else "Problem 2 of 2"
        assert summary.index(redis) < summary.index(first_section) < summary.index(
            second_section)
        assert text.count(rdp) >= 2 and text.count(redis) >= 2
    text = " ".join(body(msg, "plain").split())
    assert "CWN-2026-000123, CWN-2026-000124" in text and "CWN-2026-000125" in text
    assert ("2 IP-adressen" if lang == "nl" else "2 IP addresses") in text


@pytest.mark.parametrize("lang", LANGS)
def test_unsolicited_explains_why_the_recipient_gets_it(lang: str) -> None:
    text = " ".join(body(render(notification(lang, single(lang).cases, unsolicited=True)),
                         "plain").split())
    assert ("openbare registratiegegevens" if lang == "nl" else "public registration data") in text


# -- safety ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_html_is_escaped(lang: str) -> None:
    evil = "<script>alert(1)</script>"
    view = notification(lang, [case("CWN-1", "scan_rdp",
                                    events(["192.0.2.66"], 3389, hostname=f"x{evil}.example"))],
                        org_name=f"Evil & Co {evil}")
    msg = render(view)
    html = body(msg, "html")
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert "Evil &amp; Co" in html
    assert f"x{evil}.example" in body(msg, "plain")  # text is text


def test_header_injection_is_refused() -> None:
    view = single("en")
    view.recipient = "ict@jansen.example\r\nBcc: victim@example.org"
    with pytest.raises(ValueError, match="recipient"):
        render(view)


def test_a_notification_needs_cases_and_a_known_tlp() -> None:
    with pytest.raises(ValueError, match="no cases"):
        render(notification("nl", []))
    with pytest.raises(ValueError, match="unknown TLP"):
        render(single("nl", tlp="ORANGE"))


def test_empty_tlp_uses_the_configured_default_and_language_falls_back_to_english() -> None:
    view = single("de", tlp="")
    msg = render_message(view, settings=Settings(default_tlp="RED"), message_id="x@y",
                         return_path="", desk=DESK)
    assert str(msg["Subject"]).startswith("[TLP:RED]")
    assert msg["Content-Language"] == "en"
    assert "X-CWN-Return-Path" not in msg


def test_unknown_report_type_gets_the_generic_advice_and_still_renders() -> None:
    view = notification("nl", [case("CWN-7", "scan_something_new",
                                    events(["192.0.2.7"], 1234, identifier="new"))])
    text = body(render(view), "plain")
    assert default_library().generic.text("nl").title in text
    assert "192.0.2.7" in text


# -- the attachment ----------------------------------------------------------------------

CORE = ["time.source", "source.ip", "source.port", "protocol.transport", "source.reverse_dns",
        "feed.provider", "classification.taxonomy", "classification.type",
        "classification.identifier", "tlp"]


@pytest.mark.parametrize("lang", LANGS)
def test_csv_attachment_parses_back_to_the_same_events(lang: str) -> None:
    from cwn.render.formats.csv import read_csv_events

    view = digest(lang)
    att = attachment(reparsed(render(view)))
    data = att.get_payload(decode=True)  # the bytes write_csv produced
    assert isinstance(data, bytes)
    back = read_csv_events(data)
    sent = pa.concat_tables([c.events for c in view.cases])
    assert back.num_rows == sent.num_rows
    assert back.select(CORE).to_pylist() == sent.select(CORE).to_pylist()
    header = data.split(b"\n", 1)[0].decode()
    assert "source.ip" in header and "classification.identifier" in header  # IntelMQ names


def test_attachment_is_never_executable() -> None:
    msg = render(single("nl"))
    for part in msg.walk():
        assert part.get_content_maintype() in ("multipart", "text")
        name = part.get_filename()
        assert name is None or re.fullmatch(r"[A-Za-z0-9._-]+\.csv", name)


# -- the desk ----------------------------------------------------------------------------


def test_desk_identity_from_env() -> None:
    desk = DeskIdentity.from_env({
        "CWN_DESK_NAME": "Meldpunt X",
        "CWN_DESK_EMAIL": "x@desk.example",
        "CWN_DESK_URL": "https://desk.example/c/{case_id}",
        "CWN_DESK_PHONE": "+31 20 000 0000",
        "CWN_DESK_REGISTER_URL": "https://desk.example/aanmelden",
    })
    assert desk == DeskIdentity("Meldpunt X", "x@desk.example",
                                "https://desk.example/c/{case_id}", "+31 20 000 0000",
                                "https://desk.example/aanmelden")
    assert desk.case_link("CWN 1/2") == "https://desk.example/c/CWN%201%2F2"
    assert desk.website == "https://desk.example"
    assert DeskIdentity.from_env({}) == DeskIdentity()
    assert DeskIdentity().name == "CWN desk"


@pytest.mark.parametrize("bad", [
    {"case_url": "https://desk.example/case"},  # no {case_id}
    {"case_url": "javascript:alert(1)/{case_id}"},
    {"email": "not-an-address"},
    {"name": "Desk\r\nBcc: x@y"},
    {"register_url": "javascript:alert(1)"},
    {"register_url": "https://desk.example/join\nBcc: x@y"},
])
def test_desk_identity_validates(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        DeskIdentity(**bad)


def test_desk_from_settings_carries_every_field() -> None:
    settings = Settings(desk_name="Meldpunt S", desk_email="s@desk.example",
                        desk_url="https://desk.example/s/{case_id}", desk_phone="+31 30 000 0000",
                        desk_register_url="https://desk.example/join")
    assert DeskIdentity.from_settings(settings) == DeskIdentity(
        "Meldpunt S", "s@desk.example", "https://desk.example/s/{case_id}", "+31 30 000 0000",
        "https://desk.example/join")


def test_desk_from_environment_is_used_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CWN_DESK_NAME", "Env Desk")
    monkeypatch.setenv("CWN_DESK_URL", "https://env.example/case/{case_id}")
    msg = render(single("en"), desk=None)
    assert msg["From"].addresses[0].display_name == "Env Desk"
    assert "https://env.example/case/CWN-2026-000123" in body(msg, "plain")


def test_long_ascii_headers_fold_at_spaces_and_read_back_unchanged() -> None:
    import random

    from cwn.render.message import _raw_header

    rng = random.Random(1)
    words = ["[TLP:AMBER]", "CWN-2026-000123,", "and", "12", "more", "cases:", "Remote",
             "desktop", "(RDP)", "reachable", "from", "the", "internet", "x" * 90]
    for _ in range(500):
        value = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        for name in ("Subject", "X-CWN-Case-IDs"):
            raw = _raw_header(name, value)
            msg = email.message_from_string(f"{name}: {raw}\r\n\r\n", policy=email.policy.default)
            assert str(msg[name]) == value
            for line in f"{name}: {raw}".split("\r\n"):
                body = line[len(name) + 2:] if line.startswith(f"{name}:") else line.strip()
                assert len(line) <= 78 or " " not in body


def test_paragraph_wrapping_matches_textwrap() -> None:
    import random
    import textwrap

    from cwn.render.message import fill_paragraph as _fill

    rng = random.Random(3)
    words = ["a", "ab", "word", "hyphen-ated", "x" * 80, "end.", "tab\there", "nl\nhere",
             "ünïcode", "https://example.nl/a/long/path/that/goes/on/and/on"]
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        width = rng.choice([20, 40, 72])
        indent = rng.choice(["", "  "])
        first = rng.choice([None, "* ", "1. "])
        want = textwrap.fill(" ".join(text.split()), width=width,
                             initial_indent=indent if first is None else first,
                             subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False)
        assert _fill.__wrapped__(text, width, indent, first) == want
