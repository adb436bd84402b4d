"""The REST API under property-based fuzzing (schemathesis over `/openapi.json`).

Every operation of the published schema is called with generated requests, valid and
invalid, as a real organisation (read + write token), for submissions as a real source and
for the partner API as a real partner. Whatever comes in, the API must answer without a
server error, and what it answers must match the schema it publishes (status bodies,
content types). The run is bounded and derandomised, so it is reproducible and stays well
under a minute per backend (SQLite, then PostgreSQL, which refuses NUL bytes SQLite takes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.openapi import from_asgi

from cwn.config import Settings
from cwn.db.models_partners import Partner
from cwn.web.app import create_app
from cwn.wiring import Services, build
from inbox_support import build_world
from web_support import api_token, bearer

MAX_EXAMPLES = 25  # per operation and mode: the whole run stays well under 90 s on SQLite


@dataclass
class FuzzWorld:
    svc: Services
    org_headers: dict[str, str]
    source_headers: dict[str, str]
    partner_headers: dict[str, str]

    def headers_for(self, path: str) -> dict[str, str]:
        """Submissions take a source's token, the partner API a partner's; everything
        else the organisation's."""
        if path.startswith("/api/v1/submissions"):
            return self.source_headers
        if path.startswith("/api/v1/partner/"):
            return self.partner_headers
        return self.org_headers


@pytest.fixture
def fuzz_world(settings: Settings, tmp_path: Path) -> Iterator[FuzzWorld]:
    """Real data behind the API (cases, notifications, contacts through the real pipeline)
    so list answers carry real items that the response schemas are checked against. On
    SQLite and PostgreSQL: PostgreSQL refuses things SQLite takes (NUL bytes in text)."""
    svc = build(settings)
    try:
        build_world(svc, tmp_path / "world", public=False)
        org = api_token(svc, org_id="acme", scopes=["read", "write"])
        source = api_token(svc, source="shadowserver", scopes=["submit"])
        with svc.sessions() as s:
            s.add(Partner(id="fuzz-isp", name="Fuzz ISP", type="isp"))
            s.commit()
        partner = api_token(svc, partner_id="fuzz-isp", scopes=["read", "write"])
        yield FuzzWorld(svc, bearer(org), bearer(source), bearer(partner))
    finally:
        svc.close()


CHECKS = [checks.not_a_server_error, checks.response_schema_conformance,
          checks.content_type_conformance]
FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None,
                         database=None, suppress_health_check=list(HealthCheck),
                         phases=[Phase.explicit, Phase.generate])


def _fuzz(operation: Any, mode: GenerationMode, world: FuzzWorld) -> None:
    """One operation, in one generation mode; hypothesis shrinks a failure to the
    smallest request that shows it."""

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(headers=world.headers_for(operation.path), checks=CHECKS)

    run()


def test_the_api_never_fails_and_answers_as_documented(fuzz_world: FuzzWorld) -> None:
    schema = from_asgi("/openapi.json", create_app(fuzz_world.svc))
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzz_world)
            except (Exception, BaseExceptionGroup) as exc:  # fuzz all; report every failure
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations >= 1
    assert not failures, "\n\n".join(failures)
