"""The face analysis evaluation measures: the detector and embedder models run in this process.

It gives what facedb's `RemoteFaceAnalyzer` gives over gRPC (the same `argus.analysis` contract, the same models and
the same image decoding), so the figures measured through it hold for the services; and it exposes the detector and
the embedder, whose settings key the embedding cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from argus.alignment import TEMPLATE_112
from argus.analysis import AnalyzedFace, PhotoFaces, Reembedded, StoredCrop, largest_faces
from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import decode_image
from argus.models.store import ModelStore
from argus.services.detector.faces import FaceDetector
from argus.services.embedder.embedder import FaceEmbedder


def _stored_crop_image(crop: StoredCrop) -> tuple[np.ndarray, np.ndarray]:
    """The crop's pixels and landmarks; a crop stored without landmarks is aligned to the ArcFace template."""
    image = cv2.imdecode(np.frombuffer(crop.png, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInput("a stored face crop is not a readable image")
    return image, TEMPLATE_112 if crop.landmarks is None else np.asarray(crop.landmarks, dtype=np.float64)


class LocalFaceAnalyzer:
    """Runs the detector and the embedder in this process."""

    def __init__(self, store: ModelStore, settings: Settings, models: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.detector = FaceDetector(store, settings)
        self.embedder = FaceEmbedder(store, settings, models)

    def available_models(self) -> tuple[str, ...]:
        return tuple(self.embedder.models)

    def analyze_image(
        self,
        image: np.ndarray,
        models: Sequence[str],
        *,
        keep_crop: bool = False,
        liveness: bool = False,
        largest_only: bool = False,
    ) -> PhotoFaces:
        options = replace(self.detector.defaults, liveness=liveness, largest_only=largest_only)
        found, seen = self.detector.detect_counted(image, options)
        if not found:
            return PhotoFaces([], seen)
        faces = [found[i] for i in largest_faces([face.box for face in found], self.settings.max_faces_per_image)]
        landmarks = [np.asarray(face.landmarks, dtype=np.float64) for face in faces]
        embeddings = self.embedder.embed([image] * len(faces), landmarks, models)
        refs = tuple(self.embedder.refs(list(embeddings[0].vectors)))
        return PhotoFaces(
            [
                AnalyzedFace(
                    box=face.box,
                    score=face.score,
                    landmarks=points,
                    parts=embedding.concatenated(),
                    models=refs,
                    sharpness=embedding.sharpness,
                    crop_png=cv2.imencode(".png", embedding.crop.image)[1].tobytes() if keep_crop else b"",
                    crop_landmarks=embedding.crop.landmarks if keep_crop else None,
                    liveness=face.liveness,
                )
                for face, points, embedding in zip(faces, landmarks, embeddings, strict=True)
            ],
            seen,
        )

    def analyze(
        self,
        encoded: bytes,
        models: Sequence[str],
        *,
        keep_crop: bool = False,
        liveness: bool = False,
        largest_only: bool = False,
    ) -> PhotoFaces:
        image = decode_image(
            encoded, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels
        )
        return self.analyze_image(image, models, keep_crop=keep_crop, liveness=liveness, largest_only=largest_only)

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        decoded = [_stored_crop_image(crop) for crop in crops]
        embeddings = self.embedder.embed([image for image, _ in decoded], [points for _, points in decoded], models)
        refs = tuple(self.embedder.refs(self.embedder.check_models(models)))
        return [Reembedded(embedding.concatenated(), refs) for embedding in embeddings]

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()
