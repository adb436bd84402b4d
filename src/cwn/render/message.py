"""The notification mail: one message per notification, in Dutch or English.

A notification holds one case (a finding at one owner) or several (a digest). The mail is
``multipart/mixed``: a ``multipart/alternative`` with a plain-text and an HTML body, and a CSV
attachment with every event of the notification under IntelMQ field names
(:func:`cwn.render.formats.csv.write_csv`).

The body, in the recipient's language, answers in order: what we saw (per report type, with a
table of observations), why it matters and what to do now (from the advice library), how to
check that the message is genuine, whom it may be forwarded to (TLP 2.0, see
:mod:`cwn.render.tlp`) and whom to contact. A digest with several kinds of problem starts
with a summary per kind.

Words live in the Jinja2 templates under ``templates/`` (``notification.<lang>.<txt|html>.j2``
and partials); this module prepares the data: grouping, table rows, times in UTC and
Europe/Amsterdam, the subject and the headers. The template environment is built once per
process (autoescape for HTML, ``StrictUndefined``).

Unsolicited mail (the address came from public registration data, not from a sign-up) uses
``notification_unsolicited.<lang>.<txt|html>.j2``, which extend the base templates: such mail
is easily taken for phishing, so it first says who we are, where we found the address, how to
check the message and what to do if it reached the wrong person, and ends with how to sign up.
Registered recipients get exactly the base text. A national CSIRT receiving for a network in
its country always gets English: that is the working language between CSIRTs.

The desk's identity (name, address, case lookup URL, phone, sign-up URL) comes from
:class:`cwn.config.Settings` (``CWN_DESK_NAME``, ``CWN_DESK_EMAIL``, ``CWN_DESK_URL``,
``CWN_DESK_PHONE``, ``CWN_DESK_REGISTER_URL``).
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.utils
import io
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
import pyarrow as pa
import pyarrow.compute as pc

from cwn.config import Settings
from cwn.events.fields import SEVERITIES
from cwn.render.advice.library import Advice, AdviceLibrary, AdviceText, default_library
from cwn.render.tlp import Tlp, TlpText, most_restrictive

__all__ = [
    "LANGUAGES",
    "TABLE_ROW_CAP",
    "CaseView",
    "DeskIdentity",
    "NotificationView",
    "render_bytes",
    "render_message",
]

LANGUAGES: tuple[str, ...] = ("nl", "en")
FALLBACK_LANGUAGE = "en"
TABLE_ROW_CAP = 50
"""Observations listed in the body per kind of problem; the attachment has all of them."""
WRAP_WIDTH = 72
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


# -- the desk ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeskIdentity:
    """Who sends the notifications and how a recipient can verify and reach them.

    ``case_url`` is the public page where a recipient looks up a case ID; it must contain
    ``{case_id}``, and may contain ``{key}``: the case's key
    (:func:`cwn.feedback.casekey.case_key` with ``key_secret``), which opens the page
    without an account. An empty ``phone`` leaves the number out (the mail then points to the
    number on the website instead). ``register_url`` is where an unsolicited recipient signs
    up to receive notifications at an address of their choosing.
    """

    name: str = "CWN desk"
    email: str = "meldingen@cwn.example"
    case_url: str = "https://cwn.example/case/{case_id}"
    phone: str = ""
    register_url: str = "https://cwn.example/register"
    key_secret: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for attr in ("name", "email", "case_url", "phone", "register_url"):
            if re.search(r"[\r\n]", getattr(self, attr)):
                raise ValueError(f"desk {attr} must be a single line")
        if not self.name.strip():
            raise ValueError("desk name must not be empty")
        if "@" not in self.email:
            raise ValueError(f"desk email {self.email!r} is not an e-mail address")
        parts = urlsplit(self.case_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"desk case URL {self.case_url!r} must be an http(s) URL")
        if "{case_id}" not in self.case_url:
            raise ValueError(f"desk case URL {self.case_url!r} must contain {{case_id}}")
        if "{key}" in self.case_url and not self.key_secret:
            raise ValueError(f"desk case URL {self.case_url!r} has {{key}} but no secret")
        parts = urlsplit(self.register_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"desk register URL {self.register_url!r} must be an http(s) URL")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeskIdentity:
        """Defaults overridden by ``CWN_DESK_NAME``, ``_EMAIL``, ``_URL``, ``_PHONE`` and
        ``_REGISTER_URL``."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            name=env.get("CWN_DESK_NAME", "").strip() or defaults.name,
            email=env.get("CWN_DESK_EMAIL", "").strip() or defaults.email,
            case_url=env.get("CWN_DESK_URL", "").strip() or defaults.case_url,
            phone=env.get("CWN_DESK_PHONE", "").strip() or defaults.phone,
            register_url=env.get("CWN_DESK_REGISTER_URL", "").strip() or defaults.register_url,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> DeskIdentity:
        secret = (_case_secret(settings.secret_key, settings.home)
                  if "{key}" in settings.desk_url else None)
        return cls(name=settings.desk_name, email=settings.desk_email,
                   case_url=settings.desk_url, phone=settings.desk_phone,
                   register_url=settings.desk_register_url, key_secret=secret)

    def case_link(self, case_id: str) -> str:
        url = self.case_url.replace("{case_id}", quote(case_id, safe=""))
        if self.key_secret is not None and "{key}" in url:
            from cwn.feedback.casekey import case_key

            url = url.replace("{key}", case_key(self.key_secret, case_id))
        return url

    @property
    def website(self) -> str:
        """``https://cwn.example``: the site a doubting recipient types in by hand."""
        parts = urlsplit(self.case_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def website_host(self) -> str:
        return urlsplit(self.case_url).netloc


@lru_cache(maxsize=8)
def _case_secret(configured: str | None, home: Path) -> bytes:
    """The installation key, read once per process (DeskIdentity is built per message)."""
    from cwn.access.secrets import load_secret_key

    try:
        return load_secret_key(configured, home)
    except FileExistsError:  # a sibling render process created it just now
        return load_secret_key(configured, home)


# -- what the notify state machine hands over ----------------------------------------------


@dataclass
class CaseView:
    """One case in a notification, with the events that go out with it."""

    case_id: str
    report_type: str | None
    identifier: str | None
    taxonomy: str | None
    severity: str
    tlp: str
    first_seen: datetime
    last_seen: datetime
    events: pa.Table
    """Event batch with the catalogue's (IntelMQ) column names; missing columns are empty."""


@dataclass
class NotificationView:
    """One notification: the recipient and the cases it covers (several make a digest)."""

    notification_id: str
    org_id: str
    org_name: str
    recipient: str
    language: str
    """``nl`` or ``en`` (``nl-NL`` accepted); anything else gets English."""
    cases: list[CaseView]
    unsolicited: bool = False
    """The recipient did not register with us (e.g. a RIPE abuse contact)."""
    source_label: str | None = None
    """Where an unsolicited address was found, in the recipient's language, as it reads after
    "found in": ``the RIPE Database abuse contact``, ``de security.txt van example.nl``."""
    owner_name: str | None = None
    """Who the network belongs to according to that source; default ``org_name``."""
    recipient_kind: str | None = None
    """``csirt`` for a national CSIRT receiving on behalf of a network in its country."""


# -- vocabulary the code needs (the prose is in the templates) ------------------------------

_COLUMNS: dict[str, dict[str, str]] = {
    "nl": {
        "case": "Kenmerk",
        "ip": "IP-adres",
        "port": "Poort",
        "transport": "Protocol",
        "utc": "Tijd (UTC)",
        "local": "Nederlandse tijd",
        "hostname": "Hostnaam",
        "malware": "Malware",
    },
    "en": {
        "case": "Case",
        "ip": "IP address",
        "port": "Port",
        "transport": "Protocol",
        "utc": "Time (UTC)",
        "local": "Amsterdam time",
        "hostname": "Hostname",
        "malware": "Malware",
    },
}

_MONTHS: dict[str, tuple[str, ...]] = {
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}

_SEVERITY_WORD: dict[str, dict[str, str]] = {
    "nl": {"critical": "kritiek", "high": "hoog", "medium": "gemiddeld", "low": "laag",
           "info": "informatief"},
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low",
           "info": "informational"},
}

