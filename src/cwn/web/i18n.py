"""Dutch and English for the portal, from Babel (gettext) catalogues.

The msgids are the English texts, so English needs no catalogue and a missing Dutch
translation shows English rather than a key. The `.po` files are read directly at start-up
(no compile step on install); `python -m cwn.web.i18n update` re-extracts the strings from
the Python code and the templates and merges them into the catalogues, and a test fails
while any Dutch translation is missing.
"""

from __future__ import annotations

import sys
from functools import cache
from itertools import chain
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

LANGUAGES = ("nl", "en")
DEFAULT = "nl"
LOCALE_DIR = Path(__file__).parent / "locale"
_SOURCE_DIR = Path(__file__).resolve().parents[1]  # src/cwn
_METHODS = [("**/web/templates/**.html", "jinja2"), ("**/web/**.py", "python"),
            ("**/access/**.py", "python"), ("**/registry/**.py", "python"),
            ("**/feedback/**.py", "python")]
# Letters use {% trans %} blocks, whose gettext takes the message first: the default keywords.
_LETTERS = ("**/deliver/letters/**.txt", "jinja2")
_KEYWORDS = {"_": None, "gettext": (2,), "N_": None, "translate": (3,), "ngettext": (1, 2),
             "AccessError": (2,), "HTTPException": (2,)}


def _po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


@cache
def catalogue(lang: str) -> dict[str, str]:
    path = _po_path(lang)
    if lang == "en" or not path.is_file():
        return {}
    with path.open("rb") as fh:
        cat = read_po(fh, locale=lang)
    out: dict[str, str] = {}
    for m in cat:
        if not m.id or not m.string or m.fuzzy:
            continue
        if isinstance(m.id, tuple):  # singular/plural: both forms, keyed by the plural
            forms = tuple(str(x) for x in m.string)
            if all(forms):
                out[_PLURAL + str(m.id[0])] = forms[0]
                out[_PLURAL + str(m.id[1])] = forms[1]
        else:
            out[str(m.id)] = str(m.string)
    return out


_PLURAL = "\x04plural\x04"


def gettext(lang: str, message: str) -> str:
    return catalogue(lang if lang in LANGUAGES else DEFAULT).get(message, message)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    """Dutch, like English, has one form for 1 and one for everything else."""
    chosen = singular if n == 1 else plural
    return catalogue(lang if lang in LANGUAGES else DEFAULT).get(_PLURAL + chosen, chosen)


def N_(message: str) -> str:
    """Mark a string for extraction where it is translated later (labels in tables)."""
    return message


def pick(accept_language: str | None) -> str:
    """The first of our languages in an Accept-Language header, else Dutch."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT


def extract() -> Catalog:
    cat = Catalog(project="cwn", charset="utf-8")
    found = chain(
        extract_from_dir(str(_SOURCE_DIR), _METHODS, keywords=_KEYWORDS,
                         options_map={_METHODS[0][0]: {"extensions": "jinja2.ext.i18n"}}),
        extract_from_dir(str(_SOURCE_DIR), [_LETTERS],
                         options_map={_LETTERS[0]: {"extensions": "jinja2.ext.i18n",
                                                    "trimmed": "true"}}))
    for filename, lineno, message, comments, context in found:
        if isinstance(message, tuple) and len(message) > 2:
            message = message[:2]
        if message:
            cat.add(message, locations=[(filename, lineno)], auto_comments=comments,
                    context=context)
    return cat


def missing(lang: str = "nl") -> list[str]:
    """Extracted strings without a translation in `lang` (the catalogue test uses this)."""
    have = catalogue(lang)
    wanted: set[str] = set()
    for m in extract():
        if isinstance(m.id, tuple):
            wanted.update(_PLURAL + str(x) for x in m.id)
        elif m.id:
            wanted.add(str(m.id))
    return sorted(w.replace(_PLURAL, "") for w in wanted - set(have))


def update(lang: str = "nl") -> int:
    """Merge freshly extracted strings into the catalogue, keeping translations."""
    template = extract()
    path = _po_path(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        with path.open("rb") as fh:
            cat = read_po(fh, locale=lang)
    else:
        cat = Catalog(locale=lang, project="cwn", charset="utf-8")
    cat.update(template, no_fuzzy_matching=True)
    cat.obsolete.clear()
    with path.open("wb") as fh:
        write_po(fh, cat, width=100, sort_output=True, omit_header=False)
    catalogue.cache_clear()
    return sum(1 for m in cat if m.id and not m.string)


if __name__ == "__main__":  # python -m cwn.web.i18n update|missing
    if sys.argv[1:2] == ["update"]:
        print(f"{update()} untranslated")
    else:
        print("\n".join(missing()))
