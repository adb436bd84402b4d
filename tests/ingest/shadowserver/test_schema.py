"""Operator schema extension: Shadowserver's IntelMQ-format schema from a file or a URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from cwn.ingest.result import UnusableInput
from cwn.ingest.shadowserver.parser import parse
from cwn.ingest.shadowserver.schema import SCHEMA_FILE, load_table, update_schema

OBSERVED = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def schema_file(shared_data: Path) -> Path:
    return shared_data / "shadowserver" / "schema" / "intelmq_schema.json.test"


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_schema_from_file_is_validated_and_stored(schema_file: Path, tmp_path: Path) -> None:
    dest = tmp_path / "schemas"
    assert update_schema(str(schema_file), dest) == 3
    assert json.loads((dest / SCHEMA_FILE).read_text()).keys() == {
        "test_smb", "test_telnet", "test_afs"
    }


def test_schema_from_url(schema_file: Path, http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    (root / "intelmq.json").write_bytes(schema_file.read_bytes())
    assert update_schema(f"{base}/intelmq.json", tmp_path / "s") == 3
    assert "test_afs" in load_table(tmp_path / "s")


def test_unreachable_url_is_a_one_line_error(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = http_root
    with pytest.raises(UnusableInput, match="cannot fetch schema") as err:
        update_schema(f"{base}/missing.json", tmp_path)
    assert "\n" not in str(err.value)
    assert not (tmp_path / SCHEMA_FILE).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "non-empty JSON object"),
        (b'{"x": {"constant_fields": {}}}', "no feed_name"),
        (b'{"x": {"feed_name": "X", "required_fields": [["time.source"]]}}', "required_fields"),
        (b'{"x": {"feed_name": "X", "constant_fields": '
         b'{"classification.taxonomy": "nonsense"}}}', "unknown taxonomy"),
    ],
)
def test_bad_schema_is_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "schema.json"
    source.write_bytes(content)
    with pytest.raises(UnusableInput, match=message):
        update_schema(str(source), tmp_path / "dest")
    assert not (tmp_path / "dest" / SCHEMA_FILE).exists()


def test_loaded_schema_wins_for_feed_name_and_constants(tmp_path: Path) -> None:
    source = tmp_path / "schema.json"
    source.write_text(json.dumps({
        "scan_rdp": {
            "feed_name": "RDP (from schema)",
            "file_name": "scan_rdp",
            "constant_fields": {"classification.identifier": "open-rdp-from-schema"},
            "required_fields": [["time.source", "timestamp"], ["source.ip", "ip"]],
            "optional_fields": [["extra.", "rdp_protocol"], ["source.port", "port"]],
        },
    }))
    update_schema(str(source), tmp_path)
    table = load_table(tmp_path)
    spec = table.spec("scan_rdp")
    assert spec.feed_name == "RDP (from schema)"
    assert spec.constants["classification.identifier"] == "open-rdp-from-schema"
    assert spec.constants["classification.taxonomy"] == "vulnerable"  # built-in kept
    csv = b'"timestamp","ip","port","rdp_protocol"\n"2024-01-01 00:00:00","192.0.2.1",3389,"RDP"\n'
    result = parse(csv, report_type="scan_rdp", file_name="x.csv", observed=OBSERVED, table=table)
    row = result.events.to_pylist()[0]
    assert row["feed.name"] == "RDP (from schema)"
    assert row["classification.identifier"] == "open-rdp-from-schema"
    assert json.loads(row["extra"]) == {"rdp_protocol": "RDP"}


def test_schema_adds_unknown_report_type(schema_file: Path, tmp_path: Path) -> None:
    assert "test_afs" not in load_table(None)
    update_schema(str(schema_file), tmp_path)
    table = load_table(tmp_path)
    spec = table.spec("test_afs")
    assert spec.known
    assert spec.feed_name
    assert spec.constants["classification.taxonomy"]


def test_no_stored_schema_means_builtin_table(tmp_path: Path) -> None:
    assert load_table(tmp_path).report_types == load_table(None).report_types