_URGENCY: dict[str, dict[str, str]] = {
    "nl": {
        "critical": "Los dit vandaag nog op.",
        "high": "Los dit zo snel mogelijk op, het liefst vandaag.",
        "medium": "Los dit binnen een week op.",
        "low": "Los dit binnen enkele weken op.",
        "info": "Ter informatie: bekijk of u iets moet doen.",
    },
    "en": {
        "critical": "Fix this today.",
        "high": "Fix this as soon as possible, preferably today.",
        "medium": "Fix this within a week.",
        "low": "Fix this within a few weeks.",
        "info": "For your information: check whether you need to act.",
    },
}


def _subject_text(lang: str, label: str, first_id: str, n_cases: int, title: str,
                  n_other_kinds: int) -> str:
    if lang == "nl":
        ids = first_id if n_cases == 1 else f"{first_id} en {n_cases - 1} andere meldingen"
        more = ("" if n_other_kinds == 0 else " (en 1 ander probleem)" if n_other_kinds == 1
                else f" (en {n_other_kinds} andere problemen)")
    else:
        ids = first_id if n_cases == 1 else f"{first_id} and {n_cases - 1} more cases"
        more = ("" if n_other_kinds == 0 else " (and 1 other issue)" if n_other_kinds == 1
                else f" (and {n_other_kinds} other issues)")
    return f"[{label}] {ids}: {title}{more}"


