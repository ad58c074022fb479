"""How audit events reach the database without making a decision wait on a busy one.

A Verify needs only reads; its audit event is a write, and a write can wait on a lock (another process holding
the SQLite file, a long PostgreSQL transaction). So an event is written with a short bound on lock waits, and one
that cannot be written within it is kept, in order, in a bounded backlog that a background thread writes as soon
as the database accepts writes. The trade-off: events in the backlog are lost if the process dies before they are
written. When the backlog is full, record() refuses, so a decision fails visibly rather than going unaudited.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import Engine, Table, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from argus.errors import DependencyUnavailable

log = logging.getLogger(__name__)

BACKLOG = Gauge("argus_audit_backlog", "Audit events waiting to be written to the database")
RETRY_S = 1.0
_FLUSH_ROWS = 500


class BoundedWriter:
    """`kind` names the rows in the log; `gauge`, if any, shows the backlog. With `drop_rejected`, a row the database
    refuses outright (a constraint: what it names was deleted meanwhile) is dropped and logged, never retried: for
    rows that are a convenience (decisions kept for feedback), not a record that must be kept."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        *,
        wait_s: float,
        backlog: int,
        default_busy_timeout_s: float,
        kind: str = "audit event",
        gauge: Gauge | None = BACKLOG,
        drop_rejected: bool = False,
    ) -> None:
        self.engine = engine
        self.table = table
        self.kind = kind
        self.gauge = gauge
        self.drop_rejected = drop_rejected
        self.wait_s = wait_s
        self.backlog = backlog
        self.default_busy_timeout_s = default_busy_timeout_s
        self._pending: deque[Mapping[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        """Writes the row now, or keeps it for the background writer if the database does not take it within
        wait_s; raises DependencyUnavailable only when the backlog is full."""
        with self._lock:
            behind = bool(self._pending)  # once rows wait, later ones queue behind them: the trail keeps its order
        if not behind:
            try:
                self._insert([row], self.wait_s)
                return
            except IntegrityError as error:
                if self.drop_rejected:
                    log.warning("%s dropped: the database refused it (%s)", self.kind, _cause(error))
                    return
                log.warning("%s refused (%s); kept to write later", self.kind, _cause(error))
            except SQLAlchemyError as error:
                log.warning(
                    "%s not written within %.1f s (%s); kept to write later", self.kind, self.wait_s, _cause(error)
                )
        with self._lock:
            if len(self._pending) >= self.backlog:
                raise DependencyUnavailable(
                    f"{self.kind}s cannot be written and {self.backlog} already wait for the database; "
                    "they are refused until it accepts writes again"
                )
            self._pending.append(row)
            self._show()
            if self._flusher is None:
                name = f"{self.kind.replace(' ', '-')}-writer"
                self._flusher = threading.Thread(target=self._flush_loop, name=name, daemon=True)
                self._flusher.start()
        self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, wait_s: float | None = None) -> bool:
        """Writes what waits, oldest first; returns whether nothing is left."""
        while True:
            with self._lock:
                rows = [self._pending[index] for index in range(min(_FLUSH_ROWS, len(self._pending)))]
            if not rows:
                return True
            try:
                self._insert(rows, self.wait_s if wait_s is None else wait_s)
            except IntegrityError as error:
                if not self.drop_rejected:
                    log.warning("%d %ss still wait for the database: %s", self.pending, self.kind, _cause(error))
                    return False
                rows = rows[:1]  # one at a time until the refused one is found and dropped
                try:
                    self._insert(rows, self.wait_s if wait_s is None else wait_s)
                except IntegrityError as refused:
                    log.warning("%s dropped: the database refused it (%s)", self.kind, _cause(refused))
                except SQLAlchemyError:
                    return False
            except SQLAlchemyError as error:
                log.warning("%d %ss still wait for the database: %s", self.pending, self.kind, _cause(error))
                return False
            with self._lock:
                for _ in rows:
                    self._pending.popleft()
                self._show()
                left = len(self._pending)
            if not left:
                log.info("the %s backlog is written", self.kind)

    def _show(self) -> None:
        if self.gauge is not None:
            self.gauge.set(len(self._pending))

    def close(self) -> None:
        """Stops the background writer after one last attempt, and says what could not be written."""
        self._closed.set()
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        if not self.flush(wait_s=self.default_busy_timeout_s):
            log.error("%d %ss could not be written before shutdown and are lost", self.pending, self.kind)

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()  # set when a row is kept, and at close
            self._wake.clear()
            while not self._closed.is_set() and not self.flush():
                self._closed.wait(RETRY_S)

    def _insert(self, rows: list[Mapping[str, Any]], wait_s: float) -> None:
        """One transaction whose lock waits are bounded by wait_s, on SQLite (busy timeout) and PostgreSQL."""
        backend = self.engine.dialect.name
        with self.engine.connect() as connection:
            if backend == "sqlite":
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
                connection.commit()
            try:
                if backend == "postgresql":
                    milliseconds = int(wait_s * 1000)
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
                connection.execute(insert(self.table), list(rows))
                connection.commit()
            finally:
                if backend == "sqlite":
                    connection.rollback()
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(self.default_busy_timeout_s * 1000)}")
                    connection.commit()


def _cause(error: SQLAlchemyError) -> str:
    """The driver's own words ("database is locked"), without the statement and its parameters."""
    return str(getattr(error, "orig", None) or error).splitlines()[0]
