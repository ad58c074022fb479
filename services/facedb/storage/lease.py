"""A lease in the database: the right to do some background work, held by one process among the replicas.

On PostgreSQL it is a session-level advisory lock held on a connection of its own: the server releases it when that
connection ends, so a replica that dies (or loses its connection) gives the work up and another takes it over. A
SQLite database is served by one process, which always holds it. The lease only saves duplicate work; what is done is
kept per row in the database, so whoever holds the lease next resumes there.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from argus.services.facedb.storage.engine import unavailable_when_down

log = logging.getLogger(__name__)

# Advisory lock keys: any constants, the same in every replica, distinct from engine.py's (migrations, the change log).
REEMBEDDING_LEASE_KEY = 0x41524D42  # "ARMB"


class Lease:
    def __init__(self, engine: Engine, key: int) -> None:
        self.engine = engine
        self.key = key
        self._connection: Connection | None = None
        self._guard = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether other processes may use the same database (and so contend for the lease)."""
        return self.engine.dialect.name == "postgresql"

    def hold(self) -> bool:
        """Whether this process holds the lease now, taking it when it is free. A lease whose connection was lost is
        gone (the server released the lock): it is taken again only if still free."""
        if not self.shared:
            return True
        with self._guard:
            if self._connection is not None:
                try:
                    self._connection.execute(text("SELECT 1"))
                    return True
                except DBAPIError as exc:
                    log.warning("lease %#x lost with its connection (%s)", self.key, type(exc.orig).__name__)
                    self._close()
            with unavailable_when_down():
                # Autocommit: the lock belongs to the session, and the connection never idles in a transaction.
                connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                # Out of the pool: closing it must end the session (and the lock), not hand it to the next user.
                connection.detach()
                try:
                    taken = bool(
                        connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
                    )
                except BaseException:
                    connection.close()
                    raise
            if not taken:
                connection.close()
                return False
            self._connection = connection
            return True

    @property
    def backend_pid(self) -> int | None:
        """The server process of the connection holding the lease, None while not held (for tests and logs)."""
        with self._guard:
            if self._connection is None:
                return None
            return int(self._connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def release(self) -> None:
        """Gives the lease up (closing its connection ends the lock)."""
        with self._guard:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(DBAPIError):  # already gone with the server or the network: so is the lock
                connection.close()