# -- the template environment (built once) -------------------------------------------------


@lru_cache(maxsize=64)
def from_header(name: str, email_address: str) -> str:
    """The From header of the desk (parsing an address costs more than a whole template)."""
    return str(Address(display_name=_header(name), addr_spec=email_address))


@lru_cache(maxsize=8192)
def fill_paragraph(text: str, width: int = WRAP_WIDTH, indent: str = "",
                   first: str | None = None) -> str:
    """Wrap a paragraph for the plain-text body (hanging ``indent``, optional ``first``).

    What ``textwrap.fill`` does with whitespace-separated words, no hyphen breaks and no
    breaking of long words, as one greedy pass: textwrap's regular-expression chunking was
    a fifth of a mail's rendering time (the property test checks both agree).
    """
    words = str(text).split()
    if not words:
        return ""
    lines: list[str] = []
    line = (indent if first is None else first) + words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) <= width:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = indent + word
    lines.append(line)
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                            default_for_string=True, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=-1,
    )
    env.filters["fill"] = fill_paragraph
    return env


@lru_cache(maxsize=32)
def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


# -- preparing the data --------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One observation as shown in the body (all values already text)."""

    case_id: str
    ip: str
    port: str
    transport: str
    utc: str
    local: str
    hostname: str
    malware: str


@dataclass(slots=True)
class Group:
    """The cases of one kind of problem (one advice entry), shown as one section."""

    advice: Advice
    text: AdviceText
    severity: str
    severity_word: str
    urgency: str
    report_types: list[str]
    cases: list[CaseView] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    n_events: int = 0
    n_ips: int = 0
    more: int = 0
    first_seen: str = ""
    last_seen: str = ""
    providers: list[str] = field(default_factory=list)
    show_case: bool = False
    show_hostname: bool = False
    show_malware: bool = False
    text_table: str = ""


