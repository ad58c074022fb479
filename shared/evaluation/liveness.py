"""Passive liveness, measured: upstream's spoof and live samples, and LFW's photos (all of real people), through the
detector's own liveness path (YuNet, then the two MiniFASNet crops).

In ISO/IEC 30107-3 terms, BPCER (bona fide presentations classified as attacks) is the share of LFW photos rejected,
over a development half (where the operating point is chosen) and a test half; APCER (attack presentations
classified as bona fide) needs attacks, and the data holds two: one print (image_F1) and one screen replay
(image_F2), one presentation per species, so APCER here is 0% or 100% per species, a check and not a rate. LFW is
news photography, not camera captures of people present: part of what it rejects may be prints or screens
photographed in turn, which is why the rejected ones are listed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus.boxes import Box
from argus.services.detector.faces import FaceDetector
from argus.services.detector.liveness import XYWH, LivenessScorer, xywh

# Upstream's samples and what they show (the data set's README).
SAMPLES = {
    "image_F1.jpg": (False, "print"),
    "image_F2.jpg": (False, "screen replay"),
    "image_T1.jpg": (True, "live"),
    "image_T2.jpg": (True, "live"),
}
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5)
GRID_MARGIN = 0.05  # the box grid's threshold: the highest spoof score plus this

# The same face boxed by YuNet and by upstream's detector (RetinaFace, Caffe), [x, y, w, h] each: upstream's four
# samples, measured with both (the mirror's liveness/LIVENESS.md, "Upstream samples"); what the "caffe-like" box of
# the grid is fitted on.
BOX_PAIRS: tuple[tuple[XYWH, XYWH], ...] = (
    ((187, 109, 196, 240), (178, 136, 223, 225)),
    ((139, 216, 223, 298), (120, 252, 252, 256)),
    ((119, 113, 170, 240), (106, 147, 207, 213)),
    ((628, 639, 380, 513), (590, 701, 448, 448)),
)


@dataclass(frozen=True)
class BoxMapping:
    """A YuNet box made wider/taller by these factors and its centre moved by shares of its size."""

    name: str
    width: float = 1.0
    height: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    @classmethod
    def fitted(cls, name: str, pairs: Sequence[tuple[XYWH, XYWH]]) -> BoxMapping:
        """The mean ratios over (YuNet box, reference box) pairs of the same faces."""
        rows = np.array([[*yunet, *reference] for yunet, reference in pairs], dtype=np.float64)
        yx, yy, yw, yh, rx, ry, rw, rh = rows.T
        return cls(
            name,
            float(np.mean(rw / yw)),
            float(np.mean(rh / yh)),
            float(np.mean((rx + rw / 2 - yx - yw / 2) / yw)),
            float(np.mean((ry + rh / 2 - yy - yh / 2) / yh)),
        )

    def __call__(self, box: Box) -> XYWH:
        x, y, w, h = xywh(box)
        cx, cy = x + w / 2 + self.shift_x * w, y + h / 2 + self.shift_y * h
        nw, nh = w * self.width, h * self.height
        return cx - nw / 2, cy - nh / 2, nw, nh


AS_IS = BoxMapping("yunet as is")
GRID = (
    AS_IS,
    BoxMapping.fitted("caffe-like (fitted on BOX_PAIRS)", BOX_PAIRS),
    BoxMapping("narrower 0.9", width=0.9),
    BoxMapping("wider 1.17", width=1.17),
    BoxMapping("shorter 0.89", height=0.89),
    BoxMapping("taller 1.1", height=1.1),
    BoxMapping("lower 0.068 h", shift_y=0.068),
    BoxMapping("higher 0.05 h", shift_y=-0.05),
)


@dataclass(frozen=True)
class Scored:
    name: str
    score: float | None  # None: no face found


@dataclass(frozen=True)
class GridRow:
    box: str
    spoof_max: float  # the higher of the two spoof samples' scores
    live_min: float
    threshold: float  # spoof_max + GRID_MARGIN
    development_bpcer: float  # share of the development LFW photos below it


@dataclass
class LivenessResult:
    threshold: float  # ARGUS_LIVENESS_THRESHOLD, the operating point
    samples: list[Scored]
    development: list[Scored]
    test: list[Scored]
    grid: list[GridRow] = field(default_factory=list)

    @staticmethod
    def _scores(rows: Sequence[Scored]) -> np.ndarray:
        return np.array([row.score for row in rows if row.score is not None], dtype=np.float64)

    def bpcer(self, rows: Sequence[Scored], threshold: float) -> float:
        scores = self._scores(rows)
        return float((scores < threshold).mean()) if scores.size else 0.0

    def apcer(self, threshold: float) -> dict[str, float]:
        """Per attack species (one presentation each): 1.0 when it was accepted as live."""
        return {
            SAMPLES[row.name][1]: float(row.score is not None and row.score >= threshold)
            for row in self.samples
            if not SAMPLES[row.name][0]
        }

    def rejected(self, threshold: float) -> list[Scored]:
        rows = [row for row in (*self.development, *self.test) if row.score is not None and row.score < threshold]
        return sorted(rows, key=lambda row: row.score or 0.0)

    def as_dict(self) -> dict[str, Any]:
        every = [*self.development, *self.test]
        scores = self._scores(every)
        return {
            "threshold": self.threshold,
            "samples": {row.name: row.score for row in self.samples},
            "samples_as_expected": all(
                row.score is not None and (row.score >= self.threshold) == SAMPLES[row.name][0] for row in self.samples
            ),
            "lfw_images": len(every),
            "lfw_no_face": sum(row.score is None for row in every),
            "bpcer_development": self.bpcer(self.development, self.threshold),
            "bpcer_test": self.bpcer(self.test, self.threshold),
            "apcer": self.apcer(self.threshold),
            "per_threshold": [
                {
                    "threshold": t,
                    "bpcer_development": self.bpcer(self.development, t),
                    "bpcer_test": self.bpcer(self.test, t),
                    "apcer": self.apcer(t),
                }
                for t in THRESHOLDS
            ],
            "lfw_quantiles": {f"p{round(q * 100)}": float(np.quantile(scores, q)) for q in QUANTILES}
            if scores.size
            else {},
            "rejected": [{"image": row.name, "score": row.score} for row in self.rejected(self.threshold)],
            "box_grid": [row.__dict__ for row in self.grid],
        }


def lfw_sample(lfw: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` LFW photos drawn at random (seeded) from the whole set, as LIVENESS.md drew its 200."""
    images = sorted((lfw / "lfw-deepfunneled").glob("*/*.jpg"))
    return random.Random(seed).sample(images, min(count, len(images)))


