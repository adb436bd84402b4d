"""Password hashing (argon2id) and the minimum a password must be."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cwn.access.errors import AccessError

_HASHER = PasswordHasher()  # argon2id, the library's current recommended parameters
_DUMMY = _HASHER.hash("cwn-dummy-password-for-timing")

MIN_LENGTH = 12


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the account exists, so timing does not reveal it."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def password_problem(password: str, email: str) -> str | None:
    """Why a new password is refused (a message key), or None."""
    if len(password) < MIN_LENGTH:
        return "password_too_short"
    local = email.split("@")[0].lower()
    # a short local part ("u@", "jo@") is in many good passwords: only a name-sized one counts
    if password.lower() in email.lower() or (len(local) >= 4 and local in password.lower()):
        return "password_like_email"
    if len(set(password)) < 5:
        return "password_too_simple"
    return None


def require_strong(password: str, email: str) -> None:
    """Refuse a new password with the one message every form shows (422)."""
    problem = password_problem(password, email)
    if problem:
        raise AccessError(problem, "the password is too weak (at least 12 characters, not "
                          "like the e-mail address)", 422)
