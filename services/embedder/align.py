"""Face alignment: a 5-point similarity transform onto the 112x112 ArcFace template, and a sharpness figure."""

from __future__ import annotations

import cv2
import numpy as np

ALIGNED_SIZE = 112

# Where the right eye, left eye, nose tip, right and left mouth corners land in a 112x112 crop (the subject's
# right is the image's left). This is the template MobileFaceNet was trained on.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the rotation, uniform scale and translation that best maps source points onto target.

    Least squares in closed form (Umeyama, 1991): unlike a RANSAC fit it uses all five points, and it is exact
    when the points really are related by a similarity.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[1, 1] = -1
    rotation = u @ reflection @ vt
    variance = (source_centred**2).sum() / len(source)
    scale = (singular * np.diag(reflection)).sum() / variance if variance > 0 else 1.0
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warps the face with these five landmarks (x, y in image pixels) to a size x size crop on the template."""
    template = TEMPLATE_112 * (size / ALIGNED_SIZE)
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def sharpness(face_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop: a standard, cheap focus measure (low means blurry)."""
    grey = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
