"""The audit trail: every verify and identify decision, every enrollment and deletion, in the face database.

An event records when, which API key, which collection and subject, the similarity and threshold, and the
decision; never an embedding or an image. Events outlive the collections they mention (that is the point of an
audit) until pruned by age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from argus.auth import current_key
from argus.services.facedb.storage import Base, FaceStore, UTCDateTime, decode_page_token, encode_page_token, utcnow

VERIFY, IDENTIFY, ENROLL, DELETE_FACE, DELETE_SUBJECT, DELETE_COLLECTION, CHANGE_PROFILE = (
    "verify",
    "identify",
    "enroll",
    "delete_face",
    "delete_subject",
    "delete_collection",
    "change_profile",
)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_occurred_at", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    key_name: Mapped[str] = mapped_column(String(128))  # "" when auth is off
    collection: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))  # "" when none is concerned or found
    similarity: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(32))  # match, no_match, no_face, unknown, identified, done
    detail: Mapped[str] = mapped_column(String(256))


@dataclass(frozen=True)
class AuditRecord:
    event_id: int
    occurred_at: datetime
    action: str
    key_name: str
    collection: str
    subject: str
    similarity: float | None
    threshold: float | None
    decision: str
    detail: str


class AuditLog:
    def __init__(self, store: FaceStore) -> None:
        self.store = store

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
        """Writes one event, attributed to the API key of the call being served."""
        key = current_key.get()
        with self.store._transaction() as session:
            session.add(
                AuditEvent(
                    action=action,
                    key_name=key.name if key else "",
                    collection=collection[:64],
                    subject=subject[:128],
                    similarity=similarity,
                    threshold=threshold,
                    decision=decision,
                    detail=detail[:256],
                )
            )

    def list(
        self, *, collection: str = "", since: datetime | None = None, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[AuditRecord], str]:
        """Newest first."""
        if "\x00" in collection:  # no collection name holds NUL (PostgreSQL would refuse the query)
            return [], ""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(page_size + 1)
        if page_token:
            query = query.where(AuditEvent.id < decode_page_token(page_token))
        if collection:
            query = query.where(AuditEvent.collection == collection)
        if since is not None:
            query = query.where(AuditEvent.occurred_at >= since)
        with self.store._transaction() as session:
            rows = session.scalars(query).all()
            records = [
                AuditRecord(
                    row.id,
                    row.occurred_at,
                    row.action,
                    row.key_name,
                    row.collection,
                    row.subject,
                    row.similarity,
                    row.threshold,
                    row.decision,
                    row.detail,
                )
                for row in rows[:page_size]
            ]
        more = len(rows) > page_size
        return records, encode_page_token(records[-1].event_id) if more else ""

    def prune(self, older_than: datetime) -> int:
        with self.store._transaction() as session:
            return int(session.execute(delete(AuditEvent).where(AuditEvent.occurred_at < older_than)).rowcount)
