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

import hashlib
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from argus.analysis import AnalyzedFace, FaceAnalyzer
from argus.boxes import Box, iou_matrix
from argus.config import Settings
from argus.errors import ArgusError, DependencyUnavailable, InvalidInput, ModelUnavailable, NotFound, Overloaded
from argus.imaging import thumbnail_jpeg
from argus.profiles import PROFILES, EmbeddingProfile, get_profile
from argus.services.facedb import audit
from argus.services.facedb.audit import NO_KEY, Actor, AuditLog
from argus.services.facedb.calibration import TEMPLATE_SIZES, Calibration, Calibrations
from argus.services.facedb.index import FaceIndex, IndexKinds, IndexRegistry
from argus.services.facedb.quality import QUALITY_LEVELS, QualityVerdict, assess
from argus.services.facedb.replication import Follower, snapshot_folder
from argus.services.facedb.storage import (
    CollectionRecord,
    FaceRecord,
    FaceStore,
    NewFace,
    SubjectPage,
    SubjectRecord,
)
from argus.services.facedb.storage.models import FEEDBACK, utcnow
from argus.services.facedb.storage.records import DecisionRecord, NewDecision, SubjectTemplate
from argus.services.facedb.storage.repository import decision_row
from argus.services.facedb.templates import (
    NEAR_DUPLICATE,
    adds_information,
    impostor_veto,
    most_redundant,
    template_vector,
)

log = logging.getLogger(__name__)

# A photo's face is the one the caller's box marks when their intersection over union is at least this.
FACE_BOX_IOU = 0.5
# Subjects a new face is compared with for the duplicate-person warning: the owners of its nearest faces.
WARNING_DEPTH = 32
# A template scores above its best face only when its faces surround the probe: over every LFW photo against every
# template of 2 and 3 faces (first photos of each person) the centroid's cosine exceeded the best face's by at most
# 0.117 (0.111 for 2 faces), also where it reached 0.3. A subject whose faces are all further below the lowest
# threshold than this margin does not reach it as a template.
WARNING_MARGIN = 0.15
PRUNE_EVERY_S = 60.0  # expired decisions are deleted at most this often

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
    quality: QualityVerdict | None = None  # of the probe face, when one was found
    template_faces: int = 0
    vetoed: bool = False  # closer to one of the subject's rejected impostors than to its template
    decision_id: str = ""

    @property
    def face_found(self) -> bool:
        return self.probe.face is not None

    @property
    def low_quality(self) -> bool:
        """Below the request's quality filter: nothing was compared."""
        return not self.spoof and self.quality is not None and bool(self.quality.below)

    @property
    def match(self) -> bool:
        return (
            self.face_found
            and not self.spoof
            and not self.low_quality
            and not self.vetoed
            and self.similarity >= self.threshold
        )


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
    similarity: float  # to the subject's template
    probability: float
    face_id: int  # its nearest face
    threshold: float = 0.0  # the bar for a template of its size
    template_faces: int = 1

    @property
    def accepted(self) -> bool:
        return self.similarity >= self.threshold


@dataclass(frozen=True)
class IdentifiedFace:
    face: AnalyzedFace
    candidates: list[Candidate]  # those at or above their bar first, each part by similarity
    threshold: float  # the bar for a one-face subject
    spoof: bool = False  # its liveness was below the bar: not searched, neither identified nor unknown
    quality: QualityVerdict | None = None
    decision_id: str = ""

    @property
    def low_quality(self) -> bool:
        return not self.spoof and self.quality is not None and bool(self.quality.below)

    @property
    def searched(self) -> bool:
        return not self.spoof and not self.low_quality

    @property
    def unknown(self) -> bool:
        return self.searched and (not self.candidates or not self.candidates[0].accepted)


@dataclass(frozen=True)
class Identification:
    faces: list[IdentifiedFace]  # largest first, at most ARGUS_MAX_FACES_PER_IMAGE
    threshold: float
    gallery_size: int  # faces searched
    faces_found: int  # in the photo, identified or not
    subjects: int = 0  # subjects searched: what the thresholds follow


@dataclass(frozen=True)
class EnrollPhoto:
    """One photo to enroll, and which of its faces: the one at face_box, or with take_largest_face the largest."""

    image: bytes
    face_box: Box | None = None
    take_largest_face: bool = False


