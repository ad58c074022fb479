"""The query quality filter: head pose on landmark layouts worked out by hand, each bar at its boundary, faces that
cannot be measured, the levels' nesting, and `argus eval quality` on a few LFW pairs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from argus.config import Settings
from argus.evaluation.images import read_image
from argus.evaluation.lfw import IMAGES_SUBDIR
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.evaluation.quality import QualityCache
from argus.models.store import ModelStore
from argus.services.facedb.quality import (
    FACE_HEIGHT,
    FRONTAL_NOSE_RATIO,
    HIGH,
    LOW,
    MEDIUM,
    NONE,
    QUALITY_LEVELS,
    QualityBars,
    assess,
    head_pose,
)

EYE_DISTANCE = 20.0


def layout(nose_dx: float = 0.0, nose_ratio: float = FRONTAL_NOSE_RATIO) -> np.ndarray:
    """An upright face: eyes 20 px apart on y=50, the mouth line FACE_HEIGHT eye distances below, the nose nose_dx
    px right of the eyes' midpoint and nose_ratio of the way down to the mouth line."""
    height = FACE_HEIGHT * EYE_DISTANCE
    return np.array(
        [
            [40.0, 50.0],  # right eye (the image's left)
            [60.0, 50.0],  # left eye
            [50.0 + nose_dx, 50.0 + nose_ratio * height],
            [43.0, 50.0 + height],  # right mouth corner
            [57.0, 50.0 + height],
        ]
    )


GOOD_BOX = (0.0, 0.0, 120.0, 140.0)  # 120 px: above every size bar


# ----------------------------------------------------------------------------------------------------- head pose


def test_a_symmetric_frontal_layout_is_level() -> None:
    assert head_pose(layout()) == pytest.approx((0.0, 0.0), abs=1e-9)


@pytest.mark.parametrize(
    ("nose_dx", "yaw"),
    [
        (5.0, math.degrees(math.atan(0.5))),  # a quarter eye distance: atan(0.25 / 0.5) = 26.565 degrees
        (10.0, 45.0),  # half an eye distance: atan(1)
        (-5.0, -math.degrees(math.atan(0.5))),  # toward the right eye: the subject turned to their right
    ],
)
def test_yaw_from_the_noses_sideways_offset(nose_dx: float, yaw: float) -> None:
    assert head_pose(layout(nose_dx)) == pytest.approx((yaw, 0.0), abs=1e-9)


@pytest.mark.parametrize(
    ("nose_ratio", "pitch"),
    [
        # tan(pitch) = (FRONTAL_NOSE_RATIO - ratio) * FACE_HEIGHT / NOSE_DEPTH (0.5): half an eye distance higher
        # than frontal is chin up 45 degrees, a quarter lower is chin down atan(-0.5).
        (FRONTAL_NOSE_RATIO - 0.5 / FACE_HEIGHT, 45.0),
        (FRONTAL_NOSE_RATIO + 0.25 / FACE_HEIGHT, -math.degrees(math.atan(0.5))),
    ],
)
def test_pitch_from_the_noses_place_between_eyes_and_mouth(nose_ratio: float, pitch: float) -> None:
    assert head_pose(layout(nose_ratio=nose_ratio)) == pytest.approx((0.0, pitch), abs=1e-9)


def test_pose_ignores_roll_size_and_position() -> None:
    points = layout(5.0, FRONTAL_NOSE_RATIO + 0.25 / FACE_HEIGHT)
    angle = math.radians(35)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = 3.0 * (points - 50.0) @ rotation.T + [400.0, 7.0]
    assert head_pose(moved) == pytest.approx(head_pose(points), abs=1e-9)


@pytest.mark.parametrize(
    "points",
    [
        np.full((5, 2), 30.0),  # every point on one spot
        np.array([[40, 50], [40, 50], [50, 60], [43, 70], [57, 70]], dtype=float),  # both eyes on one spot
        np.array([[40, 50], [60, 50], [50, 60], [43, 50], [57, 50]], dtype=float),  # the mouth on the eye line
        layout()[[1, 0, 2, 3, 4]],  # eyes swapped: the mouth is above them in the eyes' frame
        np.where(np.eye(5, 2, dtype=bool), np.nan, layout()),
        np.where(np.eye(5, 2, dtype=bool), np.inf, layout()),
    ],
)
def test_a_layout_that_is_no_face_has_no_pose(points: np.ndarray) -> None:
    yaw, pitch = head_pose(points)
    assert math.isnan(yaw) and math.isnan(pitch)


