"""The EmbedderService: protobuf in, crops through align_face and FaceEmbedder, protobuf out."""

from __future__ import annotations

import cv2
import grpc
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import decode_image
from argus.messages import LANDMARK_NAMES, landmarks_array, landmarks_message
from argus.proto.common.v1 import common_pb2
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.services.embedder.align import ALIGNED_SIZE, TEMPLATE_112, FaceCrop, face_crop
from argus.services.embedder.embedder import FaceEmbedder

# A call embeds the faces found in a few photos, and a photo often holds more than one face, so the face limit is
# this many times the per-call image limit (32 images by default: 128 faces). It bounds the work one call can
# queue: with flip augmentation each face is two forward-pass items, so the default limit fills the default batch
# queue (256) and no further. Distinct source photos stay within the image limit itself, which bounds memory.
FACES_PER_IMAGE = 4


def encode_png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def _checked_landmarks(message: common_pb2.FaceLandmarks, index: int) -> np.ndarray:
    """The five points as a (5, 2) array; missing or non-finite points are the caller's error, named as such."""
    missing = [name for name in LANDMARK_NAMES if not message.HasField(name)]
    if missing:
        raise InvalidInput(
            f"face {index}: landmarks missing {', '.join(missing)}; all five are needed ({', '.join(LANDMARK_NAMES)})"
        )
    points = landmarks_array(message)
    bad = [name for name, point in zip(LANDMARK_NAMES, points, strict=True) if not np.isfinite(point).all()]
    if bad:
        raise InvalidInput(f"face {index}: landmark coordinates must be finite numbers; {', '.join(bad)} is not")
    return points


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    def __init__(self, embedder: FaceEmbedder, settings: Settings) -> None:
        self.embedder = embedder
        self.settings = settings
        self.max_faces = settings.max_images_per_request * FACES_PER_IMAGE

    def _decode(self, data: bytes, index: int) -> np.ndarray:
        try:
            return decode_image(
                data, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels
            )
        except InvalidInput as exc:
            raise InvalidInput(f"face {index}: {exc}") from None

    def _crops(self, faces: list[embedder_pb2.FaceInput]) -> list[FaceCrop]:
        """Every face as a FaceCrop, in request order. Each distinct photo is decoded once, however many faces it
        carries; cheap checks on all faces come before any decoding."""
        if not faces:
            raise InvalidInput("the request holds no faces; send at least one")
        if len(faces) > self.max_faces:
            raise InvalidInput(f"the request holds {len(faces)} faces; the limit is {self.max_faces} per call")
        landmarks: dict[int, np.ndarray] = {}
        photos: set[bytes] = set()
        for index, face in enumerate(faces):
            kind = face.WhichOneof("face")
            if kind is None:
                raise InvalidInput(f"face {index}: set either landmarked (a photo and its landmarks) or aligned")
            if kind == "landmarked":
                if not face.landmarked.HasField("landmarks"):
                    raise InvalidInput(f"face {index}: a landmarked face needs its five landmarks")
                landmarks[index] = _checked_landmarks(face.landmarked.landmarks, index)
                photos.add(face.landmarked.image.data)
        if len(photos) > self.settings.max_images_per_request:
            raise InvalidInput(
                f"the faces come from {len(photos)} different photos; the limit is "
                f"{self.settings.max_images_per_request} per call"
            )

        decoded: dict[bytes, np.ndarray] = {}
        crops = []
        for index, face in enumerate(faces):
            if index in landmarks:
                data = face.landmarked.image.data
                if data not in decoded:
                    decoded[data] = self._decode(data, index)
                crops.append(face_crop(decoded[data], landmarks[index]))
            else:
                crop = self._decode(face.aligned.data, index)
                if crop.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE):
                    height, width = crop.shape[:2]
                    raise InvalidInput(
                        f"face {index}: an aligned face must be exactly {ALIGNED_SIZE}x{ALIGNED_SIZE} pixels, "
                        f"aligned to the ArcFace template; got {width}x{height}. Send a photo with landmarks instead"
                    )
                crops.append(face_crop(crop, TEMPLATE_112))
        return crops

    def Embed(self, request: embedder_pb2.EmbedRequest, context: grpc.ServicerContext) -> embedder_pb2.EmbedResponse:
        models = self.embedder.check_models(list(request.models))
        crops = self._crops(list(request.faces))
        embeddings = self.embedder.embed_crops(crops, models)
        refs = self.embedder.refs(models)
        return embedder_pb2.EmbedResponse(
            models=refs,
            flip_augmented=self.embedder.flip,
            embeddings=[
                embedder_pb2.Embedding(
                    vectors=[
                        embedder_pb2.ModelVector(model=ref, values=vector.tolist())
                        for ref, vector in zip(refs, embedding.vectors.values(), strict=True)
                    ],
                    sharpness=embedding.sharpness,
                    face_crop_png=encode_png(embedding.crop.image) if request.return_face_crop else b"",
                    face_crop_landmarks=landmarks_message(embedding.crop.landmarks)
                    if request.return_face_crop
                    else None,
                )
                for embedding in embeddings
            ],
        )

    def ListModels(
        self, request: embedder_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> embedder_pb2.ListModelsResponse:
        return embedder_pb2.ListModelsResponse(
            models=[
                embedder_pb2.EmbeddingModelInfo(
                    name=model.spec.name,
                    version=model.spec.version,
                    dimension=model.dimension,
                    licence=model.spec.licence,
                    provider=model.provider,
                )
                for model in self.embedder.models.values()
            ]
        )
