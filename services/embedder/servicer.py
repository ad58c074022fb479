"""The EmbedderService: protobuf in, crops through align_face and FaceEmbedder, protobuf out."""

from __future__ import annotations

import cv2
import grpc
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import ImageHeader, ImageLimits, PixelBudget, check_request_pixels, decode_image, read_header
from argus.messages import LANDMARK_NAMES, landmarks_array, landmarks_message
from argus.proto.common.v1 import common_pb2
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.services.embedder.align import ALIGNED_SIZE, TEMPLATE_112, FaceCrop, face_crop
from argus.services.embedder.embedder import FaceEmbedder


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
        self.max_faces = settings.max_faces_per_embed_call
        self.limits = ImageLimits.from_settings(settings)
        self.pixel_budget = PixelBudget.from_settings(settings)

    def _decode(self, data: bytes, index: int) -> np.ndarray:
        try:
            return decode_image(data, max_bytes=self.limits.max_bytes, max_pixels=self.limits.max_pixels)
        except InvalidInput as exc:
            raise InvalidInput(f"face {index}: {exc}") from None

    def _header(self, data: bytes, index: int) -> ImageHeader:
        try:
            return read_header(data, max_bytes=self.limits.max_bytes, max_pixels=self.limits.max_pixels)
        except InvalidInput as exc:
            raise InvalidInput(f"face {index}: {exc}") from None

    def _photo_faces(self, request: embedder_pb2.EmbedRequest) -> dict[bytes, list[tuple[int, np.ndarray]]]:
        """The landmarked faces grouped by photo, in order of first use: the cheap checks of every face."""
        faces, photos = request.faces, request.photos
        if not faces:
            raise InvalidInput("the request holds no faces; send at least one")
        if len(faces) > self.max_faces:
            raise InvalidInput(f"the request holds {len(faces)} faces; the limit is {self.max_faces} per call")
        if len(photos) > self.limits.max_images:
            raise InvalidInput(
                f"the request holds {len(photos)} photos; the limit is {self.limits.max_images} per call"
            )
        by_photo: dict[bytes, list[tuple[int, np.ndarray]]] = {}
        for index, face in enumerate(faces):
            kind = face.WhichOneof("face")
            if kind is None:
                raise InvalidInput(f"face {index}: set either landmarked (a photo and its landmarks) or aligned")
            if kind != "landmarked":
                continue
            landmarked = face.landmarked
            if not landmarked.HasField("landmarks"):
                raise InvalidInput(f"face {index}: a landmarked face needs its five landmarks")
            points = _checked_landmarks(landmarked.landmarks, index)
            if landmarked.WhichOneof("source") == "photo":
                if not 0 <= landmarked.photo < len(photos):
                    raise InvalidInput(
                        f"face {index}: photo {landmarked.photo} is not in the request, which holds {len(photos)}"
                    )
                data = photos[landmarked.photo].data
            else:
                data = landmarked.image.data
            by_photo.setdefault(data, []).append((index, points))
        if len(by_photo) > self.limits.max_images:
            raise InvalidInput(
                f"the faces come from {len(by_photo)} different photos; the limit is {self.limits.max_images} per call"
            )
        return by_photo

    def _check_aligned(self, data: bytes, index: int) -> None:
        header = self._header(data, index)
        if (header.width, header.height) != (ALIGNED_SIZE, ALIGNED_SIZE):
            raise InvalidInput(
                f"face {index}: an aligned face must be exactly {ALIGNED_SIZE}x{ALIGNED_SIZE} pixels, aligned to the "
                f"ArcFace template; got {header.width}x{header.height}. Send a photo with landmarks instead"
            )

    def _crops(self, request: embedder_pb2.EmbedRequest) -> list[FaceCrop]:
        """Every face as a FaceCrop, in request order. All checks, image headers included, come before any
        decoding; then each distinct photo is decoded once, within the server's pixel budget, cut into its faces'
        crops and let go before the next is decoded."""
        by_photo = self._photo_faces(request)
        aligned = {i: face.aligned.data for i, face in enumerate(request.faces) if face.WhichOneof("face") == "aligned"}
        for index, data in aligned.items():
            self._check_aligned(data, index)
        headers = {data: self._header(data, members[0][0]) for data, members in by_photo.items()}
        check_request_pixels(list(headers.values()), self.limits)
        crops: dict[int, FaceCrop] = {}
        for data, members in by_photo.items():
            with self.pixel_budget.reserve(headers[data].pixels):
                photo = self._decode(data, members[0][0])
                crops |= {index: face_crop(photo, points) for index, points in members}
                del photo
        crops |= {index: face_crop(self._decode(data, index), TEMPLATE_112) for index, data in aligned.items()}
        return [crops[index] for index in range(len(request.faces))]

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
                )
                for model in self.embedder.models.values()
            ]
        )
