"""Face recall of the face detector on WIDER FACE, at IoU 0.5, by the official annotations.

Faces the annotators flagged `invalid` are left out of every count, as the official evaluation does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from argus.boxes import iou_matrix
from argus.evaluation.images import DETECTION_CHUNK, chunks, read_image
from argus.services.detector.faces import DetectedFace, FaceOptions


class FaceDetection(Protocol):
    """What recall is measured on: the service's FaceDetector, or a stand-in with its two members."""

    @property
    def defaults(self) -> FaceOptions: ...

    def detect(self, images: list[np.ndarray], options: FaceOptions) -> list[list[DetectedFace]]: ...


@dataclass(frozen=True)
class WiderImage:
    name: str  # path relative to images/
    boxes: np.ndarray  # (N, 4) x, y, w, h in pixels
    invalid: np.ndarray  # (N,) bool: the annotators' `invalid` flag


@dataclass(frozen=True)
class WiderResult:
    images: int
    faces: int  # valid faces; `invalid=1` faces are left out of every count
    detected: int
    min_face: int
    large_faces: int  # valid faces at least min_face pixels wide
    large_detected: int
    invalid_faces: int
    detections: int
    false_positives: int  # detections matching no face (those on an invalid face are not counted)
    score_threshold: float
    seconds: float

    @property
    def recall(self) -> float:
        return self.detected / self.faces if self.faces else 0.0

    @property
    def large_recall(self) -> float:
        return self.large_detected / self.large_faces if self.large_faces else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recall": self.recall, "large_recall": self.large_recall}


def parse_wider_gt(text: str) -> list[WiderImage]:
    """The official `wider_face_*_bbx_gt.txt` format: name line, count line, count lines of
    `x y w h blur expression illumination invalid occlusion pose`; a count of 0 is followed by one line of zeros.
    """
    lines = text.splitlines()
    images, at = [], 0
    while at < len(lines):
        name = lines[at].strip()
        if not name:
            at += 1
            continue
        try:
            count = int(lines[at + 1])
        except (IndexError, ValueError):
            raise ValueError(f"line {at + 2}: expected the face count of {name}") from None
        rows = lines[at + 2 : at + 2 + max(count, 1)]
        if len(rows) < max(count, 1):
            raise ValueError(f"{name}: the file ends before its {count} face line(s)")
        values = []
        for offset, row in enumerate(rows[:count]):
            fields = row.split()
            if len(fields) != 10:
                raise ValueError(f"line {at + 3 + offset}: expected 10 numbers, got {row!r}")
            values.append([int(value) for value in fields])
        table = np.asarray(values, dtype=np.int64).reshape(-1, 10)
        images.append(WiderImage(name, table[:, :4].astype(np.float64), table[:, 7] == 1))
        at += 2 + max(count, 1)
    return images


def match_faces(detected: np.ndarray, scores: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Greedy one-to-one matching, best score first: each detection takes the free GT box it overlaps most,
    if that IoU is at least `iou`. Boxes are x1, y1, x2, y2. Returns, per GT box, the matching detection or -1.
    """
    matched = np.full(len(truth), -1, dtype=np.int64)
    if len(truth) == 0 or len(detected) == 0:
        return matched
    overlaps = iou_matrix(detected, truth)
    for index in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(matched < 0, overlaps[index], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= iou:
            matched[best] = index
    return matched


def find_wider_gt(data_dir: Path) -> Path:
    candidates = sorted(data_dir.glob("wider_face_*_bbx_gt*.txt"))
    if len(candidates) != 1:
        raise ValueError(f"expected one wider_face_*_bbx_gt*.txt in {data_dir}, found {len(candidates)}")
    return candidates[0]


def evaluate_widerface(
    detector: FaceDetection,
    data_dir: Path,
    limit: int | None = None,
    min_face: int = 32,
    score_threshold: float | None = None,
) -> WiderResult:
    """Recall at IoU 0.5 on WIDER FACE images, at the detector's serving threshold unless one is given.

    Faces flagged `invalid` (the annotators could not judge them) are ignored, as the official evaluation does:
    they count neither as faces to find nor, when a detection lands on one, as false positives (the official
    evaluation likewise ignores detections on faces outside its lists).
    """
    started = time.perf_counter()
    entries = parse_wider_gt(find_wider_gt(data_dir).read_text())[:limit]
    threshold = detector.defaults.score_threshold if score_threshold is None else score_threshold
    options = FaceOptions(threshold, detector.defaults.iou_threshold, detector.defaults.max_detections)
    faces = detected = large = large_detected = invalid = detections = false_positives = 0
    for chunk in chunks(entries, DETECTION_CHUNK):
        batch = [read_image(data_dir / "images" / entry.name) for entry in chunk]
        for entry, found in zip(chunk, detector.detect(batch, options), strict=True):
            boxes = np.asarray([face.box for face in found], dtype=np.float64).reshape(-1, 4)
            scores = np.asarray([face.score for face in found], dtype=np.float64)
            corners = entry.boxes.copy()
            corners[:, 2:] += corners[:, :2]
            valid = ~entry.invalid
            matched = match_faces(boxes, scores, corners[valid])
            hit = matched >= 0
            is_large = entry.boxes[valid, 2] >= min_face
            faces += int(valid.sum())
            detected += int(hit.sum())
            large += int(is_large.sum())
            large_detected += int((hit & is_large).sum())
            invalid += int(entry.invalid.sum())
            detections += len(found)
            unmatched = np.setdiff1d(np.arange(len(found)), matched[hit])
            on_invalid = iou_matrix(boxes[unmatched], corners[entry.invalid]).max(axis=1, initial=0.0) >= 0.5
            false_positives += int((~on_invalid).sum())
    return WiderResult(
        images=len(entries),
        faces=faces,
        detected=detected,
        min_face=min_face,
        large_faces=large,
        large_detected=large_detected,
        invalid_faces=invalid,
        detections=detections,
        false_positives=false_positives,
        score_threshold=threshold,
        seconds=time.perf_counter() - started,
    )
