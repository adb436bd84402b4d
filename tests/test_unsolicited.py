"""Unsolicited notification, end to end through the command line and a real SMTP server:
public data in, a report of unregistered addresses, mails to the owners' abuse contacts
(or their country's CSIRT), with provenance, overrides that win and survive re-imports,
and "not ours" / bounce feedback that moves a case to the next candidate."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from cwn.cli.main import app
from cwn.db.models import AuditEntry
from cwn.db.models_contacts import ContactOverride
from notify_support import SmtpServer, smtp_server  # noqa: F401
from publicdata_samples import scan_report, write_public_data

ISP_ABUSE = "abuse@isp.example.nl"
OVERRIDE = "security@isp.example.nl"
CERT_BUND = "certbund@bsi.example.de"


@pytest.fixture
def cli(tmp_path: Path, db_url: str, smtp_server: SmtpServer) -> CliRunner:  # noqa: F811
    return CliRunner(env={"CWN_HOME": str(tmp_path / "home"), "CWN_DATABASE_URL": db_url,
                          "CWN_SMTP_URL": smtp_server.url, "COLUMNS": "200"})


def ok(cli: CliRunner, *args: str) -> str:
    res = cli.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def import_public(cli: CliRunner, tmp_path: Path) -> dict[str, Path]:
    paths = write_public_data(tmp_path / "public")
    ok(cli, "publicdata", "import", "ripe", str(paths["ripe"]))
    ok(cli, "publicdata", "import", "ipasn", str(paths["ipasn"]))
    ok(cli, "publicdata", "import", "csirts", str(paths["csirts"]))
    return paths


def test_unregistered_owners_are_told_through_public_contacts_with_provenance(
        cli: CliRunner, tmp_path: Path, smtp_server: SmtpServer) -> None:  # noqa: F811
    import_public(cli, tmp_path)
    status = ok(cli, "publicdata", "status")
    assert "ripe" in status and "csirts" in status and "ipasn" in status
    report = scan_report(tmp_path / "2026-11-20-scan_rdp-nl-test.csv",
                         ["198.51.100.10", "198.51.100.66", "203.0.113.5"])

    ok(cli, "run", str(report))

    isp = smtp_server.recorder.to(ISP_ABUSE)
    assert len(isp) == 2  # the ISP's own block, and its customer's assignment
    for mail in isp:
        msg = mail.message
        assert msg["X-CWN-Unsolicited"] == "yes"
        body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "RIPE" in body and "https://cwn.example/register" in body
    csirt = smtp_server.recorder.to(CERT_BUND)
    assert len(csirt) == 1
    assert "Dear colleagues" in csirt[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    cases = ok(cli, "cases", "list")
    case_id = next(line.split()[1] for line in cases.splitlines()
                   if "ripe:ORG-EI1-TEST" in line)
    shown = ok(cli, "cases", "show", case_id)
    assert "unsolicited" in shown and "Contact candidates" in shown and "ripe" in shown

    ok(cli, "run", str(report))  # the same report again: nothing new
    assert len(smtp_server.messages) == 3


def test_an_override_wins_survives_a_reimport_and_not_ours_moves_to_the_next_candidate(
        cli: CliRunner, tmp_path: Path, smtp_server: SmtpServer,  # noqa: F811
        db_url: str) -> None:
    paths = import_public(cli, tmp_path)
    ok(cli, "publicdata", "override", "add", "--cidr", "198.51.100.0/24",
       "--contact", OVERRIDE, "--note", "ISP asked for its CERT address")
    ok(cli, "publicdata", "import", "ripe", str(paths["ripe"]))  # refresh: override stays
    listed = ok(cli, "publicdata", "override", "list")
    assert "198.51.100.0/24" in listed and "contact" in listed
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(select(ContactOverride.email)).scalars().all() == [OVERRIDE]
        audit = conn.execute(select(AuditEntry.entity).where(
            AuditEntry.entity == "contact_override")).scalars().all()
    engine.dispose()
    assert audit == ["contact_override"]

    report = scan_report(tmp_path / "2026-11-20-scan_rdp-nl-test.csv", ["198.51.100.10"])
    ok(cli, "run", str(report))
    assert [m.rcpt_tos for m in smtp_server.messages] == [[OVERRIDE]]
    case_id = next(w for w in ok(cli, "cases", "list").split() if w.startswith("CWN-"))
    shown = ok(cli, "cases", "show", case_id)
    assert "override" in shown and ISP_ABUSE in shown

    out = ok(cli, "cases", "feedback", case_id, "not-ours")
    assert "re-routed" in out
    ok(cli, "notify")
    assert [m.rcpt_tos for m in smtp_server.messages] == [[OVERRIDE], [ISP_ABUSE]]
    assert "not_ours" in ok(cli, "cases", "show", case_id)


def test_a_blocked_address_is_never_used_and_the_reason_is_stored(
        cli: CliRunner, tmp_path: Path, smtp_server: SmtpServer) -> None:  # noqa: F811
    import_public(cli, tmp_path)
    ok(cli, "publicdata", "override", "add", "--block", CERT_BUND)
    report = scan_report(tmp_path / "2026-11-20-scan_rdp-nl-test.csv", ["203.0.113.5"])
    ok(cli, "run", str(report))
    assert smtp_server.messages == []
    case_id = next(w for w in ok(cli, "cases", "list").split() if w.startswith("CWN-"))
    shown = ok(cli, "cases", "show", case_id)
    assert "blocked_by_operator" in shown and "no_contact" in shown


def test_bad_override_input_gets_a_one_line_error(cli: CliRunner) -> None:
    for args in (["--cidr", "not-a-net", "--contact", OVERRIDE],
                 ["--asn", "1", "--domain", "x.nl", "--contact", OVERRIDE],
                 ["--cidr", "192.0.2.0/24"],
                 ["--domain", "x.nl", "--isp-only"],
                 ["--cidr", "192.0.2.0/24", "--contact", "nobody"]):
        res = cli.invoke(app, ["publicdata", "override", "add", *args])
        assert res.exit_code == 2, (args, res.output)
        assert "error" in res.output and "Traceback" not in res.output


def test_an_unusable_public_data_file_gives_a_one_line_error(
        cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.gz"
    bad.write_bytes(b"\x00\xff" * 50)
    for kind in ("ripe", "ipasn", "delegated", "csirts"):
        res = cli.invoke(app, ["publicdata", "import", kind, str(bad)])
        assert res.exit_code == 2 and "error" in res.output, (kind, res.output)
    res = cli.invoke(app, ["publicdata", "import", "nonsense", str(bad)])
    assert res.exit_code == 2


def test_a_hard_bounce_disables_the_address_and_the_next_candidate_is_told(
        cli: CliRunner, tmp_path: Path, smtp_server: SmtpServer) -> None:  # noqa: F811
    import_public(cli, tmp_path)
    ok(cli, "publicdata", "override", "add", "--asn", "64501", "--contact", OVERRIDE)
    smtp_server.recorder.refuse[OVERRIDE] = "550 5.1.1 no such user"
    report = scan_report(tmp_path / "2026-11-20-scan_rdp-nl-test.csv", ["198.51.100.10"])

    ok(cli, "run", str(report))

    assert [m.rcpt_tos for m in smtp_server.messages] == [[ISP_ABUSE]]
    case_id = next(w for w in ok(cli, "cases", "list").split() if w.startswith("CWN-"))
    assert "bounced" in ok(cli, "cases", "show", case_id)


def test_a_registered_organisation_without_a_usable_contact_falls_through_to_public_data(
        cli: CliRunner, tmp_path: Path, smtp_server: SmtpServer) -> None:  # noqa: F811
    import json

    import_public(cli, tmp_path)
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"organizations": [
        {"id": "bakkerij", "name": "Bakkerij Jansen", "language": "nl",
         "assets": [{"type": "cidr", "value": "198.51.100.64/29"}], "contacts": []}]}))
    ok(cli, "registry", "import", str(reg))
    report = scan_report(tmp_path / "2026-11-20-scan_rdp-nl-test.csv", ["198.51.100.66"])

    ok(cli, "run", str(report))

    (mail,) = smtp_server.recorder.to(ISP_ABUSE)
    assert mail.message["X-CWN-Unsolicited"] == "yes"
    case_id = next(w for w in ok(cli, "cases", "list").split() if w.startswith("CWN-"))
    shown = ok(cli, "cases", "show", case_id)
    assert "registered" in shown and "abuse-c via parent" in shown
