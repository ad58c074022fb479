"""A request's detection options over the server's defaults, checked: pure functions from the proto to the options
the detectors take. The DetectorService reads its requests with them, and the jobs API checks a detection job with
them before queueing it, so a job with a bad option fails at submit rather than in a worker."""

from __future__ import annotations

import math
from collections.abc import Sequence

from argus.config import FACES_PER_IMAGE
from argus.errors import InvalidInput
from argus.proto.detector.v1 import detector_pb2
from argus.services.detector.faces import FaceOptions
from argus.services.detector.objects import ObjectOptions, resolve_classes


def threshold(value: float, default: float, field: str) -> float:
    """A score or IoU threshold: 0 (the proto default) is the server's default; otherwise in (0, 1]."""
    if value == 0:
        return default
    if not (math.isfinite(value) and 0 < value <= 1):
        raise InvalidInput(f"options.{field} must be in (0, 1], or 0 for the default; got {value}")
    return value


def max_detections(value: int, default: int) -> int:
    """At most the server's cap: a request may ask for fewer detections, never more; 0 is the cap itself."""
    if value < 0:
        raise InvalidInput(f"options.max_detections must be positive, or 0 for the default; got {value}")
    return min(value, default) if value else default


def object_options(
    options: detector_pb2.DetectionOptions,
    class_names: Sequence[str],
    class_ids: Sequence[int],
    defaults: ObjectOptions,
) -> ObjectOptions:
    """InvalidInput names the bad option, or the unknown class."""
    return ObjectOptions(
        threshold(options.score_threshold, defaults.score_threshold, "score_threshold"),
        threshold(options.nms_iou_threshold, defaults.iou_threshold, "nms_iou_threshold"),
        max_detections(options.max_detections, defaults.max_detections),
        resolve_classes(list(class_names), list(class_ids)),
    )


def face_options(
    options: detector_pb2.DetectionOptions,
    defaults: FaceOptions,
    *,
    coarse: bool = False,
    liveness: bool = False,
    largest_only: bool = False,
    face_crops: int = 0,
) -> FaceOptions:
    """`coarse` skips the landmarks' second look even where the server refines them by default; `liveness` scores
    each face's liveness; `largest_only` wants each photo's largest face alone; `face_crops` asks for the face crops
    of that many of each photo's largest faces, at most FACES_PER_IMAGE (a crop is 196,608 bytes: the bound keeps a
    response's size from growing with the faces a photo holds)."""
    if not 0 <= face_crops <= FACES_PER_IMAGE:
        raise InvalidInput(f"face_crops is {face_crops}; it must be 0 to {FACES_PER_IMAGE} per photo")
    return FaceOptions(
        threshold(options.score_threshold, defaults.score_threshold, "score_threshold"),
        threshold(options.nms_iou_threshold, defaults.iou_threshold, "nms_iou_threshold"),
        max_detections(options.max_detections, defaults.max_detections),
        defaults.refine_landmarks and not coarse,
        liveness,
        largest_only,
        face_crops,
    )
