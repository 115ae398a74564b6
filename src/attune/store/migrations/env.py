"""Alembic environment: runs on the connection Attune hands it (see sql/engine.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from attune.store.sql.schema import metadata

connection = context.config.attributes.get("connection")

if connection is None:  # `alembic` run by hand: use the URL from the config or env
    from attune.config import get_settings

    engine = create_engine(get_settings().sql_url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
