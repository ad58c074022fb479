"""The EmbedderService: protobuf in, checked by requests.py, crops through align_face and FaceEmbedder, protobuf
out."""

from __future__ import annotations

import cv2
import grpc
import numpy as np

from argus.alignment import TEMPLATE_112, FaceCrop, face_crop
from argus.config import Settings
from argus.imaging import PixelBudget, decode_image
from argus.messages import landmarks_message
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.services.embedder.embedder import FaceEmbedder
from argus.services.embedder.requests import EmbedLimits, about_face, check_embed_request


def encode_png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    def __init__(self, embedder: FaceEmbedder, settings: Settings) -> None:
        self.embedder = embedder
        self.limits = EmbedLimits.from_settings(settings)
        self.pixel_budget = PixelBudget.from_settings(settings)

    def _decode(self, data: bytes, index: int) -> np.ndarray:
        images = self.limits.images
        with about_face(index):
            return decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels)

    def _crops(self, request: embedder_pb2.EmbedRequest) -> list[FaceCrop]:
        """Every face as a FaceCrop, in request order. Once the request passed its checks, each distinct photo is
        decoded once, within the server's pixel budget, cut into its faces' crops and let go before the next is
        decoded; a face crop sent as pixels is taken as it is."""
        checked = check_embed_request(request, self.limits)
        crops: dict[int, FaceCrop] = {}
        for data, members in checked.photos.items():
            with self.pixel_budget.reserve(checked.headers[data].pixels):
                photo = self._decode(data, members[0][0])
                crops |= {index: face_crop(photo, points) for index, points in members}
                del photo
        crops |= {index: face_crop(self._decode(data, index), TEMPLATE_112) for index, data in checked.aligned.items()}
        crops |= checked.crops
        return [crops[index] for index in range(checked.count)]

    def Embed(self, request: embedder_pb2.EmbedRequest, context: grpc.ServicerContext) -> embedder_pb2.EmbedResponse:
        models = self.embedder.check_models(list(request.models))
        crops = self._crops(request)
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
                    precision=model.precision,
                )
                for model in self.embedder.models.values()
            ]
        )
