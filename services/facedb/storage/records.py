"""What the repository hands out and takes in: plain, frozen, detached from any session, so nothing outside it can
lazy-load from a closed session or change a row by accident."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np


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
    require_liveness: bool = False  # what its requests require when they do not say
    row_id: int = 0  # its database id: what rows written on its behalf later refer to


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
    origin: str = "enroll"  # or "feedback": added by a confirmed decision

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
class SubjectPage:
    """One page of a collection's subjects: `after` is the position the next page starts after, None on the last."""

    subjects: list[SubjectRecord]
    after: int | None
    total: int  # subjects in the collection


@dataclass(frozen=True)
class NewFace:
    """A face to enroll, as the analysis measured it."""

    embedding: np.ndarray  # (d,) float32: the models' unit vectors, concatenated
    profile: str
    models: tuple[str, ...]
    box: tuple[float, float, float, float]
    detection_score: float
    face_size: float
    sharpness: float
    crop: bytes | None = None  # PNG of the face crop
    crop_landmarks: np.ndarray | None = None  # (5, 2) in crop pixels
    source_sha256: str | None = None  # of the photo: the same photo is never stored twice for a subject
    origin: str = "enroll"


@dataclass(frozen=True)
class EnrolledFaces:
    subject: SubjectRecord
    face_ids: list[int]  # in the order given; for a photo already enrolled, the face it became then
    duplicate: list[bool]  # whether each was already enrolled (nothing stored for it)
    created: bool


@dataclass(frozen=True)
class SubjectTemplate:
    """A subject as a decision scores it: its faces' stored vectors, and its impostor examples of the profile."""

    profile: str  # the collection's, which every stored face follows
    external_id: str
    display_name: str
    face_ids: np.ndarray  # (n,) int64, oldest first
    stored: np.ndarray  # (n, d) the faces' per-model vectors, concatenated
    origins: tuple[str, ...]
    impostors: np.ndarray  # (m, d) rejected probes' per-model vectors; (0, d) or (0, 0) when none
    row_id: int = 0


@dataclass(frozen=True)
class NewDecision:
    """What a Verify or Identify answer keeps for feedback."""

    decision_id: str
    action: str  # verify, identify
    collection_row_id: int
    subject_row_id: int | None  # of the subject the answer named; None for none
    matched: bool
    embedding: np.ndarray  # the probe's per-model vectors, concatenated
    profile: str
    models: tuple[str, ...]
    box: tuple[float, float, float, float]
    detection_score: float
    face_size: float
    sharpness: float
    liveness: float | None  # where it was scored
    key_id: str
    expires_at: datetime


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    action: str
    subject: str  # "" when the answer named nobody
    matched: bool
    embedding: np.ndarray
    profile: str
    models: tuple[str, ...]
    box: tuple[float, float, float, float]
    detection_score: float
    face_size: float
    sharpness: float
    liveness: float | None = None  # P(live face), where the decision scored it

    def face(self, origin: str) -> NewFace:
        """Its probe face as a face to add to a template (with no crop: a decision keeps none)."""
        return NewFace(
            embedding=self.embedding,
            profile=self.profile,
            models=self.models,
            box=self.box,
            detection_score=self.detection_score,
            face_size=self.face_size,
            sharpness=self.sharpness,
            origin=origin,
        )


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
    decision_id: str = ""


@dataclass(frozen=True)
class ChangeRecord:
    """One row of the change log (models.Change): what a replica's follower applies to its indexes, in order."""

    sequence: int
    collection_id: int
    collection: str
    kind: str  # created, dropped, added, removed, reloaded
    face_id: int | None


@dataclass(frozen=True)
class CollectionFaces:
    """A collection's faces as one consistent read sees them, with the change sequence they reflect. `chunks` yields
    (int64 ids, float32 (n, d) stored vectors) a chunk at a time, and only while the read is open."""

    collection_id: int
    name: str
    profile: str
    sequence: int
    chunks: Iterator[tuple[np.ndarray, np.ndarray]]
