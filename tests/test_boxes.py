"""IoU and NMS on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from argus.boxes import batched_nms, iou_matrix, nms


def test_iou_of_identical_boxes_is_one() -> None:
    assert iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10]])[0, 0] == pytest.approx(1.0)


def test_iou_of_half_shifted_boxes() -> None:
    # overlap 5x10 = 50, union 100 + 100 - 50 = 150
    assert iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)


def test_iou_of_nested_boxes() -> None:
    # a 4x4 box inside a 10x10 box: 16 / 100
    assert iou_matrix([[0, 0, 10, 10]], [[2, 2, 6, 6]])[0, 0] == pytest.approx(0.16)


def test_touching_and_disjoint_boxes_have_zero_iou() -> None:
    result = iou_matrix([[0, 0, 10, 10]], [[10, 0, 20, 10], [0, 10, 10, 20], [30, 30, 40, 40]])
    np.testing.assert_array_equal(result, [[0.0, 0.0, 0.0]])


def test_iou_of_degenerate_boxes_is_zero_not_nan() -> None:
    result = iou_matrix([[5, 5, 5, 5]], [[5, 5, 5, 5], [0, 0, 10, 10]])
    np.testing.assert_array_equal(result, [[0.0, 0.0]])


def test_iou_matrix_shape_and_empty_input() -> None:
    assert iou_matrix(np.zeros((3, 4)), np.zeros((2, 4))).shape == (3, 2)
    assert iou_matrix(np.zeros((0, 4)), np.ones((2, 4))).shape == (0, 2)


def test_nms_on_empty_input_keeps_nothing() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def test_nms_keeps_one_of_identical_boxes() -> None:
    boxes = [[0, 0, 10, 10]] * 3
    assert nms(boxes, [0.5, 0.9, 0.7], 0.5).tolist() == [1]


def test_nms_threshold_is_exclusive() -> None:
    boxes = [[0, 0, 10, 10], [5, 0, 15, 10]]  # IoU exactly 1/3
    assert nms(boxes, [0.9, 0.8], 1 / 3).tolist() == [0, 1]
    assert nms(boxes, [0.9, 0.8], 0.3).tolist() == [0]


def test_nms_keeps_touching_boxes() -> None:
    boxes = [[0, 0, 10, 10], [10, 0, 20, 10]]
    assert nms(boxes, [0.6, 0.9], 0.0).tolist() == [1, 0]


def test_nms_score_ties_keep_the_lower_index() -> None:
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]]
    assert nms(boxes, [0.8, 0.8, 0.8], 0.5).tolist() == [0, 2]


def test_nms_chain_suppression_is_by_kept_boxes_only() -> None:
    # A overlaps B (IoU 0.6) and B overlaps C (0.6), but A and C do not overlap enough: A and C are kept.
    boxes = [[0, 0, 10, 10], [2.5, 0, 12.5, 10], [5, 0, 15, 10]]
    assert nms(boxes, [0.9, 0.8, 0.7], 0.5).tolist() == [0, 2]


def test_batched_nms_never_suppresses_across_classes() -> None:
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]
    kept = batched_nms(boxes, [0.9, 0.8, 0.7], [0, 1, 0], 0.5)
    assert kept.tolist() == [0, 1]


def test_batched_nms_with_negative_coordinates() -> None:
    boxes = [[-20, -20, -10, -10], [-20, -20, -10, -10], [100, 100, 120, 120]]
    assert batched_nms(boxes, [0.5, 0.6, 0.7], [3, 3, 3], 0.5).tolist() == [2, 1]
