"""From a photo to its faces' embeddings: detect, align, embed.

facedb calls the detector and embedder services over gRPC (`RemoteFaceAnalyzer`); evaluation and calibration run
the same models in process (`LocalFaceAnalyzer`). Both give the same `AnalyzedFace` records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import cv2
import grpc
import numpy as np

from argus.client import DetectorClient, EmbedderClient, aligned_face, client_options, landmarked_face, photo_face
from argus.config import Settings
from argus.deadlines import time_left
from argus.errors import (
    ArgusError,
    DeadlineExceeded,
    DependencyUnavailable,
    InvalidInput,
    ModelUnavailable,
    Overloaded,
)
from argus.imaging import decode_image
from argus.messages import box_tuple, landmarks_array
from argus.models.store import ModelStore
from argus.proto.embedder.v1 import embedder_pb2
from argus.services.detector.faces import FaceDetector
from argus.services.embedder.align import TEMPLATE_112
from argus.services.embedder.embedder import FaceEmbedder


@dataclass(frozen=True)
class AnalyzedFace:
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (5, 2) in source pixels
    parts: np.ndarray  # the models' unit vectors, concatenated in the order asked for (fuse with a Fusion)
    models: tuple[str, ...]  # "name@version" of each model, in that order
    sharpness: float
    crop_png: bytes = b""  # the face crop the models were fitted from; empty when not asked for
    crop_landmarks: np.ndarray | None = None  # (5, 2) in crop pixels

    @property
    def face_size(self) -> float:
        """The shorter side of the box: what decides whether a face is big enough to trust."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class Reembedded:
    parts: np.ndarray
    models: tuple[str, ...]


class FaceAnalyzer(Protocol):
    def available_models(self) -> tuple[str, ...]:
        """Manifest names of the embedding networks it can run."""
        ...

    def analyze(self, encoded: bytes, models: Sequence[str], *, keep_crop: bool = False) -> PhotoFaces:
        """The photo's faces, largest first (at most ARGUS_MAX_FACES_PER_IMAGE), embedded by each of these models."""
        ...

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        """Stored face crops embedded by these models, in order."""
        ...


def box_area(box: tuple[float, float, float, float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def largest_faces(boxes: Sequence[tuple[float, float, float, float]], limit: int) -> list[int]:
    """Indices of the `limit` largest face boxes, largest first: the faces of a crowd that are embedded (the rule of
    ARGUS_MAX_FACES_PER_IMAGE); the smaller ones are left out, so a call's work is bounded whatever the photo."""
    return sorted(range(len(boxes)), key=lambda i: box_area(boxes[i]), reverse=True)[:limit]


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


def _stored_crop_image(crop: StoredCrop) -> tuple[np.ndarray, np.ndarray]:
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

    def analyze_image(self, image: np.ndarray, models: Sequence[str], *, keep_crop: bool = False) -> PhotoFaces:
        (found,) = self.detector.detect([image], self.detector.defaults)
        if not found:
            return PhotoFaces([], 0)
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
                )
                for face, points, embedding in zip(faces, landmarks, embeddings, strict=True)
            ],
            len(found),
        )

    def analyze(self, encoded: bytes, models: Sequence[str], *, keep_crop: bool = False) -> PhotoFaces:
        image = decode_image(
            encoded, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels
        )
        return self.analyze_image(image, models, keep_crop=keep_crop)

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        decoded = [_stored_crop_image(crop) for crop in crops]
        embeddings = self.embedder.embed([image for image, _ in decoded], [points for _, points in decoded], models)
        refs = tuple(self.embedder.refs(self.embedder.check_models(models)))
        return [Reembedded(embedding.concatenated(), refs) for embedding in embeddings]

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()


_PASSED_ON: dict[grpc.StatusCode, type[ArgusError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.FAILED_PRECONDITION: ModelUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,  # the caller's deadline, passed on (argus.deadlines)
}


class RemoteFaceAnalyzer:
    """Calls the detector and the embedder services; their errors come back as this service's own. Each call ends
    by the deadline of the call being served, if it is sooner than timeout_s: no work for a caller who gave up."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.detector = DetectorClient(settings.detector_address, timeout_s, **client_options(settings))
        self.embedder = EmbedderClient(settings.embedder_address, timeout_s, **client_options(settings))

    @staticmethod
    @contextmanager
    def _errors_of(service: str, address: str) -> Iterator[None]:
        try:
            yield
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
            error = _PASSED_ON.get(code)
            if error is not None:
                raise error(details) from None
            raise DependencyUnavailable(f"the {service} at {address} failed: {code.name}: {details}") from None

    def available_models(self) -> tuple[str, ...]:
        with self._errors_of("embedder", self.settings.embedder_address):
            return tuple(model.name for model in self.embedder.list_models().models)

    @staticmethod
    def _parts(embedding: embedder_pb2.Embedding) -> np.ndarray:
        return np.concatenate([np.asarray(vector.values, dtype=np.float32) for vector in embedding.vectors])

    def analyze(self, encoded: bytes, models: Sequence[str], *, keep_crop: bool = False) -> PhotoFaces:
        if len(encoded) > self.settings.max_image_bytes:
            raise InvalidInput(f"image is {len(encoded)} bytes; the limit is {self.settings.max_image_bytes} bytes")
        with self._errors_of("detector", self.settings.detector_address):
            found = self.detector.detect_faces([encoded], timeout_s=time_left(self.timeout_s)).results[0].faces
        kept = largest_faces([box_tuple(face.box) for face in found], self.settings.max_faces_per_image)
        faces = [found[i] for i in kept]
        # The photo travels once per call, its faces as landmarks pointing to it, in calls the embedder accepts.
        step = self.settings.max_faces_per_embed_call
        embeddings: list[embedder_pb2.Embedding] = []
        refs: tuple[str, ...] = ()
        for start in range(0, len(faces), step):
            with self._errors_of("embedder", self.settings.embedder_address):
                embedded = self.embedder.embed(
                    [photo_face(0, face.landmarks) for face in faces[start : start + step]],
                    photos=[encoded],
                    models=models,
                    return_face_crop=keep_crop,
                    timeout_s=time_left(self.timeout_s),
                )
            embeddings += embedded.embeddings
            refs = tuple(embedded.models)
        return PhotoFaces(
            [
                AnalyzedFace(
                    box=box_tuple(face.box),
                    score=face.score,
                    landmarks=landmarks_array(face.landmarks),
                    parts=self._parts(embedding),
                    models=refs,
                    sharpness=embedding.sharpness,
                    crop_png=embedding.face_crop_png,
                    crop_landmarks=landmarks_array(embedding.face_crop_landmarks) if keep_crop else None,
                )
                for face, embedding in zip(faces, embeddings, strict=True)
            ],
            len(found),
        )

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        inputs = [
            aligned_face(crop.png) if crop.landmarks is None else landmarked_face(crop.png, crop.landmarks)
            for crop in crops
        ]
        with self._errors_of("embedder", self.settings.embedder_address):
            embedded = self.embedder.embed(inputs, models=models, timeout_s=time_left(self.timeout_s))
        return [Reembedded(self._parts(embedding), tuple(embedded.models)) for embedding in embedded.embeddings]

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()
