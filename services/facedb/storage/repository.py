"""FaceStore: the repository over the face database. Each public method is one transaction; results are frozen
records (records.py), never ORM objects.

The database is the source of truth; the FAISS index (index.py) is a cache derived from it and rebuilt at start.
Requests are checked at the service boundary (requests.py); what they guarantee is only asserted here. What only
the stored data can tell (another profile, another dimension, faces without a crop) is refused here.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import case, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import URL, CursorResult
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from argus.errors import AlreadyExists, InvalidInput, NotFound, shown
from argus.paging import MAX_PAGE_SIZE
from argus.services.facedb.audit_writer import BoundedWriter
from argus.services.facedb.storage.engine import (
    CHANGE_LOCK_KEY,
    CHANGES_CHANNEL,
    SQLITE_BUSY_TIMEOUT_S,
    create_store_engine,
    migrate,
    normalize_url,
    unavailable_when_down,
)
from argus.services.facedb.storage.lease import REEMBEDDING_LEASE_KEY, Lease
from argus.services.facedb.storage.models import (
    COSINE_RANGE,
    EMBEDDING_DTYPE,
    FEEDBACK,
    MAX_COLLECTION_NAME,
    MAX_DISPLAY_NAME,
    MAX_EXTERNAL_ID,
    MAX_PROFILE_NAME,
    Base,
    Change,
    Collection,
    Decision,
    Face,
    ImpostorExample,
    Subject,
    utcnow,
)
from argus.services.facedb.storage.pgcopy import face_chunks
from argus.services.facedb.storage.records import (
    ChangeRecord,
    CollectionFaces,
    CollectionRecord,
    DecisionRecord,
    EnrolledFaces,
    FaceRecord,
    NewDecision,
    NewFace,
    SubjectPage,
    SubjectRecord,
    SubjectTemplate,
)

FACE_CHUNK = 16_384  # faces per step of a streamed read: 16 MB of 256-d vectors
_IN_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit
_LOGGED = "argus_change"  # Session.info key: the last change id the transaction wrote
BULK_CHUNK = 2000  # subjects per transaction of add_subjects_bulk: few round trips, a bounded transaction


class _SubjectRace(Exception):
    """Another transaction created the same subject between our look-up and our insert: try once more."""


def _storable(value: str) -> bool:
    """Whether the value can be in the database at all (PostgreSQL text cannot hold NUL); one that cannot be is
    looked up as not found."""
    return "\x00" not in value


def _fits(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and _storable(value)


def _embedding_bytes(vector: np.ndarray) -> tuple[bytes, int]:
    array = np.asarray(vector, dtype=np.float32)
    assert array.ndim == 1 and array.size > 0, f"an embedding is a non-empty 1-D vector, got shape {array.shape}"
    assert np.isfinite(array).all(), "an embedding contains NaN or infinite values"
    return array.astype(EMBEDDING_DTYPE, copy=False).tobytes(), int(array.size)


def _measured(face: NewFace | NewDecision, encoded: tuple[bytes, int]) -> dict[str, Any]:
    """The columns a face and a decision share: its embedding, what made it, its box and quality."""
    blob, dimension = encoded
    return {
        "embedding": blob,
        "dimension": dimension,
        "profile": face.profile,
        "models": ",".join(face.models),
        "x1": face.box[0],
        "y1": face.box[1],
        "x2": face.box[2],
        "y2": face.box[3],
        "detection_score": face.detection_score,
        "face_size": face.face_size,
        "sharpness": face.sharpness,
    }


def _face_values(face: NewFace, encoded: tuple[bytes, int], subject_id: int, collection_id: int) -> dict[str, Any]:
    """A new face's row, by the mapped attributes' names: for Face(...) and for bulk inserts alike."""
    return {
        "subject_id": subject_id,
        "collection_id": collection_id,
        **_measured(face, encoded),
        "face_crop": face.crop,
        "crop_landmarks": None if face.crop_landmarks is None else np.asarray(face.crop_landmarks).tolist(),
        "origin": face.origin,
        "source_sha256": face.source_sha256,
    }


def decision_row(decision: NewDecision) -> dict[str, Any]:
    """A decision's row in the decisions table, as its writer inserts it."""
    return {
        "id": decision.decision_id,
        "collection_id": decision.collection_row_id,
        "subject_id": decision.subject_row_id,
        "action": decision.action,
        "matched": decision.matched,
        **_measured(decision, _embedding_bytes(decision.embedding)),
        "liveness": decision.liveness,
        "key_id": decision.key_id,
        "created_at": utcnow(),
        "expires_at": decision.expires_at,
    }


