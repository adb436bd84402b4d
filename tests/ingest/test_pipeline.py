"""The ingest pipeline end to end: sample reports in, attributed events out, idempotently."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from cwn.config import Settings
from cwn.db.models import QuarantinedRow, Report
from cwn.registry.format import RegistryDocument
from cwn.registry.importer import import_registry
from cwn.render.formats.intelmq import write_intelmq
from cwn.wiring import Services, build


def delivered_samples(shared_data: Path, dest: Path) -> Path:
    """Copy the 67 sample CSVs under their Shadowserver delivery file names."""
    dest.mkdir(parents=True, exist_ok=True)
    for exp in sorted((shared_data / "shadowserver" / "expected_intelmq").glob("*.json")):
        name = json.loads(exp.read_text())["report"]["extra.file_name"]
        shutil.copy(shared_data / "shadowserver" / "csv" / f"{exp.stem}.csv", dest / name)
    return dest


def covering_registry(shared_data: Path) -> dict[str, object]:
    """One organisation per /24 (IPv4) or /48 (IPv6) seen in the sample reports' IP columns."""
    nets: set[str] = set()
    for path in (shared_data / "shadowserver" / "csv").glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                ip = (row.get("ip") or row.get("src_ip") or "").split("/")[0]
                try:
                    addr = ipaddress.ip_address(ip)
                except ValueError:
                    continue
                plen = 48 if addr.version == 6 else 24
                nets.add(str(ipaddress.ip_network(f"{addr}/{plen}", strict=False)))
    orgs = [{"id": f"org{i:03d}", "name": f"Sample owner {i}", "language": "nl",
             "assets": [{"type": "cidr", "value": net}]}
            for i, net in enumerate(sorted(nets))]
    return {"organizations": orgs}


@pytest.fixture
def svc(settings: Settings) -> Services:
    s = build(settings)
    yield s  # type: ignore[misc]
    s.close()


def load_registry(svc: Services, doc: dict[str, object]) -> None:
    with svc.sessions.begin() as session:
        import_registry(session, RegistryDocument.model_validate(doc), actor="test")


def test_every_sample_event_with_an_address_is_attributed_and_exported_with_its_owner(
    svc: Services, shared_data: Path, tmp_path: Path
) -> None:
    load_registry(svc, covering_registry(shared_data))
    feeds = delivered_samples(shared_data, tmp_path / "feeds")

    summary = svc.pipeline().ingest_paths([feeds])

    assert [f.path for f in summary.unusable] == []
    assert len(summary.files) == 67
    assert summary.total("events") > 0
    buf = io.BytesIO()
    write_intelmq(svc.events.scan(), buf)
    exported = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(exported) == summary.total("events")
    with_ip = [e for e in exported if "source.ip" in e]
    assert with_ip and all("extra.organization" in e for e in with_ip)
    assert all("extra.matched_asset" in e for e in with_ip)
    with svc.engine.connect() as conn:
        stored, attributed = conn.execute(
            select(func.sum(Report.events), func.sum(Report.attributed))).one()
    assert stored == summary.total("events")
    assert attributed == summary.total("attributed") == len(with_ip)


def test_the_same_file_twice_adds_nothing(svc: Services, shared_data: Path) -> None:
    csv = shared_data / "shadowserver" / "csv" / "scan_smb.csv"
    first = svc.pipeline().ingest_paths([csv], report_type="scan_smb")
    second = svc.pipeline().ingest_paths([csv], report_type="scan_smb")

    assert first.files[0].status == "ingested" and first.files[0].events == 3
    assert second.files[0].status == "duplicate" and second.total("events") == 0
    with svc.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Report)).scalar() == 1
    assert sum(t.num_rows for t in svc.events.scan()) == 3


