"""Intersection over union and non-max suppression: pure, vectorised, on (N, 4) arrays of x1, y1, x2, y2."""

from __future__ import annotations

import numpy as np


def box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4): an (N, M) array. Empty boxes have IoU 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, best score first.

    A box is dropped when its IoU with a kept, higher-scored box is above iou_threshold. Ties in score keep the
    lower index first (a stable sort), so the result does not depend on the sort algorithm.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        overlaps = iou_matrix(boxes[best : best + 1], boxes[rest])[0]
        order = rest[overlaps <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-wise NMS: boxes of different classes never suppress each other. Indices kept, best score first.

    Each class's boxes are shifted by a per-class offset larger than any coordinate, so one NMS pass over the
    shifted boxes equals a separate pass per class.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(np.abs(boxes).max()) + 1.0
    shifted = boxes + (np.asarray(classes, dtype=np.float64) * 2 * span)[:, None]
    return nms(shifted, scores, iou_threshold)
