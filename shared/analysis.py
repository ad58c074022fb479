"""The face-analysis contract: from a photo to its faces' embeddings (detect, align, embed).

The face database depends on this contract only. Its implementations live with whoever runs the models: the face
database calls the detector and embedder services (`argus.services.facedb.remote_analysis`), evaluation runs the
same models in process (`argus.evaluation.local_analysis`). Both give the same `AnalyzedFace` records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from argus.boxes import Box


@dataclass(frozen=True)
class AnalyzedFace:
    box: Box
    score: float
    landmarks: np.ndarray  # (5, 2) in source pixels
    parts: np.ndarray  # the models' unit vectors, concatenated in the order asked for (fuse with a Fusion)
    models: tuple[str, ...]  # "name@version" of each model, in that order
    sharpness: float
    crop_png: bytes = b""  # the face crop the models were fitted from; empty when not asked for
    crop_landmarks: np.ndarray | None = None  # (5, 2) in crop pixels
    liveness: float | None = None  # P(live face), when asked for

    @property
    def face_size(self) -> float:
        """The shorter side of the box: what decides whether a face is big enough to trust."""
        return shorter_side(self.box)


@dataclass(frozen=True)
class PhotoFaces:
    """The faces of a photo that were embedded, largest first, and how many the detector found in all."""

    faces: list[AnalyzedFace]
    found: int


@dataclass(frozen=True)
class StoredCrop:
    """An enrolled face's stored crop: a face crop with its landmarks, or (from older versions) a 112x112 crop
    aligned to the ArcFace template, whose landmarks are that template's points."""

    png: bytes
    landmarks: np.ndarray | None


@dataclass(frozen=True)
class Reembedded:
    parts: np.ndarray
    models: tuple[str, ...]


class FaceAnalyzer(Protocol):
    def available_models(self) -> tuple[str, ...]:
        """Manifest names of the embedding networks it can run."""
        ...

    def analyze(
        self,
        encoded: bytes,
        models: Sequence[str],
        *,
        keep_crop: bool = False,
        liveness: bool = False,
        largest_only: bool = False,
    ) -> PhotoFaces:
        """The photo's faces, largest first (at most ARGUS_MAX_FACES_PER_IMAGE), embedded by each of these models;
        with `liveness`, each with its liveness score. With `largest_only`, the largest face alone (a probe's), found
        faster on a large photo; PhotoFaces.found still counts the faces the detector saw."""
        ...

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        """Stored face crops embedded by these models, in order."""
        ...


def box_area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def shorter_side(box: Box) -> float:
    """A face box's shorter side, px: its size, as the size bars and the probe look judge it."""
    return min(box[2] - box[0], box[3] - box[1])


def largest_faces(boxes: Sequence[Box], limit: int) -> list[int]:
    """Indices of the `limit` largest face boxes, largest first: the faces of a crowd that are embedded (the rule of
    ARGUS_MAX_FACES_PER_IMAGE); the smaller ones are left out, so a call's work is bounded whatever the photo."""
    return sorted(range(len(boxes)), key=lambda i: box_area(boxes[i]), reverse=True)[:limit]
