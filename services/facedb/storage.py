"""The face database's storage: collections, subjects and faces in SQL (SQLite or PostgreSQL), behind one repository.

The database is the source of truth; the FAISS index (index.py) is a cache derived from it and rebuilt at start.
`FaceStore` hands out frozen dataclasses, never ORM objects, so nothing outside it can lazy-load from a closed
session or change a row by accident. The schema is created and upgraded by Alembic (`FaceStore.migrate`), never by
`create_all`, so a deployed database and a fresh one always have the same shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload, sessionmaker
from sqlalchemy.pool import StaticPool

from argus.errors import AlreadyExists, DependencyUnavailable, InvalidInput, NotFound, Overloaded, shown
from argus.files import private_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

MAX_COLLECTION_NAME = 64
MAX_EXTERNAL_ID = 128
MAX_DISPLAY_NAME = 256
MAX_MODEL_REF = 255
MAX_PROFILE_NAME = 64
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

# Embeddings are stored as little-endian float32 bytes whatever the machine, so a database file can move.
EMBEDDING_DTYPE = np.dtype("<f4")

# Any constant works; it only has to be the same in every process migrating the same PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x41524755  # "ARGU"
_MAX_SQL_INT = 2**31 - 1  # INTEGER columns (ids of collections and subjects)
_IN_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Collection(Base):
    """A gallery searched as one: every face in it is embedded with the collection's profile."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("name", name="uq_collections_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_COLLECTION_NAME))
    # None: use the calibrated default of the model, so a recalibration reaches existing collections.
    threshold: Mapped[float | None] = mapped_column(Float)
    profile: Mapped[str] = mapped_column(String(MAX_PROFILE_NAME))  # e.g. "mobilefacenet+dlib"
    # Set while the faces are being re-embedded for another profile; the collection serves on `profile` meanwhile.
    pending_profile: Mapped[str | None] = mapped_column(String(MAX_PROFILE_NAME))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

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
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
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
    # PNG of the face crop and where the landmarks fall in it: lets other models re-embed the gallery without the
    # original photos. No landmarks: a 112x112 crop aligned to the ArcFace template (stored by earlier versions).
    aligned_crop: Mapped[bytes | None] = mapped_column(LargeBinary)
    crop_landmarks: Mapped[list[list[float]] | None] = mapped_column(JSON)
    # The embedding for the collection's pending profile, filled in by the re-embedding before the switch.
    pending_embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    pending_models: Mapped[str | None] = mapped_column(String(MAX_MODEL_REF))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    subject: Mapped[Subject] = relationship(back_populates="faces")


# Records handed out by FaceStore: plain, frozen, detached from any session.


@dataclass(frozen=True)
class CollectionRecord:
    name: str
    threshold: float | None  # None: the profile's calibrated default applies
    profile: str
    created_at: datetime
    subject_count: int = 0
    face_count: int = 0
    pending_profile: str | None = None  # being re-embedded for this profile
    reembedded: int = 0  # faces already re-embedded for it


@dataclass(frozen=True)
class FaceRecord:
    face_id: int
    external_id: str  # the subject's client-chosen ID
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
    detection_score: float
    face_size: float
    sharpness: float
    profile: str
    models: tuple[str, ...]  # "name@version" of each model that embedded it
    dimension: int
    created_at: datetime
    has_crop: bool = False

    @property
    def id(self) -> int:
        """The same as face_id: the face's database and FAISS id."""
        return self.face_id


@dataclass(frozen=True)
class SubjectRecord:
    collection: str
    external_id: str
    display_name: str
    metadata: dict[str, Any]
    created_at: datetime
    faces: tuple[FaceRecord, ...] = ()


@dataclass(frozen=True)
class NewFace:
    """A face to enroll, as the pipeline measured it."""

    embedding: np.ndarray  # (d,) float32: the models' unit vectors, concatenated
    profile: str
    models: tuple[str, ...]
    box: tuple[float, float, float, float]
    detection_score: float
    face_size: float
    sharpness: float
    crop: bytes | None = None  # PNG of the face crop
    crop_landmarks: np.ndarray | None = None  # (5, 2) in crop pixels


class _SubjectRace(Exception):
    """Another transaction created the same subject between our look-up and our insert: try once more."""


