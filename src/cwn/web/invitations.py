"""The invitation mail, in Dutch and English (Dutch first), shared by `cwn users invite`
and the portal's user management."""

from __future__ import annotations

from cwn.config import Settings
from cwn.db.models_web import User
from cwn.deliver.mailer import bilingual, send_mail


def invitation_text(settings: Settings, user: User, link: str) -> tuple[str, str]:
    return bilingual(
        "Uitnodiging voor het CWN-portaal", "Invitation to the CWN portal",
        f"Beste {user.name or user.email},\n\n"
        f"U bent uitgenodigd voor het portaal van het Cyberweerbaarheidsnetwerk (CWN). "
        f"Kies via deze link een wachtwoord (de link werkt {settings.invitation_days} "
        f"dagen en één keer):\n\n{link}\n\n"
        "Beheerders stellen daarna tweestapsverificatie in met een authenticator-app.\n"
        "Verwachtte u deze uitnodiging niet? Dan kunt u dit bericht negeren.\n\n"
        f"Met vriendelijke groet,\n{settings.desk_name}\n",
        f"Dear {user.name or user.email},\n\n"
        "You have been invited to the portal of the Cyberweerbaarheidsnetwerk (CWN). "
        f"Choose a password through this link (valid for {settings.invitation_days} days, "
        f"once):\n\n{link}\n\n"
        "Administrators then set up two-step sign-in with an authenticator app.\n"
        "Not expecting this invitation? You can ignore this message.\n\n"
        f"Kind regards,\n{settings.desk_name}\n")


def send_invitation(settings: Settings, user: User, link: str) -> str:
    subject, text = invitation_text(settings, user, link)
    return send_mail(settings, to=user.email, subject=subject, text=text)


def approval_text(settings: Settings, user: User, org_name: str) -> tuple[str, str]:
    login = f"{settings.public_url.rstrip('/')}/login"
    return bilingual(
        "Uw registratie is goedgekeurd", "Your registration is approved",
        f"Beste {user.name or user.email},\n\n"
        f"Het CWN-loket heeft uw registratie voor {org_name} goedgekeurd. U kunt nu "
        f"inloggen:\n\n{login}\n\n"
        "Bij de eerste keer stelt u tweestapsverificatie in met een authenticator-app. "
        "Daarna claimt u de IP-adressen, AS-nummers en domeinen van uw organisatie.\n\n"
        f"Met vriendelijke groet,\n{settings.desk_name}\n",
        f"Dear {user.name or user.email},\n\n"
        f"The CWN desk has approved your registration for {org_name}. You can sign in "
        f"now:\n\n{login}\n\n"
        "The first time, you set up two-step sign-in with an authenticator app. Then claim "
        "your organisation's IP addresses, AS numbers and domains.\n\n"
        f"Kind regards,\n{settings.desk_name}\n")


def send_approval(settings: Settings, user: User, org_name: str) -> str:
    """Tell a self-signed-up person that they can sign in (best effort for the caller)."""
    subject, text = approval_text(settings, user, org_name)
    return send_mail(settings, to=user.email, subject=subject, text=text)
