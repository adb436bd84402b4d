"""Traffic Light Protocol 2.0: the labels, what forwarding each allows, in Dutch and English.

A notification is sent under one TLP label (the most restrictive of its cases) and says, in
plain words, whom the recipient may share it with. The texts are concrete for the people who
receive cwn's notifications: most are small organisations that rely on an IT supplier or
hoster, so every text says whether that supplier may see the message.

Labels follow FIRST TLP 2.0 (https://www.first.org/tlp/): ``TLP:CLEAR``, ``TLP:GREEN``,
``TLP:AMBER``, ``TLP:AMBER+STRICT``, ``TLP:RED``. The labels themselves are never translated;
TLP 1.0 ``WHITE`` is read as ``CLEAR``.

Desk policy for ``TLP:AMBER``: TLP 2.0 allows sharing within the recipient's organisation and
with its clients on a need-to-know basis; as the source, the desk explicitly includes the IT
supplier or hoster that has to fix the problem (the whole point of a victim notification).
``TLP:AMBER+STRICT`` and ``TLP:RED`` do not allow that, and the mail says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from cwn.events.fields import TLP_LEVELS

__all__ = [
    "LANGUAGES",
    "TLP",
    "TLP_LEVELS",
    "Tlp",
    "TlpText",
    "most_restrictive",
    "parse_tlp",
]

LANGUAGES: tuple[str, ...] = ("nl", "en")


@dataclass(frozen=True, slots=True)
class TlpText:
    """What a label means for the recipient, in one language."""

    short: str
    """A few words, for the line under the label at the top of the message."""
    meaning: str
    """One sentence: what the label is for."""
    sharing: str
    """Concretely whom the recipient may (and may not) forward the message to."""


@dataclass(frozen=True, slots=True)
class Tlp:
    """One TLP 2.0 level."""

    level: str
    """``CLEAR``, ``GREEN``, ``AMBER``, ``AMBER+STRICT`` or ``RED``."""
    rank: int
    """0 (CLEAR) to 4 (RED): higher is more restrictive."""
    color: str
    """Label colour on a black background (FIRST TLP 2.0 RGB values)."""
    may_share_in_organisation: bool
    may_share_with_supplier: bool
    """The IT supplier or hoster who needs it to fix the problem."""
    may_share_with_community: bool
    may_publish: bool
    texts: MappingProxyType[str, TlpText]

    @property
    def label(self) -> str:
        return f"TLP:{self.level}"

    def text(self, lang: str) -> TlpText:
        """The texts in ``lang`` (``nl`` or ``en``; ``nl-NL``/``en_GB`` accepted)."""
        key = lang.strip().lower().replace("_", "-").split("-", 1)[0]
        try:
            return self.texts[key]
        except KeyError:
            raise ValueError(
                f"no TLP texts in language {lang!r}; supported: {', '.join(LANGUAGES)}"
            ) from None

    def __str__(self) -> str:
        return self.label


_TEXTS: dict[str, dict[str, TlpText]] = {
    "CLEAR": {
        "nl": TlpText(
            short="vrij te delen",
            meaning="TLP:CLEAR betekent dat er geen beperkingen gelden voor het delen van "
            "deze informatie.",
            sharing="U mag dit bericht vrij delen met iedereen en het ook openbaar maken, "
            "bijvoorbeeld om anderen te waarschuwen.",
        ),
        "en": TlpText(
            short="may be shared freely",
            meaning="TLP:CLEAR means there are no restrictions on sharing this information.",
            sharing="You may share this message with anyone and may also publish it, for "
            "example to warn others.",
        ),
    },
    "GREEN": {
        "nl": TlpText(
            short="delen binnen uw sector of omgeving, niet openbaar maken",
            meaning="TLP:GREEN betekent beperkt delen: binnen uw eigen kring, maar niet "
            "openbaar.",
            sharing="U mag dit bericht delen binnen uw organisatie en met partners en "
            "organisaties in uw sector of omgeving, zoals uw ICT-leverancier, hostingpartij of "
            "brancheorganisatie. Maak het niet openbaar: zet het niet op een openbare website "
            "en niet op sociale media.",
        ),
        "en": TlpText(
            short="share within your community, do not publish",
            meaning="TLP:GREEN means limited sharing: within your own community, but not "
            "in public.",
            sharing="You may share this message within your organisation and with partners "
            "and organisations in your sector or community, such as your IT supplier, hoster "
            "or industry association. Do not publish it: do not put it on a public website or "
            "on social media.",
        ),
    },
    "AMBER": {
        "nl": TlpText(
            short="alleen delen met wie het nodig heeft om het probleem op te lossen",
            meaning="TLP:AMBER betekent beperkt delen: alleen met wie het echt moet weten.",
            sharing="U mag dit bericht delen met collega's en met uw ICT-leverancier, "
            "hostingpartij of anderen die het nodig hebben om het probleem op te lossen, maar "
            "alleen voor zover zij het moeten weten. Deel het niet breder en maak het niet "
            "openbaar.",
        ),
        "en": TlpText(
            short="share only with those who need it to fix the problem",
            meaning="TLP:AMBER means limited sharing: only with those who need to know.",
            sharing="You may share this message with colleagues and with your IT supplier, "
            "hoster or others who need it to fix the problem, but only as far as they need to "
            "know. Do not share it more widely and do not publish it.",
        ),
    },
    "AMBER+STRICT": {
        "nl": TlpText(
            short="alleen delen binnen uw eigen organisatie",
            meaning="TLP:AMBER+STRICT betekent beperkt delen: alleen binnen uw eigen "
            "organisatie.",
            sharing="U mag dit bericht alleen delen met mensen binnen uw eigen organisatie "
            "die het nodig hebben om het probleem op te lossen. Stuur het niet door naar "
            "buiten uw organisatie, ook niet naar uw ICT-leverancier of hostingpartij. Heeft u "
            "hulp van buiten nodig? Neem dan eerst contact met ons op; wij vertellen u wat u "
            "mag delen.",
        ),
        "en": TlpText(
            short="share only within your own organisation",
            meaning="TLP:AMBER+STRICT means limited sharing: only within your own "
            "organisation.",
            sharing="You may share this message only with people in your own organisation "
            "who need it to fix the problem. Do not forward it outside your organisation, not "
            "even to your IT supplier or hoster. Do you need outside help? Then contact us "
            "first and we will tell you what you may share.",
        ),
    },
    "RED": {
        "nl": TlpText(
            short="alleen voor u persoonlijk, niet delen",
            meaning="TLP:RED betekent: alleen voor de geadresseerde, niet verder delen.",
            sharing="Dit bericht is alleen voor u persoonlijk bedoeld. Stuur het niet door "
            "en deel het met niemand anders, ook niet binnen uw organisatie. Moeten anderen "
            "iets doen? Neem dan eerst contact met ons op; wij vertellen u wat u mag delen.",
        ),
        "en": TlpText(
            short="for you only, do not share",
            meaning="TLP:RED means: for the addressee only, no further sharing.",
            sharing="This message is meant for you personally. Do not forward it and do not "
            "share it with anyone else, not even inside your organisation. Do others need to "
            "act? Then contact us first and we will tell you what you may share.",
        ),
    },
}

_COLORS = {
    "CLEAR": "#FFFFFF",
    "GREEN": "#33FF00",
    "AMBER": "#FFC000",
    "AMBER+STRICT": "#FFC000",
    "RED": "#FF2B2B",
}


def _make(level: str, rank: int) -> Tlp:
    return Tlp(
        level=level,
        rank=rank,
        color=_COLORS[level],
        may_share_in_organisation=level != "RED",
        may_share_with_supplier=level in ("CLEAR", "GREEN", "AMBER"),
        may_share_with_community=level in ("CLEAR", "GREEN"),
        may_publish=level == "CLEAR",
        texts=MappingProxyType(_TEXTS[level]),
    )


TLP: MappingProxyType[str, Tlp] = MappingProxyType(
    {level: _make(level, rank) for rank, level in enumerate(TLP_LEVELS)}
)
"""Level (``AMBER``) -> its :class:`Tlp`, least to most restrictive."""

_ALIASES = {"WHITE": "CLEAR", "AMBER STRICT": "AMBER+STRICT", "AMBER-STRICT": "AMBER+STRICT"}


def parse_tlp(value: str | None, default: str | None = None) -> Tlp:
    """The :class:`Tlp` for ``AMBER``, ``tlp:amber``, ``TLP:AMBER+STRICT``, ``WHITE`` ...

    An empty value gives ``default`` (parsed the same way); an unknown value raises
    :class:`ValueError`: a notification must never go out under a guessed label.
    """
    text = (value or "").strip().upper()
    if text.startswith("TLP:"):
        text = text[4:].strip()
    if not text:
        if default is None:
            raise ValueError("no TLP label given and no default")
        return parse_tlp(default)
    text = _ALIASES.get(text, text)
    try:
        return TLP[text]
    except KeyError:
        raise ValueError(
            f"unknown TLP label {value!r}; expected one of {', '.join(TLP_LEVELS)}"
        ) from None


def most_restrictive(levels: Iterable[str | Tlp], default: str | None = None) -> Tlp:
    """The most restrictive of ``levels`` (what a message holding all of them must carry)."""
    parsed = [lv if isinstance(lv, Tlp) else parse_tlp(lv, default) for lv in levels]
    if not parsed:
        if default is None:
            raise ValueError("no TLP levels given and no default")
        return parse_tlp(default)
    return max(parsed, key=lambda t: t.rank)
