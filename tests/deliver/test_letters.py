"""Person-to-person letters come from the Babel catalogue like the portal: Dutch first,
English below, every sentence translated, links never broken by the line wrap."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cwn.deliver import letters

LONG_LINK = "https://portal.cwn.example/claims/confirm/" + "x" * 90

LETTERS: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
    ("invitation", {"name": "Jan de Vries", "link": LONG_LINK, "days": 7, "desk": "CWN"},
     ("Kies via deze link een wachtwoord", "Choose a password through this link")),
    ("approval", {"name": "Jan", "org": "Bakkerij Jansen", "login": LONG_LINK,
                  "desk": "CWN"},
     ("registratie voor Bakkerij Jansen goedgekeurd",
      "approved your registration for Bakkerij Jansen")),
    ("rir_confirmation", {"org": "Bakkerij Jansen", "value": "AS64496", "asn": True,
                          "detail": "AS64496 (RIPE Database)", "link": LONG_LINK,
                          "days": 14, "desk": "CWN"},
     ("het AS-nummer AS64496", "the AS number AS64496")),
    ("rir_confirmation", {"org": "Bakkerij Jansen", "value": "192.0.2.0/24", "asn": False,
                          "detail": "192.0.2.0/24 (RIPE Database)", "link": LONG_LINK,
                          "days": 14, "desk": "CWN"},
     ("het adresblok 192.0.2.0/24", "the address block 192.0.2.0/24")),
    ("contact_reminder", {"email": "soc@bakkerij.example", "org": "Bakkerij Jansen",
                          "desk": "CWN", "roles": {"nl": "beveiliging", "en": "security"},
                          "since": "2026-01-02", "link": LONG_LINK,
                          "portal": "https://portal.cwn.example/contacts", "days": 30},
     ("rol: beveiliging", "role: security")),
    ("password_reset", {"name": "Jan", "link": LONG_LINK, "minutes": 60, "ip": "192.0.2.7",
                        "desk": "CWN"},
     ("60 minuten lang", "for 60 minutes")),
    ("password_reset", {"name": "Jan", "link": LONG_LINK, "minutes": 60, "ip": None,
                        "desk": "CWN"},
     ("uw wachtwoord verandert niet", "your password does not change")),
]


@pytest.mark.parametrize(("letter", "ctx", "marks"), LETTERS,
                         ids=[f"{t[0]}-{i}" for i, t in enumerate(LETTERS)])
def test_a_letter_is_dutch_first_then_english_with_the_link_whole(
        letter: str, ctx: dict[str, Any], marks: tuple[str, str]) -> None:
    subject, text = letters.render(letter, **ctx)
    nl_subject, en_subject = letters.render_one(letter, "nl", **ctx)[0], \
        letters.render_one(letter, "en", **ctx)[0]
    assert subject == f"{nl_subject} / {en_subject}" and nl_subject != en_subject
    nl, _, en = text.partition("-" * 70)
    assert marks[0] in " ".join(nl.split()) and marks[1] in " ".join(en.split())
    assert marks[1] not in " ".join(nl.split())
    for half in (nl, en):
        link = ctx.get("link") or ctx.get("login")
        assert f"\n  {link}\n" in half  # one unbroken line a mail client can click
        assert not re.search(r"\{[{%]|%\(|\}\}", half)  # no template or format leftovers
        long = [line for line in half.splitlines()
                if len(line) > letters.WIDTH and not line.startswith(" ")]
        assert not long


def test_a_missing_dutch_translation_shows_english_rather_than_a_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cwn.web import i18n

    real = i18n.catalogue("nl")
    monkeypatch.setattr(i18n, "catalogue", lambda lang: {
        k: v for k, v in real.items() if not k.startswith("Kind regards")})
    _, body = letters.render_one("invitation", "nl", name="Jan", link="https://x/y",
                                 days=7, desk="CWN")
    assert "Kind regards," in body and "Beste Jan," in body
