"""The face database's behaviour: enrollment, 1:1 verification, 1:K identification, deletion. No gRPC here.

The SQL database is the source of truth; the FAISS index is a cache derived from it. Every change is committed to
the database first and applied to the index second, under the collection's lock, and every match found in the
index is checked against the database before it is returned, so a deleted face can never be reported.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from argus.config import Settings
from argus.errors import ArgusError, DependencyUnavailable, InvalidInput, ModelUnavailable
from argus.services.facedb import audit
from argus.services.facedb.audit import AuditLog
from argus.services.facedb.calibration import Calibration
from argus.services.facedb.index import FaceIndex, IndexRegistry
from argus.services.facedb.pipeline import AnalyzedFace, FaceAnalyzer
from argus.services.facedb.storage import CollectionRecord, FaceRecord, FaceStore, NewFace, SubjectRecord

log = logging.getLogger(__name__)

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SUBJECT_ID = 128
MAX_TOP_K = 100


@dataclass(frozen=True)
class Probe:
    """The face a decision was made on, or None when the photo had no face."""

    face: AnalyzedFace | None
    faces_in_image: int


@dataclass(frozen=True)
class Decision:
    probe: Probe
    similarity: float = 0.0
    threshold: float = 0.0
    probability: float = 0.0
    best_face_id: int = 0

    @property
    def face_found(self) -> bool:
        return self.probe.face is not None

    @property
    def match(self) -> bool:
        return self.face_found and self.similarity >= self.threshold


@dataclass(frozen=True)
class Comparison:
    a: Probe
    b: Probe
    similarity: float
    threshold: float
    probability: float

    @property
    def match(self) -> bool:
        return self.a.face is not None and self.b.face is not None and self.similarity >= self.threshold


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    display_name: str
    similarity: float
    probability: float
    face_id: int


@dataclass(frozen=True)
class IdentifiedFace:
    face: AnalyzedFace
    candidates: list[Candidate]
    threshold: float

    @property
    def unknown(self) -> bool:
        return not self.candidates or self.candidates[0].similarity < self.threshold


@dataclass(frozen=True)
class Identification:
    faces: list[IdentifiedFace]
    threshold: float
    gallery_size: int


@dataclass(frozen=True)
class Enrollment:
    subject: SubjectRecord
    face_ids: list[int]
    created_subject: bool


def validate_collection_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise InvalidInput(
            f"collection name {name!r} is not valid: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_subject_id(subject_id: str) -> str:
    if not subject_id.strip():
        raise InvalidInput("subject_id is empty: give the ID your application knows this person by")
    if len(subject_id) > MAX_SUBJECT_ID:
        raise InvalidInput(f"subject_id is {len(subject_id)} characters; the limit is {MAX_SUBJECT_ID}")
    return subject_id


def validate_threshold(threshold: float) -> float:
    if not (np.isfinite(threshold) and -1.0 <= threshold <= 1.0):
        raise InvalidInput(f"threshold {threshold} is not a cosine similarity in [-1, 1]; 0 means the default")
    return threshold


def validate_top_k(top_k: int) -> int:
    if top_k == 0:
        return 1
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k {top_k} is out of range: ask for 1 to {MAX_TOP_K} candidates")
    return top_k


@dataclass
class _Locks:
    guard: threading.Lock = field(default_factory=threading.Lock)
    by_collection: dict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    def __call__(self, collection: str) -> threading.Lock:
        with self.guard:
            return self.by_collection[collection]


class FaceDatabase:
    def __init__(
        self,
        store: FaceStore,
        analyzer: FaceAnalyzer,
        calibration: Calibration,
        settings: Settings,
        indexes: IndexRegistry | None = None,
    ) -> None:
        if calibration.model != analyzer.model_ref:
            raise ModelUnavailable(
                f"the calibration is for {calibration.model} but the embedder runs {analyzer.model_ref}; "
                "run `argus calibrate` for this model or set ARGUS_CALIBRATION_FILE"
            )
        self.store = store
        self.analyzer = analyzer
        self.calibration = calibration
        self.settings = settings
        self.indexes = indexes or IndexRegistry()
        self.audit = AuditLog(store)
        self._lock = _Locks()
        self._stale: set[str] = set()  # collections whose index may lack a change the database got

    def _fresh_index(self, collection: str) -> FaceIndex:
        if collection in self._stale:
            with self._lock(collection):
                if collection in self._stale:
                    self.indexes.rebuild(collection, self.store)
                    self._stale.discard(collection)
        return self.indexes.get(collection)

    def _audit_change(self, action: str, collection: str, *, subject: str = "", detail: str = "") -> None:
        """Audits a change already committed. If the audit write fails the change still stands, so the caller must
        not be told it failed (a retry would enroll twice): the event goes to the error log instead."""
        try:
            self.audit.record(action, collection, subject=subject, detail=detail)
        except ArgusError as exc:
            log.error("audit event lost (%s): %s %s %s %s", exc, action, collection, subject, detail)

    def start(self) -> None:
        """Brings the schema up to date and rebuilds every index from the database."""
        self.store.migrate()
        self.indexes.rebuild_all(self.store)

    # --- collections ----------------------------------------------------------------------------------------

    def create_collection(self, name: str, threshold: float = 0.0) -> CollectionRecord:
        validate_collection_name(name)
        threshold = validate_threshold(threshold)
        with self._lock(name):
            record = self.store.create_collection(name, threshold or None, self.analyzer.model_ref)
            self.indexes.rebuild(name, self.store)
        return record

    def collection(self, name: str) -> CollectionRecord:
        record = self.store.get_collection(name)
        if record.model != self.analyzer.model_ref:
            raise ModelUnavailable(
                f"collection {name!r} holds {record.model} embeddings but the embedder runs "
                f"{self.analyzer.model_ref}; they cannot be compared"
            )
        return record

    def threshold_of(self, record: CollectionRecord) -> float:
        """The 1:1 threshold: the collection's own, or the calibrated one."""
        return record.threshold if record.threshold is not None else self.calibration.threshold

    def identify_threshold_of(self, record: CollectionRecord) -> float:
        """The 1:K threshold rises with the number of people enrolled: the more people, the likelier a stranger
        resembles one of them. It keeps the false-accept rate at ARGUS_OPEN_SET_FAR, and never goes below the
        1:1 threshold."""
        open_set = self.calibration.identify_threshold(record.subject_count, self.settings.open_set_far)
        return max(self.threshold_of(record), open_set)

    def list_collections(self) -> list[CollectionRecord]:
        return self.store.list_collections()

    def delete_collection(self, name: str) -> tuple[int, int]:
        with self._lock(name):
            counts = self.store.delete_collection(name)
            self.indexes.drop(name)
        self._audit_change(audit.DELETE_COLLECTION, name, detail=f"{counts[0]} subjects, {counts[1]} faces")
        return counts

    # --- enrollment -----------------------------------------------------------------------------------------

    def _usable_face(self, index: int, faces: list[AnalyzedFace], take_largest: bool) -> AnalyzedFace:
        where = f"image {index}"
        if not faces:
            raise InvalidInput(f"{where}: no face found; send a photo where the face is clearly visible")
        if len(faces) > 1 and not take_largest:
            raise InvalidInput(
                f"{where}: {len(faces)} faces found; send a photo of one person, or set take_largest_face"
            )
        face = faces[0]  # largest first
        if face.face_size < self.settings.min_face_size:
            raise InvalidInput(
                f"{where}: the face is {face.face_size:.0f} px; at least {self.settings.min_face_size} px is needed"
            )
        if face.sharpness < self.settings.min_sharpness:
            raise InvalidInput(
                f"{where}: the face is too blurry (sharpness {face.sharpness:.1f}, "
                f"minimum {self.settings.min_sharpness:g}); send a sharper photo"
            )
        return face

    def enroll(
        self,
        collection: str,
        subject_id: str,
        images: list[bytes],
        *,
        display_name: str = "",
        metadata: dict[str, Any] | None = None,
        take_largest_face: bool = False,
    ) -> Enrollment:
        """All images are checked before anything is stored: either every face is enrolled or none is."""
        validate_subject_id(subject_id)
        if not images:
            raise InvalidInput("no images to enroll; one photo is enough")
        if len(images) > self.settings.max_images_per_request:
            raise InvalidInput(
                f"{len(images)} images in one enrollment; the limit is {self.settings.max_images_per_request}"
            )
        self.collection(collection)
        faces = []
        for index, data in enumerate(images):
            try:
                found = self.analyzer.analyze(data, keep_aligned=True)
            except InvalidInput as exc:
                raise InvalidInput(f"image {index}: {exc}") from None
            faces.append(self._usable_face(index, found, take_largest_face))
        model_name, _, model_version = self.analyzer.model_ref.partition("@")
        new_faces = [
            NewFace(
                embedding=face.embedding,
                model_name=model_name,
                model_version=model_version,
                box=face.box,
                detection_score=face.score,
                face_size=face.face_size,
                sharpness=face.sharpness,
                aligned_crop=face.aligned_png or None,
            )
            for face in faces
        ]
        with self._lock(collection):
            try:
                subject, face_ids, created = self.store.add_faces(
                    collection, subject_id, display_name, metadata, new_faces
                )
            except DependencyUnavailable:
                # The connection dropped: the commit may or may not have landed. The index is rebuilt from the
                # database before it is next searched, so it agrees with whatever the database now holds.
                self._stale.add(collection)
                raise
            self.indexes.get(collection).add(
                np.asarray(face_ids, dtype=np.int64), np.stack([face.embedding for face in faces])
            )
        self._audit_change(audit.ENROLL, collection, subject=subject_id, detail=f"faces {face_ids}")
        return Enrollment(subject, face_ids, created)

    # --- decisions ------------------------------------------------------------------------------------------

    def _probe(self, image: bytes) -> tuple[Probe, np.ndarray | None]:
        faces = self.analyzer.analyze(image)
        if not faces:
            return Probe(None, 0), None
        return Probe(faces[0], len(faces)), faces[0].embedding

    def verify(self, collection: str, subject_id: str, image: bytes) -> Decision:
        """1:1: the probe's largest face against every face enrolled for the subject."""
        validate_subject_id(subject_id)
        record = self.collection(collection)
        face_ids, vectors = self.store.subject_faces(collection, subject_id)  # NotFound for an unknown subject
        threshold = self.threshold_of(record)
        probe, embedding = self._probe(image)
        if embedding is None or len(face_ids) == 0:
            decision = Decision(probe, threshold=threshold)
        else:
            similarities = vectors @ embedding
            best = int(np.argmax(similarities))
            similarity = float(similarities[best])
            probability = float(self.calibration.probability(similarity))
            decision = Decision(probe, similarity, threshold, probability, int(face_ids[best]))
        verdict = "no_face" if not decision.face_found else "match" if decision.match else "no_match"
        self.audit.record(
            audit.VERIFY,
            collection,
            subject=subject_id,
            similarity=decision.similarity if decision.face_found else None,
            threshold=threshold,
            decision=verdict,
        )
        return decision

    def compare(self, image_a: bytes, image_b: bytes, threshold: float = 0.0) -> Comparison:
        threshold = validate_threshold(threshold) or self.calibration.threshold
        probe_a, a = self._probe(image_a)
        probe_b, b = self._probe(image_b)
        if a is None or b is None:
            return Comparison(probe_a, probe_b, 0.0, threshold, 0.0)
        similarity = float(a @ b)
        return Comparison(probe_a, probe_b, similarity, threshold, float(self.calibration.probability(similarity)))

    def identify(self, collection: str, image: bytes, top_k: int = 1, threshold: float = 0.0) -> Identification:
        """1:K for every face in the photo: the best subjects, one candidate per subject, best first."""
        top_k = validate_top_k(top_k)
        record = self.collection(collection)
        threshold = validate_threshold(threshold) or self.identify_threshold_of(record)
        faces = self.analyzer.analyze(image)
        index = self._fresh_index(collection)
        if not faces or index.size == 0:
            self.audit.record(
                audit.IDENTIFY, collection, threshold=threshold, decision="no_face" if not faces else "unknown"
            )
            return Identification([IdentifiedFace(f, [], threshold) for f in faces], threshold, index.size)
        # A subject may own several faces: search deeper than top_k so that top_k distinct subjects come back.
        depth = min(index.size, top_k * 8)
        similarities, ids = index.search(np.stack([face.embedding for face in faces]), depth)
        owners = self.store.face_owners(collection, sorted({int(i) for i in ids.ravel() if i >= 0}))
        results = []
        for face, row_scores, row_ids in zip(faces, similarities, ids, strict=True):
            candidates: dict[str, Candidate] = {}
            for score, face_id in zip(row_scores, row_ids, strict=True):
                owner = owners.get(int(face_id))
                if owner is None or owner[0] in candidates:
                    continue  # deleted since the search, or a weaker face of a subject already listed
                candidates[owner[0]] = Candidate(
                    owner[0], owner[1], float(score), float(self.calibration.probability(score)), int(face_id)
                )
                if len(candidates) == top_k:
                    break
            results.append(IdentifiedFace(face, list(candidates.values()), threshold))
        for found in results:
            best = found.candidates[0] if found.candidates else None
            self.audit.record(
                audit.IDENTIFY,
                collection,
                subject="" if found.unknown or best is None else best.subject_id,
                similarity=best.similarity if best else None,
                threshold=threshold,
                decision="unknown" if found.unknown else "identified",
            )
        return Identification(results, threshold, index.size)

    # --- subjects -------------------------------------------------------------------------------------------

    def get_subject(self, collection: str, subject_id: str) -> SubjectRecord:
        validate_subject_id(subject_id)
        return self.store.get_subject(collection, subject_id)

    def list_subjects(self, collection: str, page_size: int, page_token: str) -> tuple[list[SubjectRecord], str, int]:
        if page_size == 0:
            page_size = 100
        if not 1 <= page_size <= 1000:
            raise InvalidInput(f"page_size {page_size} is out of range: 1 to 1000, or 0 for 100")
        return self.store.list_subjects(collection, page_size, page_token)

    def delete_face(self, collection: str, face_id: int) -> FaceRecord:
        with self._lock(collection):
            record = self.store.delete_face(collection, face_id)
            self.indexes.get(collection).remove(np.asarray([face_id], dtype=np.int64))
        self._audit_change(audit.DELETE_FACE, collection, subject=record.external_id, detail=f"face {face_id}")
        return record

    def delete_subject(self, collection: str, subject_id: str) -> int:
        validate_subject_id(subject_id)
        with self._lock(collection):
            face_ids = self.store.delete_subject(collection, subject_id)
            self.indexes.get(collection).remove(np.asarray(face_ids, dtype=np.int64))
        self._audit_change(audit.DELETE_SUBJECT, collection, subject=subject_id, detail=f"faces {face_ids}")
        return len(face_ids)
