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

from argus.client import DetectorClient, EmbedderClient, aligned_face, client_options, landmarked_face
from argus.config import Settings
from argus.errors import ArgusError, DependencyUnavailable, InvalidInput, ModelUnavailable, Overloaded
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

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@dataclass(frozen=True)
class Reembedded:
    parts: np.ndarray
    models: tuple[str, ...]


class FaceAnalyzer(Protocol):
    def available_models(self) -> tuple[str, ...]:
        """Manifest names of the embedding networks it can run."""
        ...

    def analyze(self, encoded: bytes, models: Sequence[str], *, keep_crop: bool = False) -> list[AnalyzedFace]:
        """Every face in the photo, largest first, embedded by each of these models."""
        ...

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        """Stored face crops embedded by these models, in order."""
        ...


def largest_first(faces: list[AnalyzedFace]) -> list[AnalyzedFace]:
    return sorted(faces, key=lambda face: face.area, reverse=True)


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

    def analyze_image(self, image: np.ndarray, models: Sequence[str], *, keep_crop: bool = False) -> list[AnalyzedFace]:
        (faces,) = self.detector.detect([image], self.detector.defaults)
        if not faces:
            return []
        landmarks = [np.asarray(face.landmarks, dtype=np.float64) for face in faces]
        embeddings = self.embedder.embed([image] * len(faces), landmarks, models)
        refs = tuple(self.embedder.refs(list(embeddings[0].vectors)))
        return largest_first(
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
            ]
        )

    def analyze(self, encoded: bytes, models: Sequence[str], *, keep_crop: bool = False) -> list[AnalyzedFace]:
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
}


class RemoteFaceAnalyzer:
    """Calls the detector and the embedder services; their errors come back as this service's own."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.settings = settings
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

    def analyze(self, encoded: bytes, models: Sequence[str], *, keep_crop: bool = False) -> list[AnalyzedFace]:
        if len(encoded) > self.settings.max_image_bytes:
            raise InvalidInput(f"image is {len(encoded)} bytes; the limit is {self.settings.max_image_bytes} bytes")
        with self._errors_of("detector", self.settings.detector_address):
            faces = self.detector.detect_faces([encoded]).results[0].faces
        if not faces:
            return []
        with self._errors_of("embedder", self.settings.embedder_address):
            embedded = self.embedder.embed(
                [landmarked_face(encoded, face.landmarks) for face in faces], models=models, return_face_crop=keep_crop
            )
        return largest_first(
            [
                AnalyzedFace(
                    box=box_tuple(face.box),
                    score=face.score,
                    landmarks=landmarks_array(face.landmarks),
                    parts=self._parts(embedding),
                    models=tuple(embedded.models),
                    sharpness=embedding.sharpness,
                    crop_png=embedding.face_crop_png,
                    crop_landmarks=landmarks_array(embedding.face_crop_landmarks) if keep_crop else None,
                )
                for face, embedding in zip(faces, embedded.embeddings, strict=True)
            ]
        )

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        inputs = [
            aligned_face(crop.png) if crop.landmarks is None else landmarked_face(crop.png, crop.landmarks)
            for crop in crops
        ]
        with self._errors_of("embedder", self.settings.embedder_address):
            embedded = self.embedder.embed(inputs, models=models)
        return [Reembedded(self._parts(embedding), tuple(embedded.models)) for embedding in embedded.embeddings]

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()
