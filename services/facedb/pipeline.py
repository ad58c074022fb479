"""From a photo to its faces' embeddings: detect, align, embed.

facedb calls the detector and embedder services over gRPC (`RemoteFaceAnalyzer`); evaluation and calibration run
the same models in process (`LocalFaceAnalyzer`). Both give the same `AnalyzedFace` records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import cv2
import grpc
import numpy as np

from argus.client import DetectorClient, EmbedderClient, client_options, landmarked_face
from argus.config import Settings
from argus.errors import ArgusError, DependencyUnavailable, InvalidInput, ModelUnavailable, Overloaded
from argus.imaging import decode_image
from argus.messages import box_tuple, landmarks_array
from argus.models.manifest import MOBILEFACENET
from argus.models.store import ModelStore
from argus.services.detector.faces import FaceDetector
from argus.services.embedder.embedder import FaceEmbedder


@dataclass(frozen=True)
class AnalyzedFace:
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (5, 2) in source pixels
    embedding: np.ndarray  # (d,) float32, unit length
    sharpness: float
    aligned_png: bytes  # the 112x112 crop that was embedded; empty when not asked for

    @property
    def face_size(self) -> float:
        """The shorter side of the box: what decides whether a face is big enough to trust."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


class FaceAnalyzer(Protocol):
    @property
    def model_ref(self) -> str: ...

    def analyze(self, encoded: bytes, *, keep_aligned: bool = False) -> list[AnalyzedFace]:
        """Every face in the photo, largest first."""
        ...


def largest_first(faces: list[AnalyzedFace]) -> list[AnalyzedFace]:
    return sorted(faces, key=lambda face: face.area, reverse=True)


class LocalFaceAnalyzer:
    """Runs the detector and the embedder in this process."""

    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.settings = settings
        self.detector = FaceDetector(store, settings)
        self.embedder = FaceEmbedder(store, settings)

    @property
    def model_ref(self) -> str:
        return self.embedder.model_ref

    def analyze_image(self, image: np.ndarray, *, keep_aligned: bool = False) -> list[AnalyzedFace]:
        (faces,) = self.detector.detect([image], self.detector.defaults)
        if not faces:
            return []
        landmarks = [np.asarray(face.landmarks, dtype=np.float64) for face in faces]
        embeddings = self.embedder.embed([image] * len(faces), landmarks)
        return largest_first(
            [
                AnalyzedFace(
                    box=face.box,
                    score=face.score,
                    landmarks=points,
                    embedding=embedding.vector,
                    sharpness=embedding.sharpness,
                    aligned_png=cv2.imencode(".png", embedding.aligned)[1].tobytes() if keep_aligned else b"",
                )
                for face, points, embedding in zip(faces, landmarks, embeddings, strict=True)
            ]
        )

    def analyze(self, encoded: bytes, *, keep_aligned: bool = False) -> list[AnalyzedFace]:
        image = decode_image(
            encoded, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels
        )
        return self.analyze_image(image, keep_aligned=keep_aligned)

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

    @property
    def model_ref(self) -> str:
        return MOBILEFACENET.ref

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

    def analyze(self, encoded: bytes, *, keep_aligned: bool = False) -> list[AnalyzedFace]:
        if len(encoded) > self.settings.max_image_bytes:
            raise InvalidInput(f"image is {len(encoded)} bytes; the limit is {self.settings.max_image_bytes} bytes")
        with self._errors_of("detector", self.settings.detector_address):
            faces = self.detector.detect_faces([encoded]).results[0].faces
        if not faces:
            return []
        with self._errors_of("embedder", self.settings.embedder_address):
            embedded = self.embedder.embed(
                [landmarked_face(encoded, face.landmarks) for face in faces], return_aligned=keep_aligned
            )
        if embedded.model != self.model_ref:
            raise ModelUnavailable(f"the embedder runs {embedded.model}, but this face database needs {self.model_ref}")
        return largest_first(
            [
                AnalyzedFace(
                    box=box_tuple(face.box),
                    score=face.score,
                    landmarks=landmarks_array(face.landmarks),
                    embedding=np.asarray(embedding.values, dtype=np.float32),
                    sharpness=embedding.sharpness,
                    aligned_png=embedding.aligned_png,
                )
                for face, embedding in zip(faces, embedded.embeddings, strict=True)
            ]
        )

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()
