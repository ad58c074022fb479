"""The face database's tables: collections, subjects, faces and the audit trail, in one schema.

Alembic (migrations/) creates and upgrades them; these classes are what the repository queries and what the
migration test compares the migrated schema against. The column sizes are the limits the request checks enforce.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

MAX_COLLECTION_NAME = 64
MAX_EXTERNAL_ID = 128  # a subject's client-chosen ID
MAX_DISPLAY_NAME = 256
MAX_MODEL_REF = 255
MAX_PROFILE_NAME = 64
MAX_AUDIT_DETAIL = 256
DECISION_ID_LENGTH = 32  # hex of 16 random bytes: unguessable, so one collection's decisions cannot be probed
ENROLLED, FEEDBACK = "enroll", "feedback"  # a face's origin
MAX_SUBJECT_ROW_ID = 2**31 - 1  # INTEGER columns (ids of collections and subjects)
MAX_ROW_ID = 2**63 - 1  # BIGINT columns (ids of faces and audit events)
# What a collection's threshold may be: the range of a cosine similarity.
COSINE_RANGE = (-1.0, 1.0)

# Embeddings are stored as little-endian float32 bytes whatever the machine, so a database file can move.
EMBEDDING_DTYPE = np.dtype("<f4")

# Deterministic constraint names: the hand-written migration uses the same ones, so the two can be compared.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC, also from SQLite, which stores no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A 64-bit id; INTEGER on SQLite, where only that type makes the column the row id.
_NEVER_REUSED_ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Collection(Base):
    """A gallery searched as one: every face in it is embedded with the collection's profile."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("name", name="uq_collections_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_COLLECTION_NAME))
    # Within COSINE_RANGE; None: use the calibrated default of the model, so a recalibration reaches existing
    # collections.
    threshold: Mapped[float | None] = mapped_column(Float)
    profile: Mapped[str] = mapped_column(String(MAX_PROFILE_NAME))  # e.g. "mobilefacenet+dlib"
    # Set while the faces are being re-embedded for another profile; the collection serves on `profile` meanwhile.
    pending_profile: Mapped[str | None] = mapped_column(String(MAX_PROFILE_NAME))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Moved by the repository in the transaction of each change, so a request reads its collection's counts from
    # this one row instead of counting (every Verify and Identify does). pending_count: faces still awaiting their
    # embedding for pending_profile (0 when there is none).
    subject_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    face_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pending_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The liveness a Verify, Identify or Enroll of this collection requires when the request does not say.
    require_liveness: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    subjects: Mapped[list[Subject]] = relationship(back_populates="collection", passive_deletes=True)


