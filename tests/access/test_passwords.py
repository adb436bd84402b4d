"""Which new passwords are refused: short, like the e-mail address, or too simple; and a
short mailbox name does not rule out every password that happens to contain it."""

from __future__ import annotations

import pytest

from cwn.access.passwords import hash_password, password_problem, verify_password


@pytest.mark.parametrize(("password", "email", "problem"), [
    ("correct horse battery staple", "anna@bakkerij.nl", None),
    ("a much better passphrase 2026", "u@bakkerij.nl", None),  # "u" is in it: fine
    ("jo's long passphrase", "jo@bakkerij.nl", None),
    ("short", "anna@bakkerij.nl", "password_too_short"),
    ("anna.devries-2026!", "anna.devries@bakkerij.nl", "password_like_email"),
    ("xxANNA.DEVRIESxx", "anna.devries@bakkerij.nl", "password_like_email"),
    ("anna@bakkerij.nl", "anna@bakkerij.nl", "password_like_email"),
    ("na@bakkerij.nl", "anna@bakkerij.nl", "password_like_email"),  # a piece of the address
    ("aaaaaaaaaaaaaaaa", "anna@bakkerij.nl", "password_too_simple"),
    ("abababcdcdcdabcd", "anna@bakkerij.nl", "password_too_simple"),
])
def test_password_rules(password: str, email: str, problem: str | None) -> None:
    assert password_problem(password, email) == problem


def test_hashes_are_argon2id_and_verify_only_the_right_password() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapler")
    assert not verify_password(None, "anything")