def test_an_unusable_file_is_reported_and_the_others_still_go_through(
    svc: Services, shared_data: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "2026-01-01-scan_rdp-nl.csv"
    bad.write_bytes(b"\x00\x01\x02binary\xff")
    empty = tmp_path / "2026-01-01-scan_smb-nl.csv"
    empty.write_bytes(b"")
    good = tmp_path / "2019-01-01-scan_smb-test-geo.csv"
    shutil.copy(shared_data / "shadowserver" / "csv" / "scan_smb.csv", good)

    summary = svc.pipeline().ingest_paths([bad, empty, good])

    by_name = {Path(f.path).name: f for f in summary.files}
    assert by_name[bad.name].status == "unusable" and "binary" in str(by_name[bad.name].error)
    assert by_name[empty.name].status == "unusable" and "empty" in str(by_name[empty.name].error)
    assert by_name[good.name].status == "ingested" and by_name[good.name].events == 3


def test_bad_rows_are_quarantined_with_reason_and_never_abort_the_file(
    svc: Services, tmp_path: Path
) -> None:
    f = tmp_path / "2026-01-01-scan_rdp-nl-x.csv"
    f.write_text(
        '"timestamp","ip","protocol","port","hostname","tag","asn","geo"\n'
        '"2026-01-01 00:00:01",192.0.2.1,tcp,3389,a.example,rdp,64500,NL\n'
        '"2026-01-01 00:00:02",999.0.2.1,tcp,3389,b.example,rdp,64500,NL\n'
        '"not a time",192.0.2.3,tcp,3389,c.example,rdp,64500,NL\n'
        '"2026-01-01 00:00:04",192.0.2.4,tcp,3389,d.example,rdp,64500,NL\n'
    )
    summary = svc.pipeline().ingest_paths([f])

    out = summary.files[0]
    assert (out.status, out.rows, out.events, out.quarantined) == ("ingested", 4, 2, 2)
    with svc.engine.connect() as conn:
        reasons = conn.execute(select(QuarantinedRow.row, QuarantinedRow.reason)
                               .order_by(QuarantinedRow.row)).all()
    assert [r.row for r in reasons] == [2, 3]
    assert "999.0.2.1" in reasons[0].reason
    assert "time" in reasons[1].reason


def test_reparse_replaces_a_reports_events_without_duplicating(
    svc: Services, shared_data: Path
) -> None:
    csv = shared_data / "shadowserver" / "csv" / "scan_redis.csv"
    first = svc.pipeline().ingest_paths([csv], report_type="scan_redis")
    again = svc.pipeline().reparse()

    assert again.files[0].events == first.files[0].events > 0
    assert sum(t.num_rows for t in svc.events.scan()) == first.files[0].events
    assert len(svc.events.files()) == 1


def test_registry_changes_rebuild_the_index(svc: Services, shared_data: Path) -> None:
    csv = shared_data / "shadowserver" / "csv" / "scan_smb.csv"
    before = svc.pipeline().ingest_paths([csv], report_type="scan_smb")
    load_registry(svc, {"organizations": [
        {"id": "acme", "name": "Acme", "assets": [{"type": "cidr", "value": "192.168.0.0/24"}]}]})
    after = svc.pipeline().reparse()

    assert before.total("attributed") == 0
    assert after.total("attributed") == 3
    assert after.top_orgs() == [("acme", 3)]


def test_events_keep_their_extras_and_types_in_the_archive(
    svc: Services, shared_data: Path
) -> None:
    csv = shared_data / "shadowserver" / "csv" / "scan_rdpeudp.csv"
    svc.pipeline().ingest_paths([csv], report_type="scan_rdpeudp")
    table = pa.concat_tables(list(svc.events.scan()))
    extra = json.loads(table.column("extra")[0].as_py())
    assert extra["amplification"] == 77.0 and extra["sessionid"] == "05b28c0c"
    assert table.column("source.port")[0].as_py() == 3389
    assert table.column("fingerprint").null_count == 0


def test_a_large_report_streams_in_pieces_with_the_same_result(
    svc: Services, shared_data: Path, tmp_path: Path
) -> None:
    """Pieces are cut on record boundaries: rows, events and quarantine stay exact."""
    lines = (shared_data / "shadowserver" / "csv" / "scan_redis.csv").read_text().splitlines()
    lines.insert(40, lines[40].replace("198.51.100", "999.51.100", 1))  # a bad row, row 40
    f = tmp_path / "2019-01-01-scan_redis-test-geo.csv"
    f.write_text("\n".join(lines) + "\n")
    whole = svc.pipeline()
    one = whole.ingest_paths([f]).files[0]
    table_one = pa.concat_tables(list(svc.events.scan()))
    split = svc.pipeline()
    split.piece_rows = 7

    again = split.reparse().files[0]

    table_split = pa.concat_tables(list(svc.events.scan()))
    assert (again.rows, again.events, again.quarantined) == (one.rows, one.events, 1) == \
        (94, 93, 1)
    assert table_split.column("_row").to_pylist() == table_one.column("_row").to_pylist()
    assert table_split.column("fingerprint").to_pylist() == \
        table_one.column("fingerprint").to_pylist()
    with svc.engine.connect() as conn:
        assert conn.execute(select(QuarantinedRow.row)).scalars().all() == [40]
    assert table_split.num_rows == 93