# --------------------------------------------------------------------------------------------------------- bars


def test_a_good_face_passes_every_level() -> None:
    for level, bars in QUALITY_LEVELS.items():
        verdict = assess(GOOD_BOX, 0.95, layout(), 200.0, bars)
        assert verdict.passed and verdict.below == "", level
    verdict = assess(GOOD_BOX, 0.95, layout(10.0), 200.0, NONE)
    assert (verdict.face_size, verdict.sharpness, verdict.detection_score) == (120.0, 200.0, 0.95)
    assert verdict.yaw == pytest.approx(45.0) and verdict.pitch == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("box", "score", "nose_dx", "sharpness", "below"),
    [
        ((10.0, 20.0, 74.0, 200.0), 0.95, 0.0, 200.0, ""),  # 64 px wide: exactly HIGH's size
        ((10.0, 20.0, 73.9, 200.0), 0.95, 0.0, 200.0, "face_size"),
        ((10.0, 20.0, 200.0, 83.5), 0.95, 0.0, 200.0, "face_size"),  # the shorter side is the height
        (GOOD_BOX, 0.95, 0.0, 50.0, ""),
        (GOOD_BOX, 0.95, 0.0, 49.99, "sharpness"),
        (GOOD_BOX, 0.9, 0.0, 200.0, ""),
        (GOOD_BOX, 0.8999, 0.0, 200.0, "detection_score"),
        (GOOD_BOX, 0.95, 10.0, 200.0, "pose"),  # 45 degrees of yaw
        ((0.0, 0.0, 10.0, 10.0), 0.1, 10.0, 1.0, "face_size"),  # failing everything: the first measure is named
        (GOOD_BOX, 0.1, 10.0, 1.0, "sharpness"),
        (GOOD_BOX, 0.1, 10.0, 200.0, "pose"),
    ],
)
def test_high_bars_at_their_boundaries(
    box: tuple[float, float, float, float], score: float, nose_dx: float, sharpness: float, below: str
) -> None:
    assert assess(box, score, layout(nose_dx), sharpness, HIGH).below == below


def test_pose_bars_are_inclusive() -> None:
    yawed = layout(10.0)  # exactly 45 degrees of yaw
    assert assess(GOOD_BOX, 0.95, yawed, 200.0, QualityBars(max_abs_yaw=45)).passed
    assert assess(GOOD_BOX, 0.95, yawed, 200.0, QualityBars(max_abs_yaw=44.99)).below == "pose"
    tilted = layout(nose_ratio=FRONTAL_NOSE_RATIO + 0.25 / FACE_HEIGHT)  # -26.565 degrees of pitch
    assert assess(GOOD_BOX, 0.95, tilted, 200.0, QualityBars(max_abs_pitch=26.57)).passed
    assert assess(GOOD_BOX, 0.95, tilted, 200.0, QualityBars(max_abs_pitch=26.56)).below == "pose"


def test_a_face_that_cannot_be_measured_passes_only_none() -> None:
    for points in (np.full((5, 2), 30.0), np.full((5, 2), np.nan)):
        high = assess(GOOD_BOX, 0.95, points, 200.0, HIGH)
        assert high.below == "pose" and math.isnan(high.yaw)
        assert assess(GOOD_BOX, 0.95, points, 200.0, LOW).below == "pose"
        assert assess(GOOD_BOX, 0.95, points, 200.0, NONE).passed
    nan = math.nan
    assert assess((nan, nan, nan, nan), nan, np.full((5, 2), nan), nan, LOW).below == "face_size"
    assert assess((nan, nan, nan, nan), nan, np.full((5, 2), nan), nan, NONE).passed
    assert assess(GOOD_BOX, 0.95, layout(), nan, LOW).below == "sharpness"
    assert assess(GOOD_BOX, nan, layout(), 200.0, LOW).below == "detection_score"


