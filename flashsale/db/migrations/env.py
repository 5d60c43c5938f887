"""Alembic environment: always online, URL given by flashsale.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from flashsale.db.models import Base

config = context.config
# A one-shot engine of its own: a migration runs once and must not keep pooled connections.
engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        # Serialise concurrent migrators (several pods may start at once).
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(74201)")
        context.run_migrations()
