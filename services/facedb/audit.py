"""The audit trail: every verify and identify decision, every enrollment and deletion, and the calls refused for
want of a key, scope or collection, in the face database.

An event records when, which API key (its id and name: the `Actor` the server layer passes in), which collection
and subject, the similarity and threshold, and the decision; never an embedding or an image. Refused calls come
counted per key and reason per interval (one `denied` event with its count), so a flood of them cannot flood the
trail. Events outlive the collections they mention (that is the point of an audit) until pruned by age. The table
is storage.models.AuditEvent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, or_, select, true

from argus.keys import Denials
from argus.paging import DEFAULT_PAGE_SIZE
from argus.services.facedb.audit_writer import BoundedWriter
from argus.services.facedb.storage import SQLITE_BUSY_TIMEOUT_S, AuditRecord, Base, FaceStore
from argus.services.facedb.storage.models import (
    MAX_AUDIT_DETAIL,
    MAX_COLLECTION_NAME,
    MAX_EXTERNAL_ID,
    AuditEvent,
    utcnow,
)

VERIFY, IDENTIFY, ENROLL, DELETE_FACE, DELETE_SUBJECT, DELETE_COLLECTION, CHANGE_PROFILE, UPDATE_COLLECTION, DENIED = (
    "verify",
    "identify",
    "enroll",
    "delete_face",
    "delete_subject",
    "delete_collection",
    "change_profile",
    "update_collection",
    "denied",
)
CONFIRM_DECISION, REJECT_DECISION = "confirm_decision", "reject_decision"

# Pruning by more days than this gives the same answer (no event is that old) without a date before year 1.
MAX_PRUNE_DAYS = 365_000


@dataclass(frozen=True)
class Actor:
    """The API key a call acts for, as the audit trail names it; both empty when auth is off."""

    key_id: str = ""
    name: str = ""


NO_KEY = Actor()


def _of_collections(collections: Sequence[str] | None) -> ColumnElement[bool]:
    """The events of these collections; None: every event."""
    return true() if collections is None else AuditEvent.collection.in_(collections)


class AuditLog:
    def __init__(self, store: FaceStore, *, wait_s: float = 1.0, backlog: int = 10_000) -> None:
        self.store = store
        # Events are written within a short bound on lock waits, or kept and written later (audit_writer).
        self.writer = BoundedWriter(
            store.engine,
            Base.metadata.tables[AuditEvent.__tablename__],
            wait_s=wait_s,
            backlog=backlog,
            default_busy_timeout_s=SQLITE_BUSY_TIMEOUT_S,
        )

    def close(self) -> None:
        self.writer.close()

    def record(
        self,
        action: str,
        collection: str,
        *,
        actor: Actor = NO_KEY,
        subject: str = "",
        similarity: float | None = None,
        threshold: float | None = None,
        decision: str = "done",
        detail: str = "",
        decision_id: str = "",
    ) -> None:
        """Writes one event, attributed to the actor, stamped with the time of the call (it may reach the database
        later, see audit_writer)."""
        self._write(
            action,
            key_id=actor.key_id,
            key_name=actor.name,
            collection=collection,
            subject=subject,
            similarity=similarity,
            threshold=threshold,
            decision=decision,
            detail=detail,
            decision_id=decision_id,
        )

    def record_denials(self, denials: list[Denials]) -> None:
        """Writes one `denied` event for each key and reason refused in the last report interval."""
        for entry in denials:
            self._write(
                DENIED,
                key_id=entry.key_id,
                key_name=entry.key_name,
                decision=entry.reason,
                detail=entry.summary(),
                count=entry.count,
            )

    def _write(
        self,
        action: str,
        *,
        key_id: str,
        key_name: str,
        decision: str,
        detail: str,
        collection: str = "",
        subject: str = "",
        similarity: float | None = None,
        threshold: float | None = None,
        count: int = 1,
        decision_id: str = "",
    ) -> None:
        """One row, its texts cut to their columns' sizes."""
        self.writer.write(
            {
                "occurred_at": utcnow(),
                "action": action,
                "key_id": key_id,
                "key_name": key_name,
                "collection": collection[:MAX_COLLECTION_NAME],
                "subject": subject[:MAX_EXTERNAL_ID],
                "similarity": similarity,
                "threshold": threshold,
                "decision": decision,
                "detail": detail[:MAX_AUDIT_DETAIL],
                "count": count,
                "decision_id": decision_id,
            }
        )

    def list(
        self,
        *,
        collections: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        key: str = "",
        decision: str = "",
        action: str = "",
        page_size: int = DEFAULT_PAGE_SIZE,
        before: int | None = None,
    ) -> tuple[list[AuditRecord], int | None]:
        """Newest first, those with an id below `before` (None: from the newest); collections None: every event,
        including those of no collection (denials). Each filter given narrows the list: occurred at or after since
        and before until, the key's id or name, the decision, the action. Also returns where the next page starts,
        None on the last."""
        if collections is not None:  # no collection name holds NUL (PostgreSQL would refuse the query)
            collections = [name for name in collections if "\x00" not in name]
        query = (
            select(AuditEvent).where(_of_collections(collections)).order_by(AuditEvent.id.desc()).limit(page_size + 1)
        )
        if before is not None:
            query = query.where(AuditEvent.id < before)
        if since is not None:
            query = query.where(AuditEvent.occurred_at >= since)
        if until is not None:
            query = query.where(AuditEvent.occurred_at < until)
        if key:
            query = query.where(or_(AuditEvent.key_id == key, AuditEvent.key_name == key))
        if decision:
            query = query.where(AuditEvent.decision == decision)
        if action:
            query = query.where(AuditEvent.action == action)
        with self.store.transaction() as session:
            rows = session.scalars(query).all()
            records = [
                AuditRecord(
                    row.id,
                    row.occurred_at,
                    row.action,
                    row.key_id,
                    row.key_name,
                    row.collection,
                    row.subject,
                    row.similarity,
                    row.threshold,
                    row.decision,
                    row.detail,
                    row.count,
                    row.decision_id,
                )
                for row in rows[:page_size]
            ]
        return records, records[-1].event_id if len(rows) > page_size else None

    def prune(self, older_than: datetime, collections: Sequence[str] | None = None) -> int:
        """Removes the events older than that (of these collections only, unless None)."""
        query = delete(AuditEvent).where(AuditEvent.occurred_at < older_than, _of_collections(collections))
        with self.store.transaction() as session:
            return int(cast("CursorResult[Any]", session.execute(query)).rowcount)

    def prune_days(self, days: int, collections: Sequence[str] | None = None) -> int:
        """Removes the events more than `days` days old (at least 1: the request checks say so)."""
        return self.prune(utcnow() - timedelta(days=min(days, MAX_PRUNE_DAYS)), collections)
