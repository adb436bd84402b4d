"""TLP 2.0 labels and their sharing texts (cwn.render.tlp)."""

from __future__ import annotations

import itertools

import pytest

from cwn.events.fields import TLP_LEVELS
from cwn.render.tlp import LANGUAGES, TLP, most_restrictive, parse_tlp


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("level", TLP_LEVELS)
def test_every_level_has_texts_in_both_languages(level: str, lang: str) -> None:
    tlp = TLP[level]
    assert tlp.label == f"TLP:{level}"
    text = tlp.text(lang)
    for part in (text.short, text.meaning, text.sharing):
        assert part.strip()
        assert "{" not in part  # no unfilled placeholders
    assert tlp.label in text.meaning
    assert tlp.text(f"{lang}-XX") == text  # regional variants are accepted


def test_levels_cover_tlp_2_in_order() -> None:
    assert tuple(TLP) == ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
    assert [t.rank for t in TLP.values()] == list(range(5))


def test_unknown_language_raises() -> None:
    with pytest.raises(ValueError, match="language"):
        TLP["AMBER"].text("de")


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("AMBER", "AMBER"),
        ("amber", "AMBER"),
        ("TLP:AMBER", "AMBER"),
        (" tlp:amber+strict ", "AMBER+STRICT"),
        ("WHITE", "CLEAR"),
        ("TLP:WHITE", "CLEAR"),
        ("red", "RED"),
        ("GREEN", "GREEN"),
    ],
)
def test_parse(value: str, level: str) -> None:
    assert parse_tlp(value).level == level


def test_parse_empty_uses_default_and_unknown_raises() -> None:
    assert parse_tlp(None, "AMBER").level == "AMBER"
    assert parse_tlp("", "tlp:red").level == "RED"
    with pytest.raises(ValueError):
        parse_tlp("")
    with pytest.raises(ValueError, match="unknown TLP"):
        parse_tlp("ORANGE")
    with pytest.raises(ValueError, match="unknown TLP"):
        parse_tlp("PURPLE", "AMBER")  # a bad label is never replaced by the default


def test_most_restrictive() -> None:
    assert most_restrictive(["GREEN", "AMBER", "CLEAR"]).level == "AMBER"
    assert most_restrictive(["AMBER", "AMBER+STRICT"]).level == "AMBER+STRICT"
    assert most_restrictive(["WHITE", "", "RED"], default="GREEN").level == "RED"
    assert most_restrictive([], default="AMBER").level == "AMBER"
    with pytest.raises(ValueError):
        most_restrictive([])


def test_permissions_only_narrow_as_labels_get_stricter() -> None:
    perms = [
        (t.may_publish, t.may_share_with_community, t.may_share_with_supplier,
         t.may_share_in_organisation)
        for t in TLP.values()
    ]
    for looser, stricter in itertools.pairwise(perms):
        assert all(s <= lo for lo, s in zip(looser, stricter, strict=True))
    assert TLP["AMBER"].may_share_with_supplier
    assert not TLP["AMBER+STRICT"].may_share_with_supplier
    assert not TLP["RED"].may_share_in_organisation


@pytest.mark.parametrize(
    ("lang", "supplier"), [("nl", "ICT-leverancier"), ("en", "IT supplier")]
)
def test_sharing_texts_say_concretely_whether_the_supplier_may_see_it(
    lang: str, supplier: str
) -> None:
    for level in ("GREEN", "AMBER", "AMBER+STRICT"):
        assert supplier in TLP[level].text(lang).sharing
    strict = TLP["AMBER+STRICT"].text(lang).sharing
    assert ("ook niet naar uw ICT-leverancier" if lang == "nl" else
            "not even to your IT supplier") in strict
    assert ("niet openbaar" if lang == "nl" else "not publish") in TLP["AMBER"].text(lang).sharing