def _collection_record(collection: Collection) -> CollectionRecord:
    """The collection with its counts as its own row keeps them: no row of another table is counted."""
    reembedded = collection.face_count - collection.pending_count if collection.pending_profile is not None else 0
    return CollectionRecord(
        collection.name,
        collection.threshold,
        collection.profile,
        collection.created_at,
        collection.subject_count,
        collection.face_count,
        collection.pending_profile,
        reembedded,
        collection.require_liveness,
        collection.id,
    )


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
        has_crop=face.face_crop is not None,
        origin=face.origin,
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
    size = dimension * EMBEDDING_DTYPE.itemsize
    for face_id, blob, dim in rows:
        if dim != dimension or len(blob) != size:
            raise ValueError(f"face {face_id} has a {dim}-dimensional embedding among {dimension}-dimensional ones")
    joined = b"".join(row[1] for row in rows)
    return ids, np.frombuffer(joined, dtype=EMBEDDING_DTYPE).reshape(len(rows), dimension).copy()


class FaceStore:
    """Repository over the face database. Each public method is one transaction; results are frozen records."""

    def __init__(self, url: str | URL) -> None:
        self.url = normalize_url(url)
        self.engine = create_store_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._committed = threading.local()  # .sequence: the change the thread's last mutation committed at

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
        """Brings the schema to the latest revision (engine.migrate)."""
        migrate(self.engine, self.url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction, committed at the end of the block; the audit trail (audit.py) queries its table in it."""
        with unavailable_when_down(), self._sessions.begin() as session:
            yield session
        if _LOGGED in session.info:
            self._committed.sequence = session.info[_LOGGED]

    def last_change(self) -> int:
        """The change sequence this thread's last committed mutation ended at (0 before any): what a replica waits
        for its follower to have applied before it answers (read-your-writes)."""
        return int(getattr(self._committed, "sequence", 0))

    def _log(self, session: Session, collection_id: int, name: str, kind: str, face_ids: Sequence[int] = ()) -> None:
        """Writes this transaction's change rows (one per face, or one for the collection), as its last statements
        before the commit. On PostgreSQL the change lock, held until the commit, makes change ids follow commit
        order, so a follower that has read every change up to id n never later finds a lower one; the NOTIFY
        wakes every follower at the commit."""
        if self.backend == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOCK_KEY})
        now = utcnow()
        targets: Sequence[int | None] = face_ids or [None]
        rows = [
            {"collection_id": collection_id, "collection": name, "kind": kind, "face_id": face_id, "created_at": now}
            for face_id in targets
        ]
        ids = session.scalars(insert(Change).returning(Change.id, sort_by_parameter_order=True), rows).all()
        if self.backend == "postgresql":
            session.execute(text(f"NOTIFY {CHANGES_CHANNEL}"))
        session.info[_LOGGED] = int(max(ids))

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

    @staticmethod
    def _count(session: Session, collection_id: int, *, subjects: int = 0, faces: int = 0, pending: int = 0) -> None:
        """Moves the collection's counters by these amounts, in the change's own transaction. The new values are
        computed from the row as it is when updated, not as read earlier, so concurrent changes add up; `pending`
        (faces awaiting their embedding for the pending profile) only moves while there is a pending profile."""
        values: dict[Any, Any] = {}
        if subjects:
            values[Collection.subject_count] = Collection.subject_count + subjects
        if faces:
            values[Collection.face_count] = Collection.face_count + faces
        if pending:
            values[Collection.pending_count] = case(
                (Collection.pending_profile.is_(None), 0), else_=Collection.pending_count + pending
            )
        if values:
            session.execute(
                update(Collection)
                .where(Collection.id == collection_id)
                .values(values)
                .execution_options(synchronize_session=False)
            )

    def create_collection(
        self, name: str, threshold: float | None, profile: str, require_liveness: bool = False
    ) -> CollectionRecord:
        assert _fits(name, MAX_COLLECTION_NAME) and _fits(profile, MAX_PROFILE_NAME), "checked by requests.py"
        assert threshold is None or COSINE_RANGE[0] <= threshold <= COSINE_RANGE[1], "checked by requests.threshold"
        try:
            with self.transaction() as session:
                collection = Collection(
                    name=name, threshold=threshold, profile=profile, require_liveness=require_liveness
                )
                session.add(collection)
                session.flush()
                self._log(session, collection.id, collection.name, "created")
                return _collection_record(collection)
        except IntegrityError:
            raise AlreadyExists(f"collection {name!r} already exists") from None

    def update_collection(self, name: str, *, require_liveness: bool | None = None) -> CollectionRecord:
        """Changes the settings given (None: kept). Requests read them from this row, so every replica follows."""
        with self.transaction() as session:
            found = self._collection(session, name)
            if require_liveness is not None:
                found.require_liveness = require_liveness
            session.flush()
            return _collection_record(found)

    def get_collection(self, name: str) -> CollectionRecord:
        """One row by its unique name, whatever the collection's size: every Verify and Identify reads it."""
        with self.transaction() as session:
            return _collection_record(self._collection(session, name))

    def list_collections(self) -> list[CollectionRecord]:
        with self.transaction() as session:
            return [_collection_record(c) for c in session.scalars(select(Collection).order_by(Collection.name))]

    def delete_collection(self, name: str) -> tuple[int, int]:
        """Removes the collection; the foreign keys cascade to its subjects and faces. Returns what went with it."""
        with self.transaction() as session:
            collection = self._collection(session, name)
            session.execute(delete(Collection).where(Collection.id == collection.id))
            self._log(session, collection.id, collection.name, "dropped")
            return collection.subject_count, collection.face_count

    # Subjects and faces.

    @staticmethod
    def _subject(session: Session, collection: Collection, external_id: str) -> Subject:
        assert _storable(external_id), "checked by requests.subject_id"
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
        """enroll_faces as (subject, face ids in the order given, whether the subject was created)."""
        enrolled = self.enroll_faces(collection, external_id, display_name, metadata, faces)
        return enrolled.subject, enrolled.face_ids, enrolled.created

    def enroll_faces(
        self,
        collection: str,
        external_id: str,
        display_name: str,
        metadata: Mapping[str, Any] | None,
        faces: Sequence[NewFace],
    ) -> EnrolledFaces:
        """Adds faces to a subject, creating it when new, all in one transaction: every face lands or none does.

        On an existing subject a non-empty display name or metadata replaces the stored one. A face whose photo
        (source_sha256) the subject already has is not stored again: its id is the existing face's. Returns the
        subject with all its faces, the face ids in the order given, which were duplicates, and whether the
        subject was created.
        """
        assert _fits(external_id, MAX_EXTERNAL_ID), "checked by requests.subject_id"
        assert len(display_name) <= MAX_DISPLAY_NAME and _storable(display_name), "checked by requests.display_name"
        assert faces, "requests.enroll_photos refuses an enrollment without photos"
        encoded = [_embedding_bytes(face.embedding) for face in faces]
        for _attempt in range(3):
            try:
                return self._add_faces_once(collection, external_id, display_name, metadata, faces, encoded)
            except _SubjectRace:
                continue
        raise AlreadyExists(f"subject {external_id!r} is being changed by another request; retry")

    def face_digests(self, collection: str, external_id: str, digests: Iterable[str]) -> dict[str, int]:
        """Which of these photo digests the subject already has a face of: digest -> face id (none when the
        subject does not exist yet)."""
        wanted = sorted(set(digests))
        with self.transaction() as session:
            found = self._collection(session, collection)
            subject = session.scalar(
                select(Subject.id).where(Subject.collection_id == found.id, Subject.external_id == external_id)
            )
            if subject is None or not wanted:
                return {}
            rows = session.execute(
                select(Face.source_sha256, Face.id).where(Face.subject_id == subject, Face.source_sha256.in_(wanted))
            )
            return {str(digest): int(face_id) for digest, face_id in rows}

    def _add_faces_once(
        self,
        collection_name: str,
        external_id: str,
        display_name: str,
        metadata: Mapping[str, Any] | None,
        faces: Sequence[NewFace],
        encoded: list[tuple[bytes, int]],
    ) -> EnrolledFaces:
        with self.transaction() as session:
            collection = self._collection(session, collection_name)
            self._check_embeddings(session, collection, faces, encoded)
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
            digests = [face.source_sha256 for face in faces if face.source_sha256]
            known: dict[str, int] = {}
            if digests and not created:
                rows_known = session.execute(
                    select(Face.source_sha256, Face.id).where(
                        Face.subject_id == subject.id, Face.source_sha256.in_(sorted(set(digests)))
                    )
                )
                known = {str(digest): int(face_id) for digest, face_id in rows_known}
            fresh: dict[str, Face] = {}
            rows: list[Face] = []
            placed: list[Face | int] = []  # per face given: its new row, or the id of the face it duplicates
            for face, blob_dim in zip(faces, encoded, strict=True):
                digest = face.source_sha256
                if digest and digest in known:
                    placed.append(known[digest])
                elif digest and digest in fresh:
                    placed.append(fresh[digest])
                else:
                    row = Face(**_face_values(face, blob_dim, subject.id, collection.id))
                    rows.append(row)
                    placed.append(row)
                    if digest:
                        fresh[digest] = row
            session.add_all(rows)
            try:
                session.flush()
            except IntegrityError:
                if not fresh:
                    raise
                raise _SubjectRace from None  # another request may have stored one of these photos: look again
            new_ids = [row.id for row in rows]
            self._count(session, collection.id, subjects=int(created), faces=len(rows), pending=len(rows))
            all_faces = session.scalars(select(Face).where(Face.subject_id == subject.id).order_by(Face.id)).all()
            record = _subject_record(collection.name, subject, all_faces)
            if new_ids:
                self._log(session, collection.id, collection.name, "added", new_ids)
            # A duplicate: of a face stored before, or of an earlier photo of this same call.
            duplicate = [isinstance(item, int) or placed.index(item) != at for at, item in enumerate(placed)]
            face_ids = [item if isinstance(item, int) else item.id for item in placed]
            return EnrolledFaces(record, face_ids, duplicate, created)

    @staticmethod
    def _check_embeddings(
        session: Session, collection: Collection, faces: Sequence[NewFace], encoded: Sequence[tuple[bytes, int]]
    ) -> None:
        """Refuses faces of another profile, or of another dimension than the collection's stored ones."""
        dimensions = {dimension for _, dimension in encoded}
        assert len(dimensions) == 1, "one profile embeds every face alike"
        for face in faces:
            if face.profile != collection.profile:
                raise InvalidInput(
                    f"collection {collection.name!r} holds {collection.profile} embeddings, not {face.profile}"
                )
        (dimension,) = dimensions
        stored = session.scalar(select(Face.dimension).where(Face.collection_id == collection.id).limit(1))
        if stored is not None and stored != dimension:
            raise InvalidInput(f"collection {collection.name!r} holds {stored}-dimensional embeddings, not {dimension}")

    def add_subjects_bulk(
        self, collection: str, subjects: Iterable[tuple[str, str, Sequence[NewFace]]], chunk: int = BULK_CHUNK
    ) -> list[int]:
        """Adds new subjects (external id, display name, faces), `chunk` of them per transaction, with multi-row
        inserts: synthetic galleries for the benchmarks, and bulk imports. Each chunk lands whole or not at all;
        a subject that already exists refuses its chunk (AlreadyExists) and the chunks before it stay. Returns
        the new face ids in the order given."""
        assert chunk >= 1
        face_ids: list[int] = []
        rows = iter(subjects)
        while batch := list(itertools.islice(rows, chunk)):
            try:
                with self.transaction() as session:
                    face_ids += self._add_subjects_chunk(session, self._collection(session, collection), batch)
            except IntegrityError:
                raise AlreadyExists(
                    f"a subject among {shown(batch[0][0])} .. {shown(batch[-1][0])} already exists in collection "
                    f"{shown(collection)}"
                ) from None
        return face_ids

    def _add_subjects_chunk(
        self, session: Session, collection: Collection, batch: Sequence[tuple[str, str, Sequence[NewFace]]]
    ) -> list[int]:
        """One chunk of add_subjects_bulk, in the caller's transaction: its subjects, their faces, the counters."""
        faces = [face for _, _, subject_faces in batch for face in subject_faces]
        encoded = [_embedding_bytes(face.embedding) for face in faces]
        for external_id, display_name, _ in batch:
            assert _fits(external_id, MAX_EXTERNAL_ID), "checked by requests.subject_id"
            assert len(display_name) <= MAX_DISPLAY_NAME and _storable(display_name), "as requests.display_name"
        if faces:
            self._check_embeddings(session, collection, faces, encoded)
        subject_ids = session.scalars(
            insert(Subject).returning(Subject.id, sort_by_parameter_order=True),
            [
                {"collection_id": collection.id, "external_id": external_id, "display_name": name, "metadata_": {}}
                for external_id, name, _ in batch
            ],
        ).all()
        owners = [subject_id for subject_id, (_, _, own) in zip(subject_ids, batch, strict=True) for _ in own]
        new_ids: list[int] = []
        if faces:
            new_ids = list(
                session.scalars(
                    insert(Face).returning(Face.id, sort_by_parameter_order=True),
                    [
                        _face_values(face, blob_dim, owner, collection.id)
                        for face, blob_dim, owner in zip(faces, encoded, owners, strict=True)
                    ],
                )
            )
        self._count(session, collection.id, subjects=len(batch), faces=len(new_ids), pending=len(new_ids))
        if new_ids:
            self._log(session, collection.id, collection.name, "added", new_ids)
        return new_ids

    def get_subject(self, collection: str, external_id: str) -> SubjectRecord:
        with self.transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            faces = session.scalars(select(Face).where(Face.subject_id == subject.id).order_by(Face.id)).all()
            return _subject_record(found.name, subject, faces)

    def list_subjects(
        self, collection: str, page_size: int, after: int = 0, max_bytes: int = 1 << 24, query: str = ""
    ) -> SubjectPage:
        """One page of subjects (with their faces) in creation order, those after the position `after` (0: from the
        first), with the position the next page starts after. Keyset pagination: pages stay correct while subjects
        come and go. A query keeps the subjects whose ID or display name contains it, ignoring case (and the total
        counts those).

        A page also ends early once its subjects add up to about max_bytes (what a reply may carry), so a page fits
        in one message whatever the rows hold; it always holds at least one subject.
        """
        assert 1 <= page_size <= MAX_PAGE_SIZE, "checked by argus.paging.page_size"
        with self.transaction() as session:
            found = self._collection(session, collection)
            matching = [Subject.collection_id == found.id]
            if query:
                # LIKE's wildcards in the query are matched as themselves (autoescape).
                matching.append(
                    or_(
                        func.lower(Subject.external_id).contains(query.lower(), autoescape=True),
                        func.lower(Subject.display_name).contains(query.lower(), autoescape=True),
                    )
                )
            subjects = session.scalars(
                select(Subject)
                .where(*matching, Subject.id > after)
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
            after_last = subjects[len(records) - 1].id if more and records else None
            total = found.subject_count
            if query:
                total = session.scalar(select(func.count(Subject.id)).where(*matching)) or 0
            return SubjectPage(records, after_last, total)

    def face_crop(self, collection: str, face_id: int) -> bytes:
        """The stored crop (PNG) of one face of the collection."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            row = session.execute(
                select(Face.face_crop).where(Face.id == face_id, Face.collection_id == found.id)
            ).first()
            if row is None:
                raise NotFound(f"face {face_id} does not exist in collection {found.name!r}")
            if row.face_crop is None:
                raise NotFound(f"face {face_id} has no stored crop (faces enrolled with ARGUS_KEEP_FACE_CROPS off)")
            return bytes(row.face_crop)

    def delete_face(self, collection: str, face_id: int) -> FaceRecord:
        """Removes one face; its subject stays, even with no faces left."""
        with self.transaction() as session:
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
            self._count(session, found.id, faces=-1, pending=-int(face.pending_embedding is None))
            self._log(session, found.id, found.name, "removed", [face_id])
            return record

    def delete_subject(self, collection: str, external_id: str) -> list[int]:
        """Removes a subject and (by cascade) its faces; returns the removed face ids for the index."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            rows = session.execute(
                select(Face.id, Face.pending_embedding.is_(None)).where(Face.subject_id == subject.id).order_by(Face.id)
            ).all()
            session.execute(delete(Subject).where(Subject.id == subject.id))
            awaiting = sum(1 for _, is_awaiting in rows if is_awaiting)
            self._count(session, found.id, subjects=-1, faces=-len(rows), pending=-awaiting)
            if rows:
                self._log(session, found.id, found.name, "removed", [int(face_id) for face_id, _ in rows])
            return [int(face_id) for face_id, _ in rows]

    # What the index needs.

    def embeddings(self, collection: str) -> tuple[np.ndarray, np.ndarray]:
        """Every face of a collection: int64 ids and a float32 (N, d) matrix, (0, 0) when empty."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dimension).where(Face.collection_id == found.id).order_by(Face.id)
            )
            return _stack(rows.all())

    # What each replica's follower reads (replication.py).

    @contextmanager
    def _consistent_read(self) -> Iterator[Session]:
        """A read-only transaction whose statements all see one snapshot on PostgreSQL (REPEATABLE READ). SQLite's
        reads are not one snapshot, so every caller reads the change position first: the data then reflects at
        least that position, and replaying a change the data already reflects is harmless."""
        with unavailable_when_down(), self._sessions.begin() as session:
            if self.backend == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @staticmethod
    def _position(session: Session) -> int:
        return int(session.scalar(select(func.max(Change.id))) or 0)

    def change_bounds(self) -> tuple[int, int]:
        """(oldest, newest) change id the log keeps; (0, 0) while it is empty."""
        with self.transaction() as session:
            oldest, newest = session.execute(select(func.min(Change.id), func.max(Change.id))).one()
            return int(oldest or 0), int(newest or 0)

    def changes_after(self, position: int, limit: int) -> list[ChangeRecord]:
        """The changes after this position, in sequence order, at most `limit`."""
        with self.transaction() as session:
            rows = session.scalars(select(Change).where(Change.id > position).order_by(Change.id).limit(limit))
            return [ChangeRecord(c.id, c.collection_id, c.collection, c.kind, c.face_id) for c in rows]

    def collections_at(self) -> tuple[int, dict[int, tuple[str, str]]]:
        """The change position and every collection then, by id: (name, profile)."""
        with self._consistent_read() as session:
            position = self._position(session)
            rows = session.execute(select(Collection.id, Collection.name, Collection.profile)).all()
            return position, {int(i): (name, profile) for i, name, profile in rows}

    @contextmanager
    def collection_faces(self, collection_id: int) -> Iterator[CollectionFaces | None]:
        """Every face of the collection and the change position they reflect, in one consistent read held open
        while the block runs: what an index is rebuilt from. The faces stream in chunks (a million of them are a
        GB), none held by the read once consumed. None when the collection no longer exists."""
        with self._consistent_read() as session:
            position = self._position(session)
            found = session.get(Collection, collection_id)
            if found is None:
                yield None
                return
            yield CollectionFaces(found.id, found.name, found.profile, position, self._face_chunks(session, found.id))

    def _face_chunks(self, session: Session, collection_id: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The collection's (ids, stored vectors), FACE_CHUNK faces at a time, in the session's transaction. On
        PostgreSQL through a binary COPY parsed in bulk (pgcopy.py; measured at 1M faces: about 3 s, against 15 s
        for the same rows as a query's text results, whose byteas travel as hex)."""
        if self.backend != "postgresql":
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dimension)
                .where(Face.collection_id == collection_id)
                .execution_options(yield_per=FACE_CHUNK)
            )
            for partition in rows.partitions():
                yield _stack(partition)
            return
        import psycopg.sql

        copy_out = psycopg.sql.SQL(
            "COPY (SELECT id, embedding, dimension FROM {} WHERE collection_id = {}) TO STDOUT (FORMAT BINARY)"
        ).format(psycopg.sql.Identifier(Face.__tablename__), psycopg.sql.Literal(collection_id))
        connection = session.connection().connection.driver_connection
        assert connection is not None, "a session's connection is open"
        with connection.cursor() as cursor, cursor.copy(copy_out) as copy:
            yield from face_chunks(copy, FACE_CHUNK)

    def faces_by_id(self, collection_id: int, profile: str, face_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Those of these faces still in the collection and embedded for this profile: ids and stored vectors. A
        face since re-embedded for another profile is left out; the change that switched it reloads the index."""
        rows: list[tuple[int, bytes, int]] = []
        with self.transaction() as session:
            for start in range(0, len(face_ids), _IN_CHUNK):
                chunk = list(face_ids[start : start + _IN_CHUNK])
                found = session.execute(  # by primary key alone, as templates_of_faces says why
                    select(Face.id, Face.embedding, Face.dimension, Face.collection_id, Face.profile)
                    .where(Face.id.in_(chunk))
                    .order_by(Face.id)
                )
                rows += [
                    (int(face_id), blob, dimension)
                    for face_id, blob, dimension, owner, embedded_for in found
                    if owner == collection_id and embedded_for == profile
                ]
        return _stack(rows)

    def prune_changes(self, before: datetime) -> int:
        """Forgets the changes logged before this time, never the newest (it keeps the position). A replica whose
        position is older than what is kept rebuilds from the faces instead. Returns how many went."""
        with self.transaction() as session:
            newest = self._position(session)
            result = session.execute(delete(Change).where(Change.created_at < before, Change.id < newest))
            return cast("CursorResult[Any]", result).rowcount or 0

    # Re-embedding a collection for another profile, from the stored face crops.

    def start_reembedding(self, collection: str, profile: str) -> CollectionRecord:
        """Marks the collection as moving to `profile` and forgets any earlier, unfinished re-embedding. Refused when
        an enrolled face has no stored crop (it could not be re-embedded). Faces feedback added (they keep no crop)
        are retired when the profile really changes: the template regrows from the decisions made on the new one."""
        assert _fits(profile, MAX_PROFILE_NAME), "a known profile's name"
        with self.transaction() as session:
            found = self._collection(session, collection)
            if profile != found.profile:
                retired = session.scalars(
                    select(Face.id).where(
                        Face.collection_id == found.id, Face.origin == FEEDBACK, Face.face_crop.is_(None)
                    )
                ).all()
                if retired:
                    session.execute(delete(Face).where(Face.id.in_(retired)))
                    self._count(session, found.id, faces=-len(retired))
                    self._log(session, found.id, found.name, "removed", [int(face_id) for face_id in retired])
                    session.refresh(found)
            without_crop = session.scalar(
                select(func.count(Face.id)).where(Face.collection_id == found.id, Face.face_crop.is_(None))
            )
            if without_crop:
                raise InvalidInput(
                    f"{without_crop} face(s) of collection {collection!r} were enrolled without a stored crop "
                    "(ARGUS_KEEP_FACE_CROPS was off), so they cannot be re-embedded; delete and re-enroll them first"
                )
            session.execute(
                update(Face).where(Face.collection_id == found.id).values(pending_embedding=None, pending_models=None)
            )
            pending = None if profile == found.profile else profile
            # Every face awaits its new embedding: as many as the row counts when it is updated.
            session.execute(
                update(Collection)
                .where(Collection.id == found.id)
                .values(pending_profile=pending, pending_count=Collection.face_count if pending else 0)
                .execution_options(synchronize_session=False)
            )
            session.refresh(found)
            return _collection_record(found)

    def cancel_reembedding(self, collection: str) -> None:
        with self.transaction() as session:
            found = self._collection(session, collection)
            session.execute(
                update(Face).where(Face.collection_id == found.id).values(pending_embedding=None, pending_models=None)
            )
            found.pending_profile = None
            found.pending_count = 0

    def crops_to_reembed(
        self, collection: str, limit: int
    ) -> tuple[str | None, list[tuple[int, bytes, list[list[float]] | None]]]:
        """The pending profile and up to `limit` faces still to re-embed for it: (face id, crop PNG, crop
        landmarks or None), oldest first. No pending profile: (None, []). A face enrolled without a crop since the
        re-embedding started comes with an empty PNG, which the embedder refuses: that abandons the re-embedding."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            if found.pending_profile is None:
                return None, []
            rows = session.execute(
                select(Face.id, Face.face_crop, Face.crop_landmarks)
                .where(Face.collection_id == found.id, Face.pending_embedding.is_(None))
                .order_by(Face.id)
                .limit(limit)
            ).all()
            return found.pending_profile, [(int(i), crop or b"", points) for i, crop, points in rows]

    def store_reembedded(
        self, collection: str, profile: str, faces: Sequence[tuple[int, np.ndarray, tuple[str, ...]]]
    ) -> int:
        """Keeps new embeddings for the pending profile; ignored if the collection has since moved to another
        pending profile (or none), and for a face that already has its new one. Returns how many were stored."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            if found.pending_profile != profile:
                return 0
            stored = 0
            for face_id, vector, models in faces:
                blob, _ = _embedding_bytes(vector)
                result = session.execute(
                    update(Face)
                    .where(Face.id == face_id, Face.collection_id == found.id, Face.pending_embedding.is_(None))
                    .values(pending_embedding=blob, pending_models=",".join(models))
                )
                stored += cast("CursorResult[Any]", result).rowcount or 0
            self._count(session, found.id, pending=-stored)
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
        with self.transaction() as session:
            found = self._moving_to(session, collection, profile)
            if found is None:
                return None
            rows = session.execute(
                select(Face.id, Face.pending_embedding, Face.dimension)
                .where(Face.collection_id == found.id)
                .order_by(Face.id)
            ).all()
            stacked = []
            for face_id, blob, _ in rows:
                assert blob is not None, "_moving_to found every face's pending embedding"
                stacked.append((int(face_id), blob, len(blob) // EMBEDDING_DTYPE.itemsize))
            return _stack(stacked)

    def finish_reembedding(self, collection: str, profile: str, dimension: int) -> bool:
        """Switches the collection to the pending profile in one transaction: every face's pending embedding
        becomes its embedding. False (and nothing changed) when some face still lacks one."""
        with self.transaction() as session:
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
            found.pending_count = 0
            self._log(session, found.id, found.name, "reloaded")
            # A cosine threshold means nothing across profiles (dlib's raw strangers score 0.83): the new profile's
            # calibrated one applies from now on.
            found.threshold = None
            return True

    def reembedding_lease(self) -> Lease:
        """The lease the re-embedding worker holds while it works, so that one replica does the work (lease.py)."""
        return Lease(self.engine, REEMBEDDING_LEASE_KEY)

    def reembedding_collections(self) -> list[tuple[str, str]]:
        """(collection, pending profile) of every collection being re-embedded: to resume after a restart."""
        with self.transaction() as session:
            rows = session.execute(
                select(Collection.name, Collection.pending_profile).where(Collection.pending_profile.is_not(None))
            ).all()
            return [(name, pending) for name, pending in rows if pending is not None]

    # Templates and feedback.

    @staticmethod
    def _templates(session: Session, profile: str, subjects: Sequence[Subject]) -> dict[str, SubjectTemplate]:
        """Each subject's faces and its impostor examples of this profile, in two queries."""
        ids = [subject.id for subject in subjects]
        faces: dict[int, list[tuple[int, bytes, int, str]]] = {i: [] for i in ids}
        impostors: dict[int, list[tuple[int, bytes, int]]] = {i: [] for i in ids}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = session.execute(
                select(Face.subject_id, Face.id, Face.embedding, Face.dimension, Face.origin)
                .where(Face.subject_id.in_(chunk))
                .order_by(Face.id)
            )
            for owner, face_id, blob, dimension, origin in rows:
                faces[owner].append((int(face_id), blob, dimension, origin))
            examples = session.execute(
                select(
                    ImpostorExample.subject_id, ImpostorExample.id, ImpostorExample.embedding, ImpostorExample.dimension
                )
                .where(ImpostorExample.subject_id.in_(chunk), ImpostorExample.profile == profile)
                .order_by(ImpostorExample.id)
            )
            for owner, example_id, blob, dimension in examples:
                impostors[owner].append((int(example_id), blob, dimension))
        templates = {}
        for subject in subjects:
            own = faces[subject.id]
            face_ids, stored = _stack([(i, blob, dim) for i, blob, dim, _ in own])
            templates[subject.external_id] = SubjectTemplate(
                profile=profile,
                external_id=subject.external_id,
                display_name=subject.display_name,
                face_ids=face_ids,
                stored=stored,
                origins=tuple(origin for *_, origin in own),
                impostors=_stack(impostors[subject.id])[1],
                row_id=subject.id,
            )
        return templates

    def subject_template(self, collection: str, external_id: str) -> SubjectTemplate:
        """One subject as 1:1 verification scores it (NotFound for an unknown subject)."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            return self._templates(session, found.profile, [subject])[external_id]

    def templates_of_faces(self, collection: str, face_ids: Iterable[int]) -> dict[int, SubjectTemplate]:
        """The subjects owning these faces, as 1:K scores them: face id -> its subject's template, for the faces
        still in the collection (a face deleted since a search is left out)."""
        wanted = sorted({int(face_id) for face_id in face_ids})
        with self.transaction() as session:
            found = self._collection(session, collection)
            owner_of: dict[int, int] = {}
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                # By primary key alone, the collection checked here: with the collection in the WHERE clause,
                # PostgreSQL may AND in the collection's index (on statistics not yet updated after a bulk load),
                # a scan that grows with the collection: measured 80 ms at 1M faces, against well under 1 ms.
                rows = session.execute(select(Face.id, Face.collection_id, Face.subject_id).where(Face.id.in_(chunk)))
                owner_of.update({int(f): int(s) for f, c, s in rows if c == found.id})
            subjects = session.scalars(select(Subject).where(Subject.id.in_(sorted(set(owner_of.values()))))).all()
            by_row = {subject.id: subject for subject in subjects}
            templates = self._templates(session, found.profile, subjects)
            return {face: templates[by_row[owner].external_id] for face, owner in owner_of.items()}

    def decision_writer(self, *, wait_s: float, backlog: int) -> BoundedWriter:
        """Writes decisions kept for feedback (decision_row) without making an answer wait on a busy database, as
        the audit trail's writer does; a decision whose subject was deleted before it was written is dropped."""
        return BoundedWriter(
            self.engine,
            Base.metadata.tables[Decision.__tablename__],
            wait_s=wait_s,
            backlog=backlog,
            default_busy_timeout_s=SQLITE_BUSY_TIMEOUT_S,
            kind="feedback decision",
            gauge=None,
            drop_rejected=True,
        )

    def decision(self, collection: str, decision_id: str) -> DecisionRecord:
        """A decision of this collection kept for feedback and not expired; NotFound otherwise."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            row = session.execute(
                select(Decision, Subject.external_id)
                .outerjoin(Subject, Subject.id == Decision.subject_id)
                .where(Decision.id == decision_id, Decision.collection_id == found.id, Decision.expires_at > utcnow())
            ).first()
            if row is None:
                raise NotFound(
                    f"decision {shown(decision_id)} is not one of collection {found.name!r} kept for feedback: it "
                    "expired (ARGUS_FEEDBACK_RETENTION_S), its subject was deleted, or it was never made"
                )
            kept, external_id = row
            _, vectors = _stack([(0, kept.embedding, kept.dimension)])
            return DecisionRecord(
                decision_id=kept.id,
                action=kept.action,
                subject=external_id or "",
                matched=kept.matched,
                embedding=vectors[0],
                profile=kept.profile,
                models=tuple(kept.models.split(",")),
                box=(kept.x1, kept.y1, kept.x2, kept.y2),
                detection_score=kept.detection_score,
                face_size=kept.face_size,
                sharpness=kept.sharpness,
                liveness=kept.liveness,
            )

    def prune_decisions(self) -> int:
        """Forgets the decisions past their retention; returns how many went."""
        with self.transaction() as session:
            result = session.execute(delete(Decision).where(Decision.expires_at <= utcnow()))
            return cast("CursorResult[Any]", result).rowcount or 0

    def add_feedback_face(self, collection: str, external_id: str, face: NewFace, retire: int | None) -> int:
        """Adds a confirmed probe's face to the subject, retiring the feedback face `retire` in the same
        transaction (the template's cap). Returns the new face's id."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            encoded = _embedding_bytes(face.embedding)
            self._check_embeddings(session, found, [face], [encoded])
            row = Face(**_face_values(face, encoded, subject.id, found.id))
            session.add(row)
            session.flush()
            retired = 0
            if retire is not None:
                result = session.execute(
                    delete(Face).where(Face.id == retire, Face.subject_id == subject.id, Face.origin == face.origin)
                )
                retired = cast("CursorResult[Any]", result).rowcount or 0
            self._count(session, found.id, faces=1 - retired, pending=1 - retired)
            self._log(session, found.id, found.name, "added", [row.id])
            if retired:
                self._log(session, found.id, found.name, "removed", [int(retire or 0)])
            return int(row.id)

    def add_impostor(self, collection: str, external_id: str, decision: DecisionRecord, keep: int) -> int:
        """Records a rejected probe as an impostor example of the subject, keeping the newest `keep` of them.
        Returns how many the subject has now."""
        with self.transaction() as session:
            found = self._collection(session, collection)
            subject = self._subject(session, found, external_id)
            blob, dimension = _embedding_bytes(decision.embedding)
            session.add(
                ImpostorExample(
                    subject_id=subject.id,
                    embedding=blob,
                    dimension=dimension,
                    profile=decision.profile,
                    decision_id=decision.decision_id,
                )
            )
            session.flush()
            ids = session.scalars(
                select(ImpostorExample.id).where(ImpostorExample.subject_id == subject.id).order_by(ImpostorExample.id)
            ).all()
            if len(ids) > keep:
                session.execute(delete(ImpostorExample).where(ImpostorExample.id.in_(ids[: len(ids) - keep])))
            return min(len(ids), keep)