def normalize_url(url: str | URL) -> URL:
    """Plain postgresql:// (or postgres://) URLs get the psycopg 3 driver, the one Argus installs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, wal: bool) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless each connection asks for them.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        if wal:  # readers do not block the writer, and the other way round
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


# A database server that does not answer fails a connection attempt after this long instead of hanging the call.
CONNECT_TIMEOUT_S = 10
# How long a SQLite statement waits for another connection's lock (audit writes wait less: audit_writer).
SQLITE_BUSY_TIMEOUT_S = 30


def create_store_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        # pool_pre_ping: a pooled connection that died with its server (a restart, a failover) is replaced on the
        # next checkout, so the store recovers by itself once the server is back.
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    memory = url.database in (None, "", ":memory:")
    if memory:
        # One connection shared by every thread: each new connection to :memory: would be a new, empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        private_file(Path(url.database))  # type: ignore[arg-type]  # faces and embeddings: 0600 in a 0700 folder
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", lambda conn, record: _sqlite_pragmas(conn, record, wal=not memory))
    return engine


def alembic_config(url: URL) -> Any:
    """Alembic's configuration built in code: no alembic.ini to ship or to find."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolates %; a password may contain one.
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"s{last_id}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The last subject id of the previous page; anything this server did not issue is InvalidInput."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raw = ""
    # A subject id is a 32-bit integer in every backend: a larger number was not issued here (and would overflow
    # the query's parameter).
    if len(raw) < 2 or raw[0] != "s" or not raw[1:].isdigit() or len(raw) > 11 or int(raw[1:]) > _MAX_SQL_INT:
        raise InvalidInput(
            f"page_token {token!r} was not issued by this server; pass the next_page_token of the previous "
            "response, or an empty token for the first page"
        )
    return int(raw[1:])


def _check_name(kind: str, value: str, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        got = shown(value) if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"{kind} must be 1 to {limit} characters, got {got}")
    _check_storable(kind, value)


def _check_storable(kind: str, value: str) -> None:
    # PostgreSQL text cannot hold NUL; refused on every backend alike, before the database sees it.
    if "\x00" in value:
        raise InvalidInput(f"{kind} contains a NUL character")


def _storable(value: str) -> bool:
    """Whether the value can be in the database at all; one that cannot be is looked up as not found."""
    return "\x00" not in value