class _Photos:
    """Each photo's largest-scoring YuNet box, detected once, whatever box mappings are tried on it."""

    def __init__(self, detector: FaceDetector, paths: Sequence[Path], root: Path) -> None:
        self.items: list[tuple[str, np.ndarray | None, Box | None]] = []
        for path in paths:
            image = cv2.imread(str(path))
            faces = detector.detect([image], detector.defaults)[0] if image is not None else []
            best = max(faces, key=lambda face: face.score).box if faces else None
            self.items.append((str(path.relative_to(root)), image, best))

    def scored(self, scorer: LivenessScorer, mapping: BoxMapping = AS_IS) -> list[Scored]:
        return [
            Scored(name, None if box is None or image is None else scorer.score_boxes(image, [mapping(box)])[0])
            for name, image, box in self.items
        ]


def evaluate_liveness(
    detector: FaceDetector,
    scorer: LivenessScorer,
    samples: Path,
    lfw: Path,
    threshold: float,
    *,
    images: int = 400,
    box_grid: bool = False,
) -> LivenessResult:
    """The samples and `images` LFW photos (the first half development, the second test), scored with YuNet's
    box as the service scores them; with `box_grid`, every mapping of GRID tried on the samples and the
    development half."""
    drawn = lfw_sample(lfw, images)
    half = len(drawn) // 2
    sample_photos = _Photos(detector, [samples / name for name in SAMPLES], samples)
    development = _Photos(detector, drawn[:half], lfw)
    test = _Photos(detector, drawn[half:], lfw)
    result = LivenessResult(threshold, sample_photos.scored(scorer), development.scored(scorer), test.scored(scorer))
    for mapping in GRID if box_grid else ():
        on_samples = {row.name: row.score or 0.0 for row in sample_photos.scored(scorer, mapping)}
        spoof_max = max(score for name, score in on_samples.items() if not SAMPLES[name][0])
        live_min = min(score for name, score in on_samples.items() if SAMPLES[name][0])
        bar = spoof_max + GRID_MARGIN
        result.grid.append(
            GridRow(mapping.name, spoof_max, live_min, bar, result.bpcer(development.scored(scorer, mapping), bar))
        )
    return result