class Subject(Base):
    """A person, known by the client's own ID (unique within the collection)."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("collection_id", "external_id", name="uq_subjects_collection_id_external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(MAX_EXTERNAL_ID))
    display_name: Mapped[str] = mapped_column(String(MAX_DISPLAY_NAME))
    # `metadata` is reserved on declarative classes; the column keeps the natural name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    collection: Mapped[Collection] = relationship(back_populates="subjects")
    faces: Mapped[list[Face]] = relationship(back_populates="subject", passive_deletes=True, order_by="Face.id")


class Face(Base):
    """One enrolled face. Its id is also its FAISS id, so it must never be reused (AUTOINCREMENT on SQLite)."""

    __tablename__ = "faces"
    # One photo (by its bytes' sha256) is one face of a subject: a retried or resumed enrollment adds nothing.
    __table_args__ = (
        # An index, not a table constraint: SQLite adds one in place, where a constraint would copy the table.
        Index("ix_faces_subject_id_source_sha256", "subject_id", "source_sha256", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_NEVER_REUSED_ID, primary_key=True, autoincrement=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    # Denormalised from the subject: rebuilding a collection's index reads one indexed column, no join.
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    # Each model's unit vector, concatenated in the profile's order: little-endian float32, `dimension` values.
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    dimension: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String(MAX_PROFILE_NAME))
    models: Mapped[str] = mapped_column(String(MAX_MODEL_REF))  # "name@version" of each model, comma-separated
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    detection_score: Mapped[float] = mapped_column(Float)
    face_size: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    # PNG of the 256 px face crop every model of a profile is cut from, and where the landmarks fall in it: lets
    # other models re-embed the gallery without the original photos. No landmarks: a 112x112 crop aligned to the
    # ArcFace template (stored by earlier versions).
    face_crop: Mapped[bytes | None] = mapped_column(LargeBinary)
    crop_landmarks: Mapped[list[list[float]] | None] = mapped_column(JSON)
    # The embedding for the collection's pending profile, filled in by the re-embedding before the switch.
    pending_embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    pending_models: Mapped[str | None] = mapped_column(String(MAX_MODEL_REF))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # ENROLLED, or FEEDBACK for a face a confirmed decision added (those are retired at the template's cap).
    origin: Mapped[str] = mapped_column(String(16), default=ENROLLED, server_default=ENROLLED)
    # sha256 (hex) of the photo it was enrolled from; None for feedback faces and faces enrolled before it was kept.
    source_sha256: Mapped[str | None] = mapped_column(String(64))

    subject: Mapped[Subject] = relationship(back_populates="faces")


class Decision(Base):
    """What a Verify or Identify answer keeps for feedback (ConfirmDecision, RejectDecision): the probe face's
    embedding and quality, until it expires (ARGUS_FEEDBACK_RETENTION_S). Deleted with the subject it named, and
    with its collection."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(DECISION_ID_LENGTH), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    # The subject the answer named (Verify's claimed one, Identify's match); None for an Identify "unknown".
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # verify, identify
    matched: Mapped[bool] = mapped_column(Boolean)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    dimension: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String(MAX_PROFILE_NAME))
    models: Mapped[str] = mapped_column(String(MAX_MODEL_REF))
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    detection_score: Mapped[float] = mapped_column(Float)
    face_size: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    # P(live face) where the decision required liveness; None where it was not scored.
    liveness: Mapped[float | None] = mapped_column(Float)
    key_id: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ImpostorExample(Base):
    """A probe a RejectDecision said was not this subject: a later probe closer to it than to the subject's
    template is not taken for the subject. Deleted with the subject."""

    __tablename__ = "impostor_examples"

    id: Mapped[int] = mapped_column(_NEVER_REUSED_ID, primary_key=True, autoincrement=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    dimension: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String(MAX_PROFILE_NAME))
    decision_id: Mapped[str] = mapped_column(String(DECISION_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Change(Base):
    """One change to what a collection's index holds, written in the change's own transaction; its id is the change
    sequence every replica follows (replication.py). No foreign key: a collection's "dropped" outlives it."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_created_at", "created_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(_NEVER_REUSED_ID, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(Integer)
    collection: Mapped[str] = mapped_column(String(MAX_COLLECTION_NAME))
    kind: Mapped[str] = mapped_column(String(16))  # created, dropped, added, removed, reloaded
    face_id: Mapped[int | None] = mapped_column(BigInteger)  # for added and removed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEvent(Base):
    """One decision, change or batch of refused calls (audit.py); outlives the collections it names."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_occurred_at", "occurred_at"),)

    id: Mapped[int] = mapped_column(_NEVER_REUSED_ID, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(16), default="")  # "" when auth is off; "anonymous" for denials
    key_name: Mapped[str] = mapped_column(String(128))  # "" when auth is off
    collection: Mapped[str] = mapped_column(String(MAX_COLLECTION_NAME))
    subject: Mapped[str] = mapped_column(String(MAX_EXTERNAL_ID))  # "" when none is concerned or found
    similarity: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(32))  # match, no_match, no_face, unknown, identified, done
    detail: Mapped[str] = mapped_column(String(MAX_AUDIT_DETAIL))
    count: Mapped[int] = mapped_column(Integer, default=1)  # the calls a denied event stands for; 1 otherwise
    # The answer's decision id (verify, identify), or the one feedback was about; "" for other events.
    decision_id: Mapped[str] = mapped_column(String(DECISION_ID_LENGTH), default="", server_default="")
