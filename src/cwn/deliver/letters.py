"""Person-to-person letters (invitations, confirmation links, reminders) in Dutch and
English, from the same Babel catalogue as the portal.

Each letter is one plain-text Jinja template, rendered once per language with that
language's gettext; `mailer.bilingual` then puts Dutch first and English below. The first
line of a template is the subject. Sentences are kept on one line in the templates (so a
translator sees a whole sentence) and wrapped here; a line that starts with a space (a
link) is left alone, because a wrapped link cannot be clicked.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from cwn.deliver.mailer import bilingual
from cwn.render.message import fill_paragraph
from cwn.web.i18n import gettext, ngettext

TEMPLATES = Path(__file__).parent / "letters"
WIDTH = 76

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False,
                   extensions=["jinja2.ext.i18n"], keep_trailing_newline=True,
                   undefined=StrictUndefined)
_env.policies["ext.i18n.trimmed"] = True


def _wrap(text: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            out.append(line.rstrip())
        else:
            out.append(fill_paragraph(line.rstrip(), WIDTH))
    return "\n".join(out).strip() + "\n"


def render_one(letter: str, lang: str, /, **ctx: Any) -> tuple[str, str]:
    """(subject, body) of one letter in one language."""
    text = _env.get_template(f"{letter}.txt").render(
        lang=lang, gettext=partial(gettext, lang), ngettext=partial(ngettext, lang), **ctx)
    subject, _, body = text.lstrip().partition("\n")
    return " ".join(subject.split()), _wrap(body)


def render(letter: str, /, **ctx: Any) -> tuple[str, str]:
    """(subject, text) of a letter with Dutch first and English below."""
    subject_nl, nl = render_one(letter, "nl", **ctx)
    subject_en, en = render_one(letter, "en", **ctx)
    return bilingual(subject_nl, subject_en, nl, en)
