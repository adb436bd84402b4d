"""`make run`: the demo runs the whole flow on a fresh home and leaves mail to look at."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from cwn.demo import run_demo


def test_the_demo_attributes_notifies_and_tells_foreign_csirts_unsolicited(
        tmp_path: Path) -> None:
    home = tmp_path / "demo"
    attributed = run_demo(home)

    assert attributed > 300
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in sorted((home / "outbox").glob("*.eml"))]
    registered = [m for m in mails if m["X-CWN-Unsolicited"] is None]
    unsolicited = [m for m in mails if m["X-CWN-Unsolicited"] == "yes"]
    assert registered and unsolicited
    assert all(str(m["To"]).endswith(".example") for m in unsolicited)
    assert all(m["Content-Language"] == "en" for m in unsolicited)
    assert run_demo(home) == attributed  # a rerun starts from a fresh home again
