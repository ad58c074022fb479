"""The evaluation helpers: parsers and matching on hand-written files, then a few real images through each model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.config import Settings
from argus.evaluation.coco import (
    COCO80_TO_COCO91,
    CocoGroundTruth,
    coco_stats,
    detect_layout,
    evaluate_coco,
    load_ground_truth,
    parse_yolo_labels,
)
from argus.evaluation.widerface import evaluate_widerface, match_faces, parse_wider_gt
from argus.models.store import ModelStore
from argus.services.detector.faces import DetectedFace, FaceDetector, FaceOptions
from argus.services.detector.objects import COCO_CLASSES, ObjectDetector


def write_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.zeros((height, width, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------------ COCO, no model


def test_parse_yolo_labels_denormalises_to_pixel_xywh() -> None:
    text = "0 0.5 0.5 0.2 0.4\n\n45 0.1 0.2 0.2 0.2\n"
    (first_class, first), (second_class, second) = parse_yolo_labels(text, width=640, height=480)
    # 0.5*640 - 0.1*640 = 256, 0.5*480 - 0.2*480 = 144, 0.2*640 = 128, 0.4*480 = 192
    assert first_class == 0 and first == pytest.approx((256, 144, 128, 192))
    # 0.1*640 - 0.1*640 = 0, 0.2*480 - 0.1*480 = 48, 128, 96
    assert second_class == 45 and second == pytest.approx((0, 48, 128, 96))
    with pytest.raises(ValueError, match="line 2"):
        parse_yolo_labels("0 0.5 0.5 0.2 0.4\n1 0.5 0.5\n", 10, 10)


@pytest.fixture
def yolo_folder(tmp_path: Path) -> Path:
    """Two images, one without labels (background), and one label file without an image (ignored)."""
    write_image(tmp_path / "images/train/a.jpg", 200, 100)
    write_image(tmp_path / "images/train/b.jpg", 50, 50)
    (tmp_path / "labels/train").mkdir(parents=True)
    (tmp_path / "labels/train/a.txt").write_text("0 0.5 0.5 0.5 0.5\n45 0.25 0.25 0.1 0.2\n")
    (tmp_path / "labels/train/orphan.txt").write_text("2 0.5 0.5 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("\n".join(COCO_CLASSES) + "\n")
    return tmp_path


def test_yolo_folder_becomes_coco_ground_truth(yolo_folder: Path) -> None:
    assert detect_layout(yolo_folder) == "yolo"
    truth = load_ground_truth(yolo_folder)
    assert [image["file_name"] for image in truth.dataset["images"]] == ["train/a.jpg", "train/b.jpg"]
    assert [(image["width"], image["height"]) for image in truth.dataset["images"]] == [(200, 100), (50, 50)]
    person, bowl = truth.dataset["annotations"]
    assert person["category_id"] == 1 and person["bbox"] == pytest.approx([50, 25, 100, 50])
    assert person["area"] == pytest.approx(5000)
    assert bowl["category_id"] == 51  # class 45 'bowl' is COCO category 51
    assert bowl["bbox"] == pytest.approx([40, 15, 20, 20])
    assert {a["image_id"] for a in truth.dataset["annotations"]} == {1}
    assert truth.category_ids[45] == 51
    assert len(load_ground_truth(yolo_folder, limit=1).dataset["images"]) == 1


def test_coco_stats_scores_perfect_and_wrong_predictions(yolo_folder: Path) -> None:
    truth = load_ground_truth(yolo_folder)
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in truth.dataset["annotations"]
    ]
    stats = coco_stats(truth, perfect)
    assert stats[0] == pytest.approx(1.0) and stats[1] == pytest.approx(1.0)
    wrong_class = [{**record, "category_id": 3} for record in perfect]
    assert coco_stats(truth, wrong_class)[1] == pytest.approx(0.0)
    assert coco_stats(truth, [])[1] == 0.0


def test_layout_detection(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/instances_val.json").write_text(json.dumps({"images": []}))
    assert detect_layout(tmp_path) == "coco"
    with pytest.raises(ValueError, match="neither"):
        detect_layout(tmp_path / "annotations")


def test_coco_category_ids_are_the_official_ones() -> None:
    assert len(COCO80_TO_COCO91) == len(COCO_CLASSES) == 80
    assert COCO80_TO_COCO91[COCO_CLASSES.index("tv")] == 72
    assert COCO80_TO_COCO91[-1] == 90


def test_yolo_labels_agree_with_the_derived_coco_json(eval_dir: Path) -> None:
    """coco128 ships a json made from its YOLO labels: both readings must give the same boxes and categories."""
    yolo = load_ground_truth(eval_dir / "coco128", limit=20, layout="yolo")
    coco = load_ground_truth(eval_dir / "coco128", limit=20, layout="coco")
    assert len(yolo.dataset["annotations"]) == len(coco.dataset["annotations"]) > 0

    def keyed(truth: CocoGroundTruth) -> list[tuple[str, int, list[float]]]:
        names = {image["id"]: image["file_name"].split("/")[-1] for image in truth.dataset["images"]}
        return sorted((names[a["image_id"]], a["category_id"], a["bbox"]) for a in truth.dataset["annotations"])

    for (name_y, cat_y, box_y), (name_c, cat_c, box_c) in zip(keyed(yolo), keyed(coco), strict=True):
        assert (name_y, cat_y) == (name_c, cat_c)
        assert box_y == pytest.approx(box_c, abs=0.01)


# ------------------------------------------------------------------------------------------- WIDER, no model

# Trailing spaces as in the official file.
WIDER_GT = "\n".join(
    [
        "0--Parade/a.jpg",
        "2",
        "10 20 30 40 0 0 0 0 0 0 ",
        "5 5 8 8 2 0 0 1 0 0 ",
        "0--Parade/b.jpg",
        "0",
        "0 0 0 0 0 0 0 0 0 0 ",
        "13--Interview/c.jpg",
        "1",
        "100 50 64 80 1 1 0 0 1 0",
    ]
)


def test_parse_wider_gt_handles_empty_images_and_invalid_flags() -> None:
    a, b, c = parse_wider_gt(WIDER_GT)
    assert (a.name, b.name, c.name) == ("0--Parade/a.jpg", "0--Parade/b.jpg", "13--Interview/c.jpg")
    np.testing.assert_array_equal(a.boxes, [[10, 20, 30, 40], [5, 5, 8, 8]])
    np.testing.assert_array_equal(a.invalid, [False, True])
    assert b.boxes.shape == (0, 4) and b.invalid.shape == (0,)
    np.testing.assert_array_equal(c.boxes, [[100, 50, 64, 80]])
    with pytest.raises(ValueError, match="ends before"):
        parse_wider_gt("x.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match="10 numbers"):
        parse_wider_gt("x.jpg\n1\n1 2 3 4\n")


def test_match_faces_is_greedy_by_score_and_one_to_one() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=float)
    detections = np.array(
        [
            [0, 0, 10, 10],  # IoU 1 with face 0, but scores below detection 1
            [1, 0, 11, 10],  # IoU 90/110 = 0.82 with face 0: takes it first
            [20, 0, 30, 16],  # IoU 100/160 = 0.625 with face 1
            [40, 40, 50, 50],  # overlaps nothing
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.95, 0.5, 0.99])
    np.testing.assert_array_equal(match_faces(detections, scores, truth), [1, 2])
    loose = detections.copy()
    loose[2] = [20, 0, 30, 25]  # IoU 100/250 = 0.4: below 0.5
    np.testing.assert_array_equal(match_faces(loose, scores, truth), [1, -1])
    np.testing.assert_array_equal(match_faces(np.zeros((0, 4)), np.zeros(0), truth), [-1, -1])


class FakeFaces:
    """Stands in for FaceDetector: fixed boxes per call, and remembers the options it was given."""

    def __init__(self, boxes: list[tuple[tuple[float, float, float, float], float]]) -> None:
        self.boxes = boxes
        self.defaults = FaceOptions(0.6, 0.3, 300)
        self.seen: list[FaceOptions] = []

    def detect(self, images: list[np.ndarray], options: FaceOptions) -> list[list[DetectedFace]]:
        self.seen.append(options)
        return [[DetectedFace(box, score, ((0.0, 0.0),) * 5) for box, score in self.boxes] for _ in images]


def test_widerface_counts_ignore_invalid_faces(tmp_path: Path) -> None:
    write_image(tmp_path / "images/e/a.jpg", 100, 100)
    (tmp_path / "wider_face_val_bbx_gt_test.txt").write_text(
        "e/a.jpg\n3\n10 10 40 40 0 0 0 0 0 0\n60 60 10 10 0 0 0 0 0 0\n0 60 20 20 0 0 0 1 0 0\n"
    )
    fake = FakeFaces(
        [
            ((10, 10, 50, 50), 0.9),  # the large face, exactly
            ((0, 60, 20, 80), 0.8),  # the invalid face: neither a hit nor a false positive
            ((70, 0, 90, 20), 0.7),  # nothing there: a false positive
        ]
    )
    result = evaluate_widerface(fake, tmp_path)
    assert (result.images, result.faces, result.detected, result.invalid_faces) == (1, 2, 1, 1)
    assert (result.large_faces, result.large_detected) == (1, 1)
    assert (result.detections, result.false_positives) == (3, 1)
    assert result.recall == 0.5 and result.large_recall == 1.0
    assert fake.seen[-1].score_threshold == 0.6
    assert evaluate_widerface(fake, tmp_path, score_threshold=0.2).score_threshold == 0.2
    assert fake.seen[-1].score_threshold == 0.2
    assert json.loads(json.dumps(result.as_dict()))["recall"] == 0.5


# ---------------------------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def objects(store: ModelStore, settings: Settings) -> Iterator[ObjectDetector]:
    detector = ObjectDetector(store, settings)
    yield detector
    detector.close()


@pytest.fixture(scope="module")
def faces(store: ModelStore, settings: Settings) -> Iterator[FaceDetector]:
    detector = FaceDetector(store, settings)
    yield detector
    detector.close()


@pytest.mark.parametrize(("folder", "layout", "floor"), [("coco128", "yolo", 0.5), ("coco_tiny_val2017", "coco", 0.3)])
def test_coco_ap_on_a_few_images(
    objects: ObjectDetector, eval_dir: Path, folder: str, layout: str, floor: float
) -> None:
    result = evaluate_coco(objects, eval_dir / folder, limit=16)
    assert result.layout == layout and result.images == 16 and result.annotations > 0
    assert floor < result.ap50 <= 1.0
    assert 0.0 < result.ap50_95 <= result.ap50
    assert 0 < result.detections <= 16 * 100
    assert json.loads(json.dumps(result.as_dict()))["ap50"] == result.ap50


def test_widerface_recall_on_a_few_images(faces: FaceDetector, eval_dir: Path) -> None:
    result = evaluate_widerface(faces, eval_dir / "widerface_val_subset", limit=6)
    assert result.images == 6 and result.faces > 0 and result.large_faces > 0
    assert 0.3 < result.recall <= 1.0
    assert 0.5 < result.large_recall <= 1.0
    assert result.score_threshold == faces.defaults.score_threshold
