"""The query quality filter (Rekognition's QualityFilter): how good a probe face must be for Verify and Identify to
decide on it, judged on what the detector and embedder already give (box, detection score, five landmarks,
sharpness) plus a head pose estimated from the landmarks. Pure numpy, so the servicer and the evaluation share it.

The bars of each level were chosen on LFW's development pairs and checked on its test pairs by `argus eval quality`
(argus.evaluation.quality); the README's face database section gives what each level costs and gains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from argus.analysis import shorter_side

if TYPE_CHECKING:
    from argus.boxes import Box

# A frontal face as the project's detector places its landmarks (YuNet, refined landmarks), in the eye-line frame:
# the nose tip sits FRONTAL_NOSE_RATIO of the way from the eye line down to the mouth line, and the mouth line lies
# FACE_HEIGHT eye distances below the eye line. Medians over LFW's development images whose nose is within 5% of an
# eye distance of the eyes' midpoint (turned under about 6 degrees), taken to be level on average as press photos
# are; `argus eval quality` prints the pose quantiles they give. (YuNet puts the nose lower and the mouth higher
# than the ArcFace alignment template, 0.495 and 1.155: with the template's figures nearly every LFW face would
# read 10 degrees chin-down.)
FRONTAL_NOSE_RATIO = 0.579
FACE_HEIGHT = 1.0
# The head model: the nose tip stands this many eye distances in front of the plane of the eyes and mouth corners
# (about 30 mm before a 63 mm interpupillary distance, a typical adult's). It sets the scale of both angles.
NOSE_DEPTH = 0.5
# Below this many pixels between the eyes (or between the eye and mouth lines) the layout is not a face.
_DEGENERATE_PX = 1e-6

MEASURES = ("face_size", "sharpness", "pose", "detection_score")  # the order measures are judged in


def head_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the five landmarks (right eye, left eye, nose tip, right mouth corner, left mouth
    corner; "right" is the subject's own, so the right eye is on the image's left).

    A weak-perspective head model: the eyes and mouth corners lie in one plane and the nose tip stands NOSE_DEPTH
    eye distances in front of it. The points are first turned so that the eye line is level (roll drops out).
    Turning the head by yaw moves the nose sideways from the eyes' midpoint by NOSE_DEPTH * sin(yaw) while the eye
    distance shrinks by cos(yaw), so yaw = atan(offset / eye distance / NOSE_DEPTH). Tilting it by pitch moves the
    nose up by NOSE_DEPTH * sin(pitch) eye distances while the eye-to-mouth height shrinks by cos(pitch), so the
    nose's place between the eye and mouth lines, against a frontal face's FRONTAL_NOSE_RATIO, gives pitch. Each
    ratio is unaffected by the other angle, and both by the face's size.

    Signs: yaw > 0 when the subject has turned to their own left (the nose moves toward their left eye, the image's
    right); pitch > 0 when the chin is up (the nose moves toward the eye line). Range: (-90, 90) each; beyond about
    45 degrees the far eye is hidden and the detector guesses its landmarks, so large angles are only "large".
    (nan, nan) for a layout that is not a face: non-finite points, eyes on one spot, the mouth not below the eyes.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(points).all():
        return math.nan, math.nan
    right_eye, left_eye, nose = points[0], points[1], points[2]
    eye_middle, mouth_middle = (right_eye + left_eye) / 2, (points[3] + points[4]) / 2
    eye_vector = left_eye - right_eye
    eye_distance = float(np.hypot(*eye_vector))
    if eye_distance < _DEGENERATE_PX:
        return math.nan, math.nan
    across = eye_vector / eye_distance  # along the eye line, toward the subject's left eye
    down = np.array([-across[1], across[0]])  # perpendicular to it, toward the mouth (image y grows downward)
    height = float((mouth_middle - eye_middle) @ down)
    if height < _DEGENERATE_PX:
        return math.nan, math.nan
    offset = float((nose - eye_middle) @ across) / eye_distance
    nose_ratio = float((nose - eye_middle) @ down) / height
    yaw = math.degrees(math.atan(offset / NOSE_DEPTH))
    pitch = math.degrees(math.atan((FRONTAL_NOSE_RATIO - nose_ratio) * FACE_HEIGHT / NOSE_DEPTH))
    return yaw, pitch


@dataclass(frozen=True)
class QualityBars:
    """What a probe face must reach; None: not judged on that measure."""

    min_face_size: float | None = None  # shorter side of the box, px
    min_sharpness: float | None = None  # variance of the Laplacian of the aligned 112 px crop
    min_detection_score: float | None = None
    max_abs_yaw: float | None = None  # degrees
    max_abs_pitch: float | None = None  # degrees

    def describe(self) -> str:
        """The bars in a few words, for tables and messages ("-" when nothing is judged)."""
        parts = [
            f"{label}{bar:g}"
            for label, bar in (
                ("size>=", self.min_face_size),
                ("sharpness>=", self.min_sharpness),
                ("score>=", self.min_detection_score),
                ("|yaw|<=", self.max_abs_yaw),
                ("|pitch|<=", self.max_abs_pitch),
            )
            if bar is not None
        ]
        return " ".join(parts) or "-"


# Chosen on LFW's development pairs (`argus eval quality`): LOW drops about 0.1% of their probes (its size and
# sharpness bars are enrollment's own, ARGUS_MIN_FACE_SIZE and ARGUS_MIN_SHARPNESS by default, and its score bar the
# detector's default threshold), MEDIUM about 2%, HIGH about 10%. LFW's faces are 75-130 px, level and sharply
# detected, so its size, pitch and score bars barely bind there; they are set for the photos LFW lacks.
NONE = QualityBars()
LOW = QualityBars(min_face_size=32, min_sharpness=15, min_detection_score=0.6, max_abs_yaw=60, max_abs_pitch=30)
MEDIUM = QualityBars(min_face_size=48, min_sharpness=30, min_detection_score=0.8, max_abs_yaw=40, max_abs_pitch=20)
HIGH = QualityBars(min_face_size=64, min_sharpness=50, min_detection_score=0.9, max_abs_yaw=30, max_abs_pitch=15)
# AUTO, the default, is LOW: on LFW's development pairs it drops 0.1% of probes and costs no TAR, while MEDIUM drops
# 2% and HIGH 10% and remove none and one of the 3 false accepts there (LFW's false accepts are look-alikes in good
# photos), so turning ordinary users away by default would buy nothing measurable; LOW still refuses the faces no
# level should decide on (tiny, smeared, side-on, barely detected).
QUALITY_LEVELS: Mapping[str, QualityBars] = MappingProxyType(
    {"none": NONE, "auto": LOW, "low": LOW, "medium": MEDIUM, "high": HIGH}
)


@dataclass(frozen=True)
class QualityVerdict:
    """A probe face's measures and the first one below the bars ("" when it passed; else one of MEASURES)."""

    face_size: float
    sharpness: float
    detection_score: float
    yaw: float
    pitch: float
    below: str

    @property
    def passed(self) -> bool:
        return not self.below


def _under(value: float, least: float | None) -> bool:
    """Below a minimum; a NaN measure is below any bar, so a face that cannot be measured is never admitted."""
    return least is not None and not value >= least


def _over(value: float, most: float | None) -> bool:
    """Beyond a maximum of the absolute value; NaN is beyond any bar."""
    return most is not None and not abs(value) <= most


def assess(box: Box, score: float, landmarks: np.ndarray, sharpness: float, bars: QualityBars) -> QualityVerdict:
    """Measures a face (box x1, y1, x2, y2 in pixels) and judges it against the bars, in the order of MEASURES."""
    face_size = float(shorter_side(box))
    yaw, pitch = head_pose(landmarks)
    failing = {
        "face_size": _under(face_size, bars.min_face_size),
        "sharpness": _under(sharpness, bars.min_sharpness),
        "pose": _over(yaw, bars.max_abs_yaw) or _over(pitch, bars.max_abs_pitch),
        "detection_score": _under(score, bars.min_detection_score),
    }
    below = next((measure for measure in MEASURES if failing[measure]), "")
    return QualityVerdict(face_size, float(sharpness), float(score), yaw, pitch, below)
