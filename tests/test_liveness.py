"""Passive liveness: upstream's crop rule on hand-worked numbers, and the four upstream samples through the real
detector service (the live ones above the default threshold, the print and the screen below it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from argus.config import Settings
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.services.detector.liveness import crop_rect, frame_scale, patch, real_probability, xywh

SAMPLES = {"image_F1.jpg": False, "image_F2.jpg": False, "image_T1.jpg": True, "image_T2.jpg": True}


def test_crop_rect_follows_upstreams_rule() -> None:
    # LIVENESS.md's image_F1 box on a 480x640 frame: scale clamped to 479/223 (the crop must fit the width), the
    # 479-px-wide crop shifted left to x=0; vertically 225 * 479/223 = 483.30 px about y 248.5: 6.85 to 490.15.
    assert crop_rect((178, 136, 223, 225), 480, 640, 2.7) == (0, 6, 479, 490)
    # A small face in the middle of a large frame: the full scale, no shift. 100 x 2.7 = 270 px about (500, 400).
    assert crop_rect((450, 350, 100, 100), 1000, 800, 2.7) == (365, 265, 635, 535)
    # Near the top-left corner: shifted inside, keeping its size.
    assert crop_rect((0, 0, 100, 100), 1000, 800, 4.0) == (0, 0, 400, 400)


def test_helpers_on_hand_worked_numbers() -> None:
    assert xywh((10.0, 20.0, 50.0, 80.0)) == (10.0, 20.0, 40.0, 60.0)
    assert frame_scale(480, 640) == 1.0 and frame_scale(2160, 1617) == pytest.approx(640 / 2160)
    assert real_probability(np.array([0.0, math.log(2.0), 0.0])) == pytest.approx(0.5)  # e^0, 2, e^0 -> 2/4
    assert real_probability(np.array([1000.0, 1000.0, -1000.0])) == pytest.approx(0.5)  # no overflow
    image = np.zeros((640, 480, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # red, in BGR
    tensor = patch(image, (178, 136, 223, 225), 2.7)
    assert tensor.shape == (3, 80, 80) and tensor.dtype == np.float32
    assert tensor[2].min() == 255 and tensor[:2].max() == 0  # BGR kept, 0-255, no normalisation


def test_the_upstream_samples_through_the_detector(
    detector_stub: detector_pb2_grpc.DetectorServiceStub, eval_dir: Path
) -> None:
    threshold = Settings().liveness_threshold
    images = [common_pb2.Image(name=name, data=(eval_dir / "liveness" / name).read_bytes()) for name in SAMPLES]
    reply = detector_stub.DetectFaces(detector_pb2.DetectFacesRequest(images=images, liveness=True), timeout=120)
    for result in reply.results:
        best = max(result.faces, key=lambda face: face.score)
        assert best.HasField("liveness") and 0.0 <= best.liveness <= 1.0
        assert (best.liveness >= threshold) == SAMPLES[result.image_name], (result.image_name, best.liveness)
    plain = detector_stub.DetectFaces(detector_pb2.DetectFacesRequest(images=images[:1]), timeout=60)
    assert not plain.results[0].faces[0].HasField("liveness")  # only when asked
