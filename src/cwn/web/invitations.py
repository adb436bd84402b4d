"""Account mails (invitation, approval, password reset), in Dutch and English (Dutch
first), shared by `cwn users invite` and the portal."""

from __future__ import annotations

from cwn.config import Settings
from cwn.db.models_web import User
from cwn.deliver import letters
from cwn.deliver.mailer import send_mail


def invitation_text(settings: Settings, user: User, link: str) -> tuple[str, str]:
    return letters.render("invitation", name=user.name or user.email, link=link,
                          days=settings.invitation_days, desk=settings.desk_name)


def send_invitation(settings: Settings, user: User, link: str) -> str:
    subject, text = invitation_text(settings, user, link)
    return send_mail(settings, to=user.email, subject=subject, text=text)


def approval_text(settings: Settings, user: User, org_name: str) -> tuple[str, str]:
    return letters.render("approval", name=user.name or user.email, org=org_name,
                          login=f"{settings.public_url.rstrip('/')}/login",
                          desk=settings.desk_name)


def send_approval(settings: Settings, user: User, org_name: str) -> str:
    """Tell a self-signed-up person that they can sign in (best effort for the caller)."""
    subject, text = approval_text(settings, user, org_name)
    return send_mail(settings, to=user.email, subject=subject, text=text)


def reset_link(settings: Settings, raw: str) -> str:
    return f"{settings.public_url.rstrip('/')}/password/reset/{raw}"


def send_password_reset(settings: Settings, user: User, raw: str, ip: str | None) -> str:
    subject, text = letters.render("password_reset", name=user.name or user.email,
                                   link=reset_link(settings, raw),
                                   minutes=settings.password_reset_minutes, ip=ip,
                                   desk=settings.desk_name)
    return send_mail(settings, to=user.email, subject=subject, text=text)
