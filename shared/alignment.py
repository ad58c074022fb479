"""Face alignment: 5-point similarity transforms onto a network's crop template, the face crop every network's crop
is cut from (the detector cuts it from the photo it decoded, the embedder from a photo it was sent, and a face
database keeps it to re-embed the face later), and a sharpness figure."""

from __future__ import annotations

from dataclasses import dataclass

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

# The face crop stored with an enrolled face: the 112 template scaled by 1.8 in a 256x256 square. It holds every
# network's crop (the dlib chip reaches furthest below the mouth, the box crop furthest out to the sides) at about
# the resolution the most demanding of them samples, so a face can be re-embedded by another model later.
FACE_CROP_SIZE = 256
FACE_CROP_SCALE = 1.8
FACE_CROP_TEMPLATE = (TEMPLATE_112 - ALIGNED_SIZE / 2) * FACE_CROP_SCALE + FACE_CROP_SIZE / 2


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


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a 2x3 affine matrix to (n, 2) points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    moved: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return moved


def align_to(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Warps the face with these five landmarks (x, y in image pixels) to a size x size crop on the template."""
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """The MobileFaceNet (ArcFace template) crop of a face, size x size."""
    return align_to(image, landmarks, TEMPLATE_112 * (size / ALIGNED_SIZE), size)


@dataclass(frozen=True)
class FaceCrop:
    """A face cut out with margin, and where its five landmarks fall in it: enough to re-embed it with any model."""

    image: np.ndarray  # FACE_CROP_SIZE square, BGR uint8
    landmarks: np.ndarray  # (5, 2) in crop pixels


def face_crop(image: np.ndarray, landmarks: np.ndarray) -> FaceCrop:
    """Cuts the face crop: the landmarks' best similarity onto FACE_CROP_TEMPLATE, keeping the landmarks' own
    positions (not the template's), so each network's crop can be fitted to them later exactly as on the photo."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    matrix = similarity_transform(points, FACE_CROP_TEMPLATE)
    if image.shape[:2] == (FACE_CROP_SIZE, FACE_CROP_SIZE) and np.allclose(matrix, np.eye(2, 3), atol=1e-6):
        return FaceCrop(image, points)  # a face crop cut earlier: taken as it is, so it re-embeds bit for bit
    crop = cv2.warpAffine(
        image, matrix, (FACE_CROP_SIZE, FACE_CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    # The crop's landmarks at the precision a message carries them (float32): the networks' crops are cut from
    # these, so a crop handed on by the detector or stored and re-embedded gives the same vectors as one cut here.
    return FaceCrop(crop, transform_points(matrix, points).astype(np.float32).astype(np.float64))


def sharpness(face_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop: a standard, cheap focus measure (low means blurry)."""
    grey = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
