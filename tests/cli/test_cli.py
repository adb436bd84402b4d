"""The command line as operators and scripts use it (DESIGN.md section 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwn.cli.main import app

REGISTRY = {"organizations": [
    {"id": "acme", "name": "Acme B.V.", "kvk": "12345678", "sector": "energy/electricity",
     "sbi": "D", "municipality": "GM0363", "province": "PV27", "language": "nl",
     "assets": [{"type": "cidr", "value": "192.168.0.0/24"},
                {"type": "cidr", "value": "2001:db8::/32"},
                {"type": "asn", "value": 64500},
                {"type": "domain", "value": "acme.nl"}],
     "contacts": [{"email": "security@acme.nl", "role": "security", "language": "nl"}]}]}


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> CliRunner:
    runner = CliRunner(env={"CWN_HOME": str(tmp_path / "home"), "CWN_DATABASE_URL": db_url,
                            "COLUMNS": "160"})
    return runner


def test_init_ingest_status_export(cli: CliRunner, tmp_path: Path, shared_data: Path) -> None:
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(REGISTRY))
    feed = tmp_path / "2019-01-01-scan_smb-test-geo.csv"
    shutil.copy(shared_data / "shadowserver" / "csv" / "scan_smb.csv", feed)

    assert cli.invoke(app, ["init"]).exit_code == 0
    assert cli.invoke(app, ["registry", "import", str(reg)]).exit_code == 0
    res = cli.invoke(app, ["ingest", str(feed)])
    assert res.exit_code == 0, res.output
    assert "attributed" in res.output and "acme" in res.output

    status = cli.invoke(app, ["status"])
    assert status.exit_code == 0 and "scan_smb" in status.output

    out = tmp_path / "events.jsonl"
    res = cli.invoke(app, ["events", "export", "--format", "intelmq", "--output", str(out)])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 3
    assert {e["extra.organization"] for e in events} == {"acme"}
    assert {e["extra.matched_asset"] for e in events} == {"192.168.0.0/24"}


def test_unusable_file_gives_one_line_error_and_nonzero_exit(
    cli: CliRunner, tmp_path: Path, shared_data: Path
) -> None:
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"\x00\xff" * 100)
    good = tmp_path / "2019-01-01-scan_smb-test-geo.csv"
    shutil.copy(shared_data / "shadowserver" / "csv" / "scan_smb.csv", good)

    res = cli.invoke(app, ["ingest", str(bad), str(good)])

    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "garbage.bin" in res.output
    assert "3" in res.output  # the good file's events still counted


def test_export_formats(cli: CliRunner, tmp_path: Path, shared_data: Path) -> None:
    feed = tmp_path / "2019-01-01-scan_smb-test-geo.csv"
    shutil.copy(shared_data / "shadowserver" / "csv" / "scan_smb.csv", feed)
    assert cli.invoke(app, ["ingest", str(feed)]).exit_code == 0
    for fmt in ("csv", "stix"):
        out = tmp_path / f"events.{fmt}"
        res = cli.invoke(app, ["events", "export", "--format", fmt, "--output", str(out)])
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 0


def test_bad_registry_file_is_a_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"organizations": [{"id": "x", "name": "X", "kvk": "123"}]}))
    res = cli.invoke(app, ["registry", "import", str(reg)])
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert "kvk" in res.output.lower()


def test_quarantined_rows_are_listed_with_reason(cli: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "2026-01-01-scan_rdp-nl-x.csv"
    f.write_text('"timestamp","ip","port"\n"2026-01-01 00:00:01",192.0.2.1,3389\n'
                 '"2026-01-01 00:00:02",999.0.2.1,3389\n')
    res = cli.invoke(app, ["ingest", str(f)])
    assert res.exit_code == 0, res.output
    listed = cli.invoke(app, ["quarantine", "list"])
    assert listed.exit_code == 0
    assert "999.0.2.1" in listed.output and "source.ip" in listed.output
