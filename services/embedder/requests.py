"""The embedder's request checks, at the service boundary: every rule an Embed request must meet, each stated once
and all of them met before a single pixel is decoded (image headers included). Which models may be asked for is
the embedder's own rule (FaceEmbedder.check_models): only it knows what it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from argus.alignment import ALIGNED_SIZE, FACE_CROP_SIZE, FaceCrop
from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import ImageHeader, ImageLimits, check_request_pixels, read_header
from argus.messages import LANDMARK_NAMES, landmarks_array
from argus.proto.common.v1 import common_pb2
from argus.proto.embedder.v1 import embedder_pb2

FaceLandmarks = list[tuple[int, np.ndarray]]  # (face index in the request, its five points) of one photo


@dataclass(frozen=True)
class EmbedLimits:
    max_faces: int
    images: ImageLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedLimits:
        return cls(settings.max_faces_per_embed_call, ImageLimits.from_settings(settings))


@dataclass(frozen=True)
class CheckedFaces:
    """An Embed request's faces once every check passed: what is left to do is decoding them."""

    count: int
    photos: dict[bytes, FaceLandmarks]  # each distinct photo, in order of first use, with its landmarked faces
    headers: dict[bytes, ImageHeader]  # of each photo
    aligned: dict[int, bytes]  # face index -> an aligned ALIGNED_SIZE face
    crops: dict[int, FaceCrop]  # face index -> a face crop sent as pixels (nothing to decode)


@contextmanager
def about_face(index: int) -> Iterator[None]:
    """Names the face an InvalidInput raised inside is about."""
    try:
        yield
    except InvalidInput as exc:
        raise InvalidInput(f"face {index}: {exc}") from None


def checked_landmarks(message: common_pb2.FaceLandmarks, index: int) -> np.ndarray:
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


def check_embed_request(request: embedder_pb2.EmbedRequest, limits: EmbedLimits) -> CheckedFaces:
    """Every face of the request checked, cheap checks of all faces first, then the image headers and the
    request's pixel budget; raises InvalidInput naming the first face at fault."""
    photos = _photo_faces(request, limits)
    aligned = {i: face.aligned.data for i, face in enumerate(request.faces) if face.WhichOneof("face") == "aligned"}
    crops = {
        i: _checked_crop(face.crop, i) for i, face in enumerate(request.faces) if face.WhichOneof("face") == "crop"
    }
    for index, data in aligned.items():
        _check_aligned(_header(data, index, limits.images), index)
    headers = {data: _header(data, members[0][0], limits.images) for data, members in photos.items()}
    check_request_pixels(list(headers.values()), limits.images)
    return CheckedFaces(len(request.faces), photos, headers, aligned, crops)


FACE_CROP_BYTES = FACE_CROP_SIZE * FACE_CROP_SIZE * 3


def _checked_crop(crop: common_pb2.FaceCrop, index: int) -> FaceCrop:
    """A face crop's pixels as the (read-only) array they are, and its landmarks, checked."""
    if len(crop.bgr) != FACE_CROP_BYTES:
        raise InvalidInput(
            f"face {index}: a face crop is {FACE_CROP_SIZE}x{FACE_CROP_SIZE} BGR pixels, {FACE_CROP_BYTES} bytes; "
            f"got {len(crop.bgr)}"
        )
    if not crop.HasField("landmarks"):
        raise InvalidInput(f"face {index}: a face crop needs the five landmarks in it")
    pixels = np.frombuffer(crop.bgr, dtype=np.uint8).reshape(FACE_CROP_SIZE, FACE_CROP_SIZE, 3)
    return FaceCrop(pixels, checked_landmarks(crop.landmarks, index))


def _photo_faces(request: embedder_pb2.EmbedRequest, limits: EmbedLimits) -> dict[bytes, FaceLandmarks]:
    """The landmarked faces grouped by photo, in order of first use: the cheap checks of every face."""
    faces, photos, max_images = request.faces, request.photos, limits.images.max_images
    if not faces:
        raise InvalidInput("the request holds no faces; send at least one")
    if len(faces) > limits.max_faces:
        raise InvalidInput(f"the request holds {len(faces)} faces; the limit is {limits.max_faces} per call")
    if len(photos) > max_images:
        raise InvalidInput(f"the request holds {len(photos)} photos; the limit is {max_images} per call")
    by_photo: dict[bytes, FaceLandmarks] = {}
    for index, face in enumerate(faces):
        kind = face.WhichOneof("face")
        if kind is None:
            raise InvalidInput(
                f"face {index}: set one of landmarked (a photo and its landmarks), aligned or crop (a detector's)"
            )
        if kind != "landmarked":
            continue
        landmarked = face.landmarked
        if not landmarked.HasField("landmarks"):
            raise InvalidInput(f"face {index}: a landmarked face needs its five landmarks")
        points = checked_landmarks(landmarked.landmarks, index)
        if landmarked.WhichOneof("source") == "photo":
            if not 0 <= landmarked.photo < len(photos):
                raise InvalidInput(
                    f"face {index}: photo {landmarked.photo} is not in the request, which holds {len(photos)}"
                )
            data = photos[landmarked.photo].data
        else:
            data = landmarked.image.data
        by_photo.setdefault(data, []).append((index, points))
    if len(by_photo) > max_images:
        raise InvalidInput(f"the faces come from {len(by_photo)} different photos; the limit is {max_images} per call")
    return by_photo


def _header(data: bytes, index: int, limits: ImageLimits) -> ImageHeader:
    with about_face(index):
        return read_header(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)


def _check_aligned(header: ImageHeader, index: int) -> None:
    if (header.width, header.height) != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise InvalidInput(
            f"face {index}: an aligned face must be exactly {ALIGNED_SIZE}x{ALIGNED_SIZE} pixels, aligned to the "
            f"ArcFace template; got {header.width}x{header.height}. Send a photo with landmarks instead"
        )
