"""The face analysis facedb serves with: the detector and embedder services, called over gRPC."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc
import numpy as np

from argus.analysis import AnalyzedFace, PhotoFaces, Reembedded, StoredCrop, largest_faces
from argus.client import (
    DetectorClient,
    EmbedderClient,
    aligned_face,
    client_options,
    cropped_face,
    landmarked_face,
    photo_face,
)
from argus.config import FACES_PER_IMAGE, Settings
from argus.deadlines import time_left
from argus.errors import InvalidInput
from argus.grpc_status import error_from_dependency
from argus.messages import box_tuple, landmarks_array, landmarks_message
from argus.proto.embedder.v1 import embedder_pb2


@contextmanager
def _errors_of(service: str, address: str) -> Iterator[None]:
    """A failed call to a dependency raised as this service's own error (argus.grpc_status.PASSED_ON)."""
    try:
        yield
    except grpc.RpcError as exc:
        raise error_from_dependency(service, address, exc) from None


def _parts(embedding: embedder_pb2.Embedding) -> np.ndarray:
    return np.concatenate([np.asarray(vector.values, dtype=np.float32) for vector in embedding.vectors])


class RemoteFaceAnalyzer:
    """Calls the detector and the embedder services; their errors come back as this service's own. Each call ends
    by the deadline of the call being served, if it is sooner than timeout_s: no work for a caller who gave up."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.detector = DetectorClient(settings.detector_address, timeout_s, **client_options(settings))
        self.embedder = EmbedderClient(settings.embedder_address, timeout_s, **client_options(settings))

    def available_models(self) -> tuple[str, ...]:
        with _errors_of("embedder", self.settings.embedder_address):
            return tuple(model.name for model in self.embedder.list_models().models)

    def analyze(
        self,
        encoded: bytes,
        models: Sequence[str],
        *,
        keep_crop: bool = False,
        liveness: bool = False,
        largest_only: bool = False,
    ) -> PhotoFaces:
        if len(encoded) > self.settings.max_image_bytes:
            raise InvalidInput(f"image is {len(encoded)} bytes; the limit is {self.settings.max_image_bytes} bytes")
        with _errors_of("detector", self.settings.detector_address):
            (result,) = self.detector.detect_faces(
                [encoded],
                liveness=liveness,
                largest_only=largest_only,
                face_crops=FACES_PER_IMAGE,
                timeout_s=time_left(self.timeout_s),
            ).results
        found = result.faces
        kept = largest_faces([box_tuple(face.box) for face in found], self.settings.max_faces_per_image)
        faces = [found[i] for i in kept]
        # The faces go on to the embedder as the crops the detector cut from the photo it decoded, so the photo is
        # neither sent again nor decoded twice. A crowd (more faces than the detector cuts) or a detector from before
        # face crops sends the photo instead: once per call, its faces as landmarks pointing to it.
        cropped = all(face.HasField("crop") for face in faces)
        inputs = [cropped_face(face.crop) if cropped else photo_face(0, face.landmarks) for face in faces]
        step = self.settings.max_faces_per_embed_call
        embeddings: list[embedder_pb2.Embedding] = []
        refs: tuple[str, ...] = ()
        for start in range(0, len(faces), step):
            with _errors_of("embedder", self.settings.embedder_address):
                embedded = self.embedder.embed(
                    inputs[start : start + step],
                    photos=[] if cropped else [encoded],
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
                    parts=_parts(embedding),
                    models=refs,
                    sharpness=embedding.sharpness,
                    crop_png=embedding.face_crop_png,
                    crop_landmarks=landmarks_array(embedding.face_crop_landmarks) if keep_crop else None,
                    liveness=face.liveness if face.HasField("liveness") else None,
                )
                for face, embedding in zip(faces, embeddings, strict=True)
            ],
            max(result.faces_found, len(found)),  # a detector from before faces_found leaves it 0
        )

    def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
        inputs = [
            aligned_face(crop.png)
            if crop.landmarks is None
            else landmarked_face(crop.png, landmarks_message(crop.landmarks))
            for crop in crops
        ]
        with _errors_of("embedder", self.settings.embedder_address):
            embedded = self.embedder.embed(inputs, models=models, timeout_s=time_left(self.timeout_s))
        return [Reembedded(_parts(embedding), tuple(embedded.models)) for embedding in embedded.embeddings]

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()
