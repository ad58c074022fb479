"""Intersection over union and non-max suppression: pure, vectorised, on (N, 4) arrays of x1, y1, x2, y2."""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def as_box(row: np.ndarray) -> Box:
    """One row of an (N, 4) array as a box of plain floats."""
    x1, y1, x2, y2 = (float(v) for v in row)
    return x1, y1, x2, y2


def box_areas(boxes: np.ndarray) -> np.ndarray:
    areas: np.ndarray = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return areas


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4): an (N, M) array. Empty boxes have IoU 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - overlap
    ious: np.ndarray = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    return ious


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, best score first: OpenCV's cv2.dnn.NMSBoxes (as Immich's _ops.py uses), an order
    of magnitude faster than a loop in Python over thousands of candidates.

    A box is dropped when its IoU with a kept, higher-scored box is above iou_threshold. Ties in score keep the
    lower index first (OpenCV sorts stably). OpenCV's own rules besides: scores are compared in single precision
    and must be above 0 (every caller's candidates have passed a positive score threshold), and two empty boxes
    count as the same box, where iou_matrix gives them 0.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    corner_and_size = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    scores = np.asarray(scores, dtype=np.float32)
    kept = cv2.dnn.NMSBoxes(corner_and_size.tolist(), scores.tolist(), 0.0, iou_threshold)
    return np.asarray(kept, dtype=np.int64).reshape(-1)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-wise NMS: boxes of different classes never suppress each other. Indices kept, best score first.

    Each class's boxes are shifted by a per-class offset larger than any coordinate, so one NMS pass over the
    shifted boxes equals a separate pass per class. (cv2.dnn.NMSBoxesBatched offsets by the largest coordinate
    alone, so boxes at negative coordinates may suppress across classes there.)
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(np.abs(boxes).max()) + 1.0
    shifted = boxes + (np.asarray(classes, dtype=np.float64) * 2 * span)[:, None]
    return nms(shifted, scores, iou_threshold)
