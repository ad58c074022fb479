"""The audit trail: every verify and identify decision, every enrollment and deletion, and the calls refused for
want of a key, scope or collection, in the face database.

An event records when, which API key (its id and name), which collection and subject, the similarity and threshold,
and the decision; never an embedding or an image. Refused calls come counted per key and reason per interval (one
`denied` event with its count), so a flood of them cannot flood the trail. Events outlive the collections they
mention (that is the point of an audit) until pruned by age.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, Float, Index, Integer, String, delete, select, true
from sqlalchemy.orm import Mapped, mapped_column

from argus.auth import Denials, current_key
from argus.services.facedb.audit_writer import BoundedWriter
from argus.services.facedb.storage import (
    SQLITE_BUSY_TIMEOUT_S,
    Base,
    FaceStore,
    UTCDateTime,
    decode_page_token,
    encode_page_token,
    utcnow,
)

VERIFY, IDENTIFY, ENROLL, DELETE_FACE, DELETE_SUBJECT, DELETE_COLLECTION, CHANGE_PROFILE, DENIED = (
    "verify",
    "identify",
    "enroll",
    "delete_face",
    "delete_subject",
    "delete_collection",
    "change_profile",
    "denied",
)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_occurred_at", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(16), default="")  # "" when auth is off; "anonymous" for denials
    key_name: Mapped[str] = mapped_column(String(128))  # "" when auth is off
    collection: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))  # "" when none is concerned or found
    similarity: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(32))  # match, no_match, no_face, unknown, identified, done
    detail: Mapped[str] = mapped_column(String(256))
    count: Mapped[int] = mapped_column(Integer, default=1)  # the calls a denied event stands for; 1 otherwise


@dataclass(frozen=True)
class AuditRecord:
    event_id: int
    occurred_at: datetime
    action: str
    key_id: str
    key_name: str
    collection: str
    subject: str
    similarity: float | None
    threshold: float | None
    decision: str
    detail: str
    count: int


def _of_collections(collections: Sequence[str] | None) -> ColumnElement[bool]:
    """The events of these collections; None: every event."""
    return true() if collections is None else AuditEvent.collection.in_(collections)


class AuditLog:
    def __init__(self, store: FaceStore, *, wait_s: float = 1.0, backlog: int = 10_000) -> None:
        self.store = store
        # Events are written within a short bound on lock waits, or kept and written later (audit_writer).
        self.writer = BoundedWriter(
            store.engine,
            AuditEvent.__table__,  # type: ignore[arg-type]
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
        subject: str = "",
        similarity: float | None = None,
        threshold: float | None = None,
        decision: str = "done",
        detail: str = "",
    ) -> None:
        """Writes one event, attributed to the API key of the call being served, stamped with the time of the call
        (it may reach the database later, see audit_writer)."""
        key = current_key.get()
        self._write(
            action,
            key_id=key.key_id if key else "",
            key_name=key.name if key else "",
            collection=collection,
            subject=subject,
            similarity=similarity,
            threshold=threshold,
            decision=decision,
            detail=detail,
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
    ) -> None:
        """One row, its texts cut to their columns' sizes."""
        self.writer.write(
            {
                "occurred_at": utcnow(),
                "action": action,
                "key_id": key_id,
                "key_name": key_name,
                "collection": collection[:64],
                "subject": subject[:128],
                "similarity": similarity,
                "threshold": threshold,
                "decision": decision,
                "detail": detail[:256],
                "count": count,
            }
        )

    def list(
        self,
        *,
        collections: Sequence[str] | None = None,
        since: datetime | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[AuditRecord], str]:
        """Newest first; collections None: every event, including those of no collection (denials)."""
        if collections is not None:  # no collection name holds NUL (PostgreSQL would refuse the query)
            collections = [name for name in collections if "\x00" not in name]
        query = (
            select(AuditEvent).where(_of_collections(collections)).order_by(AuditEvent.id.desc()).limit(page_size + 1)
        )
        if page_token:
            query = query.where(AuditEvent.id < decode_page_token(page_token))
        if since is not None:
            query = query.where(AuditEvent.occurred_at >= since)
        with self.store._transaction() as session:
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
                )
                for row in rows[:page_size]
            ]
        more = len(rows) > page_size
        return records, encode_page_token(records[-1].event_id) if more else ""

    def prune(self, older_than: datetime, collections: Sequence[str] | None = None) -> int:
        """Removes the events older than that (of these collections only, unless None)."""
        query = delete(AuditEvent).where(AuditEvent.occurred_at < older_than, _of_collections(collections))
        with self.store._transaction() as session:
            return int(session.execute(query).rowcount)