def _embedding_bytes(vector: np.ndarray) -> tuple[bytes, int]:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise InvalidInput(f"an embedding must be a non-empty 1-D vector, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInput("an embedding contains NaN or infinite values")
    return array.astype(EMBEDDING_DTYPE, copy=False).tobytes(), int(array.size)


def _face_record(face: Face, external_id: str) -> FaceRecord:
    return FaceRecord(
        face_id=face.id,
        external_id=external_id,
        box=(face.x1, face.y1, face.x2, face.y2),
        detection_score=face.detection_score,
        face_size=face.face_size,
        sharpness=face.sharpness,
        profile=face.profile,
        models=tuple(face.models.split(",")),
        dimension=face.dimension,
        created_at=face.created_at,
        has_crop=face.aligned_crop is not None,
    )


def _subject_record(collection: str, subject: Subject, faces: Iterable[Face]) -> SubjectRecord:
    return SubjectRecord(
        collection=collection,
        external_id=subject.external_id,
        display_name=subject.display_name,
        metadata=dict(subject.metadata_ or {}),
        created_at=subject.created_at,
        faces=tuple(_face_record(face, subject.external_id) for face in faces),
    )


# A face in a listing is a box, a few scores and names: well under this many bytes once encoded.
_LISTED_FACE_BYTES = 256


def _subject_size(subject: Subject) -> int:
    """An upper estimate of the subject's size in a reply: its names, its metadata as JSON and its faces."""
    metadata = len(json.dumps(subject.metadata_, separators=(",", ":"))) if subject.metadata_ else 0
    names = len(subject.external_id) + len(subject.display_name)
    return 64 + names + metadata + _LISTED_FACE_BYTES * len(subject.faces)


def _stack(rows: Sequence[tuple[int, bytes, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(id, embedding bytes, dimension) rows as an int64 id array and a float32 (N, d) matrix."""
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    if not rows:
        return ids, np.empty((0, 0), dtype=np.float32)
    dimension = rows[0][2]
    vectors = np.empty((len(rows), dimension), dtype=np.float32)
    for i, (face_id, blob, dim) in enumerate(rows):
        if dim != dimension or len(blob) != dimension * EMBEDDING_DTYPE.itemsize:
            raise ValueError(f"face {face_id} has a {dim}-dimensional embedding among {dimension}-dimensional ones")
        vectors[i] = np.frombuffer(blob, dtype=EMBEDDING_DTYPE)
    return ids, vectors


def _is_connection_error(error: DBAPIError) -> bool:
    """The database could not be reached or dropped the connection, as opposed to refusing the statement."""
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated


@contextmanager
def _unavailable_when_down() -> Iterator[None]:
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


class FaceStore:
    """Repository over the face database. Each public method is one transaction; results are frozen records."""

    def __init__(self, url: str | URL) -> None:
        self.url = normalize_url(url)
        self.engine = create_store_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> FaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision; safe to run at every start, and from several processes."""
        from alembic import command

        config = alembic_config(self.url)
        with self.engine.connect() as connection:
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

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with _unavailable_when_down(), self._sessions.begin() as session:
            yield session

    def ping(self) -> bool:
        """Whether the database answers a trivial query now: the face database's health check."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # Collections.

    @staticmethod
    def _collection(session: Session, name: str) -> Collection:
        collection = session.scalar(select(Collection).where(Collection.name == name)) if _storable(name) else None
        if collection is None:  # naming the others would show them to a key limited to its own
            raise NotFound(
                f"collection {shown(name)} does not exist; ListCollections (`argus collections list`) shows those "
                "your key may use, CreateCollection makes one"
            )
        return collection

    def create_collection(self, name: str, threshold: float | None, profile: str) -> CollectionRecord:
        _check_name("a collection name", name, MAX_COLLECTION_NAME)
        _check_name("a profile name", profile, MAX_PROFILE_NAME)
        if threshold is not None and not (math.isfinite(threshold) and -1.0 <= threshold <= 1.0):
            raise InvalidInput(f"threshold is a cosine similarity between -1 and 1, got {threshold}")
        try:
            with self._transaction() as session:
                collection = Collection(name=name, threshold=threshold, profile=profile)
                session.add(collection)
                session.flush()
                return CollectionRecord(
                    collection.name, collection.threshold, collection.profile, collection.created_at
                )
        except IntegrityError:
            raise AlreadyExists(f"collection {name!r} already exists") from None

    def _counted(self, session: Session, where: Any = None) -> list[CollectionRecord]:
        subjects = (
            select(func.count(Subject.id)).where(Subject.collection_id == Collection.id).correlate(Collection)
        ).scalar_subquery()
        faces = (
            select(func.count(Face.id)).where(Face.collection_id == Collection.id).correlate(Collection)
        ).scalar_subquery()
        reembedded = (
            select(func.count(Face.id))
            .where(Face.collection_id == Collection.id, Face.pending_embedding.is_not(None))
            .correlate(Collection)
        ).scalar_subquery()
        statement = select(Collection, subjects, faces, reembedded).order_by(Collection.name)
        if where is not None:
            statement = statement.where(where)
        return [
            CollectionRecord(
                c.name,
                c.threshold,
                c.profile,
                c.created_at,
                int(n_subjects),
                int(n_faces),
                c.pending_profile,
                int(done),
            )
            for c, n_subjects, n_faces, done in session.execute(statement)
        ]

    def get_collection(self, name: str) -> CollectionRecord:
        with self._transaction() as session:
            self._collection(session, name)
            return self._counted(session, Collection.name == name)[0]

    def list_collections(self) -> list[CollectionRecord]:
        with self._transaction() as session:
            return self._counted(session)

    def delete_collection(self, name: str) -> tuple[int, int]:
        """Removes the collection; the foreign keys cascade to its subjects and faces. Returns what went with it."""
        with self._transaction() as session:
            collection = self._collection(session, name)
            n_subjects = session.scalar(select(func.count(Subject.id)).where(Subject.collection_id == collection.id))
            n_faces = session.scalar(select(func.count(Face.id)).where(Face.collection_id == collection.id))
            session.execute(delete(Collection).where(Collection.id == collection.id))
            return int(n_subjects or 0), int(n_faces or 0)

    # Subjects and faces.

    @staticmethod
    def _subject(session: Session, collection: Collection, external_id: str) -> Subject:
        subject = None
        if _storable(external_id):
            subject = session.scalar(
                select(Subject).where(Subject.collection_id == collection.id, Subject.external_id == external_id)
            )
        if subject is None:
            raise NotFound(f"subject {external_id!r} does not exist in collection {collection.name!r}")
        return subject

    def add_faces(
        self,
        collection: str,
        external_id: str,
        display_name: str,
        metadata: Mapping[str, Any] | None,
        faces: Sequence[NewFace],
    ) -> tuple[SubjectRecord, list[int], bool]:
        """Adds faces to a subject, creating it when new, all in one transaction: every face lands or none does.

        On an existing subject a non-empty display name or metadata replaces the stored one. Returns the subject
        with all its faces, the new face ids in the order given, and whether the subject was created.
        """
        _check_name("a subject ID", external_id, MAX_EXTERNAL_ID)
        if len(display_name) > MAX_DISPLAY_NAME:
            raise InvalidInput(f"display_name is longer than {MAX_DISPLAY_NAME} characters")
        _check_storable("display_name", display_name)
        if metadata:
            try:
                json.dumps(dict(metadata), allow_nan=False)
            except (TypeError, ValueError) as error:
                raise InvalidInput(f"metadata must be plain JSON: {error}") from None
        if not faces:
            raise InvalidInput("at least one face is needed to enroll a subject")
        encoded = [_embedding_bytes(face.embedding) for face in faces]
        if len({dimension for _, dimension in encoded}) != 1:
            raise InvalidInput("the faces' embeddings have different dimensions")
        for _attempt in range(2):
            try:
                return self._add_faces_once(collection, external_id, display_name, metadata, faces, encoded)
            except _SubjectRace:
                continue
        raise AlreadyExists(f"subject {external_id!r} is being created by another request; retry")

    def _add_faces_once(
        self,
        collection_name: str,
        external_id: str,
        display_name: str,
        metadata: Mapping[str, Any] | None,
        faces: Sequence[NewFace],
        encoded: list[tuple[bytes, int]],
    ) -> tuple[SubjectRecord, list[int], bool]:
        with self._transaction() as session:
            collection = self._collection(session, collection_name)
            for face in faces:
                if face.profile != collection.profile:
                    raise InvalidInput(
                        f"collection {collection.name!r} holds {collection.profile} embeddings, not {face.profile}"
                    )
            dimension = encoded[0][1]
            stored = session.scalar(select(Face.dimension).where(Face.collection_id == collection.id).limit(1))
            if stored is not None and stored != dimension:
                raise InvalidInput(
                    f"collection {collection.name!r} holds {stored}-dimensional embeddings, not {dimension}"
                )
            subject = session.scalar(
                select(Subject).where(Subject.collection_id == collection.id, Subject.external_id == external_id)
            )
            created = subject is None
            if subject is None:
                subject = Subject(
                    collection_id=collection.id,
                    external_id=external_id,
                    display_name=display_name,
                    metadata_=dict(metadata or {}),
                )
                session.add(subject)
                try:
                    session.flush()
                except IntegrityError:
                    # No SAVEPOINT: pysqlite mishandles them. Leaving the block rolls the whole transaction back.
                    raise _SubjectRace from None
            else:
                if display_name:
                    subject.display_name = display_name
                if metadata:
                    subject.metadata_ = dict(metadata)
            rows = [
                Face(
                    subject_id=subject.id,
                    collection_id=collection.id,
                    embedding=blob,
                    dimension=dim,
                    profile=face.profile,
                    models=",".join(face.models),
                    x1=face.box[0],
                    y1=face.box[1],
                    x2=face.box[2],
                    y2=face.box[3],
                    detection_score=face.detection_score,
                    face_size=face.face_size,
                    sharpness=face.sharpness,
                    aligned_crop=face.crop,
                    crop_landmarks=None if face.crop_landmarks is None else np.asarray(face.crop_landmarks).tolist(),
                )
                for face, (blob, dim) in zip(faces, encoded, strict=True)
            ]
            session.add_all(rows)
            session.flush()
            new_ids = [row.id for row in rows]
            all_faces = session.scalars(select(Face).where(Face.subject_id == subject.id).order_by(Face.id)).all()
            return _subject_record(collection.name, subject, all_faces), new_ids, created

    def get_subject(self, collection: str, external_id: str) -> SubjectRecord:
        with self._transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            faces = session.scalars(select(Face).where(Face.subject_id == subject.id).order_by(Face.id)).all()
            return _subject_record(found.name, subject, faces)

    def list_subjects(
        self, collection: str, page_size: int = DEFAULT_PAGE_SIZE, page_token: str = "", max_bytes: int = 1 << 24
    ) -> tuple[list[SubjectRecord], str, int]:
        """One page of subjects (with their faces) in creation order, the token of the next page ("" on the last
        one) and the collection's subject count. Keyset pagination: pages stay correct while subjects come and go.

        A page also ends early once its subjects add up to about max_bytes (what a reply may carry), so a page fits
        in one message whatever the rows hold; it always holds at least one subject.
        """
        if page_size == 0:
            page_size = DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}")
        after = decode_page_token(page_token) if page_token else 0
        with self._transaction() as session:
            found = self._collection(session, collection)
            total = session.scalar(select(func.count(Subject.id)).where(Subject.collection_id == found.id)) or 0
            subjects = session.scalars(
                select(Subject)
                .where(Subject.collection_id == found.id, Subject.id > after)
                .order_by(Subject.id)
                .limit(page_size + 1)
                .options(selectinload(Subject.faces))
            ).all()
            more = len(subjects) > page_size
            subjects = subjects[:page_size]
            records: list[SubjectRecord] = []
            size = 0
            for subject in subjects:
                size += _subject_size(subject)
                if records and size > max_bytes:
                    more = True
                    break
                records.append(_subject_record(found.name, subject, subject.faces))
            next_token = encode_page_token(subjects[len(records) - 1].id) if more and records else ""
            return records, next_token, int(total)

    def delete_face(self, collection: str, face_id: int) -> FaceRecord:
        """Removes one face; its subject stays, even with no faces left."""
        with self._transaction() as session:
            found = self._collection(session, collection)
            row = session.execute(
                select(Face, Subject.external_id)
                .join(Subject, Subject.id == Face.subject_id)
                .where(Face.id == face_id, Face.collection_id == found.id)
            ).first()
            if row is None:
                raise NotFound(f"face {face_id} does not exist in collection {found.name!r}")
            face, external_id = row
            record = _face_record(face, external_id)
            session.execute(delete(Face).where(Face.id == face_id))
            return record

    def delete_subject(self, collection: str, external_id: str) -> list[int]:
        """Removes a subject and (by cascade) its faces; returns the removed face ids for the index."""
        with self._transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            ids = list(session.scalars(select(Face.id).where(Face.subject_id == subject.id).order_by(Face.id)))
            session.execute(delete(Subject).where(Subject.id == subject.id))
            return ids

    # What the index needs.

    def embeddings(self, collection: str) -> tuple[np.ndarray, np.ndarray]:
        """Every face of a collection: int64 ids and a float32 (N, d) matrix, (0, 0) when empty. Rebuilds the index."""
        with self._transaction() as session:
            found = self._collection(session, collection)
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dimension).where(Face.collection_id == found.id).order_by(Face.id)
            ).all()
            return _stack([tuple(row) for row in rows])  # type: ignore[misc]

    def subject_faces(self, collection: str, external_id: str) -> tuple[str, np.ndarray, np.ndarray]:
        """One subject's faces as 1:1 verification compares against them: the collection's profile, which every
        stored embedding follows, the face ids and the stored embeddings."""
        with self._transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dimension).where(Face.subject_id == subject.id).order_by(Face.id)
            ).all()
            return (found.profile, *_stack([tuple(row) for row in rows]))  # type: ignore[misc]

    # Re-embedding a collection for another profile, from the stored face crops.

    def start_reembedding(self, collection: str, profile: str) -> CollectionRecord:
        """Marks the collection as moving to `profile` and forgets any earlier, unfinished re-embedding. Refused when
        a face has no stored crop (it could not be re-embedded)."""
        _check_name("a profile name", profile, MAX_PROFILE_NAME)
        with self._transaction() as session:
            found = self._collection(session, collection)
            without_crop = session.scalar(
                select(func.count(Face.id)).where(Face.collection_id == found.id, Face.aligned_crop.is_(None))
            )
            if without_crop:
                raise InvalidInput(
                    f"{without_crop} face(s) of collection {collection!r} were enrolled without a stored crop "
                    "(ARGUS_KEEP_FACE_CROPS was off), so they cannot be re-embedded; delete and re-enroll them first"
                )
            session.execute(
                update(Face).where(Face.collection_id == found.id).values(pending_embedding=None, pending_models=None)
            )
            found.pending_profile = None if profile == found.profile else profile
            session.flush()
            return self._counted(session, Collection.id == found.id)[0]

    def cancel_reembedding(self, collection: str) -> None:
        with self._transaction() as session:
            found = self._collection(session, collection)
            session.execute(
                update(Face).where(Face.collection_id == found.id).values(pending_embedding=None, pending_models=None)
            )
            found.pending_profile = None

    def crops_to_reembed(self, collection: str, limit: int) -> tuple[str | None, list[tuple[int, bytes, Any]]]:
        """The pending profile and up to `limit` faces still to re-embed for it: (face id, crop PNG, crop
        landmarks or None), oldest first. No pending profile: (None, [])."""
        with self._transaction() as session:
            found = self._collection(session, collection)
            if found.pending_profile is None:
                return None, []
            rows = session.execute(
                select(Face.id, Face.aligned_crop, Face.crop_landmarks)
                .where(Face.collection_id == found.id, Face.pending_embedding.is_(None))
                .order_by(Face.id)
                .limit(limit)
            ).all()
            return found.pending_profile, [(int(i), crop, points) for i, crop, points in rows]

    def store_reembedded(
        self, collection: str, profile: str, faces: Sequence[tuple[int, np.ndarray, tuple[str, ...]]]
    ) -> int:
        """Keeps new embeddings for the pending profile; ignored if the collection has since moved to another
        pending profile (or none). Returns how many were stored."""
        with self._transaction() as session:
            found = self._collection(session, collection)
            if found.pending_profile != profile:
                return 0
            stored = 0
            for face_id, vector, models in faces:
                blob, _ = _embedding_bytes(vector)
                result = session.execute(
                    update(Face)
                    .where(Face.id == face_id, Face.collection_id == found.id)
                    .values(pending_embedding=blob, pending_models=",".join(models))
                )
                stored += result.rowcount or 0
            return stored

    @classmethod
    def _moving_to(cls, session: Session, collection: str, profile: str) -> Collection | None:
        """The collection, if it is moving to this profile and every face has its embedding for it."""
        found = cls._collection(session, collection)
        if found.pending_profile != profile:
            return None
        missing = session.scalar(
            select(func.count(Face.id)).where(Face.collection_id == found.id, Face.pending_embedding.is_(None))
        )
        return None if missing else found

    def pending_embeddings(self, collection: str, profile: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Every face's embedding for the pending profile, or None while some face still lacks one (or the
        collection is no longer moving to that profile)."""
        with self._transaction() as session:
            found = self._moving_to(session, collection, profile)
            if found is None:
                return None
            rows = session.execute(
                select(Face.id, Face.pending_embedding, Face.dimension)
                .where(Face.collection_id == found.id)
                .order_by(Face.id)
            ).all()
            itemsize = EMBEDDING_DTYPE.itemsize
            return _stack([(int(i), blob, len(blob) // itemsize) for i, blob, _ in rows])

    def finish_reembedding(self, collection: str, profile: str, dimension: int) -> bool:
        """Switches the collection to the pending profile in one transaction: every face's pending embedding
        becomes its embedding. False (and nothing changed) when some face still lacks one."""
        with self._transaction() as session:
            found = self._moving_to(session, collection, profile)
            if found is None:
                return False
            session.execute(
                update(Face)
                .where(Face.collection_id == found.id)
                .values(
                    embedding=Face.pending_embedding,
                    models=Face.pending_models,
                    profile=profile,
                    dimension=dimension,
                    pending_embedding=None,
                    pending_models=None,
                )
            )
            found.profile = profile
            found.pending_profile = None
            # A cosine threshold means nothing across profiles (dlib's raw strangers score 0.83): the new profile's
            # calibrated one applies from now on.
            found.threshold = None
            return True

    def reembedding_collections(self) -> list[tuple[str, str]]:
        """(collection, pending profile) of every collection being re-embedded: to resume after a restart."""
        with self._transaction() as session:
            rows = session.execute(
                select(Collection.name, Collection.pending_profile).where(Collection.pending_profile.is_not(None))
            ).all()
            return [(name, pending) for name, pending in rows]

    def face_owners(self, collection: str, face_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """face id -> (external id, display name) for the ids that are in the collection; others are left out."""
        wanted = sorted({int(face_id) for face_id in face_ids})
        owners: dict[int, tuple[str, str]] = {}
        with self._transaction() as session:
            found = self._collection(session, collection)
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = session.execute(
                    select(Face.id, Subject.external_id, Subject.display_name)
                    .join(Subject, Subject.id == Face.subject_id)
                    .where(Face.collection_id == found.id, Face.id.in_(chunk))
                )
                for face_id, external_id, display_name in rows:
                    owners[int(face_id)] = (external_id, display_name)
        return owners


# The audit trail's table lives in the same schema; importing it registers it with Base.metadata.
from argus.services.facedb import audit as _audit  # noqa: E402, F401
