"""Alembic environment: the engine comes from cwn (see cwn.db.engine.upgrade)."""

from __future__ import annotations

from alembic import context

from cwn.db import (  # noqa: F401  (registers the tables)
    models,
    models_contacts,
    models_notify,
    models_partners,
    models_web,
)
from cwn.db.base import Base

engine = context.config.attributes.get("engine")
if engine is None:  # `alembic` run by hand: use the configured database
    from cwn.config import Settings
    from cwn.db.engine import make_engine

    engine = make_engine(Settings().db_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
