"""The face database's behaviour: enrollment, 1:1 verification, 1:K identification, deletion. No gRPC here.

The SQL database is the source of truth; the FAISS index is a cache derived from it. Every change is committed to
the database first, with its row in the change log; the replica's follower (replication.py), the index's one
writer, applies it, and the change is answered once it has, so a replica reads its own writes and every other
replica follows within the follower's delay. Every match found in the index is checked against the database before
it is returned, so a deleted face can never be reported.

Arguments arrive checked (requests.py, at the service boundary), and each change or decision names the `Actor` it
is audited under: the server layer says who is calling, this module never asks the transport.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from argus.analysis import AnalyzedFace, FaceAnalyzer
from argus.config import Settings
from argus.errors import ArgusError, DependencyUnavailable, InvalidInput, ModelUnavailable, Overloaded
from argus.profiles import PROFILES, EmbeddingProfile, get_profile
from argus.services.facedb import audit
from argus.services.facedb.audit import NO_KEY, Actor, AuditLog
from argus.services.facedb.calibration import Calibration, Calibrations
from argus.services.facedb.index import FaceIndex, IndexKinds, IndexRegistry
from argus.services.facedb.replication import Follower, snapshot_folder
from argus.services.facedb.storage import (
    CollectionRecord,
    FaceRecord,
    FaceStore,
    NewFace,
    SubjectPage,
    SubjectRecord,
)

log = logging.getLogger(__name__)

# Longest a change waits for this replica's follower to apply it before it is answered anyway (it is committed); the
# collection's next search then waits for the follower to catch up with the database.
APPLY_WAIT_S = 10.0


@dataclass(frozen=True)
class Probe:
    """The face a decision was made on, or None when the photo had no face."""

    face: AnalyzedFace | None
    faces_in_image: int


@dataclass(frozen=True)
class Liveness:
    """What a request requires of its faces' liveness, and the bar: a face below it is taken for a spoof."""

    required: bool
    threshold: float

    def spoof(self, face: AnalyzedFace | None) -> bool:
        return self.required and face is not None and face.liveness is not None and face.liveness < self.threshold


NOT_REQUIRED = Liveness(False, 0.0)


@dataclass(frozen=True)
class Decision:
    probe: Probe
    similarity: float = 0.0
    threshold: float = 0.0
    probability: float = 0.0
    best_face_id: int = 0
    spoof: bool = False  # the probe face's liveness was below the bar: nothing was compared
    liveness_threshold: float = 0.0  # the bar, where liveness was required

    @property
    def face_found(self) -> bool:
        return self.probe.face is not None

    @property
    def match(self) -> bool:
        return self.face_found and not self.spoof and self.similarity >= self.threshold


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
    spoof: bool = False  # its liveness was below the bar: not searched, neither identified nor unknown

    @property
    def unknown(self) -> bool:
        return not self.spoof and (not self.candidates or self.candidates[0].similarity < self.threshold)


@dataclass(frozen=True)
class Identification:
    faces: list[IdentifiedFace]  # largest first, at most ARGUS_MAX_FACES_PER_IMAGE
    threshold: float
    gallery_size: int
    faces_found: int  # in the photo, identified or not


@dataclass(frozen=True)
class Enrollment:
    subject: SubjectRecord
    face_ids: list[int]
    created_subject: bool


@dataclass(frozen=True)
class ProfileStatus:
    """A profile as ListProfiles shows it: calibration None while it has none this service can load."""

    profile: EmbeddingProfile
    is_default: bool
    calibration: Calibration | None


@dataclass
class _Locks:
    guard: threading.Lock = field(default_factory=threading.Lock)
    by_collection: dict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    def __call__(self, collection: str) -> threading.Lock:
        with self.guard:
            return self.by_collection[collection]


