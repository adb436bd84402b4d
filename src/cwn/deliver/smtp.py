"""SMTP delivery to `Settings.smtp_url`, one connection reused for many messages.

URL forms: `smtp://host:port`, `smtps://host:port` (implicit TLS), `smtp://…?starttls=1`,
and `smtp://user:pass@host:port` for submission with authentication.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from cwn.deliver.outbox import PermanentFailure, TemporaryFailure


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    timeout: float = 60.0
    verify: bool = True

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"not an smtp:// or smtps:// URL: {url}")
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}

        def flag(name: str) -> bool:
            return q.get(name, "0").lower() in ("1", "true", "yes")

        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if tls else 25),
            tls=tls,
            starttls=flag("starttls"),
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=float(q.get("timeout", "60")),
            verify=q.get("verify", "1").lower() not in ("0", "false", "no"),
        )


def _classify(code: int, message: str) -> TemporaryFailure | PermanentFailure:
    if 500 <= code < 600:
        return PermanentFailure(f"{code} {message}", code)
    return TemporaryFailure(f"{code} {message}", code)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class SmtpChannel:
    name = "smtp"

    def __init__(self, url: str, *, local_hostname: str | None = None) -> None:
        self.target = SmtpTarget.parse(url)
        self.local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if not self.target.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        conn: smtplib.SMTP
        if t.tls:
            conn = smtplib.SMTP_SSL(t.host, t.port, local_hostname=self.local_hostname,
                                    timeout=t.timeout, context=self._context())
        else:
            conn = smtplib.SMTP(t.host, t.port, local_hostname=self.local_hostname,
                                timeout=t.timeout)
        conn.ehlo()
        if t.starttls and not t.tls:
            conn.starttls(context=self._context())
            conn.ehlo()
        if t.user:
            conn.login(t.user, t.password or "")
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except smtplib.SMTPResponseException as exc:
                raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise TemporaryFailure(f"cannot connect: {exc}") from exc
        return self._conn

    def send(self, *, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.sendmail(sender, [recipient], data)
                return
            except smtplib.SMTPRecipientsRefused as exc:
                code, msg = exc.recipients.get(recipient, (550, b"refused"))
                self._reset()
                raise _classify(code, _text(msg)) from exc
            except smtplib.SMTPSenderRefused as exc:
                self._reset()
                raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
            except smtplib.SMTPDataError as exc:
                self._reset()
                raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                # A reused connection the server dropped: one fresh try, then defer.
                self._drop()
                if attempt == 2:
                    raise TemporaryFailure(f"connection lost: {exc}") from exc
            except smtplib.SMTPResponseException as exc:
                self._drop()
                raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise TemporaryFailure(str(exc)) from exc

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                self._drop()
