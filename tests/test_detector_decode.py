"""YOLOX and YuNet post-processing on synthetic outputs with hand-worked answers, and the batch-dynamic graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from argus.errors import InvalidInput
from argus.models.manifest import YOLOX_NANO
from argus.models.store import ModelStore
from argus.services.detector import faces, objects


def test_yolox_grid_has_3549_cells_in_stride_order() -> None:
    cells, strides = objects.make_grid(416, 416)
    assert cells.shape == (52 * 52 + 26 * 26 + 13 * 13, 2) == (3549, 2)
    assert cells[:2].tolist() == [[0, 0], [1, 0]]  # row-major: x moves first
    assert cells[52].tolist() == [0, 1]
    assert strides[0, 0] == 8 and strides[2704, 0] == 16 and strides[-1, 0] == 32
    assert cells[-1].tolist() == [12, 12]


def test_yolox_box_decode() -> None:
    # cell (col 3, row 2) at stride 8, offsets (0.5, 0.25), size exp(0)*8 = 8 and exp(ln 2)*8 = 16
    raw = np.array([[0.5, 0.25, 0.0, np.log(2.0)]], dtype=np.float32)
    box = objects.decode_boxes(raw, np.array([[3.0, 2.0]]), np.array([[8.0]]))
    # centre (28, 18): x 24..32, y 10..26
    np.testing.assert_allclose(box, [[24, 10, 32, 26]], rtol=1e-6)


def synthetic_yolox(cells: np.ndarray) -> np.ndarray:
    """Zero offsets and log sizes: every cell predicts a stride-sized box centred on its corner, scoring 0."""
    return np.zeros((len(cells), 85), dtype=np.float32)


def test_yolox_postprocess_scores_maps_back_and_filters_classes() -> None:
    cells, strides = objects.make_grid(416, 416)
    raw = synthetic_yolox(cells)
    # cell 10 (col 10, row 0, stride 8): centre (80, 0), 8x8 box; obj 0.9, "dog" 0.8 -> 0.72, "cat" 0.5 -> 0.45
    raw[10, 4] = 0.9
    raw[10, 5 + 16] = 0.8
    raw[10, 5 + 15] = 0.5
    options = objects.ObjectOptions(score_threshold=0.3, iou_threshold=0.5, max_detections=10)
    found = objects.postprocess(raw, cells, strides, scale=0.5, image_size=(832, 832), options=options)
    assert [(d.class_name, round(d.score, 3)) for d in found] == [("dog", 0.72), ("cat", 0.45)]
    np.testing.assert_allclose(found[0].box, (152, 0, 168, 8))  # x 76..84, y -4..4 clipped to 0..4, / 0.5
    only_cats = objects.ObjectOptions(0.3, 0.5, 10, class_ids=frozenset({15}))
    assert [d.class_name for d in objects.postprocess(raw, cells, strides, 0.5, (832, 832), only_cats)] == ["cat"]


def test_yolox_postprocess_clips_to_the_image() -> None:
    cells, strides = objects.make_grid(416, 416)
    raw = synthetic_yolox(cells)
    raw[0, 2:4] = np.log(4.0)  # 32x32 box centred on (0, 0): -16..16
    raw[0, 4], raw[0, 5] = 1.0, 1.0
    found = objects.postprocess(raw, cells, strides, 1.0, (416, 416), objects.ObjectOptions(0.3, 0.5, 10))
    assert found[0].box == (0.0, 0.0, 16.0, 16.0)


def test_class_filter_by_name_and_id() -> None:
    assert objects.resolve_classes(["Person", "dog"], [2]) == frozenset({0, 16, 2})
    assert objects.resolve_classes([], []) is None
    with pytest.raises(InvalidInput, match="unknown class name"):
        objects.resolve_classes(["unicorn"], [])
    with pytest.raises(InvalidInput, match="out of range"):
        objects.resolve_classes([], [80])


def test_batch_dynamic_yolox_matches_batch_one_runs(models_dir: Path) -> None:
    path = ModelStore(models_dir).require(YOLOX_NANO)
    fixed = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dynamic_graph = objects.make_batch_dynamic(onnx.load(str(path)))
    dynamic = ort.InferenceSession(dynamic_graph.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (3, 3, 416, 416)).astype(np.float32)
    (together,) = dynamic.run(None, {"images": batch})
    assert together.shape == (3, 3549, 85)
    for index in range(3):
        (alone,) = fixed.run(None, {"images": batch[index : index + 1]})
        np.testing.assert_allclose(together[index], alone[0], rtol=1e-4, atol=1e-4)


def test_face_input_size_rounds_up_and_caps() -> None:
    assert faces.input_size(661, 1126, max_side=1280) == (1.0, 672, 1152)
    scale, height, width = faces.input_size(2000, 4000, max_side=1000)
    assert (scale, height, width) == (0.25, 512, 1024)


def test_yunet_decode_on_a_synthetic_cell() -> None:
    # A 64x64 input: strides 8, 16, 32 give 64, 16 and 4 cells.
    outputs = {}
    for stride, count in ((8, 64), (16, 16), (32, 4)):
        outputs[f"cls_{stride}"] = np.zeros((count, 1), np.float32)
        outputs[f"obj_{stride}"] = np.zeros((count, 1), np.float32)
        outputs[f"bbox_{stride}"] = np.zeros((count, 4), np.float32)
        outputs[f"kps_{stride}"] = np.zeros((count, 10), np.float32)
    # stride 16, cell index 6 = row 1, col 2; cls 0.81, obj 1.0 -> score sqrt(0.81) = 0.9
    outputs["cls_16"][6, 0], outputs["obj_16"][6, 0] = 0.81, 1.0
    outputs["bbox_16"][6] = [0.5, 0.5, np.log(2.0), 0.0]  # centre (40, 24), size 32 x 16
    outputs["kps_16"][6] = [0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1]
    boxes, scores, landmarks = faces.decode(outputs, 64, 64, score_threshold=0.5)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    np.testing.assert_allclose(boxes, [[24, 16, 56, 32]], rtol=1e-6)
    np.testing.assert_allclose(landmarks[0], [[32, 16], [48, 16], [40, 24], [32, 32], [48, 32]], rtol=1e-6)
    empty = faces.decode(outputs, 64, 64, score_threshold=0.95)
    assert empty[0].shape == (0, 4) and empty[2].shape == (0, 5, 2)


# --- landmark refinement (the second look at each face) ----------------------------------------------------------


def test_refine_window_centres_the_face_at_half_the_window() -> None:
    # A 40x50 box centred at (120, 75): scale 384 / (2 * 50) = 3.84, the centre lands on (192, 192).
    matrix = faces.refine_window((100.0, 50.0, 140.0, 100.0))
    np.testing.assert_allclose(matrix, [[3.84, 0, 192 - 3.84 * 120], [0, 3.84, 192 - 3.84 * 75]])
    corners = np.array([[100.0, 50.0], [140.0, 100.0]]) @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(corners, [[115.2, 96.0], [268.8, 288.0]])  # the box is half the window high


def test_refined_landmarks_map_back_from_the_window_and_keep_the_first_look_otherwise() -> None:
    face = faces.DetectedFace((100.0, 50.0, 140.0, 100.0), 0.9, tuple((110.0 + i, 60.0 + i) for i in range(5)))
    matrix = faces.refine_window(face.box)
    # The second look finds the face where it must be, with points at window (192 + 3.84 k, 192): photo (120 + k, 75).
    same = faces.DetectedFace((115.0, 96.0, 269.0, 288.0), 0.5, tuple((192 + 3.84 * k, 192.0) for k in range(5)))
    np.testing.assert_allclose(faces.refined_landmarks(face, matrix, [same]), [(120 + k, 75) for k in range(5)])
    # A neighbour at the window's edge is not this face: the first landmarks stay.
    neighbour = faces.DetectedFace((300.0, 0.0, 384.0, 90.0), 0.9, tuple((350.0, 40.0) for _ in range(5)))
    assert faces.refined_landmarks(face, matrix, [neighbour]) == face.landmarks
    assert faces.refined_landmarks(face, matrix, []) == face.landmarks
    assert faces.refined_landmarks(face, matrix, [neighbour, same])[0] == pytest.approx((120, 75))


def test_the_second_look_moves_landmarks_a_little_and_nothing_else(store: ModelStore, settings: object) -> None:
    import cv2

    from argus.config import Settings

    assert isinstance(settings, Settings) and settings.face_refine_landmarks
    refined = faces.FaceDetector(store, settings)
    first_look = faces.FaceDetector(store, settings.model_copy(update={"face_refine_landmarks": False}))
    try:
        images_root = settings.eval_dir.parent / "images" / "faces"
        photos = [cv2.imread(str(images_root / name)) for name in ("two_people.jpg", "obama.jpg")]
        again, before = refined.detect(photos, refined.defaults), first_look.detect(photos, first_look.defaults)
    finally:
        refined.close()
        first_look.close()
    assert [len(found) for found in again] == [len(found) for found in before] == [2, 1]
    moved = []
    for new, old in zip((f for found in again for f in found), (f for found in before for f in found), strict=True):
        assert new.box == old.box and new.score == old.score
        size = old.box[2] - old.box[0]
        shift = np.abs(np.subtract(new.landmarks, old.landmarks)).max()
        assert shift < 0.1 * size  # the same points, placed a little differently
        moved.append(shift)
    assert max(moved) > 0  # ... and not simply copied
