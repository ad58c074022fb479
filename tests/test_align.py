"""Face alignment on hand-worked numbers: the similarity fit, the warp onto the template, the sharpness figure."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from argus.alignment import ALIGNED_SIZE, TEMPLATE_112, align_face, sharpness, similarity_transform

SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    angle = math.radians(degrees)
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[cos, -sin, tx], [sin, cos, ty]])


def test_pure_translation_is_recovered_exactly() -> None:
    matrix = similarity_transform(SQUARE, SQUARE + np.array([5.0, -3.0]))
    np.testing.assert_allclose(matrix, [[1, 0, 5], [0, 1, -3]], atol=1e-12)


def test_pure_scale_is_recovered_exactly() -> None:
    # scaling about the origin: the means scale too, so no translation is left over
    matrix = similarity_transform(SQUARE, 2.0 * SQUARE)
    np.testing.assert_allclose(matrix, [[2, 0, 0], [0, 2, 0]], atol=1e-12)


def test_ninety_degree_rotation_is_recovered_exactly() -> None:
    # (x, y) -> (-y, x): (2, 0) goes to (0, 2), (0, 2) to (-2, 0), (2, 2) to (-2, 2)
    rotated = np.array([[0.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [-2.0, 2.0], [-1.0, 1.0]])
    matrix = similarity_transform(SQUARE, rotated)
    np.testing.assert_allclose(matrix, [[0, -1, 0], [1, 0, 0]], atol=1e-12)


def test_template_onto_itself_is_the_identity() -> None:
    np.testing.assert_allclose(similarity_transform(TEMPLATE_112, TEMPLATE_112), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


@pytest.mark.parametrize(
    ("scale", "degrees", "tx", "ty"), [(0.7, 30, 12, -4), (3.1, -75, -200, 460), (0.05, 170, 1, 1)]
)
def test_a_known_similarity_is_recovered(scale: float, degrees: float, tx: float, ty: float) -> None:
    truth = similarity(scale, degrees, tx, ty)
    source = TEMPLATE_112 * 4 + [300, 120]  # the face somewhere in a bigger photo
    matrix = similarity_transform(source, apply(truth, source))
    np.testing.assert_allclose(matrix, truth, atol=1e-9)


def test_a_mirrored_face_gives_a_rotation_not_a_reflection() -> None:
    # the template flipped left to right (x -> 112 - x) can only be matched exactly by a reflection;
    # a similarity must keep handedness, so the fit is a scaled rotation with a positive determinant
    mirrored = TEMPLATE_112 * [-1.0, 1.0] + [ALIGNED_SIZE, 0.0]
    matrix = similarity_transform(mirrored, TEMPLATE_112)
    linear = matrix[:, :2]
    assert np.linalg.det(linear) > 0
    scale_squared = np.linalg.det(linear)
    np.testing.assert_allclose(linear @ linear.T, scale_squared * np.eye(2), atol=1e-12)  # no shear, uniform scale


def gaussian_dots(height: int, width: int, centres: np.ndarray, sigma: float) -> np.ndarray:
    """A BGR image of soft white dots at sub-pixel centres, so a weighted centroid finds them again precisely."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    grey = np.zeros((height, width))
    for x, y in centres:
        grey += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    grey = np.clip(255 * grey, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def centroid_near(image: np.ndarray, x: float, y: float, radius: int = 6) -> tuple[float, float]:
    grey = image[:, :, 0].astype(np.float64)
    x0, y0 = round(x) - radius, round(y) - radius
    window = grey[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
    ys, xs = np.mgrid[0 : window.shape[0], 0 : window.shape[1]]
    total = window.sum()
    assert total > 0, f"no dot near ({x:.1f}, {y:.1f})"
    return x0 + float((xs * window).sum() / total), y0 + float((ys * window).sum() / total)


def test_align_face_puts_the_landmarks_on_the_template() -> None:
    # a face 2.5 times the template's size, tilted 15 degrees, placed off-centre in a 400x300 photo
    landmarks = apply(similarity(2.5, 15, 90.3, -50.7), TEMPLATE_112)
    photo = gaussian_dots(300, 400, landmarks, sigma=3.0)
    crop = align_face(photo, landmarks)
    assert crop.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3) and crop.dtype == np.uint8
    for (x, y), (found_x, found_y) in zip(
        TEMPLATE_112, (centroid_near(crop, x, y) for x, y in TEMPLATE_112), strict=True
    ):
        assert math.hypot(found_x - x, found_y - y) < 1.0, ((x, y), (found_x, found_y))


def test_align_face_on_template_landmarks_is_a_plain_crop() -> None:
    photo = np.random.default_rng(0).integers(0, 256, (200, 160, 3), dtype=np.uint8)
    np.testing.assert_array_equal(align_face(photo, TEMPLATE_112), photo[:ALIGNED_SIZE, :ALIGNED_SIZE])


def test_sharpness_drops_when_the_face_is_blurred() -> None:
    rng = np.random.default_rng(1)
    sharp = cv2.resize(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8), (112, 112), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert sharpness(blurred) < sharpness(sharp) / 10
    assert sharpness(np.full((112, 112, 3), 128, dtype=np.uint8)) == 0.0
