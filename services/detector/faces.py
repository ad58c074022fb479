"""Face detection with five landmarks: YuNet at the image's own size (multiples of 32, capped), decode, NMS."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from argus.analysis import box_area, shorter_side
from argus.batching import DynamicBatcher
from argus.boxes import Box, as_box, nms
from argus.config import Settings
from argus.imaging import round_up, shrink
from argus.models.manifest import YUNET
from argus.models.runtime import OnnxModel
from argus.models.store import ModelStore
from argus.services.detector.liveness import LivenessScorer

STRIDES = (8, 16, 32)
# A probe for 1:1 wants its largest face only (FaceOptions.largest_only). It is looked for first on a copy of the
# photo whose longer side is at most PROBE_SIDE; when the largest face there is at least PROBE_SURE_PX across in
# that copy, it is the answer: a face too small to be found in the copy (YuNet's finest stride is 8 px) cannot be
# larger. Otherwise the photo is looked at in full, as for any request.
PROBE_SIDE = 640
PROBE_SURE_PX = 48


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    score: float
    landmarks: tuple[tuple[float, float], ...]  # five (x, y), in YuNet's order: argus.messages.LANDMARK_NAMES
    liveness: float | None = None  # only when asked for (FaceOptions.liveness): P(live face), liveness.py

    @property
    def size(self) -> float:
        """The shorter side of the box, px."""
        return shorter_side(self.box)


@dataclass(frozen=True)
class FaceOptions:
    score_threshold: float
    iou_threshold: float
    max_detections: int
    refine_landmarks: bool = False  # a second look at each face for more precise landmarks (for recognition)
    liveness: bool = False  # score each face's liveness (liveness.py)
    largest_only: bool = False  # only the largest face is wanted (a probe): see FaceDetector.detect_largest
    face_crops: int = 0  # cut the face crop of this many of each photo's largest faces (Detector.detect_faces)

    @classmethod
    def from_settings(cls, settings: Settings) -> FaceOptions:
        return cls(
            settings.face_score_threshold,
            settings.face_nms_iou,
            settings.max_detections,
            settings.face_refine_landmarks,
        )


def input_size(height: int, width: int, max_side: int) -> tuple[float, int, int]:
    """(scale, padded height, padded width): shrink so the longer side fits max_side, pad up to multiples of 32."""
    scale = min(1.0, max_side / max(height, width))
    scaled_h, scaled_w = max(1, round(height * scale)), max(1, round(width * scale))
    return scale, round_up(scaled_h, 32), round_up(scaled_w, 32)


def decode(
    outputs: dict[str, np.ndarray], height: int, width: int, score_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's outputs (no batch axis) to boxes (K, 4), scores (K,), landmarks (K, 5, 2) in input pixels."""
    all_boxes, all_scores, all_landmarks = [], [], []
    for stride in STRIDES:
        cols = width // stride
        cls = np.clip(outputs[f"cls_{stride}"][:, 0], 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"][:, 0], 0, 1)
        scores = np.sqrt(cls * obj)
        keep = np.nonzero(scores > score_threshold)[0]
        if keep.size == 0:
            continue
        cells = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)
        bbox = outputs[f"bbox_{stride}"][keep]
        centres = (cells + bbox[:, :2]) * stride
        sizes = np.exp(bbox[:, 2:4]) * stride
        all_boxes.append(np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1))
        all_scores.append(scores[keep])
        kps = outputs[f"kps_{stride}"][keep].reshape(-1, 5, 2)
        all_landmarks.append((kps + cells[:, None, :]) * stride)
    if not all_boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_landmarks)


# The second look at a face (landmark refinement): a square window twice the box's longer side, centred on the
# box, scaled to this many pixels, so the face is about half of it (~190 px) whatever its size in the photo.
REFINE_SIZE = 384
REFINE_SCORE_THRESHOLD = 0.3  # the face is known to be there: a weak second detection still places its points
REFINE_MIN_IOU = 0.3  # ... but it must be the same face, not a neighbour in the window
REFINE_CHUNK = 32  # windows queued at once, so a crowd photo cannot fill the batcher's queue by itself


def largest(faces: list[DetectedFace]) -> DetectedFace | None:
    """The face with the largest box (what a probe is taken for), None among none."""
    return max(faces, key=lambda face: box_area(face.box), default=None)


def refine_window(box: Box, size: int = REFINE_SIZE) -> np.ndarray:
    """The 2x3 matrix taking photo pixels to the refinement window of this face box (scale, then shift)."""
    x1, y1, x2, y2 = box
    scale = size / (2 * max(x2 - x1, y2 - y1, 1.0))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def refined_landmarks(
    face: DetectedFace, matrix: np.ndarray, second_look: list[DetectedFace]
) -> tuple[tuple[float, float], ...]:
    """The landmarks of the second look's detection of this face, back in photo pixels; the first landmarks when
    the second look did not find it (no detection overlapping where the face must be)."""
    expected = np.array(face.box, dtype=np.float64).reshape(2, 2) @ matrix[:, :2].T + matrix[:, 2]
    best, best_iou = None, REFINE_MIN_IOU
    for candidate in second_look:
        overlap = _iou(expected.ravel(), np.array(candidate.box))
        if overlap >= best_iou:
            best, best_iou = candidate, overlap
    if best is None:
        return face.landmarks
    points = (np.array(best.landmarks, dtype=np.float64) - matrix[:, 2]) / matrix[0, 0]
    return tuple((float(x), float(y)) for x, y in points)


class YunetModel(OnnxModel):
    spec = YUNET

    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, 3, 320, 320), dtype=np.float32)