class PhotoStatus(StrEnum):
    """What became of one photo of an Enroll: facedb.proto's PhotoStatus (PHOTO_ENROLLED, PHOTO_ALREADY_ENROLLED,
    ...), the servicer maps each by name."""

    ENROLLED = "enrolled"
    ALREADY_ENROLLED = "already_enrolled"
    NOT_ENROLLED = "not_enrolled"  # passed, but another photo was refused (all or nothing)
    UNREADABLE = "unreadable"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    NO_FACE_AT_BOX = "no_face_at_box"
    FACE_TOO_SMALL = "face_too_small"
    TOO_BLURRY = "too_blurry"
    SPOOF = "spoof"


REFUSALS = frozenset(PhotoStatus) - {PhotoStatus.ENROLLED, PhotoStatus.ALREADY_ENROLLED, PhotoStatus.NOT_ENROLLED}


@dataclass(frozen=True)
class PhotoOutcome:
    index: int
    status: PhotoStatus
    face_id: int = 0
    detail: str = ""
    candidates: tuple[Box, ...] = ()  # the faces to choose from, largest first (several faces, or none at the box)
    box: Box | None = None  # the face taken or refused
    liveness: str = ""  # its liveness score, in the audit trail's words, where it was scored

    @property
    def refused(self) -> bool:
        return self.status in REFUSALS


@dataclass(frozen=True)
class EnrollWarning:
    """A photo's face already matches another subject: a duplicate person, or a mislabel."""

    photo_index: int
    subject_id: str
    display_name: str
    similarity: float
    threshold: float


@dataclass(frozen=True)
class Enrollment:
    subject: SubjectRecord | None  # None when nothing was enrolled and the subject did not exist
    face_ids: list[int]  # the faces this call added, in photo order
    created_subject: bool
    photos: list[PhotoOutcome] = field(default_factory=list)
    warnings: list[EnrollWarning] = field(default_factory=list)


class EnrollRefused(InvalidInput):
    """An all-or-nothing enrollment refused for its photos: every photo's outcome comes with it."""

    def __init__(self, message: str, photos: list[PhotoOutcome]) -> None:
        super().__init__(message)
        self.photos = photos


@dataclass(frozen=True)
class Feedback:
    """What a ConfirmDecision or RejectDecision did."""

    subject_id: str
    added: bool = False
    face_id: int = 0
    retired_face_id: int = 0
    detail: str = ""
    impostor_examples: int = 0


@dataclass(frozen=True)
class PreparedTemplate:
    """A subject's template as the profile fuses it: its faces, their centroid and its impostor examples, made once
    per call however many probes are scored against it."""

    template: SubjectTemplate
    vectors: np.ndarray  # (n, d) fused
    centre: np.ndarray  # (d,) the template vector
    impostors: np.ndarray  # (m, d) fused; (0, 0) when none


@dataclass(frozen=True)
class TemplateScore:
    similarity: float
    probability: float
    nearest_face_id: int
    faces: int
    vetoed: bool


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


def _measures(face: AnalyzedFace, profile: str) -> dict[str, Any]:
    """What a stored face and a kept decision record of an analysed face alike: its vectors, what made them, its
    box and quality."""
    return {
        "embedding": face.parts,
        "profile": profile,
        "models": face.models,
        "box": face.box,
        "detection_score": face.score,
        "face_size": face.face_size,
        "sharpness": face.sharpness,
    }


