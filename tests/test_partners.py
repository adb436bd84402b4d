"""Distribution through intermediaries, end to end through the command line and a real SMTP
server: an ISP holding an AS (with a consumer range it alone is told about) and a sector
CSIRT receive their bulk files, which parse back to the same cases; an agreement whose TLP
ceiling is too low is skipped with the reason stored; feedback updates the case; the
coverage chart renders."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from cwn.cli.main import app
from cwn.render.bulk import read_bulk
from notify_support import SmtpServer, smtp_server  # noqa: F401

ISP = "abuse@isp.example.nl"
WATER_CSIRT = "soc@watercert.example.nl"
REGIONAL = "info@regio.example.nl"

REGISTRY = {
    "organizations": [
        {"id": "waterbedrijf", "name": "Waterbedrijf Noord", "sector": "drinking-water",
         "province": "PV20", "language": "nl",
         "assets": [{"type": "cidr", "value": "192.0.2.0/24"}],
         "contacts": [{"email": "security@water.example.nl"}]},
        {"id": "bakkerij", "name": "Bakkerij Jansen", "sector": "food/production",
         "province": "PV27", "language": "nl",
         "assets": [{"type": "cidr", "value": "198.51.100.0/24"}],
         "contacts": [{"email": "ict@bakkerij.example.nl"}]},
    ],
    "partners": [
        {"id": "isp-example", "name": "Example ISP B.V.", "type": "isp", "maturity": 4,
         "functions": ["dsn"], "regions": ["PV27"], "language": "nl",
         "contacts": [{"email": ISP, "role": "abuse", "available_24_7": True}],
         "agreements": [{"id": "AGR-ISP-1", "scope": {
             "asns": [64500], "consumer_prefixes": ["198.51.100.128/25"]},
             "format": "csv", "cadence": "immediate", "mode": "copy",
             "tlp_ceiling": "AMBER", "valid_from": "2026-01-01", "signed_by": "J. de Vries"}]},
        {"id": "watercert", "name": "WaterCERT", "type": "sector-csirt", "maturity": 5,
         "functions": ["dsn", "information-sharing"], "sectors": ["drinking-water"],
         "language": "en", "contacts": [{"email": WATER_CSIRT, "language": "en"}],
         "agreements": [{"id": "AGR-WATER-1", "scope": {"sectors": ["drinking-water"]},
                         "format": "xarf", "cadence": "immediate",
                         "mode": "partner_and_org", "tlp_ceiling": "AMBER"}]},
        {"id": "regio", "name": "Regionaal Initiatief", "type": "regional",
         "contacts": [{"email": REGIONAL}],
         "agreements": [{"id": "AGR-REGIO-1", "scope": {"regions": ["PV20"]},
                         "format": "jsonl", "cadence": "immediate",
                         "tlp_ceiling": "GREEN"}]},
    ],
}


@pytest.fixture
def cli(tmp_path: Path, db_url: str, smtp_server: SmtpServer) -> CliRunner:  # noqa: F811
    return CliRunner(env={"CWN_HOME": str(tmp_path / "home"), "CWN_DATABASE_URL": db_url,
                          "CWN_SMTP_URL": smtp_server.url, "COLUMNS": "220"})


def ok(cli: CliRunner, *args: str) -> str:
    res = cli.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def report(path: Path) -> Path:
    rows = [("192.0.2.10", 64501), ("198.51.100.10", 64500), ("198.51.100.200", 64500)]
    lines = ['"timestamp","ip","protocol","port","hostname","tag","asn","geo"']
    lines += [f'"2026-11-20 08:00:00","{ip}","tcp",3389,"","rdp",{asn},"NL"'
              for ip, asn in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cases(db_url: str) -> dict[str, str]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, org_id FROM cases ORDER BY id")).all()
    engine.dispose()
    return {r[0]: r[1] for r in rows}


def test_isp_and_sector_csirt_receive_bulk_files_that_parse_back_to_the_cases(
        cli: CliRunner, tmp_path: Path, smtp_server: SmtpServer,  # noqa: F811
        db_url: str) -> None:
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(REGISTRY), encoding="utf-8")
    ok(cli, "registry", "import", str(reg))
    assert "isp-example" in ok(cli, "partners", "list")
    assert "AGR-ISP-1" in ok(cli, "partners", "show", "isp-example")

    ok(cli, "run", str(report(tmp_path / "2026-11-20-scan_rdp-nl-test.csv")))

    cases = _cases(db_url)
    by_org = {org: sorted(c for c, o in cases.items() if o == org) for org in cases.values()}
    isp_mail = smtp_server.recorder.to(ISP)
    assert len(isp_mail) == 1
    attachment = next(p for p in isp_mail[0].message.iter_attachments())
    assert attachment.get_filename().endswith(".csv")
    back = read_bulk("csv", attachment.get_content().encode()
                     if isinstance(attachment.get_content(), str)
                     else attachment.get_content())
    assert sorted(back) == by_org["bakkerij"]
    assert {e["source.ip"] for evs in back.values() for e in evs} == \
        {"198.51.100.10", "198.51.100.200"}

    water = smtp_server.recorder.to(WATER_CSIRT)
    assert len(water) == 1
    xarf = next(p for p in water[0].message.iter_attachments())
    content = xarf.get_content()
    back = read_bulk("xarf", content if isinstance(content, bytes) else content.encode())
    assert sorted(back) == by_org["waterbedrijf"]

    # Mode "copy": the bakkerij is told itself about the address outside the consumer range,
    # not about the one inside it (that subscriber is the ISP's to tell); "partner_and_org":
    # the water company is told too. The regional initiative's TLP ceiling is too low.
    bakkerij = smtp_server.recorder.to("ict@bakkerij.example.nl")
    assert len(bakkerij) == 1 and "198.51.100.10" in bakkerij[0].data.decode()
    assert "198.51.100.200" not in bakkerij[0].data.decode()
    assert len(smtp_server.recorder.to("security@water.example.nl")) == 1
    assert smtp_server.recorder.to(REGIONAL) == []

    water_case = by_org["waterbedrijf"][0]
    shown = ok(cli, "cases", "show", water_case)
    assert "tlp_above_agreement_ceiling" in shown and REGIONAL in shown
    consumer_case = next(c for c in by_org["bakkerij"]
                         if "via_partner" in ok(cli, "cases", "show", c))
    assert "isp-example" in ok(cli, "cases", "show", consumer_case)

    ok(cli, "partners", "feedback", consumer_case, "customer_notified",
       "--partner", "isp-example")
    upload = tmp_path / "feedback.csv"
    upload.write_text(f"case_id,status,note\n{water_case},fixed,patched\nCWN-0,fixed,\n")
    out = ok(cli, "partners", "feedback-upload", str(upload), "--partner", "watercert")
    assert "1 feedback rows recorded, 1 skipped" in out
    assert "resolved" in ok(cli, "cases", "show", water_case)

    stats = ok(cli, "feeds", "stats")
    row = next(line for line in stats.splitlines() if "scan_rdp" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][1:] == \
        ["3", "3", "1", "1", "1", "0", "0", "0", "0", "0", "0"]  # cases notified resolved ...

    svg = tmp_path / "coverage.svg"
    cov = ok(cli, "partners", "coverage", "--svg", str(svg))
    assert "drinking-water" in cov
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and root.findall(".//{*}rect")