class FaceDetector:
    """Finds faces and their landmarks in BGR images; same-size images share forward passes."""

    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.model = YunetModel(store, settings)
        self.model.load()  # here, so a missing or corrupt file fails the service at start
        self.liveness = LivenessScorer(store, settings)
        self.max_side = settings.face_max_side
        self.batcher = DynamicBatcher.for_model(self.model, settings)
        self.defaults = FaceOptions.from_settings(settings)
        self._second_look = FaceOptions(
            REFINE_SCORE_THRESHOLD, self.defaults.iou_threshold, self.defaults.max_detections
        )

    def preprocess(self, image: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        scale, padded_h, padded_w = input_size(height, width, max_side or self.max_side)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = shrink(image, size)
        # Channel by channel into a zeroed CHW tensor: one float buffer, where a float HWC canvas and its
        # transposed copy took two (about 1.5x the time).
        tensor = np.zeros((3, padded_h, padded_w), dtype=np.float32)
        for channel in range(3):
            tensor[channel, : image.shape[0], : image.shape[1]] = image[:, :, channel]
        return tensor, scale

    def detect(self, images: list[np.ndarray], options: FaceOptions) -> list[list[DetectedFace]]:
        """Every image's faces; with options.largest_only, its largest face alone (none or one)."""
        if options.largest_only:
            return [self.detect_largest(image, options)[0] for image in images]
        return self._finished(images, self.detect_once(images, options), options)

    def detect_counted(self, image: np.ndarray, options: FaceOptions) -> tuple[list[DetectedFace], int]:
        """One image's faces (with options.largest_only, its largest alone) and how many faces were seen."""
        if options.largest_only:
            return self.detect_largest(image, options)
        faces = self.detect([image], options)[0]
        return faces, len(faces)

    def detect_largest(self, image: np.ndarray, options: FaceOptions) -> tuple[list[DetectedFace], int]:
        """The photo's largest face (none or one), and how many faces the look that found it saw. Looked for first
        on a copy of at most PROBE_SIDE: YuNet at 640 px instead of at the photo's own size, and one face refined
        instead of all (see PROBE_SURE_PX for when that look is enough)."""
        longest = max(image.shape[:2])
        probe_side = min(self.max_side, PROBE_SIDE)
        probe_scale = min(1.0, probe_side / longest)
        faces = self.detect_once([image], options, max_side=probe_side)[0]
        face = largest(faces)
        shrunk = probe_scale < min(1.0, self.max_side / longest)  # the copy is smaller than a full look's
        if shrunk and (face is None or face.size * probe_scale < PROBE_SURE_PX):
            faces = self.detect_once([image], options)[0]
            face = largest(faces)
        return self._finished([image], [[face] if face else []], options)[0], len(faces)

    def _finished(
        self, images: list[np.ndarray], found: list[list[DetectedFace]], options: FaceOptions
    ) -> list[list[DetectedFace]]:
        """The landmarks' second look and the liveness scores, where the options ask for them."""
        found = self._refined(images, found) if options.refine_landmarks else found
        if not options.liveness:
            return found
        return [
            [
                replace(face, liveness=score)
                for face, score in zip(faces, self.liveness.score(image, [f.box for f in faces]), strict=True)
            ]
            for image, faces in zip(images, found, strict=True)
        ]

    def detect_once(
        self, images: list[np.ndarray], options: FaceOptions, max_side: int | None = None
    ) -> list[list[DetectedFace]]:
        """The detection pass alone, without the landmarks' second look; on copies fitting max_side when given."""
        prepared = [self.preprocess(image, max_side) for image in images]
        futures = self.batcher.submit_many([tensor for tensor, _ in prepared])
        return [
            self._postprocess(future.result(), tensor.shape[1:], scale, image.shape[:2], options)
            for image, (tensor, scale), future in zip(images, prepared, futures, strict=True)
        ]

    def _refined(self, images: list[np.ndarray], found: list[list[DetectedFace]]) -> list[list[DetectedFace]]:
        """A second look at every face, in a window where it is about 190 px across: YuNet places the five points
        more precisely there than on a small or a huge face, and alignment depends on them. All windows have the
        same size, so they share forward passes. Boxes and scores stay those of the first look."""
        jobs = [(i, face, refine_window(face.box)) for i, faces in enumerate(found) for face in faces]
        refined: list[list[DetectedFace]] = [[] for _ in found]
        for start in range(0, len(jobs), REFINE_CHUNK):
            chunk = jobs[start : start + REFINE_CHUNK]
            windows = [
                cv2.warpAffine(images[i], matrix, (REFINE_SIZE, REFINE_SIZE), flags=cv2.INTER_LINEAR)
                for i, _, matrix in chunk
            ]
            for (i, face, matrix), looks in zip(chunk, self.detect_once(windows, self._second_look), strict=True):
                refined[i].append(DetectedFace(face.box, face.score, refined_landmarks(face, matrix, looks)))
        return refined

    def _postprocess(
        self,
        outputs: list[np.ndarray],
        input_hw: tuple[int, ...],
        scale: float,
        image_hw: tuple[int, ...],
        options: FaceOptions,
    ) -> list[DetectedFace]:
        named = dict(zip(self.model.output_names, outputs, strict=True))
        boxes, scores, landmarks = decode(named, input_hw[0], input_hw[1], options.score_threshold)
        keep = nms(boxes, scores, options.iou_threshold)[: options.max_detections]
        height, width = image_hw
        boxes = np.clip(boxes[keep] / scale, 0, [width, height, width, height])
        landmarks = landmarks[keep] / scale
        return [
            DetectedFace(
                as_box(box),
                float(score),
                tuple((float(x), float(y)) for x, y in points),
            )
            for box, score, points in zip(boxes, scores[keep], landmarks, strict=True)
        ]

    def close(self) -> None:
        self.batcher.close()
        self.liveness.close()
