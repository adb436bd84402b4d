"""Dutch and English throughout: every string of the portal has a Dutch translation in the
Babel catalogue, and a page follows the chosen language."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cwn.web import i18n
from cwn.wiring import Services


def test_every_portal_string_has_a_dutch_translation() -> None:
    missing = i18n.missing("nl")
    assert not missing, f"{len(missing)} strings without Dutch (python -m cwn.web.i18n " \
        f"update, then translate): {missing[:20]}"


def test_placeholders_survive_translation() -> None:
    import re

    field = re.compile(r"\{[a-z_]*\}")
    wrong = {msgid: text for msgid, text in i18n.catalogue("nl").items()
             if sorted(field.findall(msgid)) != sorted(field.findall(text))}
    assert not wrong, wrong


def test_the_language_is_picked_from_the_browser_then_switched(
        web_app: tuple[TestClient, Services]) -> None:
    client, _ = web_app
    english = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    dutch = client.get("/login", headers={"Accept-Language": "nl-NL"}).text
    assert 'lang="en"' in english and "Password" in english
    assert 'lang="nl"' in dutch and i18n.gettext("nl", "Password") in dutch
    assert i18n.gettext("nl", "Password") != "Password"
    r = client.get("/lang/en?next=/login")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert 'lang="en"' in client.get("/login", headers={"Accept-Language": "nl"}).text


def test_unknown_languages_fall_back_to_dutch() -> None:
    assert i18n.pick("fr-FR,de;q=0.5") == "nl"
    assert i18n.pick(None) == "nl"
    assert i18n.gettext("xx", "Password") == i18n.gettext("nl", "Password")


def test_counts_take_the_singular_for_one_in_both_languages() -> None:
    assert i18n.ngettext("nl", "{n} event.", "{n} events.", 1) == "{n} waarneming."
    assert i18n.ngettext("nl", "{n} event.", "{n} events.", 2) == "{n} waarnemingen."
    assert i18n.ngettext("en", "{n} event.", "{n} events.", 1) == "{n} event."
    assert i18n.ngettext("en", "{n} event.", "{n} events.", 0) == "{n} events."