def test_levels_are_nested_and_auto_is_low() -> None:
    assert QUALITY_LEVELS["auto"] is LOW and QUALITY_LEVELS["none"] == NONE == QualityBars()
    for looser, stricter in ((LOW, MEDIUM), (MEDIUM, HIGH)):
        for field in ("min_face_size", "min_sharpness", "min_detection_score"):
            assert getattr(stricter, field) >= getattr(looser, field), field
        for field in ("max_abs_yaw", "max_abs_pitch"):
            assert getattr(stricter, field) <= getattr(looser, field), field
    assert NONE.describe() == "-"
    assert HIGH.describe() == "size>=64 sharpness>=50 score>=0.9 |yaw|<=30 |pitch|<=15"


# ------------------------------------------------------------------------------------------------- on real faces


@pytest.fixture
def analyzer(store: ModelStore, settings: Settings, tmp_path: Path) -> Iterator[LocalFaceAnalyzer]:
    built = LocalFaceAnalyzer(store, settings.model_copy(update={"data_dir": tmp_path}), ["mobilefacenet"])
    yield built
    built.close()


def test_measures_are_those_of_the_analysis(analyzer: LocalFaceAnalyzer, eval_dir: Path, tmp_path: Path) -> None:
    """The measured face, its box, score and sharpness are what Verify's analysis gives for the photo."""
    root = eval_dir / "lfw" / IMAGES_SUBDIR
    name = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
    measures = QualityCache(analyzer, root).measures([name])
    (face,) = analyzer.analyze_image(read_image(root / name), ["mobilefacenet"]).faces
    assert measures.boxes[0] == pytest.approx(face.box) and measures.scores[0] == pytest.approx(face.score)
    assert measures.sharpness[0] == pytest.approx(face.sharpness)
    verdict = measures.verdicts(NONE)[name]
    assert verdict.face_size == pytest.approx(face.face_size) and abs(verdict.yaw) < 30
    assert len(list((tmp_path / "cache").glob("lfw-quality-*.npz"))) == 1


def eval_quality(*args: str, models_dir: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARGUS_MODELS_DIR": str(models_dir), "ARGUS_DATA_DIR": str(data_dir), "ARGUS_DEVICE": "cpu"}
    command = [sys.executable, "-m", "argus.cli.main", "eval", "quality", "--limit", "40", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def test_argus_eval_quality_on_a_few_pairs(models_dir: Path, tmp_path: Path) -> None:
    """NONE drops nothing; each stricter level drops at least what the looser one does and keeps fewer pairs;
    AUTO is LOW; a second run reads the measures from the cache and prints the table."""
    done = eval_quality("--json", models_dir=models_dir, data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["profile"] == "mobilefacenet+dlib" and 0 < report["threshold"] < 1
    for split, pairs_file in (("development", "pairsDevTest.txt"), ("test", "pairs.txt")):
        figures = report[split]
        assert figures["pairs_file"] == pairs_file and figures["pairs"] == 40
        levels = {row["level"]: row for row in figures["levels"]}
        assert list(levels) == ["none", "auto", "low", "medium", "high"]
        assert levels["none"]["dropped"] == 0
        assert levels["none"]["genuine_pairs"] == levels["none"]["impostor_pairs"] == 20
        assert {k: v for k, v in levels["auto"].items() if k != "level"} == {
            k: v for k, v in levels["low"].items() if k != "level"
        }
        ordered = [levels[name] for name in ("none", "low", "medium", "high")]
        for looser, stricter in pairwise(ordered):
            assert stricter["dropped"] >= looser["dropped"]
            assert stricter["genuine_pairs"] <= looser["genuine_pairs"]
            assert stricter["impostor_pairs"] <= looser["impostor_pairs"]
        for row in ordered:
            assert sum(row["below"].values()) == row["dropped"]
            assert 0 <= row["far"] <= 1 and 0 <= row["tar"] <= 1
    again = eval_quality(models_dir=models_dir, data_dir=tmp_path / "data")
    assert again.returncode == 0, again.stderr
    assert "measured" not in again.stderr and "embedded" not in again.stderr  # both from the caches
    assert "level" in again.stdout and "size>=64 sharpness>=50" in again.stdout
    assert len(list((tmp_path / "data" / "cache").glob("lfw-quality-*.npz"))) == 1
