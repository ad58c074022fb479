"""Alembic environment of the face database.

`FaceStore.migrate()` runs it in code: it builds the configuration (no alembic.ini) and hands over its own open
connection in `config.attributes["connection"]`, so the migration runs in the caller's transaction. Run by hand
(with a configuration that only sets sqlalchemy.url) it opens its own connection.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from argus.services.facedb.storage.engine import normalize_url
from argus.services.facedb.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=str(url).startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = normalize_url(config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as own:
            _configure(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
