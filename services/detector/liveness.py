"""Passive liveness on one photo: is this face a live person in front of the camera, or a print or a screen?

Two MiniFASNet classifiers (Minivision's Silent-Face-Anti-Spoofing, Apache-2.0) look at the face with more or less of
its surroundings (the box scaled 2.7x and 4.0x), as upstream does; a face's liveness score is their mean probability
of "real" (upstream's sum[1] / 2), in [0, 1]. The classes tell 2D from 3D spoofs, but the models put a print and a
screen into the same one, so only "real or not" is used.

The crop rule is upstream's, exactly (`crop_rect`), around YuNet's box as it is. YuNet's boxes are narrower and
taller than those of upstream's own detector and sit higher on the face; mapping them onto that convention was
measured against keeping them (`argus eval liveness --box-grid`, on an LFW development sample and the spoof
samples): the mapped box rejected 12% of real LFW photos where YuNet's own rejected 2.5%, both spoofs refused either
way. Large photos are first brought down to a camera frame's size (FRAME_SIDE), as the models were made for camera
frames.

What this does not stop: a good screen or print held well, a mask, anything the unknown training data did not show.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from argus.batching import DynamicBatcher
from argus.boxes import Box
from argus.config import Settings
from argus.models.manifest import LIVENESS_MODELS, MINIFASNET_V1SE, MINIFASNET_V2, ModelSpec
from argus.models.runtime import OnnxModel
from argus.models.store import ModelStore

INPUT_SIZE = 80
REAL = 1  # the "real" class of the three (2D spoof, real, 3D spoof)
SCALES = {MINIFASNET_V2.name: 2.7, MINIFASNET_V1SE.name: 4.0}
FRAME_SIDE = 640  # the longer side of a camera frame (upstream's APK streams 480x640); larger photos are shrunk first

XYWH = tuple[float, float, float, float]


def xywh(box: Box) -> XYWH:
    x1, y1, x2, y2 = box
    return x1, y1, x2 - x1, y2 - y1


def crop_rect(box: XYWH, width: int, height: int, scale: float) -> tuple[int, int, int, int]:
    """Upstream's crop (src/generate_patches.py): the box scaled about its centre (less when the image is too small),
    shifted inside the image; inclusive pixel bounds (x1, y1, x2, y2)."""
    x, y, w, h = box
    w, h = max(w, 1.0), max(h, 1.0)
    scale = min((height - 1) / h, (width - 1) / w, scale)
    cx, cy, nw, nh = x + w / 2, y + h / 2, w * scale, h * scale
    x1, y1, x2, y2 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x1 < 0:
        x2, x1 = x2 - x1, 0
    if y1 < 0:
        y2, y1 = y2 - y1, 0
    if x2 > width - 1:
        x1, x2 = x1 - (x2 - (width - 1)), width - 1
    if y2 > height - 1:
        y1, y2 = y1 - (y2 - (height - 1)), height - 1
    return int(x1), int(y1), int(x2), int(y2)


def frame_scale(height: int, width: int) -> float:
    """The factor that brings a photo down to a camera frame's size (1 for one that is not larger)."""
    return min(1.0, FRAME_SIDE / max(height, width))


def patch(image: np.ndarray, box: XYWH, scale: float) -> np.ndarray:
    """One model's input for one face: its crop of the BGR image squashed to 80x80, CHW float32, 0-255."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = crop_rect(box, width, height, scale)
    crop = image[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1]
    resized = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32)


def real_probability(logits: np.ndarray) -> float:
    """softmax(logits)[REAL], computed stably."""
    shifted = np.exp(logits - logits.max())
    return float(shifted[REAL] / shifted.sum())


class LivenessModel(OnnxModel):
    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)


class LivenessScorer:
    """Scores faces of BGR photos; every face's crops of every request share the two models' forward passes
    (one batcher per model: the inputs are all 80x80)."""

    def __init__(self, store: ModelStore, settings: Settings, specs: Sequence[ModelSpec] = LIVENESS_MODELS) -> None:
        self.models = [LivenessModel(store, settings, spec=spec) for spec in specs]
        for model in self.models:
            model.load()  # here, so a missing or corrupt file fails the service at start
        self.batchers = [DynamicBatcher.for_model(model, settings) for model in self.models]

    def score(self, image: np.ndarray, boxes: Sequence[Box]) -> list[float]:
        """Each YuNet face box's liveness score, in [0, 1] (higher: more likely a live face)."""
        return self.score_boxes(image, [xywh(box) for box in boxes])

    def score_boxes(self, image: np.ndarray, boxes: Sequence[XYWH]) -> list[float]:
        """The same for [x, y, w, h] boxes in the photo's pixels (the evaluation tries other box conventions)."""
        if not boxes:
            return []
        factor = frame_scale(*image.shape[:2])
        if factor < 1.0:
            size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        scaled = [(x * factor, y * factor, w * factor, h * factor) for x, y, w, h in boxes]
        futures = [
            batcher.submit_many([patch(image, box, SCALES[model.spec.name]) for box in scaled])
            for model, batcher in zip(self.models, self.batchers, strict=True)
        ]
        per_model = [[real_probability(future.result()[0]) for future in pending] for pending in futures]
        return [float(np.mean(scores)) for scores in zip(*per_model, strict=True)]

    def close(self) -> None:
        for batcher in self.batchers:
            batcher.close()
