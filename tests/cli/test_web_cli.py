"""`cwn users …` and `cwn tokens …`: what an operator does from the shell, with mail going
to the outbox folder (no SMTP configured)."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from typer.testing import CliRunner

from cwn.access import tokens
from cwn.cli.main import app
from cwn.config import Settings
from cwn.wiring import build


def _run(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"CWN_HOME": str(settings.home), "CWN_DATABASE_URL": settings.db_url,
           "COLUMNS": "200"}
    result = CliRunner(env=env).invoke(app, list(args))
    return result.exit_code, result.output


def _outbox(settings: Settings) -> list[email.message.EmailMessage]:
    out = []
    for p in sorted(Path(settings.outbox_dir).glob("*.eml")):
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        out.append(msg)
    return out  # type: ignore[return-value]


def test_an_operator_invites_approves_and_manages_tokens(settings: Settings) -> None:
    svc = build(settings)
    from cwn.access import users
    from cwn.db.models import Organization

    with svc.sessions() as s:
        s.add(Organization(id="bakery", name="Bakkerij"))
        s.commit()
        users.signup(s, email="piet@garage.nl", password="a long enough password",
                     name="Piet", organisation="Garage Piet", kvk="12345678", note=None,
                     language="nl")
        s.commit()
    svc.close()

    code, out = _run(settings, "users", "invite", "anna@bakkerij.nl", "--org", "bakery")
    assert code == 0, out
    link = re.search(r"/invite/([A-Za-z0-9_-]+)", out)
    assert link
    code, out = _run(settings, "users", "approve", "piet@garage.nl")
    assert code == 0 and "kvk:12345678" in out, out
    subjects = sorted(str(m["Subject"]) for m in _outbox(settings))
    assert subjects == ["Uitnodiging voor het CWN-portaal / Invitation to the CWN portal",
                        "Uw registratie is goedgekeurd / Your registration is approved"]
    invitation = next(m for m in _outbox(settings) if "Uitnodiging" in str(m["Subject"]))
    assert link.group(1) in invitation.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    code, out = _run(settings, "users", "invite", "x@y.nl", "--role", "wizard")
    assert code != 0 and "unknown role" in out
    code, out = _run(settings, "users", "approve", "nobody@example.nl")
    assert code != 0 and "no single user" in out

    code, out = _run(settings, "tokens", "create", "--org", "bakery", "--scope", "read")
    assert code == 0, out
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("cwn_")
    svc = build(settings)
    with svc.sessions() as s:
        holder = tokens.authenticate(s, raw)
        assert holder is not None and holder.scopes == ["read"]
        token_id = holder.token_id
    svc.close()
    code, out = _run(settings, "tokens", "revoke", token_id)
    assert code == 0, out
    svc = build(settings)
    with svc.sessions() as s:
        assert tokens.authenticate(s, raw) is None
    svc.close()
    code, out = _run(settings, "tokens", "create", "--org", "nope")
    assert code != 0 and "unknown organisation" in out
