"""Fixtures of the portal and API tests: the real app over a fresh home, on SQLite and on
PostgreSQL, driven through Starlette's TestClient (HTTPS base URL, so Secure cookies flow)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from authz_world import world  # noqa: F401  (the authorisation matrix's world, a fixture)
from cwn.config import Settings
from cwn.web.app import create_app
from cwn.wiring import Services, build


@pytest.fixture
def web_svc(settings: Settings) -> Iterator[Services]:
    svc = build(settings)
    yield svc
    svc.close()


@pytest.fixture
def web_app(web_svc: Services) -> Iterator[tuple[TestClient, Services]]:
    app = create_app(web_svc)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False,
                    follow_redirects=False) as client:
        # The specs below read English; Dutch is the default and has its own tests.
        client.headers["Accept-Language"] = "en"
        yield client, web_svc


@pytest.fixture
def client_factory(web_svc: Services) -> Iterator[object]:
    """More browsers on the same app (a second organisation, the operator…)."""
    app = create_app(web_svc)
    made: list[TestClient] = []

    def make() -> TestClient:
        c = TestClient(app, base_url="https://testserver", raise_server_exceptions=False,
                       follow_redirects=False)
        c.__enter__()
        c.headers["Accept-Language"] = "en"
        made.append(c)
        return c

    yield make
    for c in made:
        c.__exit__(None, None, None)
