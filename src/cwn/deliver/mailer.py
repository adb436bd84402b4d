"""Person-to-person mail from the portal (invitations, confirmation links, reminders).

These are not notifications: no case, no outbox row, no retry schedule. They go out at
once through the same channels (SMTP when `CWN_SMTP_URL` is set, else an `.eml` file in the
outbox folder) and are DKIM-signed like notifications when a key is configured.
"""

from __future__ import annotations

import email.policy
import uuid
from email.message import EmailMessage
from email.utils import formataddr, formatdate

from cwn.config import Settings
from cwn.deliver.dkim import DkimSigner
from cwn.deliver.filebox import FileChannel
from cwn.deliver.outbox import Channel, DeliveryError
from cwn.deliver.smtp import SmtpChannel


class MailError(Exception):
    """The message could not be handed over; the caller tells the person in one line."""


def bilingual(subject_nl: str, subject_en: str, nl: str, en: str) -> tuple[str, str]:
    """(subject, text) of a person-to-person mail in both languages: Dutch first, one
    agreed separator, so every mail the desk writes to a person reads the same way."""
    text = (f"(English below)\n\n{nl.strip()}\n\n"
            f"{'-' * 70}\n\n{en.strip()}\n")
    return f"{subject_nl} / {subject_en}", text


def _channel(settings: Settings) -> Channel:
    if settings.smtp_url:
        return SmtpChannel(settings.smtp_url)
    return FileChannel(settings.outbox_dir)


def build(settings: Settings, *, to: str, subject: str, text: str,
          html: str | None = None) -> tuple[bytes, str]:
    domain = settings.mail_domain or settings.desk_email.rpartition("@")[2] or "cwn.example"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((settings.desk_name, settings.desk_email))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    message_id = f"<{uuid.uuid4().hex}@{domain}>"
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    data = msg.as_bytes()
    signer = DkimSigner.from_settings(settings)
    if signer is not None:
        data = signer.sign(data)
    return data, message_id


def send_mail(settings: Settings, *, to: str, subject: str, text: str,
              html: str | None = None) -> str:
    """Send now; returns the Message-ID. Raises MailError with a one-line reason."""
    data, message_id = build(settings, to=to, subject=subject, text=text, html=html)
    channel = _channel(settings)
    try:
        channel.send(sender=settings.desk_email, recipient=to, data=data,
                     message_id=message_id)
    except DeliveryError as exc:
        raise MailError(f"mail to {to} failed: {exc}") from exc
    finally:
        channel.close()
    return message_id
