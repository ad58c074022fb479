"""Connecting to the face database: the engine and its per-connection settings, what a database that is down turns
into, and the schema migrations (Alembic, run in code: no alembic.ini to ship or to find)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from argus.errors import DependencyUnavailable, Overloaded
from argus.files import private_file

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# A database server that does not answer fails a connection attempt after this long instead of hanging the call.
CONNECT_TIMEOUT_S = 10
# How long a SQLite statement waits for another connection's lock (audit writes wait less: audit_writer).
SQLITE_BUSY_TIMEOUT_S = 30
# Any constant works; it only has to be the same in every process migrating the same PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x41524755  # "ARGU"
# Held by every transaction that writes the change log, from its first change row to its commit: change ids are
# then handed out in commit order. Any constant, the same in every process; distinct from the migrations' one.
CHANGE_LOCK_KEY = 0x41524743  # "ARGC"
# The NOTIFY channel that wakes every replica's follower when a change commits.
CHANGES_CHANNEL = "argus_facedb_changes"


def normalize_url(url: str | URL) -> URL:
    """Plain postgresql:// (or postgres://) URLs get the psycopg 3 driver, the one Argus installs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, *, wal: bool) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless each connection asks for them.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        if wal:  # readers do not block the writer, and the other way round
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_store_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        # pool_pre_ping: a pooled connection that died with its server (a restart, a failover) is replaced on the
        # next checkout, so the store recovers by itself once the server is back.
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if url.database in (None, "", ":memory:"):
        # One connection shared by every thread: each new connection to :memory: would be a new, empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        wal = False
    else:
        private_file(Path(url.database))  # faces and embeddings: 0600 in a 0700 folder
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})
        wal = True
    event.listen(engine, "connect", lambda connection, _record: _sqlite_pragmas(connection, wal=wal))
    return engine


def _is_connection_error(error: DBAPIError) -> bool:
    """The database could not be reached or dropped the connection, as opposed to refusing the statement."""
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated


@contextmanager
def unavailable_when_down() -> Iterator[None]:
    """A database that is down (or drops the connection mid-transaction) is DependencyUnavailable: the caller gets
    UNAVAILABLE and may retry, rather than INTERNAL. Every FaceStore transaction runs inside this."""
    try:
        yield
    except PoolTimeout as error:  # every pooled connection busy for the pool's whole timeout
        raise Overloaded("every connection to the face database is busy; retry shortly") from error
    except DBAPIError as error:
        if not _is_connection_error(error):
            raise
        raise DependencyUnavailable(
            f"the face database is unavailable ({type(error.orig).__name__}); retry shortly"
        ) from error


def alembic_config(url: URL) -> Config:
    """Alembic's configuration built in code. Alembic is imported here, when migrating, not by every importer."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolates %; a password may contain one.
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def migrate(engine: Engine, url: URL) -> None:
    """Brings the schema to the latest Alembic revision; safe to run at every start, and from several processes."""
    from alembic import command

    config = alembic_config(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Alembic alters a SQLite table by copying it and dropping the old one; with foreign keys on, that
            # drop would cascade to every row referring to it. The pragma only works outside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Two replicas starting together must not both create the tables; the lock ends with the
                    # transaction.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the migration left rows whose foreign keys point nowhere; rolled back")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