@dataclass(frozen=True)
class EmbeddedFaces:
    """The faces of a photo embedded for one profile: as analysed, and their fused vectors (one row each), with
    how many the detector found (more than were embedded in a crowd: see ARGUS_MAX_FACES_PER_IMAGE)."""

    faces: list[AnalyzedFace]
    vectors: np.ndarray
    found: int


def _liveness(face: AnalyzedFace | None) -> str:
    """A face's liveness as the audit trail and refusals word it; empty when it was not scored."""
    return "" if face is None or face.liveness is None else f"liveness {face.liveness:.3f}"


class FaceDatabase:
    def __init__(
        self,
        store: FaceStore,
        analyzer: FaceAnalyzer,
        settings: Settings,
        calibrations: Calibrations | None = None,
        indexes: IndexRegistry | None = None,
    ) -> None:
        self.store = store
        self.analyzer = analyzer
        self.settings = settings
        self.calibrations = calibrations or Calibrations(settings)
        self.calibrations[settings.profile]  # fail at start, not at the first call, when the default is unusable
        self.indexes = indexes or IndexRegistry(kinds=IndexKinds.of(settings))
        self.indexes.transform = self._fused
        self.follower = Follower(store, self.indexes, settings, snapshot_folder(settings, store))
        self.audit = AuditLog(store, wait_s=settings.audit_wait_s, backlog=settings.audit_backlog)
        self._lock = _Locks()
        self._stale: set[str] = set()  # collections whose index may lack a change the database got
        self.reembedding_wanted = threading.Event()  # set when a collection starts moving to another profile

    def _usable_profile(self, name: str) -> str:
        """A known profile that is calibrated and whose networks the embedder runs; refused otherwise, before any
        collection depends on it."""
        profile = get_profile(name)
        self.calibrations[profile.name]
        missing = [model for model in profile.models if model not in self.analyzer.available_models()]
        if missing:
            raise ModelUnavailable(
                f"profile {profile.name} needs {', '.join(missing)}, which the embedder does not run; add them to "
                "its ARGUS_EMBEDDER_MODELS"
            )
        return profile.name

    def _fused(self, profile: str, stored: np.ndarray) -> np.ndarray:
        return self.calibrations.fusion(profile).fuse(stored)

    def _embed(self, image: bytes, profile: str, *, keep_crop: bool = False, liveness: bool = False) -> EmbeddedFaces:
        """Detects the photo's faces (with their liveness when asked) and embeds them with the profile's models,
        checking that the embedder runs the very model versions the profile was calibrated with."""
        calibration = self.calibrations[profile]
        analyzed = self.analyzer.analyze(image, get_profile(profile).models, keep_crop=keep_crop, liveness=liveness)
        faces = analyzed.faces
        if liveness and any(face.liveness is None for face in faces):
            # Required and not scored (a detector from before liveness): refuse, never decide as if it were live.
            raise ModelUnavailable("liveness is required but the detector returned no liveness score; upgrade it")
        if not faces:
            return EmbeddedFaces([], np.empty((0, sum(calibration.dimensions)), dtype=np.float32), analyzed.found)
        if faces[0].models != calibration.models:
            raise ModelUnavailable(
                f"the embedder runs {', '.join(faces[0].models)} but profile {profile} was calibrated with "
                f"{', '.join(calibration.models)}; run `argus calibrate --profile {profile}` for these models"
            )
        vectors = self.calibrations.fusion(profile).fuse(np.stack([face.parts for face in faces]))
        return EmbeddedFaces(faces, vectors, analyzed.found)

    def _fresh_index(self, collection: str) -> FaceIndex:
        """The collection's index; one that may lack a committed change waits until the follower has caught up with
        the database (which applies whatever the database now holds)."""
        if collection in self._stale:
            self.follower.wake()
            if not self.follower.wait_for(self.store.change_bounds()[1], APPLY_WAIT_S):
                raise DependencyUnavailable(f"the index of collection {collection!r} is catching up; retry shortly")
            self._stale.discard(collection)
        return self.indexes.get(collection)

    def _applied(self, collection: str) -> None:
        """Waits until the follower has applied the change this thread just committed: an enrollment is then
        searchable, a deletion gone from the index, when the call is answered."""
        self.follower.wake()
        if not self.follower.wait_for(self.store.last_change(), APPLY_WAIT_S):
            log.warning("the index of collection %s lags its last change; its next search waits for it", collection)
            self._stale.add(collection)

    def _audit_change(self, action: str, collection: str, actor: Actor, *, subject: str = "", detail: str = "") -> None:
        """Audits a change already committed. If the audit write fails the change still stands, so the caller must
        not be told it failed (a retry would enroll twice): the event goes to the error log instead."""
        try:
            self.audit.record(action, collection, actor=actor, subject=subject, detail=detail)
        except ArgusError as exc:
            log.error("audit event lost (%s): %s %s %s %s", exc, action, collection, subject, detail)

    def start(self) -> None:
        """Brings the schema up to date and the indexes with the database (snapshots, rebuilds, catch-up), then
        follows its changes."""
        self.store.migrate()
        self.follower.start()

    def stop(self) -> None:
        """Stops following the database, saving the snapshots of the indexes (a clean shutdown)."""
        self.follower.stop()

    # --- collections ----------------------------------------------------------------------------------------

    def create_collection(
        self, name: str, threshold: float | None = None, profile: str = "", *, require_liveness: bool = False
    ) -> CollectionRecord:
        """A new, empty collection; threshold None: its profile's calibrated one, profile "": the default;
        `require_liveness`: what its requests require when they do not say."""
        profile = self._usable_profile(profile or self.settings.profile)
        record = self.store.create_collection(name, threshold, profile, require_liveness)
        self._applied(name)
        return record

    def collection(self, name: str) -> CollectionRecord:
        return self.store.get_collection(name)

    def update_collection(
        self, name: str, *, require_liveness: bool | None = None, actor: Actor = NO_KEY
    ) -> CollectionRecord:
        """Changes the settings given (None: kept), audited."""
        record = self.store.update_collection(name, require_liveness=require_liveness)
        if require_liveness is not None:
            self._audit_change(audit.UPDATE_COLLECTION, name, actor, detail=f"require_liveness {require_liveness}")
        return record

    def liveness_of(self, record: CollectionRecord, required: bool | None) -> Liveness:
        """The request's requirement (None: the collection's default) with the configured bar."""
        wanted = record.require_liveness if required is None else required
        return Liveness(True, self.settings.liveness_threshold) if wanted else NOT_REQUIRED

    def threshold_of(self, record: CollectionRecord, profile: str | None = None) -> float:
        """The 1:1 threshold: the collection's own, or the calibrated one of its profile."""
        calibration = self.calibrations[profile or record.profile]
        return record.threshold if record.threshold is not None else calibration.threshold

    def identify_threshold_of(self, record: CollectionRecord, profile: str | None = None) -> float:
        """The 1:K threshold rises with the number of people enrolled: the more people, the likelier a stranger
        resembles one of them. It keeps the false-accept rate at ARGUS_OPEN_SET_FAR, and never goes below the
        1:1 threshold."""
        calibration = self.calibrations[profile or record.profile]
        open_set = calibration.identify_threshold(record.subject_count, self.settings.open_set_far)
        return max(self.threshold_of(record, profile), open_set)

    # --- profiles -------------------------------------------------------------------------------------------

    def profiles(self) -> list[ProfileStatus]:
        """Every known profile, with its calibration where this service has one."""
        statuses = []
        for profile in PROFILES.values():
            try:
                calibration: Calibration | None = self.calibrations[profile.name]
            except ModelUnavailable:
                calibration = None
            statuses.append(ProfileStatus(profile, profile.name == self.settings.profile, calibration))
        return statuses

    def change_profile(self, name: str, profile: str, *, actor: Actor = NO_KEY) -> CollectionRecord:
        """Starts re-embedding the collection's faces for another profile from their stored crops. The collection
        keeps serving on its current profile and index until every face is done; then it switches at once. Asking
        for the current profile cancels a re-embedding in progress."""
        profile = self._usable_profile(profile)
        with self._lock(name):
            record = self.store.start_reembedding(name, profile)
        self._audit_change(audit.CHANGE_PROFILE, name, actor, detail=f"{record.profile} -> {profile}")
        self.reembedding_wanted.set()
        return record

    def finish_reembedding(self, name: str, profile: str) -> bool:
        """Switches the collection to its pending profile once every face has its new embedding: the database
        switches in one transaction, under the collection's lock so no enrollment of this replica lands in between;
        its "reloaded" change makes every replica's follower build the new index aside and swap it in. False while
        faces are still missing."""
        with self._lock(name):
            dimension = sum(self.calibrations[profile].dimensions)
            if not self.store.finish_reembedding(name, profile, dimension):
                return False
        self._applied(name)
        log.info("collection %s now uses profile %s (%d faces re-embedded)", name, profile, self.indexes.get(name).size)
        return True

    def list_collections(self) -> list[CollectionRecord]:
        return self.store.list_collections()

    def delete_collection(self, name: str, *, actor: Actor = NO_KEY) -> tuple[int, int]:
        counts = self.store.delete_collection(name)
        self._applied(name)
        self._audit_change(audit.DELETE_COLLECTION, name, actor, detail=f"{counts[0]} subjects, {counts[1]} faces")
        return counts

    # --- enrollment -----------------------------------------------------------------------------------------

    def _usable_face(self, index: int, embedded: EmbeddedFaces, take_largest: bool) -> AnalyzedFace:
        where = f"image {index}"
        if not embedded.faces:
            raise InvalidInput(f"{where}: no face found; send a photo where the face is clearly visible")
        if embedded.found > 1 and not take_largest:
            raise InvalidInput(
                f"{where}: {embedded.found} faces found; send a photo of one person, or set take_largest_face"
            )
        face = embedded.faces[0]  # largest first
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
        liveness: bool | None = None,
        actor: Actor = NO_KEY,
    ) -> Enrollment:
        """All images are checked before anything is stored: either every face is enrolled or none is. With
        liveness required (`liveness`, None: the collection's default), a face taken for a spoof is refused."""
        for _attempt in range(3):
            record = self.collection(collection)
            profile, bar = record.profile, self.liveness_of(record, liveness)
            embedded = [
                self._enrollable(index, data, profile, take_largest_face, bar) for index, data in enumerate(images)
            ]
            refused = [(index, face) for index, (face, _) in enumerate(embedded) if bar.spoof(face)]
            if refused:
                detail = "; ".join(f"image {index}: {_liveness(face)}" for index, face in refused)
                self.audit.record(
                    audit.ENROLL, collection, actor=actor, subject=subject_id, decision="spoof", detail=detail
                )
                index, face = refused[0]
                raise InvalidInput(
                    f"image {index}: the face looks like a print or a screen ({_liveness(face)}, below "
                    f"{bar.threshold:.2f}); enroll from a photo of the person taken by a camera"
                )
            new_faces = [
                NewFace(
                    embedding=face.parts,
                    profile=profile,
                    models=face.models,
                    box=face.box,
                    detection_score=face.score,
                    face_size=face.face_size,
                    sharpness=face.sharpness,
                    crop=face.crop_png or None,
                    crop_landmarks=face.crop_landmarks if face.crop_png else None,
                )
                for face, _ in embedded
            ]
            with self._lock(collection):
                if self.store.get_collection(collection).profile != profile:
                    continue  # a re-embedding switched the profile meanwhile: embed again for the new one
                try:
                    subject, face_ids, created = self.store.add_faces(
                        collection, subject_id, display_name, metadata, new_faces
                    )
                except DependencyUnavailable:
                    # The connection dropped: the commit may or may not have landed. The index is rebuilt from the
                    # database before it is next searched, so it agrees with whatever the database now holds.
                    self._stale.add(collection)
                    raise
            self._applied(collection)
            self._audit_change(audit.ENROLL, collection, actor, subject=subject_id, detail=f"faces {face_ids}")
            return Enrollment(subject, face_ids, created)
        raise Overloaded(f"collection {collection!r} kept changing profile during the enrollment; retry")

    def _enrollable(
        self, index: int, image: bytes, profile: str, take_largest_face: bool, bar: Liveness
    ) -> tuple[AnalyzedFace, np.ndarray]:
        try:
            embedded = self._embed(image, profile, keep_crop=self.settings.keep_face_crops, liveness=bar.required)
        except InvalidInput as exc:
            raise InvalidInput(f"image {index}: {exc}") from None
        face = self._usable_face(index, embedded, take_largest_face)
        return face, embedded.vectors[0]

    # --- decisions ------------------------------------------------------------------------------------------

    def _probe(self, image: bytes, profile: str, *, liveness: bool = False) -> tuple[Probe, np.ndarray | None]:
        embedded = self._embed(image, profile, liveness=liveness)
        if not embedded.faces:
            return Probe(None, 0), None
        return Probe(embedded.faces[0], embedded.found), embedded.vectors[0]

    def _probability(self, profile: str, a: np.ndarray, b: np.ndarray) -> float:
        """P(same) from the pair's per-model cosines (score fusion by logistic regression)."""
        cosines = self.calibrations.fusion(profile).model_cosines(a, b)
        return float(self.calibrations[profile].probability(cosines))

    def verify(
        self,
        collection: str,
        subject_id: str,
        image: bytes,
        *,
        liveness: bool | None = None,
        actor: Actor = NO_KEY,
    ) -> Decision:
        """1:1: the probe's largest face against every face enrolled for the subject. With liveness required
        (`liveness`, None: the collection's default), a probe face taken for a spoof is not compared: SPOOF."""
        record = self.collection(collection)
        bar = self.liveness_of(record, liveness)
        # NotFound for an unknown subject; the profile is the one the stored faces were embedded for.
        profile, face_ids, stored = self.store.subject_faces(collection, subject_id)
        threshold = self.threshold_of(record, profile)
        probe, embedding = self._probe(image, profile, liveness=bar.required)
        if bar.spoof(probe.face):
            decision = Decision(probe, threshold=threshold, spoof=True)
        elif embedding is None or len(face_ids) == 0:
            decision = Decision(probe, threshold=threshold)
        else:
            vectors = self._fused(profile, stored)
            similarities = vectors @ embedding
            best = int(np.argmax(similarities))
            similarity = float(similarities[best])
            probability = self._probability(profile, vectors[best], embedding)
            decision = Decision(probe, similarity, threshold, probability, int(face_ids[best]))
        decision = replace(decision, liveness_threshold=bar.threshold)
        verdict = (
            "no_face"
            if not decision.face_found
            else "spoof"
            if decision.spoof
            else "match"
            if decision.match
            else "no_match"
        )
        self.audit.record(
            audit.VERIFY,
            collection,
            actor=actor,
            subject=subject_id,
            similarity=decision.similarity if decision.face_found and not decision.spoof else None,
            threshold=threshold,
            decision=verdict,
            detail=_liveness(probe.face),
        )
        return decision

    def compare(self, image_a: bytes, image_b: bytes, threshold: float | None = None) -> Comparison:
        """Two photos' largest faces, with the default profile; threshold None: its calibrated one."""
        profile = self.settings.profile
        threshold = threshold or self.calibrations[profile].threshold
        probe_a, a = self._probe(image_a, profile)
        probe_b, b = self._probe(image_b, profile)
        if a is None or b is None:
            return Comparison(probe_a, probe_b, 0.0, threshold, 0.0)
        similarity = float(a @ b)
        return Comparison(probe_a, probe_b, similarity, threshold, self._probability(profile, a, b))

    def identify(
        self,
        collection: str,
        image: bytes,
        top_k: int = 1,
        threshold: float | None = None,
        *,
        liveness: bool | None = None,
        actor: Actor = NO_KEY,
    ) -> Identification:
        """1:K for every face in the photo: the best subjects, one candidate per subject, best first; threshold
        None: the open-set one for the collection's size. With liveness required (`liveness`, None: the
        collection's default), a face taken for a spoof is not searched."""
        record = self.collection(collection)
        bar = self.liveness_of(record, liveness)
        index = self._fresh_index(collection)
        profile = index.profile or record.profile  # the index's own: it may have switched since the record was read
        threshold = threshold or self.identify_threshold_of(record, profile)
        embedded = self._embed(image, profile, liveness=bar.required)
        faces = embedded.faces
        if not faces or index.size == 0:
            self.audit.record(
                audit.IDENTIFY,
                collection,
                actor=actor,
                threshold=threshold,
                decision="no_face" if not faces else "unknown",
            )
            identified = [IdentifiedFace(f, [], threshold) for f in faces]
            return Identification(identified, threshold, index.size, embedded.found)
        # A subject may own several faces: search deeper than top_k so that top_k distinct subjects come back.
        depth = min(index.size, top_k * 8)
        similarities, ids = index.search(embedded.vectors, depth)
        owners = self.store.face_owners(collection, sorted({int(i) for i in ids.ravel() if i >= 0}))
        results = []
        for face, probe, row_scores, row_ids in zip(faces, embedded.vectors, similarities, ids, strict=True):
            if bar.spoof(face):
                results.append(IdentifiedFace(face, [], threshold, spoof=True))
                continue
            candidates: dict[str, Candidate] = {}
            for score, face_id in zip(row_scores, row_ids, strict=True):
                owner = owners.get(int(face_id))
                if owner is None or owner[0] in candidates:
                    continue  # deleted since the search, or a weaker face of a subject already listed
                (enrolled,) = index.vectors([int(face_id)])
                probability = self._probability(profile, enrolled, probe)
                candidates[owner[0]] = Candidate(owner[0], owner[1], float(score), probability, int(face_id))
                if len(candidates) == top_k:
                    break
            results.append(IdentifiedFace(face, list(candidates.values()), threshold))
        for found in results:
            best = found.candidates[0] if found.candidates else None
            self.audit.record(
                audit.IDENTIFY,
                collection,
                actor=actor,
                subject="" if found.unknown or best is None else best.subject_id,
                similarity=best.similarity if best else None,
                threshold=threshold,
                decision="spoof" if found.spoof else "unknown" if found.unknown else "identified",
                detail=_liveness(found.face),
            )
        return Identification(results, threshold, index.size, embedded.found)

    # --- subjects -------------------------------------------------------------------------------------------

    def get_subject(self, collection: str, subject_id: str) -> SubjectRecord:
        return self.store.get_subject(collection, subject_id)

    def list_subjects(self, collection: str, page_size: int, after: int = 0) -> SubjectPage:
        """The page of subjects after the position `after`, no larger than a reply may carry."""
        # Half the message limit leaves room for the encoding's overhead on top of the rows' own size.
        return self.store.list_subjects(collection, page_size, after, self.settings.max_message_bytes // 2)

    def delete_face(self, collection: str, face_id: int, *, actor: Actor = NO_KEY) -> FaceRecord:
        record = self.store.delete_face(collection, face_id)
        self._applied(collection)
        self._audit_change(audit.DELETE_FACE, collection, actor, subject=record.external_id, detail=f"face {face_id}")
        return record

    def delete_subject(self, collection: str, subject_id: str, *, actor: Actor = NO_KEY) -> int:
        face_ids = self.store.delete_subject(collection, subject_id)
        self._applied(collection)
        self._audit_change(audit.DELETE_SUBJECT, collection, actor, subject=subject_id, detail=f"faces {face_ids}")
        return len(face_ids)
