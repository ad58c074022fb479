"""Detections as the detector's protobuf responses: what the DetectorService answers, and what a detection job's
result holds (the jobs API reuses these messages)."""

from __future__ import annotations

from collections.abc import Sequence

from argus.alignment import FaceCrop
from argus.messages import box_message, landmarks_message
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2
from argus.services.detector.faces import DetectedFace
from argus.services.detector.objects import DetectedObject
from argus.services.detector.service import ImageFaces, ImageObjects


def objects_response(
    model: str, images: Sequence[common_pb2.Image], found: Sequence[ImageObjects]
) -> detector_pb2.DetectObjectsResponse:
    """`found` for the request's `images`, in their order (each result names its image)."""
    return detector_pb2.DetectObjectsResponse(
        model=model,
        results=[
            detector_pb2.ImageObjects(
                image_name=source.name, image_size=_size(one.size), objects=[_object(d) for d in one.objects]
            )
            for source, one in zip(images, found, strict=True)
        ],
    )


def faces_response(
    model: str, images: Sequence[common_pb2.Image], found: Sequence[ImageFaces]
) -> detector_pb2.DetectFacesResponse:
    return detector_pb2.DetectFacesResponse(
        model=model,
        results=[
            detector_pb2.ImageFaces(
                image_name=source.name,
                image_size=_size(one.size),
                faces=[_face(face, one.crops.get(i)) for i, face in enumerate(one.faces)],
                faces_found=one.found,
            )
            for source, one in zip(images, found, strict=True)
        ],
    )


def _size(size: tuple[int, int]) -> common_pb2.ImageSize:
    width, height = size
    return common_pb2.ImageSize(width=width, height=height)


def _object(detection: DetectedObject) -> detector_pb2.DetectedObject:
    return detector_pb2.DetectedObject(
        class_id=detection.class_id,
        class_name=detection.class_name,
        score=detection.score,
        box=box_message(detection.box),
    )


def _face(face: DetectedFace, crop: FaceCrop | None) -> detector_pb2.DetectedFace:
    return detector_pb2.DetectedFace(
        box=box_message(face.box),
        score=face.score,
        landmarks=landmarks_message(face.landmarks),
        liveness=face.liveness,
        crop=None if crop is None else face_crop_message(crop),
    )


def face_crop_message(crop: FaceCrop) -> common_pb2.FaceCrop:
    return common_pb2.FaceCrop(bgr=crop.image.tobytes(), landmarks=landmarks_message(crop.landmarks))
