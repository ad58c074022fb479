"""The DetectorService: protobuf in, domain objects through ObjectDetector and FaceDetector, protobuf out."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import ImageLimits, PixelBudget, decode_request_images
from argus.messages import box_message, landmarks_message
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.services.detector.faces import DetectedFace, FaceDetector, FaceOptions
from argus.services.detector.objects import DetectedObject, ObjectDetector, ObjectOptions, resolve_classes

T = TypeVar("T")


def _threshold(value: float, default: float, field: str) -> float:
    if value == 0:
        return default
    if not (math.isfinite(value) and 0 < value <= 1):
        raise InvalidInput(f"options.{field} must be in (0, 1], or 0 for the default; got {value}")
    return value


def _max_detections(value: int, default: int) -> int:
    if value < 0:
        raise InvalidInput(f"options.max_detections must be positive, or 0 for the default; got {value}")
    return min(value, default) if value else default


def object_options(
    options: detector_pb2.DetectionOptions, class_names: list[str], class_ids: list[int], defaults: ObjectOptions
) -> ObjectOptions:
    """Request options over the server's defaults; InvalidInput names a bad one. The jobs API checks a detection
    job with this before queueing it, so a job fails at submit rather than in a worker."""
    return ObjectOptions(
        _threshold(options.score_threshold, defaults.score_threshold, "score_threshold"),
        _threshold(options.nms_iou_threshold, defaults.iou_threshold, "nms_iou_threshold"),
        _max_detections(options.max_detections, defaults.max_detections),
        resolve_classes(class_names, class_ids),
    )


def face_options(options: detector_pb2.DetectionOptions, defaults: FaceOptions, *, coarse: bool = False) -> FaceOptions:
    return FaceOptions(
        _threshold(options.score_threshold, defaults.score_threshold, "score_threshold"),
        _threshold(options.nms_iou_threshold, defaults.iou_threshold, "nms_iou_threshold"),
        _max_detections(options.max_detections, defaults.max_detections),
        defaults.refine_landmarks and not coarse,
    )


def _size(image: np.ndarray) -> common_pb2.ImageSize:
    return common_pb2.ImageSize(width=image.shape[1], height=image.shape[0])


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    def __init__(self, objects: ObjectDetector, faces: FaceDetector, settings: Settings) -> None:
        self.objects = objects
        self.faces = faces
        self.settings = settings
        self.limits = ImageLimits.from_settings(settings)
        self.pixel_budget = PixelBudget.from_settings(settings)

    def _each_image(self, images: Sequence[common_pb2.Image], use: Callable[[np.ndarray], T]) -> list[T]:
        """`use` on each decoded image, one full-size image at a time (see decode_request_images)."""
        return decode_request_images([image.data for image in images], self.limits, self.pixel_budget, use)

    def DetectObjects(
        self, request: detector_pb2.DetectObjectsRequest, context: grpc.ServicerContext
    ) -> detector_pb2.DetectObjectsResponse:
        options = object_options(
            request.options, list(request.class_names), list(request.class_ids), self.objects.defaults
        )
        # Every image's pass is queued as soon as it is decoded, so the request's images share forward passes.
        pending = self._each_image(request.images, self.objects.submit)
        return detector_pb2.DetectObjectsResponse(
            model=self.objects.model.spec.ref,
            results=[
                detector_pb2.ImageObjects(
                    image_name=source.name,
                    image_size=common_pb2.ImageSize(width=one.image_size[0], height=one.image_size[1]),
                    objects=[_object(d) for d in self.objects.collect(one, options)],
                )
                for source, one in zip(request.images, pending, strict=True)
            ],
        )

    def DetectFaces(
        self, request: detector_pb2.DetectFacesRequest, context: grpc.ServicerContext
    ) -> detector_pb2.DetectFacesResponse:
        options = face_options(request.options, self.faces.defaults, coarse=request.coarse_landmarks)
        # The landmarks' second look needs the full-size image, so each image is detected before the next decodes.
        found = self._each_image(request.images, lambda image: (_size(image), self.faces.detect([image], options)[0]))
        return detector_pb2.DetectFacesResponse(
            model=self.faces.model.spec.ref,
            results=[
                detector_pb2.ImageFaces(image_name=source.name, image_size=size, faces=[_face(f) for f in faces])
                for source, (size, faces) in zip(request.images, found, strict=True)
            ],
        )


def _object(detection: DetectedObject) -> detector_pb2.DetectedObject:
    return detector_pb2.DetectedObject(
        class_id=detection.class_id,
        class_name=detection.class_name,
        score=detection.score,
        box=box_message(detection.box),
    )


def _face(face: DetectedFace) -> detector_pb2.DetectedFace:
    return detector_pb2.DetectedFace(
        box=box_message(face.box), score=face.score, landmarks=landmarks_message(face.landmarks)
    )
