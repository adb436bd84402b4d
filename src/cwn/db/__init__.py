"""Storage: SQLAlchemy engine, the schema, and Alembic migrations (SQLite and PostgreSQL)."""