def quality_detail(verdict: QualityVerdict) -> str:
    """Why a probe face was not decided on, in words."""
    return (
        f"the face is below the quality filter on {verdict.below} (size {verdict.face_size:.0f} px, sharpness "
        f"{verdict.sharpness:.1f}, yaw {verdict.yaw:.0f}, pitch {verdict.pitch:.0f}, detection "
        f"{verdict.detection_score:.2f}): nothing was compared"
    )


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
        self._next_prune = 0.0  # monotonic time of the next deletion of expired decisions
        self._pruning = threading.Lock()
        self.decisions = store.decision_writer(wait_s=settings.audit_wait_s, backlog=settings.audit_backlog)
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

    def _embed(
        self, image: bytes, profile: str, *, keep_crop: bool = False, liveness: bool = False, largest_only: bool = False
    ) -> EmbeddedFaces:
        """Detects the photo's faces (with their liveness when asked; its largest alone with `largest_only`) and
        embeds them with the profile's models, checking that the embedder runs the very model versions the profile
        was calibrated with."""
        calibration = self.calibrations[profile]
        analyzed = self.analyzer.analyze(
            image, get_profile(profile).models, keep_crop=keep_crop, liveness=liveness, largest_only=largest_only
        )
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

    def _audit_change(
        self, action: str, collection: str, actor: Actor, *, subject: str = "", detail: str = "", decision_id: str = ""
    ) -> None:
        """Audits a change already committed. If the audit write fails the change still stands, so the caller must
        not be told it failed (a retry would enroll twice): the event goes to the error log instead."""
        try:
            self.audit.record(action, collection, actor=actor, subject=subject, detail=detail, decision_id=decision_id)
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

    def threshold_of(self, record: CollectionRecord, profile: str | None = None, faces: int = 1) -> float:
        """The 1:1 threshold against a template of `faces` faces: the collection's own, or the calibrated one of
        its profile for templates of that size."""
        calibration = self.calibrations[profile or record.profile]
        return record.threshold if record.threshold is not None else calibration.threshold_for(faces)

    def identify_threshold_of(self, record: CollectionRecord, profile: str | None = None, faces: int = 1) -> float:
        """The 1:K threshold for a subject of `faces` faces rises with the number of subjects enrolled: the more
        people, the likelier a stranger resembles one of them. It keeps the false-accept rate at
        ARGUS_OPEN_SET_FAR whatever the templates' sizes, and never goes below the 1:1 threshold."""
        calibration = self.calibrations[profile or record.profile]
        open_set = calibration.identify_threshold(record.subject_count, self.settings.open_set_far, faces)
        return max(self.threshold_of(record, profile, faces), open_set)

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

    def _photo_face(
        self, index: int, photo: EnrollPhoto, embedded: EmbeddedFaces, take_largest: bool, bar: Liveness
    ) -> tuple[PhotoOutcome, AnalyzedFace | None]:
        """The face to enroll from one photo, or why there is none (the outcome's status and words)."""
        where = f"image {index}"
        faces = embedded.faces
        boxes = tuple(face.box for face in faces)
        if not faces:
            detail = f"{where}: no face found; send a photo where the face is clearly visible"
            return PhotoOutcome(index, PhotoStatus.NO_FACE, detail=detail), None
        if photo.face_box is not None:
            overlap = iou_matrix(np.asarray([photo.face_box], dtype=np.float32), np.asarray(boxes, dtype=np.float32))
            best = int(np.argmax(overlap[0]))
            if overlap[0, best] < FACE_BOX_IOU:
                detail = (
                    f"{where}: no face found at the box given (best overlap {overlap[0, best]:.2f}, at least "
                    f"{FACE_BOX_IOU} needed); {len(faces)} face(s) found, their boxes are in the answer"
                )
                return PhotoOutcome(index, PhotoStatus.NO_FACE_AT_BOX, detail=detail, candidates=boxes), None
            face = faces[best]
        elif embedded.found > 1 and not (take_largest or photo.take_largest_face):
            detail = (
                f"{where}: {embedded.found} faces found; send a photo of one person, say which face (face_box), "
                "or set take_largest_face"
            )
            return PhotoOutcome(index, PhotoStatus.SEVERAL_FACES, detail=detail, candidates=boxes), None
        else:
            face = faces[0]  # largest first
        refusal: tuple[PhotoStatus, str] | None = None
        if face.face_size < self.settings.min_face_size:
            refusal = (
                PhotoStatus.FACE_TOO_SMALL,
                f"{where}: the face is {face.face_size:.0f} px; at least {self.settings.min_face_size} px is needed",
            )
        elif face.sharpness < self.settings.min_sharpness:
            refusal = (
                PhotoStatus.TOO_BLURRY,
                f"{where}: the face is too blurry (sharpness {face.sharpness:.1f}, minimum "
                f"{self.settings.min_sharpness:g}); send a sharper photo",
            )
        elif bar.spoof(face):
            refusal = (
                PhotoStatus.SPOOF,
                f"{where}: the face looks like a print or a screen ({_liveness(face)}, below {bar.threshold:.2f}); "
                "enroll from a photo of the person taken by a camera",
            )
        if refusal is not None:
            return PhotoOutcome(index, refusal[0], detail=refusal[1], box=face.box, liveness=_liveness(face)), None
        return PhotoOutcome(index, PhotoStatus.ENROLLED, box=face.box), face

    def enroll(
        self,
        collection: str,
        subject_id: str,
        images: Sequence[bytes | EnrollPhoto],
        *,
        display_name: str = "",
        metadata: dict[str, Any] | None = None,
        take_largest_face: bool = False,
        liveness: bool | None = None,
        all_or_nothing: bool = True,
        actor: Actor = NO_KEY,
    ) -> Enrollment:
        """Every photo is checked before anything is stored and gets its own outcome. All or nothing (the
        default): one refused photo refuses the call (EnrollRefused, with every outcome); otherwise the photos that
        pass are enrolled. A photo the subject already has (the same bytes) is not stored again. With liveness
        required (`liveness`, None: the collection's default), a face taken for a spoof is refused. The answer
        warns of faces that already match another subject."""
        photos = [image if isinstance(image, EnrollPhoto) else EnrollPhoto(image) for image in images]
        digests = [hashlib.sha256(photo.image).hexdigest() for photo in photos]
        for _attempt in range(3):
            record = self.collection(collection)
            profile, bar = record.profile, self.liveness_of(record, liveness)
            known = self.store.face_digests(collection, subject_id, digests)
            outcomes: list[PhotoOutcome] = []
            taken: list[tuple[int, AnalyzedFace]] = []
            seen: set[str] = set()
            for index, (photo, digest) in enumerate(zip(photos, digests, strict=True)):
                if digest in known or digest in seen:  # the same photo: nothing to analyse
                    outcomes.append(PhotoOutcome(index, PhotoStatus.ALREADY_ENROLLED, face_id=known.get(digest, 0)))
                    continue
                seen.add(digest)
                try:
                    embedded = self._embed(
                        photo.image, profile, keep_crop=self.settings.keep_face_crops, liveness=bar.required
                    )
                except InvalidInput as exc:
                    outcomes.append(PhotoOutcome(index, PhotoStatus.UNREADABLE, detail=f"image {index}: {exc}"))
                    continue
                outcome, face = self._photo_face(index, photo, embedded, take_largest_face, bar)
                outcomes.append(outcome)
                if face is not None:
                    taken.append((index, face))
            refused = [outcome for outcome in outcomes if outcome.refused]
            spoofs = [outcome for outcome in refused if outcome.status is PhotoStatus.SPOOF]
            if spoofs:
                self.audit.record(
                    audit.ENROLL,
                    collection,
                    actor=actor,
                    subject=subject_id,
                    decision="spoof",
                    detail="; ".join(f"image {outcome.index}: {outcome.liveness}" for outcome in spoofs),
                )
            if refused and all_or_nothing:
                raise EnrollRefused(
                    "; ".join(outcome.detail for outcome in refused),
                    [
                        replace(outcome, status=PhotoStatus.NOT_ENROLLED, face_id=0)
                        if outcome.status is PhotoStatus.ENROLLED
                        else outcome
                        for outcome in outcomes
                    ],
                )
            if not taken:
                return Enrollment(self._subject_or_none(collection, subject_id), [], False, outcomes)
            new_faces = [
                NewFace(
                    **_measures(face, profile),
                    crop=face.crop_png or None,
                    crop_landmarks=face.crop_landmarks if face.crop_png else None,
                    source_sha256=digests[index],
                )
                for index, face in taken
            ]
            with self._lock(collection):
                if self.store.get_collection(collection).profile != profile:
                    continue  # a re-embedding switched the profile meanwhile: embed again for the new one
                try:
                    enrolled = self.store.enroll_faces(collection, subject_id, display_name, metadata, new_faces)
                except DependencyUnavailable:
                    # The connection dropped: the commit may or may not have landed. The index is rebuilt from the
                    # database before it is next searched, so it agrees with whatever the database now holds.
                    self._stale.add(collection)
                    raise
            # The follower applies the new faces while the warnings are searched (they concern other subjects,
            # whom the new faces do not change); then the answer waits for it as every change does. The faces are
            # stored by now, so a warning that cannot be searched is logged, never a failed call to retry.
            self.follower.wake()
            try:
                warnings = self._duplicate_warnings(collection, record, subject_id, taken)
            except ArgusError as exc:
                log.warning("no duplicate-person warnings for %s in %s: %s", subject_id, collection, exc)
                warnings = []
            self._applied(collection)
            stored = {
                index: (face_id, duplicate)
                for (index, _), face_id, duplicate in zip(taken, enrolled.face_ids, enrolled.duplicate, strict=True)
            }
            outcomes = [
                replace(
                    outcome,
                    face_id=stored[outcome.index][0],
                    status=PhotoStatus.ALREADY_ENROLLED if stored[outcome.index][1] else PhotoStatus.ENROLLED,
                )
                if outcome.index in stored
                else outcome
                for outcome in outcomes
            ]
            added = [face_id for face_id, duplicate in stored.values() if not duplicate]
            self._audit_change(audit.ENROLL, collection, actor, subject=subject_id, detail=f"faces {added}")
            return Enrollment(enrolled.subject, added, enrolled.created, outcomes, warnings)
        raise Overloaded(f"collection {collection!r} kept changing profile during the enrollment; retry")

    def _subject_or_none(self, collection: str, subject_id: str) -> SubjectRecord | None:
        try:
            return self.store.get_subject(collection, subject_id)
        except NotFound:
            return None

    def _duplicate_warnings(
        self, collection: str, record: CollectionRecord, subject_id: str, taken: list[tuple[int, AnalyzedFace]]
    ) -> list[EnrollWarning]:
        """Other subjects each new face already matches at their 1:1 threshold, best first per photo. Searched in
        the index as it stands (a warning is advice: it does not wait for a lagging index)."""
        index = self.indexes.get(collection)
        if index.size == 0 or index.profile not in (None, record.profile):
            return []
        fused = self._fused(record.profile, np.stack([face.parts for _, face in taken]))
        similarities, ids = index.search(fused, min(index.size, WARNING_DEPTH))
        # Only subjects with a face near the bar can reach it as a template: the rest need no reading.
        lowest = min(self.threshold_of(record, record.profile, faces) for faces in (1, *TEMPLATE_SIZES))
        near = [
            int(i)
            for i, score in zip(ids.ravel(), similarities.ravel(), strict=True)
            if i >= 0 and score >= lowest - WARNING_MARGIN
        ]
        if not near:
            return []
        templates = self.store.templates_of_faces(collection, near)
        warnings = []
        scored = self._scored_subjects(record.profile, templates, ids, fused)
        for (photo, _), subjects in zip(taken, scored, strict=True):
            for template, score in subjects:
                if template.external_id == subject_id:
                    continue
                threshold = self.threshold_of(record, record.profile, score.faces)
                if score.similarity >= threshold:
                    warnings.append(
                        EnrollWarning(photo, template.external_id, template.display_name, score.similarity, threshold)
                    )
        return sorted(warnings, key=lambda w: (w.photo_index, -w.similarity))

    # --- decisions ------------------------------------------------------------------------------------------

    def _probe(self, image: bytes, profile: str, *, liveness: bool = False) -> tuple[Probe, np.ndarray | None]:
        """The photo's largest face, the one a 1:1 decision is about: the detector need not look for the others."""
        embedded = self._embed(image, profile, liveness=liveness, largest_only=True)
        if not embedded.faces:
            return Probe(None, 0), None
        return Probe(embedded.faces[0], embedded.found), embedded.vectors[0]

    def _probability(self, profile: str, a: np.ndarray, b: np.ndarray, faces: int = 1) -> float:
        """P(same) from the pair's per-model cosines (score fusion by logistic regression), for a template of
        `faces` faces."""
        cosines = self.calibrations.fusion(profile).model_cosines(a, b)
        return float(self.calibrations[profile].probability(cosines, faces))

    def _prepare(self, profile: str, template: SubjectTemplate) -> PreparedTemplate:
        vectors = self._fused(profile, template.stored)
        centre = template_vector(self.calibrations.fusion(profile), vectors)
        impostors = self._fused(profile, template.impostors) if template.impostors.size else template.impostors
        return PreparedTemplate(template, vectors, centre, impostors)

    def _template_score(self, profile: str, prepared: PreparedTemplate, probe: np.ndarray) -> TemplateScore:
        """A probe against a subject's template (templates.py): similarity to its centroid, the calibrated
        probability for its size, its nearest face, and whether a rejected impostor of it is closer."""
        similarity = float(prepared.centre @ probe)
        nearest = int(prepared.template.face_ids[int(np.argmax(prepared.vectors @ probe))])
        faces = len(prepared.template.face_ids)
        vetoed = prepared.impostors.size > 0 and impostor_veto(similarity, probe, prepared.impostors)
        probability = self._probability(profile, prepared.centre, probe, faces)
        return TemplateScore(similarity, probability, nearest, faces, vetoed)

    def _scored_subjects(
        self, profile: str, templates: dict[int, SubjectTemplate], ids: np.ndarray, probes: np.ndarray
    ) -> list[list[tuple[SubjectTemplate, TemplateScore]]]:
        """For each probe, the subjects owning its search hits (in hit order, each once; a face deleted since the
        search is left out) with the probe scored against each one's template. Every template is fused and
        averaged once per call, however many of the photo's faces hit it."""
        prepared: dict[str, PreparedTemplate] = {}
        scored = []
        for probe, row in zip(probes, ids, strict=True):
            subjects = {t.external_id: t for i in row if (t := templates.get(int(i))) is not None}
            for name, template in subjects.items():
                if name not in prepared:
                    prepared[name] = self._prepare(profile, template)
            scored.append([(t, self._template_score(profile, prepared[name], probe)) for name, t in subjects.items()])
        return scored

    @staticmethod
    def _quality(face: AnalyzedFace | None, level: str) -> QualityVerdict | None:
        if face is None:
            return None
        return assess(face.box, face.score, face.landmarks, face.sharpness, QUALITY_LEVELS[level or "auto"])

    def _keep(self, decisions: list[NewDecision]) -> None:
        """Keeps the answers' probe faces for feedback, through a writer that never makes an answer wait on a busy
        database. Best effort: an answer is never refused because its feedback record could not be kept (a later
        ConfirmDecision then finds nothing, and says so). Expired ones are deleted now and then, off the call."""
        for decision in decisions:
            try:
                self.decisions.write(decision_row(decision))
            except DependencyUnavailable as exc:
                log.warning("decision %s not kept for feedback: %s", decision.decision_id, exc)
        now = time.monotonic()
        if decisions and now >= self._next_prune and self._pruning.acquire(blocking=False):
            self._next_prune = now + PRUNE_EVERY_S
            threading.Thread(target=self._prune_decisions, name="decision-pruner", daemon=True).start()

    def _prune_decisions(self) -> None:
        try:
            self.store.prune_decisions()
        except (ArgusError, SQLAlchemyError) as exc:
            log.warning("expired decisions not deleted this time: %s", exc)
        finally:
            self._pruning.release()

    def _decision_record(
        self,
        action: str,
        record: CollectionRecord,
        subject: SubjectTemplate | None,
        matched: bool,
        face: AnalyzedFace,
        profile: str,
        actor: Actor,
    ) -> tuple[str, NewDecision | None]:
        """A new decision id, and what the answer keeps for feedback (None when feedback is off)."""
        decision_id = secrets.token_hex(16)
        if self.settings.feedback_retention_s <= 0:
            return decision_id, None
        return decision_id, NewDecision(
            decision_id=decision_id,
            action=action,
            collection_row_id=record.row_id,
            subject_row_id=subject.row_id if subject is not None else None,
            matched=matched,
            **_measures(face, profile),
            liveness=face.liveness,
            key_id=actor.key_id,
            expires_at=utcnow() + timedelta(seconds=self.settings.feedback_retention_s),
        )

    def verify(
        self,
        collection: str,
        subject_id: str,
        image: bytes,
        *,
        liveness: bool | None = None,
        quality: str = "",
        actor: Actor = NO_KEY,
    ) -> Decision:
        """1:1: the probe's largest face against the subject's template. With liveness required (`liveness`,
        None: the collection's default), a probe face taken for a spoof is not compared: SPOOF; one below the
        quality filter (`quality`, "": AUTO) neither: LOW_QUALITY."""
        record = self.collection(collection)
        bar = self.liveness_of(record, liveness)
        # NotFound for an unknown subject; the profile is the one the stored faces were embedded for.
        template = self.store.subject_template(collection, subject_id)
        profile, faces = template.profile, len(template.face_ids)
        threshold = self.threshold_of(record, profile, max(faces, 1))
        probe, embedding = self._probe(image, profile, liveness=bar.required)
        verdict = self._quality(probe.face, quality)
        decision = Decision(probe, threshold=threshold, quality=verdict, template_faces=faces)
        if bar.spoof(probe.face):
            decision = replace(decision, spoof=True)
        elif decision.low_quality or embedding is None or faces == 0:
            pass
        else:
            score = self._template_score(profile, self._prepare(profile, template), embedding)
            decision = replace(
                decision,
                similarity=score.similarity,
                probability=score.probability,
                best_face_id=score.nearest_face_id,
                vetoed=score.vetoed,
            )
        decision = replace(decision, liveness_threshold=bar.threshold)
        kept = None
        if probe.face is not None and not decision.spoof and not decision.low_quality:
            decision_id, kept = self._decision_record(
                "verify", record, template, decision.match, probe.face, profile, actor
            )
            decision = replace(decision, decision_id=decision_id)
        verdict_word = (
            "no_face"
            if not decision.face_found
            else "spoof"
            if decision.spoof
            else "low_quality"
            if decision.low_quality
            else "match"
            if decision.match
            else "no_match"
        )
        compared = decision.face_found and not decision.spoof and not decision.low_quality
        self._keep([kept] if kept else [])
        self.audit.record(
            audit.VERIFY,
            collection,
            actor=actor,
            subject=subject_id,
            similarity=decision.similarity if compared and faces else None,
            threshold=threshold,
            decision=verdict_word,
            detail="; ".join(
                part
                for part in (_liveness(probe.face), "closer to a rejected impostor" if decision.vetoed else "")
                if part
            ),
            decision_id=decision.decision_id,
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
        quality: str = "",
        actor: Actor = NO_KEY,
    ) -> Identification:
        """1:K for every face in the photo: the best subjects, each scored as its template, best first; threshold
        None: the open-set one for the collection's number of subjects and each candidate's template size. With
        liveness required (`liveness`, None: the collection's default), a face taken for a spoof is not searched;
        nor is one below the quality filter (`quality`, "": AUTO)."""
        record = self.collection(collection)
        bar = self.liveness_of(record, liveness)
        index = self._fresh_index(collection)
        profile = index.profile or record.profile  # the index's own: it may have switched since the record was read
        base_threshold = threshold or self.identify_threshold_of(record, profile)
        embedded = self._embed(image, profile, liveness=bar.required)
        faces = embedded.faces
        if not faces or index.size == 0:
            self.audit.record(
                audit.IDENTIFY,
                collection,
                actor=actor,
                threshold=base_threshold,
                decision="no_face" if not faces else "unknown",
            )
            identified = [IdentifiedFace(f, [], base_threshold, quality=self._quality(f, quality)) for f in faces]
            return Identification(identified, base_threshold, index.size, embedded.found, record.subject_count)
        # A subject may own several faces: search deeper than top_k so that top_k distinct subjects come back.
        depth = min(index.size, max(top_k, 4) * 8)
        _, ids = index.search(embedded.vectors, depth)
        templates = self.store.templates_of_faces(collection, [int(i) for i in ids.ravel() if i >= 0])
        results = []
        kept: list[NewDecision] = []
        scored = self._scored_subjects(profile, templates, ids, embedded.vectors)
        for face, subjects in zip(faces, scored, strict=True):
            verdict = self._quality(face, quality)
            found = IdentifiedFace(face, [], base_threshold, spoof=bar.spoof(face), quality=verdict)
            if not found.searched:
                results.append(found)
                continue
            candidates = []
            for template, score in subjects:
                if score.vetoed:
                    continue  # taken for the impostor a reviewer rejected, not for this subject
                bar_of = threshold or self.identify_threshold_of(record, profile, score.faces)
                candidates.append(
                    Candidate(
                        template.external_id,
                        template.display_name,
                        score.similarity,
                        score.probability,
                        score.nearest_face_id,
                        bar_of,
                        score.faces,
                    )
                )
            candidates.sort(key=lambda c: (not c.accepted, -c.similarity))
            found = replace(found, candidates=candidates[:top_k])
            best = found.candidates[0] if found.candidates and not found.unknown else None
            named = next((t for t, _ in subjects if best and t.external_id == best.subject_id), None)
            decision_id, record_kept = self._decision_record(
                "identify", record, named, best is not None, face, profile, actor
            )
            if record_kept:
                kept.append(record_kept)
            results.append(replace(found, decision_id=decision_id))
        self._keep(kept)
        for found in results:
            best = found.candidates[0] if found.candidates else None
            self.audit.record(
                audit.IDENTIFY,
                collection,
                actor=actor,
                subject="" if found.unknown or best is None else best.subject_id,
                similarity=best.similarity if best else None,
                threshold=best.threshold if best else base_threshold,
                decision="spoof"
                if found.spoof
                else "low_quality"
                if found.low_quality
                else "unknown"
                if found.unknown
                else "identified",
                detail=_liveness(found.face),
                decision_id=found.decision_id,
            )
        return Identification(results, base_threshold, index.size, embedded.found, record.subject_count)

    # --- feedback -------------------------------------------------------------------------------------------

    def _feedback_decision(self, collection: str, decision_id: str, subject_id: str) -> tuple[DecisionRecord, str]:
        """The decision kept for feedback and the subject the feedback is about (the one named, or the answer's)."""
        if self.settings.feedback_retention_s <= 0:
            raise InvalidInput(
                "feedback is off on this server: ARGUS_FEEDBACK_RETENTION_S is 0, so no decision is kept"
            )
        kept = self.store.decision(collection, decision_id)
        subject = subject_id or kept.subject
        if not subject:
            raise InvalidInput(f"decision {decision_id} named nobody (unknown); say who the probe was: subject_id")
        return kept, subject

    def confirm_decision(
        self, collection: str, decision_id: str, subject_id: str = "", *, actor: Actor = NO_KEY
    ) -> Feedback:
        """The probe of the decision was this subject: its face joins the template when it passes the enrollment
        quality gate and adds information (no near duplicate there); past ARGUS_FEEDBACK_MAX_FACES the most
        redundant feedback face is retired, or the new one is not added when it is that one."""
        kept, subject = self._feedback_decision(collection, decision_id, subject_id)
        record = self.collection(collection)
        if record.pending_profile is not None:
            raise InvalidInput(f"collection {collection!r} is being re-embedded; confirm once it has switched")
        if kept.profile != record.profile:
            raise InvalidInput(
                f"decision {decision_id} was made on profile {kept.profile}; the collection now uses {record.profile}"
            )
        feedback = Feedback(subject)
        with self._lock(collection):
            template = self.store.subject_template(collection, subject)
            vectors = self._fused(record.profile, template.stored)
            probe = self._fused(record.profile, kept.embedding[None, :])[0]
            feedback_rows = [row for row, origin in enumerate(template.origins) if origin == FEEDBACK]
            retire: int | None = None
            live = self.liveness_of(record, None)
            if live.required and (kept.liveness is None or kept.liveness < live.threshold):
                # The collection requires a live face to enroll: a probe not scored, or scored a spoof, is not one.
                feedback = replace(
                    feedback,
                    detail="the collection requires a live face and this decision's probe was not found live "
                    "(its liveness was not required, or was below the bar)",
                )
            elif kept.face_size < self.settings.min_face_size or kept.sharpness < self.settings.min_sharpness:
                feedback = replace(
                    feedback,
                    detail=f"the probe face ({kept.face_size:.0f} px, sharpness {kept.sharpness:.1f}) is below the "
                    "enrollment quality gate",
                )
            elif self.settings.feedback_max_faces == 0:
                feedback = replace(feedback, detail="confirmations add no face here (ARGUS_FEEDBACK_MAX_FACES is 0)")
            elif not adds_information(vectors, probe, NEAR_DUPLICATE):
                feedback = replace(feedback, detail="a face of the template is a near duplicate of it already")
            elif len(feedback_rows) >= self.settings.feedback_max_faces:
                pool = np.vstack([vectors[feedback_rows], probe[None, :]])
                redundant = most_redundant(pool)
                if redundant == len(feedback_rows):
                    feedback = replace(feedback, detail="it would be the template's most redundant feedback face")
                else:
                    retire = int(template.face_ids[feedback_rows[redundant]])
            if not feedback.detail:
                face_id = self.store.add_feedback_face(collection, subject, kept.face(FEEDBACK), retire)
                feedback = replace(feedback, added=True, face_id=face_id, retired_face_id=retire or 0)
        if feedback.added:
            self._applied(collection)
        self._audit_change(
            audit.CONFIRM_DECISION,
            collection,
            actor,
            subject=subject,
            detail=f"face {feedback.face_id}" + (f", retired {retire}" if retire else "")
            if feedback.added
            else f"not added: {feedback.detail}",
            decision_id=decision_id,
        )
        return feedback

    def reject_decision(
        self, collection: str, decision_id: str, subject_id: str = "", *, actor: Actor = NO_KEY
    ) -> Feedback:
        """The probe of the decision was not this subject: it becomes one of the subject's impostor examples (the
        newest ARGUS_FEEDBACK_MAX_IMPOSTORS kept)."""
        kept, subject = self._feedback_decision(collection, decision_id, subject_id)
        if self.settings.feedback_max_impostors == 0:
            raise InvalidInput("rejections are not kept here: ARGUS_FEEDBACK_MAX_IMPOSTORS is 0")
        count = self.store.add_impostor(collection, subject, kept, self.settings.feedback_max_impostors)
        self._audit_change(
            audit.REJECT_DECISION,
            collection,
            actor,
            subject=subject,
            detail=f"{count} impostor examples",
            decision_id=decision_id,
        )
        return Feedback(subject, impostor_examples=count)

    # --- subjects -------------------------------------------------------------------------------------------

    def get_subject(self, collection: str, subject_id: str) -> SubjectRecord:
        return self.store.get_subject(collection, subject_id)

    def list_subjects(self, collection: str, page_size: int, after: int = 0, query: str = "") -> SubjectPage:
        """The page of subjects after the position `after` (those matching the query, if any), no larger than a
        reply may carry."""
        # Half the message limit leaves room for the encoding's overhead on top of the rows' own size.
        return self.store.list_subjects(collection, page_size, after, self.settings.max_message_bytes // 2, query)

    def face_crop(self, collection: str, face_id: int, max_side: int) -> bytes:
        """A stored face's crop as a JPEG of at most max_side pixels a side."""
        return thumbnail_jpeg(self.store.face_crop(collection, face_id), max_side)

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
