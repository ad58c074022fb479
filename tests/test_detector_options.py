"""A request's detection options over the server's defaults (services/detector/options.py), on hand-worked values."""

from __future__ import annotations

import math

import pytest

from argus.errors import InvalidInput
from argus.proto.detector.v1 import detector_pb2
from argus.services.detector.faces import FaceOptions
from argus.services.detector.objects import ObjectOptions
from argus.services.detector.options import face_options, object_options

OBJECT_DEFAULTS = ObjectOptions(score_threshold=0.35, iou_threshold=0.45, max_detections=100)
FACE_DEFAULTS = FaceOptions(score_threshold=0.6, iou_threshold=0.3, max_detections=100, refine_landmarks=True)


def test_zeros_ask_for_the_defaults() -> None:
    assert object_options(detector_pb2.DetectionOptions(), [], [], OBJECT_DEFAULTS) == OBJECT_DEFAULTS
    assert face_options(detector_pb2.DetectionOptions(), FACE_DEFAULTS) == FACE_DEFAULTS


def test_set_options_override_the_defaults() -> None:
    options = detector_pb2.DetectionOptions(score_threshold=0.5, nms_iou_threshold=1.0, max_detections=7)
    assert object_options(options, ["Dog ", "person"], [2], OBJECT_DEFAULTS) == ObjectOptions(
        0.5, 1.0, 7, frozenset({16, 0, 2})
    )
    assert face_options(options, FACE_DEFAULTS) == FaceOptions(0.5, 1.0, 7, True)


def test_max_detections_is_capped_by_the_server() -> None:
    options = detector_pb2.DetectionOptions(max_detections=1000)
    assert object_options(options, [], [], OBJECT_DEFAULTS).max_detections == 100
    assert face_options(options, FACE_DEFAULTS).max_detections == 100


def test_coarse_skips_the_second_look_and_never_adds_one() -> None:
    assert face_options(detector_pb2.DetectionOptions(), FACE_DEFAULTS, coarse=True).refine_landmarks is False
    plain = FaceOptions(0.6, 0.3, 100, refine_landmarks=False)
    assert face_options(detector_pb2.DetectionOptions(), plain).refine_landmarks is False


@pytest.mark.parametrize("value", [-0.1, 1.01, math.inf, math.nan])
@pytest.mark.parametrize("field", ["score_threshold", "nms_iou_threshold"])
def test_a_threshold_outside_zero_to_one_is_refused_by_name(field: str, value: float) -> None:
    options = detector_pb2.DetectionOptions()
    setattr(options, field, value)
    with pytest.raises(InvalidInput, match=rf"options\.{field} must be in \(0, 1\]"):
        object_options(options, [], [], OBJECT_DEFAULTS)
    with pytest.raises(InvalidInput, match=rf"options\.{field} must be in \(0, 1\]"):
        face_options(options, FACE_DEFAULTS)


def test_negative_max_detections_and_unknown_classes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="max_detections must be positive"):
        face_options(detector_pb2.DetectionOptions(max_detections=-1), FACE_DEFAULTS)
    with pytest.raises(InvalidInput, match="unknown class name"):
        object_options(detector_pb2.DetectionOptions(), ["unicorn"], [], OBJECT_DEFAULTS)
    with pytest.raises(InvalidInput, match="out of range"):
        object_options(detector_pb2.DetectionOptions(), [], [80], OBJECT_DEFAULTS)
