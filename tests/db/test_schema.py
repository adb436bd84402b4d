"""The schema migrates on both backends and round-trips the portable types."""

from datetime import UTC, datetime

from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session

from cwn.db.models import AuditEntry


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"organizations", "assets", "contacts", "reports", "quarantine",
            "audit_log", "registry_state"} <= tables


def test_datetimes_come_back_as_aware_utc(engine: Engine) -> None:
    with Session(engine) as s:
        s.add(AuditEntry(actor="t", action="create", entity="organization", entity_id="x",
                         at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), after={"a": 1}))
        s.commit()
        got = s.query(AuditEntry).one()
    assert got.at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got.after == {"a": 1}