def _lang(language: str) -> str:
    key = (language or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return key if key in LANGUAGES else FALLBACK_LANGUAGE


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _long_time(dt: datetime, lang: str) -> str:
    """``14 januari 2026, 09:12`` in Amsterdam time."""
    local = _utc(dt).astimezone(AMSTERDAM)
    return f"{local.day} {_MONTHS[lang][local.month - 1]} {local.year}, {local:%H:%M}"


def _severity(value: str | None) -> str:
    s = (value or "").strip().lower()
    return s if s in SEVERITIES else "medium"


DISPLAY_COLUMNS = ("time.source", "time.observation", "source.fqdn", "source.reverse_dns",
                   "source.ip", "source.port", "protocol.transport", "malware.name",
                   "feed.provider")
"""The event columns the mail body shows; with a ready attachment, a view needs no more."""


def _column(table: pa.Table, name: str, n: int) -> list[Any]:
    if table.schema.get_field_index(name) >= 0:
        return list(table.column(name).slice(0, n).to_pylist())
    return [None] * n


def _unique(table: pa.Table, name: str) -> set[Any]:
    if table.num_rows == 0 or table.schema.get_field_index(name) < 0:
        return set()
    return {v for v in pc.unique(table.column(name)).to_pylist() if v is not None}


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _rows(case: CaseView, limit: int) -> list[Row]:
    table = case.events
    n = min(limit, table.num_rows)
    if n <= 0:
        return []
    times = _column(table, "time.source", n)
    observed = _column(table, "time.observation", n)
    fqdn = _column(table, "source.fqdn", n)
    rdns = _column(table, "source.reverse_dns", n)
    rows = []
    for ip, port, transport, t_src, t_obs, fq, rd, malware in zip(
        _column(table, "source.ip", n),
        _column(table, "source.port", n),
        _column(table, "protocol.transport", n),
        times,
        observed,
        fqdn,
        rdns,
        _column(table, "malware.name", n),
        strict=True,
    ):
        when = t_src or t_obs
        if isinstance(when, datetime):
            when = _utc(when)
            utc = f"{when:%Y-%m-%d %H:%M:%S}"
            local = f"{when.astimezone(AMSTERDAM):%Y-%m-%d %H:%M:%S}"
        else:
            utc = local = ""
        rows.append(Row(
            case_id=case.case_id,
            ip=_text(ip),
            port=_text(port),
            transport=_text(transport),
            utc=utc,
            local=local,
            hostname=_text(fq or rd),
            malware=_text(malware),
        ))
    return rows


def _text_table(group: Group, cols: Mapping[str, str]) -> str:
    keys = ["ip", "port", "transport", "utc", "local"]
    if group.show_case:
        keys.insert(0, "case_id")
    if group.show_hostname:
        keys.append("hostname")
    if group.show_malware:
        keys.append("malware")
    headers = [cols["case" if k == "case_id" else k] for k in keys]
    body = [[getattr(r, k) for k in keys] for r in group.rows]
    widths = [max([len(h)] + [len(cells[i]) for cells in body]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        for cells in [headers, ["-" * w for w in widths], *body]
    ]
    return "\n".join(lines)


def _groups(cases: Sequence[CaseView], library: AdviceLibrary, lang: str) -> list[Group]:
    """Cases grouped by advice entry (unknown types stay apart), most severe first."""
    groups: dict[str, Group] = {}
    for case in cases:
        adv = library.for_event(case.report_type, case.identifier)
        key = adv.id if not adv.is_generic else f"generic:{case.report_type}:{case.identifier}"
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(
                advice=adv, text=adv.text(lang), severity="info", severity_word="",
                urgency="", report_types=[],
            )
        group.cases.append(case)
        group.case_ids.append(case.case_id)
        if case.report_type and case.report_type not in group.report_types:
            group.report_types.append(case.report_type)
        sev = _severity(case.severity)
        if SEVERITIES.index(sev) > SEVERITIES.index(group.severity):
            group.severity = sev

    cols = _COLUMNS[lang]
    for group in groups.values():
        group.severity_word = _SEVERITY_WORD[lang][group.severity]
        group.urgency = _URGENCY[lang][group.severity]
        ips: set[Any] = set()
        providers: set[Any] = set()
        for case in group.cases:
            group.n_events += case.events.num_rows
            ips |= _unique(case.events, "source.ip")
            providers |= _unique(case.events, "feed.provider")
            group.rows.extend(_rows(case, TABLE_ROW_CAP - len(group.rows)))
        group.n_ips = len(ips)
        group.more = group.n_events - len(group.rows)
        group.providers = sorted(str(p) for p in providers)[:3]
        group.first_seen = _long_time(min(_utc(c.first_seen) for c in group.cases), lang)
        group.last_seen = _long_time(max(_utc(c.last_seen) for c in group.cases), lang)
        group.show_case = len(group.cases) > 1
        group.show_hostname = any(r.hostname for r in group.rows)
        group.show_malware = any(r.malware for r in group.rows)
        group.text_table = _text_table(group, cols)
    order = list(groups.values())
    order.sort(key=lambda g: -SEVERITIES.index(g.severity))  # stable: first seen first
    return order


def _header(value: str) -> str:
    """A header value on one line (no CR/LF can reach the message)."""
    return " ".join(value.split())


def _safe_filename(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._") or "events"


def _attachment(cases: Sequence[CaseView]) -> tuple[bytes, int]:
    from cwn.render.formats.csv import write_csv  # a sibling module, imported when used

    tables = [c.events for c in cases]
    batches: list[pa.Table] = tables
    if len(tables) > 1:
        # One table: the writer conforms (and scans) each batch, which is most of its cost.
        try:
            batches = [pa.concat_tables(tables, promote_options="default")]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            batches = tables
    buf = io.BytesIO()
    count = write_csv(batches, buf)
    return buf.getvalue(), count


# -- MIME assembly -------------------------------------------------------------------------
# The stdlib's EmailMessage.set_content()/msg[name] = value parse every header they are given
# (about 7 ms for this message), and its generator re-parses and re-folds them on output,
# which alone would cap rendering far below the 300 messages/s the deliverer needs. The parts
# are therefore encoded here (quoted-printable bodies, base64 attachment, RFC 2047 only for
# headers that need it) and the message written out as bytes directly (`_mime`).

_POLICY = email.policy.default
_MAX_HEADER = 78


def _raw_header(name: str, value: str) -> str:
    """``value`` ready to store unparsed: ASCII, folded, RFC 2047-encoded where needed."""
    if re.search(r"[\r\n]", value):
        raise ValueError(f"header {name} must be a single line")
    if value.isascii() and len(name) + 2 + len(value) <= _MAX_HEADER:
        return value
    if value.isascii() and name in _FOLD_AT_SPACES:
        return _fold_ascii(name, value)
    folded = _POLICY.fold(name, value)
    return folded[len(name) + 2 :].rstrip("\r\n")


_FOLD_AT_SPACES = frozenset({"Subject", "X-CWN-Case-IDs"})
"""Unstructured headers: folding is just a line break before a space (RFC 5322 3.2.2)."""


def _fold_ascii(name: str, value: str) -> str:
    """An ASCII unstructured header folded at spaces into lines of at most 78 characters
    (a word longer than a line stays whole); what the email package does, without parsing."""
    lines: list[str] = []
    line, used = "", len(name) + 2
    for word in value.split(" "):
        if line and used + 1 + len(word) > _MAX_HEADER:
            lines.append(line)
            line, used = word, 1 + len(word)
        else:
            line = f"{line} {word}" if line else word
            used += len(word) + (1 if len(line) > len(word) else 0)
    lines.append(line)
    return "\r\n ".join(lines)


def _qp(text: str) -> str:
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")


def _boundary() -> str:
    # "=_" cannot occur in quoted-printable or base64 text, so this never clashes with a body.
    return f"=_cwn_{secrets.token_hex(12)}"


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _mime(headers: Sequence[tuple[str, str]], text_body: str, html_body: str,
          attachment: bytes, attachment_name: str,
          attachment_type: str = 'text/csv; charset="utf-8"; header="present"') -> bytes:
    """The whole message as SMTP-ready bytes (CRLF, 7-bit), written directly.

    Every header is already folded and encoded (`_raw_header`) and every body already
    transfer-encoded (quoted-printable, base64), so there is nothing left for the email
    package's generator to decide; it re-parsed and re-folded every header and cost more
    than rendering the templates. `render_message` parses these bytes back, so the tests of
    the message object exercise exactly what is sent.
    """
    outer, inner = _boundary(), _boundary()
    lines = [f"{name}: {_raw_header(name, value)}" for name, value in headers]
    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{outer}"', "",
              f"--{outer}", f'Content-Type: multipart/alternative; boundary="{inner}"', "",
              f"--{inner}", 'Content-Type: text/plain; charset="utf-8"',
              "Content-Transfer-Encoding: quoted-printable", "", _crlf(_qp(text_body)),
              f"--{inner}", 'Content-Type: text/html; charset="utf-8"',
              "Content-Transfer-Encoding: quoted-printable", "", _crlf(_qp(html_body)),
              f"--{inner}--", "",
              f"--{outer}", f"Content-Type: {attachment_type}",
              "Content-Transfer-Encoding: base64",
              f'Content-Disposition: attachment; filename="{attachment_name}"', "",
              _crlf(base64.encodebytes(attachment).decode("ascii")).rstrip("\r\n"),
              f"--{outer}--", ""]
    return "\r\n".join(lines).encode("ascii")


# -- the message ---------------------------------------------------------------------------


def render_message(
    view: NotificationView,
    *,
    settings: Settings,
    message_id: str,
    return_path: str,
    desk: DeskIdentity | None = None,
    advice: AdviceLibrary | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The complete mail for ``view`` as a message object (what `render_bytes` sends,
    parsed back). Raises :class:`ValueError` like `render_bytes`."""
    data, _subject = render_bytes(view, settings=settings, message_id=message_id,
                                  return_path=return_path, desk=desk, advice=advice, now=now)
    msg = email.message_from_bytes(data, policy=_POLICY)
    assert isinstance(msg, EmailMessage)
    return msg


def render_bytes(
    view: NotificationView,
    *,
    settings: Settings,
    message_id: str,
    return_path: str,
    desk: DeskIdentity | None = None,
    advice: AdviceLibrary | None = None,
    now: datetime | None = None,
    attachment: tuple[bytes, int] | None = None,
) -> tuple[bytes, str]:
    """The complete mail for ``view``, ready for the deliverer, and its subject.

    The envelope sender is the deliverer's business; ``return_path`` is recorded in the
    ``X-CWN-Return-Path`` header so the deliverer (and a bounce handler reading the outbox)
    needs nothing but the message. ``now`` fixes the ``Date`` header (tests).

    Raises :class:`ValueError` for a notification without cases or with an unknown TLP label
    (a notification never goes out under a guessed label).
    """
    if not view.cases:
        raise ValueError(f"notification {view.notification_id}: has no cases")
    if re.search(r"[\r\n]", view.recipient) or "@" not in view.recipient:
        raise ValueError(f"notification {view.notification_id}: bad recipient {view.recipient!r}")
    csirt = view.unsolicited and (view.recipient_kind or "").strip().lower() == "csirt"
    lang = "en" if csirt else _lang(view.language)
    desk = desk if desk is not None else DeskIdentity.from_settings(settings)
    library = advice if advice is not None else default_library()
    tlp: Tlp = most_restrictive((c.tlp for c in view.cases), default=settings.default_tlp)
    tlp_text: TlpText = tlp.text(lang)

    groups = _groups(view.cases, library, lang)
    first_id = view.cases[0].case_id
    case_ids = [c.case_id for c in view.cases]
    attachment_name = f"{_safe_filename(first_id)}.csv"
    csv_bytes, n_events = attachment if attachment is not None else _attachment(view.cases)

    context: dict[str, Any] = {
        "lang": lang,
        "view": view,
        "org_name": _text(view.org_name) or view.org_id,
        "recipient": view.recipient,
        "unsolicited": view.unsolicited,
        "csirt": csirt,
        "source_label": _text(view.source_label),
        # A CSIRT is not the owner: without a name from the source, name nobody.
        "owner_name": _text(view.owner_name) or ("" if csirt else _text(view.org_name)
                                                 or view.org_id),
        "notification_id": view.notification_id,
        "desk": desk,
        "tlp": tlp,
        "tlp_text": tlp_text,
        "groups": groups,
        "cols": _COLUMNS[lang],
        "n_cases": len(view.cases),
        "n_events": n_events,
        "first_case_id": first_id,
        "case_ids": case_ids,
        "case_link": desk.case_link(first_id),
        "attachment_name": attachment_name,
    }
    kind = "notification_unsolicited" if view.unsolicited else "notification"
    text_body = _template(f"{kind}.{lang}.txt.j2").render(context)
    html_body = _template(f"{kind}.{lang}.html.j2").render(context)

    subject = _subject_text(
        lang, tlp.label, first_id, len(view.cases), groups[0].text.title, len(groups) - 1
    )
    headers = [
        ("Subject", _header(subject)),
        ("From", from_header(desk.name, desk.email)),
        ("To", _header(view.recipient)),
        ("Date", email.utils.format_datetime(_utc(now) if now else datetime.now(UTC))),
        ("Message-ID", message_id if message_id.startswith("<") else f"<{message_id}>"),
        ("Auto-Submitted", "auto-generated"),
        ("Content-Language", lang),
        ("X-CWN-Notification-ID", _header(view.notification_id)),
        ("X-CWN-Case-IDs", ", ".join(_header(c) for c in case_ids)),
        ("X-CWN-TLP", tlp.level),
    ]
    if view.unsolicited:  # lets the desk's own filters and the recipient's tell them apart
        headers.append(("X-CWN-Unsolicited", "yes"))
    if return_path:
        headers.append(("X-CWN-Return-Path", _header(return_path)))
    return _mime(headers, text_body, html_body, csv_bytes, attachment_name), headers[0][1]
